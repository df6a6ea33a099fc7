"""V-MPO's Lagrange multipliers and KLs over training, from the runs' metrics.csv.

Full V-MPO and its ablations log `dual/eta`, `dual/alpha_mu`, `dual/alpha_sigma` (or
`dual/alpha` for categorical policies) and the KLs they constrain (`kl/mean`, `kl/std`,
`kl`) once per learner step. This module bins each run's values into `points` equal
spans of agent steps (mean within a span), then gives, per suite, variant and metric,
the median and quartiles over the variant's runs (every env and seed): enough to see
whether a trust region was active (alpha above its 1e-8 floor, the KL at its bound) or
whether eta settled.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from analysis.load import METRICS, Runs, read_metrics

DUAL_METRICS = ("dual/eta", "dual/alpha_mu", "dual/alpha_sigma", "dual/alpha",
                "kl/mean", "kl/std", "kl")
# Every learner's diagnostics (issue 24): how wide its policy is, how far each update moved
# it (KL between consecutive policies on up to 256 of the update's states), and what it was allowed
# (TRPO: max_kl per update; V-MPO and MPO: the bounds on kl/mean, kl/std against their
# target policy).
DIAG_METRICS = ("policy/std", "policy/entropy", "kl/step", "kl/allowed", "kl/allowed_mean",
                "kl/allowed_std", "kl/allowed_target")
ARCHIVED_METRICS = DUAL_METRICS + DIAG_METRICS


def traces(runs: Runs, final: pd.DataFrame, variants: list[str], points: int = 20,
           metrics: tuple[str, ...] = DUAL_METRICS) -> pd.DataFrame:
    """Columns: suite, variant, metric, step (span end), median, q25, q75, n_runs (runs
    with a value in that span), for `metrics`. Only the metrics the runs logged; empty if
    none."""
    rows = []
    t = runs.table
    for (suite, variant), g in final[final["variant"].isin(variants)].groupby(["suite", "variant"], sort=True):
        paths = t["path"].to_numpy()[g["row"].to_numpy()]
        top = int(g["steps"].max())
        edges = np.linspace(0, top, points + 1)
        logged = [read_metrics(os.path.join(path, METRICS), metrics) for path in paths]
        for metric in metrics:
            binned = []
            for per_run in logged:
                s, v = per_run[metric]
                if not s:
                    continue
                s, v = np.asarray(s, dtype=np.float64), np.asarray(v, dtype=np.float64)
                k = np.clip(np.searchsorted(edges, s, side="left") - 1, 0, points - 1)
                sums = np.bincount(k, weights=v, minlength=points)
                counts = np.bincount(k, minlength=points)
                with np.errstate(invalid="ignore", divide="ignore"):
                    binned.append(np.where(counts > 0, sums / np.maximum(counts, 1), np.nan))
            if not binned:
                continue
            b = np.stack(binned)
            for j in range(points):
                col = b[:, j][np.isfinite(b[:, j])]
                if len(col):
                    q25, med, q75 = np.percentile(col, [25, 50, 75])
                    rows.append((suite, variant, metric, int(edges[j + 1]), med, q25, q75, len(col)))
    return pd.DataFrame(rows, columns=["suite", "variant", "metric", "step", "median", "q25",
                                       "q75", "n_runs"])
