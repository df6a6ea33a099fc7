"""The numpy forward/backward (algos/fast/numpy_ac.py) and PPO's hand-derived loss
gradient (algos/fast/ppo_step.py) against torch autograd through the same network and
`ppo_loss`."""

import numpy as np
import pytest
import torch

from algos import ppo
from algos.base import EnvSpec
from algos.fast.flat_adam import FlatAdam
from algos.fast.numpy_ac import NumpyActorCritic
from algos.fast.ppo_step import normalized_chunks, ppo_loss_grad
from algos.networks import ActorCritic
from algos.ppo import ppo_loss

CONT = EnvSpec((17,), False, 6, (-1.0,) * 6, (1.0,) * 6)
DISC = EnvSpec((4,), True, 3)


def _net(spec, activation, seed=0):
    torch.manual_seed(seed)
    net = ActorCritic(spec, (32, 24), activation)
    with torch.no_grad():  # away from the near-zero output init, so every term matters
        for p in net.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return net


@pytest.mark.parametrize("spec", [CONT, DISC], ids=["gaussian", "categorical"])
@pytest.mark.parametrize("activation", ["tanh", "relu", "elu"])
def test_forward_log_prob_and_backward_match_autograd(spec, activation):
    net = _net(spec, activation)
    opt = FlatAdam(net.parameters(), lr=1e-3)
    nac = NumpyActorCritic(net, activation, max_n=64)
    n = 50  # fewer rows than the buffers hold
    x = torch.randn(n, spec.obs_shape[0])
    a = net.head.sample(net.policy(x)).detach()
    g_logp, g_v, g_ent = torch.randn(n), torch.randn(n), 0.37

    opt.zero_grad()
    params, v = net(x)
    logp = net.head.log_prob(params, a)
    loss = (g_logp * logp).sum() + (g_v * v).sum() + g_ent * net.head.entropy(params).mean()
    loss.backward()
    ref = opt.flat.grad.clone()

    out, v_np = nac.forward(x.numpy())
    lp = nac.log_prob(a.numpy())
    key = "logits" if spec.discrete else "mu"
    np.testing.assert_allclose(out, params[key].detach().numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(v_np, v.detach().numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(lp, logp.detach().numpy(), rtol=1e-5, atol=1e-5)
    opt.flat.grad.fill_(float("nan"))  # backward must overwrite every entry
    nac.backward(g_logp.numpy(), g_v.numpy(), g_ent)
    torch.testing.assert_close(opt.flat.grad, ref, rtol=1e-4, atol=1e-5)
    assert float(ref.abs().max()) > 0.1  # a non-trivial gradient


def test_supports_only_the_family_it_implements():
    assert NumpyActorCritic.supports(ActorCritic(CONT), "tanh")
    assert not NumpyActorCritic.supports(ActorCritic(CONT, state_dependent_std=True), "tanh")
    assert not NumpyActorCritic.supports(ActorCritic(CONT, shared=True), "tanh")
    assert not NumpyActorCritic.supports(ActorCritic(CONT, value_outputs=2), "tanh")
    pixels = EnvSpec((4, 84, 84), True, 6, pixels=True)
    assert not NumpyActorCritic.supports(ActorCritic(pixels), "tanh")
    with pytest.raises(ValueError, match=r"\.grad"):  # built before the optimiser
        NumpyActorCritic(ActorCritic(CONT), "tanh", 8)


@pytest.mark.parametrize("clip_value", [False, True])
def test_ppo_loss_grad_matches_autograd_of_ppo_loss(clip_value):
    g = torch.Generator().manual_seed(3)
    n = 200
    log_ratio = 0.4 * torch.randn(n, generator=g)  # about a third outside [0.8, 1.2]
    adv = torch.randn(n, generator=g)
    value = torch.randn(n, generator=g)
    old_value = value + 0.3 * torch.randn(n, generator=g)  # some |V - V_old| > eps
    ret = torch.randn(n, generator=g)
    entropy = torch.rand(n, generator=g)
    lr_t, v_t, ent_t = (t.clone().requires_grad_() for t in (log_ratio, value, entropy))
    loss, _ = ppo_loss(lr_t, torch.zeros(n), adv, v_t, old_value, ret, ent_t,
                       clip_coef=0.2, vf_coef=0.5, ent_coef=0.01, clip_value=clip_value)
    loss.backward()
    g_logp, g_v = ppo_loss_grad(log_ratio.numpy(), adv.numpy(), value.numpy(), old_value.numpy(),
                                ret.numpy(), 0.2, 0.5, clip_value)
    np.testing.assert_allclose(g_logp, lr_t.grad.numpy(), rtol=1e-5, atol=1e-8)
    np.testing.assert_allclose(g_v, v_t.grad.numpy(), rtol=1e-5, atol=1e-8)
    # the entropy term's gradient is -ent_coef on the mean, what the learner passes on
    np.testing.assert_allclose(ent_t.grad.numpy(), -0.01 / n, rtol=1e-6)
    assert (g_logp == 0).sum() > 20  # clipped samples were in the test
    if clip_value:
        assert (g_v == 0).sum() > 5


def test_normalized_chunks_match_torch_per_minibatch():
    x = np.random.default_rng(0).normal(3.0, 2.0, size=141).astype(np.float32)
    out = normalized_chunks(x, 64)  # chunks of 64, 64 and 13
    for s in (slice(0, 64), slice(64, 128), slice(128, 141)):
        t = torch.from_numpy(x[s])
        np.testing.assert_allclose(out[s], ((t - t.mean()) / (t.std() + 1e-8)).numpy(),
                                   rtol=1e-5, atol=1e-6)
    assert normalized_chunks(x[:65], 64)[64] == x[64]  # a chunk of one stays as it is


def _data(spec, T=300, seed=0):
    g = torch.Generator().manual_seed(seed)
    valid = torch.ones(T, 1, dtype=torch.bool)
    valid[101] = False  # a NEXT_STEP reset step after the episode end at 100
    terminated = torch.zeros(T, 1, dtype=torch.bool)
    terminated[100] = True
    actions = (torch.randint(0, spec.action_dim, (T, 1), generator=g) if spec.discrete
               else torch.randn(T, 1, spec.action_dim, generator=g))
    return {"obs": torch.randn(T + 1, 1, spec.obs_shape[0], generator=g), "actions": actions,
            "rewards": torch.randn(T, 1, generator=g), "terminated": terminated,
            "truncated": torch.zeros(T, 1, dtype=torch.bool), "valid": valid}


@pytest.mark.parametrize("spec", [CONT, DISC], ids=["gaussian", "categorical"])
@pytest.mark.parametrize("clip_value", [False, True])
def test_numpy_update_equals_the_autograd_update(spec, clip_value):
    """One whole PPO update (4 epochs of minibatches, Adam, clipping) through numpy and
    through autograd from the same weights and the same torch seed: same parameters."""
    cfg = ppo.Config(epochs=4, minibatch_size=64, hidden=(32, 32), lr=3e-3, ent_coef=0.01,
                     clip_value=clip_value, max_grad_norm=0.5)
    learners = []
    for use_numpy in (True, False):
        torch.manual_seed(0)
        learner = ppo.Learner(cfg, spec, 1, 10_000, torch.device("cpu"))
        if not use_numpy:
            learner.fast = None
        torch.manual_seed(1)  # the same permutations
        learner.stats = learner.learn(_data(spec))
        learners.append(learner)
    fast, ref = learners
    torch.manual_seed(0)
    before = ppo.Learner(cfg, spec, 1, 10_000, torch.device("cpu"))
    assert fast.fast is not None and fast.fast.guard.active
    moved = float((ref.opt.flat - FlatAdam(before.net.parameters(), 1e-3).flat).abs().max().detach())
    assert moved > 1e-3  # the update did move the parameters
    torch.testing.assert_close(fast.opt.flat, ref.opt.flat, rtol=1e-4, atol=2e-5)
    for k in ("loss/policy", "loss/value", "kl/approx", "grad_norm"):
        assert fast.stats[k] == pytest.approx(ref.stats[k], rel=1e-3, abs=1e-6), k
