"""The collector against a brute-force loop over single envs: the same transitions,
truncation vs termination flagged apart, and the NEXT_STEP reset step masked out."""

import gymnasium as gym
import numpy as np
import pytest
import torch

from algos.base import EnvSpec
from algos.rollout import Collector, evaluate


def policy(obs: np.ndarray) -> np.ndarray:
    """A deterministic function of the observation that looks random (hash of obs)."""
    return ((np.abs(obs) * 1e4).astype(np.int64).sum(-1) % 2).astype(np.int64)


class ScriptedLearner:
    def act(self, obs, deterministic=False):
        a = policy(obs)
        return a, {"tag": torch.from_numpy(obs[:, 0].copy())}


def reference_transitions(seed: int, steps: int, max_steps: int):
    env = gym.make("CartPole-v1", max_episode_steps=max_steps)
    o, _ = env.reset(seed=seed)
    out = []
    while len(out) < steps:
        a = int(policy(o[None].astype(np.float32))[0])
        o2, r, te, tr, _ = env.step(a)
        out.append((o.astype(np.float32), a, float(r), bool(te), bool(tr), o2.astype(np.float32)))
        o = env.reset()[0] if (te or tr) else o2
    return out


@pytest.mark.parametrize("rollouts", [1, 3])
def test_collector_matches_single_env_loop(rollouts):
    B, T, seed, max_steps = 3, 40, 11, 12
    envs = gym.make_vec("CartPole-v1", B, vectorization_mode="sync", max_episode_steps=max_steps)
    spec = EnvSpec.from_vector_env(envs)
    col = Collector(envs, spec, T, seed=seed)
    batches = [col.collect(ScriptedLearner()) for _ in range(rollouts)]
    n_term = n_trunc = 0
    for b in range(B):
        got = []
        for batch in batches:
            for t in range(T):
                if batch.valid[t, b]:
                    got.append((batch.obs[t, b].numpy(), int(batch.actions[t, b]),
                                float(batch.rewards[t, b]), bool(batch.terminated[t, b]),
                                bool(batch.truncated[t, b]), batch.obs[t + 1, b].numpy()))
                else:  # the reset step: no reward, no flags, obs[t] is the final obs
                    assert batch.rewards[t, b] == 0 and not batch.done[t, b]
        ref = reference_transitions(seed + b, len(got), max_steps)
        assert len(got) == len(ref)
        for g, r in zip(got, ref):
            np.testing.assert_allclose(g[0], r[0], rtol=1e-6)
            assert g[1:5] == r[1:5]
            np.testing.assert_allclose(g[5], r[5], rtol=1e-6)  # final obs on an end step
        n_term += sum(x[3] for x in got)
        n_trunc += sum(x[4] for x in got)
    assert n_term > 0 and n_trunc > 0  # the data exercised both kinds of episode end
    # valid is False exactly on the step after an episode ended (across rollouts too)
    done = torch.cat([bt.done for bt in batches])
    valid = torch.cat([bt.valid for bt in batches])
    assert torch.equal(valid[1:], ~done[:-1])
    assert batches[0].extras["tag"].shape == (T, B)


def test_collector_records_episode_returns_of_valid_steps_only():
    envs = gym.make_vec("CartPole-v1", 2, vectorization_mode="sync", max_episode_steps=7)
    col = Collector(envs, EnvSpec.from_vector_env(envs), 50, seed=0)
    batch = col.collect(ScriptedLearner())
    eps = col.pop_episodes()
    assert eps and all(ret == length for ret, length in eps)  # CartPole pays 1 per step
    assert all(length <= 7 for _, length in eps)
    assert len(eps) == int(batch.done.sum())
    assert col.pop_episodes() == []


def test_episode_returns_and_lengths_carry_across_rollouts():
    """Episodes of 13 steps over rollouts of 10: each recorded (return, length) equals
    the sum of its rewards and its count of valid steps read back from the batches."""
    class Noisy:
        def __init__(self):
            self.rng = np.random.default_rng(0)

        def act(self, obs, deterministic=False):
            return self.rng.uniform(-2, 2, (obs.shape[0], 1)).astype(np.float32), {}

    envs = gym.make_vec("Pendulum-v1", 2, vectorization_mode="sync", max_episode_steps=13)
    col = Collector(envs, EnvSpec.from_vector_env(envs), 10, seed=0)
    learner = Noisy()
    batches = [col.collect(learner) for _ in range(5)]
    eps = col.pop_episodes()
    rewards = torch.cat([b.rewards for b in batches]).double()
    done, valid = torch.cat([b.done for b in batches]), torch.cat([b.valid for b in batches])
    expected = []
    for t, b in torch.nonzero(done).tolist():  # step order, then env
        start = max([s + 1 for s in torch.nonzero(done[:t, b]).flatten().tolist()], default=0)
        expected.append((float(rewards[start:t + 1, b].sum()), int(valid[start:t + 1, b].sum())))
    assert len(eps) == len(expected) == 6  # 3 per env within 50 steps, two across boundaries
    for (r, n), (r_ref, n_ref) in zip(eps, expected):
        assert n == n_ref == 13
        assert r == pytest.approx(r_ref, rel=1e-5)
    assert len({round(r, 3) for r, _ in eps}) == len(eps)  # returns that differ


def test_continuous_actions_are_clipped_for_the_env_but_kept_in_the_batch():
    class Wild:
        def act(self, obs, deterministic=False):
            return np.full((obs.shape[0], 1), 5.0, dtype=np.float32), {}

    envs = gym.make_vec("Pendulum-v1", 2, vectorization_mode="sync")
    spec = EnvSpec.from_vector_env(envs)
    batch = Collector(envs, spec, 4, seed=0).collect(Wild())
    assert (batch.actions == 5.0).all()
    # Pendulum's reward with torque 2 (clipped) vs 5 differs: check against a manual env
    env = gym.make("Pendulum-v1")
    env.reset(seed=0)
    _, r, *_ = env.step(np.array([2.0], dtype=np.float32))
    assert batch.rewards[0, 0].item() == pytest.approx(r, rel=1e-5)


def test_evaluate_spreads_episodes_over_envs():
    envs = gym.make_vec("CartPole-v1", 3, vectorization_mode="sync", max_episode_steps=9)
    spec = EnvSpec.from_vector_env(envs)
    returns = evaluate(ScriptedLearner(), envs, 7, seed=3, spec=spec)
    assert len(returns) == 7
    assert all(0 < r <= 9 for r in returns)
