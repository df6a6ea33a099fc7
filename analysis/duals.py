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


def update_text(algo: str, cfg: dict) -> str | None:
    """What one update of a run's learner is, from its resolved config: the unit of its
    `kl/step` (the KL between the policies before and after one `Learner.update()`).

    - PPO: its epochs of minibatch steps over one rollout (rollout_length x num_envs);
    - TRPO: one natural-gradient step, line-searched within max_kl, on one rollout;
    - V-MPO: its epochs of minibatch steps (or whole-batch steps, minibatch_size 0) over
      one rollout: one learner step;
    - MPO: one gradient step on a batch sampled from replay.

    None for another algorithm or a config without those fields."""
    from analysis.tuning_values import WHOLE_BATCH  # the one wording of minibatch_size 0

    try:
        n = int(cfg["rollout_length"]) * int(cfg.get("num_envs", 1))
        if algo in ("ppo", "vmpo"):
            epochs, mb = int(cfg["epochs"]), int(cfg["minibatch_size"])
            # algos/onpolicy.steps_per_pass, which analysis may not import: minibatch_size 0
            # (V-MPO's "the whole batch") or at least n is one step, else ceil(n / size),
            # the last minibatch shorter
            k = 1 if mb <= 0 or mb >= n else -(-n // mb)
            size = n if k == 1 else mb
            each = f"{k} minibatches of {size}" if k > 1 else f"the {WHOLE_BATCH}"
            steps = epochs * k
            return (f"{epochs} epoch{'s' if epochs != 1 else ''} x {each} over a "
                    f"{n:,}-step rollout ({steps} gradient step{'s' if steps != 1 else ''})")
        if algo == "trpo":
            return (f"one natural-gradient step, line-searched within max_kl "
                    f"{float(cfg['max_kl']):g}, on a {n:,}-step rollout")
        if algo == "mpo":
            return (f"one gradient step on {int(cfg['batch_size'])} replayed sequences "
                    f"({float(cfg['replay_ratio']):g} updates per env step)")
    except (KeyError, TypeError, ValueError):
        return None
    return None


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
DUAL_MIN = 1e-8  # algos.vmpo.Config.dual_min's default: the floor every alpha is kept at
ACTIVE_FACTOR = 100  # an alpha above 100x its run's floor is taken to be acting (binding)


def dual_floor(cfg: dict) -> float:
    """The floor a V-MPO run keeps its multipliers at: its config's `dual_min`, else the
    default (DUAL_MIN)."""
    return float(cfg.get("dual_min", DUAL_MIN))


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


def _kl_over_bound(kl: tuple, bound: tuple, eps: float | None) -> tuple[np.ndarray, np.ndarray]:
    """(steps, KL / eps) at each step the KL was logged, eps being the bound logged at
    that same step, else the config's `eps` (steps without either are dropped)."""
    by_step = dict(zip(*bound))
    steps, ratio = [], []
    for st, k in zip(*kl):
        b = by_step.get(st, eps)
        if b:
            steps.append(st)
            ratio.append(k / b)
    return np.asarray(steps, dtype=np.float64), np.asarray(ratio, dtype=np.float64)


def trust_regions(runs: Runs, final: pd.DataFrame, variants: list[str],
                  start: float = 0.5, spans: int = 50) -> pd.DataFrame:
    """Did V-MPO's trust regions bind? Per (suite, variant, env), over the last
    (1 - start) of each run's steps (so that the alphas' descent from their initial values
    does not count), cut into `spans` equal spans of agent steps (1% of a run each by
    default), each span taking the mean of its learner steps' values:

    - `<c>_active`: the share of spans whose mean alpha_c exceeds ACTIVE_FACTOR x the run's
      floor (`dual_min`, 1e-8 by default). The multiplier is the direct measure: projected
      gradient steps on alpha (eps_c - KL_c) raise it only while KL_c exceeds eps_c, so an
      alpha at its floor is a constraint that did not bind. This assumes V-MPO's default
      `dual_parameterization: projection`; under `softplus` an idle alpha only approaches
      its floor, and may read active for a while after its constraint stopped binding.
    - `<c>_kl_ratio`: the median over spans of the mean of KL_c / eps_c (eps as logged at
      the same step, else the config's: `kl_bounds`). The KL is to the target policy,
      which is refreshed every `target_period` learner steps: the KL restarts at 0 and
      grows over each period, so this is a period average, about half the end-of-period
      value when it grows linearly. A bound reached at each period's end reads ~0.5.

    Spans, not learner steps, so that an archived run (`analysis.archive`: block means of
    at most 400 consecutive-row blocks per metric, each placed at its last step) gives
    what its run directory gave to within about a span. Each cell's value is the median
    over the runs that log the statistic, `<c>_runs` of them; c is `mean`, `std`
    (decoupled Gaussian) or `kl` (one KL, categorical); NaN where no run logs that
    constraint (V-MPO without its trust region). `ess_fraction`: the median over spans of
    the E-step weights' effective sample size over the kept samples, 1/sum(psi^2)/n_kept
    (1: uniform weights, eta too loose to select); NaN for runs from before it was logged
    and archived. Columns: suite, variant, env, runs, then the statistics."""
    rows = []
    sel = final[final["variant"].isin(variants)]
    for (suite, variant, env), g in sel.groupby(["suite", "variant", "env"], sort=True):
        per_run = [run_trust_region(runs, int(i), start, spans) for i in g["row"].to_numpy()]
        rows.append({"suite": suite, "variant": variant, "env": env, **median_over_runs(per_run)})
    return pd.DataFrame(rows, columns=["suite", "variant", "env", "runs", *TR_COLUMNS])


TR_COLUMNS = [f"{c}_{st}" for c in CONSTRAINTS for st in ("active", "kl_ratio", "runs")] + ["ess_fraction"]


def run_trust_region(runs: Runs, i: int, start: float = 0.5, spans: int = 50) -> dict[str, float]:
    """One run's `trust_regions` statistics (row i of runs.table): `<c>_active`,
    `<c>_kl_ratio` per constraint and `ess_fraction`, NaN where it logs none."""
    wanted = tuple({m for trio in CONSTRAINTS.values() for m in trio} | {"psi/ess_fraction"})
    t = runs.table
    cfg = json.loads(t["config"].iloc[i])
    bounds, floor = kl_bounds(cfg), dual_floor(cfg)
    logged = read_metrics(os.path.join(t["path"].iloc[i], METRICS), wanted)
    last = max((max(st) for st, _ in logged.values() if st), default=0)
    edges = np.linspace(start * last, last, spans + 1)

    def late_spans(st, v):
        """Span means of the values logged past the first `start` of the run."""
        st, v = np.asarray(st, dtype=np.float64), np.asarray(v, dtype=np.float64)
        keep = st > edges[0]
        m = span_means(st[keep], v[keep], edges) if keep.any() else np.zeros(0)
        return m[np.isfinite(m)]

    r = {}
    for c, (alpha, kl, bound) in CONSTRAINTS.items():
        a = late_spans(*logged[alpha])
        ratio = late_spans(*_kl_over_bound(logged[kl], logged[bound], bounds.get(kl)))
        has = len(a) > 0  # no multiplier: no trust region on this KL (a diagnostic)
        r[f"{c}_active"] = float(np.mean(a > ACTIVE_FACTOR * floor)) if has else np.nan
        r[f"{c}_kl_ratio"] = float(np.median(ratio)) if has and len(ratio) else np.nan
    e = late_spans(*logged["psi/ess_fraction"])
    r["ess_fraction"] = float(np.median(e)) if len(e) else np.nan
    return r


def median_over_runs(per_run: list[dict[str, float]]) -> dict[str, float]:
    """runs, `<c>_runs` (the runs logging constraint c) and the median over runs of each
    `run_trust_region` statistic, NaN values left out."""
    row: dict[str, float] = {"runs": len(per_run)}
    for c in CONSTRAINTS:
        row[f"{c}_runs"] = sum(np.isfinite(r[f"{c}_active"]) for r in per_run)
    for col in sorted({k for r in per_run for k in r}):
        vals = np.array([r[col] for r in per_run])
        vals = vals[np.isfinite(vals)]
        row[col] = float(np.median(vals)) if len(vals) else np.nan
    return row
