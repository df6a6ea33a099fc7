"""The contract between the training loop and an algorithm: EnvSpec, Batch, the Learner
protocol, the algorithm module's shape, and the registry ALGOS.

The training loop (`algos.train`) knows only this module: it builds the learner, lets
the collector (`algos.rollout`) fill a `Batch` by calling `learner.act`, hands the batch
to `learner.observe`, and calls `learner.update()` while `learner.ready()`. On-policy
learners (PPO, TRPO, V-MPO) are ready once they hold a rollout and update from it;
MPO stores rollouts in a replay buffer and is ready at its replay ratio.

An algorithm is one module (e.g. `algos/ppo.py`) that defines two names (a third is
optional), plus its line in `ALGOS`; docs/adding-an-algorithm.md walks through one:

    Config    a dataclass; each field carries a one-line doc (the string literal under it,
              `algos.config.doc_of`) and a default citing its source. Required field:
              `rollout_length: int`, the steps per env the collector gathers between calls
              to `observe` (the loop's unit: a run ends at the first rollout boundary at or
              past its budget). Optional class attribute
              `SUITE_DEFAULTS: ClassVar[dict[str, dict[str, Any]]]`: per suite name
              ("classic", "mujoco", "atari") or env id, the defaults that differ there
              (the env id's entry wins); a key may name a field of Config or of
              `algos.config.RunConfig` (e.g. `num_envs`). Every field of the resolved Config
              goes into config.json and its run_id hash: a field added to an existing
              algorithm changes all its run ids; new code behind a new field can instead
              be a new algorithm that subclasses it (docs/adding-an-algorithm.md).
    Learner   a class built as `Learner(cfg, env_spec, num_envs, total_steps, device)`
              (cfg: the resolved Config; env_spec: `EnvSpec` of one env; num_envs: the
              training vector env's width B; total_steps: the run's budget in agent steps,
              summed over envs, for schedules; device: a torch.device) with the methods of
              the `Learner` protocol below.
    gradient_steps_per_env_step   optional: a function of a resolved config (config.json's
              `config` mapping) giving the learner's gradient steps per agent env step,
              which the dry-run's cost model scales a run's update time by
              (sweeps/plan.py); without it a run is costed at its algorithm's measured rate.

`algorithm(name)` imports a registered module and checks this shape (`check_algorithm`),
naming what is missing.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import inspect
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Iterator, Protocol, runtime_checkable

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

    Built as `Learner(cfg, env_spec, num_envs, total_steps, device)` (see the module doc).

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
        The checkpoint holds it; a resumed run builds a fresh Learner and loads it.
    named_parameters() -> iterable of (name, tensor): every parameter and dual; after each
        rollout's updates the loop checks them all finite (a NaN/Inf fails the run naming
        the parameter). An empty iterable skips the check.
    """

    def act(self, obs: np.ndarray, deterministic: bool = False) -> tuple[np.ndarray, dict[str, torch.Tensor]]: ...

    def observe(self, batch: Batch) -> None: ...

    def ready(self) -> bool: ...

    def update(self) -> dict[str, float | torch.Tensor]: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...

    def named_parameters(self) -> Iterator[tuple[str, torch.Tensor]]: ...


# The registry: algorithm name -> the module defining its Config and Learner. Adding an
# algorithm is its file plus one line here. Module paths rather than classes or a
# decorator: listing the algorithms (a sweep spec's check, --help) imports none of them,
# and a decorator registers only once something imports its module, which would need
# a list like this one anyway.
ALGOS: dict[str, str] = {
    "ppo": "algos.ppo",
    "trpo": "algos.trpo",
    "vmpo": "algos.vmpo",
    "mpo": "algos.mpo",
}

LEARNER_METHODS = ("act", "observe", "ready", "update", "state_dict", "load_state_dict",
                   "named_parameters")


class ContractError(TypeError):
    """An algorithm module lacks what algos/base.py's contract asks of it."""


def algorithm(name: str) -> ModuleType:
    """The module of the registered algorithm `name`, imported and checked once.

    Raises algos.config.ConfigError("algo", ...) for an unregistered name (a usage error)
    and ContractError for a module that breaks the contract (a programming error)."""
    if name not in ALGOS:
        from algos.config import ConfigError

        raise ConfigError("algo", f"unknown algorithm {name!r}; valid: {', '.join(ALGOS)}")
    return _load(name, ALGOS[name])


@functools.lru_cache(maxsize=None)
def _load(name: str, module: str) -> ModuleType:
    mod = importlib.import_module(module)
    check_algorithm(mod, name)
    return mod


def check_algorithm(mod: ModuleType, name: str = "") -> None:
    """Raise ContractError naming the first thing `mod` lacks of the module doc's shape."""
    def fail(problem: str) -> None:
        raise ContractError(f"algorithm {name or mod.__name__!r} ({mod.__name__}): {problem}; "
                            "see algos/base.py and docs/adding-an-algorithm.md")

    cfg, learner = getattr(mod, "Config", None), getattr(mod, "Learner", None)
    if not (isinstance(cfg, type) and dataclasses.is_dataclass(cfg)):
        fail("defines no Config dataclass")
    fields = {f.name for f in dataclasses.fields(cfg)}
    if "rollout_length" not in fields:
        fail("Config has no field rollout_length (steps per env in each rollout)")
    table = getattr(cfg, "SUITE_DEFAULTS", {})
    if not isinstance(table, dict) or not all(isinstance(v, dict) for v in table.values()):
        fail("Config.SUITE_DEFAULTS is not a dict of {suite or env id: {field: value}}")
    from algos.config import RunConfig

    known = fields | {f.name for f in dataclasses.fields(RunConfig)}
    for where, entry in table.items():
        for key in entry:
            if key not in known:  # the loop would drop it silently
                fail(f"Config.SUITE_DEFAULTS[{where!r}] sets {key!r}, a field of neither "
                     "Config nor algos.config.RunConfig")
    if not isinstance(learner, type):
        fail("defines no Learner class")
    missing = [m for m in LEARNER_METHODS if not callable(getattr(learner, m, None))]
    if missing:
        fail(f"Learner lacks {', '.join(missing)}")
    try:
        inspect.signature(learner).bind("cfg", "env_spec", "num_envs", "total_steps", "device")
    except TypeError:
        fail(f"Learner{inspect.signature(learner)} cannot be called as "
             "Learner(cfg, env_spec, num_envs, total_steps, device)")
