"""What a run costs per gradient step, fitted from finished runs: the dry-run's cost model.

    python benchmarks/run_costs.py SWEEP_DIR [SWEEP_DIR ...] [--min-span 2] [--csv]

For every finished run (status.json `done`) in the sweep folders (results/<sweep>): its
wall time per env step (the `wall_time` of metrics.csv's last row, which carries over
resumes and leaves out start-up, over its steps) and G, its gradient steps per env step
(the algorithm module's `gradient_steps_per_env_step` of config.json's `config`). Per
sweep, algorithm and env (sweeps are never pooled: two sweeps may come from different
code or machines), an ordinary least-squares line `wall/steps = a + b x G`
(scipy.stats.linregress), i.e. wall = steps x (a + b x G), so that runs of different
budgets fit alike. It prints:

- `ms/step`: b in milliseconds with its 95% interval (t quantile on the fit's stderr),
  what one more gradient step costs; `~0` marks an interval that includes 0. Fitted only
  where G spans at least `--min-span` times from smallest to largest (else the slope is
  noise) and over at least 3 runs;
- `R2`, and the residual sd of wall/steps in microseconds per step: how much of the wall
  time G explains (the rest: episode lengths, evaluations, the run on the other core);
- `rate@defaults`: 1 / (a + b x G0), a whole run's env steps per second at the
  algorithm's defaults for the env (G0; evaluation included, as the runs ran); without a
  slope, the median rate of the runs at G0 (of all runs where none is).

`--csv` prints those as rows of sweeps/throughput.csv (`includes_eval=yes`, then
`ms_per_gradient_step` and the G0 the rate holds at, `gradient_steps_per_env_step`) for
a person to paste, filling in the suite, source and date. Exit status: 0 done, 1 no
finished run to fit, 2 a usage error (not a folder, a bad --min-span). A run directory
that cannot be read is skipped with a line on stderr naming it.
"""

from __future__ import annotations

import argparse
import csv
import math
import statistics
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scipy import stats  # noqa: E402

from rundir import last_wall_time, read_json  # noqa: E402


@dataclass
class Point:
    g: float          # gradient steps per env step of the run's config
    sec_per_step: float
    g0: float         # the algorithm's defaults' G on the env


def run_points(sweeps: list[Path], warn=lambda msg: print(msg, file=sys.stderr)
               ) -> dict[tuple[str, str, str], list[Point]]:
    """{(sweep, algo, env): [Point]} of the finished runs in `sweeps` whose algorithm
    defines gradient_steps_per_env_step; a run that cannot be read is skipped, `warn`ed."""
    from algos.train import algo_module
    from sweeps.plan import gradient_steps_of

    out: dict[tuple[str, str, str], list[Point]] = defaultdict(list)
    for sweep in sweeps:
        for cfg_path in sorted(sweep.glob("*/config.json")):
            d = cfg_path.parent
            try:
                status, cfg = read_json(d / "status.json") or {}, read_json(cfg_path) or {}
                if status.get("state") != "done":
                    continue
                fn = getattr(algo_module(cfg["algo"]), "gradient_steps_per_env_step", None)
                if fn is None:
                    continue
                steps, wall = int(status.get("step") or cfg["steps"]), last_wall_time(d)
                if steps <= 0 or not wall > 0:
                    raise ValueError(f"no wall time to fit (steps {steps}, wall_time {wall})")
                point = Point(float(fn(cfg["config"])), wall / steps,
                              gradient_steps_of(cfg["algo"], cfg["env"], {}))
            except Exception as e:  # noqa: BLE001 - one bad run must not hide the others
                warn(f"skipping {d}: {type(e).__name__}: {e}")
                continue
            out[(sweep.name, cfg["algo"], cfg["env"])].append(point)
    return out


def fit(points: list[Point], min_span: float) -> dict[str, float]:
    """The fit of one group: n, span, ms (NaN without a slope), ms_lo, ms_hi, r2,
    resid_us (residual sd of wall/steps, microseconds), rate (env steps/s at G0), g0."""
    gs = [p.g for p in points]
    span = max(gs) / min(gs) if min(gs) > 0 else math.inf
    g0 = points[0].g0
    res = {"n": len(points), "span": span, "ms": math.nan, "ms_lo": math.nan,
           "ms_hi": math.nan, "r2": math.nan, "resid_us": math.nan, "g0": g0}
    if len(points) >= 3 and span >= min_span:
        y = [p.sec_per_step for p in points]
        lr = stats.linregress(gs, y)
        t = stats.t.ppf(0.975, len(points) - 2)
        res.update(ms=lr.slope * 1e3, ms_lo=(lr.slope - t * lr.stderr) * 1e3,
                   ms_hi=(lr.slope + t * lr.stderr) * 1e3, r2=lr.rvalue ** 2)
        resid = [yi - (lr.intercept + lr.slope * gi) for gi, yi in zip(gs, y)]
        res["resid_us"] = 1e6 * (sum(r * r for r in resid) / (len(resid) - 2)) ** 0.5
        res["rate"] = 1.0 / (lr.intercept + lr.slope * g0)
    else:  # no slope to speak of: the median rate of the runs at the defaults' G
        at = [p for p in points if math.isclose(p.g, g0, rel_tol=1e-9)] or points
        res["rate"] = statistics.median(1.0 / p.sec_per_step for p in at)
    return res


def _min_span(text: str) -> float:
    value = float(text)
    if not (math.isfinite(value) and value > 1):
        raise argparse.ArgumentTypeError(f"expected a finite number > 1, got {text}")
    return value


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="benchmarks/run_costs.py", description=__doc__.split("\n")[0])
    p.add_argument("sweeps", nargs="+", type=Path, metavar="SWEEP_DIR",
                   help="sweep folders (results/<sweep>), each holding run directories")
    p.add_argument("--min-span", type=_min_span, default=2.0,
                   help="fit a slope only where G spans this ratio, > 1 (default 2)")
    p.add_argument("--csv", action="store_true", help="print throughput.csv rows instead")
    a = p.parse_args(argv)
    bad = [s for s in a.sweeps if not s.is_dir()]
    if bad:
        p.error(f"not a folder: {bad[0]}")
    fits = {k: fit(v, a.min_span) for k, v in sorted(run_points(a.sweeps).items())}
    if not fits:
        print("no finished run of an algorithm with gradient_steps_per_env_step in "
              f"{', '.join(map(str, a.sweeps))} (give sweep folders, results/<sweep>, "
              "not a results root)", file=sys.stderr)
        return 1
    if a.csv:
        out = csv.writer(sys.stdout, lineterminator="\n")
        for (sweep, algo, env), f in fits.items():
            cost = ["", ""] if math.isnan(f["ms"]) else [f"{f['ms']:.2f}", f"{f['g0']:.6g}"]
            out.writerow([algo, "<suite>", env, f"{f['rate']:.0f}", "no",
                          f"<source: {sweep}, {f['n']} runs>", "<date>", "yes", *cost])
        return 0
    print(f"{'sweep':<20} {'algo':<6} {'env':<16} {'runs':>4} {'span':>6} "
          f"{'ms/step [95% CI]':>24} {'R2':>5} {'resid sd':>10} {'rate@defaults':>13}")
    for (sweep, algo, env), f in fits.items():
        ms = ("-" if math.isnan(f["ms"]) else
              f"{f['ms']:.2f} [{f['ms_lo']:.2f}, {f['ms_hi']:.2f}]" + ("~0" if f["ms_lo"] <= 0 else ""))
        r2 = "-" if math.isnan(f["r2"]) else f"{f['r2']:.2f}"
        sd = "-" if math.isnan(f["resid_us"]) else f"{f['resid_us']:.0f} us/st"
        print(f"{sweep:<20} {algo:<6} {env:<16} {f['n']:>4} {f['span']:>5.1f}x {ms:>24} "
              f"{r2:>5} {sd:>10} {f['rate']:>9,.0f}/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
