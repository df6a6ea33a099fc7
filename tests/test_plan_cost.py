"""The dry-run's cost of a config's gradient steps (sweeps/plan.py, update_delta_s):
each algorithm's `gradient_steps_per_env_step` against the steps its learner takes, the
plan's arithmetic, and benchmarks/run_costs.py's fit on run directories of known cost."""

from __future__ import annotations

import csv
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
from sweeps.plan import (Rate, gradient_steps, gradient_steps_of, load_throughput, run_hours,
                         update_delta_s)
from test_sweeps import cli  # noqa: E402 - tests/ is on sys.path, as for conftest
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


G0 = 1 / 256  # V-MPO's MuJoCo defaults: 8 envs x 32 steps, one step per batch


def test_the_plan_costs_gradient_steps_beyond_the_rows_config():
    assert gradient_steps_of("vmpo", "HalfCheetah-v5", {}) == pytest.approx(G0)
    table = {("vmpo", "HalfCheetah-v5"): Rate(8000.0, "test", False, True, 2.0, G0)}
    eight = _run(epochs=8, minibatch_size=64)            # 8 passes x 4 minibatches
    assert gradient_steps(eight) == pytest.approx(32 / 256)
    assert update_delta_s(eight, table[("vmpo", "HalfCheetah-v5")]) == pytest.approx(
        1e6 * (32 / 256 - G0) * 2e-3)                    # 242.2 s more than the row's config
    assert run_hours(eight, table) * 3600 == pytest.approx(125.0 + 242.1875 + 6.0)
    assert run_hours(_run(), table) * 3600 == pytest.approx(125.0 + 6.0)
    wide = _run(num_envs=4, rollout_length=128)          # one step per 512 samples: fewer
    assert run_hours(wide, table) * 3600 == pytest.approx(125.0 - 1e6 / 512 * 2e-3 + 6.0)
    # the row's own G, not today's defaults: a row measured at 4 steps per batch
    at4 = {("vmpo", "HalfCheetah-v5"): Rate(8000.0, "test", False, True, 2.0, 4 / 256)}
    assert run_hours(_run(), at4) * 3600 == pytest.approx(125.0 - 1e6 * 3 / 256 * 2e-3 + 6.0)
    # a row without the pair costs every config at its rate, as before
    for rate in (Rate(8000.0, "t", False, True), Rate(8000.0, "t", False, True, 2.0, None)):
        plain = {("vmpo", "HalfCheetah-v5"): rate}
        assert run_hours(eight, plain) == run_hours(_run(), plain)
    # never below a tenth of the row's time
    steep = {("vmpo", "HalfCheetah-v5"): Rate(8000.0, "test", False, True, 1e3, G0)}
    assert run_hours(wide, steep) * 3600 == pytest.approx(12.5 + 6.0)


def test_throughput_rows_carry_the_pair_or_nothing(tmp_path):
    head = "algo,suite,env,steps_per_sec,placeholder,source,date,includes_eval,ms_per_gradient_step,gradient_steps_per_env_step\n"
    rows = ["vmpo,mujoco,HalfCheetah-v5,8000,no,s,d,yes,2.5,0.0039",
            "vmpo,mujoco,Hopper-v5,5000,no,s,d,yes,2.5,",        # no G: no scaling
            "vmpo,mujoco,Ant-v5,3000,no,s,d,yes,2.3ms,0.0039",    # malformed: row unused
            "vmpo,mujoco,Walker2d-v5,3000,no,s,d,yes,nan,0.0039",
            "ppo,mujoco,Ant-v5,2000,no,s,d,yes,-1,0.15",
            "ppo,mujoco,,11000,no,s,d,"]                          # older rows: no columns
    path = tmp_path / "t.csv"
    path.write_text(head + "\n".join(rows) + "\n")
    table = load_throughput(path)
    hc = table[("vmpo", "HalfCheetah-v5")]
    assert (hc.ms_per_gradient_step, hc.gradient_steps_per_env_step) == (2.5, 0.0039)
    hop = table[("vmpo", "Hopper-v5")]
    assert hop.steps_per_sec == 5000 and hop.ms_per_gradient_step is None
    assert ("vmpo", "Ant-v5") not in table and ("vmpo", "Walker2d-v5") not in table
    assert ("ppo", "Ant-v5") not in table
    assert table[("ppo", "mujoco")].ms_per_gradient_step is None


SPEC = """\
name: costed
envs: [HalfCheetah-v5]
seeds: 1
budgets:
  HalfCheetah-v5: {steps: 1_000_000}
runs:
  vmpo: {algo: vmpo}
"""


def test_the_plan_says_which_configs_it_costed(tmp_path):
    rc, out, err = cli(tmp_path, "--dry-run", "--executor", "local", spec_text=SPEC)
    assert rc == 0, err
    assert "ms_per_gradient_step" not in out             # the defaults: nothing to scale
    rc, out, err = cli(tmp_path, "--dry-run", "--executor", "local",
                       spec_text=SPEC + "  vmpo8: {algo: vmpo, epochs: 8, minibatch_size: 64}\n")
    assert rc == 0, err
    assert "costed at throughput.csv's ms_per_gradient_step: vmpo/mujoco" in out


def _fake_run(d: Path, epochs: int, mb: int, wall: float, steps: int = 100_000,
              state: str = "done") -> None:
    d.mkdir(parents=True)
    cfg = {"algo": "vmpo", "env": "HalfCheetah-v5", "steps": steps,
           "config": {"num_envs": 8, "rollout_length": 32, "epochs": epochs, "minibatch_size": mb}}
    (d / "config.json").write_text(json.dumps(cfg))
    (d / "status.json").write_text(json.dumps({"state": state, "step": steps}))
    (d / "metrics.csv").write_text(f"step,metric,value,wall_time\n{steps},eval/return,1.0,{wall:.3f}\n")


def _g(epochs, mb):
    return epochs * (1 if mb == 0 else 256 // mb) / 256


def test_run_costs_recovers_a_known_cost_per_step(tmp_path, capsys):
    # wall = steps x (400 us + 3 ms x G), +-0.2% alternating (a noisy fit); one run at 1M
    # steps, whose budget must not leak into the slope
    sweep = tmp_path / "s"
    for i, (epochs, mb) in enumerate([(1, 0), (2, 0), (4, 64), (8, 64), (4, 128), (8, 32)]):
        _fake_run(sweep / f"r{i}", epochs, mb, 1e5 * (4e-4 + 3e-3 * _g(epochs, mb)) * (1 + 0.002 * (-1) ** i))
    _fake_run(sweep / "long", 1, 0, 1e6 * (4e-4 + 3e-3 * G0), steps=1_000_000)
    _fake_run(sweep / "running", 8, 32, 5.0, state="running")   # unfinished: left out
    (sweep / "broken").mkdir()
    (sweep / "broken" / "config.json").write_text("{not json")  # skipped, named
    warnings = []
    points = run_costs.run_points([sweep], warn=warnings.append)
    assert len(warnings) == 1 and "broken" in warnings[0]
    f = run_costs.fit(points[("s", "vmpo", "HalfCheetah-v5")], 2.0)
    assert f["n"] == 7 and f["span"] == pytest.approx(64.0)
    assert f["ms"] == pytest.approx(3.0, abs=0.02) and f["ms_lo"] < 3.0 < f["ms_hi"]
    assert f["r2"] > 0.99 and f["resid_us"] < 5
    assert f["g0"] == pytest.approx(G0)
    assert f["rate"] == pytest.approx(1 / (4e-4 + 3e-3 * G0), rel=0.005)  # 2,429/s
    assert run_costs.main([str(sweep), "--csv"]) == 0
    row = next(csv.reader([capsys.readouterr().out.strip()]))
    assert row[0] == "vmpo" and row[2] == "HalfCheetah-v5" and row[7] == "yes"
    assert float(row[3]) == pytest.approx(2429, abs=10)
    assert float(row[8]) == pytest.approx(3.0, abs=0.02) and float(row[9]) == pytest.approx(G0)


def test_run_costs_without_a_slope_takes_the_runs_at_the_defaults(tmp_path):
    sweep = tmp_path / "s"
    for i, wall in enumerate([100.0, 120.0, 400.0]):
        _fake_run(sweep / f"d{i}", 1, 0, wall)               # at the defaults' G
    _fake_run(sweep / "other", 2, 0, 10.0)                  # G only 2x: no slope at --min-span 4
    f = run_costs.fit(run_costs.run_points([sweep])[("s", "vmpo", "HalfCheetah-v5")], 4.0)
    assert math.isnan(f["ms"])
    assert f["rate"] == pytest.approx(100_000 / 120.0)     # the median of the three, not 4
    assert math.isnan(run_costs.fit(run_costs.run_points([sweep])[("s", "vmpo", "HalfCheetah-v5")],
                                    4.0)["r2"])


def test_run_costs_usage(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        run_costs.main([str(tmp_path), "--min-span", "1"])
    assert e.value.code == 2
    with pytest.raises(SystemExit) as e:
        run_costs.main([str(tmp_path / "nowhere")])
    assert e.value.code == 2
    assert run_costs.main([str(tmp_path)]) == 1
    assert "results/<sweep>" in capsys.readouterr().err


def test_status_says_what_is_left(tmp_path):
    from sweeps.plan import hours_left, status_text
    from sweeps.spec import parse_spec
    from sweeps.state import RunState

    spec = parse_spec(SPEC.replace("seeds: 1", "seeds: 4"))
    table = {("vmpo", "HalfCheetah-v5"): Rate(1e6 / 3600, "test", False, True)}  # 1 h per run
    runs = spec.runs
    states = [RunState(runs[0], "done", 1_000_000, None, None),
              RunState(runs[1], "failed", 300_000, "boom", None),     # not retried: not left
              RunState(runs[2], "running", 250_000, None, None),      # 3/4 left
              RunState(runs[3], "new", 0, None, None)]
    hours, missing = hours_left(states, table)
    assert missing == 0
    assert hours == pytest.approx(0.75 * (1 + 6 / 3600) + (1 + 6 / 3600))
    text = status_text(spec, tmp_path, states, [], table)
    assert "left: 2 run(s), ~1.75 core-hours" in text
    assert "~0 core-hours by the plan's estimate (a started run from its step); 2 without a " \
           "throughput figure" in status_text(spec, tmp_path, states, [], {})
