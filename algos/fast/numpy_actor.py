"""Acting in numpy: an MLP policy (and the observation normaliser) snapshot, checked
against the torch policy it copies.

Acting happens one env step at a time on a batch of a few observations, where each
torch op costs several microseconds of dispatch; the same maths in numpy costs about a
quarter of that (measured: benchmarks/throughput.py). The definition stays torch's:
`algos.networks.policy_act` on `net.policy(normalize(obs))`. This module repeats it for
`MLPTorso` policies with a `GaussianHead` or `CategoricalHead`, and `NumpyActor` proves
the repetition equal to the definition (`algos.fast.guard`):

- at construction, on 8 synthetic observations (standard normal, of the net's input
  shape; a generator of its own);
- on the first observations it acts on after construction, and after every
  `ACTOR_CHECK_EVERY`-th `snapshot()` (the learners snapshot after each update).

A check runs both on the same observations and the same noise, in float64 (the numpy
maths on a float64 copy of the snapshot; `policy_act` with the net's parameters swapped
for float64 copies, so that rounding cannot hide a change nor raise a false alarm), and
compares (tolerance `ACTOR_TOL`): Gaussian - the mean (= the deterministic action) with
`policy_act`'s mode, the std with the head's, the action mu + std * z with
`policy_act`'s sample for the same z (the torch generator's next draw, read and put
back), and the log-prob with the head's `log_prob` of that action, which the learners'
losses use; categorical - the logits, log pi of every action, the sample's log-prob
(`head.log_prob`), the log-prob of the mode, and the log-prob of `policy_act`'s own
sample under the numpy probabilities. (A categorical sample itself cannot be compared
draw for draw: torch's multinomial and the inverse CDF use their uniforms differently.)
A stale snapshot (weights changed, no `snapshot()`) fails a check too. A check consumes
no number from a generator the run uses and changes no parameter.

After a failed check, `__call__` acts through torch (`policy_act`, with torch's
generator, as a learner without a numpy actor does) for the rest of the run, and says
so once on stderr; `guard.stats()` gives the metrics fast/numpy_actor and
fast/numpy_actor_max_rel_err.

ACTOR_TOL = 1e-6: the float64 checks of PPO runs (every update, CartPole, Acrobot,
Pendulum, HalfCheetah) agreed to 4e-15 at most; the log-prob of a sampled action, which
recomputes z = (a - mu) / std from the action, loses |mu| / std digits of z, which at
the smallest std (1e-4, MPO's floor) is still 1e-12.
ACTOR_CHECK_EVERY = 10 snapshots: a check (two float64 torch forwards of the batch and
the numpy maths: ~1 ms at a few envs, benchmarks/ppo_minibatch.py) against an update of
5-100 ms between snapshots for the on-policy learners: ~0.1% of the run; MPO snapshots
after every update (a few ms each).
"""

from __future__ import annotations

import copy

import numpy as np
import torch
import torch.nn as nn

from algos import distributions as D
from algos.fast.guard import Guard, call_with_parameters, max_rel_err
from algos.networks import CategoricalHead, GaussianHead, MLPTorso, policy_act

ACTOR_TOL = 1e-6
ACTOR_CHECK_EVERY = 10
_ACT = {"tanh": np.tanh, "relu": lambda x, out=None: np.maximum(x, 0.0, out=out),
        # elu ignores `out` and returns a new array (callers use the return value)
        "elu": lambda x, out=None: np.where(x > 0, x, np.expm1(np.minimum(x, 0.0)))}


class NumpyActor:
    """A numpy snapshot of an MLP policy for acting; see the module docstring.

    NumpyActor(net, activation, normalize=None): `net` has `policy_torso` (an MLPTorso),
    `head` and `policy(obs) -> params`; `normalize` is the learner's ObsNormalizer (its
    statistics are read at each `snapshot()`, and it is the reference of the checks).
    Without it, `snapshot(mean, inv_std, clip)` gives the statistics.

    __call__(obs [B, *obs], deterministic, rng) -> (action [B, A] or [B], log_prob [B]
    or None): Gaussian mu + std * z, z ~ N(0, I) from `rng`, log pi = -|z|^2/2 - sum log
    std - A/2 log 2pi with z recomputed from the float32 action; categorical by inverse
    CDF. `snapshot()` must follow every change of the weights or statistics.
    """

    def __init__(self, net: nn.Module, activation: str, normalize=None) -> None:
        if not self.supports(net):
            raise ValueError("NumpyActor needs a policy with an MLPTorso and a GaussianHead or "
                             f"CategoricalHead, got {type(net.policy_torso).__name__} and "
                             f"{type(net.head).__name__}")
        if activation not in _ACT:
            raise ValueError(f"NumpyActor: activation must be one of {sorted(_ACT)}, got {activation!r}")
        self.net, self.act_fn, self.normalize = net, _ACT[activation], normalize
        self.guard = Guard("numpy_actor", "the numpy actor (algos/fast/numpy_actor.py)",
                           "acting through the torch policy", ACTOR_TOL, ACTOR_CHECK_EVERY)
        self._check_rng = np.random.default_rng(0)  # the checks' own: never the run's
        self.dtype = np.float32  # of the snapshot and the actions (a check's copy: float64)
        self._pending = False
        self.snapshots = 0
        self.snapshot()
        self.check(self._synthetic_obs(), "at construction (synthetic observations)")

    @staticmethod
    def supports(net: nn.Module) -> bool:
        return (isinstance(net.policy_torso, MLPTorso)
                and isinstance(net.head, (GaussianHead, CategoricalHead)))

    def snapshot(self, obs_mean: np.ndarray | None = None, obs_inv_std: np.ndarray | None = None,
                 obs_clip: float = 10.0) -> None:
        """Copy the current weights (and the normaliser's statistics); every
        ACTOR_CHECK_EVERY-th snapshot makes the next call a check."""
        norm = self.normalize
        if obs_mean is None and norm is not None and norm.enabled:
            obs_mean, obs_inv_std, obs_clip = (norm._mean.cpu().numpy(), norm._inv_std.cpu().numpy(),
                                               norm.clip)
        with torch.no_grad():
            linears = [m for m in self.net.policy_torso.net if isinstance(m, nn.Linear)]
            self.layers = [(m.weight.detach().cpu().numpy().T.copy(), m.bias.detach().cpu().numpy().copy())
                           for m in linears]
            head = self.net.head
            self.discrete = head.discrete
            if head.discrete:
                self.out = (head.logits.weight.cpu().numpy().T.copy(), head.logits.bias.cpu().numpy().copy())
            else:
                self.out = (head.mu.weight.cpu().numpy().T.copy(), head.mu.bias.cpu().numpy().copy())
                self.state_dependent_std = head.state_dependent_std
                if head.state_dependent_std:
                    self.std_layer = (head.std.weight.cpu().numpy().T.copy(), head.std.bias.cpu().numpy().copy())
                    self.min_std = head.min_std
                else:
                    self.log_std = head.log_std.detach().cpu().numpy().copy()
                    self.std = np.exp(self.log_std)
                    self.log_std_sum = float(self.log_std.sum())
        self.obs_mean, self.obs_inv_std, self.obs_clip = obs_mean, obs_inv_std, obs_clip
        self.snapshots += 1
        if self.guard.due():
            self._pending = True

    # -- acting ---------------------------------------------------------------------
    def __call__(self, obs: np.ndarray, deterministic: bool, rng: np.random.Generator):
        if self._pending:
            self._pending = False
            self.check(obs, f"on the observations acted on after snapshot {self.snapshots}")
        if not self.guard.active:
            return self.act_torch(obs, deterministic)
        out, feat = self._forward(obs)
        if self.discrete:
            if deterministic:
                return out.argmax(-1), None
            a, logp, _ = self._categorical(out, rng.random((out.shape[0], 1), dtype=np.float32))
            return a, logp
        if deterministic:
            return out, None
        return self._gaussian(out, feat, rng.standard_normal(out.shape, dtype=np.float32))

    def act_torch(self, obs: np.ndarray, deterministic: bool):
        """The definition: `policy_act` on the normalised observations, torch's generator."""
        with torch.inference_mode():
            action, logp = policy_act(self.net, self._normalized_torch(self._torch_obs(obs)), deterministic)
        return action.cpu().numpy(), (None if logp is None else logp.cpu().numpy())

    # -- the numpy maths (in-place ufuncs: at a batch of one env each op is ~1 us) ----
    def _forward(self, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """obs [B, *obs] -> (mu or logits [B, K], torso features [B, F])."""
        x = obs.reshape(obs.shape[0], -1).astype(self.dtype, copy=False)
        if self.obs_mean is not None:
            x = np.subtract(x, self.obs_mean)
            x *= self.obs_inv_std
            np.minimum(x, self.obs_clip, out=x)  # np.clip's Python wrapper costs more
            np.maximum(x, -self.obs_clip, out=x)
        for w, b in self.layers:
            x = x @ w
            x += b
            x = self.act_fn(x, out=x)
        out = x @ self.out[0]
        out += self.out[1]
        return out, x

    def _std(self, feat: np.ndarray):
        """(std [B, A] or [A], sum log std [B] or a float)."""
        if not self.state_dependent_std:
            return self.std, self.log_std_sum
        s = feat @ self.std_layer[0] + self.std_layer[1]
        std = np.logaddexp(0.0, s) + self.min_std  # softplus
        return std, np.log(std).sum(-1)

    def _gaussian(self, out: np.ndarray, feat: np.ndarray, noise: np.ndarray):
        """(action, log-prob) from the standard-normal `noise` [B, A] (overwritten)."""
        std, log_std_sum = self._std(feat)
        a = noise
        a *= std
        a += out
        # z recomputed from the float32 action, as the learner will: with a small std,
        # mu + std*z loses digits of z
        z = np.subtract(a, out)
        z /= std
        np.square(z, out=z)
        logp = z.sum(-1)
        logp *= -0.5
        logp -= log_std_sum + 0.5 * D.LOG_2PI * out.shape[-1]
        return a, logp.astype(self.dtype, copy=False)

    @staticmethod
    def _categorical(out: np.ndarray, u: np.ndarray):
        """(action [B], its log-prob [B], log pi of every action [B, K]) by inverse CDF
        from uniforms u [B, 1]."""
        logp_all = out - out.max(-1, keepdims=True)
        logp_all -= np.log(np.exp(logp_all).sum(-1, keepdims=True))
        cdf = np.exp(logp_all).cumsum(-1)
        a = np.minimum((cdf < u * cdf[:, -1:]).sum(-1), out.shape[-1] - 1)
        return a, np.take_along_axis(logp_all, a[:, None], -1)[:, 0], logp_all

    # -- the guard ----------------------------------------------------------------------
    def check(self, obs: np.ndarray, where: str) -> bool:
        """Compare with the torch definition on `obs` (see the module docstring); returns
        whether the numpy path may still be used."""
        if not self.guard.active:
            return False
        try:
            fast, ref = self._compare(obs)
        except Exception as e:  # noqa: BLE001 - any failure means: not shown equal
            self.guard.step_aside(f"could not be checked {where}: {type(e).__name__}: {e}")
            return False
        return self.guard.record(max_rel_err(fast, ref), where)

    def _compare(self, obs: np.ndarray) -> tuple[list, list]:
        """(numpy blocks, torch blocks), both in float64: the numpy maths on a float64
        copy of the snapshot, torch's with the net's parameters as float64 copies."""
        net, head, n = self.net, self.net.head, obs.shape[0]
        me = self._float64_copy()
        obs64 = obs.astype(np.float64)
        params64 = {k: v.detach().to(torch.float64) for k, v in net.named_parameters()}

        def torch_side(o):  # everything the definition says about these observations
            o = self._normalized_torch(o)
            params = net.policy(o)
            mode, _ = policy_act(net, o, True)
            state = _rng_state(o.device)
            a, logp = policy_act(net, o, False)
            _set_rng_state(o.device, state)
            noise = None if head.discrete else torch.randn_like(params["mu"])  # policy_act's draw
            _set_rng_state(o.device, state)  # the run's generator as it was
            return params, mode, a, logp, noise

        def log_prob(a) -> np.ndarray:  # the head's log pi(a), as the losses compute it
            return call_with_parameters(net, params64, lambda a_: head.log_prob(
                params, torch.as_tensor(a_).to(dev)), a).cpu().numpy()

        with torch.inference_mode():
            params, mode_t, a_t, logp_t, noise = call_with_parameters(
                net, params64, torch_side, self._torch_obs(obs64, torch.float64))
            dev = a_t.device
            out, feat = me._forward(obs64)
            if head.discrete:
                a, logp, logp_all = me._categorical(out, self._check_rng.random((n, 1)))
                every = [log_prob(np.full(n, k)) for k in range(out.shape[1])]
                a_t_np = a_t.cpu().numpy()
                fast = [out, logp_all, logp, log_prob(out.argmax(-1)), logp_all[np.arange(n), a_t_np]]
                ref = [params["logits"].cpu().numpy(), np.stack(every, -1), log_prob(a),
                       log_prob(mode_t.cpu().numpy()), logp_t.cpu().numpy()]
            else:
                std, _ = me._std(feat)
                a, logp = me._gaussian(out, feat, noise.cpu().numpy().copy())
                fast = [out, np.broadcast_to(std, out.shape), a, logp]
                ref = [mode_t.cpu().numpy(), params["std"].cpu().numpy(), a_t.cpu().numpy(), log_prob(a)]
        return fast, ref

    def _float64_copy(self) -> NumpyActor:
        """This actor with its snapshot in float64 (the same values, exactly)."""
        me = copy.copy(self)
        me.dtype = np.float64
        f64 = lambda x: None if x is None else np.asarray(x, np.float64)  # noqa: E731
        me.layers = [(f64(w), f64(b)) for w, b in self.layers]
        me.out = (f64(self.out[0]), f64(self.out[1]))
        me.obs_mean, me.obs_inv_std = f64(self.obs_mean), f64(self.obs_inv_std)
        if not self.discrete:
            if self.state_dependent_std:
                me.std_layer = (f64(self.std_layer[0]), f64(self.std_layer[1]))
            else:
                me.std = np.exp(f64(self.log_std))  # not the float32 exp of the snapshot
                me.log_std_sum = float(f64(self.log_std).sum())
        return me

    def _torch_obs(self, obs: np.ndarray, dtype=torch.float32) -> torch.Tensor:
        """Observations as the torch path takes them: on the net's device, floats as
        `dtype` (the numpy path's float32 cast; float64 in a check)."""
        o = torch.from_numpy(obs).to(next(self.net.parameters()).device)
        return o.to(dtype) if o.is_floating_point() else o

    def _normalized_torch(self, o: torch.Tensor) -> torch.Tensor:
        """Through the learner's normaliser (or the snapshot's statistics without one)."""
        if self.normalize is not None:
            return self.normalize(o)
        if self.obs_mean is None:
            return o
        mean, inv_std = (torch.from_numpy(x).to(o.device) for x in (self.obs_mean, self.obs_inv_std))
        return ((o - mean) * inv_std).clamp(-self.obs_clip, self.obs_clip)

    def _synthetic_obs(self) -> np.ndarray:
        if self.normalize is not None:
            shape = tuple(self.normalize.rms.mean.shape)
        else:
            spec = getattr(self.net, "spec", None)
            shape = tuple(spec.obs_shape) if spec is not None else (self.layers[0][0].shape[0],)
        return self._check_rng.standard_normal((8, *shape)).astype(np.float32)


def _rng_state(device: torch.device):
    """The state of the generator that sampling on `device` draws from."""
    if device.type == "cuda":
        return torch.cuda.get_rng_state(device)
    return torch.get_rng_state()


def _set_rng_state(device: torch.device, state) -> None:
    if device.type == "cuda":
        torch.cuda.set_rng_state(state, device)
    else:
        torch.set_rng_state(state)
