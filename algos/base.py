"""The interface every algorithm shares: EnvSpec, Batch and the Learner protocol.

The training loop (`algos.train`) knows only this module: it builds the learner, lets
the collector (`algos.rollout`) fill a `Batch` by calling `learner.act`, hands the batch
to `learner.observe`, and calls `learner.update()` while `learner.ready()`. On-policy
learners (PPO, TRPO, V-MPO) are ready once they hold a rollout and update from it;
MPO stores rollouts in a replay buffer and is ready at its replay ratio.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import gymnasium as gym
import numpy as np
import torch


@dataclass(frozen=True)
class EnvSpec:
    """Observation and action spaces of one (single, not vector) environment.

    obs_shape: shape of one observation; pixels: True for uint8 images ([C, H, W]).
    discrete: True for `Discrete(n)` actions; then `action_dim = n`.
    Continuous (`Box`) actions: `action_dim` dimensions with bounds `action_low/high`.
    """

    obs_shape: tuple[int, ...]
    discrete: bool
    action_dim: int
    action_low: tuple[float, ...] | None = None
    action_high: tuple[float, ...] | None = None
    pixels: bool = False

    @classmethod
    def from_spaces(cls, obs_space: gym.Space, action_space: gym.Space) -> "EnvSpec":
        if not isinstance(obs_space, gym.spaces.Box):
            raise TypeError(f"observation space must be a Box, got {obs_space}")
        pixels = obs_space.dtype == np.uint8 and len(obs_space.shape) >= 2
        if isinstance(action_space, gym.spaces.Discrete):
            return cls(tuple(obs_space.shape), True, int(action_space.n), pixels=pixels)
        if isinstance(action_space, gym.spaces.Box) and len(action_space.shape) == 1:
            return cls(
                tuple(obs_space.shape), False, int(action_space.shape[0]),
                tuple(float(x) for x in action_space.low),
                tuple(float(x) for x in action_space.high),
                pixels=pixels,
            )
        raise TypeError(f"action space must be Discrete or a 1-D Box, got {action_space}")

    @classmethod
    def from_vector_env(cls, envs: gym.vector.VectorEnv) -> "EnvSpec":
        return cls.from_spaces(envs.single_observation_space, envs.single_action_space)


@dataclass
class Batch:
    """A rollout of T steps from B envs, laid out time-major.

    obs:        [T+1, B, *obs_shape] raw observations; obs[t] is what action t saw and
                obs[T] the observation after the last step (for bootstrapping).
    actions:    [T, B] (discrete, int64) or [T, B, A] (continuous, float32)
    rewards:    [T, B] float32, raw (learners scale them if they want)
    terminated: [T, B] bool, the episode ended at step t by termination (no bootstrap)
    truncated:  [T, B] bool, the episode ended at step t by a time limit; obs[t+1] is
                then the final observation and V(obs[t+1]) bootstraps the return
    valid:      [T, B] bool, False on Gymnasium's NEXT_STEP autoreset step (the step after
                an episode ends only resets the env: it is not a transition)
    extras:     what `Learner.act` returned per step, each [T, B, ...] (log-probs,
                behaviour-policy parameters, ...), plus "value"-like entries if any.
    """

    obs: torch.Tensor
    actions: torch.Tensor
    rewards: torch.Tensor
    terminated: torch.Tensor
    truncated: torch.Tensor
    valid: torch.Tensor
    extras: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def num_steps(self) -> int:
        return self.rewards.shape[0]

    @property
    def num_envs(self) -> int:
        return self.rewards.shape[1]

    @property
    def done(self) -> torch.Tensor:
        """[T, B] bool: the episode ended at step t (terminated or truncated)."""
        return self.terminated | self.truncated

    def to(self, device: torch.device | str) -> "Batch":
        return Batch(
            self.obs.to(device), self.actions.to(device), self.rewards.to(device),
            self.terminated.to(device), self.truncated.to(device), self.valid.to(device),
            {k: v.to(device) for k, v in self.extras.items()},
        )


@runtime_checkable
class Learner(Protocol):
    """What the training loop calls. Implementations: ppo, trpo, vmpo, mpo.

    act(obs [B, *obs_shape] numpy, deterministic) -> (actions numpy [B, ...],
        extras dict of tensors [B, ...]) - the behaviour policy; deterministic=True is
        the evaluation policy (mean / arg-max) and must not change learner state.
    observe(batch): take a rollout (store it for an on-policy update, or add it to a
        replay buffer).
    ready() -> bool: whether `update()` can run now.
    update() -> dict[str, float | 0-dim tensor]: one update; every stat it returns is
        logged, averaged over a rollout's updates (`train.mean_stats`); tensors may stay
        on the learner's device until then (they must not change afterwards: copies).
    state_dict() / load_state_dict(): everything needed to resume bit-for-bit in
        distribution: networks, optimisers, duals, normalisers, replay data, counters.
    """

    def act(self, obs: np.ndarray, deterministic: bool = False) -> tuple[np.ndarray, dict[str, torch.Tensor]]: ...

    def observe(self, batch: Batch) -> None: ...

    def ready(self) -> bool: ...

    def update(self) -> dict[str, float | torch.Tensor]: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...
