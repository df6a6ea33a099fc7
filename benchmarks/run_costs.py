"""What a run costs per gradient step, fitted from finished runs: the dry-run's cost model.

    python benchmarks/run_costs.py SWEEP_DIR [SWEEP_DIR ...] [--min-span 2]

For every finished run (status.json `done`) under the sweep folders: its wall time (the
`wall_time` of metrics.csv's last row; it carries over resumes, so a resumed run counts
its training only) and its gradient steps, `steps x gradient_steps_per_env_step(config)`
(the algorithm module's function of config.json's `config`). Per (algorithm, env), an
ordinary least-squares line `wall = a + b x gradient steps` (scipy.stats.linregress)
gives:

- `ms/step`: b in milliseconds with its 95% interval (t quantile on the fit's stderr), the
  cost of one more gradient step; printed only where the runs' gradient steps span at
  least `--min-span` times from smallest to largest (else the slope is noise);
- `R2`, and the residual sd in seconds: how much of the wall time the gradient steps
  explain (the rest: episode lengths, evaluations, the neighbour run on the other core);
- `rate@defaults`: steps / (a + b x the algorithm's default gradient steps for the env),
  a whole run's steps per second at its defaults, evaluation included, as the runs ran
  (without a slope: the median rate of the runs at the defaults, or of all runs).

`--csv` prints those as rows of sweeps/throughput.csv (`includes_eval=yes`, with the
`ms_per_gradient_step` column), for a person to paste: the runs were made two at a time
on one machine, which the source column should then say.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scipy import stats  # noqa: E402

from rundir import read_json, tail_rows  # noqa: E402


def run_points(sweeps: list[Path]) -> dict[tuple[str, str], list[tuple[float, float, int, float]]]:
    """{(algo, env): [(gradient steps, wall s, steps, gradient steps per env step at the
    defaults)]} of the finished runs under `sweeps` whose algorithm can say."""
    from algos.train import algo_module
    from sweeps.plan import default_gradient_steps

    out: dict[tuple[str, str], list[tuple[float, float, int, float]]] = defaultdict(list)
    for sweep in sweeps:
        for cfg_path in sorted(sweep.glob("*/config.json")):
            d = cfg_path.parent
            status, cfg = read_json(d / "status.json") or {}, read_json(cfg_path) or {}
            rows = tail_rows(d, 4096)
            if status.get("state") != "done" or not rows or "config" not in cfg:
                continue
            fn = getattr(algo_module(cfg["algo"]), "gradient_steps_per_env_step", None)
            g0 = default_gradient_steps(cfg["algo"], cfg["env"])
            if fn is None or g0 is None:
                continue
            steps = int(status.get("step") or cfg["steps"])
            out[(cfg["algo"], cfg["env"])].append(
                (steps * fn(cfg["config"]), rows[-1][3], steps, g0))
    return out


def fit(points, min_span: float) -> dict[str, float]:
    """The fit of one (algo, env): n, span, ms (NaN below min_span), ms_lo, ms_hi, r2,
    resid_sd, rate (steps/s at the defaults)."""
    x = [p[0] for p in points]
    y = [p[1] for p in points]
    steps = sorted(p[2] for p in points)[len(points) // 2]
    span = max(x) / min(x) if min(x) > 0 else math.inf
    res = {"n": len(points), "span": span, "ms": math.nan, "ms_lo": math.nan,
           "ms_hi": math.nan, "r2": math.nan, "resid_sd": math.nan}
    if len(points) >= 3 and span >= min_span:
        lr = stats.linregress(x, y)
        t = stats.t.ppf(0.975, len(points) - 2)
        res.update(ms=lr.slope * 1e3, ms_lo=(lr.slope - t * lr.stderr) * 1e3,
                   ms_hi=(lr.slope + t * lr.stderr) * 1e3, r2=lr.rvalue ** 2)
        resid = [yi - (lr.intercept + lr.slope * xi) for xi, yi in zip(x, y)]
        res["resid_sd"] = (sum(r * r for r in resid) / (len(resid) - 2)) ** 0.5
        res["rate"] = steps / (lr.intercept + lr.slope * points[0][3] * steps)
    else:  # no slope to speak of: the median rate of the runs at the defaults (all runs
        # where none is)
        at = [p for p in points if math.isclose(p[0], p[3] * p[2], rel_tol=1e-9)] or points
        rates = sorted(p[2] / p[1] for p in at)
        res["rate"] = rates[len(rates) // 2]
    return res


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="benchmarks/run_costs.py", description=__doc__.split("\n")[0])
    p.add_argument("sweeps", nargs="+", type=Path, metavar="SWEEP_DIR")
    p.add_argument("--min-span", type=float, default=2.0,
                   help="fit a slope only where gradient steps span this ratio (default 2)")
    p.add_argument("--csv", action="store_true", help="print throughput.csv rows instead")
    a = p.parse_args(argv)
    bad = [s for s in a.sweeps if not s.is_dir()]
    if bad:
        p.error(f"not a sweep folder: {bad[0]}")
    fits = {k: fit(v, a.min_span) for k, v in sorted(run_points(a.sweeps).items())}
    if not fits:
        print("no finished runs of an algorithm with gradient_steps_per_env_step", file=sys.stderr)
        return 1
    if a.csv:
        for (algo, env), f in fits.items():
            ms = "" if math.isnan(f["ms"]) else f"{f['ms']:.2f}"
            print(f"{algo},<suite>,{env},{f['rate']:.0f},no,<source: {f['n']} runs>,<date>,yes,{ms}")
        return 0
    print(f"{'algo':<6} {'env':<16} {'runs':>4} {'span':>6} {'ms/step [95% CI]':>22} "
          f"{'R2':>5} {'resid sd':>8} {'rate@defaults':>13}")
    for (algo, env), f in fits.items():
        ms = ("-" if math.isnan(f["ms"]) else
              f"{f['ms']:.2f} [{f['ms_lo']:.2f}, {f['ms_hi']:.2f}]")
        r2 = "-" if math.isnan(f["r2"]) else f"{f['r2']:.2f}"
        sd = "-" if math.isnan(f["resid_sd"]) else f"{f['resid_sd']:.0f} s"
        print(f"{algo:<6} {env:<16} {f['n']:>4} {f['span']:>5.1f}x {ms:>22} {r2:>5} {sd:>8} "
              f"{f['rate']:>9,.0f}/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
