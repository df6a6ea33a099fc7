"""Slow: PPO learns (the issue's bars), through the real training loop."""

import pytest

from algos.train import RunSpec, run


@pytest.mark.slow
def test_ppo_solves_cartpole_within_100k_steps(tmp_path, read_eval_returns):
    # CartPole defaults: RL Baselines3 Zoo's tuned PPO (8 envs x 32 steps, 20 epochs)
    status = run(RunSpec("ppo", "CartPole-v1", 0, 100_000,
                         {"eval_every": 10_000, "eval_episodes": 10}), tmp_path)
    assert status["state"] == "done"
    evals = read_eval_returns(tmp_path)
    assert evals[-1][0] <= 100_096  # the first rollout boundary at or past 100k
    assert evals[-1][1] >= 450, evals


@pytest.mark.slow
@pytest.mark.mujoco
def test_ppo_learns_inverted_pendulum_within_20k_steps(tmp_path, read_eval_returns):
    pytest.importorskip("mujoco")
    # MuJoCo defaults (PPO paper Table 3); a uniform random policy scores about 5-10
    run(RunSpec("ppo", "InvertedPendulum-v5", 0, 20_480,
                {"eval_every": 10_240, "eval_episodes": 10}), tmp_path)
    evals = read_eval_returns(tmp_path)
    assert evals[-1][1] >= 800, evals
