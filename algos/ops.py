"""Loss pieces shared by the learners, rlax-style: pure tensor functions, shapes checked.

- The E-step of MPO and V-MPO: the weights psi = softmax(A / eta) and the temperature
  (dual) loss L_eta = eta eps + eta log mean exp(A / eta), over a sample axis (V-MPO: the
  kept samples of a batch; MPO: the N actions sampled per state, averaged over states).
- The Lagrangian KL penalty with its dual loss: sg[alpha] KL and alpha (eps - sg[KL]).
- The masked flatten of a [T, B] rollout, the 1/2 squared-error value loss and the
  explained variance of value predictions.

Each function documents its shapes; a shape that does not fit raises ValueError naming
the argument. Everything that is only a weight (advantages, KLs in the dual loss,
targets) is detached here, so a caller cannot forget a stop-gradient.
"""

from __future__ import annotations

import math

import torch


def _fail(name: str, x: torch.Tensor, expected: str) -> None:
    raise ValueError(f"{name}: expected {expected}, got shape {tuple(x.shape)}")


def _check_values(values: torch.Tensor, dim: int) -> int:
    if values.dim() == 0:
        _fail("values", values, "at least one dimension (the samples)")
    n = values.shape[dim]
    if n == 0:
        _fail("values", values, f"at least one sample along dim {dim}")
    return n


def _check_like(name: str, x: torch.Tensor | None, values: torch.Tensor) -> None:
    if x is not None and x.shape != values.shape:
        _fail(name, x, f"the shape of values {tuple(values.shape)}")


def estep_weights(values: torch.Tensor, eta: torch.Tensor | float,
                  log_weights: torch.Tensor | None = None, dim: int = 0) -> torch.Tensor:
    """The E-step's sample weights, no gradient:

        psi_n = w_n exp(A_n / eta) / sum_m w_m exp(A_m / eta)        (softmax along `dim`)

    values A [N, *B] (N samples along `dim`, each column normalised on its own), eta a
    scalar, log_weights log w like values (importance weights, or a prior; None: w = 1).
    The softmax subtracts each column's max, so no exponent overflows. Returns [N, *B].
    """
    _check_values(values, dim)
    _check_like("log_weights", log_weights, values)
    eta = eta.detach() if torch.is_tensor(eta) else eta
    logits = values.detach() / eta
    if log_weights is not None:
        logits = logits + log_weights.detach()
    return torch.softmax(logits, dim=dim)


def temperature_loss(values: torch.Tensor, eta: torch.Tensor | float, epsilon: float,
                     log_weights: torch.Tensor | None = None, dim: int = 0) -> torch.Tensor:
    """The temperature's dual loss (V-MPO eq. for L_eta; MPO's g(eta)), a scalar:

        L_eta = eta eps + mean_B [ eta log (1/N sum_n w_n exp(A_nb / eta)) ]
              = eta eps + mean_B [ M_b + eta log (1/N sum_n w_n exp((A_nb - M_b) / eta)) ]

    with M_b = max_n A_nb, a constant in eta. values A [N, *B] (N samples along `dim`,
    averaged over the other axes B), log_weights log w like values (None: w = 1). The
    mean is over the N samples, also with weights (the paper's rho-weighted sum under the
    empirical distribution of the samples, as rlax's vmpo_compute_weights_and_temperature_loss).

    Why the second form: d/d eta = eps + log mean(...) - sum_n psi_n (A_n - M) / eta. In the
    first form autograd takes sum_n psi_n A_n / eta with psi from exp(A/eta - logsumexp),
    whose float32 rounding at |A|/eta ~ 1e4 (normalised advantages, eta ~ 1e-4) is
    ~1e-4 of psi, times A/eta: an error of order 1 in the gradient. Shifted by M, the
    samples that carry the weight have A - M ~ 0 (tests/test_ops.py holds float32 against
    a float64 closed form).
    """
    n = _check_values(values, dim)
    _check_like("log_weights", log_weights, values)
    a = values.detach()
    m = a.amax(dim=dim, keepdim=True)
    z = (a - m) / eta
    if log_weights is not None:
        z = z + log_weights.detach()
    log_mean = torch.logsumexp(z, dim=dim) - math.log(n)
    return eta * epsilon + (m.squeeze(dim) + eta * log_mean).mean()


def kl_to_uniform(weights: torch.Tensor, dim: int = 0) -> torch.Tensor:
    """KL(psi || uniform over the N samples) = sum_n psi_n log(N psi_n), weights [N, *B]
    along `dim` -> [*B]; at the temperature loss's minimiser it equals eps (MPO: KL(q || pi')
    estimated on pi''s samples)."""
    n = _check_values(weights, dim)
    return (weights * torch.log(n * weights.clamp_min(1e-30))).sum(dim)


def kl_constraint_loss(kl: torch.Tensor, alpha: torch.Tensor, epsilon: float
                       ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The Lagrangian trust region of the M-step, for D constraints at once:

        penalty = sum_d sg[alpha_d] mean_N KL_nd               (moves the policy)
        dual    = sum_d alpha_d (eps - sg[mean_N KL_nd])        (moves alpha)

    kl [N] with a scalar alpha (one constraint), or kl [N, D] with alpha [D]. Their sum
    is V-MPO's L_alpha = mean_N [alpha (eps - sg[KL]) + sg[alpha] KL]; rlax returns the
    two parts as kl_loss and alpha_loss. Returns (penalty, dual, mean_N KL [*D] detached).
    """
    if kl.dim() not in (1, 2) or kl.shape[1:] != alpha.shape:
        _fail("kl", kl, f"[N] with a scalar alpha or [N, D] with alpha [D]; alpha has shape {tuple(alpha.shape)}")
    mean_kl = kl.mean(0)
    penalty = (alpha.detach() * mean_kl).sum()
    dual = (alpha * (epsilon - mean_kl.detach())).sum()
    return penalty, dual, mean_kl.detach()


def masked_flatten(x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """x [T, B, *F] at the steps where valid [T, B] (bool) holds, time-major: [N, *F]
    with N = valid.sum() (the rollout's reset steps dropped)."""
    if valid.dtype != torch.bool or valid.dim() != 2:
        _fail("valid", valid, "a bool mask [T, B]")
    if x.shape[:2] != valid.shape:
        _fail("x", x, f"[T, B, ...] with [T, B] = {tuple(valid.shape)}")
    return x.flatten(0, 1)[valid.reshape(-1)]


def value_loss(value: torch.Tensor, target: torch.Tensor, name: str = "loss/value"
               ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """L_V = 1/2 mean_N (value - sg[target])^2 over value, target [N]. Returns (loss,
    {name: loss detached})."""
    if value.dim() != 1 or target.shape != value.shape:
        _fail("value", value, f"[N] like target {tuple(target.shape)}")
    loss = 0.5 * (value - target.detach()).pow(2).mean()
    return loss, {name: loss.detach()}


def explained_variance(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1 - Var[target - pred] / Var[target] over pred, target [N] (unbiased variances),
    0 where Var[target] is 0 or N < 2; a 0-dim tensor, no gradient. 1 is a perfect fit,
    0 no better than the mean, negative worse."""
    if pred.dim() != 1 or target.shape != pred.shape:
        _fail("pred", pred, f"[N] like target {tuple(target.shape)}")
    pred, target = pred.detach(), target.detach()
    zero = torch.zeros((), dtype=target.dtype, device=target.device)
    if target.numel() < 2:
        return zero
    var_y = target.var()
    return torch.where(var_y > 0, 1 - (target - pred).var() / var_y, zero)


KL_STEP_STATES = 256


def spread(x: torch.Tensor, k: int = KL_STEP_STATES) -> torch.Tensor:
    """About k rows of x [N, ...] spread evenly over it (every ceil(N/k)-th; all of x
    when N <= k): where a diagnostic (the KL an update moved the policy by) is estimated
    on a sample of the batch, so a CNN pays a forward pass of ~k states, not of N."""
    step = max(1, -(-x.shape[0] // k))
    return x[::step]
