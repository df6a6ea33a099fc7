"""Seeds needed: how many seeds would the observed effect need to show?

For a comparison whose probability-of-improvement interval contains 0.5, estimate how
many seeds per env the observed effect would need for the interval to exclude 0.5, by
resampling the runs we have (a parametric-free plug-in power analysis):

    for n in CANDIDATES (seeds per env):
        repeat EXPERIMENTS times:
            per env, draw n scores of X and n of Y with replacement from the observed
            runs of that env (the observed effect, including its spread, is the truth);
            compute P(X > Y) and its 95% stratified-bootstrap interval exactly as the
            report does (analysis.bootstrap.probability_of_improvement, REPS reps)
        power(n) = the fraction of experiments whose interval excludes 0.5
    seeds needed = the smallest n with power >= POWER (none: "more than the largest")

Caveats, said in the report: this is post-hoc power, a function of the observed P(X > Y)
(the observed effect is taken as the truth). An observed P near 0.5 needs very many
seeds, or none suffice; that says the observed effect is small, not that there is none:
the interval of P still allows effects up to its ends, and the table cannot tell a null
from a real effect smaller than the one observed. With 3 observed seeds the resampled
populations have 3 atoms per env, so the estimate is a rough guide (it assumes the
observed spread is the true one). REPS is smaller than the report's own (200 against its
50,000): each simulated interval only has to say whether it excludes 0.5.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis import bootstrap as bs

CANDIDATES = (3, 5, 10, 20, 50)
EXPERIMENTS = 100
REPS = 200
POWER = 0.8


def power_curve(x: np.ndarray, y: np.ndarray, candidates=CANDIDATES, experiments: int = EXPERIMENTS,
                reps: int = REPS, seed: int = 0) -> dict[int, float]:
    """{n: the fraction of simulated n-seed experiments whose 95% interval of P(X > Y)
    excludes 0.5}. x: (runs_x, tasks), y: (runs_y, tasks) observed normalised scores."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(f"x and y need shape (runs, tasks) with the same tasks, got {x.shape}, {y.shape}")
    rs = np.random.RandomState(bs.derive_seed(seed, "power"))
    t = x.shape[1]
    cols = np.arange(t)[None, :]
    out = {}
    for n in candidates:
        hits = 0
        for e in range(experiments):
            xs = x[rs.randint(0, x.shape[0], (n, t)), cols]
            ys = y[rs.randint(0, y.shape[0], (n, t)), cols]
            _, lo, hi = bs.probability_of_improvement(xs, ys, reps, bs.derive_seed(seed, n, e))
            hits += bool(lo[0] > 0.5 or hi[0] < 0.5)
        out[int(n)] = hits / experiments
    return out


def seeds_needed(curve: dict[int, float], power: float = POWER) -> int | None:
    """The smallest n whose power reaches `power`, None if none does."""
    return next((n for n, p in sorted(curve.items()) if p >= power), None)


def table(poi: pd.DataFrame, groups, seed: int = 0, candidates=CANDIDATES) -> pd.DataFrame:
    """For each comparison in `poi` (analysis.aggregate.probabilities) whose interval
    contains 0.5: suite, kind, x, y, point, lower, upper, seeds (per env now), power at
    each candidate (columns power_<n>), seeds_needed (NaN: more than the largest)."""
    from analysis.aggregate import _common

    rows = []
    seen = set()
    for r in poi.itertuples(index=False):
        if not (r.lower <= 0.5 <= r.upper) or (r.suite, r.x, r.y) in seen:
            continue  # a pair both "baseline" and "ablation" is estimated once
        seen.add((r.suite, r.x, r.y))
        c = _common(groups[(r.suite, r.x)], groups[(r.suite, r.y)])
        if c is None:
            continue
        gx, gy = c
        curve = power_curve(gx.scores, gy.scores, candidates, seed=seed)
        need = seeds_needed(curve)
        rows.append({"suite": r.suite, "kind": r.kind, "x": r.x, "y": r.y, "point": r.point,
                     "lower": r.lower, "upper": r.upper,
                     "seeds": int(min(gx.scores.shape[0], gy.scores.shape[0])),
                     **{f"power_{n}": p for n, p in curve.items()},
                     "seeds_needed": float(need) if need is not None else np.nan})
    cols = ["suite", "kind", "x", "y", "point", "lower", "upper", "seeds",
            *[f"power_{n}" for n in candidates], "seeds_needed"]
    return pd.DataFrame(rows, columns=cols)


def wide(t: pd.DataFrame) -> pd.DataFrame:
    """The report's layout: one row per comparison, power per candidate as percentages."""
    from analysis.tables import ci

    n_cols = [c for c in t.columns if c.startswith("power_")]
    out = pd.DataFrame({
        "suite": t["suite"], "comparison": [f"P({a} > {b})" for a, b in zip(t["x"], t["y"])],
        "P [95% CI]": [ci(p, lo, hi) for p, lo, hi in zip(t["point"], t["lower"], t["upper"])],
        "seeds now": t["seeds"]})
    for c in n_cols:
        out[f"power at {c.split('_')[1]}"] = [f"{100 * p:.0f}%" for p in t[c]]
    largest = n_cols[-1].split("_")[1] if n_cols else "?"
    out["seeds needed (80%)"] = [f"{int(n)}" if n == n else f"> {largest}" for n in t["seeds_needed"]]
    return out
