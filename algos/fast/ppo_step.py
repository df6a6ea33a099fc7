"""PPO's minibatch epochs in numpy, used only while their gradient equals autograd's of
the learner's torch loss (`ppo.Learner.minibatch_loss`, i.e. `ppo_loss`).

On the CPU a minibatch step of PPO's 64x64 MLP is bound by autograd's per-op dispatch,
not by arithmetic (320 steps of 64 samples per MuJoCo rollout). `NumpyPPOStep` takes
the same steps - the same permutations, minibatches, advantage normalisation, gradient
clipping and Adam (`FlatAdam`) - with the forward and backward in numpy
(`NumpyActorCritic`), back-propagating dL/dlog pi and dL/dV from `ppo_loss_grad` and
dL/dH = -c_e. Figures: benchmarks/ppo_minibatch.py.

The definition is the torch loss. `check` computes one minibatch's gradient with respect
to every parameter tensor twice from the current parameters, both in float64: autograd
of `learner.minibatch_loss` (the function the autograd path back-propagates, called
with the same arguments and the run's config, on the same net object whose parameters
are swapped for float64 copies for the call: any term added to `ppo_loss` or to its
call is in it) and the numpy backward on a float64 twin of the net. The guard's error
(`algos.fast.guard`: per parameter tensor, relative to its largest entry) must be at
most STEP_TOL. Checks run:

- at construction, on a synthetic minibatch drawn from the env spec with a generator of
  its own (standard-normal observations, actions, values, advantages and returns; old
  log-probs shifted by 0.3 N(0, 1) so that ratios fall on both sides of the clip range);
- at the first update, and then at the first update after every STEP_CHECK_EVERY
  minibatch steps, on that update's first real minibatch (the first epoch's first
  `minibatch_size` indices of its permutation), before any step of the update, so that
  an update that fails the check is taken whole by autograd with the same permutations.

A check draws no random number the run uses and changes neither the parameters nor the
optimiser's state (it writes only the twin's buffers).

Why float64: in float32 the two gradients differ by rounding of differently ordered
sums, which is relative to the summands, not to the sum. Where a gradient cancels (the
value head's bias, sum of (V - R), once V fits), it reached 1.9e-4 of the tensor's
largest entry (CartPole-v1 at update 66 and 123, seeds 0 and 1) - autograd against
itself with the rows reversed differs by 2.3e-5 - so no float32 tolerance separates
rounding from a small term. In float64 the same checks measured at most 5.7e-11 (CartPole,
value-head cancellation) and ~1e-14 elsewhere (every update of PPO runs on CartPole,
Acrobot with clip_value, Pendulum and HalfCheetah, 50-100k steps each).
STEP_TOL = 1e-6: 1e4x over the worst rounding seen, and a term that moves any
tensor's gradient by a millionth of its scale is seen. (That the float32 numpy step
equals the float32 autograd step to float32 rounding is test_numpy_ac's.)
STEP_CHECK_EVERY = 2000 steps (every 7th MuJoCo update of 320 steps, every 4th Pendulum
one of 640): a check costs about 20 numpy steps (the float64 autograd forward and
backward dominate; benchmarks/ppo_minibatch.py), under 1% of the steps between checks;
the first update is always checked.
"""

from __future__ import annotations

import copy

import numpy as np
import torch

from algos.fast.flat_adam import flatten_
from algos.fast.guard import Guard, call_with_parameters, max_rel_err
from algos.fast.numpy_ac import NumpyActorCritic

STEP_TOL = 1e-6
STEP_CHECK_EVERY = 2000


def ppo_loss_grad(
    log_ratio: np.ndarray,
    advantages: np.ndarray,
    value: np.ndarray,
    old_value: np.ndarray,
    returns: np.ndarray,
    clip_coef: float,
    vf_coef: float,
    clip_value: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """dL/dlog pi and dL/dV [N] of `ppo_loss` (its entropy term has dL/dH = -c_e), by hand,
    in numpy: the minibatch step of `NumpyActorCritic` back-propagates them.

    d/dlog pi of -(1/N) min(r A, clip(r, 1-eps, 1+eps) A) is -(1/N) r A where the
    unclipped term is the minimum (A > 0 and r <= 1+eps, or A < 0 and r >= 1-eps; where
    both terms are equal inside the clip range torch splits the slope between them,
    summing to the same) and 0 elsewhere. dL_V/dV = c_v (V - R) / N; with clipping, 0
    where V is outside V_old +- eps and the clipped error is the larger (the clipped value
    is then constant).
    """
    n = log_ratio.shape[0]
    ratio = np.exp(log_ratio)
    unclipped = np.where(advantages > 0, ratio <= 1.0 + clip_coef, ratio >= 1.0 - clip_coef)
    g_logp = ratio * advantages
    g_logp *= unclipped
    g_logp *= -1.0 / n
    err = value - returns
    if clip_value:
        # inside the clip range the clipped value is V itself (whatever the rounding of
        # V_old + (V - V_old)): the full slope; outside it, only where the unclipped
        # error is the larger
        moved = value - old_value
        inside = np.abs(moved) <= clip_coef
        err_clipped = old_value + np.clip(moved, -clip_coef, clip_coef) - returns
        err *= inside | (np.abs(err) >= np.abs(err_clipped))
    err *= vf_coef / n
    return g_logp, err


def normalized_chunks(x: np.ndarray, size: int) -> np.ndarray:
    """x [N] standardised within each consecutive chunk of `size` (the last may be
    shorter): (x - mean) / (std + 1e-8), std unbiased as torch's; a chunk of one is
    left as it is. All full chunks in one vectorised pass."""
    out = np.empty_like(x)
    full = (x.shape[0] // size) * size
    if full:
        c = x[:full].reshape(-1, size)
        out[:full].reshape(-1, size)[:] = (c - c.mean(1, keepdims=True)) / (
            c.std(1, ddof=1, keepdims=True) + 1e-8)
    tail = x[full:]
    if tail.shape[0] > 1:
        out[full:] = (tail - tail.mean()) / (tail.std(ddof=1) + 1e-8)
    else:
        out[full:] = tail
    return out


class NumpyPPOStep:
    """PPO's epochs in numpy for `learner` (a `ppo.Learner` whose `opt` is a FlatAdam);
    see the module docstring. `allowed(...)` at the start of each update says whether
    it may take the update's epochs (`epochs(...)`), checking first when one is due."""

    def __init__(self, learner) -> None:
        self.learner = learner
        cfg = learner.cfg
        self.nac = NumpyActorCritic(learner.net, cfg.activation, cfg.minibatch_size)
        # the checks' float64 copy of the net (its own flat parameter and gradient vectors)
        self.twin = copy.deepcopy(learner.net).to(torch.float64)
        self.twin_flat = flatten_(list(self.twin.parameters()))
        self.twin_nac = NumpyActorCritic(self.twin, cfg.activation, max(2, cfg.minibatch_size))
        self.guard = Guard("ppo_numpy_step", "PPO's numpy minibatch step (algos/fast/ppo_step.py)",
                           "autograd of ppo_loss", STEP_TOL, STEP_CHECK_EVERY)
        self._steps = 0  # minibatch steps since the last call of `allowed`
        *synthetic, shift = self._synthetic_minibatch()
        self.check(*synthetic, where="at construction (a synthetic minibatch)", logp_shift=shift)
        self.guard.due(STEP_CHECK_EVERY)  # and the first update's real minibatch too

    @staticmethod
    def supports(learner) -> bool:
        return NumpyActorCritic.supports(learner.net, learner.cfg.activation)

    def allowed(self, batch: tuple[torch.Tensor, ...], first: torch.Tensor, where: str) -> bool:
        """batch = (obs, actions, old_v, adv, ret) of the update, first = the indices of
        its first minibatch: checked there when a check is due."""
        due = self.guard.due(self._steps)
        self._steps = 0
        if due:
            self.check(*(x[first] for x in batch), where=where)
        return self.guard.active

    # -- the check ----------------------------------------------------------------------
    def check(self, obs, actions, old_v, adv, ret, where: str, logp_shift=None) -> bool:
        """Gradients of one minibatch (tensors [n, ...]; advantages as the update has
        them, normalised inside by each path) from the current parameters, in float64:
        autograd of `learner.minibatch_loss` with the net's parameters swapped for float64
        copies, and the numpy backward on the float64 twin; the guard takes the error.
        An exception on the torch side (a loss that cannot run in float64) fails it."""
        learner, cfg = self.learner, self.learner.cfg
        net = learner.net
        with torch.no_grad():
            self.twin_flat.copy_(learner.opt.flat)
        params = dict(self.twin.named_parameters())
        obs, actions, old_v, adv, ret = (x.double() if x.is_floating_point() else x
                                         for x in (obs, actions, old_v, adv, ret))

        def torch_side(obs, actions, old_v, adv, ret):
            with torch.no_grad():  # the behaviour log-probs, as the autograd path takes them
                old_logp = net.head.log_prob(net.policy(obs), actions)
            if logp_shift is not None:
                old_logp = old_logp + logp_shift.double()
            return old_logp, learner.minibatch_loss(obs, actions, old_logp, old_v, adv, ret)

        try:
            old_logp, loss = call_with_parameters(net, params, torch_side, obs, actions, old_v, adv, ret)
            ref = torch.autograd.grad(loss, list(params.values()), allow_unused=True)
        except Exception as e:  # noqa: BLE001 - any failure means: not shown equal
            self.guard.step_aside(f"could not be checked {where}: the loss in float64 raised "
                                  f"{type(e).__name__}: {e}")
            return False
        ref = [np.zeros(p.shape) if g is None else g.numpy() for g, p in zip(ref, params.values())]
        a = adv.numpy()
        self._grad(self.twin_nac, obs.numpy(), actions.numpy(), old_logp.numpy(), old_v.numpy(),
                   normalized_chunks(a, a.shape[0]) if cfg.norm_adv else a, ret.numpy())
        fast = [p.grad.numpy() for p in params.values()]
        return self.guard.record(max_rel_err(fast, ref), where)

    def _synthetic_minibatch(self) -> tuple[torch.Tensor, ...]:
        """(obs, actions, old_v, adv, ret, a shift of the old log-probs), [n, ...]."""
        spec, n = self.learner.spec, max(2, self.learner.cfg.minibatch_size)
        g = torch.Generator().manual_seed(0)  # the check's own generator
        obs = torch.randn(n, *spec.obs_shape, generator=g)
        actions = (torch.randint(0, spec.action_dim, (n,), generator=g) if spec.discrete
                   else torch.randn(n, spec.action_dim, generator=g))
        old_v, adv, ret, shift = (torch.randn(n, generator=g) for _ in range(4))
        return obs, actions, old_v, adv, ret, 0.3 * shift

    # -- the epochs ---------------------------------------------------------------------
    def _grad(self, nac, obs, actions, old_logp, old_v, adv, ret) -> None:
        """dL/dtheta of one minibatch (numpy [n, ...]; adv normalised) into nac's net's
        gradient."""
        cfg = self.learner.cfg
        _, v = nac.forward(obs)
        log_ratio = nac.log_prob(actions)
        log_ratio -= old_logp
        g_logp, g_v = ppo_loss_grad(log_ratio, adv, v, old_v, ret, cfg.clip_coef, cfg.vf_coef,
                                    cfg.clip_value)
        nac.backward(g_logp, g_v, -cfg.ent_coef)

    def epochs(self, obs, actions, old_v, adv, ret, perms) -> tuple[torch.Tensor, list[float]]:
        """The autograd path's epochs (`ppo.Learner._epochs_torch`: the same permutations
        `perms`, minibatches, normalisation, clipping and Adam) in numpy; returns (old
        log-probs [N], grad norms)."""
        cfg, nac, opt = self.learner.cfg, self.nac, self.learner.opt
        n, mb = obs.shape[0], cfg.minibatch_size
        obs_np, act_np = obs.numpy(), actions.numpy()
        old_v_np, adv_np, ret_np = old_v.numpy(), adv.numpy(), ret.numpy()
        old_logp = np.empty(n, np.float32)
        for i in range(0, n, mb):
            nac.forward(obs_np[i:i + mb])
            old_logp[i:i + mb] = nac.log_prob(act_np[i:i + mb])
        grad_norms = []
        for perm in perms:
            perm = perm.numpy()
            e_obs, e_act, e_logp, e_v, e_ret = (
                x[perm] for x in (obs_np, act_np, old_logp, old_v_np, ret_np))
            e_adv = normalized_chunks(adv_np[perm], mb) if cfg.norm_adv else adv_np[perm]
            for i in range(0, n, mb):
                s = slice(i, i + mb)
                self._grad(nac, e_obs[s], e_act[s], e_logp[s], e_v[s], e_adv[s], e_ret[s])
                grad_norms.append(opt.clip_grad_norm_(cfg.max_grad_norm))
                opt.step()
        self._steps += len(grad_norms)
        return torch.from_numpy(old_logp), grad_norms
