"""What the on-policy learners (PPO, TRPO, V-MPO) share: acting, normalisation, the
rollout they hold, checkpoint plumbing. Each subclass writes only `learn(prepared)`.

The cycle per rollout: `act` (stats frozen) -> `observe(batch)` -> `update()` ->
`learn(prepare(batch))` with the same frozen stats -> fold the rollout into the
observation normaliser and the reward scaler.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from algos.base import Batch, EnvSpec
from algos.fast.guard import Guard
from algos.fast.numpy_actor import NumpyActor
from algos.networks import ActorCritic, policy_act
from algos.normalize import ObsNormalizer, RewardScaler


@dataclass
class OnPolicyConfig:
    """Fields every on-policy learner has (defaults: the MuJoCo setting)."""

    rollout_length: int = 2048
    """Steps per env in each rollout (PPO paper Table 3, MuJoCo horizon 2048)."""
    gamma: float = 0.99
    """Discount (PPO paper Table 3)."""
    hidden: tuple[int, ...] = (64, 64)
    """Torso hidden sizes, the same for every algorithm (PPO paper sec. 6.1; CleanRL)."""
    activation: str = "tanh"
    """Torso activation: tanh, relu or elu (PPO paper sec. 6.1)."""
    init_std: float = 1.0
    """Initial Gaussian std (log-std 0: CleanRL, SB3)."""
    state_dependent_std: bool = False
    """Gaussian std from a network output instead of a free vector (PPO paper: free)."""
    norm_obs: bool = True
    """Running observation normalisation (CleanRL continuous PPO; SB3 VecNormalize). Off for pixels."""
    norm_reward: bool = True
    """Scale rewards by the running std of the discounted return (CleanRL continuous PPO)."""
    clip_reward: bool = False
    """Clip rewards to their sign, as for Atari (Mnih et al. 2015)."""


class OnPolicyLearner:
    """Base for PPO, TRPO and V-MPO: one ActorCritic, normalisers and the held rollout."""

    def __init__(self, cfg: Any, spec: EnvSpec, num_envs: int, total_steps: int,
                 device: torch.device, value_outputs: int = 1) -> None:
        self.cfg, self.spec, self.device = cfg, spec, device
        self.num_envs, self.total_steps = num_envs, total_steps
        self.net = ActorCritic(spec, cfg.hidden, cfg.activation,
                               state_dependent_std=cfg.state_dependent_std,
                               init_std=cfg.init_std, value_outputs=value_outputs).to(device)
        self.obs_norm = ObsNormalizer(spec.obs_shape, enabled=cfg.norm_obs and not spec.pixels)
        self.reward_scaler = RewardScaler(num_envs, cfg.gamma, enabled=cfg.norm_reward)
        self.batch: Batch | None = None
        self.updates = 0
        # numpy acting for MLP policies (algos/fast/numpy_actor.py: checked against the
        # torch policy, which it falls back to), with its own seeded generator
        self.act_rng = np.random.default_rng(int(torch.randint(0, 2**62, ()).item()))
        self.np_actor = self.make_numpy_actor(self.net)
        self._snapshot_actor(self.net)  # a subclass acting with another net calls refresh_actor()

    # -- acting ---------------------------------------------------------------
    @property
    def acting_net(self) -> ActorCritic:
        """The network that acts (V-MPO: its target network)."""
        return self.net

    def refresh_actor(self) -> None:
        """Re-snapshot the numpy actor: after any change to the acting weights or the
        observation statistics."""
        self._snapshot_actor(self.acting_net)

    def make_numpy_actor(self, net: ActorCritic) -> NumpyActor | None:
        """A numpy actor for `net` where it supports it (MLP torsos), else None."""
        if not NumpyActor.supports(net):
            return None
        return NumpyActor(net, self.cfg.activation, normalize=self.obs_norm)

    def _snapshot_actor(self, net: ActorCritic) -> None:
        if self.np_actor is not None:
            self.np_actor.net = net
            self.np_actor.snapshot()  # the weights and obs_norm's statistics

    def act(self, obs: np.ndarray, deterministic: bool = False):
        if self.np_actor is not None:  # numpy; through torch once its check failed
            action, logp = self.np_actor(obs, deterministic, self.act_rng)
            return action, ({} if deterministic else {"log_prob": logp})
        with torch.inference_mode():
            o = self.obs_norm(torch.from_numpy(obs).to(self.device, non_blocking=True))
            action, logp = policy_act(self.acting_net, o, deterministic)
            return action.cpu().numpy(), ({} if deterministic else {"log_prob": logp.cpu()})

    # -- the loop's calls -----------------------------------------------------
    def observe(self, batch: Batch) -> None:
        self.batch = batch

    def ready(self) -> bool:
        return self.batch is not None

    def update(self) -> dict[str, float]:
        batch, self.batch = self.batch, None
        stats = self.learn(self.prepare(batch))
        self.updates += 1
        self.obs_norm.update_from(batch.obs[:-1][batch.valid])
        self.reward_scaler.update_from(batch.rewards, batch.done, batch.valid)
        self.refresh_actor()
        stats.update(self.fast_stats())
        return stats

    def prepare(self, batch: Batch) -> dict[str, torch.Tensor]:
        """Tensors on the device, observations normalised and rewards scaled (frozen stats).

        obs [T+1, B, *obs], actions [T, B, ...], rewards [T, B] (scaled/clipped),
        terminated/truncated/valid [T, B] bool, log_prob [T, B] (behaviour policy).
        """
        dev = self.device
        rewards = self.reward_scaler.scale(batch.rewards)
        if self.cfg.clip_reward:
            rewards = rewards.sign()
        out = {
            "obs": self.obs_norm(batch.obs.to(dev)),
            "actions": batch.actions.to(dev),
            "rewards": rewards.to(dev),
            "terminated": batch.terminated.to(dev),
            "truncated": batch.truncated.to(dev),
            "valid": batch.valid.to(dev),
        }
        out.update({k: v.to(dev) for k, v in batch.extras.items()})
        return out

    def learn(self, data: dict[str, torch.Tensor]) -> dict[str, float]:
        raise NotImplementedError

    def values(self, obs: torch.Tensor, net: ActorCritic | None = None) -> torch.Tensor:
        """V(obs) without gradient for obs [T+1, B, *obs] -> [T+1, B] (first value output)."""
        net = net or self.net
        with torch.no_grad():
            v = net.value(obs.flatten(0, 1))
        v = v if v.dim() == 1 else v[:, 0]
        return v.view(obs.shape[0], obs.shape[1])

    # -- fast paths (algos/fast) -----------------------------------------------
    def fast_guards(self) -> list[Guard]:
        """The guards of the fast paths this learner uses (a subclass adds its own)."""
        return [self.np_actor.guard] if self.np_actor is not None else []

    def fast_stats(self) -> dict[str, float]:
        """fast/<name> (1 in use, 0 stepped aside) and fast/<name>_max_rel_err of each."""
        return {k: v for g in self.fast_guards() for k, v in g.stats().items()}

    # -- checkpoints ----------------------------------------------------------
    def named_parameters(self):
        return self.net.named_parameters()

    def extra_state(self) -> dict[str, Any]:
        """Subclasses add optimisers, duals, target networks."""
        return {}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        pass

    def state_dict(self) -> dict[str, Any]:
        return {
            "net": self.net.state_dict(),
            "obs_norm": self.obs_norm.state_dict(),
            "reward_scaler": self.reward_scaler.state_dict(),
            "updates": self.updates,
            "act_rng": self.act_rng.bit_generator.state,
            "fast": {g.name: g.state_dict() for g in self.fast_guards()},
            **self.extra_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.net.load_state_dict(state["net"])
        self.obs_norm.load_state_dict(state["obs_norm"])
        self.reward_scaler.load_state_dict(state["reward_scaler"])
        self.updates = int(state["updates"])
        self.act_rng.bit_generator.state = state["act_rng"]
        self.load_extra_state(state)
        fast = state.get("fast", {})  # absent from checkpoints written before the guards
        for g in self.fast_guards():
            if g.name in fast:
                g.load_state_dict(fast[g.name])
        self.refresh_actor()


def steps_per_pass(n: int, size: int) -> int:
    """Gradient steps in one pass over n samples in chunks of `size`, the last one
    shorter: ceil(n / size); size 0 (V-MPO's "the whole batch") or at least n: one step."""
    return 1 if size <= 0 or size >= n else -(-n // size)


def epochs_gradient_steps(config) -> float:
    """Gradient steps per agent env step of a learner that takes `epochs` passes over each
    num_envs x rollout_length batch in minibatches of `minibatch_size` (0: the whole
    batch), from a resolved config (config.json's `config`): PPO's and V-MPO's
    `gradient_steps_per_env_step`, the dry-run's cost model (sweeps/plan.py). Nominal: the
    learners step over the valid samples, fewer where autoreset steps are masked out."""
    n = config["num_envs"] * config["rollout_length"]
    return config["epochs"] * steps_per_pass(n, config["minibatch_size"]) / n


def minibatches(n: int, size: int, generator: torch.Generator | None = None, device=None):
    """Index tensors covering a random permutation of range(n) in chunks of `size`
    (the last chunk may be shorter; none is empty)."""
    perm = torch.randperm(n, generator=generator, device=device)
    return [perm[i:i + size] for i in range(0, n, size)]



def adam(params, lr: float, eps: float = 1e-8) -> torch.optim.Adam:
    """Adam, fused where torch supports it for the parameters' device (same maths, fewer
    kernel launches: the update of a small MLP is launch-bound on the CPU)."""
    params = list(params)
    try:
        return torch.optim.Adam(params, lr=lr, eps=eps, fused=True)
    except (RuntimeError, TypeError):
        return torch.optim.Adam(params, lr=lr, eps=eps)
