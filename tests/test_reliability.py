"""Faults that need no kill: a full disk while training and while writing the report (a
real small tmpfs where the machine lets us mount one, and a simulated ENOSPC that always
runs), a run directory another process is training, and the temp files a killed writer
leaves (removed by the next writer, never while their writer lives). The SIGKILL trials
are in test_faults.py (slow)."""

from __future__ import annotations

import errno
import fcntl
import io
import os
import shutil
from pathlib import Path

import pytest
import torch

from algos import results, train
from algos.results import FolderLock, RunDir
from analysis import report
from analysis.synthetic import write_sweep
from conftest import fill_disk
from sweeps import launch, state
from sweeps.spec import parse_spec

# 32 rollouts of 128 steps, a checkpoint every 2: a run long enough to fill a disk mid-way
STEPS, PER_ITER, CKPT_EVERY = 4096, 128, 256
ARGV = ["--algo", "ppo", "--env", "CartPole-v1", "--seed", "3", "--steps", str(STEPS),
        "--no-progress", "--set", "num_envs=2", "--set", "rollout_length=64",
        "--set", "eval_every=1024", "--set", "eval_episodes=1",
        "--set", f"checkpoint_every={CKPT_EVERY}"]


def _after_checkpoint(monkeypatch, at_step: int, action) -> None:
    """Call action() once, right after the checkpoint at `at_step` is written."""
    real = train._save

    def save(rd, learner, step, *a):
        real(rd, learner, step, *a)
        if step == at_step:
            action()

    monkeypatch.setattr(train, "_save", save)


def _before_checkpoint(monkeypatch, at_step: int, action) -> None:
    real = train._save

    def save(rd, learner, step, *a):
        if step == at_step:
            action()
        real(rd, learner, step, *a)

    monkeypatch.setattr(train, "_save", save)


def _assert_resumable(out: Path, ckpt_step: int) -> None:
    """What a full disk may leave: the checkpoint of `ckpt_step`, whole; metrics.csv of
    whole rows only; no temp file; a status that resumes (running or failed)."""
    ckpt = torch.load(out / "checkpoint.pt", map_location="cpu", weights_only=False)
    assert ckpt["step"] == ckpt_step
    assert (out / "metrics.csv").read_bytes().endswith(b"\n")
    RunDir(out).read_metrics(strict=True)
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint.pt", "config.json",
                                                     "metrics.csv", "status.json", "tb"]
    assert RunDir(out).read_status()["state"] in ("running", "failed")


def _assert_complete(out: Path, resumed_at: list[int]) -> None:
    assert RunDir(out).read_status() == {"state": "done", "step": STEPS, "error": None,
                                         "resumed_at": resumed_at}
    rows = RunDir(out).read_metrics(strict=True)
    steps = [s for s, m, _, _ in rows if m == "time/sps"]
    assert steps == list(range(PER_ITER, STEPS + 1, PER_ITER))  # none lost, none twice
    assert [s for s, m, _, _ in rows if m == "eval/return"] == [1024, 2048, 3072, 4096]


class _FullDisk:
    """`algos.results`' view of os with a full disk: after `fill("appends")` the next
    metrics append fails with ENOSPC, after `fill("all")` the next write of any kind
    (an atomic write fails at the fsync of its temp file); from the first failure on,
    every write fails, as on a real full disk."""

    def __init__(self) -> None:
        self.mode = None
        self.failures = 0

    def fill(self, mode: str) -> None:
        self.mode = mode

    def __getattr__(self, name):
        return getattr(os, name)

    def _fail(self):
        self.failures += 1
        self.mode = "all"
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def write(self, fd, data):
        return self._fail() if self.mode else os.write(fd, data)

    def fsync(self, fd):
        return self._fail() if self.mode == "all" else os.fsync(fd)


@pytest.mark.parametrize("where", ["metrics-append", "checkpoint-write"])
def test_simulated_full_disk_while_training_fails_clearly_and_resumes(tmp_path, monkeypatch, capsys, where):
    disk = _FullDisk()
    monkeypatch.setattr(results, "os", disk)
    out = tmp_path / "run"
    if where == "metrics-append":  # full after the checkpoint at 1024: the next row fails
        _after_checkpoint(monkeypatch, 1024, lambda: disk.fill("appends"))
    else:  # full just before the checkpoint at 1280 is written
        _before_checkpoint(monkeypatch, 1280, lambda: disk.fill("all"))
    assert train.main(ARGV + ["--out", str(out)]) == 1
    err = capsys.readouterr().err
    file = "metrics.csv" if where == "metrics-append" else "checkpoint.pt"
    assert f"run failed: OSError: [Errno 28] No space left on device: '{out / file}'" in err
    assert "its last checkpoint (step 1024) is intact; run the same command again" in err
    assert "Traceback" not in err and disk.failures >= 2  # the failed status could not be written
    _assert_resumable(out, 1024)
    assert RunDir(out).read_status() == {"state": "running", "step": 1024, "error": None,
                                         "resumed_at": []}
    monkeypatch.undo()  # space again
    assert train.main(ARGV + ["--out", str(out)]) == 0
    _assert_complete(out, [1024])


def test_full_tmpfs_while_training_fails_clearly_and_resumes(small_disk, monkeypatch, capsys):
    disk = small_disk("2m")
    out = disk / "run"
    filler = []
    _after_checkpoint(monkeypatch, 512, lambda: filler.append(fill_disk(disk)))
    assert train.main(ARGV + ["--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "run failed: OSError: [Errno 28] No space left on device: " in err
    assert f"'{out}/" in err and "its last checkpoint (step 512) is intact" in err
    assert "Traceback" not in err
    _assert_resumable(out, 512)
    filler[0].unlink()
    monkeypatch.undo()
    assert train.main(ARGV + ["--out", str(out)]) == 0
    _assert_complete(out, [512])


# -- the report ----------------------------------------------------------------------------

PONG = "ALE/Pong-v5"


def _results(tmp_path) -> Path:
    write_sweep(tmp_path / "res", "sw", variants={"vmpo": "vmpo", "ppo": "ppo"},
                envs={PONG: "atari"}, seeds=[0, 1], final=lambda v, e, s: 1.0 + s + (v == "ppo"),
                n_evals=3, steps=300)
    return tmp_path / "res"


def _but_root(snap: dict) -> dict:
    return {k: v for k, v in snap.items() if k != "."}


def _report(res: Path, out: Path) -> int:
    return report.main([str(res), "--out", str(out), "--reps", "20", "--jobs", "1"])


def test_simulated_full_disk_while_writing_the_report_keeps_the_earlier_one(
        tmp_path, monkeypatch, capsys, snapshot):
    res, out = _results(tmp_path), tmp_path / "reports" / "rep"
    assert _report(res, out) == 0
    before = snapshot(out.parent)
    from analysis import tables

    real, calls = tables.write, []

    def write(d, stem, *a, **k):  # the fourth table finds the disk full
        calls.append(stem)
        if len(calls) == 4:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(d / f"{stem}.csv"))
        return real(d, stem, *a, **k)

    monkeypatch.setattr(tables, "write", write)
    capsys.readouterr()
    assert _report(res, out) == 1
    err = capsys.readouterr().err
    assert f"error: writing the report to {out} failed: OSError: [Errno 28] No space left" in err
    assert "nothing was written there (the earlier report is intact)" in err
    # the earlier report as it was, no temp folder (the parent's mtime aside: the temp
    # folder was made and removed in it)
    assert _but_root(snapshot(out.parent)) == _but_root(before)


def test_full_tmpfs_while_writing_the_report_keeps_the_earlier_one(
        tmp_path, small_disk, capsys, snapshot):
    res = _results(tmp_path)
    disk = small_disk("4m")  # two reports (the old one, the new one in a temp folder) fit
    out = disk / "rep"
    assert _report(res, out) == 0
    filler = fill_disk(disk)
    before = snapshot(disk)
    capsys.readouterr()
    assert _report(res, out) == 1
    err = capsys.readouterr().err
    assert f"writing the report to {out} failed: OSError: [Errno 28] No space left" in err
    assert "Traceback" not in err
    assert _but_root(snapshot(disk)) == _but_root(before)
    filler.unlink()
    assert _report(res, out) == 0 and sorted(os.listdir(disk)) == ["rep"]


# -- another process, and what killed writers leave -----------------------------------------


def test_a_run_directory_being_trained_is_not_trained_again(tmp_path, capsys, snapshot):
    out = tmp_path / "run"
    out.mkdir()
    held = FolderLock.try_acquire(out)  # as the process training it holds it
    before = snapshot(tmp_path)
    try:
        assert train.main(ARGV + ["--out", str(out)]) == 3
        assert f"another process is training {out}" in capsys.readouterr().err
        assert snapshot(tmp_path) == before
    finally:
        held.release()


def test_temp_files_of_killed_writers_are_removed_by_the_next_run(tmp_path, monkeypatch):
    out = tmp_path / "run"
    _after_checkpoint(monkeypatch, 512, lambda: (_ for _ in ()).throw(SystemExit(143)))
    with pytest.raises(SystemExit):
        train.main(ARGV + ["--out", str(out)])
    monkeypatch.undo()
    for name in (".checkpoint.pt.k1ll3d.tmp", ".status.json.x.tmp", ".metrics.csv.y.tmp"):
        (out / name).write_bytes(b"half a file")
    (out / ".keep.tmp").write_text("not ours")  # names another file: left alone
    assert train.main(ARGV + ["--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == [".keep.tmp", "checkpoint.pt", "config.json",
                                                     "metrics.csv", "status.json", "tb"]
    _assert_complete(out, [512])


def test_launcher_removes_its_killed_writes_under_the_lock(tmp_path):
    spec = parse_spec("name: s\nseeds: [0]\nenvs: [CartPole-v1]\nbudgets: {classic: {steps: 10}}\n"
                      "runs: {ppo: {}}\n")
    folder = tmp_path / "s"
    state.write_manifest(folder, spec)
    for name in (".manifest.json.abc.tmp", ".spec.yaml.def.tmp"):
        (folder / name).write_text("{")
    lock = state.LaunchLock(folder)
    state.remove_launcher_temp_files(folder)
    lock.release()
    assert sorted(p.name for p in folder.iterdir()) == [".launch.lock", ".manifest.lock",
                                                        "manifest.json"]


def test_a_second_launcher_waits_for_the_first_to_record_its_runs(tmp_path):
    """While one launcher holds the launch lock, another blocks (and says so) instead of
    reading run states that are about to change; then it goes on."""
    import threading

    text = "name: s\nseeds: [0]\nenvs: [CartPole-v1]\nbudgets: {classic: {steps: 10}}\nruns: {ppo: {}}\n"
    (tmp_path / "spec.yaml").write_text(text)
    folder = tmp_path / "results" / "s"
    RunDir(folder / parse_spec(text).runs[0].run_id).write_config({})
    RunDir(folder / parse_spec(text).runs[0].run_id).write_status("done", 10)
    first = state.LaunchLock(folder)
    out, err, rc = io.StringIO(), io.StringIO(), []
    t = threading.Thread(target=lambda: rc.append(launch.main(
        [str(tmp_path / "spec.yaml"), "--results", str(tmp_path / "results"), "--executor", "local"],
        out=out, err=err)))
    t.start()
    t.join(1.0)
    assert t.is_alive() and "another launcher of this sweep is launching; waiting" in err.getvalue()
    assert not (folder / "manifest.json").exists()
    first.release()
    t.join(60)
    assert rc == [0] and "nothing to launch: 1 run(s) of s are 1 done" in out.getvalue()
    assert (folder / "manifest.json").exists()


def test_the_report_removes_what_a_killed_report_left_but_not_a_live_one(tmp_path):
    res, out = _results(tmp_path), tmp_path / "reports" / "rep"
    out.parent.mkdir()
    dead = out.parent / ".rep.dead.tmp"
    old = out.parent / ".rep.x.old"
    live = out.parent / ".rep.live.tmp"
    for d in (dead, old, live):
        d.mkdir()
        (d / "report.md").write_text("half")
    fd = os.open(live, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)  # as a report still writing it holds it
    try:
        assert _report(res, out) == 0
        assert sorted(os.listdir(out.parent)) == [".rep.live.tmp", "rep"]
    finally:
        os.close(fd)
    shutil.rmtree(live)


def test_a_done_run_is_left_alone_even_without_its_checkpoint(tmp_path, capsys, snapshot):
    """Deleting the checkpoints of finished runs (to save space) must not make the same
    command train them again from step 0, wiping their metrics."""
    out = tmp_path / "run"
    argv = [a if a != str(STEPS) else "512" for a in ARGV] + ["--out", str(out)]
    assert train.main(argv) == 0
    (out / "checkpoint.pt").unlink()
    before = snapshot(tmp_path)
    assert train.main(argv) == 0
    assert "done at step 512" in capsys.readouterr().out
    assert snapshot(tmp_path) == before


def test_a_full_disk_while_launching_is_a_clear_error(tmp_path, monkeypatch):
    text = "name: s\nseeds: [0]\nenvs: [CartPole-v1]\nbudgets: {classic: {steps: 10}}\nruns: {ppo: {}}\n"
    (tmp_path / "spec.yaml").write_text(text)

    def full(path, obj):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(state, "atomic_write_json", full)
    out, err = io.StringIO(), io.StringIO()
    rc = launch.main([str(tmp_path / "spec.yaml"), "--results", str(tmp_path / "results"),
                      "--executor", "local"], out=out, err=err)
    assert rc == 1
    folder = tmp_path / "results" / "s"
    assert (f"error: OSError: [Errno 28] No space left on device: '{folder / 'manifest.json'}'\n"
            "the manifest holds the runs launched so far; launch again") in err.getvalue()
    # nothing started: no run directory, no manifest
    assert sorted(p.name for p in folder.iterdir()) == [".launch.lock", ".manifest.lock", "logs",
                                                        "spec.yaml"]
