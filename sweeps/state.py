"""The sweep folder, and the state of each run read from its run directory.

    <results>/<sweep>/
      spec.yaml        the spec as last launched (its text, comments included)
      manifest.json    {"sweep", "spec", "updated", "tuning", "launches": [...], "runs": [
                          {"run_id", "variant", "algo", "env", "suite", "seed", "steps",
                           "executor", "job_id", "log", "host", "pid", "pid_start",
                           "submitted", "submitted_ts", "state", "step", "error"}, ...]}
                       (written atomically, under an flock on .manifest.lock); "tuning"
                       ({"sampler", "sampler_seed"}: `tuning_record`) in a tune phase's
                       sweep only
      <run_id>/        run directories (docs/design.md): config.json, metrics.csv, status.json, ...
      logs/            the jobs' output: Submitit's folder per SLURM/debug job
                       (logs/<job_id>/) and one log per local run (logs/local/<run_id>.log)
      locks/           one lock file per run, held while a process trains it
      .manifest.lock   held while the manifest is rewritten
      .launch.lock     held by a launcher from reading the run states until it has
                       recorded the runs it launches, so that two launchers started at once
                       do not both launch a run (the second sees the first one's jobs)

The manifest lists the runs of the spec as last launched; its `state` is what the
launcher saw at its last write (a launch, a local launch's end, or --status).

## The state of a run (the scheduler alone is not trusted: a job can vanish)

Read from `<run_id>/status.json`, cross-checked with the job the manifest names:

    done      status.json says "done".
    failed    status.json says "failed" (its error is shown by --status), or status.json is
              damaged (not JSON, no valid state: the error names the file), unless its job
              was submitted after that (--retry-failed) and is alive: then queued/running.
    queued    the run's job is alive and the run has not started (no status.json yet, or
              SLURM shows the job PENDING, e.g. requeued after a timeout or preemption).
    running   the run's job is alive and status.json says "running", written since the
              job was submitted (older: a relaunched stale run waiting for a slot, queued).
    stale     not done, and its job is gone: status.json says "running" (the job was
              killed, timed out for good or vanished) or the run never started.
    new       never launched (not in the manifest, no run directory).

A job is alive when: SLURM: `squeue` lists it in a state other than a finished one
(PENDING, RUNNING, REQUEUED, SUSPENDED, COMPLETING, ...); local and debug: the launcher
process that owns it (its pid and start time, on this host) still exists. A run launched
locally on another host cannot be checked from here and counts as alive.

A launch starts `new` and `stale` runs (a stale run resumes from its last checkpoint),
`failed` ones only with --retry-failed, and skips `done`, `queued` and `running` ones.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rundir import (
    CHECKPOINT,
    STATUS,
    CorruptFile,
    RunDir,
    atomic_write_bytes,
    atomic_write_json,
    read_json,
    remove_temp_files,
)

from .spec import Run, Spec

MANIFEST = "manifest.json"
SPEC_COPY = "spec.yaml"
LOGS = "logs"
LOCKS = "locks"
STATES = ("done", "running", "queued", "stale", "failed", "new")
# squeue states of a job that is over (everything else is alive)
SLURM_FINISHED = {"COMPLETED", "CANCELLED", "FAILED", "TIMEOUT", "NODE_FAIL", "PREEMPTED",
                  "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE", "SPECIAL_EXIT", "REVOKED"}


class SchedulerUnavailable(RuntimeError):
    """SLURM could not be asked about jobs the manifest names."""


def sweep_dir(results: str | os.PathLike, spec: Spec) -> Path:
    return Path(results) / spec.name


# -- the manifest ----------------------------------------------------------------------


MANIFEST_EXPECTED = ('the object sweeps/launch.py writes ({"sweep", "runs": [...], ...}); it '
                     "records which job owns each run: restore it, or delete it if no job of "
                     "this sweep is queued or running")


def read_manifest(folder: Path) -> dict[str, Any]:
    """manifest.json ({} without one); CorruptFile if it is damaged."""
    m = read_json(folder / MANIFEST, MANIFEST_EXPECTED)
    if m is None:
        m = {}
    if not isinstance(m, dict) or not isinstance(m.get("runs", []), list):
        raise CorruptFile(folder / MANIFEST, "does not hold an object with a list of runs",
                          MANIFEST_EXPECTED)
    m.setdefault("runs", [])
    return m


def manifest_entries(folder: Path) -> dict[str, dict]:
    return {r["run_id"]: r for r in read_manifest(folder)["runs"] if isinstance(r, dict) and "run_id" in r}


@contextlib.contextmanager
def locked(folder: Path):
    """An exclusive lock on the sweep folder's manifest (read-modify-write)."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".manifest.lock", "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


LAUNCH_LOCK = ".launch.lock"


class LaunchLock:
    """The launch lock of a sweep folder (made if absent), taken at once (waiting for
    another launcher, and saying so on `err`); `release()` may come early and repeat."""

    def __init__(self, folder: Path, err=None) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self._f = open(folder / LAUNCH_LOCK, "a")
        try:
            fcntl.flock(self._f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if err is not None:
                print("another launcher of this sweep is launching; waiting for it", file=err)
            fcntl.flock(self._f, fcntl.LOCK_EX)

    def release(self) -> None:
        if self._f is not None:
            self._f.close()  # closing releases the flock
            self._f = None


def remove_launcher_temp_files(folder: Path) -> None:
    """Temp files of a launcher killed inside an atomic write of spec.yaml or manifest.json.
    Call under the launch lock (spec.yaml's writers hold it)."""
    remove_temp_files(folder, (SPEC_COPY,))
    with locked(folder):  # manifest.json's writers hold this one
        remove_temp_files(folder, (MANIFEST,))


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def run_entry(run: Run) -> dict[str, Any]:
    return {"run_id": run.run_id, "variant": run.variant, "algo": run.algo, "env": run.env,
            "suite": run.suite, "seed": run.seed, "steps": run.steps}


def tuning_record(spec: Spec) -> dict[str, Any]:
    """The manifest's top-level `tuning` entry: {"tuning": Tuning.record()} for a tune
    phase's sweep (sweeps.tuning.tuning_spec), {} for any other. The launcher and
    analysis.archive --spec both write it; the tune phase refuses to launch into a folder
    whose record differs (sweeps.tuning.design_change)."""
    return {"tuning": spec.tuning.record()} if spec.phase == "tune" and spec.tuning else {}


def write_manifest(folder: Path, spec: Spec, updates: dict[str, dict] | None = None,
                   launch: dict | None = None, states: dict[str, RunState] | None = None) -> None:
    """Rewrite manifest.json for `spec`'s runs (under the lock, atomically): each run keeps
    its job fields unless `updates` gives new ones; `states` refreshes state/step/error."""
    with locked(folder):
        old = read_manifest(folder)
        entries = {r.get("run_id"): r for r in old["runs"] if isinstance(r, dict)}
        runs = []
        for run in spec.runs:
            e = dict(entries.get(run.run_id, {}))
            e.update(run_entry(run))
            if updates and run.run_id in updates:
                e.update(updates[run.run_id])
            if states and run.run_id in states:
                st = states[run.run_id]
                e.update(state=st.state, step=st.step, error=st.error)
            e.setdefault("state", "new")
            runs.append(e)
        launches = list(old.get("launches") or [])
        if launch:
            launches.append(launch)
        atomic_write_json(folder / MANIFEST, {
            "sweep": spec.name, "spec": SPEC_COPY, "updated": now_iso(),
            **tuning_record(spec),
            "launches": launches[-100:], "runs": runs,
        })


def write_spec_copy(folder: Path, spec: Spec) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(folder / SPEC_COPY, spec.text.encode())


# -- process identity (local and debug launchers) -----------------------------------------


def process_start(pid: int) -> str | None:
    """The start time of `pid` in clock ticks since boot (field 22 of /proc/pid/stat):
    with the pid it names one process, even after the pid is reused. None if gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    return stat[stat.rfind(")") + 2:].split()[19]


def this_process() -> dict[str, Any]:
    return {"host": socket.gethostname(), "pid": os.getpid(), "pid_start": process_start(os.getpid())}


def _local_alive(entry: dict) -> bool:
    if entry.get("host") != socket.gethostname():
        return True  # cannot check another host's process from here: trusted
    pid = entry.get("pid")
    if not isinstance(pid, int):
        return False
    start = process_start(pid)
    return start is not None and str(start) == str(entry.get("pid_start"))


# -- SLURM ------------------------------------------------------------------------------


def slurm_job_states(job_ids: Iterable[str]) -> dict[str, str]:
    """{job id: squeue state} for the given ids that squeue lists (one squeue call; array
    tasks one per line). Ids it does not list are gone (or finished long ago).
    Raises SchedulerUnavailable when squeue cannot answer."""
    ids = sorted({str(j) for j in job_ids if j})
    if not ids:
        return {}
    if shutil.which("squeue") is None:
        raise SchedulerUnavailable("squeue is not on PATH")
    base = sorted({j.split("_")[0] for j in ids})
    cmd = ["squeue", "-h", "-r", "-o", "%i|%T", "-j", ",".join(base)]
    try:
        res = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError) as e:
        raise SchedulerUnavailable(f"squeue failed: {e}") from None
    if res.returncode != 0:
        err = res.stderr.strip()
        if "Invalid job id" in err:  # every listed job is long gone
            return {}
        raise SchedulerUnavailable(f"squeue failed: {err or res.returncode}")
    states: dict[str, str] = {}
    for line in res.stdout.splitlines():
        jid, _, state = line.strip().partition("|")
        if jid:
            states[jid] = state.strip()
    return states


def slurm_final_states(job_ids: Iterable[str]) -> dict[str, str]:
    """{job id: sacct state} (best effort, {} when sacct cannot answer): why a job is gone."""
    ids = sorted({str(j) for j in job_ids if j})
    if not ids or shutil.which("sacct") is None:
        return {}
    try:
        res = subprocess.run(["sacct", "-n", "-P", "-X", "-o", "JobID,State", "-j", ",".join(ids)],
                             capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return {}
    out = {}
    for line in res.stdout.splitlines():
        jid, _, state = line.partition("|")
        if jid:
            out[jid.strip()] = state.split()[0] if state.strip() else ""
    return out


# -- the state of each run ------------------------------------------------------------------


@dataclass
class RunState:
    run: Run
    state: str                 # one of STATES
    step: int                  # status.json's step (0 when absent)
    error: str | None          # status.json's error (failed runs), or why a run is stale
    job: dict | None           # the manifest entry (executor, job_id, ...), if launched
    note: str = ""             # e.g. "job 12_3 gone (TIMEOUT)"


def run_states(folder: Path, spec: Spec, check_jobs: bool = True) -> tuple[list[RunState], list[str]]:
    """The state of every run of `spec` in `folder`, and warnings (e.g. SLURM unreachable).

    When SLURM cannot be asked, its jobs count as alive (and a warning says so), so that
    nothing is launched twice. Raises CorruptFile for a damaged manifest.json (without
    it nothing says which job owns a run); a damaged status.json makes its run failed."""
    entries = manifest_entries(folder) if folder.is_dir() else {}
    statuses: dict[str, dict | None] = {}
    damaged: dict[str, str] = {}
    for r in spec.runs:
        try:
            statuses[r.run_id] = RunDir(folder / r.run_id).read_status() if folder.is_dir() else None
        except CorruptFile as e:
            statuses[r.run_id] = None
            damaged[r.run_id] = (f"{e}; the checkpoint holds the run's state: delete "
                                 f"{STATUS} to resume from it")
    warnings: list[str] = []

    slurm_ids = {e["job_id"] for rid, e in entries.items()
                 if e.get("executor") == "slurm" and e.get("job_id")
                 and (statuses.get(rid) or {}).get("state") != "done"}
    slurm_states: dict[str, str] | None = {}
    if check_jobs and slurm_ids:
        try:
            slurm_states = slurm_job_states(slurm_ids)
        except SchedulerUnavailable as e:
            warnings.append(f"SLURM could not be asked about {len(slurm_ids)} job(s) ({e}); "
                            "they count as alive")
            slurm_states = None
    gone_ids = [j for j in slurm_ids if slurm_states is not None and _slurm_alive(j, slurm_states) is None]
    final = slurm_final_states(gone_ids) if gone_ids else {}

    out = []
    for run in spec.runs:
        st = statuses.get(run.run_id)
        entry = entries.get(run.run_id)
        if run.run_id in damaged:
            out.append(RunState(run, "failed", 0, damaged[run.run_id], entry))
            continue
        launched = bool(entry and entry.get("executor"))
        state = (st or {}).get("state") if isinstance(st, dict) else None
        step = int((st or {}).get("step") or 0) if isinstance(st, dict) else 0
        error = (st or {}).get("error") if isinstance(st, dict) else None
        if state == "done":
            out.append(RunState(run, "done", step, None, entry))
            continue
        alive, sched, note = False, None, ""
        if launched and check_jobs:
            ex = entry.get("executor")
            if ex == "slurm":
                jid = str(entry.get("job_id") or "")
                if slurm_states is None:
                    alive = True
                else:
                    sched = _slurm_alive(jid, slurm_states)
                    alive = sched is not None
                    if not alive:
                        why = final.get(jid) or final.get(jid.split("_")[0]) or "not in the queue"
                        note = f"job {jid} gone ({why})"
            elif ex in ("local", "debug"):
                alive = _local_alive(entry)
                if not alive:
                    note = f"{ex} launcher pid {entry.get('pid')} on {entry.get('host')} gone"
        elif launched:
            alive = entry.get("state") in ("queued", "running")
        if state == "failed" and alive and _relaunched_after(entry, folder / run.run_id / STATUS):
            state = None  # an older failure: --retry-failed relaunched it, its job is alive
        if state == "failed":
            out.append(RunState(run, "failed", step, error, entry, note))
        elif alive:
            if sched is not None and sched in ("PENDING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED",
                                               "CONFIGURING", "SUSPENDED"):
                s = "queued"
            elif sched == "RUNNING" or (state == "running" and not _relaunched_after(
                    entry, folder / run.run_id / STATUS)):
                s = "running"
            else:  # not started, or relaunched and not restarted yet (status.json older)
                s = "queued"
            out.append(RunState(run, s, step, None, entry, f"SLURM {sched}" if sched else ""))
        elif state == "running" or launched or (folder / run.run_id / CHECKPOINT).exists():
            why = note or "no live job"
            msg = (f"status says running at step {step} but {why}" if state == "running"
                   else f"launched but never started; {why}")
            out.append(RunState(run, "stale", step, msg, entry, note))
        else:
            out.append(RunState(run, "new", step, None, entry))
    return out, warnings


def _relaunched_after(entry: dict | None, status_path: Path) -> bool:
    """Whether the run's job was submitted after its status.json was last written."""
    try:
        return float((entry or {}).get("submitted_ts") or 0) > status_path.stat().st_mtime
    except (OSError, TypeError, ValueError):
        return False


def _slurm_alive(job_id: str, states: dict[str, str]) -> str | None:
    """The live squeue state of `job_id` (an array task "12_3" or a job "12"), or None."""
    s = states.get(job_id)
    if s is None and "_" in job_id:
        # a pending array whose tasks squeue still shows as one line ("12_[3-9]")
        base, _, task = job_id.partition("_")
        for jid, state in states.items():
            if jid.startswith(base + "_[") and _in_range(task, jid[len(base) + 2:-1]):
                s = state
                break
    if s is None or s.split()[0] in SLURM_FINISHED:
        return None
    return s.split()[0]


def _in_range(task: str, ranges: str) -> bool:
    try:
        t = int(task)
    except ValueError:
        return False
    for part in ranges.split("%")[0].split(","):
        a, _, b = part.partition("-")
        try:
            if int(a) <= t <= int(b or a):
                return True
        except ValueError:
            continue
    return False


def count(states: list[RunState]) -> dict[str, int]:
    c = {s: 0 for s in STATES}
    for s in states:
        c[s.state] += 1
    return c
