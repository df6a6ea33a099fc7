"""Launch a sweep: one YAML spec, variants x envs x seeds, over SLURM or the local cores.

    python sweeps/launch.py SPEC [--executor auto|slurm|local|debug] [--results DIR]
                                 [--dry-run] [--status] [--retry-failed] [--wait]

SPEC is a path; a bare name (`quickstart`, `ablations.yaml`) is looked for in the
current directory, then in the project's sweeps/ folder. Runs go to
`<results>/<name>/<run_id>/` (docs/design.md), with `spec.yaml` (the spec as launched) and
`manifest.json` beside them (sweeps/state.py).

--executor   auto (default): SLURM where `sinfo` reaches a controller, else local.
             slurm: Submitit job arrays; returns once submitted.
             local: the local cores, one run per core (spec: local.parallelism); waits.
             debug: in this process, one run after another (Submitit's DebugExecutor).
--dry-run    print the plan (runs per variant and env, env steps, core-hours) and what a
             launch would start or skip; writes nothing.
--status     print done/running/queued/stale/failed/new per variant and env, and each
             failed run's error, read from the run directories; writes nothing.
--retry-failed  also relaunch failed runs (they resume from their last checkpoint).
--wait       with SLURM, wait after submitting until no run is queued or running (exit 1
             if any run is not done); local and debug launches always wait.
--phase      for a spec with a `tuning:` section (sweeps/tuning.py): tune (the trials,
             into <results>/<name>-tune/), select (write the selected configurations,
             the spec's `tuning.selected` file), test (the selected configurations on the
             test seeds, into <results>/<name>/). auto (default): the next phase due, so
             relaunching one command runs the whole protocol (a local launch goes on from
             tune to select to test in one call).

Relaunching is idempotent: done, queued and running runs are skipped, stale ones (not
done, job gone) are relaunched and resume (sweeps/state.py has the rule). Two launchers
started at once on one sweep take turns (a lock on the sweep folder) until each has
recorded what it launched, so the second skips the first one's runs. A spec error, a
results folder that is a file or cannot be written, a damaged manifest.json, or a tune
phase whose folder holds trials of another design (sweeps/tuning.design_change: a changed
`tuning.sampler`, `sampler_seed` or search space would put two configurations under one
trial name) exits with status 2 and writes nothing; a local/debug launch exits 1 if a run failed or was
stopped (a stopped run is stale: the next launch resumes it).
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: python sweeps/launch.py
    # the project root instead of sweeps/ (whose module names would shadow others)
    _here = str(Path(__file__).resolve().parent)
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(_here)]
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

try:  # a Python without the project's packages (the system one, say): say what to run
    import submitit, torch, yaml  # noqa: E401, F401
except ModuleNotFoundError as _e:
    print(f"error: {_e} in {sys.executable}: this Python lacks vmpo-bench's dependencies; set "
          "up with `bash scripts/setup.sh`, then run `.venv/bin/python sweeps/launch.py ...`",
          file=sys.stderr)
    sys.exit(2)

import suites
from sweeps import executors
from sweeps.plan import plan_text, status_text
from sweeps.spec import SpecError, load_spec, resolve_spec_path
from rundir import CorruptFile, writable_dir_problem
from sweeps.state import (
    LaunchLock,
    RunState,
    count,
    now_iso,
    read_manifest,
    remove_launcher_temp_files,
    run_states,
    write_manifest,
    write_spec_copy,
)

EXECUTORS = ("auto", "slurm", "local", "debug")
PHASES = ("auto", "tune", "select", "test")
# Past this many estimated core-hours, a local launch shows its plan and asks first (a
# mistyped spec on a workstation would otherwise start thousands of runs at once).
CONFIRM_CORE_HOURS = 4.0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python sweeps/launch.py",
        description="Launch a sweep spec (variants x envs x seeds) over SLURM or the local cores.")
    p.add_argument("spec", help="spec file; a bare name is looked for here, then in sweeps/")
    p.add_argument("--executor", choices=EXECUTORS, default="auto",
                   help="auto (default): SLURM where available, else the local cores")
    p.add_argument("--results", default="results", help="results folder (default: results/)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--dry-run", action="store_true", help="print the plan; write nothing")
    g.add_argument("--status", action="store_true", help="print the state of every run; write nothing")
    p.add_argument("--retry-failed", action="store_true", help="relaunch failed runs too")
    p.add_argument("--wait", action="store_true",
                   help="with SLURM: after submitting, wait until no run is queued or running "
                        "(local and debug launches always wait)")
    p.add_argument("--phase", choices=PHASES, default="auto",
                   help="a tuned spec's phase: tune, select, test; auto (default): the next due")
    p.add_argument("--yes", action="store_true",
                   help=f"launch without asking, even past {CONFIRM_CORE_HOURS:g} estimated "
                        "core-hours on the local executor")
    return p


def wait_for_sweep(folder: Path, spec, err, poll_s: float = 5.0) -> int:
    """Poll the run states until no run is queued or running; 0 if all are done."""
    import time

    from sweeps.executors import Progress

    progress = Progress(len(spec.runs), err, spec.name)
    seen: set[str] = set()
    while True:
        states, _warnings = run_states(folder, spec)
        c = count(states)
        progress.done, progress.failed, progress.running = c["done"], c["failed"] + c["stale"], c["running"]
        for s in states:
            if s.state in ("done", "failed", "stale") and s.run.run_id not in seen:
                seen.add(s.run.run_id)
                if s.state != "done":
                    progress.event(f"{s.state:<6} {s.run.label()}: {s.error}")
        progress.draw()
        progress.in_flight({s.run.label(): folder / s.run.run_id for s in states if s.state == "running"})
        if c["queued"] + c["running"] == 0:
            progress.close()
            return 0 if c["done"] == len(states) else 1
        time.sleep(poll_s)


def main(argv: list[str] | None = None, out=None, err=None) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    args = parser().parse_args(argv)
    try:
        path = resolve_spec_path(args.spec)
        spec = load_spec(path)
    except FileNotFoundError as e:
        print(f"error: {e}", file=err)
        return 2
    except SpecError as e:
        for item in e.errors:
            print(f"error: {item}", file=err)
        print(f"{path}: {len(e.errors)} error(s); nothing launched", file=err)
        return 2
    except suites.UnknownEnvError as e:  # pragma: no cover - spec.py turns these into SpecErrors
        print(f"error: {e}", file=err)
        return 2
    folder = (Path(args.results) / spec.name).absolute()
    problem = writable_dir_problem(folder, need_write=not args.status)
    if problem:
        print(f"error: --results {args.results}: {problem}; expected a folder the sweep's runs "
              "can be written in (made if absent)", file=err)
        return 2
    if spec.tuning is None and args.phase != "auto":
        print(f"error: --phase {args.phase}: {path} has no `tuning:` section (sweeps/tuning.py); "
              "its runs launch without --phase", file=err)
        return 2
    try:
        if spec.tuning is not None:
            return _phases(args, path, spec, out, err)
        return _main(args, path, spec, folder, out, err)
    except CorruptFile as e:  # manifest.json: nothing can say which job owns which run
        print(f"error: {e}\nnothing launched", file=err)
        return 2
    except OSError as e:  # a full disk, say: every file here is written atomically
        print(f"error: {type(e).__name__}: {e}\nthe manifest holds the runs launched so far; "
              "launch again once the problem is fixed", file=err)
        return 1


def _phases(args, path: Path, spec, out, err) -> int:
    """A tuned spec: run the phase asked for, or (auto) the next one due."""
    from sweeps import select, tuning

    results = Path(args.results)
    tune = tuning.tuning_spec(spec)
    tune_folder = (results / tune.name).absolute()
    phase = args.phase
    if phase == "auto":
        states, _ = run_states(tune_folder, tune)
        tuned = all(s.state in ("done", "failed") for s in states)
        phase = "tune" if not tuned else "select" if spec.selection is None else "test"
        if args.status or args.dry_run:
            for problem in tuning.design_change(spec, tune, tune_folder):
                print(f"warning: {problem}", file=err)
            tuning.warn_design(spec.tuning, args, err, tune, tune_folder)
            print(f"{spec.name}: tuning {'finished' if tuned else 'not finished'}; selection "
                  f"{'in ' + str(spec.tuning.selected_path) if spec.selection else 'not made yet'}",
                  file=out)
            rc = _main(args, path, tune, tune_folder, out, err)
            if spec.selection is None:
                print(f"test phase: after selection, {len(spec.variants)} variant(s) x "
                      f"{len(spec.envs)} env(s) x {len(spec.seeds)} test seed(s) = "
                      f"{len(spec.variants) * len(spec.envs) * len(spec.seeds)} runs", file=out)
                return rc
            return _main(args, path, spec, (results / spec.name).absolute(), out, err)
    if phase == "tune":
        # Trials are named by index: a changed design would file two under one name.
        problems = tuning.design_change(spec, tune, tune_folder)
        for problem in problems:
            print(f"{'warning' if args.status or args.dry_run else 'error'}: {problem}", file=err)
        if problems and not (args.status or args.dry_run):
            print("nothing launched", file=err)
            return 2
        tuning.warn_design(spec.tuning, args, err, tune, tune_folder)
        rc = _main(args, path, tune, tune_folder, out, err)
        if args.phase == "tune" or args.status or args.dry_run or rc != 0:
            return rc
        states, _ = run_states(tune_folder, tune)
        if not all(s.state in ("done", "failed") for s in states):
            print("the trials are not all done yet; run the same command again to select and "
                  "test once they are (--status follows them)", file=out)
            return 0
        phase = "select"
    if phase == "select":
        if args.status or args.dry_run:
            print("--phase select: nothing to show; it reads the tuning runs and writes "
                  f"{spec.tuning.selected_path}", file=out)
            return 0
        rc = select.run(spec, tune, tune_folder, out, err, keep_existing=args.phase == "auto")
        if rc != 0 or args.phase == "select":
            return rc
        spec = load_spec(path)  # now with the selection: the test runs
    if spec.selection is None:
        print(f"error: --phase test: no selection yet ({spec.tuning.selected_path} is absent); "
              f"run --phase tune until every trial is done, then --phase select (or launch "
              f"without --phase: it does the next phase due)", file=err)
        return 2
    return _main(args, path, spec, (results / spec.name).absolute(), out, err)


def _main(args, path: Path, spec, folder: Path, out, err) -> int:
    if args.status:
        states, warnings = run_states(folder, spec)
        print(status_text(spec, folder, states, warnings), file=out)
        return 0

    executor, why = executors.pick_executor(args.executor)
    if executor == "slurm" and args.executor == "slurm" and not args.dry_run:
        ok, reason = executors.slurm_available()
        if not ok:
            print(f"error: --executor slurm: {reason}", file=err)
            return 2
    parallelism = executors.local_parallelism(spec)
    if args.dry_run:
        states, warnings = run_states(folder, spec)
        for w in warnings:
            print(f"warning: {w}", file=err)
        launch = [s for s in states if s.state in _wanted(args)]
        print(plan_text(spec, executor, why, parallelism, folder, states, launch, args.retry_failed),
              file=out)
        return 0
    if executor == "local" and not args.yes:  # asked before anything is written
        states, _ = run_states(folder, spec)
        launch = [s for s in states if s.state in _wanted(args)]
        if not _confirmed(args, spec, [s.run for s in launch], executor, why, parallelism, folder,
                          states, launch, out, err):
            return 2
    if folder.is_dir():
        read_manifest(folder)  # a damaged one is an error before anything is written
    # From reading the states until the runs launched are recorded, hold the launch lock:
    # a second launcher of this sweep waits, then sees this one's runs queued or running.
    lock = LaunchLock(folder, err)
    try:
        return _launch(args, path, spec, folder, executor, why, parallelism, lock, out, err)
    finally:
        lock.release()


def estimated_core_hours(runs) -> float:
    """Core-hours of `runs` by sweeps.plan's estimate; a run without a throughput figure
    counts at 1,000 steps/s (slower than any measured CPU figure but MPO's and Atari's)."""
    from sweeps.plan import RUN_OVERHEAD_S, load_throughput, run_hours

    table = load_throughput()
    return sum(run_hours(r, table) or (r.steps / 1000 + RUN_OVERHEAD_S) / 3600 for r in runs)


def _confirmed(args, spec, runs, executor, why, parallelism, folder, states, launch, out, err,
               stdin=None) -> bool:
    """Past CONFIRM_CORE_HOURS, print the plan and ask; refuse without a terminal."""
    hours = estimated_core_hours(runs)
    if hours <= CONFIRM_CORE_HOURS:
        return True
    stdin = stdin or sys.stdin
    print(plan_text(spec, executor, why, parallelism, folder, states, launch, args.retry_failed),
          file=out)
    ask = (f"{len(runs)} run(s), ~{hours:,.1f} core-hours on {parallelism} local core(s) "
           f"(~{hours / max(parallelism, 1):,.1f} h of wall clock)")
    if not (hasattr(stdin, "isatty") and stdin.isatty()):
        print(f"error: {ask}: more than {CONFIRM_CORE_HOURS:g} core-hours, and no terminal to "
              "ask on; pass --yes to launch it, --dry-run to see the plan, or --executor slurm "
              "on a cluster", file=err)
        return False
    print(f"{ask}. Launch? [y/N] ", end="", file=err, flush=True)
    answer = stdin.readline().strip().lower()
    if answer in ("y", "yes"):
        return True
    print("not launched", file=err)
    return False


def _wanted(args) -> tuple[str, ...]:
    return ("new", "stale", "failed") if args.retry_failed else ("new", "stale")


def _launch(args, path: Path, spec, folder: Path, executor: str, why: str, parallelism: int,
            lock: "LaunchLock", out, err) -> int:
    remove_launcher_temp_files(folder)
    states, warnings = run_states(folder, spec)
    for w in warnings:
        print(f"warning: {w}", file=err)
    launch = [s for s in states if s.state in _wanted(args)]

    c = count(states)
    skipped = [f"{c[s]} {s}" for s in ("done", "running", "queued") if c[s]]
    if skipped:
        print(f"skipping {', '.join(skipped)}", file=out)
    if c["failed"] and not args.retry_failed:
        print(f"not relaunching {c['failed']} failed run(s) (--retry-failed does; --status shows "
              "their errors)", file=out)
    stale = [s for s in states if s.state == "stale"]
    if stale:
        print(f"relaunching {len(stale)} stale run(s) (not done, job gone); they resume from their "
              "last checkpoints:", file=out)
        for s in stale[:10]:
            print(f"  {s.run.label()}: {s.error}", file=out)
        if len(stale) > 10:
            print(f"  ... and {len(stale) - 10} more", file=out)
    if not launch:
        print(f"nothing to launch: {len(states)} run(s) of {spec.name} are "
              + ", ".join(f"{c[s]} {s}" for s in ("done", "running", "queued", "failed") if c[s]),
              file=out)
        write_manifest(folder, spec, states={s.run.run_id: s for s in states})
        lock.release()
        if args.wait and (c["queued"] or c["running"]):
            return wait_for_sweep(folder, spec, err)
        return 0 if not args.wait or c["done"] == len(states) else 1

    runs = [s.run for s in launch]
    print(f"launching {len(runs)} run(s) of {spec.name} on {executor} ({why}) into {folder}", file=out)
    write_spec_copy(folder, spec)
    launch_info = {"time": now_iso(), "executor": executor, "runs": len(runs),
                   "retry_failed": bool(args.retry_failed), "spec_source": str(path),
                   "spec_sha256": hashlib.sha256(spec.text.encode()).hexdigest()}
    first = [True]
    launching = {r.run_id for r in runs}

    def record(entries: dict[str, dict]) -> None:
        write_manifest(folder, spec, updates=entries, launch=launch_info if first[0] else None,
                       states={s.run.run_id: s for s in states if s.run.run_id not in launching})
        first[0] = False
        if executor != "slurm":  # local and debug record every run at once, before starting
            lock.release()

    try:
        if executor == "slurm":
            try:
                executors.launch_slurm(spec, folder, runs, record, out=out)
            except Exception as e:  # noqa: BLE001 - sbatch refused: say so, keep what was submitted
                print(f"error: submission failed: {type(e).__name__}: {e}", file=err)
                print("the manifest holds the jobs submitted before the failure; launch again to "
                      "submit the rest", file=err)
                return 1
            lock.release()
            if args.wait:
                return wait_for_sweep(folder, spec, err)
            print(f"follow with: python sweeps/launch.py {args.spec} --results {args.results} --status",
                  file=out)
            return 0
        if executor == "local":
            results = executors.launch_local(spec, folder, runs, parallelism, record, stream=err)
        else:
            results = executors.launch_debug(spec, folder, runs, record, stream=err)
    except KeyboardInterrupt:
        print("interrupted", file=err)
        return 130
    # A run whose process was stopped (killed) while this launcher lives reads as running;
    # its job is over: it is stale, and the next launch resumes it.
    final = [RunState(s.run, "stale", s.step, results[s.run.run_id]["error"], s.job, s.note)
             if s.state in ("running", "queued") and results.get(s.run.run_id, {}).get("state") == "stale"
             else s for s in run_states(folder, spec)[0]]
    write_manifest(folder, spec, states={s.run.run_id: s for s in final})
    bad = [rid for rid, r in results.items() if r["state"] != "done"]
    c = count(final)
    print(f"{spec.name}: " + ", ".join(f"{c[s]} {s}" for s in ("done", "failed", "stale", "new") if c[s]),
          file=out)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
