"""Live views of a run (algos.tracking): TensorBoard event files read back and compared
with metrics.csv, a resumed run's purge, Weights & Biases through a stand-in module and
without the package, and the console line's training return."""

from __future__ import annotations

import csv
import sys
import types
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

from algos import tracking, train
from algos.train import RunSpec, resolve, run

# 16 rollouts of 2 envs x 64 steps: eval every 256, checkpoint every 512
STEPS = 2048
OVERRIDES = {"num_envs": 2, "rollout_length": 64, "eval_every": 256, "eval_episodes": 2,
             "checkpoint_every": 512}


def metrics_rows(run_dir) -> dict[str, list[tuple[int, float]]]:
    """metrics.csv as metric -> [(step, value)], read with the csv module."""
    out = defaultdict(list)
    with open(Path(run_dir) / "metrics.csv") as f:
        for r in csv.DictReader(f):
            out[r["metric"]].append((int(r["step"]), float(r["value"])))
    return dict(out)


def board(log_dir) -> dict[str, list[tuple[int, float]]]:
    """What TensorBoard shows: every scalar of the event files under `log_dir` (purges
    applied, no sampling)."""
    acc = EventAccumulator(str(log_dir), size_guidance={"scalars": 0})
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def assert_board_equals_csv(run_dir, log_dir) -> None:
    csv_rows, tb = metrics_rows(run_dir), board(log_dir)
    assert set(tb) == set(csv_rows)
    for metric, rows in csv_rows.items():
        assert [s for s, _ in tb[metric]] == [s for s, _ in rows], metric
        # TensorBoard keeps float32
        np.testing.assert_array_equal(np.float32([v for _, v in tb[metric]]),
                                      np.float32([v for _, v in rows]), err_msg=metric)


def test_tensorboard_holds_every_metrics_row_in_a_folder_named_by_variant_env_seed(tmp_path):
    spec = RunSpec("ppo", "CartPole-v1", 3, STEPS, dict(OVERRIDES), variant="ppo-x")
    run(spec, tmp_path / "run")
    log_dir = tmp_path / "run" / "tb" / "ppo-x.CartPole-v1.seed3"
    assert [p.name for p in (tmp_path / "run" / "tb").iterdir()] == [log_dir.name]
    assert_board_equals_csv(tmp_path / "run", log_dir)
    tb = board(log_dir)
    assert len(tb["eval/return"]) == STEPS // 256 and len(tb["time/sps"]) == STEPS // 128


def test_run_name_is_a_safe_folder_name():
    assert tracking.run_name({"variant": "vmpo", "env": "ALE/Pong-v5", "seed": 2}) == \
        "vmpo.ALE_Pong-v5.seed2"


def test_a_resumed_run_shows_no_step_twice(tmp_path, monkeypatch):
    """Killed at step 768 with rows past its checkpoint (512) in the event file: the
    resumed run's TensorBoard view equals metrics.csv, whose rows past 512 were cut."""
    spec = RunSpec("ppo", "CartPole-v1", 1, STEPS, dict(OVERRIDES))
    real_evaluate, calls = train.evaluate, []

    def dying_evaluate(*a, **k):
        calls.append(1)
        if len(calls) == 3:  # the evaluation at step 768: rows of 640 and 768 are written
            raise SystemExit(137)
        return real_evaluate(*a, **k)

    monkeypatch.setattr(train, "evaluate", dying_evaluate)
    with pytest.raises(SystemExit):
        run(spec, tmp_path)
    monkeypatch.undo()
    log_dir = tmp_path / "tb" / "ppo.CartPole-v1.seed1"
    before = board(log_dir)
    assert before["time/sps"][-1][0] == 768
    status = run(spec, tmp_path)
    assert status["resumed_at"] == [512]
    assert_board_equals_csv(tmp_path, log_dir)
    # the first process's rows past the checkpoint are still in its file: the purge hides them
    raw = defaultdict(int)
    for path in sorted(log_dir.glob("events.out.tfevents.*")):
        for event in EventFileLoader(str(path)).Load():
            for value in event.summary.value:
                raw[(value.tag, event.step)] += 1
    assert raw[("time/sps", 640)] == 2 and raw[("time/sps", 512)] == 1


def test_purge_step_hides_what_a_killed_writer_wrote_past_it_for_every_tag(tmp_path):
    log = tracking.TensorBoardLog(tmp_path, purge_step=0)
    for step in range(1, 11):
        log.write(step, {"a": step, "b": -step})
    log.close()
    # resumed at step 5: writes "a" only; "b" past 5 must vanish too (no later "b" to
    # trigger TensorBoard's out-of-order purge)
    log = tracking.TensorBoardLog(tmp_path, purge_step=6)
    for step in range(6, 9):
        log.write(step, {"a": 100 + step})
    log.close()
    tb = board(tmp_path)
    assert tb["a"] == [(s, float(s)) for s in range(1, 6)] + [(s, float(100 + s)) for s in range(6, 9)]
    assert tb["b"] == [(s, float(-s)) for s in range(1, 6)]
    names = sorted(p.name for p in tmp_path.glob("events.out.tfevents.*"))
    stamps = [int(n.split(".")[3]) for n in names]
    assert len(names) == 2 and stamps[0] < stamps[1]  # the second file sorts after the first


def test_tensorboard_can_be_switched_off(tmp_path, monkeypatch):
    monkeypatch.setenv(tracking.TENSORBOARD_ENV, "0")
    run(RunSpec("ppo", "CartPole-v1", 0, 256, dict(OVERRIDES)), tmp_path)
    assert not (tmp_path / "tb").exists() and (tmp_path / "metrics.csv").exists()


# -- Weights & Biases ------------------------------------------------------------------

ARGV = ["--algo", "ppo", "--env", "CartPole-v1", "--steps", "256", "--no-progress",
        "--set", "num_envs=2", "--set", "rollout_length=64"]


def test_track_without_wandb_exits_2_naming_the_package(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "wandb", None)  # import wandb -> ImportError
    out = tmp_path / "run"
    assert train.main(ARGV + ["--out", str(out), "--track"]) == 2
    err = capsys.readouterr().err
    assert "pip install wandb" in err and "--track" in err
    assert not out.exists()
    monkeypatch.setenv(tracking.TRACK_ENV, "wandb")  # the sweep's way: the same
    assert train.main(ARGV + ["--out", str(out)]) == 2
    assert "pip install wandb" in capsys.readouterr().err and not out.exists()


def test_a_bad_track_variable_is_a_usage_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(tracking.TRACK_ENV, "tensorboardx")
    assert train.main(ARGV + ["--out", str(tmp_path / "r")]) == 2
    assert f"{tracking.TRACK_ENV}: expected one of wandb" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


class FakeWandb(types.ModuleType):
    """Records what `wandb.init`, `run.log` and `run.finish` are given."""

    def __init__(self) -> None:
        super().__init__("wandb")
        self.inits, self.logged, self.finished = [], [], 0

    def init(self, **kwargs):
        self.inits.append(kwargs)
        fake = self

        class Run:
            def log(self, data, step):
                fake.logged.append((step, dict(data)))

            def finish(self):
                fake.finished += 1

        return Run()


def test_track_logs_every_row_offline_without_credentials_and_keeps_the_run_id(
        tmp_path, monkeypatch, capsys):
    fake = FakeWandb()
    monkeypatch.setitem(sys.modules, "wandb", fake)
    for var in ("WANDB_API_KEY", "WANDB_MODE", "WANDB_PROJECT", "WANDB_ENTITY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc
    monkeypatch.setenv("NETRC", str(tmp_path / "none"))
    out = tmp_path / "run"
    assert train.main(ARGV + ["--out", str(out), "--track", "--wandb-project", "p1"]) == 0
    assert "logging offline" in capsys.readouterr().err
    (kw,) = fake.inits
    spec = RunSpec("ppo", "CartPole-v1", 0, 256, {"num_envs": 2, "rollout_length": 64})
    run_id = resolve(spec)["run_id"]  # tracking is not part of the config
    assert kw["id"] == run_id and kw["mode"] == "offline" and kw["project"] == "p1"
    assert kw["name"] == "ppo.CartPole-v1.seed0" and kw["dir"] == str(out)
    assert fake.finished == 1
    got = defaultdict(list)
    for step, row in fake.logged:
        for k, v in row.items():
            got[k].append((step, v))
    assert dict(got) == metrics_rows(out)  # float64, every row


def test_wandb_respects_an_explicit_mode(tmp_path, monkeypatch):
    fake = FakeWandb()
    monkeypatch.setitem(sys.modules, "wandb", fake)
    monkeypatch.setenv("WANDB_MODE", "disabled")
    monkeypatch.setenv(tracking.TRACK_ENV, "wandb")
    run(RunSpec("ppo", "CartPole-v1", 0, 128, {"num_envs": 2, "rollout_length": 64}), tmp_path)
    assert "mode" not in fake.inits[0]  # wandb reads WANDB_MODE itself


# -- the console line ---------------------------------------------------------------------


def test_console_line_shows_the_training_return_of_the_last_episodes():
    from collections import deque

    window = deque(range(250), maxlen=train.RETURN_WINDOW)
    assert train.console_line(1234.4, window, 7.25) == "sps=1234 ret=199.5 eval=7.2"
    assert train.console_line(10, deque(), float("nan")) == "sps=10 ret=- eval=nan"


def test_progress_bar_shows_training_and_evaluation_returns(tmp_path, capsys):
    # 1024 steps of CartPole: fewer than RETURN_WINDOW episodes, so `ret` is the mean of
    # every finished episode: sum(episode_return * episodes) / sum(episodes) of the log
    run(RunSpec("ppo", "CartPole-v1", 2, 1024, dict(OVERRIDES)), tmp_path, progress=True)
    err = capsys.readouterr().err
    rows = metrics_rows(tmp_path)
    n = dict(rows["train/episodes"])
    assert sum(n.values()) < train.RETURN_WINDOW
    mean = sum(v * n[s] for s, v in rows["train/episode_return"]) / sum(n.values())
    last_eval = rows["eval/return"][-1][1]
    assert f"ret={mean:.1f} eval={last_eval:.1f}" in err.replace("\r", "\n").splitlines()[-1]


def test_tensorboard_on_a_sweep_folder_lists_each_run_by_variant_env_and_seed(tmp_path):
    from tensorboard.backend.event_processing.plugin_event_multiplexer import EventMultiplexer

    sweep = tmp_path / "results" / "sw"
    specs = [RunSpec("ppo", "CartPole-v1", s, 256, dict(OVERRIDES), variant=v)
             for v, s in (("ppo", 0), ("ppo", 1), ("ppo-small", 0))]
    for spec in specs:
        run(spec, sweep / resolve(spec)["run_id"])
    mux = EventMultiplexer().AddRunsFromDirectory(str(sweep))  # what `tensorboard --logdir` does
    mux.Reload()
    assert sorted(mux.Runs()) == sorted(
        f"{resolve(s)['run_id']}/tb/{s.variant}.CartPole-v1.seed{s.seed}" for s in specs)
