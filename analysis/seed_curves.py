"""Every run's evaluation curve per env, and each variant's mean over its seeds.

The pooled IQM curve (aggregate.curves) hides what a reader of one env needs to see: a
bimodal env (some seeds learn, some do not), a seed that collapses, an early plateau
(Henderson et al. 2018, "Deep RL that matters"). This table keeps each run's raw
`eval/return` against agent steps, for the runs the aggregates take (scores.Group.rows:
the ok runs kept to give each env the same seeds), and adds each variant's mean over
those seeds on every env. No bootstrap: the seeds are drawn, not summarised.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.load import Runs

COLUMNS = ["suite", "env", "variant", "kind", "seed", "step", "eval_return"]


def mean_curve(curves: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """(steps, mean over runs) of runs' (steps [k_i], returns [k_i]) curves: at the steps
    every run evaluated at, its own values; where the runs share fewer than two steps
    (evaluations at different rollout boundaries), each run linearly interpolated onto
    the steps of the run with the fewest, within the range all of them cover."""
    common = sorted(set.intersection(*(set(s.tolist()) for s, _ in curves)))
    if len(common) >= 2:
        grid = np.asarray(common, dtype=np.int64)
        vals = [v[np.searchsorted(s, grid)] for s, v in curves]
    else:
        lo = max(int(s[0]) for s, _ in curves)
        hi = min(int(s[-1]) for s, _ in curves)
        fewest = min((s for s, _ in curves), key=len)
        grid = fewest[(fewest >= lo) & (fewest <= hi)]
        vals = [np.interp(grid, s, v) for s, v in curves]
    return grid, np.mean(np.stack(vals), axis=0) if len(grid) else np.zeros(0)


def table(runs: Runs, groups: dict) -> pd.DataFrame:
    """Columns: suite, env, variant, kind ("seed": one run's evaluations; "mean": the
    variant's mean over its seeds on that env, `mean_curve`), seed (the run's; NaN, an
    empty cell, for "mean"), step (agent env steps), eval_return (raw). groups: scores.groups(final)."""
    seeds = runs.table["seed"].to_numpy()
    parts = []
    for (suite, variant), g in sorted(groups.items()):
        for j, env in enumerate(g.envs):
            curves = []
            for i in g.rows[:, j]:
                st, vals = runs.curve(int(i))
                if len(st):
                    curves.append((st, vals))
                    parts.append(pd.DataFrame({"suite": suite, "env": env, "variant": variant,
                                               "kind": "seed", "seed": int(seeds[i]),
                                               "step": st, "eval_return": vals}))
            if curves:
                st, mean = mean_curve(curves)
                parts.append(pd.DataFrame({"suite": suite, "env": env, "variant": variant,
                                           "kind": "mean", "seed": np.nan, "step": st,
                                           "eval_return": mean}))
    if not parts:
        return pd.DataFrame(columns=COLUMNS)
    out = pd.concat(parts, ignore_index=True)[COLUMNS]
    out["step"] = out["step"].astype(np.int64)
    return out
