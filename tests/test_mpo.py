"""MPO: the E-step against a per-state softmax, the temperature dual's minimiser, the
M-step KLs against torch.distributions, Retrace against a brute-force loop, target
refreshes, the replay surviving a checkpoint, the categorical variant, and learning."""

import copy
import io
import math

import numpy as np
import pytest
import torch
from torch.distributions import Categorical, Normal, kl_divergence

from algos import mpo
from algos.base import Batch, EnvSpec
from algos.fast import mpo_targets
from algos.fast.cuda_graph import GraphedUpdate
from algos.mpo import (
    Config,
    Learner,
    action_penalty_cost,
    bootstrap_index,
    categorical_estep,
    categorical_mpo_loss,
    estep_weights,
    gaussian_mpo_loss,
    gaussian_mstep_kls,
)
from algos.networks import QCritic
from algos.ops import kl_to_uniform as nonparametric_kl
from algos.returns import nstep_returns, retrace

CONT = EnvSpec((3,), False, 2, (-2.0, -1.0), (2.0, 1.0))
DISC = EnvSpec((3,), True, 4)


# -- E-step --------------------------------------------------------------------------------


def test_estep_weights_are_the_per_state_softmax_of_q_over_eta():
    g = torch.Generator().manual_seed(0)
    q = torch.randn(20, 7, generator=g) * 5
    eta = torch.tensor(1.7)
    w, _ = estep_weights(q, eta, 0.1)
    q64 = q.double() / 1.7
    for b in range(7):
        e = torch.exp(q64[:, b] - q64[:, b].max())
        assert torch.allclose(w[:, b].double(), e / e.sum(), atol=1e-6)
    assert torch.allclose(w.sum(0), torch.ones(7))
    assert not w.requires_grad


def test_estep_is_overflow_safe():
    q = torch.tensor([[1e4, -1e4], [1e4 + 5.0, -1e4 - 5.0], [0.0, 3e4]])
    eta = torch.tensor(1e-3, requires_grad=True)
    w, loss = estep_weights(q, eta, 0.1)
    assert torch.isfinite(w).all() and torch.isfinite(loss)
    loss.backward()
    assert torch.isfinite(eta.grad)
    assert w[2, 1] == pytest.approx(1.0) and w[1, 0] == pytest.approx(1.0)


def test_temperature_loss_value():
    q = torch.tensor([[1.0, 0.0], [2.0, 0.0], [3.0, 6.0]])
    eta, eps = 2.0, 0.1
    _, loss = estep_weights(q, torch.tensor(eta), eps)
    ref = eta * eps + eta * np.mean([math.log(np.mean(np.exp(q[:, b].numpy() / eta))) for b in range(2)])
    assert float(loss) == pytest.approx(ref, rel=1e-6)


def _minimise_1d(f, lo=-8.0, hi=8.0, iters=200):
    """Golden-section search of f(log eta) on [lo, hi] (the dual is convex in eta)."""
    gr = (math.sqrt(5) - 1) / 2
    a, b = lo, hi
    c, d = b - gr * (b - a), a + gr * (b - a)
    for _ in range(iters):
        if f(c) < f(d):
            b = d
        else:
            a = c
        c, d = b - gr * (b - a), a + gr * (b - a)
    return (a + b) / 2


@pytest.mark.parametrize("eps,seed", [(0.1, 0), (0.05, 1), (0.5, 2)])
def test_at_the_dual_minimiser_the_estep_kl_equals_epsilon(eps, seed):
    g = torch.Generator().manual_seed(seed)
    q = (torch.randn(20, 64, generator=g) * torch.rand(1, 64, generator=g) * 10).double()

    def dual(log_eta):
        return float(estep_weights(q, torch.tensor(math.exp(log_eta), dtype=torch.float64), eps)[1])

    eta = math.exp(_minimise_1d(dual))
    w, _ = estep_weights(q, torch.tensor(eta, dtype=torch.float64), eps)
    # KL(q || pi_target) estimated on the samples of pi_target, averaged over states
    assert float(nonparametric_kl(w).mean()) == pytest.approx(eps, rel=1e-4)


@pytest.mark.parametrize("eps", [0.1, 0.01])
def test_categorical_dual_minimiser_gives_kl_epsilon_exactly(eps):
    g = torch.Generator().manual_seed(3)
    q = (torch.randn(32, 5, generator=g) * 4).double()
    logits = torch.randn(32, 5, generator=g).double()

    def dual(log_eta):
        return float(categorical_estep(q, logits, torch.tensor(math.exp(log_eta), dtype=torch.float64), eps)[1])

    eta = math.exp(_minimise_1d(dual))
    log_q, _ = categorical_estep(q, logits, torch.tensor(eta, dtype=torch.float64), eps)
    kl = kl_divergence(Categorical(logits=log_q), Categorical(logits=logits)).mean()
    assert float(kl) == pytest.approx(eps, rel=1e-4)


def test_categorical_estep_is_target_times_exp_q_over_eta():
    q = torch.tensor([[1.0, 2.0, 0.5]])
    logits = torch.tensor([[0.0, -1.0, 1.0]])
    log_q, loss = categorical_estep(q, logits, torch.tensor(0.5), 0.1)
    pi = torch.softmax(logits, -1)
    ref = pi * torch.exp(q / 0.5)
    assert torch.allclose(log_q.exp(), ref / ref.sum(), atol=1e-6)
    assert float(loss) == pytest.approx(0.5 * 0.1 + 0.5 * math.log(float(ref.sum())), rel=1e-6)


# -- M-step --------------------------------------------------------------------------------


def _gauss(seed, B=6, A=3):
    g = torch.Generator().manual_seed(seed)
    target = {"mu": torch.randn(B, A, generator=g), "std": torch.rand(B, A, generator=g) * 2 + 0.1}
    online = {"mu": (target["mu"] + 0.3 * torch.randn(B, A, generator=g)).requires_grad_(),
              "std": (target["std"] * (1 + 0.2 * torch.rand(B, A, generator=g))).requires_grad_()}
    return target, online


def test_mstep_kls_against_torch_distributions():
    target, online = _gauss(0)
    kl_mu, kl_sigma = gaussian_mstep_kls(target, online, per_dim=True)
    # KL(pi_target || N(mu_online, std_target)): the mean part is divided by sigma_old^2
    ref_mu = kl_divergence(Normal(target["mu"], target["std"]), Normal(online["mu"], target["std"]))
    # KL(pi_target || N(mu_target, std_online)): direction target -> online
    ref_sigma = kl_divergence(Normal(target["mu"], target["std"]), Normal(target["mu"], online["std"]))
    assert torch.allclose(kl_mu, ref_mu, atol=1e-6)
    assert torch.allclose(kl_sigma, ref_sigma, atol=1e-6)
    wrong_direction = kl_divergence(Normal(target["mu"], online["std"]), Normal(target["mu"], target["std"]))
    assert not torch.allclose(kl_sigma, wrong_direction, atol=1e-4)
    kl_mu_s, kl_sigma_s = gaussian_mstep_kls(target, online, per_dim=False)
    assert torch.allclose(kl_mu_s.squeeze(-1), ref_mu.sum(-1), atol=1e-6)
    assert torch.allclose(kl_sigma_s.squeeze(-1), ref_sigma.sum(-1), atol=1e-6)
    # with a tiny target std the mean KL is large (divided, not multiplied, by sigma^2)
    small = {"mu": target["mu"], "std": torch.full_like(target["std"], 1e-2)}
    assert gaussian_mstep_kls(small, online, True)[0].mean() > 100 * kl_mu.mean()


def test_gaussian_mpo_loss_terms():
    target, online = _gauss(1, B=5, A=2)
    g = torch.Generator().manual_seed(2)
    actions = target["mu"] + target["std"] * torch.randn(8, 5, 2, generator=g)
    w = torch.softmax(torch.randn(8, 5, generator=g), 0)
    alpha_mu = torch.tensor([2.0, 3.0], requires_grad=True)
    alpha_sigma = torch.tensor([5.0, 7.0], requires_grad=True)
    loss, stats = gaussian_mpo_loss(online, target, actions, w, alpha_mu, alpha_sigma, 0.01, 1e-4, True)
    lp_mean = Normal(online["mu"], target["std"]).log_prob(actions).sum(-1)
    lp_std = Normal(target["mu"], online["std"]).log_prob(actions).sum(-1)
    ref_pi = -(w * lp_mean).sum(0).mean() - (w * lp_std).sum(0).mean()
    assert float(stats["loss/policy"]) == pytest.approx(ref_pi.item(), rel=1e-5)
    kl_mu = kl_divergence(Normal(target["mu"], target["std"]), Normal(online["mu"], target["std"])).mean(0)
    kl_sig = kl_divergence(Normal(target["mu"], target["std"]), Normal(target["mu"], online["std"])).mean(0)
    pen = ((torch.tensor([2.0, 3.0]) * kl_mu).sum() + (torch.tensor([5.0, 7.0]) * kl_sig).sum()).detach()
    assert float(stats["loss/kl_penalty"]) == pytest.approx(pen.item(), rel=1e-5)
    loss.backward()
    # the alphas move against the constraint violation: d/d alpha = eps - KL
    assert torch.allclose(alpha_mu.grad, 0.01 - kl_mu.detach(), atol=1e-6)
    assert torch.allclose(alpha_sigma.grad, 1e-4 - kl_sig.detach(), atol=1e-6)
    # the mean's gradient includes the (non-zero) trust-region pull
    assert online["mu"].grad.abs().sum() > 0 and online["std"].grad.abs().sum() > 0


def test_decoupling_the_mean_loss_does_not_touch_the_std_and_vice_versa():
    target, online = _gauss(3, B=4, A=2)
    actions = target["mu"] + target["std"] * torch.randn(6, 4, 2)
    w = torch.full((6, 4), 1 / 6)
    zero = torch.zeros(2)
    loss, _ = gaussian_mpo_loss(online, target, actions, w, zero, zero, 0.01, 1e-4, True)
    gm, gs = torch.autograd.grad(loss, [online["mu"], online["std"]])
    # with fixed-std and fixed-mean parts, d/dmu only involves log N(a; mu, std_target)
    mu = online["mu"].detach().requires_grad_()
    ref = -(w * Normal(mu, target["std"]).log_prob(actions).sum(-1)).sum(0).mean()
    assert torch.allclose(gm, torch.autograd.grad(ref, mu)[0], atol=1e-6)
    std = online["std"].detach().requires_grad_()
    ref = -(w * Normal(target["mu"], std).log_prob(actions).sum(-1)).sum(0).mean()
    assert torch.allclose(gs, torch.autograd.grad(ref, std)[0], atol=1e-6)


def test_categorical_mpo_loss_against_torch_distributions():
    g = torch.Generator().manual_seed(4)
    target = torch.randn(6, 4, generator=g)
    online = (target + 0.5 * torch.randn(6, 4, generator=g)).requires_grad_()
    log_q = torch.log_softmax(torch.randn(6, 4, generator=g), -1)
    alpha = torch.tensor([3.0], requires_grad=True)
    loss, stats = categorical_mpo_loss(online, target, log_q, alpha, 0.0025)
    with torch.no_grad():
        ce = -(log_q.exp() * torch.log_softmax(online, -1)).sum(-1).mean()
        kl = kl_divergence(Categorical(logits=target), Categorical(logits=online)).mean()
    assert float(stats["loss/policy"]) == pytest.approx(float(ce), rel=1e-5)
    assert float(stats["kl"]) == pytest.approx(float(kl), rel=1e-5)
    assert loss.item() == pytest.approx(float(ce + 3.0 * kl + 3.0 * (0.0025 - kl)), rel=1e-5)
    loss.backward()
    assert float(alpha.grad) == pytest.approx(0.0025 - float(kl), abs=1e-6)


def test_categorical_mpo_on_a_bandit_moves_to_the_best_action():
    """Tiny case: one state, 4 actions with known Q; iterating E-step and M-step (target
    refreshed each round) puts almost all probability on the best action."""
    torch.manual_seed(0)
    q = torch.tensor([[0.0, 1.0, 0.5, -1.0]])
    logits = torch.zeros(1, 4, requires_grad=True)
    from algos.duals import Duals, make_optimizer

    duals = Duals({"eta": 3.0, "alpha": 3.0}, "softplus")
    opt = torch.optim.Adam([logits], lr=0.05)
    dopt = make_optimizer(duals, 0.01)
    target = logits.detach().clone()
    for it in range(1500):
        if it % 10 == 0:
            target = logits.detach().clone()
        log_q, loss_eta = categorical_estep(q, target, duals["eta"], 0.1)
        loss_pi, _ = categorical_mpo_loss(logits, target, log_q, duals["alpha"].view(1), 0.0025)
        opt.zero_grad()
        dopt.zero_grad()
        (loss_pi + loss_eta).backward()
        opt.step()
        dopt.step()
    assert torch.softmax(logits, -1)[0, 1] > 0.9


# -- critic and targets --------------------------------------------------------------------


def test_critic_sees_actions_clipped_to_the_bounds():
    torch.manual_seed(0)
    critic = QCritic(CONT, (16,), "relu")
    obs = torch.randn(5, 3)
    a = torch.tensor([[3.0, -5.0]] * 5)
    assert torch.equal(critic(obs, a), critic(obs, torch.tensor([[2.0, -1.0]] * 5)))


@pytest.mark.parametrize("activation", ["relu", "tanh", "elu"])
@pytest.mark.parametrize("hidden", [(16, 8), (16,), ()], ids=["2-layer", "1-layer", "linear"])
@pytest.mark.parametrize("rows", [1024, 10, 1], ids=["one-pass", "2-samples", "1-sample"])
def test_sampled_critic_equals_the_critic_on_repeated_states(activation, hidden, rows, monkeypatch):
    """The definition (`QCritic.sampled`) is the forward on each state repeated N times,
    and the fast path (`mpo_targets.sampled_split`) equals it, in passes of 7, 2 (+1) and
    1 samples."""
    torch.manual_seed(0)
    monkeypatch.setattr(mpo_targets, "ROWS", rows)
    critic = QCritic(CONT, hidden, activation)
    N, M = 7, 5
    obs = torch.randn(M, 3)
    actions = torch.randn(N, M, 2) * 3  # many outside the bounds: clipped in both paths
    expected = torch.stack([critic(obs, actions[n]) for n in range(N)]).detach()
    # the same rows, in one batch instead of N: BLAS may round differently
    torch.testing.assert_close(critic.sampled(obs, actions), expected, rtol=1e-6, atol=1e-7)
    got = mpo_targets.sampled_split(critic, obs, actions)
    assert got.shape == (N, M) and not got.requires_grad
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)


def _run_updates(learner, n):
    return [learner.update() for _ in range(n)]


def test_the_sampled_critic_fast_path_is_checked_and_stays_on_when_equal():
    torch.manual_seed(0)
    learner = Learner(_small_cfg(), CONT, 2, 10_000, torch.device("cpu"))
    guard = learner.sampled_q.guard
    assert guard.active and guard.checks == 1  # at construction
    _fill(learner, CONT, 6)
    stats = _run_updates(learner, 3)[-1]
    assert guard.checks == 2  # and on the first update's real batch
    assert stats["fast/sampled_q"] == 1.0
    assert 0 < stats["fast/sampled_q_max_rel_err"] < 1e-5


def test_checks_of_the_sampled_critic_change_no_number(monkeypatch):
    """A check returns the fast path's values and draws no random number: a run checking
    every update equals one checking only at construction and at the first update, bit
    for bit."""
    def run(every):
        monkeypatch.setattr(mpo_targets.SampledQ, "EVERY", every)
        torch.manual_seed(3)
        learner = Learner(_small_cfg(), CONT, 2, 10_000, torch.device("cpu"))
        _fill(learner, CONT, 6)
        stats = _run_updates(learner, 6)
        return learner, stats

    a, sa = run(1)
    b, sb = run(10**9)
    assert a.sampled_q.guard.checks == 7 and b.sampled_q.guard.checks == 2
    for x, y in zip(sa, sb):
        for k in x:
            if not k.startswith("fast/"):
                assert torch.equal(torch.as_tensor(x[k]), torch.as_tensor(y[k])), k
    for p, q in zip(a.policy.parameters(), b.policy.parameters()):
        assert torch.equal(p, q)


def test_a_patched_critic_forward_makes_the_targets_take_the_definition(monkeypatch, capsys):
    """A change to the critic's maths that the split path does not know (here +0.5 in the
    forward) is seen at construction: the targets then come from `QCritic.sampled`, the
    patched definition, one line says so on stderr and the metric is 0."""
    real = QCritic.forward
    monkeypatch.setattr(QCritic, "forward", lambda self, obs, action=None: real(self, obs, action) + 0.5)
    torch.manual_seed(1)
    learner = Learner(_small_cfg(), CONT, 2, 10_000, torch.device("cpu"))
    err = capsys.readouterr().err
    assert err.count("fast path off") == 1 and "sampled-action critic" in err and "at construction" in err
    assert not learner.sampled_q.guard.active
    _fill(learner, CONT, 6)
    stats = learner.update()
    assert stats["fast/sampled_q"] == 0.0 and stats["fast/sampled_q_max_rel_err"] > 1e-3
    obs, actions = torch.randn(4, 3), torch.randn(5, 4, 2)
    critic = learner.target_critic
    torch.testing.assert_close(learner.sampled_q(critic, obs, actions), critic.sampled(obs, actions),
                               rtol=0, atol=0)
    assert (critic.sampled(obs, actions) - mpo_targets.sampled_split(critic, obs, actions)).abs().min() > 0.4
    assert capsys.readouterr().err == ""  # said once


def test_a_stepped_aside_fast_path_stays_aside_after_a_resume(capsys):
    torch.manual_seed(2)
    a = Learner(_small_cfg(), CONT, 2, 10_000, torch.device("cpu"))
    a.sampled_q.guard.step_aside("in a test")
    b = Learner(_small_cfg(), CONT, 2, 10_000, torch.device("cpu"))
    b.load_state_dict(copy.deepcopy(a.state_dict()))
    assert not b.sampled_q.guard.active
    assert "had stepped aside before the checkpoint" in capsys.readouterr().err


def test_action_penalty_is_zero_inside_the_bounds():
    low, high = torch.tensor([-2.0, -1.0]), torch.tensor([2.0, 1.0])
    a = torch.tensor([[0.0, 0.5], [3.0, 0.0], [-2.0, -4.0]])
    assert torch.allclose(action_penalty_cost(a, low, high), torch.tensor([0.0, -1.0, -3.0]))


def test_bootstrap_index_is_the_only_value_the_first_nstep_target_reads():
    g = torch.Generator().manual_seed(5)
    L, B = 5, 200
    r = torch.randn(L, B, generator=g)
    v = torch.randn(L + 1, B, generator=g)
    term = torch.rand(L, B, generator=g) < 0.15
    trunc = (torch.rand(L, B, generator=g) < 0.15) & ~term
    valid = torch.ones(L, B, dtype=torch.bool)
    valid[1:] = ~(term | trunc)[:-1]
    j = bootstrap_index(term, trunc)
    only = torch.zeros_like(v)
    only[j, torch.arange(B)] = v[j, torch.arange(B)]
    full = nstep_returns(r, v, term, trunc, 0.9, L, valid)[0]
    assert torch.allclose(nstep_returns(r, only, term, trunc, 0.9, L, valid)[0], full)
    assert ((j >= 1) & (j <= L)).all()


# -- Retrace -------------------------------------------------------------------------------


def _seq_data(T=10, B=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    r = torch.randn(T, B, generator=g)
    q = torch.randn(T, B, generator=g)
    v = torch.randn(T + 1, B, generator=g)
    log_rho = torch.randn(T, B, generator=g)
    term = torch.zeros(T, B, dtype=torch.bool)
    trunc = torch.zeros(T, B, dtype=torch.bool)
    term[3, 0] = True
    trunc[6, 0] = True
    trunc[4, 1] = True
    term[T - 1, 2] = True
    valid = torch.ones(T, B, dtype=torch.bool)
    valid[1:] = ~(term | trunc)[:-1]
    r[~valid] = 0
    return r, q, v, log_rho, term, trunc, valid


def brute_retrace(r, q, v, log_rho, term, trunc, gamma, lam):
    T, B = r.shape
    out = torch.zeros(T, B, dtype=torch.float64)
    for b in range(B):
        for t in range(T):
            total, coef = float(q[t, b]), 1.0
            for k in range(t, T):
                if k > t:
                    coef *= gamma * lam * min(1.0, math.exp(float(log_rho[k, b])))
                boot = 0.0 if term[k, b] else gamma * float(v[k + 1, b])
                total += coef * (float(r[k, b]) + boot - float(q[k, b]))
                if term[k, b] or trunc[k, b]:
                    break
            out[t, b] = total
    return out


@pytest.mark.parametrize("gamma,lam", [(0.99, 0.95), (0.9, 1.0), (0.5, 0.0)])
def test_retrace_matches_brute_force(gamma, lam):
    r, q, v, log_rho, term, trunc, valid = _seq_data(seed=int(lam * 10))
    out = retrace(r, q, v, log_rho, term, trunc, gamma, lam, valid)
    ref = brute_retrace(r, q, v, log_rho, term, trunc, gamma, lam)
    assert torch.allclose(out[valid].double(), ref[valid], atol=1e-5)
    assert torch.equal(out[~valid], q[~valid])


def test_retrace_with_zero_traces_is_the_one_step_target():
    r, q, v, log_rho, term, trunc, valid = _seq_data(seed=3)
    out = retrace(r, q, v, log_rho, term, trunc, 0.9, 0.0, valid)
    one = r + 0.9 * (~term).float() * v[1:]
    assert torch.allclose(out[valid], one[valid], atol=1e-6)


# -- the learner ---------------------------------------------------------------------------


def _small_cfg(**kw):
    base = {"rollout_length": 16, "min_replay_size": 64, "batch_size": 16, "num_samples": 5,
            "critic_hidden": (16,), "hidden": (16,), "replay_capacity": 2000, "replay_ratio": 1.0}
    base.update(kw)
    return Config(**base)


def _rollout(spec, T, B, seed, start=None):
    g = torch.Generator().manual_seed(seed)
    obs = torch.randn(T + 1, B, *spec.obs_shape, generator=g)
    if start is not None:
        obs[0] = start
    if spec.discrete:
        actions = torch.randint(0, spec.action_dim, (T, B), generator=g)
    else:
        actions = torch.randn(T, B, spec.action_dim, generator=g)
    rewards = torch.randn(T, B, generator=g)
    term = torch.rand(T, B, generator=g) < 0.05
    trunc = (torch.rand(T, B, generator=g) < 0.05) & ~term
    valid = torch.ones(T, B, dtype=torch.bool)
    valid[1:] = ~(term | trunc)[:-1]
    rewards[~valid] = 0
    return Batch(obs, actions, rewards, term, trunc, valid,
                 {"log_prob": torch.randn(T, B, generator=g) - 2})


def _fill(learner, spec, n, B=2, T=16):
    last = None
    for i in range(n):
        b = _rollout(spec, T, B, i, start=last)
        last = b.obs[-1]
        learner.observe(b)


@pytest.mark.parametrize("spec", [CONT, DISC], ids=["gaussian", "categorical"])
@pytest.mark.parametrize("retrace_", [False, True], ids=["nstep", "retrace"])
def test_learner_updates_are_finite_and_owed_at_the_replay_ratio(spec, retrace_):
    torch.manual_seed(0)
    learner = Learner(_small_cfg(use_retrace=retrace_, replay_ratio=0.5), spec, 2, 10_000,
                      torch.device("cpu"))
    _fill(learner, spec, 2)  # 64 steps: the minimum, nothing owed yet
    assert not learner.ready()
    _fill(learner, spec, 1)  # 32 more steps at 0.5 per step: 16 updates owed
    n = 0
    while learner.ready():
        stats = learner.update()
        n += 1
        assert all(math.isfinite(x) for x in stats.values()), stats
    assert n == 16
    for key in ("loss/critic", "loss/policy", "loss/eta", "dual/eta", "kl/q_rel", "q/mean"):
        assert key in stats


# what reads a tensor back to the host (a device synchronisation on a GPU)
_HOST_READS = {"item", "tolist", "__float__", "__int__", "__bool__", "numpy", "cpu"}


def test_an_update_reads_nothing_back_from_the_device():
    """MPO's own code in update() (sampling, targets, losses, stats) never reads a tensor
    back: on a GPU the updates of a rollout queue up without waiting for the host. (Torch's
    own CPU paths, e.g. Adam's step counter, are not MPO's code and are not counted.)"""
    import sys

    from torch.overrides import TorchFunctionMode

    ours = ("algos/mpo.py", "algos/buffers.py", "algos/distributions.py", "algos/duals.py",
            "algos/ops.py", "algos/networks.py", "algos/fast/mpo_targets.py", "algos/fast/cuda_graph.py")

    class Reads(TorchFunctionMode):
        def __init__(self):
            super().__init__()
            self.seen: list[str] = []

        def __torch_function__(self, func, types, args=(), kwargs=None):
            name = getattr(func, "__name__", "")
            if name in _HOST_READS:
                caller = sys._getframe(1).f_code.co_filename.replace("\\", "/")
                if caller.endswith(ours):
                    self.seen.append(f"{name} in {caller}:{sys._getframe(1).f_lineno}")
            return func(*args, **(kwargs or {}))

    torch.manual_seed(4)
    learner = Learner(_small_cfg(), CONT, 2, 10_000, torch.device("cpu"))
    _fill(learner, CONT, 6)
    learner.update()
    with Reads() as reads:
        for _ in range(3):
            stats = learner.update()
    assert reads.seen == []
    assert all(torch.is_tensor(v) or isinstance(v, float) for v in stats.values())
    # the detector does see a read in MPO's code where there is one: acting through
    # torch hands the actions back to the host (once per env step, by design)
    learner.np_actor = None
    with Reads() as reads:
        learner.act(np.zeros((2, 3), dtype=np.float32))
    assert any(r.startswith("cpu in") and "algos/mpo.py" in r for r in reads.seen), reads.seen


def test_target_networks_refresh_on_schedule():
    torch.manual_seed(1)
    learner = Learner(_small_cfg(target_period=3, policy_lr=1e-2, critic_lr=1e-2), CONT, 2,
                      10_000, torch.device("cpu"))
    _fill(learner, CONT, 6)

    def same(a, b):
        return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))

    frozen = [p.clone() for p in learner.target_policy.parameters()]
    for i in range(1, 10):
        learner.update()
        if i % 3 == 0:
            assert same(learner.target_policy, learner.policy), i
            assert same(learner.target_critic, learner.critic), i
            frozen = [p.clone() for p in learner.target_policy.parameters()]
        else:
            assert not same(learner.target_policy, learner.policy), i
            assert all(torch.equal(p, q) for p, q in zip(frozen, learner.target_policy.parameters()))


def test_the_trust_region_is_against_the_target_not_a_stop_gradient_copy():
    torch.manual_seed(2)
    learner = Learner(_small_cfg(target_period=1000, policy_lr=1e-2), CONT, 2, 10_000,
                      torch.device("cpu"))
    _fill(learner, CONT, 6)
    learner.update()
    stats = learner.update()  # the online policy has moved away from the target
    assert stats["kl/mean"] > 0 and stats["kl/std"] > 0
    # the penalty has a gradient towards the target
    obs = torch.randn(8, 3)
    online, target = learner.policy(obs), learner.target_policy(obs)
    kl_mu, _ = gaussian_mstep_kls(target, online, True)
    grads = torch.autograd.grad(kl_mu.mean(), list(learner.policy.parameters()), allow_unused=True)
    assert sum(float(g.abs().sum()) for g in grads if g is not None) > 0


@pytest.mark.parametrize("spec", [CONT, DISC], ids=["gaussian", "categorical"])
def test_state_dict_round_trip_keeps_the_replay_and_continues_identically(spec):
    torch.manual_seed(3)
    cfg = _small_cfg()
    a = Learner(cfg, spec, 2, 10_000, torch.device("cpu"))
    _fill(a, spec, 4)
    for _ in range(5):
        a.update()
    f = io.BytesIO()
    torch.save(a.state_dict(), f)
    f.seek(0)
    b = Learner(cfg, spec, 2, 10_000, torch.device("cpu"))
    b.load_state_dict(torch.load(f, weights_only=False))
    assert len(b.buffer) == len(a.buffer) == 128
    for k in a.buffer.arrays:
        np.testing.assert_array_equal(a.buffer.arrays[k], b.buffer.arrays[k])
    assert (b.updates, b.env_steps) == (a.updates, a.env_steps)
    torch.manual_seed(9)
    sa = a.update()
    torch.manual_seed(9)
    sb = b.update()
    # fast/<name>_max_rel_err is each guard's running max since construction, not part of
    # the checkpoint (a resumed learner checks its fast paths afresh), so it depends on
    # which updates were checked; on a CPU where the fast and reference paths round alike
    # both are 0, elsewhere ~1e-7 and different. Everything the update computes must match.
    history = {k for k in sa if k.startswith("fast/") and k.endswith("_max_rel_err")}
    assert {k: v for k, v in sa.items() if k not in history} == \
           {k: v for k, v in sb.items() if k not in history}
    # and b's own checks passed: a guard whose check fails steps its fast path aside (0)
    assert all(sb[k.removesuffix("_max_rel_err")] == 1 for k in history)
    obs = np.random.default_rng(0).standard_normal((2, 3)).astype(np.float32)
    assert np.array_equal(a.act(obs)[0], b.act(obs)[0])


def test_resumed_run_keeps_its_replay(tmp_path, monkeypatch):
    """Through the training loop: a run that fails after a checkpoint resumes with the
    checkpoint's replay data (not an empty buffer)."""
    from algos import mpo
    from algos.train import RunSpec, run

    over = {"eval_every": 0, "eval_episodes": 1, "checkpoint_every": 400, "min_replay_size": 100,
            "batch_size": 8, "num_samples": 4, "critic_hidden": [16], "rollout_length": 50,
            "replay_ratio": 0.1}
    spec = RunSpec("mpo", "Pendulum-v1", 0, 800, over)
    real_update = mpo.Learner.update

    def failing_update(self):
        if self.env_steps > 500:
            raise RuntimeError("simulated crash")
        return real_update(self)

    monkeypatch.setattr(mpo.Learner, "update", failing_update)
    with pytest.raises(RuntimeError, match="simulated crash"):
        run(spec, tmp_path)
    monkeypatch.setattr(mpo.Learner, "update", real_update)
    seen = {}
    real_load = mpo.Learner.load_state_dict

    def spying_load(self, state):
        real_load(self, state)
        seen["replay"] = len(self.buffer)
        seen["env_steps"] = self.env_steps

    monkeypatch.setattr(mpo.Learner, "load_state_dict", spying_load)
    status = run(spec, tmp_path)
    assert status["state"] == "done" and status["resumed_at"] == [400]
    assert seen == {"replay": 400, "env_steps": 400}
    ckpt = torch.load(tmp_path / "checkpoint.pt", weights_only=False)
    # 800 steps stored plus one padding step where the resumed envs restarted
    assert ckpt["learner"]["buffer"]["filled"] == 801


def test_discrete_mpo_runs_on_cartpole(tmp_path):
    from algos.train import RunSpec, run

    over = {"eval_every": 0, "eval_episodes": 2, "min_replay_size": 200, "batch_size": 32,
            "rollout_length": 50}
    status = run(RunSpec("mpo", "CartPole-v1", 0, 1000, over), tmp_path)
    assert status["state"] == "done"


# -- learning ------------------------------------------------------------------------------


@pytest.mark.slow
def test_mpo_learns_pendulum(tmp_path, read_eval_returns):
    from algos.train import RunSpec, run

    # Pendulum defaults: the classic-suite MPO setting (see mpo.Config.SUITE_DEFAULTS:
    # one update per env step, (64, 64) critic). Seeds 0-2 reached -120..-170 by 10k
    # steps; about 2 min on 2 idle cores (15k updates of ~7 ms)
    status = run(RunSpec("mpo", "Pendulum-v1", 0, 15_000,
                         {"eval_every": 5_000, "eval_episodes": 10}), tmp_path)
    assert status["state"] == "done"
    evals = read_eval_returns(tmp_path)
    assert evals[-1][1] >= -250, evals


def test_logged_duals_are_this_updates_values_under_projection():
    """With projected duals a stat's tensor would otherwise be the parameter itself, which
    the next updates change in place before the loop reads the rollout's stats."""
    torch.manual_seed(5)
    learner = Learner(_small_cfg(dual_parameterization="projection", dual_lr=0.5), CONT, 2,
                      10_000, torch.device("cpu"))
    _fill(learner, CONT, 6)
    first = learner.update()
    eta_then = float(first["dual/eta"])
    assert eta_then == pytest.approx(float(learner.duals["eta"].detach()))
    for _ in range(3):
        learner.update()
    assert float(learner.duals["eta"].detach()) != pytest.approx(eta_then)
    assert float(first["dual/eta"]) == eta_then


# -- the same update from given noise, and on a GPU (CUDA graph) --------------------------


@pytest.mark.parametrize("retrace_", [False, True], ids=["nstep", "retrace"])
def test_learn_from_given_noise_equals_learn_drawing_it(retrace_):
    """`learn(seq, noise)` with the draws `learn(seq)` would take gives the same update:
    what lets the CUDA graph draw its noise outside the graph without changing a run."""
    torch.manual_seed(5)
    cfg = _small_cfg(use_retrace=retrace_)
    a = Learner(cfg, CONT, 2, 10_000, torch.device("cpu"))
    _fill(a, CONT, 6)
    b = copy.deepcopy(a)
    seq = a.buffer.sample(cfg.batch_size, cfg.nstep, np.random.default_rng(0))
    torch.manual_seed(6)
    sa = a.learn(seq)
    torch.manual_seed(6)
    noise = torch.randn(b.noise_shape())
    sb = b.learn(seq, noise)
    assert noise.shape == (cfg.num_samples, (cfg.nstep + 1 if retrace_ else 2) * cfg.batch_size, 2)
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(torch.as_tensor(sa[k]), torch.as_tensor(sb[k])), k
    for p, q in zip(a.policy.parameters(), b.policy.parameters()):
        assert torch.equal(p, q)
    # and other noise gives another update (the noise is used)
    c = copy.deepcopy(b)
    c.learn(seq, noise.flip(0) * 0.5)
    assert not all(torch.equal(p, q) for p, q in zip(c.critic.parameters(), a.critic.parameters()))


cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def _cuda_pair(spec, cfg_kw, seed=7):
    """An eager and a graphed learner on the GPU from the same weights and replay."""
    dev = torch.device("cuda")
    torch.manual_seed(seed)
    eager = Learner(_small_cfg(**cfg_kw), spec, 2, 10_000, dev)
    eager.graph = None
    _fill(eager, spec, 6)
    graphed = Learner(_small_cfg(**cfg_kw), spec, 2, 10_000, dev)
    graphed.load_state_dict(eager.state_dict())
    return eager, graphed


@cuda
@pytest.mark.parametrize("spec", [CONT, DISC], ids=["gaussian", "categorical"])
@pytest.mark.parametrize("retrace_", [False, True], ids=["nstep", "retrace"])
def test_graphed_updates_equal_eager_updates_on_cuda(spec, retrace_):
    """The captured graph replays the eager update: same samples, same noise, same
    parameters and stats over warm-up, capture and replays, a target refresh included."""
    eager, graphed = _cuda_pair(spec, {"use_retrace": retrace_, "target_period": 4})
    assert graphed.graph is not None and graphed.graph.active and eager.graph is None
    for i in range(10):
        torch.cuda.manual_seed(100 + i)
        se = eager.update()
        torch.cuda.manual_seed(100 + i)
        sg = graphed.update()
        assert set(sg) == set(se) | {"fast/cuda_graph", "fast/cuda_graph_max_rel_err"}
        for k in se:
            assert torch.allclose(torch.as_tensor(se[k]).float().cpu(), torch.as_tensor(sg[k]).float().cpu(),
                                  rtol=1e-4, atol=1e-5), (i, k, se[k], sg[k])
    assert graphed.graph.captured and graphed.graph.active  # it did capture and replay
    for (n, p), q in zip(eager.named_parameters(), dict(graphed.named_parameters()).values()):
        assert torch.allclose(p, q, rtol=1e-4, atol=1e-5), n


@cuda
@pytest.mark.parametrize("graph", [False, True], ids=["eager", "graphed"])
def test_an_update_never_waits_for_the_gpu(graph):
    """No update synchronises the host with the device (torch's sync debug mode raises on
    every synchronising call), so a rollout's updates queue up on the GPU."""
    eager, graphed = _cuda_pair(CONT, {})
    learner = graphed if graph else eager
    for _ in range(GraphedUpdate.WARMUP + 2):  # past warm-up and capture
        learner.update()
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for _ in range(5):
            stats = learner.update()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert all(v.device.type == "cuda" for v in stats.values() if torch.is_tensor(v))
    assert all(v.device.type == "cuda" for v in learner.buffer.arrays.values())


@cuda
def test_a_graphed_learner_resumes_from_a_checkpoint_on_the_cpu():
    """A GPU run's checkpoint (its optimisers marked capturable) loads into a CPU learner,
    which then updates; the GPU learner re-captures after a load."""
    _, graphed = _cuda_pair(CONT, {})
    for _ in range(GraphedUpdate.WARMUP + 2):
        graphed.update()
    state = graphed.state_dict()
    cpu = Learner(_small_cfg(), CONT, 2, 10_000, torch.device("cpu"))
    cpu.load_state_dict(copy.deepcopy(state))
    assert all(math.isfinite(float(v)) for v in cpu.update().values())
    graphed.load_state_dict(state)
    assert not graphed.graph.captured
    for _ in range(GraphedUpdate.WARMUP + 2):
        stats = graphed.update()
    assert graphed.graph.captured and all(math.isfinite(float(v)) for v in stats.values())


# -- the CUDA graph's guard, on the CPU: a stand-in that freezes Python values -------------


class FrozenBackend:
    """A CPU stand-in for a CUDA graph: `capture` records the update, and each replay runs
    it with algos.mpo's module-level values and the optimisers' hyper-parameters as they
    were at capture (a graph replays the kernels it recorded, with the scalars it recorded,
    whatever Python would do now); the rest as CudaBackend."""

    def warmup(self, fn):
        return fn()

    def prepare(self, optimizers):
        self.optimizers = optimizers

    def tensor(self, src):
        return torch.from_numpy(src).clone()

    def upload(self, dst, src):
        dst.copy_(torch.from_numpy(src))

    def capture(self, fn):
        frozen = dict(vars(mpo))
        groups = [g for opt in self.optimizers for g in opt.param_groups]
        frozen_groups = [dict(g) for g in groups]

        def replay():
            live, live_groups = dict(vars(mpo)), [dict(g) for g in groups]
            vars(mpo).update(frozen)
            for g, f in zip(groups, frozen_groups):
                g.update(f)
            try:
                return fn()
            finally:
                vars(mpo).update(live)
                for g, f in zip(groups, live_groups):
                    g.update(f)

        return replay


def _graphed_and_eager(seed=11, **kw):
    """A learner updating through the stand-in graph and an eager one, same weights and replay."""
    out = []
    for graphed in (True, False):
        torch.manual_seed(seed)
        learner = Learner(_small_cfg(**kw), CONT, 2, 10_000, torch.device("cpu"))
        assert learner.graph is None  # never on the CPU by itself
        if graphed:
            learner.graph = GraphedUpdate(learner, Learner.STATE_NAMES, FrozenBackend())
        _fill(learner, CONT, 6)
        out.append(learner)
    return out


def _update_both(graphed, eager, i):
    torch.manual_seed(100 + i)  # the noise of the sampled actions
    sg = graphed.update()
    torch.manual_seed(100 + i)
    se = eager.update()
    return sg, se


def _same_parameters(a, b):
    return all(torch.equal(p, q) for (_, p), (_, q) in zip(a.named_parameters(), b.named_parameters()))


def test_the_graph_guard_keeps_a_graph_equal_to_the_eager_update(monkeypatch):
    monkeypatch.setattr(GraphedUpdate, "EVERY", 2)
    graphed, eager = _graphed_and_eager(target_period=4)
    for i in range(10):
        sg, se = _update_both(graphed, eager, i)
        assert set(sg) == set(se) | {"fast/cuda_graph", "fast/cuda_graph_max_rel_err"}
        for k in se:
            assert torch.equal(torch.as_tensor(sg[k]).float(), torch.as_tensor(se[k]).float()), (i, k)
    assert graphed.graph.captured and graphed.graph.active and graphed.graph.guard.checks == 4
    assert sg["fast/cuda_graph"] == 1.0 and sg["fast/cuda_graph_max_rel_err"] == 0.0
    assert _same_parameters(graphed, eager)


def test_a_change_the_graph_cannot_see_makes_it_step_aside(monkeypatch, capsys):
    """After capture, a function of the update changes (here the critic's loss doubled):
    the replay would run the old one. The comparison with the eager update on a copy sees
    it at the next check, the eager result is taken, and the run goes on eagerly: equal
    to a run that was eager throughout, bit for bit."""
    monkeypatch.setattr(GraphedUpdate, "EVERY", 1)
    graphed, eager = _graphed_and_eager()
    for i in range(5):  # 3 warm-ups, the capture and a replay
        _update_both(graphed, eager, i)
    assert graphed.graph.captured and graphed.graph.active
    real = mpo.critic_loss
    monkeypatch.setattr(mpo, "critic_loss", lambda q, g: (lambda loss, s: (2 * loss, s))(*real(q, g)))
    for i in range(5, 9):
        sg, _ = _update_both(graphed, eager, i)
    err = capsys.readouterr().err
    assert err.count("fast path off") == 1 and "CUDA graph" in err and "at update 6" in err
    assert not graphed.graph.active and sg["fast/cuda_graph"] == 0.0
    assert sg["fast/cuda_graph_max_rel_err"] > 1e-3
    assert _same_parameters(graphed, eager)


def test_a_python_value_changed_after_capture_stops_the_graph_before_it_replays(capsys):
    """An lr schedule (here the policy's lr halved after capture) is a Python value the
    graph froze: the graph steps aside before replaying it, without waiting for a check."""
    graphed, eager = _graphed_and_eager()
    for i in range(5):
        _update_both(graphed, eager, i)
    for learner in (graphed, eager):
        learner.policy_opt.param_groups[0]["lr"] *= 0.5
    sg, _ = _update_both(graphed, eager, 5)
    err = capsys.readouterr().err
    assert err.count("fast path off") == 1 and "froze at capture" in err and "at update 6" in err
    assert sg["fast/cuda_graph"] == 0.0 and graphed.graph.guard.checks == 1  # only the first replay's
    for i in range(6, 8):
        _update_both(graphed, eager, i)
    assert _same_parameters(graphed, eager)


@cuda
def test_an_lr_changed_after_capture_makes_the_cuda_graph_step_aside(capsys):
    """On the device: a Python value the graph froze changes (an lr schedule's step); the
    graph steps aside before replaying it and the run continues as the eager one."""
    eager, graphed = _cuda_pair(CONT, {})
    for i in range(GraphedUpdate.WARMUP + 2):
        torch.cuda.manual_seed(200 + i)
        eager.update()
        torch.cuda.manual_seed(200 + i)
        graphed.update()
    assert graphed.graph.captured
    for learner in (eager, graphed):
        learner.policy_opt.param_groups[0]["lr"] *= 0.5
    for i in range(3):
        torch.cuda.manual_seed(300 + i)
        eager.update()
        torch.cuda.manual_seed(300 + i)
        stats = graphed.update()
    assert not graphed.graph.active and stats["fast/cuda_graph"] == 0.0
    assert "froze at capture" in capsys.readouterr().err
    for (n, p), q in zip(eager.named_parameters(), dict(graphed.named_parameters()).values()):
        assert torch.allclose(p, q, rtol=1e-4, atol=1e-5), n
