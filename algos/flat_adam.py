"""Adam over one contiguous parameter vector: the minibatch step of a small MLP in one
kernel for the update and one for the gradient norm.

PPO takes 320 Adam steps per 2048-step rollout (10 epochs of 64-sample minibatches).
For a 64x64 MLP each step is launch-bound: with one tensor per layer, gradient clipping
and fused Adam cost about 190 us per minibatch on this project's CPU, against about
60 us over a single flat vector (measured, `benchmarks/throughput.py` figures in the
PR notes). The maths are Adam's (Kingma & Ba 2015, torch.optim.Adam) unchanged.

`FlatAdam(params)` copies the parameters into one vector `flat` [P] and makes every
parameter a view of its slice, and every `.grad` a view of the matching slice of one
gradient vector [P]. Back-propagation then accumulates straight into that vector
(autograd adds in place into an existing `.grad`), so:

    opt.zero_grad(); loss.backward(); opt.clip_grad_norm_(max_norm); opt.step()

Rules that keep the views intact (checked where cheap): zero gradients only through
`FlatAdam.zero_grad` (never `set_to_none`), and build it after the module is on its
device (`.to()` would replace the views). `module.load_state_dict` copies in place, so
checkpoints load into the views.
"""

from __future__ import annotations

from typing import Any, Iterable

import torch


class FlatAdam:
    """Adam on a flat view of `params` (their order defines the layout)."""

    def __init__(self, params: Iterable[torch.nn.Parameter], lr: float, eps: float = 1e-8) -> None:
        self.params = [p for p in params if p.requires_grad]
        if not self.params:
            raise ValueError("FlatAdam: no parameters require a gradient")
        devices = {p.device for p in self.params}
        dtypes = {p.dtype for p in self.params}
        if len(devices) != 1 or len(dtypes) != 1:
            raise ValueError(f"FlatAdam: parameters must share one device and dtype, got {devices} {dtypes}")
        with torch.no_grad():
            flat = torch.cat([p.detach().reshape(-1) for p in self.params])
        self.flat = torch.nn.Parameter(flat)
        self.flat.grad = torch.zeros_like(flat)
        offset = 0
        for p in self.params:
            n = p.numel()
            p.data = self.flat.data[offset:offset + n].view_as(p)
            p.grad = self.flat.grad[offset:offset + n].view_as(p)
            offset += n
        try:
            self.opt = torch.optim.Adam([self.flat], lr=lr, eps=eps, fused=True)
        except (RuntimeError, TypeError):  # a device without the fused kernel
            self.opt = torch.optim.Adam([self.flat], lr=lr, eps=eps)

    @property
    def param_groups(self) -> list[dict[str, Any]]:
        return self.opt.param_groups

    def zero_grad(self) -> None:
        self.flat.grad.zero_()

    def clip_grad_norm_(self, max_norm: float) -> torch.Tensor:
        """Scale the gradient to norm <= max_norm (torch.nn.utils.clip_grad_norm_'s rule:
        g * min(1, max_norm / (||g|| + 1e-6))); returns the norm before clipping.
        max_norm <= 0 or inf: no clipping, the norm only."""
        norm = torch.linalg.vector_norm(self.flat.grad)
        if 0 < max_norm < float("inf"):
            self.flat.grad.mul_(torch.clamp(max_norm / (norm + 1e-6), max=1.0))
        return norm

    def step(self) -> None:
        # a parameter whose .grad was replaced (set_to_none, or an optimiser's zero_grad
        # on the module) would silently stop learning: fail loudly instead
        p0 = self.params[0]
        if p0.grad is None or p0.grad.data_ptr() != self.flat.grad.data_ptr():
            raise RuntimeError("FlatAdam: a parameter's .grad no longer views the flat "
                               "gradient; zero gradients with FlatAdam.zero_grad() only")
        self.opt.step()

    def state_dict(self) -> dict[str, Any]:
        return self.opt.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.opt.load_state_dict(state)
