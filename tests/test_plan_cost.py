"""The dry-run's cost of a config's gradient steps (sweeps/plan.py, update_delta_s):
each algorithm's `gradient_steps_per_env_step` against the steps its learner takes, the
plan's arithmetic, and benchmarks/run_costs.py's fit on run directories of known cost."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import gymnasium as gym
import pytest
import torch

from algos import mpo, ppo, trpo, vmpo
from algos.base import EnvSpec
from algos.config import build
from algos.rollout import Collector
from sweeps.plan import Rate, default_gradient_steps, gradient_steps, run_hours, update_delta_s
from sweeps.spec import Run

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import run_costs  # noqa: E402

CPU = torch.device("cpu")


def _one_update(mod, over: dict, count):
    """Build `mod`'s learner on Pendulum (2 envs, no episode ends in 16 steps), collect
    one rollout and update once, with `count(learner)` wrapping what takes a step.
    Returns (the resolved config as config.json has it, steps counted, batch size)."""
    torch.manual_seed(0)
    envs = gym.make_vec("Pendulum-v1", 2, vectorization_mode="sync")
    spec = EnvSpec.from_vector_env(envs)
    cfg = build(mod.Config, {"rollout_length": 16, "hidden": (8, 8), **over})
    learner = mod.Learner(cfg, spec, 2, 10_000, CPU)
    counter = count(learner)
    learner.observe(Collector(envs, spec, 16, seed=0).collect(learner))
    while learner.ready():
        learner.update()
    envs.close()
    return {"num_envs": 2, **vars(cfg)}, counter["n"], 32


def _wrap(obj, name):
    counter = {"n": 0}
    inner = getattr(obj, name)

    def counted(*a, **k):
        counter["n"] += 1
        return inner(*a, **k)

    setattr(obj, name, counted)
    return counter


@pytest.mark.parametrize("epochs,mb,steps", [(1, 0, 1), (3, 10, 12), (2, 32, 2), (2, 64, 2)])
def test_vmpo_gradient_steps_are_the_learners(epochs, mb, steps):
    cfg, n, batch = _one_update(vmpo, {"epochs": epochs, "minibatch_size": mb},
                                lambda lr: _wrap(lr, "_step"))
    assert n == steps
    assert vmpo.gradient_steps_per_env_step(cfg) == pytest.approx(n / batch)


@pytest.mark.parametrize("epochs,mb,steps", [(1, 32, 1), (3, 10, 12), (2, 5, 14)])
def test_ppo_gradient_steps_are_the_learners(epochs, mb, steps):
    def count(learner):
        learner.fast = None  # the autograd path, whose minibatch losses can be counted
        return _wrap(learner, "minibatch_loss")

    cfg, n, batch = _one_update(ppo, {"epochs": epochs, "minibatch_size": mb}, count)
    assert n == steps
    assert ppo.gradient_steps_per_env_step(cfg) == pytest.approx(n / batch)


@pytest.mark.parametrize("vf_epochs,vf_mb", [(0, 8), (2, 10), (3, 64)])
def test_trpo_gradient_steps_are_the_learners(vf_epochs, vf_mb, monkeypatch):
    monkeypatch.setattr(trpo, "line_search", trpo.line_search)  # restored after the test
    searches = _wrap(trpo, "line_search")  # one natural-gradient policy step per update
    cfg, n, batch = _one_update(trpo, {"vf_epochs": vf_epochs, "vf_minibatch_size": vf_mb},
                                lambda lr: _wrap(lr.vf_opt, "step"))
    assert searches["n"] == 1
    assert n == vf_epochs * math.ceil(batch / vf_mb)
    assert trpo.gradient_steps_per_env_step(cfg) == pytest.approx((n + 1) / batch)


def test_mpo_gradient_steps_are_its_owed_updates():
    cfg = mpo.Config(replay_ratio=0.25, min_replay_size=100)
    learner = type("L", (), {"cfg": cfg, "env_steps": 0})()
    owed = []
    for steps in (1_000, 5_000):
        learner.env_steps = steps
        owed.append(mpo.Learner.updates_owed(learner))
    assert mpo.gradient_steps_per_env_step(vars(cfg)) == (owed[1] - owed[0]) / 4_000


def _run(env="HalfCheetah-v5", algo="vmpo", **over) -> Run:
    return Run("x", algo, algo, env, "mujoco", 0, 1_000_000,
               {"eval_every": 50_000, "eval_episodes": 10, **over}, "mujoco")


def test_the_plan_costs_gradient_steps_beyond_the_defaults():
    # V-MPO's MuJoCo defaults: 8 envs x 32 steps, one step per batch, G0 = 1/256
    assert default_gradient_steps("vmpo", "HalfCheetah-v5") == pytest.approx(1 / 256)
    table = {("vmpo", "HalfCheetah-v5"): Rate(8000.0, "test", False, True, 2.0)}
    eight = _run(epochs=8, minibatch_size=64)            # 8 passes x 4 minibatches
    assert gradient_steps(eight) == pytest.approx(32 / 256)
    assert update_delta_s(eight, table[("vmpo", "HalfCheetah-v5")]) == pytest.approx(
        1e6 * (32 / 256 - 1 / 256) * 2e-3)               # 242.2 s more than the defaults
    assert run_hours(eight, table) * 3600 == pytest.approx(125.0 + 242.1875 + 6.0)
    assert run_hours(_run(), table) * 3600 == pytest.approx(125.0 + 6.0)
    wide = _run(num_envs=4, rollout_length=128)          # one step per 512 samples: fewer
    assert run_hours(wide, table) * 3600 == pytest.approx(125.0 - 1e6 / 512 * 2e-3 + 6.0)
    # a row without the figure costs every config at its rate, as before
    plain = {("vmpo", "HalfCheetah-v5"): Rate(8000.0, "test", False, True)}
    assert run_hours(eight, plain) == run_hours(_run(), plain)
    # never below a tenth of the row's time
    steep = {("vmpo", "HalfCheetah-v5"): Rate(8000.0, "test", False, True, 1e3)}
    assert run_hours(wide, steep) * 3600 == pytest.approx(12.5 + 6.0)


def _fake_run(d: Path, epochs: int, mb: int, wall: float) -> None:
    d.mkdir(parents=True)
    cfg = {"algo": "vmpo", "env": "HalfCheetah-v5", "steps": 100_000,
           "config": {"num_envs": 8, "rollout_length": 32, "epochs": epochs, "minibatch_size": mb}}
    (d / "config.json").write_text(json.dumps(cfg))
    (d / "status.json").write_text(json.dumps({"state": "done", "step": 100_000}))
    (d / "metrics.csv").write_text(f"step,metric,value,wall_time\n100000,eval/return,1.0,{wall:.3f}\n")


def test_run_costs_recovers_a_known_cost_per_step(tmp_path, capsys):
    # wall = 40 s + 3 ms per gradient step, plus +-0.2 s alternating (a noisy fit)
    for i, (epochs, mb) in enumerate([(1, 0), (2, 0), (4, 64), (8, 64), (4, 128), (8, 32)]):
        g = 100_000 * epochs * (1 if mb == 0 else 256 // mb) / 256
        _fake_run(tmp_path / "s" / f"r{i}", epochs, mb, 40 + 3e-3 * g + 0.2 * (-1) ** i)
    (tmp_path / "s" / "unfinished").mkdir()
    fits = {k: run_costs.fit(v, 2.0) for k, v in run_costs.run_points([tmp_path / "s"]).items()}
    f = fits[("vmpo", "HalfCheetah-v5")]
    assert f["n"] == 6 and f["span"] == pytest.approx(64.0)
    assert f["ms"] == pytest.approx(3.0, abs=0.05) and f["ms_lo"] < 3.0 < f["ms_hi"]
    assert f["r2"] > 0.99
    # the defaults' rate: 100k steps over 40 s + 3 ms x 390.6 steps
    assert f["rate"] == pytest.approx(100_000 / (40 + 3e-3 * 100_000 / 256), rel=0.02)
    assert run_costs.main([str(tmp_path / "s")]) == 0
    assert "3.0" in capsys.readouterr().out
    # a span below --min-span gives no slope
    assert math.isnan(run_costs.fit(run_costs.run_points([tmp_path / "s"])[("vmpo", "HalfCheetah-v5")],
                                    100.0)["ms"])
