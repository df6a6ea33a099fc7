"""PopArt value normalisation (van Hasselt et al. 2016, "Learning values across many
orders of magnitude", arXiv 1602.07714), as V-MPO uses it even for single tasks (Song
et al. 2019, arXiv 1909.12238).

The value network's last layer outputs a *normalised* value n(s); the value in the
units of the returns is V(s) = sigma * n(s) + mu. PopArt keeps running estimates of the
first and second moments of the value targets G with a step size beta,

    mu  <- (1 - beta) mu  + beta mean(G)
    nu  <- (1 - beta) nu  + beta mean(G^2)          sigma = sqrt(nu - mu^2) (clamped)

("ART": adaptively rescaled targets), and on every statistics update rescales the last
linear layer so that the unnormalised outputs are exactly what they were before
("Pop": preserving outputs precisely):

    W' = W * sigma_old / sigma_new,    b' = (sigma_old * b + mu_old - mu_new) / sigma_new.

The value loss is then taken on normalised targets, (n(s) - (G - mu)/sigma)^2, while
advantages stay in unnormalised units, A = G - V(s).

Batch form: one update per learner step folds in the batch means of G and G^2 (the form
of Hessel et al. 2019, "Multi-task deep RL with PopArt", arXiv 1809.04474, PopArt-IMPALA).
Statistics start at mu = 0, nu = 1 (sigma = 1: the identity until targets arrive).

Defaults and where they come from (NOT verified against either paper): beta = 3e-4 and
sigma clamped to [1e-4, 1e6] are attributed to PopArt-IMPALA (Hessel et al. 2019, its
table of hyper-parameters), not to the V-MPO paper's tables; issue 24 read the original
PopArt paper (van Hasselt et al. 2016, sec. 4.1) as beta = 1e-4 with a lower bound of
1e-2 on sigma. Looked up again on 2026-12-06 and still unconfirmed either way: the search
tool's copies of both papers (arXiv abstract pages, ar5iv, the AAAI-19 text) gave their
abstracts and introductions, never the experimental sections or hyper-parameter tables;
DeepMind's rlax (`rlax/_src/pop_art.py`: `popart(num_outputs, step_size, scale_lb,
scale_ub)`) has no defaults and cites no values, and its example (`examples/pop_art.py`,
Q-learning on Catch) uses `pop_art_step_size` 3e-3 with `scale_lb=1e-5, scale_ub=1e5`, its
own choice. Check the PDFs before citing any of these figures. V-MPO's `popart_beta` sets
beta per suite (`algos.vmpo.Config`: 3e-4 by default); the Atari and MinAtar (1e-3), MuJoCo
and classic (1e-2) values are ours. None of these defaults is shown wrong by what was read.

Everything is a pure function of tensors except `PopArt`, which only holds the
statistics (buffers: checkpointed with `state_dict`, moved with `.to`). The output
layer is passed in, never owned, so the network keeps its parameters.
"""

from __future__ import annotations

import torch
from torch import nn


def ema_moments(mean: torch.Tensor, sq_mean: torch.Tensor, targets: torch.Tensor,
                beta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """One step of the running first and second moments.

    mean, sq_mean: [K]; targets: [N] (K = 1) or [N, K]. Returns the new (mean, sq_mean).
    """
    t = targets.reshape(targets.shape[0], -1).to(mean.dtype)
    return (1.0 - beta) * mean + beta * t.mean(0), (1.0 - beta) * sq_mean + beta * t.pow(2).mean(0)


def std_from_moments(mean: torch.Tensor, sq_mean: torch.Tensor, std_min: float = 1e-4,
                     std_max: float = 1e6) -> torch.Tensor:
    """sigma = sqrt(nu - mu^2), clamped to [std_min, std_max]."""
    return (sq_mean - mean.pow(2)).clamp(min=0.0).sqrt().clamp(std_min, std_max)


@torch.no_grad()
def preserve_outputs_(layer: nn.Linear, old_mean: torch.Tensor, old_std: torch.Tensor,
                      new_mean: torch.Tensor, new_std: torch.Tensor) -> None:
    """Rescale `layer` (out_features = K) in place so that new_std * layer'(h) + new_mean
    equals old_std * layer(h) + old_mean for every input h."""
    old_mean, old_std = old_mean.to(layer.weight), old_std.to(layer.weight)
    new_mean, new_std = new_mean.to(layer.weight), new_std.to(layer.weight)
    layer.weight.mul_((old_std / new_std).unsqueeze(-1))
    layer.bias.mul_(old_std).add_(old_mean - new_mean).div_(new_std)


class PopArt(nn.Module):
    """Running statistics of the value targets for `num_outputs` value outputs.

    normalize(G) -> (G - mu) / sigma;  denormalize(n) -> sigma * n + mu;
    update(G, layer) -> fold G into the statistics and rescale `layer` (the value
    network's last linear layer) so that its unnormalised outputs are preserved.
    Inputs are [N] for one output or [N, K]; statistics are kept in float64.
    """

    def __init__(self, num_outputs: int = 1, beta: float = 3e-4, std_min: float = 1e-4,
                 std_max: float = 1e6) -> None:
        super().__init__()
        if not 0.0 < beta <= 1.0:
            raise ValueError(f"beta must be in (0, 1], got {beta}")
        self.beta, self.std_min, self.std_max = beta, std_min, std_max
        self.register_buffer("mean", torch.zeros(num_outputs, dtype=torch.float64))
        self.register_buffer("sq_mean", torch.ones(num_outputs, dtype=torch.float64))

    @property
    def std(self) -> torch.Tensor:
        return std_from_moments(self.mean, self.sq_mean, self.std_min, self.std_max)

    def _shape(self, x: torch.Tensor, stat: torch.Tensor) -> torch.Tensor:
        stat = stat.to(x.dtype)
        return stat.squeeze(0) if stat.numel() == 1 else stat

    def normalize(self, targets: torch.Tensor) -> torch.Tensor:
        return (targets - self._shape(targets, self.mean)) / self._shape(targets, self.std)

    def denormalize(self, outputs: torch.Tensor) -> torch.Tensor:
        return outputs * self._shape(outputs, self.std) + self._shape(outputs, self.mean)

    @torch.no_grad()
    def update(self, targets: torch.Tensor, layer: nn.Linear | None = None) -> None:
        """Fold the targets [N] / [N, K] in (nothing happens for N = 0) and, if a layer
        is given, rescale it to preserve its unnormalised outputs."""
        if targets.shape[0] == 0:
            return
        old_mean, old_std = self.mean.clone(), self.std
        new_mean, new_sq = ema_moments(self.mean, self.sq_mean, targets.detach(), self.beta)
        self.mean.copy_(new_mean)
        self.sq_mean.copy_(new_sq)
        if layer is not None:
            preserve_outputs_(layer, old_mean, old_std, self.mean, self.std)
