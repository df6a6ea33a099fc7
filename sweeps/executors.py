"""Where runs execute: SLURM (Submitit job arrays), the local cores, or in-process.

slurm   One Submitit job array per set of resources (`slurm:` in the spec, with each
        budget's `slurm:` overrides), at most 1000 tasks an array, `array_parallelism`
        tasks at once (`--array=0-N%P`). An array task runs `runs_per_task` runs one
        after another (`SweepJob`). The launcher returns once the arrays are submitted.
local   A pool of subprocesses (`python -m sweeps.job`), `local.parallelism` at once
        (default: one per core; each run uses one torch thread by default), longest
        runs first (estimated from throughput.csv). A run is a
        process of its own so that a crash or an out-of-memory kill takes one run down,
        not the pool. Children die with the launcher (PR_SET_PDEATHSIG), and on Ctrl-C
        they get SIGTERM: a stopped run keeps status "running", counts as stale, and
        the next launch resumes it from its checkpoint. A run whose own process is
        killed (SIGKILL, the OOM killer) is reported "stopped", not failed: it is stale,
        and the next launch resumes it (the launcher exits 1). Each run logs to
        `<sweep>/logs/local/<run_id>.log`. A progress line shows done/running/failed.
debug   Submitit's DebugExecutor: in the launcher's process, one run after another.
"""

from __future__ import annotations

import collections
import ctypes
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from rundir import CorruptFile, RunDir

from .job import SweepJob
from .spec import Run, SlurmResources, Spec
from .state import LOGS, now_iso, this_process

ROOT = Path(__file__).resolve().parents[1]
MAX_ARRAY = 1000  # SLURM's default MaxArraySize is 1001


def slurm_available() -> tuple[bool, str]:
    """(True, "") when sbatch is on PATH and `sinfo` reaches a controller."""
    for tool in ("sbatch", "srun", "sinfo"):
        if shutil.which(tool) is None:
            return False, f"{tool} is not on PATH"
    try:
        res = subprocess.run(["sinfo", "-h", "-o", "%P"], check=False, capture_output=True, text=True, timeout=15)
    except (OSError, subprocess.SubprocessError) as e:
        return False, f"sinfo failed: {e}"
    if res.returncode != 0:
        return False, f"sinfo failed: {res.stderr.strip() or res.returncode}"
    return True, ""


def pick_executor(name: str) -> tuple[str, str]:
    """The executor to use and why."""
    if name != "auto":
        return name, "asked for"
    ok, why = slurm_available()
    return ("slurm", "SLURM is available") if ok else ("local", f"no SLURM here ({why})")


def local_parallelism(spec: Spec) -> int:
    if spec.local_parallelism:
        return spec.local_parallelism
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env.setdefault(var, "1")  # one run per core; torch's own threads come from the run config
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


# -- SLURM --------------------------------------------------------------------------------


def slurm_parameters(spec: Spec, res: SlurmResources) -> dict[str, Any]:
    setup = [f'export PYTHONPATH={ROOT}"${{PYTHONPATH:+:$PYTHONPATH}}"',
             f'export OMP_NUM_THREADS="${{OMP_NUM_THREADS:-{res.cpus_per_task}}}"',
             *res.setup]
    params: dict[str, Any] = {
        "job_name": spec.name,
        "time": res.time,
        "cpus_per_task": res.cpus_per_task,
        "array_parallelism": res.array_parallelism,
        "signal_delay_s": res.signal_delay_s,
        "setup": setup,
    }
    if res.partition:
        params["partition"] = res.partition
    if res.gpus_per_task:
        params["gpus_per_node"] = res.gpus_per_task  # one task per node
    if res.mem_gb:
        gb = float(res.mem_gb)
        params["mem"] = f"{int(gb)}GB" if gb.is_integer() else f"{int(gb * 1024)}MB"
    if res.sbatch:
        params["additional_parameters"] = dict(res.sbatch)
    return params


def launch_slurm(spec: Spec, folder: Path, runs: list[Run],
                 record: Callable[[dict[str, dict]], None], out: TextIO = sys.stdout) -> dict[str, dict]:
    """Submit `runs` as job arrays; `record` gets each array's manifest entries as soon as
    it is submitted (so a failure half-way loses no job id). Returns all entries."""
    import submitit

    groups: dict[SlurmResources, list[Run]] = collections.defaultdict(list)
    for r in runs:
        groups[r.slurm].append(r)
    entries: dict[str, dict] = {}
    for res, rs in groups.items():
        ex = submitit.SlurmExecutor(folder=folder / LOGS / "%j", max_num_timeout=res.max_requeues)
        ex.update_parameters(**slurm_parameters(spec, res))
        chunks = [rs[i:i + res.runs_per_task] for i in range(0, len(rs), res.runs_per_task)]
        for a in range(0, len(chunks), MAX_ARRAY):
            arr = chunks[a:a + MAX_ARRAY]
            with ex.batch():
                jobs = [ex.submit(SweepJob([r.task(spec.name, folder / r.run_id) for r in chunk]))
                        for chunk in arr]
            new: dict[str, dict] = {}
            for job, chunk in zip(jobs, arr):
                for r in chunk:
                    new[r.run_id] = {"executor": "slurm", "job_id": str(job.job_id),
                                     "log": str(job.paths.stdout), "submitted": now_iso(),
                                     "submitted_ts": time.time(),
                                     "host": None, "pid": None, "pid_start": None,
                                     "state": "queued", "error": None}
            record(new)
            entries.update(new)
            array_id = str(jobs[0].job_id).split("_")[0]
            print(f"submitted {len(arr)} array task(s) as job {array_id} ({sum(len(c) for c in arr)} "
                  f"run(s); {res.time} min, {res.cpus_per_task} cpu(s)"
                  + (f", {res.gpus_per_task} gpu(s)" if res.gpus_per_task else "")
                  + f", at most {res.array_parallelism} at once)", file=out)
    return entries


# -- progress ------------------------------------------------------------------------------


class Progress:
    """Counts of queued/running/done/failed runs: one line updated in place on a terminal,
    and a line per finished run."""

    def __init__(self, total: int, stream: TextIO = sys.stderr, name: str = "") -> None:
        self.total, self.stream, self.name = total, stream, name
        self.done = self.failed = self.running = self.stopped = 0
        self.t0 = time.monotonic()
        self.tty = hasattr(stream, "isatty") and stream.isatty()
        self._last = ""

    def line(self) -> str:
        queued = self.total - self.done - self.failed - self.stopped - self.running
        el = int(time.monotonic() - self.t0)
        stopped = f", {self.stopped} stopped" if self.stopped else ""
        return (f"[{self.name}] {self.done + self.failed + self.stopped}/{self.total} finished: "
                f"{self.done} done, {self.failed} failed{stopped}, {self.running} running, "
                f"{queued} queued  [{el // 60}m{el % 60:02d}s]")

    def draw(self) -> None:
        if self.tty:
            text = self.line()
            if text != self._last:
                self.stream.write("\r\033[K" + text)
                self.stream.flush()
                self._last = text

    def in_flight(self, run_dirs: dict[str, Path], every_s: float = 60.0) -> None:
        """Every `every_s` seconds, a line per run in flight: its step, steps/s and last
        returns (sweeps.plan.run_progress), read from its run directory."""
        now = time.monotonic()
        if now - getattr(self, "_inflight_t", self.t0) < every_s or not run_dirs:
            return
        self._inflight_t = now
        from .plan import run_progress

        for label, rd in run_dirs.items():
            self.event(f"  running {label}: {run_progress(rd)}")

    def event(self, text: str) -> None:
        if self.tty:
            self.stream.write("\r\033[K")
        self.stream.write(text + "\n")
        self.stream.flush()
        self._last = ""
        self.draw()

    def close(self) -> None:
        if self.tty:
            self.stream.write("\r\033[K")
        self.stream.write(self.line() + "\n")
        self.stream.flush()


def _finish_line(run: Run, state: str, step: Any, secs: float, error: str | None, log: str | None) -> str:
    text = f"{state:<6} {run.variant} {run.env} seed {run.seed} ({run.run_id}) at step {step} in {secs:.0f}s"
    if error:
        text += f": {error}"
        if log:
            text += f"\n       log: {log}"
    return text


def _result(run_dir: Path, rc: int | None, exc: BaseException | None = None) -> tuple[str, int, str | None]:
    """(state, step, error) of a run whose process ended with `rc`: "done", "failed",
    "busy" (another process trains it), or "stale" (stopped by a signal with its status
    still "running": the next launch resumes it from its last checkpoint)."""
    try:
        st = RunDir(run_dir).read_status() or {}
    except CorruptFile as e:
        return "failed", 0, str(e)
    step = int(st.get("step") or 0)
    if st.get("state") == "done":
        return "done", step, None
    if rc == 3:
        return "busy", step, "another process is training it"
    if st.get("state") == "failed":
        return "failed", step, st.get("error")
    signum = -rc if rc is not None and rc < 0 else rc - 128 if rc is not None and rc > 128 else None
    if signum is not None and st.get("state") in ("running", None):
        try:
            name = signal.Signals(signum).name
        except ValueError:
            name = f"signal {signum}"
        return "stale", step, (f"stopped by {name} at step {step} (its last checkpoint); the next "
                               "launch resumes it")
    why = f"{type(exc).__name__}: {exc}" if exc is not None else f"exit status {rc}"
    return "failed", step, why


# -- local ----------------------------------------------------------------------------------


def _pdeathsig() -> None:  # in the child, before exec: die with the launcher
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def launch_local(spec: Spec, folder: Path, runs: list[Run], parallelism: int,
                 record: Callable[[dict[str, dict]], None],
                 stream: TextIO = sys.stderr) -> dict[str, dict]:
    """Run `runs` as subprocesses, `parallelism` at once, until all have finished.
    Returns {run_id: {"state", "step", "error", "log"}}."""
    me = this_process()
    logdir = folder / LOGS / "local"
    logdir.mkdir(parents=True, exist_ok=True)
    record({r.run_id: {"executor": "local", "job_id": f"local:{me['host']}:{me['pid']}",
                       "log": str(logdir / f"{r.run_id}.log"), "submitted": now_iso(),
                       "submitted_ts": time.time(),
                       "state": "queued", "error": None, **me} for r in runs})
    # longest first (estimated from throughput.csv), so that the pool does not end with
    # one long run on one core while the others idle
    from .plan import load_throughput, run_hours

    table = load_throughput()
    queue = collections.deque(sorted(runs, key=lambda r: -(run_hours(r, table) or r.steps / 1e3 / 3600)))
    running: dict[str, tuple[subprocess.Popen, Run, Any, float]] = {}
    results: dict[str, dict] = {}
    progress = Progress(len(runs), stream, spec.name)
    env = _child_env()
    use_pdeathsig = sys.platform.startswith("linux")
    try:
        while queue or running:
            while queue and len(running) < parallelism:
                r = queue.popleft()
                log = open(logdir / f"{r.run_id}.log", "ab")
                import json

                p = subprocess.Popen(
                    [sys.executable, "-m", "sweeps.job", json.dumps(r.task(spec.name, folder / r.run_id))],
                    stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                    start_new_session=True, preexec_fn=_pdeathsig if use_pdeathsig else None)
                running[r.run_id] = (p, r, log, time.monotonic())
                progress.running = len(running)
            progress.draw()
            progress.in_flight({r.label(): folder / rid for rid, (_, r, _, _) in running.items()})
            time.sleep(0.2)
            for rid, (p, r, log, t0) in list(running.items()):
                rc = p.poll()
                if rc is None:
                    continue
                log.close()
                del running[rid]
                progress.running = len(running)
                state, step, error = _result(folder / rid, rc)
                logpath = str(logdir / f"{rid}.log")
                results[rid] = {"state": state, "step": step, "error": error, "log": logpath}
                if state == "done":
                    progress.done += 1
                elif state in ("stale", "busy"):
                    progress.stopped += 1
                else:
                    progress.failed += 1
                progress.event(_finish_line(r, state, step, time.monotonic() - t0, error, logpath))
    except BaseException:
        for p, r, log, _ in running.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p, r, log, _ in running.values():
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
            log.close()
        if running:
            stream.write(f"\nstopped {len(running)} running run(s); launch again to resume them "
                         "from their checkpoints\n")
        raise
    finally:
        progress.close()
    return results


# -- debug ----------------------------------------------------------------------------------


def launch_debug(spec: Spec, folder: Path, runs: list[Run],
                 record: Callable[[dict[str, dict]], None],
                 stream: TextIO = sys.stderr) -> dict[str, dict]:
    """Run `runs` one after another in this process (Submitit's DebugExecutor)."""
    import submitit

    me = this_process()
    ex = submitit.DebugExecutor(folder=folder / LOGS / "debug")
    record({r.run_id: {"executor": "debug", "job_id": f"debug:{me['host']}:{me['pid']}", "log": None,
                       "submitted": now_iso(), "submitted_ts": time.time(), "state": "queued",
                       "error": None, **me} for r in runs})
    progress = Progress(len(runs), stream, spec.name)
    results: dict[str, dict] = {}
    try:
        for r in runs:
            job = ex.submit(SweepJob([r.task(spec.name, folder / r.run_id)]))
            progress.running = 1
            progress.draw()
            t0 = time.monotonic()
            exc = job.exception()  # runs it here; unlike job.result(), never opens pdb
            progress.running = 0
            state, step, error = _result(folder / r.run_id, 0 if exc is None else 1, exc)
            if state == "busy":
                state = "failed"
            results[r.run_id] = {"state": state, "step": step, "error": error, "log": None}
            if state == "done":
                progress.done += 1
            else:
                progress.failed += 1
            progress.event(_finish_line(r, state, step, time.monotonic() - t0, error, None))
    finally:
        progress.close()
    return results
