"""How fast the analysis is on 10,000+ runs x 100 evaluations (a benchmark, not a test).

    python benchmarks/analysis_speed.py [--dir DIR] [--repeats 3] [--reps 2000 50000]
                                        [--components] [--rliable-report]

1. Writes (once; kept in DIR) a synthetic sweep in the exact run-directory format:
   7 variants (vmpo, 3 ablations, ppo, trpo, mpo) x 70 envs (suites' atari57, mujoco
   and classic: 57 + 9 + 4) x 21 seeds = 10,290 runs, each with 100 evaluations and, before each,
   2 training log steps of 10 metrics (2,300 metrics.csv rows a run).
2. Times loading and scoring (find sweeps, read every run directory, completeness,
   normalised final scores, rliable matrices) in this process.
3. Times the whole report, `python analysis/report.py DIR --out ... --reps N`, as a
   subprocess (imports, figures and all) for each N in --reps.
4. --components: times each bootstrap estimator on the largest group (Atari, one
   variant: 21 seeds x 57 games) with rliable's own loop and with the fast engine.
5. --rliable-report: the whole report once with `--engine rliable` at the first --reps.

Every timing is repeated --repeats times (the file cache is warm: the data were just
written or read); the median wall time, every wall time, the median CPU time (this
process and its children) and the 1-minute load average are printed. The machine may be
shared: compare CPU with wall time to see contention.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

VARIANTS = {"vmpo": "vmpo", "vmpo-no-topk": "vmpo", "vmpo-no-alpha": "vmpo",
            "vmpo-fixed-eta": "vmpo", "ppo": "ppo", "trpo": "trpo", "mpo": "mpo"}


def generate(d: Path, seeds: int, n_evals: int) -> int:
    import suites
    from analysis.synthetic import write_sweep

    envs = {e: suites.suite_of(e) for name in ("atari57", "mujoco", "classic")
            for e in suites.resolve(name)}

    def final(v, e, s):
        r = suites.reference(e)
        u = (zlib.crc32(f"{v}|{e}|{s}".encode()) % 10_000) / 10_000
        skill = {"vmpo": 1.1, "ppo": 1.0, "trpo": 0.8, "mpo": 0.9}.get(v, 0.95)
        return r.random + (r.reference - r.random) * skill * (0.2 + 1.6 * u)

    def start(v, e, s):
        return suites.reference(e).random

    t = time.perf_counter()
    write_sweep(d, "speed", variants=VARIANTS, envs=envs, seeds=range(seeds), final=final,
                start=start, steps=1_000_000, n_evals=n_evals,
                frameskip={e: 4 for e, s in envs.items() if s == "atari"},
                manifest="csv", train_logs_per_eval=2)
    n = len(VARIANTS) * len(envs) * seeds
    print(f"wrote {n} runs ({len(VARIANTS)} variants x {len(envs)} envs x {seeds} seeds, "
          f"{n_evals} evals each) in {time.perf_counter() - t:.0f} s")
    return n


def _cpu() -> float:
    """CPU seconds of this process and its waited-for children (workers, subprocesses)."""
    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime


def timed(fn, repeats: int) -> tuple[float, list[float], float]:
    """(median wall seconds, every wall time, median CPU seconds) of `repeats` calls."""
    ts, cs = [], []
    for _ in range(repeats):
        t, c = time.perf_counter(), _cpu()
        fn()
        ts.append(time.perf_counter() - t)
        cs.append(_cpu() - c)
    return statistics.median(ts), ts, statistics.median(cs)


def show(label: str, med: float, ts: list[float], cpu: float | None = None) -> None:
    extra = f"  cpu {cpu:7.2f} s" if cpu is not None else ""
    print(f"{label:<44} wall median {med:7.2f} s{extra}   (walls: "
          f"{', '.join(f'{t:.2f}' for t in ts)}; load avg {os.getloadavg()[0]:.1f})",
          flush=True)


def load_and_score(d: Path):
    from analysis import completeness
    from analysis.load import load
    from analysis.scores import final_scores, groups

    runs = load([d])
    status = completeness.check(runs)
    final = final_scores(runs, status)
    return runs, final, groups(final)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dir", default="/tmp/vmpo-bench-analysis-speed")
    p.add_argument("--seeds", type=int, default=21)
    p.add_argument("--evals", type=int, default=100)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--reps", type=int, nargs="+", default=[2000, 50000])
    p.add_argument("--components", action="store_true")
    p.add_argument("--rliable-report", action="store_true")
    a = p.parse_args()
    d = Path(a.dir)
    sweep = d / "speed"
    if not (sweep / "manifest.csv").is_file():
        generate(d, a.seeds, a.evals)
    size = sum(f.stat().st_size for f in sweep.rglob("*") if f.is_file())
    n_runs = sum(1 for _ in sweep.iterdir() if _.is_dir())
    print(f"data: {sweep}: {n_runs} run directories, {size / 1e6:.0f} MB")

    show(f"load + score {n_runs} runs x {a.evals} evals",
         *timed(lambda: load_and_score(sweep), a.repeats))
    runs, final, grp = load_and_score(sweep)
    print(f"  -> {len(final)} scores, {len(runs.eval_values)} evaluations, {len(grp)} groups")

    env = {**os.environ, "PYTHONHASHSEED": "0"}
    for reps in a.reps:
        out = d / f"report-{reps}"
        cmd = [sys.executable, str(ROOT / "analysis" / "report.py"), str(sweep), "--out",
               str(out), "--reps", str(reps)]
        show(f"whole report, --reps {reps}",
             *timed(lambda cmd=cmd: subprocess.run(cmd, check=True, env=env,
                                                   stdout=subprocess.DEVNULL), a.repeats))

    if a.components:
        components(grp, a.reps[0], a.repeats)
    if a.rliable_report:
        out = d / "report-rliable"
        cmd = [sys.executable, str(ROOT / "analysis" / "report.py"), str(sweep), "--out",
               str(out), "--reps", str(a.reps[0]), "--engine", "rliable"]
        show(f"whole report, --reps {a.reps[0]}, --engine rliable",
             *timed(lambda: subprocess.run(cmd, check=True, env=env,
                                           stdout=subprocess.DEVNULL), 1))


def components(grp, reps: int, repeats: int) -> None:
    """Each estimator on the largest group with both engines."""
    import numpy as np

    from analysis import bootstrap as bs
    from analysis.aggregate import profile_taus

    key = max(grp, key=lambda k: grp[k].n_runs)
    g = grp[key]
    other = next(v for (s, v) in grp if s == key[0] and v != key[1])
    y = grp[(key[0], other)].scores
    taus = profile_taus(g.scores)
    rng = np.random.default_rng(0)
    cur = g.scores[..., None] * np.linspace(0.1, 1, 20) + rng.normal(0, 0.01, (1, 1, 20))
    print(f"components on {key[0]}/{key[1]}: {g.scores.shape[0]} seeds x "
          f"{g.scores.shape[1]} envs, --reps {reps}")
    jobs = [(m, lambda e, m=m: bs.aggregate(g.scores, m, reps, 1, e)) for m in bs.METRICS]
    jobs += [("profile (101 thresholds)", lambda e: bs.profile(g.scores, taus, reps, 1, e)),
             (f"probability of improvement vs {other}",
              lambda e: bs.probability_of_improvement(g.scores, y, reps, 1, e)),
             ("IQM curve (20 points)", lambda e: bs.curve(cur, reps, 1, e))]
    for name, fn in jobs:
        res = {}
        for engine in ("rliable", "fast"):
            res[engine] = timed(lambda fn=fn, engine=engine: fn(engine),
                                1 if engine == "rliable" else repeats)[::2]
        same = all(np.array_equal(u, v) for u, v in zip(fn("rliable"), fn("fast"))) \
            if res["rliable"][0] < 5 else "(not rechecked)"
        print(f"  {name:<40} rliable wall {res['rliable'][0]:7.2f} s (cpu "
              f"{res['rliable'][1]:6.2f})   fast wall {res['fast'][0]:6.3f} s (cpu "
              f"{res['fast'][1]:6.3f})   equal: {same}", flush=True)


if __name__ == "__main__":
    main()
