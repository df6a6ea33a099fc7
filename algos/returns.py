"""Return and advantage estimators: pure tensor functions, time-major `[T, B]`.

Conventions shared by every function here (see `algos.base.Batch`):

- `values` is `[T+1, B]`: V(obs[0..T]). For a step t that ended by a time limit
  (`truncated[t]`) obs[t+1] is the episode's final observation, so `values[t+1]`
  bootstraps the return; for a step that ended by termination nothing is bootstrapped.
- An episode end at t (terminated or truncated) cuts every sum and recursion there.
- `valid[t]` False marks Gymnasium's NEXT_STEP reset step: not a transition. Its
  outputs are set to 0 (advantages) / its own value (returns) so that nothing from it
  leaks into a loss; callers still mask it out.
"""

from __future__ import annotations

import numpy as np
import torch


def _masks(terminated: torch.Tensor, truncated: torch.Tensor, gamma: float):
    # discount into the next value: 0 after termination, gamma otherwise (truncation
    # bootstraps from V(final obs) = values[t+1]);
    # continuation of the recursion: 0 after any episode end.
    not_term = (~terminated).to(torch.float32)
    not_done = (~(terminated | truncated)).to(torch.float32)
    return gamma * not_term, not_done


def gae(
    rewards: torch.Tensor,
    values: torch.Tensor,
    terminated: torch.Tensor,
    truncated: torch.Tensor,
    gamma: float,
    lam: float,
    valid: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation (Schulman et al. 2016).

    delta_t = r_t + gamma * (1 - term_t) * V(s_{t+1}) - V(s_t)
    A_t     = delta_t + gamma * lam * (1 - done_t) * A_{t+1},   A_T = 0

    rewards, terminated, truncated, valid: [T, B]; values: [T+1, B].
    Returns (advantages [T, B], returns = advantages + values[:-1] [T, B]).
    """
    disc, not_done = _masks(terminated, truncated, gamma)
    deltas = rewards + disc * values[1:] - values[:-1]
    carry = gamma * lam * not_done
    if valid is not None:
        deltas = deltas * valid
        carry = carry * valid  # the reset step's advantage is 0, not a copy of the next one
    adv = backward_recursion(deltas, carry)
    return adv, adv + values[:-1]


def backward_recursion(x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """y_t = x_t + c_t * y_{t+1}, y_T = 0, over [T, B] (a forward recursion is this on
    time-flipped inputs). The time loop runs outside torch for CPU tensors: a torch op
    per step costs ~5 us of dispatch, 10 ms on a 2048-step rollout; a numpy row costs
    ~1.5 us, and for a few envs a loop over Python floats per env (~0.1 us a step) is
    cheaper still (computed in float64, returned in x's dtype)."""
    T, B = x.shape[0], (x.shape[1] if x.dim() > 1 else 1)
    if x.device.type != "cpu" or x.requires_grad or c.requires_grad:
        y = torch.empty_like(x)
        last = torch.zeros_like(x[0])
        for t in range(T - 1, -1, -1):
            last = x[t] + c[t] * last
            y[t] = last
        return y
    xs, cs = x.detach().numpy(), c.detach().numpy()
    y = np.empty_like(xs)
    if B <= 8 and xs.ndim <= 2:
        y2, x2, c2 = y.reshape(T, B), xs.reshape(T, B), cs.reshape(T, B)
        for b in range(B):
            xb, cb, yb = x2[:, b].tolist(), c2[:, b].tolist(), [0.0] * T
            last = 0.0
            for t in range(T - 1, -1, -1):
                last = xb[t] + cb[t] * last
                yb[t] = last
            y2[:, b] = yb
        return torch.from_numpy(y)
    last = np.zeros_like(xs[0])
    for t in range(T - 1, -1, -1):
        last = xs[t] + cs[t] * last
        y[t] = last
    return torch.from_numpy(y)


def nstep_returns(
    rewards: torch.Tensor,
    values: torch.Tensor,
    terminated: torch.Tensor,
    truncated: torch.Tensor,
    gamma: float,
    n: int,
    valid: torch.Tensor | None = None,
) -> torch.Tensor:
    """n-step bootstrapped returns, cut at episode ends and at the end of the sequence.

    G_t = sum_{k=0}^{m-1} gamma^k r_{t+k} + gamma^m V(s_{t+m}) * [episode not terminated]
    with m = min(n, steps to the episode's end, T - t). An episode that ends by
    truncation at t+m-1 bootstraps from V(final obs) = values[t+m]; by termination, not.
    With n >= T every step bootstraps from the end of the sequence (V-MPO's default,
    n = rollout length); n = 1 gives one-step TD targets.

    rewards, terminated, truncated, valid: [T, B]; values: [T+1, B]. Returns [T, B].
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    T = rewards.shape[0]
    disc, not_done = _masks(terminated, truncated, gamma)
    if valid is not None:
        rewards = rewards * valid
    if n >= T:
        # one backward pass: G_t = r_t + disc_t * (done_t ? V(s_{t+1}) : G_{t+1}), G_T = V(s_T),
        # i.e. G_t = x_t + disc_t not_done_t G_{t+1} with the ends folded into x
        x = rewards + disc * (1.0 - not_done) * values[1:]
        x[T - 1] = x[T - 1] + disc[T - 1] * not_done[T - 1] * values[T]
        out = backward_recursion(x, disc * not_done)
    else:
        # G_t^(n) built from the (n-1)-step return of t+1: vectorised over t, n passes.
        # G^(1)_t = r_t + disc_t V_{t+1};  G^(k)_t = r_t + disc_t (done_t ? V_{t+1} : G^(k-1)_{t+1})
        nxt_v = values[1:]
        g = rewards + disc * nxt_v
        for _ in range(n - 1):
            shifted = torch.cat([g[1:], values[T:T + 1]], dim=0)  # beyond T: V(s_T)
            boot = not_done * shifted + (1.0 - not_done) * nxt_v
            g = rewards + disc * boot
        out = g
    if valid is not None:
        out = torch.where(valid, out, values[:-1])
    return out


def retrace(
    rewards: torch.Tensor,
    q_values: torch.Tensor,
    values: torch.Tensor,
    log_rho: torch.Tensor,
    terminated: torch.Tensor,
    truncated: torch.Tensor,
    gamma: float,
    lam: float,
    valid: torch.Tensor | None = None,
) -> torch.Tensor:
    """Retrace(lambda) targets for Q(s_t, a_t) (Munos et al. 2016, "Safe and efficient
    off-policy reinforcement learning").

    Q^ret_t = Q_t + sum_{k>=t} gamma^{k-t} (prod_{i=t+1}^{k} c_i) delta_k,
    delta_k = r_k + gamma * (1 - term_k) * V(s_{k+1}) - Q_k,   c_i = lam * min(1, pi/mu),
    the sum cut at the episode's end (a truncated step bootstraps from V(final obs) =
    values[k+1] and carries no trace beyond) and at the end of the sequence. As a
    recursion: Q^ret_t = r_t + disc_t * (V_{t+1} + not_done_t * c_{t+1} (Q^ret_{t+1} - Q_{t+1})).

    rewards, q_values (Q(s_t, a_t)), log_rho (log pi(a_t|s_t) - log mu(a_t|s_t)),
    terminated, truncated, valid: [T, B]; values: [T+1, B], V(s_t) = E_{a~pi} Q(s_t, a).
    With lam = 0 (or every c = 0) this is the one-step target r_t + disc_t V(s_{t+1}).
    Invalid (reset) steps get their own q_values. Returns [T, B].
    """
    disc, not_done = _masks(terminated, truncated, gamma)
    c = lam * torch.exp(log_rho.clamp(max=0.0))  # lam * min(1, rho), overflow-free
    if valid is not None:
        rewards = rewards * valid
        c = c * valid
    # out_t = r_t + disc_t (V_{t+1} + not_done_t c_{t+1} (out_{t+1} - Q_{t+1})), no correction
    # after the last step: out_t = x_t + k_t out_{t+1} with k_t = disc_t not_done_t c_{t+1}
    k = torch.zeros_like(rewards)
    k[:-1] = disc[:-1] * not_done[:-1] * c[1:]
    x = rewards + disc * values[1:]
    x[:-1] = x[:-1] - k[:-1] * q_values[1:]
    out = backward_recursion(x, k)
    if valid is not None:
        out = torch.where(valid, out, q_values)
    return out
