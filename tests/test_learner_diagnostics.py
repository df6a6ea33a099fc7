"""Every learner logs its policy width and step size (issue 24 §3): policy/entropy,
kl/step (the KL between the policies before and after an update, on its states) and,
where the learner bounds it, the KL it was allowed. kl/step is checked against
torch.distributions on the same states."""

from __future__ import annotations

import importlib

import pytest
import torch
from torch.distributions import Categorical, Normal, kl_divergence

from algos.base import Batch, EnvSpec

CONT = EnvSpec((5,), False, 2, (-1.0, -1.0), (1.0, 1.0))
DISC = EnvSpec((5,), True, 3)


def _rollout(spec: EnvSpec, T: int, B: int, seed: int) -> Batch:
    g = torch.Generator().manual_seed(seed)
    obs = torch.randn(T + 1, B, *spec.obs_shape, generator=g)
    actions = (torch.randint(0, spec.action_dim, (T, B), generator=g) if spec.discrete
               else torch.randn(T, B, spec.action_dim, generator=g).clamp(-1, 1))
    rewards = torch.randn(T, B, generator=g)
    term = torch.zeros(T, B, dtype=torch.bool)
    valid = torch.ones(T, B, dtype=torch.bool)
    return Batch(obs, actions, rewards, term, term.clone(), valid, {})


def _dist(params: dict, discrete: bool):
    if discrete:
        return Categorical(logits=params["logits"])
    return Normal(params["mu"], params["std"])


@pytest.mark.parametrize("algo,extra", [("ppo", {}), ("trpo", {}), ("vmpo", {"epochs": 4, "minibatch_size": 64})])
@pytest.mark.parametrize("spec", [CONT, DISC], ids=["gaussian", "categorical"])
def test_on_policy_learners_log_the_kl_of_each_update(algo, extra, spec):
    mod = importlib.import_module(f"algos.{algo}")
    torch.manual_seed(0)
    cfg = mod.Config(rollout_length=64, **extra)
    learner = mod.Learner(cfg, spec, 4, 100_000, torch.device("cpu"))
    batch = _rollout(spec, 64, 4, 1)
    data = learner.prepare(batch)
    obs = data["obs"][:-1].flatten(0, 1)
    with torch.no_grad():
        before = learner.net.policy(obs)
    learner.observe(batch)
    stats = learner.update()
    with torch.no_grad():
        after = learner.net.policy(obs)
    kl = kl_divergence(_dist(before, spec.discrete), _dist(after, spec.discrete))
    want = kl.sum(-1).mean() if not spec.discrete else kl.mean()
    assert stats["kl/step"] == pytest.approx(float(want), rel=1e-4, abs=1e-9)
    ent = _dist(after, spec.discrete).entropy()
    want_h = ent.sum(-1).mean() if not spec.discrete else ent.mean()
    if algo != "vmpo":  # V-MPO's is the mean over its gradient steps, each before its step
        assert stats["policy/entropy"] == pytest.approx(float(want_h), rel=1e-5)
    if algo == "trpo":
        assert stats["kl/allowed"] == cfg.max_kl and stats["kl/step"] <= cfg.max_kl * (1 + 1e-4)
    if algo == "vmpo":
        allowed = ({"kl/allowed_target": cfg.eps_alpha} if spec.discrete else
                   {"kl/allowed_mean": cfg.eps_alpha_mu, "kl/allowed_std": cfg.eps_alpha_sigma})
        for k, v in allowed.items():
            assert stats[k] == v
        assert stats["kl/step"] > 0  # 4 passes of minibatches move the policy


def test_vmpo_without_its_trust_region_logs_no_bound():
    from algos import vmpo

    learner = vmpo.Learner(vmpo.Config(rollout_length=64, trust_region=False), CONT, 4, 100_000,
                           torch.device("cpu"))
    batch = _rollout(CONT, 64, 4, 2)
    learner.observe(batch)
    stats = learner.update()
    assert "kl/step" in stats and not any(k.startswith("kl/allowed") for k in stats)


@pytest.mark.parametrize("spec", [CONT, DISC], ids=["gaussian", "categorical"])
def test_mpo_logs_its_step_and_bounds(spec, tmp_path):
    from algos import mpo
    from algos.train import RunSpec, run

    env = "Pendulum-v1" if not spec.discrete else "CartPole-v1"
    out = tmp_path / "r"
    run(RunSpec("mpo", env, 0, 1400, {"eval_every": 0, "eval_episodes": 1}), out)
    import csv

    rows = {}
    for r in csv.DictReader(open(out / "metrics.csv")):
        rows.setdefault(r["metric"], []).append(float(r["value"]))
    cfg = mpo.Config()
    assert all(v >= 0 for v in rows["kl/step"]) and max(rows["kl/step"]) > 0
    if spec.discrete:
        assert rows["kl/allowed_target"][-1] == pytest.approx(cfg.epsilon_policy)
    else:
        assert rows["kl/allowed_mean"][-1] == pytest.approx(cfg.epsilon_mean)
        assert rows["kl/allowed_std"][-1] == pytest.approx(cfg.epsilon_stddev)
    assert "policy/entropy" in rows


def test_spread_takes_about_k_rows_evenly():
    from algos.ops import spread

    x = torch.arange(1000)
    assert spread(x, 256).tolist() == list(range(0, 1000, 4))  # ceil(1000/256) = 4: 250 rows
    assert spread(x[:256], 256).tolist() == list(range(256))
    assert spread(x[:7], 256).tolist() == list(range(7))


@pytest.mark.parametrize("spec", [CONT, DISC], ids=["gaussian", "categorical"])
def test_vmpo_logs_the_entropy_of_the_policy_its_step_starts_from(spec):
    """With one gradient step per batch (the default) V-MPO's policy/entropy is the entropy of
    the policy before that step, on the batch's states: both action kinds (before
    2026-12-07 a Gaussian policy logged only its std)."""
    from algos import vmpo

    torch.manual_seed(0)
    learner = vmpo.Learner(vmpo.Config(rollout_length=64), spec, 4, 100_000, torch.device("cpu"))
    batch = _rollout(spec, 64, 4, 3)
    obs = learner.prepare(batch)["obs"][:-1].flatten(0, 1)
    with torch.no_grad():
        before = learner.net.policy(obs)
    learner.observe(batch)
    stats = learner.update()
    ent = _dist(before, spec.discrete).entropy()
    want = ent.sum(-1).mean() if not spec.discrete else ent.mean()
    assert stats["policy/entropy"] == pytest.approx(float(want), rel=1e-5)
    assert ("policy/std" in stats) == (not spec.discrete)
