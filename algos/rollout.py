"""One collector over a Gymnasium 1.x vector env, used by every algorithm; and evaluation.

Gymnasium's default NEXT_STEP autoreset: on the step where an env's episode ends, the
returned observation IS the final observation; the env's next `step()` ignores the
action and only resets it (reward 0, terminated and truncated False). The collector
marks that step `valid = False` (it is not a transition); truncation bootstraps from
V(final obs) because obs[t+1] is the final observation (see `algos.returns`).

Steps are counted as vector-env steps (T * B per rollout), reset steps included: the
schedule (evaluations, checkpoints, the budget) stays a fixed function of the step
counter. Each episode costs one such step that carries no transition.
"""

from __future__ import annotations

import numpy as np
import torch

from algos.base import Batch, EnvSpec, Learner


class Collector:
    """Steps `envs` for `num_steps` per `collect`, acting with `learner.act`.

    Continuous actions are clipped to the action bounds before they reach the env; the
    batch keeps the unclipped sample (whose log-probability the policy gave).
    Completed episodes (return, length) accumulate until `pop_episodes()`.
    """

    def __init__(self, envs, spec: EnvSpec, num_steps: int, seed: int) -> None:
        self.envs = envs
        self.spec = spec
        self.num_steps = num_steps
        self.num_envs = envs.num_envs
        obs, _ = envs.reset(seed=seed)
        self.obs_dtype = np.uint8 if spec.pixels else np.float32
        self.obs = np.asarray(obs, dtype=self.obs_dtype)
        self.prev_done = np.zeros(self.num_envs, dtype=bool)
        self.ep_return = np.zeros(self.num_envs, dtype=np.float64)
        self.ep_length = np.zeros(self.num_envs, dtype=np.int64)
        self.episodes: list[tuple[float, int]] = []
        if not spec.discrete:
            self.low = np.asarray(spec.action_low, dtype=np.float32)
            self.high = np.asarray(spec.action_high, dtype=np.float32)

    def collect(self, learner: Learner) -> Batch:
        T, B = self.num_steps, self.num_envs
        obs = np.empty((T + 1, B, *self.spec.obs_shape), dtype=self.obs_dtype)
        rewards = np.empty((T, B), dtype=np.float64)  # the env's own dtype until the end
        terminated = np.empty((T, B), dtype=bool)
        truncated = np.empty((T, B), dtype=bool)
        actions = None
        extras: dict[str, np.ndarray] = {}
        step = self.envs.step
        # Per step only what acting needs; validity and episode statistics are derived
        # from the stored flags after the loop (each numpy op here costs ~1 us a step).
        for t in range(T):
            obs[t] = self.obs
            action, ex = learner.act(self.obs)
            if actions is None:
                actions = np.empty((T, *action.shape), dtype=action.dtype)
                extras = {k: np.empty((T, *v.shape), dtype=_np_dtype(v)) for k, v in ex.items()}
            actions[t] = action
            for k, v in ex.items():
                extras[k][t] = v  # numpy assignment: a torch index-put costs ~5x more per step
            env_action = (action if self.spec.discrete
                          else np.minimum(np.maximum(action, self.low), self.high))
            next_obs, rewards[t], terminated[t], truncated[t], _ = step(env_action)
            self.obs = next_obs if next_obs.dtype == self.obs_dtype else next_obs.astype(self.obs_dtype)
        obs[T] = self.obs
        done = terminated | truncated
        valid = np.empty((T, B), dtype=bool)
        valid[0] = ~self.prev_done
        valid[1:] = ~done[:-1]
        self.prev_done = done[-1].copy()
        self._count_episodes(rewards, valid, done)
        return Batch(
            obs=torch.from_numpy(obs),
            actions=torch.from_numpy(actions),
            rewards=torch.from_numpy(rewards.astype(np.float32)),
            terminated=torch.from_numpy(terminated),
            truncated=torch.from_numpy(truncated),
            valid=torch.from_numpy(valid),
            extras={k: torch.from_numpy(v) for k, v in extras.items()},
        )

    def _count_episodes(self, rewards: np.ndarray, valid: np.ndarray, done: np.ndarray) -> None:
        """Append (return, length) of every episode that ended in this rollout, in step
        order, and carry the running ones over. Return: the sum of the episode's rewards
        (a reset step's is 0); length: its valid steps. rewards, valid, done [T, B]."""
        cum_r = np.cumsum(rewards, axis=0)
        cum_l = np.cumsum(valid, axis=0)
        # cumulative sums at which each env's current episode began
        start_r, start_l = -self.ep_return, -self.ep_length
        for t, b in np.argwhere(done):
            self.episodes.append((float(cum_r[t, b] - start_r[b]), int(cum_l[t, b] - start_l[b])))
            start_r[b], start_l[b] = cum_r[t, b], cum_l[t, b]
        self.ep_return = cum_r[-1] - start_r
        self.ep_length = cum_l[-1] - start_l

    def pop_episodes(self) -> list[tuple[float, int]]:
        out, self.episodes = self.episodes, []
        return out


def _np_dtype(v) -> np.dtype:
    return v.numpy().dtype if isinstance(v, torch.Tensor) else np.asarray(v).dtype


MAX_EVAL_ENVS = 16


def eval_env_count(episodes: int) -> int:
    """Eval envs for `episodes` episodes: one env per episode up to MAX_EVAL_ENVS (one
    wave: every env runs exactly one episode), else the fewest waves of equal size.

    Why: the envs step in lockstep until every env has run its share, so with 8 envs for
    10 episodes two envs ran a second episode while six stepped idle: 16 episode-lengths
    of stepping for 10 episodes, ~25% of a HalfCheetah run. With 10 envs it is 10. The
    episodes evaluated change with it: each is now the first episode of its own env
    (env i seeded seed + i at each evaluation), where two of the ten were second episodes
    of envs 0 and 1 before (2026-12-06; the mujoco-core runs predate it)."""
    if episodes <= MAX_EVAL_ENVS:
        return max(episodes, 1)
    waves = -(-episodes // MAX_EVAL_ENVS)
    return -(-episodes // waves)


def evaluate(learner: Learner, envs, episodes: int, seed: int, spec: EnvSpec) -> list[float]:
    """Returns of `episodes` episodes of the deterministic policy on `envs`.

    Env i of the B eval envs runs the i-th share of the episodes (episodes spread as
    evenly as possible), so that short episodes are not over-represented; results are
    ordered by env then episode. The envs are reset with `seed` first.
    """
    B = envs.num_envs
    quota = np.array([episodes // B + (i < episodes % B) for i in range(B)])
    returns: list[list[float]] = [[] for _ in range(B)]
    obs, _ = envs.reset(seed=seed)
    ret = np.zeros(B)
    prev_done = np.zeros(B, dtype=bool)
    low = None if spec.discrete else np.asarray(spec.action_low, dtype=np.float32)
    high = None if spec.discrete else np.asarray(spec.action_high, dtype=np.float32)
    dtype = np.uint8 if spec.pixels else np.float32
    while any(len(returns[i]) < quota[i] for i in range(B)):
        action, _ = learner.act(np.asarray(obs, dtype=dtype), deterministic=True)
        if low is not None:
            action = np.clip(action, low, high)
        obs, r, term, trunc, _ = envs.step(action)
        ret += np.where(prev_done, 0.0, r)
        done = term | trunc
        for i in np.flatnonzero(done):
            if len(returns[i]) < quota[i]:
                returns[i].append(float(ret[i]))
            ret[i] = 0.0
        prev_done = done
    return [r for per_env in returns for r in per_env]
