"""The guard a fast path runs under: it is used only while it is shown equal to its torch
definition, on the run's own inputs, parameters and config.

A fast path re-implements maths whose definition is torch code (PPO's gradient is
autograd of `ppo_loss`; acting is the policy's forward). An edit to the definition must
never be silently ignored, so the learner compares the two at construction (a synthetic
batch drawn from the env spec) and again at intervals (a real batch), and at the first
disagreement the fast path steps aside for the rest of the run: the torch path is used,
one line goes to stderr, and the metrics say so. The numpy paths compare in float64
(`call_with_parameters` runs the unmodified torch definition with float64 copies of a
module's parameters), where rounding is far below any tolerance worth having.

Error of a check, over blocks b (one per parameter tensor, or per output):

    err = max_b  max|fast_b - ref_b| / max(max|ref_b|, 1e-6 * max_b' max|ref_b'|)

Each block is scaled by its own largest entry, because float32 rounding scales with it:
a term that moves a small block (the log-std's gradient) is seen even when another block
is 100x larger. The floor keeps a block that is zero in the reference from dividing by 0.
A non-finite entry where the reference has a different one is an infinite error; a check
whose reference is itself non-finite (a diverged run) is inconclusive and changes nothing.

Metrics (learners add `Guard.stats()` to what `update()` returns, which is logged):
    fast/<name>               1.0 while the fast path is used, 0.0 after it stepped aside
    fast/<name>_max_rel_err   the largest err any check has measured (0 before the first)
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

# A finite stand-in for an infinite error in the logged metric: the training loop stops
# a run whose stats are not finite, and a fast path stepping aside is not a divergence.
_HUGE = float(np.finfo(np.float32).max)


def max_rel_err(fast: Sequence[np.ndarray], ref: Sequence[np.ndarray]) -> float:
    """The module docstring's err over paired blocks (any shapes, equal pairwise);
    nan when the reference has a non-finite entry (inconclusive)."""
    if len(fast) != len(ref):
        raise ValueError(f"max_rel_err: {len(fast)} fast blocks against {len(ref)} reference blocks")
    fast = [np.asarray(f, np.float64) for f in fast]
    ref = [np.asarray(r, np.float64) for r in ref]
    for f, r in zip(fast, ref):
        if f.shape != r.shape:
            raise ValueError(f"max_rel_err: block shapes differ, {f.shape} against {r.shape}")
    if not all(np.isfinite(r).all() for r in ref):
        return math.nan
    if not all(np.isfinite(f).all() for f in fast):
        return math.inf
    scales = [float(np.abs(r).max()) if r.size else 0.0 for r in ref]
    floor = max(1e-6 * max(scales, default=0.0), 1e-30)
    return max((float(np.abs(f - r).max()) / max(s, floor) for f, r, s in zip(fast, ref, scales)
                if f.size), default=0.0)


class Guard:
    """Whether one fast path may be used, from the checks run so far.

    name: the metric's name (`fast/<name>`); what: the fast path in words, for the
    stderr line; fallback: what is used instead, in words; tol: the largest err
    accepted; every: a check is due on the first occasion and then once `every`
    occasions (updates, steps: the caller's unit) have passed since the last one."""

    def __init__(self, name: str, what: str, fallback: str, tol: float, every: int) -> None:
        if not (tol > 0 and every >= 1):
            raise ValueError(f"Guard {name}: tol must be > 0 and every >= 1, got {tol}, {every}")
        self.name, self.what, self.fallback, self.tol, self.every = name, what, fallback, tol, every
        self.active = True
        self.max_rel_err = 0.0
        self.checks = 0
        self._since = every  # so that the first occasion is due

    def due(self, occasions: int = 1) -> bool:
        """Count `occasions` and say whether a check is due now (never once stepped aside)."""
        self._since += occasions
        return self.active and self._since >= self.every

    def record(self, err: float, where: str) -> bool:
        """Take a check's err (measured `where`: "at construction", "at update 12", ...);
        returns whether the fast path may still be used."""
        if math.isnan(err):  # the reference itself is not finite: nothing to judge by
            return self.active
        self.checks += 1
        self._since = 0
        self.max_rel_err = max(self.max_rel_err, min(err, _HUGE))
        if err > self.tol and self.active:
            self.step_aside(f"differs from its torch definition {where}: max relative error "
                            f"{err:.3g} > tolerance {self.tol:g}")
        return self.active

    def step_aside(self, why: str) -> None:
        """Stop using the fast path for the rest of the run, with the one stderr line."""
        self.active = False
        print(f"fast path off: {self.what} {why}; {self.fallback} from now on "
              f"(metric fast/{self.name} = 0)", file=sys.stderr, flush=True)

    def stats(self) -> dict[str, float]:
        return {f"fast/{self.name}": float(self.active),
                f"fast/{self.name}_max_rel_err": self.max_rel_err}

    # a run resumed from a checkpoint keeps a fast path that had stepped aside off
    def state_dict(self) -> dict:
        return {"active": self.active, "max_rel_err": self.max_rel_err, "checks": self.checks}

    def load_state_dict(self, state: dict) -> None:
        self.max_rel_err, self.checks = float(state["max_rel_err"]), int(state["checks"])
        if self.active and not state["active"]:
            self.step_aside("had stepped aside before the checkpoint this run resumed from")


class _Call(nn.Module):
    """A module holding `module` whose forward is `fn`: lets torch.func.functional_call
    swap `module`'s parameters for a call of any function that uses it."""

    def __init__(self, module: nn.Module, fn) -> None:
        super().__init__()
        self.module, self.fn = module, fn

    def forward(self, *args):
        return self.fn(*args)


def call_with_parameters(module: nn.Module, params: dict[str, torch.Tensor], fn, *args):
    """fn(*args) while `module`'s parameters are `params` (by name, e.g. float64 copies),
    through the same module object, so that `fn` is the unmodified definition (say a
    learner's loss reading `self.net`); the module's own parameters are back afterwards."""
    return torch.func.functional_call(_Call(module, fn), {f"module.{k}": v for k, v in params.items()},
                                      args, tie_weights=False)
