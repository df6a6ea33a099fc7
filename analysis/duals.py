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

import json
import os
import warnings

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
ARCHIVED_METRICS = DUAL_METRICS + DIAG_METRICS + ("psi/ess_fraction",)  # + trust_regions' ESS


def span_means(steps, values, edges: np.ndarray) -> np.ndarray:
    """The mean of `values` logged at `steps` within each span (edges[j], edges[j+1]]
    (the first span also takes steps at or below edges[0]; NaN where a span has none)."""
    n = len(edges) - 1
    s, v = np.asarray(steps, dtype=np.float64), np.asarray(values, dtype=np.float64)
    k = np.clip(np.searchsorted(edges, s, side="left") - 1, 0, n - 1)
    sums = np.bincount(k, weights=v, minlength=n)
    counts = np.bincount(k, minlength=n)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


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
            binned = [span_means(*per_run[metric], edges) for per_run in logged
                      if per_run[metric][0]]
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


# V-MPO's constraints: (its multiplier, the KL it bounds, that KL's bound as logged).
# `dual/alpha` with `kl`/`kl/allowed_target` is the one-KL form (categorical policies).
CONSTRAINTS = {"mean": ("dual/alpha_mu", "kl/mean", "kl/allowed_mean"),
               "std": ("dual/alpha_sigma", "kl/std", "kl/allowed_std"),
               "kl": ("dual/alpha", "kl", "kl/allowed_target")}
ALPHA_FLOOR = 1e-8   # algos.duals.Duals' min_value: the projection keeps every alpha >= it
ACTIVE = 100 * ALPHA_FLOOR  # an alpha above this is taken to be acting (binding)


def kl_bounds(cfg: dict) -> dict[str, float]:
    """The KL bounds of a V-MPO run's config, keyed by the KL metric each bounds:
    decoupled Gaussian KLs by eps_alpha_mu / eps_alpha_sigma, one KL (categorical, or
    decouple_kl off: then kl/mean, kl/std are diagnostics) by eps_alpha; {} without its
    trust region. For runs from before V-MPO logged `kl/allowed_*`."""
    if not cfg.get("trust_region", True):
        return {}
    pairs = {"kl": "eps_alpha"}
    if cfg.get("decouple_kl", True):
        pairs.update({"kl/mean": "eps_alpha_mu", "kl/std": "eps_alpha_sigma"})
    return {m: float(cfg[k]) for m, k in pairs.items() if isinstance(cfg.get(k), (int, float))}


def trust_regions(runs: Runs, final: pd.DataFrame, variants: list[str],
                  start: float = 0.5, spans: int = 50) -> pd.DataFrame:
    """Did V-MPO's trust regions bind? Per (suite, variant, env), over the last
    (1 - start) of each run's steps (so that the alphas' descent from their initial values
    does not count), cut into `spans` equal spans of agent steps (1% of a run each by
    default), each span taking the mean of its learner steps' values:

    - `<c>_active`: the share of spans whose mean alpha_c exceeds ACTIVE (100x its
      floor); an alpha at the floor means its KL stayed below the bound, the constraint idle;
    - `<c>_at_bound`: the share of spans whose mean KL_c / eps_c is >= 1 (at or past the bound);
    - `<c>_kl_ratio`: the median over spans of the mean KL_c / eps_c (eps as logged, else
      the config's: `kl_bounds`): ~1 binds, << 1 idle;
    - `ess_fraction`: the median over spans of the E-step weights' effective sample size
      over the kept samples, 1/sum(psi^2)/n_kept (1: uniform weights, eta too loose).

    Spans, not single learner steps, so that an archived run (`analysis.archive`: block
    means of at most 400 consecutive-row blocks per metric, finer than these spans)
    gives what the run directory gave. Each cell's value is the median over its runs; c
    is `mean`, `std` (decoupled Gaussian) or `kl` (one KL, categorical); NaN where a run
    logs no such constraint (V-MPO without its trust region). Columns: suite, variant,
    env, runs, then the statistics."""
    cols = [f"{c}_{s}" for c in CONSTRAINTS for s in ("active", "at_bound", "kl_ratio")]
    cols.append("ess_fraction")
    wanted = tuple({m for trio in CONSTRAINTS.values() for m in trio} | {"psi/ess_fraction"})
    t = runs.table
    rows = []
    sel = final[final["variant"].isin(variants)]
    for (suite, variant, env), g in sel.groupby(["suite", "variant", "env"], sort=True):
        per_run = []
        for i in g["row"].to_numpy():
            path, cfg_bounds = t["path"].iloc[i], kl_bounds(json.loads(t["config"].iloc[i]))
            logged = read_metrics(os.path.join(path, METRICS), wanted)
            last = max((max(st) for st, _ in logged.values() if st), default=0)
            edges = np.linspace(start * last, last, spans + 1)

            def late(metric, _logged=logged, _edges=edges):
                st, v = _logged[metric]
                keep = np.asarray(st, dtype=np.float64) > _edges[0]
                return np.asarray(st)[keep], np.asarray(v, dtype=np.float64)[keep]

            r = {}
            for c, (alpha, kl, bound) in CONSTRAINTS.items():
                (sa, a), (sk, k), (_, b) = late(alpha), late(kl), late(bound)
                if not len(b) and kl in cfg_bounds:
                    b = np.full(len(k), cfg_bounds[kl])
                n = min(len(k), len(b)) if len(a) else 0  # logged together, per learner step
                a_sp = span_means(sa, a, edges) if len(a) else np.zeros(0)
                r_sp = span_means(sk[:n], k[:n] / b[:n], edges) if n else np.zeros(0)
                a_sp, r_sp = a_sp[np.isfinite(a_sp)], r_sp[np.isfinite(r_sp)]
                r[f"{c}_active"] = float(np.mean(a_sp > ACTIVE)) if len(a_sp) else np.nan
                r[f"{c}_at_bound"] = float(np.mean(r_sp >= 1.0)) if len(r_sp) else np.nan
                r[f"{c}_kl_ratio"] = float(np.median(r_sp)) if len(r_sp) else np.nan
            se, e = late("psi/ess_fraction")
            e_sp = span_means(se, e, edges) if len(e) else np.zeros(0)
            e_sp = e_sp[np.isfinite(e_sp)]
            r["ess_fraction"] = float(np.median(e_sp)) if len(e_sp) else np.nan
            per_run.append(r)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN column stays NaN
            med = {c: float(np.nanmedian([r[c] for r in per_run])) for c in cols}
        rows.append({"suite": suite, "variant": variant, "env": env, "runs": len(per_run), **med})
    return pd.DataFrame(rows, columns=["suite", "variant", "env", "runs", *cols])
