"""TRPO: conjugate gradient against a direct solve, the Fisher-vector product against an
explicit Hessian of the KL, the line search against its KL bound, and the learner."""

import math

import numpy as np
import pytest
import torch
from torch.func import functional_call

from algos.base import Batch, EnvSpec
from algos.networks import ActorCritic
from algos.trpo import (
    Config,
    Learner,
    conjugate_gradient,
    fisher_vector_product,
    line_search,
    make_fvp,
    surrogate_loss,
)

CONT = EnvSpec((3,), False, 2, (-1.0, -1.0), (1.0, 1.0))
DISC = EnvSpec((3,), True, 4)


@pytest.mark.parametrize("n,seed", [(2, 0), (5, 1), (10, 2), (20, 3), (40, 4)])
def test_conjugate_gradient_matches_numpy_solve_on_spd_systems(n, seed):
    rng = np.random.default_rng(seed)
    m = rng.standard_normal((n, n))
    a = m @ m.T + 0.5 * np.eye(n)  # symmetric positive definite, moderately conditioned
    b = rng.standard_normal(n)
    A, bt = torch.tensor(a), torch.tensor(b)
    x = conjugate_gradient(lambda v: A @ v, bt, iters=3 * n, residual_tol=1e-24)
    ref = np.linalg.solve(a, b)
    np.testing.assert_allclose(x.numpy(), ref, rtol=1e-6, atol=1e-8)


def test_conjugate_gradient_is_exact_after_n_iterations_for_a_well_conditioned_system():
    rng = np.random.default_rng(5)
    q, _ = np.linalg.qr(rng.standard_normal((6, 6)))
    a = q @ np.diag([1.0, 1.5, 2.0, 2.5, 3.0, 3.5]) @ q.T
    b = rng.standard_normal(6)
    x = conjugate_gradient(lambda v: torch.tensor(a) @ v, torch.tensor(b), iters=6, residual_tol=0.0)
    np.testing.assert_allclose(x.numpy(), np.linalg.solve(a, b), rtol=1e-8, atol=1e-10)


def test_conjugate_gradient_few_iterations_reduce_the_residual():
    rng = np.random.default_rng(6)
    m = rng.standard_normal((30, 30))
    A = torch.tensor(m @ m.T + np.eye(30))
    b = torch.tensor(rng.standard_normal(30))
    res = [float((A @ conjugate_gradient(lambda v: A @ v, b, k) - b).norm()) for k in (1, 5, 30)]
    assert res[0] > res[1] > res[2]


def _tiny_net(spec: EnvSpec, seed: int) -> ActorCritic:
    torch.manual_seed(seed)
    net = ActorCritic(spec, hidden=(5,), activation="tanh").double()
    with torch.no_grad():  # move off the near-zero output init so the Fisher is generic
        for p in net.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return net


@pytest.mark.parametrize("spec", [CONT, DISC], ids=["gaussian", "categorical"])
@pytest.mark.parametrize("damping", [0.0, 0.1])
def test_fisher_vector_product_matches_explicit_hessian_of_the_kl(spec, damping):
    net = _tiny_net(spec, 0)
    obs = torch.randn(16, 3, dtype=torch.float64)
    params = net.policy_parameters()
    names = [n for n, p in net.named_parameters() if any(p is q for q in params)]
    with torch.no_grad():
        old = net.policy(obs)
    theta0 = torch.cat([p.detach().reshape(-1) for p in params])
    shapes = [p.shape for p in params]

    def kl_of(theta):
        chunks, i = {}, 0
        for name, shape in zip(names, shapes):
            k = math.prod(shape)
            chunks[name] = theta[i:i + k].view(shape)
            i += k
        out = functional_call(net, chunks, (obs,), strict=False)[0]
        return net.head.kl(old, out).mean()

    H = torch.autograd.functional.hessian(kl_of, theta0)
    kl = net.head.kl(old, net.policy(obs)).mean()
    fvp = make_fvp(kl, params, damping)
    g = torch.Generator().manual_seed(1)
    for _ in range(3):
        v = torch.randn(theta0.numel(), generator=g, dtype=torch.float64)
        expected = H @ v + damping * v
        assert torch.allclose(fvp(v), expected, atol=1e-10, rtol=1e-8)
    # the one-shot helper gives the same
    kl = net.head.kl(old, net.policy(obs)).mean()
    assert torch.allclose(fisher_vector_product(kl, params, v, damping), H @ v + damping * v,
                          atol=1e-10, rtol=1e-8)
    # the Hessian of the KL at theta_old is a Fisher matrix: symmetric positive semi-definite
    assert torch.allclose(H, H.T, atol=1e-10)
    assert torch.linalg.eigvalsh(H).min() > -1e-10


def _random_rollout(spec: EnvSpec, T: int, B: int, seed: int) -> Batch:
    g = torch.Generator().manual_seed(seed)
    obs = torch.randn(T + 1, B, *spec.obs_shape, generator=g)
    if spec.discrete:
        actions = torch.randint(0, spec.action_dim, (T, B), generator=g)
    else:
        actions = torch.randn(T, B, spec.action_dim, generator=g)
    rewards = torch.randn(T, B, generator=g)
    terminated = torch.rand(T, B, generator=g) < 0.05
    truncated = (torch.rand(T, B, generator=g) < 0.05) & ~terminated
    valid = torch.ones(T, B, dtype=torch.bool)
    valid[1:] = ~(terminated | truncated)[:-1]
    rewards[~valid] = 0
    return Batch(obs, actions, rewards, terminated, truncated, valid, {})


def _line_search_case(case: int) -> bool:
    """One random case: returns whether a step was accepted."""
    rng = np.random.default_rng(case)
    spec = CONT if case % 2 == 0 else DISC
    net = _tiny_net(spec, case).float()
    params = net.policy_parameters()
    obs = torch.randn(64, 3)
    with torch.no_grad():
        old = net.policy(obs)
        actions = net.head.sample(old)
        old_logp = net.head.log_prob(old, actions)
    adv = torch.randn(64)
    theta_old = torch.nn.utils.parameters_to_vector(params).detach().clone()
    direction = torch.randn(theta_old.numel()) * float(rng.choice([0.01, 0.3, 3.0, 30.0]))
    delta = float(rng.choice([1e-3, 1e-2, 5e-2]))

    def evaluate(theta):
        with torch.no_grad():
            torch.nn.utils.vector_to_parameters(theta, params)
            p = net.policy(obs)
            surr = -surrogate_loss(net.head.log_prob(p, actions), old_logp, adv)[0]
            return float(surr), float(net.head.kl(old, p).mean())

    surr_old, _ = evaluate(theta_old)
    res = line_search(evaluate, theta_old, direction, surr_old, delta,
                      shrink=float(rng.choice([0.5, 0.8])), max_iter=int(rng.integers(1, 12)))
    surr_new, kl_new = evaluate(res.params)  # re-measured independently
    assert kl_new <= delta + 1e-7
    if res.accepted:
        assert surr_new > surr_old
        assert res.kl <= delta
    else:
        assert torch.equal(res.params, theta_old)
        assert kl_new == pytest.approx(0.0, abs=1e-7)
    return res.accepted


def test_line_search_never_accepts_a_step_beyond_the_kl_bound():
    """Random tiny policies, data and (often far too large) steps: whatever the line
    search returns has a measured mean KL <= delta, improves the surrogate when accepted,
    and is theta_old exactly when rejected."""
    accepted = [_line_search_case(case) for case in range(60)]
    assert 5 < sum(accepted) < 55  # both branches exercised


@pytest.mark.parametrize("spec", [CONT, DISC], ids=["gaussian", "categorical"])
@pytest.mark.parametrize("max_kl", [1e-3, 1e-2, 1e-1])
def test_learner_step_respects_the_kl_bound(spec, max_kl):
    torch.manual_seed(0)
    cfg = Config(rollout_length=64, max_kl=max_kl, vf_epochs=1)
    learner = Learner(cfg, spec, 4, 10_000, torch.device("cpu"))
    for seed in range(3):
        batch = _random_rollout(spec, 64, 4, seed)
        data = learner.prepare(batch)
        valid = data["valid"].reshape(-1)
        obs = data["obs"][:-1].flatten(0, 1)[valid]
        with torch.no_grad():
            before = learner.net.policy(obs)
        learner.observe(batch)
        stats = learner.update()
        with torch.no_grad():
            kl = float(learner.net.head.kl(before, learner.net.policy(obs)).mean())
        assert kl <= max_kl * (1 + 1e-4)
        assert stats["kl"] == pytest.approx(kl, rel=1e-3, abs=1e-7)
        if stats["line_search/accepted"]:
            assert stats["policy/improvement"] > 0
        assert all(math.isfinite(v) for v in stats.values())


def test_learner_value_fit_reduces_the_value_loss_and_the_policy_moves_only_by_trpo():
    torch.manual_seed(1)
    cfg = Config(rollout_length=128, vf_epochs=10, max_kl=1e-6)
    learner = Learner(cfg, CONT, 2, 10_000, torch.device("cpu"))
    batch = _random_rollout(CONT, 128, 2, 3)
    data = learner.prepare(batch)
    valid = data["valid"].reshape(-1)
    obs = data["obs"][:-1].flatten(0, 1)[valid]
    values = learner.values(data["obs"])
    from algos.returns import gae
    _, ret = gae(data["rewards"], values, data["terminated"], data["truncated"], cfg.gamma,
                 cfg.gae_lambda, data["valid"])
    ret = ret.reshape(-1)[valid]
    with torch.no_grad():
        loss_before = 0.5 * (learner.net.value(obs) - ret).pow(2).mean()
        pol_before = learner.net.policy(obs)
    learner.observe(batch)
    stats = learner.update()
    with torch.no_grad():
        kl = learner.net.head.kl(pol_before, learner.net.policy(obs)).mean()
    assert stats["loss/value"] < float(loss_before)
    assert float(kl) <= 1e-6 * (1 + 1e-4)  # ten epochs of value fitting did not move the policy
    assert "value/explained_variance" in stats


def test_pixel_networks_get_separate_torsos():
    spec = EnvSpec((4, 84, 84), True, 6, pixels=True)
    learner = Learner(Config(rollout_length=8), spec, 1, 1000, torch.device("cpu"))
    assert not learner.net.shared
    ids = {id(p) for p in learner.net.policy_parameters()}
    assert not ids & {id(p) for p in learner.net.value_parameters()}


def test_state_dict_round_trip_keeps_the_value_optimiser():
    torch.manual_seed(2)
    learner = Learner(Config(rollout_length=32, vf_epochs=2), CONT, 2, 10_000, torch.device("cpu"))
    learner.observe(_random_rollout(CONT, 32, 2, 4))
    learner.update()
    state = learner.state_dict()
    other = Learner(Config(rollout_length=32, vf_epochs=2), CONT, 2, 10_000, torch.device("cpu"))
    other.load_state_dict(state)
    for (n, p), (_, q) in zip(learner.named_parameters(), other.named_parameters()):
        assert torch.equal(p, q), n
    assert other.vf_opt.state_dict()["state"].keys() == learner.vf_opt.state_dict()["state"].keys()


@pytest.mark.slow
def test_trpo_solves_cartpole_within_100k_steps(tmp_path, read_eval_returns):
    from algos.train import RunSpec, run

    # CartPole defaults: RL Baselines3 Zoo's tuned TRPO (2 envs x 512 steps, cg_damping
    # 1e-3, GAE 0.98, 20 critic epochs); about 15-25 s on 2 cores
    status = run(RunSpec("trpo", "CartPole-v1", 0, 100_000,
                         {"eval_every": 10_240, "eval_episodes": 10}), tmp_path)
    assert status["state"] == "done"
    evals = read_eval_returns(tmp_path)
    assert evals[-1][0] <= 100_352
    assert evals[-1][1] >= 450, evals
