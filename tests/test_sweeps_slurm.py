"""Sweeps against a real SLURM cluster (`bash scripts/slurm_cluster.sh start`): a job
array whose runs all finish (two runs sharing an array task), a run that raises shown
failed with its error, a relaunch that submits nothing, a simulated timeout requeued and
resumed with no step written twice, and a job that vanishes (scancel) relaunched as
stale. Skipped, with the reason, where no cluster is running."""

from __future__ import annotations

import contextlib
import csv
import io
import os
import shutil
import signal
import subprocess
import textwrap
import time
import uuid
from pathlib import Path

import pytest

from algos.results import read_json
from sweeps import launch, state
from sweeps.spec import parse_spec


def _cluster() -> str | None:
    """None when a SLURM node is up, else why the tests skip."""
    if shutil.which("sinfo") is None:
        return "no SLURM here: sinfo is not on PATH (start one: bash scripts/slurm_cluster.sh start)"
    try:
        res = subprocess.run(["sinfo", "-h", "-o", "%t"], check=False, capture_output=True, text=True, timeout=15)
    except (OSError, subprocess.SubprocessError) as e:
        return f"sinfo failed ({e}); start a cluster with bash scripts/slurm_cluster.sh start"
    if res.returncode != 0:
        return f"sinfo failed ({res.stderr.strip()}); start a cluster with bash scripts/slurm_cluster.sh start"
    states = {s.strip().rstrip("*~#$@^-") for s in res.stdout.split()}
    if not states & {"idle", "mix", "alloc", "comp"}:
        return f"no SLURM node is up (sinfo: {', '.join(sorted(states)) or 'no nodes'})"
    return None


SKIP = _cluster()
pytestmark = [pytest.mark.slurm, pytest.mark.skipif(SKIP is not None, reason=SKIP or "")]


@pytest.fixture
def sweep(tmp_path):
    """A unique sweep name (its jobs are cancelled at the end, whatever happened)."""
    name = f"t{uuid.uuid4().hex[:8]}"
    yield name
    subprocess.run(["scancel", "--name", name], check=False, capture_output=True, timeout=30)


def cli(tmp_path, *args, spec="spec.yaml"):
    out, err = io.StringIO(), io.StringIO()
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        rc = launch.main([spec, "--executor", "slurm", *args], out=out, err=err)
    finally:
        os.chdir(cwd)
    return rc, out.getvalue(), err.getvalue()


def write_spec(tmp_path, text: str):
    (tmp_path / "spec.yaml").write_text(textwrap.dedent(text))
    return parse_spec(textwrap.dedent(text))


def jobs_named(name: str) -> list[str]:
    """The job ids SLURM's accounting holds for jobs named `name` (it lags submission by ~1 s)."""
    res = subprocess.run(["sacct", "-n", "-X", "-P", "--name", name, "-S", "2000-01-01", "-o", "JobID"],
                         capture_output=True, text=True, timeout=30)
    assert res.returncode == 0, res.stderr
    return [j for j in res.stdout.split() if j]


def wait_for(pred, timeout: float, what: str, poll: float = 0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(poll)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def status_of(folder: Path, run_id: str) -> dict:
    return read_json(folder / run_id / "status.json") or {}


def metric_rows(run_dir: Path) -> list[tuple[int, str]]:
    with open(run_dir / "metrics.csv") as f:
        return [(int(r["step"]), r["metric"]) for r in csv.DictReader(f)]


def test_array_runs_finish_failures_show_and_relaunch_submits_nothing(tmp_path, sweep):
    spec = write_spec(tmp_path, f"""
        name: {sweep}
        seeds: [0, 1]
        envs: [CartPole-v1]
        budgets:
          classic: {{steps: 2048, eval_every: 0, eval_episodes: 1}}
        runs:
          ppo: {{}}
          broken: {{algo: ppo, device: "cuda:99"}}   # raises at start on every machine
        slurm: {{time: 10, runs_per_task: 2, array_parallelism: 2, mem_gb: 1}}
    """)
    rc, out, err = cli(tmp_path, "--wait")  # submits, then waits for every run to end
    assert rc == 1, out + err  # two runs failed
    assert "submitted 2 array task(s) as job" in out
    assert "4/4 finished: 2 done, 2 failed" in err
    folder = tmp_path / "results" / sweep
    man = {m["run_id"]: m for m in read_json(folder / "manifest.json")["runs"]}
    ids = [man[r.run_id]["job_id"] for r in spec.runs]
    # an array; two runs share each task
    assert ids[0] == ids[1] and ids[2] == ids[3] and ids[0] != ids[2]
    assert ids[0].split("_")[0] == ids[2].split("_")[0] and "_" in ids[0]

    states = {r.variant: status_of(folder, r.run_id)["state"] for r in spec.runs}
    assert states == {"ppo": "done", "broken": "failed"}

    rc, out, _ = cli(tmp_path, "--status")
    assert "4 runs: 2 done, 0 running, 0 queued, 0 stale, 2 failed, 0 new" in out, out
    failed = [line for line in out.splitlines() if line.startswith("  broken CartPole-v1")]
    assert len(failed) == 2 and all("cuda" in line.lower() for line in failed), out

    # the scheduler saw the failing task fail, and a relaunch submits nothing
    wait_for(lambda: len(jobs_named(sweep)) == 2 and not state.slurm_job_states(ids), 60,
             "the array to leave the queue")
    before = jobs_named(sweep)
    rc, out, _ = cli(tmp_path)
    assert rc == 0 and "nothing to launch" in out and "submitted" not in out
    assert "not relaunching 2 failed run(s)" in out
    assert jobs_named(sweep) == before
    sacct = subprocess.run(["sacct", "-n", "-X", "-P", "-j", ids[2], "-o", "State"],
                           capture_output=True, text=True).stdout
    assert "FAILED" in sacct


LONG = """
    name: {name}
    seeds: [0]
    envs: [CartPole-v1]
    budgets:
      classic: {{steps: 40960, eval_every: 8192, eval_episodes: 2, checkpoint_every: 4096}}
    runs:
      ppo: {{}}
    slurm: {{time: 10, mem_gb: 1}}
"""


def _launch_long(tmp_path, sweep):
    spec = write_spec(tmp_path, LONG.format(name=sweep))
    rc, out, err = cli(tmp_path)
    assert rc == 0 and "submitted 1 array task(s)" in out, out + err
    folder = tmp_path / "results" / sweep
    run = spec.runs[0]
    job_id = state.manifest_entries(folder)[run.run_id]["job_id"]
    # past the first checkpoint, well before the end
    wait_for(lambda: status_of(folder, run.run_id).get("step", 0) >= 4096, 120, "a first checkpoint",
             poll=0.1)
    return spec, folder, run, job_id


def _check_resumed(folder: Path, run, log_text: str, from_step: int):
    assert f"resuming from its checkpoint (last status: running at step {from_step})" in log_text
    st = status_of(folder, run.run_id)
    assert st["state"] == "done" and st["step"] >= run.steps
    rows = metric_rows(folder / run.run_id)
    assert len(rows) == len(set(rows)), "a step was written twice"
    steps = [s for s, _ in rows]
    assert steps == sorted(steps)
    assert {s for s, m in rows if m == "eval/return"} >= {8192, 16384}


def test_timeout_requeues_the_job_which_resumes_the_run(tmp_path, sweep):
    import submitit

    _spec, folder, run, job_id = _launch_long(tmp_path, sweep)
    job = submitit.SlurmJob(folder / "logs" / "%j", job_id)
    job._interrupt(timeout=True)  # USR2, as SLURM sends before the time limit

    # requeued: the same job, pending again; a relaunch now skips it (queued or running)
    wait_for(lambda: job.get_info(mode="force").get("State", "") in ("PENDING", "REQUEUED")
             or "Requeued job" in (job.stdout() or ""), 60, "the requeue")
    at = status_of(folder, run.run_id)["step"]
    rc, out, _ = cli(tmp_path)
    assert "nothing to launch" in out and ("1 queued" in out or "1 running" in out), out
    wait_for(lambda: jobs_named(sweep) == [job_id], 30, "sacct to list the one job")  # no other

    wait_for(lambda: status_of(folder, run.run_id).get("state") == "done", 180, "the run to finish")
    log = job.stdout() or ""
    assert "Requeued job" in log and "restart 1" in log
    _check_resumed(folder, run, log, at)
    _rc, out, _ = cli(tmp_path, "--status")
    assert "1 runs: 1 done" in out


def test_a_vanished_job_is_stale_and_relaunched(tmp_path, sweep):
    _spec, folder, run, job_id = _launch_long(tmp_path, sweep)
    # every process of the job dies at once, as on a node failure or an out-of-memory kill
    # (scancel would let the run go on for KillWait seconds: Submitit ignores SIGTERM)
    pids = subprocess.run(["scontrol", "listpids", job_id], check=True, capture_output=True,
                          text=True, timeout=30).stdout.split("\n")[1:]
    for line in pids:
        if line.split():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(line.split()[0]), signal.SIGKILL)
    wait_for(lambda: state._slurm_alive(job_id, state.slurm_job_states([job_id])) is None, 60,
             "the job to leave the queue")
    at = status_of(folder, run.run_id)["step"]
    assert status_of(folder, run.run_id)["state"] == "running"  # the scheduler killed it

    rc, out, _ = cli(tmp_path, "--status")
    assert "1 stale" in out and f"job {job_id} gone" in out, out
    _rc, out, _ = cli(tmp_path)
    assert "relaunching 1 stale run(s)" in out and "submitted 1 array task(s)" in out, out
    new_id = state.manifest_entries(folder)[run.run_id]["job_id"]
    assert new_id != job_id
    wait_for(lambda: status_of(folder, run.run_id).get("state") == "done", 180, "the run to finish")
    import submitit

    log = submitit.SlurmJob(folder / "logs" / "%j", new_id).stdout() or ""
    _check_resumed(folder, run, log, at)
