"""analysis.load_runs: every evaluation row of every run under a results root, a sweep
folder or a run directory, as one DataFrame, checked against metrics.csv read with the
csv module and the reference pairs of suites."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import suites
from analysis import RUN_COLUMNS, load_runs
from analysis.load import UsageError
from analysis.synthetic import write_sweep

ENVS = {"HalfCheetah-v5": "mujoco", "ALE/Pong-v5": "atari", "ALE/Tetris-v5": "atari"}


@pytest.fixture
def results(tmp_path) -> Path:
    root = tmp_path / "results"
    write_sweep(root, "sw1", variants={"vmpo": "vmpo", "ppo": "ppo"}, envs=ENVS, seeds=[0, 1],
                final=lambda v, e, s: 10.0 * s + (v == "ppo") - 3.5, n_evals=4, steps=4000,
                frameskip={"ALE/Pong-v5": 4, "ALE/Tetris-v5": 4},
                states={("ppo", "HalfCheetah-v5", 1): "running"}, train_logs_per_eval=2,
                configs={"vmpo": {"topk_fraction": 1.0}})
    write_sweep(root, "sw2", variants={"trpo": "trpo"}, envs={"HalfCheetah-v5": "mujoco"},
                seeds=[3], final=lambda v, e, s: 100.0, n_evals=2, steps=1000)
    return root


def expected_rows(run_dir: Path, sweep: str) -> list[dict]:
    """The rows load_runs should give for one run directory, computed from its files."""
    cfg = json.loads((run_dir / "config.json").read_text())
    state = json.loads((run_dir / "status.json").read_text())["state"]
    with open(run_dir / "metrics.csv") as f:
        evals = [(int(r["step"]), float(r["value"])) for r in csv.DictReader(f)
                 if r["metric"] == "eval/return"]
    try:
        ref = suites.reference(cfg["env"])
    except ValueError:
        ref = None
    return [{"sweep": sweep, "run_id": cfg["run_id"], "algo": cfg["algo"],
             "variant": cfg["variant"], "env": cfg["env"], "suite": cfg["suite"],
             "seed": cfg["seed"], "step": s, "frames": s * cfg["frameskip"], "return": v,
             "normalised_score": (v - ref.random) / (ref.reference - ref.random) if ref else np.nan,
             "state": state, "path": str(run_dir)} for s, v in evals]


def as_records(df: pd.DataFrame) -> list[dict]:
    return df.to_dict("records")


def assert_same(got: pd.DataFrame, want: list[dict]) -> None:
    assert list(got.columns[:len(RUN_COLUMNS)]) == RUN_COLUMNS
    key = lambda r: (r["sweep"], r["variant"], r["env"], r["seed"], r["run_id"], r["step"])  # noqa: E731
    want = sorted(want, key=key)
    got_rows = as_records(got)
    assert [key(r) for r in got_rows] == [key(r) for r in want]
    for g, w in zip(got_rows, want):
        for col in RUN_COLUMNS:
            if col == "normalised_score" and np.isnan(w[col]):
                assert np.isnan(g[col]), g
            elif isinstance(w[col], float):
                assert g[col] == pytest.approx(w[col], rel=1e-12), (col, g)
            else:
                assert g[col] == w[col], (col, g, w)


def all_runs(root: Path) -> list[dict]:
    return [row for sweep in sorted(root.iterdir()) for rd in sorted(sweep.iterdir())
            if (rd / "config.json").exists() for row in expected_rows(rd, sweep.name)]


def test_a_results_root_gives_every_evaluation_of_every_sweep(results):
    df = load_runs(results)
    assert_same(df, all_runs(results))
    # 12 runs of sw1 with 4 evaluations (one running with 2) and one of sw2 with 2
    assert len(df) == 11 * 4 + 2 + 2
    assert df["seed"].dtype == np.int64 and df["step"].dtype == np.int64
    pong = df[df["env"] == "ALE/Pong-v5"]
    assert (pong["frames"] == pong["step"] * 4).all()
    assert df[df["env"] == "ALE/Tetris-v5"]["normalised_score"].isna().all()  # no reference pair
    assert df[df["env"] != "ALE/Tetris-v5"]["normalised_score"].notna().all()
    assert set(df[df["run_id"].isin(df[df["state"] == "running"]["run_id"])]["step"]) == {1000, 2000}


def test_a_sweep_folder_and_a_run_directory(results):
    sweep = results / "sw1"
    assert_same(load_runs(sweep), [r for r in all_runs(results) if r["sweep"] == "sw1"])
    rd = next(p for p in sorted(sweep.iterdir()) if (p / "config.json").exists())
    single = load_runs(rd)
    assert_same(single, expected_rows(rd, "sw1"))
    assert single["run_id"].nunique() == 1
    both = load_runs([results / "sw2", rd])
    assert set(both["sweep"]) == {"sw1", "sw2"}


def test_config_columns_on_request(results):
    df = load_runs(results / "sw1", config=True)
    assert set(df[df["variant"] == "vmpo"]["config.topk_fraction"]) == {1.0}
    assert df[df["variant"] == "ppo"]["config.topk_fraction"].isna().all()
    assert (df["config.num_envs"] == 8).all()
    assert "config.num_envs" not in load_runs(results / "sw1").columns


def test_curves_follow_from_the_frame(results):
    df = load_runs(results / "sw1")
    curve = df[(df["variant"] == "vmpo") & (df["env"] == "HalfCheetah-v5")].groupby("step")["return"].mean()
    # linear_evals: seed s ends at 10 s - 3.5, rising from 0 in 4 evaluations
    finals = np.array([10.0 * s - 3.5 for s in (0, 1)])
    np.testing.assert_allclose(curve.to_numpy(), [finals.mean() * k / 4 for k in (1, 2, 3, 4)])


def test_bad_paths_are_usage_errors(tmp_path):
    with pytest.raises(UsageError, match="is not a directory"):
        load_runs(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError, match="no sweeps under"):
        load_runs(tmp_path / "empty")


def test_a_real_run_directory(tmp_path):
    from algos.train import RunSpec, run

    run(RunSpec("ppo", "CartPole-v1", 0, 512, {"eval_every": 256, "eval_episodes": 2,
                                                "num_envs": 2, "rollout_length": 64}),
        tmp_path / "sweep" / "r")
    df = load_runs(tmp_path / "sweep" / "r")
    assert_same(df, expected_rows(tmp_path / "sweep" / "r", "sweep"))
    assert list(df["step"]) == [256, 512] and list(df["state"]) == ["done", "done"]
