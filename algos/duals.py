"""Lagrange multipliers kept positive (temperature eta, trust-region alphas), shared by
V-MPO and MPO, with their own optimiser.

Two ways to keep a multiplier positive, chosen by `parameterization`:

- "projection" (V-MPO paper, Song et al. 2019, sec. 3/appendix: "eta and alpha are
  projected to stay >= 1e-8 after each step"): the raw parameter IS the multiplier,
  clamped to >= `min_value` after every optimiser step (`project_()`).
- "softplus" (Acme's MPO; Abdolmaleki et al. 2018 follow-ups): multiplier =
  softplus(raw) + min_value, so gradient steps never leave the positive half-line.

Losses read a multiplier as a tensor with gradient (`duals["eta"]`); every loss that
wants sg[] applies `.detach()` itself.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn as nn
import torch.nn.functional as F

Parameterization = Literal["projection", "softplus"]


def _softplus_inverse(y: float) -> float:
    return y + math.log(-math.expm1(-y)) if y > 0 else float("-inf")


class Duals(nn.Module):
    """Named positive multipliers. `duals["eta"]` -> a scalar tensor with gradient."""

    def __init__(self, inits: dict[str, float], parameterization: Parameterization = "projection",
                 min_value: float = 1e-8) -> None:
        super().__init__()
        if parameterization not in ("projection", "softplus"):
            raise ValueError(f"parameterization must be 'projection' or 'softplus', got {parameterization!r}")
        self.parameterization = parameterization
        self.min_value = min_value
        raw = {}
        for name, value in inits.items():
            if value <= 0:
                raise ValueError(f"initial {name} must be > 0, got {value}")
            v = value if parameterization == "projection" else _softplus_inverse(value - min_value)
            raw[name] = nn.Parameter(torch.tensor(float(v)))
        self.raw = nn.ParameterDict(raw)

    def __getitem__(self, name: str) -> torch.Tensor:
        r = self.raw[name]
        return r if self.parameterization == "projection" else F.softplus(r) + self.min_value

    def __contains__(self, name: str) -> bool:
        return name in self.raw

    def names(self) -> list[str]:
        return list(self.raw.keys())

    @torch.no_grad()
    def project_(self) -> None:
        """After an optimiser step: clamp projected multipliers to >= min_value."""
        if self.parameterization == "projection":
            for r in self.raw.values():
                r.clamp_(min=self.min_value)

    def values(self) -> dict[str, float]:
        """Current multipliers as floats (for logging as dual/<name>)."""
        return {name: float(self[name]) for name in self.raw}


def make_optimizer(duals: Duals, lr: float, kind: Literal["adam", "sgd"] = "adam") -> torch.optim.Optimizer:
    """The duals' own optimiser (a separate learning rate from the networks')."""
    params = list(duals.parameters())
    if kind == "adam":
        from algos.onpolicy import adam  # fused: one kernel for all the scalars

        return adam(params, lr=lr)
    if kind == "sgd":
        return torch.optim.SGD(params, lr=lr)
    raise ValueError(f"dual optimiser must be 'adam' or 'sgd', got {kind!r}")
