"""The fast paths step aside when their torch definition changes (algos/fast/guard.py).

A term patched into PPO's loss, or a change patched into the Gaussian head, must make
the run use autograd / act through torch, say so on stderr and in the metrics, and then
learn exactly what the torch definition says. Without the guards every test below that
patches something fails: the numpy paths ignore the patch."""

import copy
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from algos import ppo
from algos.base import Batch, EnvSpec
from algos.fast import flat_adam as flat_adam_mod
from algos.fast import ppo_step
from algos.fast.flat_adam import FlatAdam
from algos.fast.guard import Guard, max_rel_err
from algos.fast.numpy_actor import ACTOR_CHECK_EVERY, NumpyActor
from algos.networks import ActorCritic, CategoricalHead, GaussianHead, mlp, policy_act

CONT = EnvSpec((5,), False, 2, (-1.0, -1.0), (1.0, 1.0))
DISC = EnvSpec((4,), True, 3)
CPU = torch.device("cpu")


def _cfg(**kw):
    base = dict(rollout_length=100, epochs=2, minibatch_size=32, hidden=(16, 16), lr=3e-3,
                ent_coef=0.01, norm_obs=True, norm_reward=False)
    return ppo.Config(**{**base, **kw})


def _learner(cfg=None, spec=CONT, seed=0, cls=ppo.Learner):
    torch.manual_seed(seed)
    return cls(cfg or _cfg(), spec, 1, 10_000, CPU)


def _batch(spec, T=100, seed=0):
    g = torch.Generator().manual_seed(seed)
    actions = (torch.randint(0, spec.action_dim, (T, 1), generator=g) if spec.discrete
               else torch.randn(T, 1, spec.action_dim, generator=g))
    terminated = torch.zeros(T, 1, dtype=torch.bool)
    terminated[50] = True
    valid = torch.ones(T, 1, dtype=torch.bool)
    valid[51] = False
    return Batch(obs=2.0 + 3.0 * torch.randn(T + 1, 1, *spec.obs_shape, generator=g), actions=actions,
                 rewards=torch.randn(T, 1, generator=g), terminated=terminated,
                 truncated=torch.zeros(T, 1, dtype=torch.bool), valid=valid)


def _update(learner, seed=1):
    learner.observe(_batch(learner.spec))
    torch.manual_seed(seed)  # the same permutations for every learner compared
    return learner.update()


def _stderr_lines(capsys, name):
    return [ln for ln in capsys.readouterr().err.splitlines() if f"fast/{name} = 0" in ln]


# -- the guard itself ---------------------------------------------------------------------


def test_max_rel_err_is_per_block_and_scaled_by_each_block():
    ref = [np.array([100.0, -50.0]), np.array([1e-3, 2e-3])]
    fast = [np.array([100.01, -50.0]), np.array([1e-3, 2.1e-3])]
    # brute force: block 0 off by 0.01/100, block 1 by 1e-4/2e-3
    assert max_rel_err(fast, ref) == pytest.approx(max(0.01 / 100, 1e-4 / 2e-3))
    # a block that is zero in the reference is measured against 1e-6 of the largest block
    assert max_rel_err([np.array([1e-5]), np.array([1.0])],
                       [np.array([0.0]), np.array([1.0])]) == pytest.approx(1e-5 / 1e-6)
    assert max_rel_err([np.array([np.nan])], [np.array([1.0])]) == np.inf
    assert np.isnan(max_rel_err([np.array([1.0])], [np.array([np.inf])]))  # inconclusive
    with pytest.raises(ValueError, match="shapes"):
        max_rel_err([np.zeros(2)], [np.zeros(3)])


def test_guard_schedule_and_one_line_on_stderr(capsys):
    g = Guard("x", "the x path", "the y path", tol=1e-3, every=3)
    assert g.due()  # the first occasion
    assert g.record(1e-5, "at 0") and g.checks == 1
    assert [g.due() for _ in range(4)] == [False, False, True, True]  # due until checked
    assert not g.record(0.5, "at 3")
    assert not g.record(0.7, "at 4")  # already off: no second line
    lines = _stderr_lines(capsys, "x")
    assert len(lines) == 1
    assert "the x path" in lines[0] and "error 0.5 > tolerance 0.001" in lines[0]
    assert "the y path" in lines[0]
    assert g.stats() == {"fast/x": 0.0, "fast/x_max_rel_err": 0.7}
    assert not g.due()
    g.record(float("inf"), "at 5")
    assert np.isfinite(g.stats()["fast/x_max_rel_err"])  # the loop stops runs on non-finite stats


# -- PPO's numpy step ---------------------------------------------------------------------


def _with_mu_sq_term(monkeypatch, coef=0.1):
    """ppo_loss + coef * mean(log pi^2): a term of the whole distribution (mu and sigma
    through log pi), the sort of term the numpy backward knows nothing of."""
    orig = ppo.ppo_loss

    def patched(log_prob, *args, **kwargs):
        loss, stats = orig(log_prob, *args, **kwargs)
        return loss + coef * log_prob.pow(2).mean(), stats

    monkeypatch.setattr(ppo, "ppo_loss", patched)


@pytest.mark.parametrize("spec", [CONT, DISC], ids=["gaussian", "categorical"])
def test_a_term_patched_into_ppo_loss_makes_the_run_use_autograd(spec, monkeypatch, capsys):
    _with_mu_sq_term(monkeypatch)
    learner = _learner(spec=spec)
    assert not learner.fast.guard.active  # caught at construction (synthetic minibatch)
    lines = _stderr_lines(capsys, "ppo_numpy_step")
    assert len(lines) == 1 and f"tolerance {ppo_step.STEP_TOL:g}" in lines[0] and "autograd" in lines[0]
    stats = _update(learner)
    assert stats["fast/ppo_numpy_step"] == 0.0 and stats["fast/ppo_numpy_step_max_rel_err"] > 1e-2
    assert _stderr_lines(capsys, "ppo_numpy_step") == []  # one line per run, not per update
    # the update is autograd's of the patched loss, to the last bit
    ref = _learner(spec=spec)
    ref.fast = None
    _update(ref)
    assert torch.equal(learner.opt.flat, ref.opt.flat)


def test_a_term_patched_in_mid_run_is_caught_at_the_next_scheduled_check(monkeypatch, capsys):
    monkeypatch.setattr(ppo_step, "STEP_CHECK_EVERY", 16)  # these updates take 8 steps each
    learner, ref = _learner(), _learner()
    ref.fast = None
    _update(learner), _update(ref)  # update 0: checked, passed
    assert learner.fast.guard.active and learner.fast.guard.checks == 2
    torch.testing.assert_close(learner.opt.flat, ref.opt.flat, rtol=1e-4, atol=2e-5)
    _with_mu_sq_term(monkeypatch)
    # update 1 is inside the interval: still numpy (the window an interval leaves)
    assert _update(learner, seed=2)["fast/ppo_numpy_step"] == 1.0
    _update(ref, seed=2)
    with torch.no_grad():  # go on from the same parameters and optimiser state
        ref.opt.flat.copy_(learner.opt.flat)
    ref.opt.load_state_dict(copy.deepcopy(learner.opt.state_dict()))
    # update 2: due, fails, and is taken whole by autograd of the patched loss
    assert _update(learner, seed=3)["fast/ppo_numpy_step"] == 0.0
    _update(ref, seed=3)
    lines = _stderr_lines(capsys, "ppo_numpy_step")
    assert len(lines) == 1 and "at update 2" in lines[0]
    assert torch.equal(learner.opt.flat, ref.opt.flat)


@dataclass
class _CfgWithStdPenalty(ppo.Config):
    std_coef: float = 0.0
    """A new term's coefficient, off by default (as a researcher would add it)."""


class _LearnerWithStdPenalty(ppo.Learner):
    def minibatch_loss(self, obs, actions, old_logp, old_v, adv, ret):
        # + c * mean log sigma: needs the distribution, not just log pi
        std = self.net.policy(obs)["std"]
        return super().minibatch_loss(obs, actions, old_logp, old_v, adv, ret) \
            + self.cfg.std_coef * std.log().sum(-1).mean()


@pytest.mark.parametrize("coef", [0.0, 0.05])
def test_a_term_whose_coefficient_defaults_to_zero_is_checked_with_the_runs_config(coef, capsys):
    learner = _learner(_CfgWithStdPenalty(**_cfg().__dict__, std_coef=coef), cls=_LearnerWithStdPenalty)
    assert learner.fast.guard.active == (coef == 0.0)
    assert len(_stderr_lines(capsys, "ppo_numpy_step")) == (coef != 0.0)


def test_unpatched_the_fast_paths_stay_on_and_their_checks_change_nothing(capsys):
    learner = _learner()
    for seed in range(3):
        stats = _update(learner, seed)
    assert stats["fast/ppo_numpy_step"] == stats["fast/numpy_actor"] == stats["fast/numpy_adam"] == 1.0
    assert 0 < stats["fast/ppo_numpy_step_max_rel_err"] < 1e-9  # float64: rounding only
    assert learner.fast.guard.checks >= 2  # construction and the first update at least
    assert capsys.readouterr().err == ""
    # a check (the step's, Adam's, the actor's) draws no number the run uses and moves nothing
    rng, act_rng = torch.get_rng_state(), learner.act_rng.bit_generator.state
    flat, opt_state = learner.opt.flat.detach().clone(), learner.opt.state_dict()
    state = [t.clone() for t in opt_state["state"][0].values()]
    b = _batch(CONT)
    obs, acts = b.obs[:32, 0], b.actions[:32, 0]
    z = torch.zeros(32)
    assert learner.fast.check(obs, acts, z, torch.randn(32, generator=torch.Generator()), z, "test")
    assert learner.opt.check(torch.ones_like(learner.opt.flat), "test")
    assert learner.np_actor.check(b.obs[:4, 0].numpy(), "test")
    assert torch.equal(torch.get_rng_state(), rng)
    assert learner.act_rng.bit_generator.state == act_rng
    assert torch.equal(learner.opt.flat, flat)
    assert all(torch.equal(a, b) for a, b in zip(learner.opt.state_dict()["state"][0].values(), state))


def test_a_stepped_aside_path_stays_off_after_a_resume(monkeypatch, capsys):
    _with_mu_sq_term(monkeypatch)
    state = _learner().state_dict()
    monkeypatch.undo()
    resumed = _learner()
    assert resumed.fast.guard.active
    resumed.load_state_dict(state)
    assert not resumed.fast.guard.active and resumed.np_actor.guard.active
    assert "resumed from" in capsys.readouterr().err


# -- the numpy actor ----------------------------------------------------------------------


@pytest.fixture
def mu_plus_half_later(monkeypatch):
    """A function that patches GaussianHead.forward to add 0.5 to mu."""
    orig = GaussianHead.forward

    def forward(self, features):
        out = orig(self, features)
        return {**out, "mu": out["mu"] + 0.5}

    return lambda: monkeypatch.setattr(GaussianHead, "forward", forward)


@pytest.fixture
def mu_plus_half(mu_plus_half_later):
    mu_plus_half_later()


def test_a_patched_gaussian_head_makes_the_run_act_through_torch(mu_plus_half, capsys):
    learner = _learner()
    assert not learner.np_actor.guard.active
    assert len(_stderr_lines(capsys, "numpy_actor")) == 1
    obs = np.random.default_rng(0).normal(size=(3, 5)).astype(np.float32)
    o = learner.obs_norm(torch.from_numpy(obs))
    det, _ = learner.act(obs, deterministic=True)
    with torch.no_grad():
        mu = learner.net.policy(o)["mu"].numpy()
    np.testing.assert_array_equal(det, mu)  # the patched mean, +0.5 included
    torch.manual_seed(5)
    a, ex = learner.act(obs)
    torch.manual_seed(5)
    with torch.no_grad():
        a_ref, logp_ref = policy_act(learner.net, o, False)
    np.testing.assert_array_equal(a, a_ref.numpy())
    np.testing.assert_array_equal(ex["log_prob"], logp_ref.numpy())
    assert _update(learner)["fast/numpy_actor"] == 0.0


def test_a_patched_categorical_head_is_caught_too(monkeypatch, capsys):
    orig = CategoricalHead.forward
    shift = torch.tensor([0.0, 0.3, 0.0])  # not a constant: it changes the probabilities
    monkeypatch.setattr(CategoricalHead, "forward", lambda self, f: {"logits": orig(self, f)["logits"] + shift})
    learner = _learner(spec=DISC)
    assert not learner.np_actor.guard.active
    assert len(_stderr_lines(capsys, "numpy_actor")) == 1
    a, _ = learner.act(np.zeros((2, 4), np.float32), deterministic=True)
    np.testing.assert_array_equal(a, [1, 1])  # the patched logits' mode


def test_a_head_patched_mid_run_is_caught_at_the_next_scheduled_check(monkeypatch, capsys):
    learner = _learner()
    obs = np.ones((1, 5), np.float32)
    learner.act(obs)  # the first real check, passed
    assert learner.np_actor.guard.checks == 2 and learner.np_actor.guard.active
    orig = GaussianHead.forward
    monkeypatch.setattr(GaussianHead, "forward",
                        lambda self, f: {**orig(self, f), "std": orig(self, f)["std"] * 1.5})
    for _ in range(ACTOR_CHECK_EVERY - 1):
        learner.refresh_actor()
        learner.act(obs)
    assert learner.np_actor.guard.active  # not due yet
    learner.refresh_actor()
    learner.act(obs)
    assert not learner.np_actor.guard.active
    assert len(_stderr_lines(capsys, "numpy_actor")) == 1


def test_numpy_actor_without_a_normaliser_checks_against_its_snapshot_statistics(mu_plus_half_later):
    """MPO's use: statistics handed to snapshot(); the check normalises with them."""
    torch.manual_seed(0)
    net = ActorCritic(CONT, state_dependent_std=True)
    actor = NumpyActor(net, "tanh")
    actor.snapshot(np.full(5, 3.0, np.float32), np.full(5, 0.5, np.float32), 2.0)
    obs = np.random.default_rng(1).normal(3.0, 4.0, size=(6, 5)).astype(np.float32)
    assert actor.check(obs, "test") and actor.guard.max_rel_err < 1e-5
    mu_plus_half_later()
    assert not actor.check(obs, "test")
    det, _ = actor(obs, True, np.random.default_rng(0))  # through torch now
    with torch.no_grad():
        ref = net.policy(torch.from_numpy(np.clip((obs - 3.0) * 0.5, -2.0, 2.0)))["mu"].numpy()
    np.testing.assert_allclose(det, ref, rtol=1e-6, atol=1e-6)


# -- FlatAdam's numpy step ----------------------------------------------------------------


def test_a_param_group_setting_the_numpy_adam_ignores_hands_steps_to_torch(capsys):
    torch.manual_seed(0)
    net, ref_net = mlp(5, (8,), "tanh", out_dim=2), mlp(5, (8,), "tanh", out_dim=2)
    ref_net.load_state_dict(net.state_dict())
    opt = FlatAdam(net.parameters(), lr=1e-2)
    ref = torch.optim.Adam(ref_net.parameters(), lr=1e-2, weight_decay=0.1)
    opt.param_groups[0]["weight_decay"] = 0.1  # what the numpy step does not implement
    x = torch.randn(16, 5)
    for _ in range(3):
        opt.zero_grad()
        ref.zero_grad()
        net(x).pow(2).sum().backward()
        ref_net(x).pow(2).sum().backward()
        opt.step()
        ref.step()
    assert not opt.guard.active
    assert len(_stderr_lines(capsys, "numpy_adam")) == 1
    for p, q in zip(net.parameters(), ref_net.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)


def test_the_adam_check_is_due_every_adam_check_every_steps(monkeypatch):
    monkeypatch.setattr(flat_adam_mod, "ADAM_CHECK_EVERY", 4)
    opt = FlatAdam(mlp(3, (4,), "tanh", out_dim=1).parameters(), lr=1e-3)
    opt.guard.every = 4
    for _ in range(9):
        opt.flat.grad.normal_()
        opt.step()
    assert opt.guard.checks == 1 + 3  # construction; steps 1, 5 and 9


@pytest.mark.parametrize("spec", [CONT, DISC], ids=["gaussian", "categorical"])
@pytest.mark.parametrize("kw", [dict(clip_value=True), dict(ent_coef=0.0, norm_adv=False),
                                dict(activation="relu", max_grad_norm=0.0),
                                dict(activation="elu", minibatch_size=7)],
                         ids=["clip_value", "no_entropy_no_norm", "relu", "elu_odd_minibatch"])
def test_no_false_alarm_on_the_configs_the_numpy_step_implements(spec, kw, capsys):
    learner = _learner(_cfg(**kw), spec=spec)
    stats = _update(learner)
    assert stats["fast/ppo_numpy_step"] == stats["fast/numpy_actor"] == 1.0
    assert stats["fast/ppo_numpy_step_max_rel_err"] < 1e-9
    assert capsys.readouterr().err == ""
