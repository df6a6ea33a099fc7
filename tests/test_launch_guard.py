"""A launch that cannot surprise (issue 26 §5): the local executor asks before a large
launch (and refuses without a terminal), absurd grids are refused at validation, a
Python without the dependencies is told what to run, and --status/--wait say where each
run in flight is."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from sweeps import launch
from sweeps.plan import run_progress

ROOT = Path(__file__).resolve().parents[1]
TINY = """
name: tiny
seeds: [0]
envs: [CartPole-v1]
budgets:
  classic: {steps: 256, eval_every: 0, eval_episodes: 1}
runs:
  ppo: {}
"""


class Tty(io.StringIO):
    def isatty(self):
        return True


def cli(tmp_path, *args, spec_text=TINY, stdin=None, monkeypatch=None):
    (tmp_path / "spec.yaml").write_text(textwrap.dedent(spec_text))
    if stdin is not None:
        monkeypatch.setattr(sys, "stdin", stdin)
    out, err = io.StringIO(), io.StringIO()
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        rc = launch.main(["spec.yaml", "--executor", "local", *args], out=out, err=err)
    finally:
        os.chdir(cwd)
    return rc, out.getvalue(), err.getvalue()


def test_a_large_local_launch_without_a_terminal_is_refused_and_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(launch, "CONFIRM_CORE_HOURS", 0.0)
    rc, out, err = cli(tmp_path, stdin=io.StringIO(""), monkeypatch=monkeypatch)
    assert rc == 2
    assert "no terminal to ask on; pass --yes" in err and "would launch 1 run(s)" in out
    assert not (tmp_path / "results").exists()


def test_the_question_is_asked_on_a_terminal_and_no_means_no(tmp_path, monkeypatch):
    monkeypatch.setattr(launch, "CONFIRM_CORE_HOURS", 0.0)
    rc, _, err = cli(tmp_path, stdin=Tty("n\n"), monkeypatch=monkeypatch)
    assert rc == 2 and "Launch? [y/N]" in err and "not launched" in err
    assert not (tmp_path / "results").exists()
    rc, out, _ = cli(tmp_path, stdin=Tty("y\n"), monkeypatch=monkeypatch)
    assert rc == 0 and "tiny: 1 done" in out


def test_yes_skips_the_question_and_small_launches_are_not_asked(tmp_path, monkeypatch):
    monkeypatch.setattr(launch, "CONFIRM_CORE_HOURS", 0.0)
    rc, out, _ = cli(tmp_path, "--yes", stdin=io.StringIO(""), monkeypatch=monkeypatch)
    assert rc == 0 and "tiny: 1 done" in out
    monkeypatch.setattr(launch, "CONFIRM_CORE_HOURS", 4.0)
    assert launch.estimated_core_hours(launch.load_spec(tmp_path / "spec.yaml").runs) < 0.01
    # the shipped quickstart is under the threshold, mujoco-core over it
    assert launch.estimated_core_hours(launch.load_spec(ROOT / "sweeps" / "quickstart.yaml").runs) < 4
    assert launch.estimated_core_hours(launch.load_spec(ROOT / "sweeps" / "mujoco-core.yaml").runs) > 4


@pytest.mark.parametrize("change,expected", [
    (("seeds: [0]", "seeds: 10000000"),
     "seeds: 10,000,000 seeds alone exceed the cap of 5,000 runs (max_runs)"),
    (("seeds: [0]", "seeds: 3000\nmax_runs: 2000"),
     "seeds: 3,000 seeds alone exceed the cap of 2,000 runs (max_runs)"),
    (("runs:\n  ppo: {}", "max_runs: 2\nruns:\n  ppo: {}\n  trpo: {}\n  vmpo: {}"),
     "max_runs: the grid has 3 runs (3 variant(s) x 1 env(s) x 1 seed(s)), over the cap of 2"),
])
def test_an_absurd_grid_is_refused_quickly(tmp_path, change, expected):
    import time

    t0 = time.monotonic()
    rc, _, err = cli(tmp_path, "--dry-run", spec_text=TINY.replace(*change))
    assert rc == 2 and expected in err
    assert time.monotonic() - t0 < 10
    rc, out, _ = cli(tmp_path, "--dry-run", spec_text=TINY.replace("seeds: [0]", "seeds: 3000\nmax_runs: 3000"))
    assert rc == 0 and "= 3000 runs" in out


@pytest.mark.parametrize("script", ["sweeps/launch.py", "analysis/report.py"])
def test_a_python_without_the_dependencies_is_told_to_run_setup(script):
    # -S: no site-packages, as the system Python of a fresh machine
    p = subprocess.run([sys.executable, "-S", str(ROOT / script), "--help"], capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 2
    assert "lacks vmpo-bench's dependencies" in p.stderr and "bash scripts/setup.sh" in p.stderr
    assert "Traceback" not in p.stderr


def test_run_progress_reads_step_rate_and_returns(tmp_path):
    rd = tmp_path / "r"
    rd.mkdir()
    (rd / "config.json").write_text('{"steps": 1000000}')
    (rd / "status.json").write_text('{"state": "running", "step": 350000}')
    (rd / "metrics.csv").write_text(
        "step,metric,value,wall_time\n"
        "2048,time/sps,2500.0,1.0\n"
        "300000,eval/return,900.5,100.0\n"
        "348160,train/episode_return,1234.25,120.0\n"
        "350208,time/sps,2900.0,121.0\n")
    assert run_progress(rd) == "step 350k/1M, 2,900 steps/s, train return 1,234.2, eval 900.5"
    assert run_progress(tmp_path / "absent") == "step 0"


def test_tail_rows_drops_the_line_the_read_cut(tmp_path):
    from rundir import tail_rows

    text = "step,metric,value,wall_time\n" + "".join(f"{k},m,{k}.5,{k}.0\n" for k in range(100, 200))
    (tmp_path / "metrics.csv").write_text(text + "200,m,2")  # and a partial last line
    rows = tail_rows(tmp_path, 50)
    assert rows and rows[-1] == (199, "m", 199.5, 199.0)
    assert all(r[1] == "m" and r[2] == r[0] + 0.5 for r in rows)  # no cut first line
    assert len(tail_rows(tmp_path, 10**6)) == 100 and tail_rows(tmp_path / "absent") == []
