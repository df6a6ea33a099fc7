"""Networks and normalisers: shapes, initialisation, statistics against numpy."""

import math

import numpy as np
import pytest
import torch

from algos.base import EnvSpec
from algos.networks import ActorCritic, NatureCNN, sample_with_log_prob
from algos.normalize import ObsNormalizer, RewardScaler, RunningMeanStd

CONT = EnvSpec((17,), False, 6, (-1.0,) * 6, (1.0,) * 6)
DISC = EnvSpec((4,), True, 2)
PIX = EnvSpec((4, 84, 84), True, 6, pixels=True)


def test_mlp_actor_critic_shapes_and_orthogonal_init():
    net = ActorCritic(CONT, hidden=(64, 64))
    params, v = net(torch.randn(5, 17))
    assert params["mu"].shape == params["std"].shape == (5, 6) and v.shape == (5,)
    assert torch.allclose(params["std"], torch.ones(5, 6))  # log-std 0 at start
    w = net.policy_torso.net[2].weight  # 64x64 hidden layer, gain sqrt(2)
    assert torch.allclose(w @ w.T, 2.0 * torch.eye(64), atol=1e-5)
    assert not net.shared and net.value_torso is not net.policy_torso


def test_nature_cnn_shapes_and_shared_torso():
    cnn = NatureCNN(4)
    assert cnn(torch.zeros(2, 4, 84, 84, dtype=torch.uint8)).shape == (2, 512)
    net = ActorCritic(PIX)
    params, v = net(torch.randint(0, 255, (3, 4, 84, 84), dtype=torch.uint8))
    assert params["logits"].shape == (3, 6) and v.shape == (3,)
    assert net.shared and net.value_torso is net.policy_torso


def test_sample_with_log_prob_matches_the_head_log_prob():
    torch.manual_seed(0)
    for spec, obs in ((CONT, torch.randn(7, 17)), (DISC, torch.randn(7, 4))):
        net = ActorCritic(spec, state_dependent_std=True)
        params = net.policy(obs)
        a, logp = sample_with_log_prob(net.head, params)
        assert torch.allclose(logp, net.head.log_prob(params, a), atol=1e-5)


def test_running_mean_std_matches_numpy_over_chunks():
    rng = np.random.default_rng(0)
    chunks = [rng.normal(3.0, 2.0, size=(n, 3)) for n in (5, 17, 1, 40)]
    rms = RunningMeanStd((3,))
    for c in chunks:
        rms.update(torch.from_numpy(c))
    allx = np.concatenate(chunks)
    # the 1e-4 prior count barely moves the estimates
    np.testing.assert_allclose(rms.mean.numpy(), allx.mean(0), rtol=1e-4)
    np.testing.assert_allclose(rms.var.numpy(), allx.var(0), rtol=1e-4)


def test_obs_normalizer_state_round_trip_and_clip():
    norm = ObsNormalizer((2,))
    norm.update_from(torch.tensor([[0.0, 10.0], [2.0, 30.0]]))
    x = norm(torch.tensor([[1.0, 20.0], [1e9, 20.0]]))
    assert torch.allclose(x[0], torch.zeros(2), atol=1e-3)
    assert x[1, 0].item() == 10.0  # clipped
    other = ObsNormalizer((2,))
    other.load_state_dict(norm.state_dict())
    assert torch.equal(other(torch.ones(1, 2)), norm(torch.ones(1, 2)))


def test_reward_scaler_tracks_discounted_returns_per_env():
    gamma = 0.9
    r = torch.tensor([[1.0, 2.0], [1.0, 0.0], [1.0, 1.0]])
    done = torch.tensor([[False, False], [True, False], [False, False]])
    valid = torch.ones(3, 2, dtype=torch.bool)
    sc = RewardScaler(2, gamma)
    sc.update_from(r, done, valid)
    # brute force: env 0 returns 1, 1.9 (ends), 1; env 1: 2, 1.8, 2.62
    rets = np.array([1.0, 1.9, 1.0, 2.0, 1.8, 2.62])
    assert math.isclose(float(sc.rms.var), rets.var(), rel_tol=1e-3)
    assert torch.allclose(sc.ret, torch.tensor([1.0, 2.62], dtype=torch.float64))
    scaled = sc.scale(torch.tensor([[1.0]]))
    assert math.isclose(scaled.item(), 1.0 / math.sqrt(rets.var() + 1e-8), rel_tol=1e-3)


def test_reward_scaler_carries_returns_across_rollouts_and_skips_invalid_steps():
    """Three rollouts folded in one after another equal one brute-force loop over the
    whole stream: the running return carries over a rollout boundary (and is cut when
    the last step of a rollout ends an episode); invalid steps feed no statistics."""
    gamma, T, B = 0.97, 40, 2
    g = torch.Generator().manual_seed(0)
    r = torch.randn(3 * T, B, generator=g)
    done = torch.rand(3 * T, B, generator=g) < 0.08
    done[T - 1, 0] = True   # an episode ends on a rollout's last step
    done[T - 1, 1] = False  # and one runs across the boundary
    valid = torch.ones(3 * T, B, dtype=torch.bool)
    valid[1:] = ~done[:-1]
    sc = RewardScaler(B, gamma)
    for k in range(3):
        sl = slice(k * T, (k + 1) * T)
        sc.update_from(r[sl], done[sl], valid[sl])
    ret, seen = np.zeros(B), []
    for t in range(3 * T):
        ret = gamma * ret + r[t].double().numpy()
        seen += [ret[b] for b in range(B) if valid[t, b]]
        ret = np.where(done[t].numpy(), 0.0, ret)
    seen = np.array(seen)
    assert sc.rms.count == pytest.approx(len(seen) + 1e-4)
    assert float(sc.rms.mean) == pytest.approx(seen.mean(), rel=1e-6)
    assert float(sc.rms.var) == pytest.approx(seen.var(), rel=1e-5)
    np.testing.assert_allclose(sc.ret.numpy(), ret, rtol=1e-12)


def test_numpy_actor_samples_the_torch_heads_distribution():
    from algos.fast.numpy_actor import NumpyActor

    torch.manual_seed(1)
    rng = np.random.default_rng(0)
    obs = np.random.default_rng(1).normal(size=(4000, 17)).astype(np.float32)
    for spec, sd in ((CONT, False), (CONT, True), (DISC, False)):
        o = obs[:, : spec.obs_shape[0]]
        net = ActorCritic(spec, state_dependent_std=sd, activation="elu")
        with torch.no_grad():
            for p in net.parameters():
                p.add_(0.1 * torch.randn_like(p))  # away from the near-zero output init
        actor = NumpyActor(net, "elu")
        mean, inv_std = np.full(o.shape[1], 0.5, np.float32), np.full(o.shape[1], 2.0, np.float32)
        actor.snapshot(mean, inv_std, 10.0)
        normed = torch.from_numpy(np.clip((o - mean) * inv_std, -10, 10))
        params = net.policy(normed)
        a_det, _ = actor(o, True, rng)
        np.testing.assert_allclose(a_det, net.head.mode(params).detach().numpy(), rtol=1e-4, atol=1e-5)
        a, logp = actor(o, False, rng)
        ref = net.head.log_prob(params, torch.as_tensor(a)).detach().numpy()
        np.testing.assert_allclose(logp, ref, rtol=1e-4, atol=1e-4)
        if spec.discrete:  # sampled frequencies follow the softmax (4000 samples)
            probs = torch.softmax(params["logits"], -1).detach().numpy()
            assert abs((a == 1).mean() - probs[:, 1].mean()) < 0.03
        else:  # standardised samples are N(0, 1)
            z = (a - params["mu"].detach().numpy()) / params["std"].detach().numpy()
            assert abs(z.mean()) < 0.05 and abs(z.std() - 1) < 0.05
