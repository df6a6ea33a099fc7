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

On the CPU the step runs in numpy on numpy views of the same tensors (`flat`, its
gradient and torch.optim.Adam's own `exp_avg`/`exp_avg_sq` state): 18 us against
38 us for torch's fused kernel on an 11k-parameter vector, measured here. The state
stays torch.optim.Adam's, so `state_dict()` is unchanged and a checkpoint written by
either path loads into the other.

The numpy step is checked against torch.optim.Adam (`algos.fast.guard`): at construction
on a synthetic gradient, then before every `ADAM_CHECK_EVERY`-th step on the real
gradient and state, both run on float64 copies (so the check sees the formula and the
param group's settings - weight decay, amsgrad, maximize, betas - rather than float32
rounding of a parameter difference), comparing the step and both moments. A mismatch
(tolerance `ADAM_TOL`; float64 agreement is ~1e-15) hands every later step to torch's
own Adam step on the same state, with one line on stderr; metrics fast/numpy_adam and
fast/numpy_adam_max_rel_err. A check costs about three numpy steps (two float64 Adam
steps and a throwaway torch.optim.Adam): every 1000 steps, 0.3% of them.
"""

from __future__ import annotations

import inspect
import math
from typing import Any, Iterable

import numpy as np
import torch

from algos.fast.guard import Guard, max_rel_err

ADAM_TOL = 1e-6
ADAM_CHECK_EVERY = 1000
# the param-group settings that choose torch's implementation, not the maths
_IMPLEMENTATION = {"params", "foreach", "fused", "capturable", "differentiable"}


def flatten_(params: list[torch.nn.Parameter]) -> torch.nn.Parameter:
    """Copy `params` (one device and dtype) into one vector [P] and make each a view of
    its slice, and each `.grad` a view of the matching slice of one zeroed gradient
    vector (the returned Parameter's `.grad`)."""
    with torch.no_grad():
        flat = torch.nn.Parameter(torch.cat([p.detach().reshape(-1) for p in params]))
    flat.grad = torch.zeros_like(flat)
    offset = 0
    for p in params:
        n = p.numel()
        p.data = flat.data[offset:offset + n].view_as(p)
        p.grad = flat.grad[offset:offset + n].view_as(p)
        offset += n
    return flat


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
        self.flat = flatten_(self.params)
        try:
            self.opt = torch.optim.Adam([self.flat], lr=lr, eps=eps, fused=True)
        except (RuntimeError, TypeError):  # a device without the fused kernel
            self.opt = torch.optim.Adam([self.flat], lr=lr, eps=eps)
        self.guard = Guard("numpy_adam", "FlatAdam's numpy Adam step (algos/fast/flat_adam.py)",
                           "torch.optim.Adam's step", ADAM_TOL, ADAM_CHECK_EVERY)
        if self.flat.device.type == "cpu":
            g = np.random.default_rng(0).standard_normal(self.flat.numel())  # the check's own
            self.check(torch.from_numpy(g), "at construction (a synthetic gradient)")
            self.guard.due(ADAM_CHECK_EVERY)  # and the first real step is checked too

    @property
    def param_groups(self) -> list[dict[str, Any]]:
        return self.opt.param_groups

    def zero_grad(self) -> None:
        self.flat.grad.zero_()

    def clip_grad_norm_(self, max_norm: float) -> float | torch.Tensor:
        """Scale the gradient to norm <= max_norm (torch.nn.utils.clip_grad_norm_'s rule:
        g * min(1, max_norm / (||g|| + 1e-6))); returns the norm before clipping, a float
        on the CPU (computed in numpy) and a 0-d tensor on an accelerator (no sync per
        step). max_norm <= 0 or inf: no clipping, the norm only."""
        if self.flat.device.type == "cpu":
            g = self.flat.grad.numpy()
            norm = math.sqrt(float(np.dot(g, g)))
            if 0 < max_norm < float("inf") and norm + 1e-6 > max_norm:
                g *= max_norm / (norm + 1e-6)
            return norm
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
        if self.flat.device.type == "cpu" and self.guard.active:
            if self.guard.due():
                self.check(self.flat.grad, f"at step {int(self._step_count())}")
            if self.guard.active:
                self._numpy_step()
                return
        self.opt.step()

    def _numpy_step(self) -> None:
        """torch.optim.Adam's update (no weight decay, no amsgrad), in place, on numpy
        views of the flat vector, its gradient and torch's own state (`adam_numpy`)."""
        group = self.opt.param_groups[0]
        state = self.opt.state[self.flat]
        if not state:  # torch's lazy initialisation, in torch's layout
            state["step"] = torch.tensor(0.0)
            state["exp_avg"] = torch.zeros_like(self.flat, memory_format=torch.preserve_format)
            state["exp_avg_sq"] = torch.zeros_like(self.flat, memory_format=torch.preserve_format)
        bound = getattr(self, "_np", None)
        if bound is None or bound[0] is not state["exp_avg"] or bound[1] is not state["exp_avg_sq"]:
            # (re)bind the numpy views: first step, or after load_state_dict replaced them
            flat = self.flat.detach().numpy()
            bound = self._np = (state["exp_avg"], state["exp_avg_sq"], flat, self.flat.grad.numpy(),
                                state["exp_avg"].numpy(), state["exp_avg_sq"].numpy(),
                                np.empty_like(flat), np.empty_like(flat))
        state["step"] += 1
        adam_numpy(*bound[2:], float(state["step"]), group)

    def _step_count(self) -> float:
        state = self.opt.state[self.flat]
        return float(state["step"]) if state else 0.0

    def check(self, grad: torch.Tensor, where: str) -> bool:
        """One step from the current parameters and state with `grad` [P], by `adam_numpy`
        and by torch.optim.Adam with this param group's settings, both on float64 copies
        (nothing here is changed); the guard takes the error over (step, m, v)."""
        group = self.opt.param_groups[0]
        state = self.opt.state[self.flat]
        p0 = self.flat.detach().to(torch.float64).clone()
        g = grad.detach().to(device=p0.device, dtype=torch.float64).clone()
        m, v = ((state[k].detach().to(torch.float64).clone() if state else torch.zeros_like(p0))
                for k in ("exp_avg", "exp_avg_sq"))
        step = float(state["step"]) if state else 0.0
        # torch's definition, from the same state
        ref_p = torch.nn.Parameter(p0.clone())
        ref_p.grad = g.clone()
        allowed = inspect.signature(torch.optim.Adam).parameters
        ref = torch.optim.Adam([ref_p], **{k: val for k, val in group.items()
                                          if k in allowed and k not in _IMPLEMENTATION})
        if state:
            ref.state[ref_p] = {"step": torch.tensor(step), "exp_avg": m.clone(), "exp_avg_sq": v.clone()}
        ref.step()
        ref_state = ref.state[ref_p]
        # the numpy step on copies
        p, m_np, v_np = p0.numpy().copy(), m.numpy().copy(), v.numpy().copy()
        adam_numpy(p, g.numpy(), m_np, v_np, np.empty_like(p), np.empty_like(p), step + 1, group)
        err = max_rel_err([p - p0.numpy(), m_np, v_np],
                          [(ref_p.detach() - p0).numpy(), ref_state["exp_avg"].numpy(),
                           ref_state["exp_avg_sq"].numpy()])
        return self.guard.record(err, where)

    def state_dict(self) -> dict[str, Any]:
        return self.opt.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.opt.load_state_dict(state)


def adam_numpy(p: np.ndarray, g: np.ndarray, m: np.ndarray, v: np.ndarray, tmp: np.ndarray,
               den: np.ndarray, t: float, group: dict[str, Any]) -> None:
    """torch.optim.Adam's update at step t (from 1), in place on p, m, v [P] (tmp, den:
    scratch [P]); lr, betas and eps from `group`:
    m <- m + (1 - b1)(g - m); v <- b2 v + (1 - b2) g^2;
    p <- p - lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)."""
    b1, b2 = group["betas"]
    np.subtract(g, m, out=tmp)
    tmp *= 1.0 - b1
    m += tmp
    v *= b2
    np.multiply(g, g, out=tmp)
    tmp *= 1.0 - b2
    v += tmp
    np.sqrt(v, out=den)
    den *= 1.0 / math.sqrt(1.0 - b2 ** t)
    den += group["eps"]
    np.divide(m, den, out=tmp)
    tmp *= -group["lr"] / (1.0 - b1 ** t)
    p += tmp
