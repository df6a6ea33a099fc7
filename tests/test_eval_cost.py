"""Evaluation in one wave (issue 24 §5) and its cost in the dry-run estimate."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import suites
from algos.base import EnvSpec
from algos.rollout import eval_env_count, evaluate
from sweeps.plan import eval_steps, load_throughput, run_hours
from sweeps.spec import Run


@pytest.mark.parametrize("episodes,envs", [(1, 1), (10, 10), (16, 16), (17, 9), (30, 15), (100, 15)])
def test_eval_env_count_one_wave_or_equal_waves(episodes, envs):
    assert eval_env_count(episodes) == envs
    waves = -(-episodes // envs)
    assert waves * envs - episodes < waves  # no wave runs more than one idle env-episode per env


class Push:
    """A deterministic CartPole policy that depends on the observation."""

    def act(self, obs, deterministic=False):
        return (obs[:, 2] + 0.3 * obs[:, 3] > 0).astype(np.int64), {}


def test_evaluate_runs_the_first_episode_of_each_env_seeded_apart():
    n, seed = 5, 77
    envs = suites.make("CartPole-v1", eval_env_count(n), 0)
    spec = EnvSpec.from_vector_env(envs)
    got = evaluate(Push(), envs, n, seed, spec)
    envs.close()
    want = []  # by hand: env i is reset with seed + i and runs one episode
    for i in range(n):
        env = gym.make("CartPole-v1")
        obs, _ = env.reset(seed=seed + i)
        total, done = 0.0, False
        while not done:
            a = int(Push().act(obs[None].astype(np.float32))[0][0])
            obs, r, term, trunc, _ = env.step(a)
            total += r
            done = term or trunc
        want.append(total)
    assert got == want


def test_eval_steps_and_the_estimate_include_evaluation():
    run = Run("x", "ppo", "ppo", "HalfCheetah-v5", "mujoco", 0, 1_000_000,
              {"eval_every": 50_000, "eval_episodes": 10}, "mujoco")
    assert eval_steps(run) == 20 * 10 * 1000           # 20 evaluations x 10 envs x 1,000 steps
    run.overrides["eval_every"] = 0
    assert eval_steps(run) == 10 * 1000                # only at the end
    classic = Run("y", "ppo", "ppo", "Pendulum-v1", "classic", 0, 100_000,
                  {"eval_every": 10_000, "eval_episodes": 20}, "classic")
    assert eval_steps(classic) == 10 * 2 * 10 * 200    # 20 episodes: 2 waves of 10 envs
    table = load_throughput()
    rate = table[("ppo", "Pendulum-v1")].steps_per_sec
    assert run_hours(classic, table) * 3600 == pytest.approx(
        100_000 / rate + 40_000 / rate + 6.0)          # Pendulum's fastest on-policy row is PPO's
