"""MPO's targets, fast: the target critic on N sampled actions per state, checked against
its definition `QCritic.sampled` (the critic's forward on each state repeated N times).

An MPO update evaluates Q'(s_m, a_nm) for N = 20 actions of each of 2B = 512 states: ~90%
of the update's matrix products at the defaults (benchmarks/mpo_update.py --roofline).
The fast path splits the first layer into its observation and action columns,

    W [s; a] + b = (W_s s + b) + W_a a,

so W_s s is computed once per state instead of once per sample and no [N*M, O+A] input
is built; activations run in place, and on the CPU a few samples at a time (~1k rows x H
activations stay in the core's cache: 1.5x faster than one pass over all N*M rows on the
AMD EPYC it was tuned on).

`SampledQ` uses it only while it equals the definition on the run's own critic and
inputs (`algos.fast.guard`): at construction on a synthetic batch, then on the real
batch of the first update and of every `EVERY`-th after it. A check's error is
max|fast - definition| / max|definition| over the [N, M] values; float32 rounding of the
reordered sums keeps it near 1e-7 (at most 3.8e-7 over the 4,000 checks of an MPO
Pendulum-v1 run checking every update), so TOL = 1e-4 leaves a margin of over 100x while
any change to the critic's maths (a patched forward, a layer type the split does not
know) is orders of magnitude above it. A check adds one plain evaluation of the targets
(the targets are ~60% of an update here, the plain forward 1.1-1.3x the split): about
three quarters of an update every 500 updates, under 0.2% of the run.
On a mismatch the definition is used for the rest of the run, one line goes to stderr
and the metric fast/sampled_q turns 0.

What pays (benchmarks/mpo_update.py --targets: whole updates in paired blocks, HalfCheetah
shapes, MPO's MuJoCo defaults, one core of the Intel Xeon here, two runs): the split path
is 1.11x and 1.28x faster than the plain forward, so it stays. oneDNN's fused linear +
ReLU for the hidden layer (a private op, which this path used before) measured 1.025x and
1.020x over addmm with quartiles spanning 1: it does not pay and is gone. torch.compile of
the split measured 1.07x and 1.03x (quartiles 0.89-1.16), within the noise, for 5-6 s
of compiling per process and per batch shape: not used.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from algos.fast.guard import Guard, max_rel_err
from algos.networks import QCritic

# in-place versions of the critic's activations (networks.ACTIVATIONS)
_INPLACE = {nn.ReLU: torch.relu_, nn.Tanh: torch.tanh_, nn.ELU: lambda x: F.elu_(x)}

ROWS = 1024
"""Rows per pass on the CPU (samples x states): the activations of a pass stay in cache."""


def sampled_split(critic: QCritic, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """Q(s_m, a_nm) without gradient, obs [M, *obs], actions [N, M, A] -> [N, M]: the first
    layer split into observation and action columns (module docstring), then the hidden
    layers (addmm + in-place activation) and the last layer as a matrix-vector product."""
    with torch.no_grad():
        N, M = actions.shape[0], obs.shape[0]
        linears = [m for m in critic.net if isinstance(m, nn.Linear)]
        if len(linears) == 1:  # no hidden layer: nothing to share
            return critic.sampled(obs, actions)
        act_ = _INPLACE.get(type(critic.net[1]), critic.net[1])  # an unlisted one: out of place
        first, last = linears[0], linears[-1]
        o = obs.flatten(1)
        k = o.shape[1]
        w = first.weight
        s = F.linear(o, w[:, :k], first.bias)  # [M, H]: once per state
        a = critic.scale_action(actions)
        w_a = w[:, k:].t()
        out = torch.empty(N, M, device=obs.device, dtype=s.dtype)
        per = max(1, ROWS // max(M, 1)) if obs.device.type == "cpu" else N
        for i in range(0, N, per):
            h = torch.matmul(a[i:i + per], w_a)  # [n, M, H]
            h += s  # broadcast over the n samples
            h = act_(h.view(-1, h.shape[-1]))
            for layer in linears[1:-1]:
                h = act_(torch.addmm(layer.bias, h, layer.weight.t()))
            torch.addmv(last.bias, h, last.weight[0], out=out[i:i + per].view(-1))
        return out


class SampledQ:
    """`critic.sampled(obs, actions)` through `sampled_split` while the checks hold.

    `__call__(critic, obs [M, *obs], actions [N, M, A]) -> [N, M]`, no gradient; one call
    per update (the learner's target computation). `stats()`: the guard's metrics."""

    EVERY = 500
    """Calls (updates) between checks on the run's own batch, after the first call's."""
    TOL = 1e-4
    """Largest accepted max|fast - definition| / max|definition| (module docstring)."""

    def __init__(self) -> None:
        self.guard = Guard("sampled_q", "the sampled-action critic (split first layer)",
                           "the critic's forward on repeated states", self.TOL, self.EVERY)
        self.calls = 0

    def check_at_construction(self, critic: QCritic, num_samples: int, states: int = 8) -> None:
        """A synthetic batch: standard-normal observations and actions spread over 1.5x
        the action bounds (some clipped), from a private generator (the run's random
        numbers are not touched)."""
        g = torch.Generator().manual_seed(0)
        obs_dim = critic.net[0].in_features - critic.low.shape[0]
        obs = torch.randn(states, obs_dim, generator=g)
        u = torch.rand(num_samples, states, critic.low.shape[0], generator=g) * 3 - 1.5
        finite = critic.scale < 1e29
        actions = torch.where(finite, critic.center + u * critic.scale, u)
        dev = critic.low.device
        self._check(critic, obs.to(dev), actions.to(dev), "at construction (a synthetic batch)")
        self.guard.due(self.EVERY)  # and the first update's real batch is checked too

    def __call__(self, critic: QCritic, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if not self.guard.active:
            return critic.sampled(obs, actions)
        capturing = obs.is_cuda and torch.cuda.is_current_stream_capturing()
        if not capturing and self.guard.due():  # a captured graph would freeze the branch
            return self._check(critic, obs, actions, f"at update {self.calls}")
        return sampled_split(critic, obs, actions)

    def _check(self, critic: QCritic, obs: torch.Tensor, actions: torch.Tensor, where: str
               ) -> torch.Tensor:
        with torch.no_grad():
            fast = sampled_split(critic, obs, actions)
            ref = critic.sampled(obs, actions)
        err = max_rel_err([fast.cpu().numpy()], [ref.cpu().numpy()])
        return fast if self.guard.record(err, where) else ref

    def stats(self) -> dict[str, float]:
        return self.guard.stats()
