"""Policy distributions and their KL divergences, in closed form.

Diagonal Gaussians are given by (mu, std), each `[B, A]`; categoricals by logits
`[B, N]`. Every KL here is summed over action dimensions and returns `[B]`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

LOG_2PI = math.log(2.0 * math.pi)


def gaussian_log_prob(mu: torch.Tensor, std: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
    """log N(action; mu, diag(std^2)) summed over the last dim: [..., A] -> [...]."""
    z = (action - mu) / std
    return (-0.5 * z.pow(2) - torch.log(std) - 0.5 * LOG_2PI).sum(-1)


def gaussian_entropy(std: torch.Tensor) -> torch.Tensor:
    """Entropy of a diagonal Gaussian, summed over the last dim: [..., A] -> [...]."""
    return (0.5 + 0.5 * LOG_2PI + torch.log(std)).sum(-1)


def gaussian_kl(mu_p, std_p, mu_q, std_q) -> torch.Tensor:
    """KL(N(mu_p, std_p) || N(mu_q, std_q)) for diagonal Gaussians, [B, A] -> [B].

    KL = sum_i log(sq_i/sp_i) + (sp_i^2 + (mp_i - mq_i)^2) / (2 sq_i^2) - 1/2
    (per dimension, so no product of precisions that could overflow).
    """
    var_ratio = (std_p / std_q).pow(2)
    mean_term = ((mu_p - mu_q) / std_q).pow(2)
    return 0.5 * (var_ratio + mean_term - 1.0 - torch.log(var_ratio)).sum(-1)


def gaussian_kl_decoupled(
    mu_old: torch.Tensor, std_old: torch.Tensor, mu: torch.Tensor, std: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The decoupled KL of Abdolmaleki et al. 2018b (V-MPO appendix), each [B].

    kl_mean = KL(N(mu_old, std_old) || N(mu, std_old))
            = sum_i (mu_i - mu_old_i)^2 / (2 std_old_i^2)          (divided by sigma_old^2)
    kl_std  = KL(N(mu_old, std_old) || N(mu_old, std))
            = sum_i log(std_i/std_old_i) + std_old_i^2/(2 std_i^2) - 1/2

    Gradients flow into (mu, std) only through their own term: kl_mean depends on mu
    (and the old parameters), kl_std on std.
    """
    kl_mean = 0.5 * ((mu - mu_old) / std_old).pow(2).sum(-1)
    var_ratio = (std_old / std).pow(2)
    kl_std = 0.5 * (var_ratio - 1.0 - torch.log(var_ratio)).sum(-1)
    return kl_mean, kl_std


def categorical_log_prob(logits: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
    """log pi(action) for logits [..., N] and integer actions [...]."""
    logp = F.log_softmax(logits, dim=-1)
    return logp.gather(-1, action.long().unsqueeze(-1)).squeeze(-1)


def categorical_entropy(logits: torch.Tensor) -> torch.Tensor:
    logp = F.log_softmax(logits, dim=-1)
    return -(logp.exp() * logp).sum(-1)


def categorical_kl(logits_p: torch.Tensor, logits_q: torch.Tensor) -> torch.Tensor:
    """KL(Cat(p) || Cat(q)) = sum_a p_a (log p_a - log q_a), [B, N] -> [B]."""
    logp = F.log_softmax(logits_p, dim=-1)
    logq = F.log_softmax(logits_q, dim=-1)
    return (logp.exp() * (logp - logq)).sum(-1)
