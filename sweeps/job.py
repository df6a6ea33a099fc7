"""The job every executor runs: train (or resume) a list of runs, one after another.

`SweepJob` is a Submitit `Checkpointable`. On a timeout or a preemption Submitit calls
`checkpoint()`, which returns the same job (nothing to save: each run resumes from its
own `checkpoint.pt`), and requeues it; the requeued job points at the same run
directories, `algos.train.run` resumes each from its last checkpoint (metrics rows past
it are cut), so at most one checkpoint interval is lost and no step is written twice.
Runs already done return at once.

A run that raises is recorded "failed" (with its error, by `algos.train.run`) and the
job goes on with its other runs; the job itself then raises, so the scheduler shows it
FAILED.

While a process trains a run it holds `<sweep>/locks/<run_id>.lock` (flock): a second
process given the same run (two launches racing, a job thought gone that was not)
waits up to LOCK_WAIT_S for it (a process being stopped lets go within a second or
two), then skips it instead of writing the same directory twice.

A run whose directory holds a damaged file (`rundir.CorruptFile`: a checkpoint
that does not load, a metrics.csv row that does not parse) is recorded "failed" with
the error naming the file, so that --status shows it and relaunches do not retry it
until --retry-failed; a damaged status.json is not overwritten (--status shows it as
failed from the file itself).

The local executor runs each run in a subprocess of its own:

    python -m sweeps.job '<task JSON>'      # exit 0 done, 1 failed, 3 held by another process
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import signal
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import submitit

from rundir import CHECKPOINT, STATUS, CorruptFile, RunDir

LOCKS = "locks"
LOCK_WAIT_S = 10.0


class RunsFailed(RuntimeError):
    """Some runs of a job failed (each run's error is in its status.json)."""


def _log(msg: str) -> None:
    print(f"[sweeps {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def _label(task: dict) -> str:
    return f"{task.get('variant')} {task.get('env')} seed {task.get('seed')} ({task.get('run_id')})"


def _lock(task: dict, wait_s: float = 0.0):
    """An open, flock-ed lock file for the run, None if another process holds it for
    `wait_s` seconds; a filesystem without flock support gives an unlocked file (the
    run goes ahead)."""
    run_dir = Path(task["run_dir"])
    path = run_dir.parent / LOCKS / f"{task['run_id']}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    f = open(path, "a")
    deadline = time.monotonic() + wait_s
    while True:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return f
        except OSError as e:
            if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                _log(f"warning: cannot lock {path} ({e}); going on without the lock")
                return f
        if time.monotonic() >= deadline:
            f.close()
            return None
        time.sleep(0.1)


def run_task(task: dict[str, Any]) -> dict[str, Any]:
    """Train one run of a sweep (resuming it if its directory holds a checkpoint).

    Returns {"run_id", "state": "done"|"failed"|"busy", "step", "error"}; raises only
    BaseExceptions that are not Exceptions (SystemExit from a timeout/preemption
    signal, KeyboardInterrupt), which leave the run resumable."""
    from algos.train import RunBusy, RunSpec, run

    label = _label(task)
    lock = _lock(task, LOCK_WAIT_S)
    if lock is None:
        _log(f"{label}: another process is training it; skipped")
        return {"run_id": task["run_id"], "state": "busy", "step": 0, "error": None}
    try:
        run_dir = Path(task["run_dir"])
        try:
            status = RunDir(run_dir).read_status() or {}
        except CorruptFile as e:
            _log(f"{label}: not started: {e}")
            return {"run_id": task["run_id"], "state": "failed", "step": 0, "error": str(e)}
        if status.get("state") == "done":
            _log(f"{label}: already done")
        elif (run_dir / CHECKPOINT).exists():
            _log(f"{label}: resuming from its checkpoint (last status: {status.get('state')} at "
                 f"step {status.get('step')})")
        else:
            _log(f"{label}: starting in {run_dir}")
        spec = RunSpec(algo=task["algo"], env=task["env"], seed=int(task["seed"]),
                       steps=int(task["steps"]), overrides=dict(task.get("overrides") or {}),
                       variant=task.get("variant"), sweep=task.get("sweep"),
                       reference=task.get("reference"))
        try:
            st = run(spec, run_dir)
        except RunBusy as e:
            _log(f"{label}: {e}; skipped")
            return {"run_id": task["run_id"], "state": "busy", "step": 0, "error": None}
        except CorruptFile as e:  # found before anything was written: record it
            _log(f"{label}: not started: {e}")
            if e.path.name != STATUS:
                with contextlib.suppress(OSError):
                    RunDir(run_dir).write_status("failed", int(status.get("step") or 0), str(e),
                                                     status.get("resumed_at") or [])
            return {"run_id": task["run_id"], "state": "failed", "step": 0, "error": str(e)}
        except Exception as e:  # noqa: BLE001 - recorded in status.json by algos.train.run
            traceback.print_exc()
            _log(f"{label}: failed: {type(e).__name__}: {e}")
            return {"run_id": task["run_id"], "state": "failed", "step": 0,
                    "error": f"{type(e).__name__}: {e}"}
        _log(f"{label}: {st.get('state')} at step {st.get('step')}")
        return {"run_id": task["run_id"], "state": st.get("state"), "step": st.get("step"),
                "error": st.get("error")}
    finally:
        fcntl.flock(lock, fcntl.LOCK_UN)
        lock.close()


class SweepJob(submitit.helpers.Checkpointable):
    """Runs `tasks` (see `sweeps.spec.Run.task`) one after another."""

    def __init__(self, tasks: list[dict[str, Any]]) -> None:
        self.tasks = list(tasks)

    def __call__(self) -> list[dict[str, Any]]:
        env = submitit.JobEnvironment() if _in_submitit() else None
        if env is not None:
            _log(f"job {env.job_id} on {env.hostname}: {len(self.tasks)} run(s)"
                 + (f", restart {os.environ['SLURM_RESTART_COUNT']}" if os.environ.get("SLURM_RESTART_COUNT") else ""))
        results = [run_task(t) for t in self.tasks]
        bad = [r for r in results if r["state"] not in ("done", "busy")]
        if bad:
            raise RunsFailed("; ".join(f"{r['run_id']}: {r['error']}" for r in bad))
        return results

    def checkpoint(self, *args: Any, **kwargs: Any) -> submitit.helpers.DelayedSubmission:
        # Nothing to save: each run resumes from its own checkpoint.pt in its run directory.
        _log("timeout or preemption: requeueing; the runs resume from their last checkpoints")
        return submitit.helpers.DelayedSubmission(SweepJob(self.tasks))


def _in_submitit() -> bool:
    try:
        submitit.JobEnvironment()
        return True
    except RuntimeError:
        return False


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m sweeps.job '<task JSON>'", file=sys.stderr)
        return 2
    task = json.loads(argv[0])

    def _terminate(signum, frame):  # leave the run resumable: no "failed" status
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, _terminate)
    result = run_task(task)
    return {"done": 0, "busy": 3}.get(result["state"], 1)


if __name__ == "__main__":
    sys.exit(main())
