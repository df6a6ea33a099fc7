"""Every estimate the report shows, as tables (pandas DataFrames), from the score groups.

All intervals are 95% percentile intervals of rliable's stratified bootstrap
(analysis.bootstrap; engine "fast" equals engine "rliable"). Each estimate has its own
seed, derived from the report seed and what it estimates (`derive_seed`), so a number
does not change when other variants join the report.

Per-env final scores use a Student-t 95% interval of the mean over seeds instead: with
3 to 10 seeds a percentile bootstrap of one env's mean is too narrow.

A raw-return stratum (`scores.is_raw`: one env without a reference pair) gets every
estimate a normalised suite gets, in the env's return units, except the optimality gap
(the shortfall from a normalised score of 1, which has no raw counterpart); its
performance profile's thresholds span its returns instead of [0, 1].
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from analysis import bootstrap as bs
from analysis.load import Runs
from analysis.scores import (Group, ablations, auc_groups, curve_grid, curve_tensor, full_vmpo,
                             full_vmpos, is_raw, mixed_budgets, scores_at)

PROFILE_POINTS = 101
RAW_METRICS = tuple(m for m in bs.METRICS if m != "Optimality Gap")


def metrics(suite: str) -> tuple[str, ...]:
    """The aggregate metrics of a suite: bootstrap.METRICS, less the optimality gap (the
    gap to a normalised 1) for a raw-return stratum."""
    return RAW_METRICS if is_raw(suite) else bs.METRICS


@dataclass
class Estimates:
    """The report's numbers. Column lists are in each builder's docstring."""

    aggregate: pd.DataFrame
    poi: pd.DataFrame
    ablation: pd.DataFrame
    profiles: pd.DataFrame
    curves: pd.DataFrame
    per_env: pd.DataFrame
    full: str | None
    baseline: str
    notes: list[str] = field(default_factory=list)
    fulls: dict[str, str] = field(default_factory=dict)  # sweep label -> its full V-MPO
    # (suite, x, y) of a "label" pair -> the run ids its compared runs share (shared_runs)
    shared: dict[tuple[str, str, str], int] = field(default_factory=dict)
    common: pd.DataFrame = field(default_factory=pd.DataFrame)  # IQM at the smallest budget
    # `aggregate`'s estimators on each run's auc score (scores.auc_score), the same runs
    aggregate_auc: pd.DataFrame = field(default_factory=pd.DataFrame)


def default_jobs() -> int:
    """Worker processes for the bootstrap: the cores this process may use, at most 2
    unless asked (the report's machines have 2)."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        n = os.cpu_count() or 1
    return max(1, min(2, n))


def _call(job):
    name, args = job
    return getattr(bs, name)(*args)


def run_jobs(jobs: dict, n_jobs: int) -> dict:
    """{key: (bootstrap function name, args)} -> {key: its (point, lower, upper)}.

    Each job carries its own seed, so results do not depend on n_jobs or scheduling.
    With n_jobs > 1 the jobs run in forked worker processes, largest first.
    """
    keys = list(jobs)
    if n_jobs <= 1 or len(keys) <= 1:
        return {k: _call(jobs[k]) for k in keys}
    def cost(k):  # elements drawn: array sizes x replications
        args = jobs[k][1]
        reps = next(a for a in args if isinstance(a, int))
        return sum(a.size for a in args if isinstance(a, np.ndarray)) * reps

    order = sorted(keys, key=lambda k: -cost(k))
    ctx = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(max_workers=n_jobs, mp_context=ctx) as ex:
        futs = {k: ex.submit(_call, jobs[k]) for k in order}
        return {k: futs[k].result() for k in keys}


def aggregate_jobs(groups, reps: int, seed: int, engine: str, kind: str = "aggregate"
                   ) -> dict:
    """A job per group and metric of the groups' scores. kind names the jobs and their
    seeds: "aggregate" the final scores, "aggregate_auc" the auc ones (`scores.auc_groups`)."""
    return {(kind, suite, variant, metric):
            ("aggregate", (g.scores, metric, reps,
                           bs.derive_seed(seed, kind, suite, variant, metric), engine))
            for (suite, variant), g in groups.items() for metric in metrics(suite)}


def auc_jobs(runs: Runs, groups, reps: int, seed: int, engine: str, notes: list[str]
             ) -> tuple[dict, dict]:
    """The groups under auc (`scores.auc_groups`: the same runs, each scored by the mean
    of its evaluations) whose runs all have a finite auc, and their "aggregate_auc" jobs;
    a note for each group left out."""
    ag = {}
    for key, g in auc_groups(runs, groups).items():
        if np.isfinite(g.scores).all():
            ag[key] = g
        else:
            notes.append(f"{key[0]}/{key[1]}: not in the auc table, some of its runs have a "
                         "non-finite evaluation (NaN or inf: no auc score)")
    return ag, aggregate_jobs(ag, reps, seed, engine, kind="aggregate_auc")


def aggregates(groups: dict[tuple[str, str], Group], results: dict,
               kind: str = "aggregate") -> pd.DataFrame:
    """Columns: suite, variant, metric, point, lower, upper, n_runs, n_tasks, n_seeds.
    One row per (suite, variant, metric), metric in bootstrap.METRICS order (no
    optimality gap for a raw-return stratum: `metrics`); kind as in `aggregate_jobs`."""
    rows = []
    for (suite, variant), g in groups.items():
        for metric in metrics(suite):
            p, lo, hi = results[(kind, suite, variant, metric)]
            rows.append((suite, variant, metric, p[0], lo[0], hi[0], g.n_runs,
                         len(g.envs), g.scores.shape[0]))
    return pd.DataFrame(rows, columns=["suite", "variant", "metric", "point", "lower",
                                       "upper", "n_runs", "n_tasks", "n_seeds"])


def _budgets(g: Group, steps: np.ndarray) -> dict[str, frozenset]:
    """env -> the budgets (agent steps) of the group's runs there; steps: runs.table's."""
    return {e: frozenset(steps[g.rows[:, j]].tolist()) for j, e in enumerate(g.envs)}


def same_budget(x: Group, y: Group, steps: np.ndarray) -> bool:
    """True when, on every env both ran, x's runs and y's have the same budgets."""
    bx, by = _budgets(x, steps), _budgets(y, steps)
    return all(bx[e] == by[e] for e in bx if e in by)


def _pairs(groups, baseline: str, abl: dict[str, str], steps: np.ndarray):
    """(suite, kind, x, y) comparisons, per suite where both have runs:

    - "baseline": within each sweep label L (analysis/labels.py; "" for the unlabelled
      runs) whose baseline `baseline@L` has runs, that baseline against every other
      variant of L (never a variant of another label: a tuned variant against an untuned
      one would mix tuning with the change of algorithm);
    - "ablation": each ablation's full V-MPO against it (`abl`: ablation -> full,
      scores.ablations), both of one label;
    - "label": each variant X that is not an ablation against X@L, its namesake in a
      labelled sweep (an ablation's namesake differs in its full V-MPO's config too).

    No pair whose budgets differ (`same_budget`; steps: runs.table["steps"]): final
    scores at 100k and 1M steps measure the budget. Those variants meet in the
    common-budget table (`common_budget`)."""
    from analysis.labels import SEP, base, label

    out = []
    for suite in sorted({s for s, _ in groups}):
        mine = sorted(v for s, v in groups if s == suite)
        for lab in sorted({label(v) for v in mine}):
            b = base(baseline) + (SEP + lab if lab else "")
            if b in mine:
                out += [(suite, "baseline", b, v) for v in mine if v != b and label(v) == lab]
        out += [(suite, "ablation", f, a) for a, f in abl.items() if f in mine and a in mine]
        out += [(suite, "label", base(v), v) for v in mine
                if base(v) != v and base(v) in mine and not {v, base(v)} & set(abl)]
    return [p for p in out if same_budget(groups[(p[0], p[2])], groups[(p[0], p[3])], steps)]


def _common(x: Group, y: Group) -> tuple[Group, Group] | None:
    envs = [e for e in x.envs if e in y.envs]
    return (x.columns(envs), y.columns(envs)) if envs else None


def shared_runs(groups, pairs, ids: np.ndarray) -> dict[tuple[str, str, str], int]:
    """(suite, x, y) -> how many run ids the runs compared by a "label" pair share (ids:
    runs.table["run_id"]), where any: the same resolved config, env and seed run again
    (another code version, evaluation protocol or CPU), a control for every X vs X@label
    comparison."""
    out = {}
    for suite, kind, xv, yv in pairs:
        c = _common(groups[(suite, xv)], groups[(suite, yv)]) if kind == "label" else None
        n = len(set(ids[c[0].rows.ravel()]) & set(ids[c[1].rows.ravel()])) if c else 0
        if n:
            out[(suite, xv, yv)] = n
    return out


def poi_jobs(groups, pairs, reps: int, seed: int, engine: str) -> dict:
    jobs = {}
    for suite, _, xv, yv in pairs:
        c = _common(groups[(suite, xv)], groups[(suite, yv)])
        if c is not None:
            jobs[("poi", suite, xv, yv)] = (
                "probability_of_improvement",
                (c[0].scores, c[1].scores, reps, bs.derive_seed(seed, "poi", suite, xv, yv),
                 engine))
    return jobs


def probabilities(groups, pairs, results: dict) -> pd.DataFrame:
    """P(X > Y) with intervals, on the envs both have. Columns: suite, kind
    ("baseline": X is the baseline of a sweep label, Y every other variant of that label;
    "ablation": X is full V-MPO, Y each ablation; "label": Y is X of a labelled sweep,
    X@label; `_pairs`), x, y, point, lower, upper, n_x, n_y, n_tasks (envs both have)."""
    rows = []
    for suite, kind, xv, yv in pairs:
        key = ("poi", suite, xv, yv)
        if key not in results:
            continue
        gx, gy = _common(groups[(suite, xv)], groups[(suite, yv)])
        p, lo, hi = results[key]
        rows.append((suite, kind, xv, yv, p[0], lo[0], hi[0], gx.n_runs, gy.n_runs,
                     len(gx.envs)))
    return pd.DataFrame(rows, columns=["suite", "kind", "x", "y", "point", "lower", "upper",
                                       "n_x", "n_y", "n_tasks"])


def ablation_jobs(groups, abl: dict[str, str], reps: int, seed: int, engine: str) -> dict:
    """IQM of full V-MPO and of an ablation on the envs both have, where their env sets
    differ (an ablation not yet run on every env): their IQMs over all of each one's own
    envs would compare different tasks."""
    jobs = {}
    for (suite, a), ga in groups.items():
        gf = groups.get((suite, abl.get(a)))
        if a not in abl or gf is None or list(gf.envs) == list(ga.envs):
            continue
        c = _common(gf, ga)
        if c is None:
            continue
        # full V-MPO's seed names the envs it is restricted to, not the ablation: two
        # ablations on the same envs get the same figure for it
        for which, g, name in (("full", c[0], ",".join(c[0].envs)), ("ablation", c[1], a)):
            jobs[("ablation_iqm", suite, a, which)] = (
                "aggregate", (g.scores, "IQM", reps,
                              bs.derive_seed(seed, "ablation_iqm", suite, which, name), engine))
    return jobs


def ablation_table(agg: pd.DataFrame, poi: pd.DataFrame, abl: dict[str, str],
                   groups: dict, results: dict) -> pd.DataFrame:
    """IQM of each ablation beside its full V-MPO's (`abl`: ablation -> full) on the same
    envs, per suite. Columns:
    suite, variant, point, lower, upper, n_runs, full, full_point, full_lower, full_upper,
    full_n_runs, n_tasks (envs compared), p_full_better, p_lower, p_upper (P(full V-MPO >
    ablation)). Where the two were run on different envs, both IQMs are over the envs
    they share (`ablation_jobs`), as the probability of improvement is."""
    cols = ["suite", "variant", "point", "lower", "upper", "n_runs", "full", "full_point",
            "full_lower", "full_upper", "full_n_runs", "n_tasks", "p_full_better", "p_lower",
            "p_upper"]
    iqm = agg[agg["metric"] == "IQM"].set_index(["suite", "variant"])
    rows = []
    for suite in sorted(set(agg["suite"])):
        for a, full in abl.items():
            if (suite, full) not in iqm.index or (suite, a) not in iqm.index:
                continue
            f = iqm.loc[(suite, full)]
            r = iqm.loc[(suite, a)]
            pr = poi[(poi["suite"] == suite) & (poi["kind"] == "ablation") & (poi["y"] == a)
                     & (poi["x"] == full)]
            pp = pr.iloc[0] if len(pr) else None
            p3 = (np.nan,) * 3 if pp is None else (pp["point"], pp["lower"], pp["upper"])
            mine = (r["point"], r["lower"], r["upper"], r["n_runs"])
            theirs = (f["point"], f["lower"], f["upper"], f["n_runs"])
            n_tasks = r["n_tasks"]
            if ("ablation_iqm", suite, a, "full") in results:
                gf, ga = _common(groups[(suite, full)], groups[(suite, a)])
                (pf, lf, hf), (pa, la, ha) = (results[("ablation_iqm", suite, a, w)]
                                              for w in ("full", "ablation"))
                mine = (pa[0], la[0], ha[0], ga.n_runs)
                theirs = (pf[0], lf[0], hf[0], gf.n_runs)
                n_tasks = len(ga.envs)
            rows.append((suite, a, *mine, full, *theirs, n_tasks, *p3))
    return pd.DataFrame(rows, columns=cols)


def profile_taus(scores: np.ndarray, points: int = PROFILE_POINTS, raw: bool = False
                 ) -> np.ndarray:
    """Thresholds from min(0, lowest score) to max(1, highest score): (points,). For raw
    returns (`raw`), where 0 and 1 mean nothing, the scores' range widened by 5% each
    side (so the profile starts at 1 and ends at 0, as a normalised one mostly does)."""
    lo, hi = float(scores.min()), float(scores.max())
    if raw:
        pad = 0.05 * (hi - lo) if hi > lo else 0.5 * max(1.0, abs(lo))
        return np.linspace(lo - pad, hi + pad, points)
    return np.linspace(min(0.0, lo), max(1.0, hi), points)


def _suite_groups(groups, suite):
    return [g for (s, _), g in groups.items() if s == suite]


def profile_jobs(groups, reps: int, seed: int, engine: str) -> dict:
    jobs = {}
    for suite in sorted({s for s, _ in groups}):
        mine = _suite_groups(groups, suite)
        taus = profile_taus(np.concatenate([g.scores.ravel() for g in mine]),
                            raw=is_raw(suite))
        for g in mine:
            jobs[("profile", suite, g.variant)] = (
                "profile", (g.scores, taus, reps,
                            bs.derive_seed(seed, "profile", suite, g.variant), engine))
    return jobs


def profiles(groups, jobs: dict, results: dict) -> pd.DataFrame:
    """Performance profiles (fraction of runs with normalised score, or raw return for
    a raw stratum, > tau), one tau grid per suite. Columns: suite, variant, tau, point, lower, upper, n_runs."""
    rows = []
    for (suite, variant), g in groups.items():
        key = ("profile", suite, variant)
        taus = jobs[key][1][1]
        p, lo, hi = results[key]
        rows += [(suite, variant, taus[k], p[k], lo[k], hi[k], g.n_runs)
                 for k in range(len(taus))]
    return pd.DataFrame(rows, columns=["suite", "variant", "tau", "point", "lower", "upper",
                                       "n_runs"])


def curve_jobs(runs: Runs, groups, reps: int, seed: int, engine: str, points: int,
               notes: list[str]) -> tuple[dict, dict]:
    """Jobs for the sample-efficiency curves and, per job key, its step grid and
    frameskip (0 when runs differ)."""
    jobs, grids = {}, {}
    for suite in sorted({s for s, _ in groups}):
        for g in _suite_groups(groups, suite):
            # each variant over its own range: a variant given a smaller budget (say,
            # an off-policy learner) does not cut the others' curves short
            grid = curve_grid(runs, g.rows.ravel(), points)
            if len(grid) == 0:
                notes.append(f"{suite}/{g.variant}: no sample-efficiency curve, its runs "
                             "share no range of evaluation steps")
                continue
            ten = curve_tensor(runs, g, grid)
            if not np.isfinite(ten).all():
                notes.append(f"{suite}/{g.variant}: no sample-efficiency curve, some runs "
                             "have no finite evaluation at the first grid step")
                continue
            key = ("curve", suite, g.variant)
            jobs[key] = ("curve", (ten, reps, bs.derive_seed(seed, "curve", suite, g.variant),
                                   engine))
            fs = runs.table["frameskip"].to_numpy()[g.rows.ravel()]
            grids[key] = (grid, int(fs[0]) if (fs == fs[0]).all() else 0)
    return jobs, grids


def common_budget_jobs(runs: Runs, groups, final: pd.DataFrame, reps: int, seed: int,
                       engine: str, notes: list[str]) -> tuple[dict, dict]:
    """Where a suite's variants have different budgets: every variant's IQM at the
    smallest budget (each run's first evaluation at or after it). Jobs and, per job key,
    (step, the variant's own budgets)."""
    jobs, info = {}, {}
    for suite, budgets in mixed_budgets(final).items():
        step = min(b for bs_ in budgets.values() for b in bs_)
        for g in _suite_groups(groups, suite):
            sc = scores_at(runs, g, step)
            if not np.isfinite(sc).all():
                notes.append(f"{suite}/{g.variant}: not in the common-budget table, some runs "
                             f"have no evaluation at or after step {step:,}")
                continue
            key = ("common", suite, g.variant)
            jobs[key] = ("aggregate", (sc, "IQM", reps,
                                       bs.derive_seed(seed, "common", suite, g.variant), engine))
            info[key] = (step, budgets[g.variant])
    return jobs, info


def common_budget(groups, info: dict, results: dict) -> pd.DataFrame:
    """IQM at a suite's smallest budget. Columns: suite, variant, step, budget (the
    variant's own, "/"-joined), point, lower, upper, n_runs."""
    rows = []
    for (suite, variant), g in groups.items():
        key = ("common", suite, variant)
        if key not in results:
            continue
        step, own = info[key]
        p, lo, hi = results[key]
        rows.append((suite, variant, step, "/".join(f"{b:,}" for b in own), p[0], lo[0], hi[0],
                     g.n_runs))
    return pd.DataFrame(rows, columns=["suite", "variant", "step", "budget", "point", "lower",
                                       "upper", "n_runs"])


def _split(envs: list[str], tuned: set[str]) -> dict[str, list[str]]:
    """{"tuning": the envs a tuning ran on, "held out": the others}, each in `envs` order."""
    return {"tuning": [e for e in envs if e in tuned],
            "held out": [e for e in envs if e not in tuned]}


def env_split_jobs(groups, tuned: set[str], reps: int, seed: int, engine: str) -> dict:
    """IQM jobs of each variant over the envs a tuning ran on (`tuned`) and over its other
    envs, in the suites that hold both kinds of env (held-out envs: not `tuning.held_out`,
    whose held-out part is the seeds). A part that is all of a variant's envs takes the
    aggregate table's seed, so its figures are that table's IQM."""
    jobs = {}
    for (suite, v), g in groups.items():
        suite_envs = {e for (s, _), h in groups.items() if s == suite for e in h.envs}
        if not (suite_envs & tuned and suite_envs - tuned):
            continue
        for part, envs in _split(g.envs, tuned).items():
            if envs:
                sd = (bs.derive_seed(seed, "aggregate", suite, v, "IQM") if envs == g.envs
                      else bs.derive_seed(seed, "env_split", suite, v, ",".join(envs)))
                jobs[("env_split", suite, v, part)] = (
                    "aggregate", (g.columns(envs).scores, "IQM", reps, sd, engine))
    return jobs


def env_split(groups, tuned: set[str], results: dict) -> pd.DataFrame:
    """Per suite, variant and part ("tuning": the envs a tuning ran on, `tuned`; "held
    out": the others) with runs: the IQM over those envs (`env_split_jobs`; the table
    held_out_envs). Columns: suite, variant, part, envs (", "-joined), point, lower,
    upper, n_runs, n_tasks."""
    rows = []
    for (suite, v), g in groups.items():
        for part, envs in _split(g.envs, tuned).items():
            key = ("env_split", suite, v, part)
            if key in results:
                p, lo, hi = results[key]
                rows.append((suite, v, part, ", ".join(envs), p[0], lo[0], hi[0],
                             g.scores.shape[0] * len(envs), len(envs)))
    return pd.DataFrame(rows, columns=["suite", "variant", "part", "envs", "point", "lower",
                                       "upper", "n_runs", "n_tasks"])


def curves(groups, grids: dict, results: dict) -> pd.DataFrame:
    """IQM of normalised scores (raw returns for a raw stratum) against agent steps, one
    step grid per variant and suite (where every run of the variant has evaluated).
    Columns: suite, variant, step, frames (0 if frameskips differ), point, lower, upper,
    n_runs."""
    rows = []
    for (suite, variant), g in groups.items():
        key = ("curve", suite, variant)
        if key not in results:
            continue
        grid, frameskip = grids[key]
        p, lo, hi = results[key]
        rows += [(suite, variant, int(grid[k]), int(grid[k]) * frameskip, p[k], lo[k],
                  hi[k], g.n_runs) for k in range(len(grid))]
    return pd.DataFrame(rows, columns=["suite", "variant", "step", "frames", "point",
                                       "lower", "upper", "n_runs"])


def _t_interval(x: np.ndarray) -> tuple[float, float, float, float]:
    n = len(x)
    mean = float(np.mean(x))
    if n < 2:
        return mean, np.nan, np.nan, np.nan
    sd = float(np.std(x, ddof=1))
    half = float(stats.t.ppf(0.975, n - 1)) * sd / np.sqrt(n)
    return mean, mean - half, mean + half, sd


def per_env(final: pd.DataFrame) -> pd.DataFrame:
    """Final scores per env and variant over every ok run (seeds), raw and normalised:
    mean and Student-t 95% interval. Columns: suite, env, variant, n, mean, lower, upper,
    std, norm_mean, norm_lower, norm_upper."""
    rows = []
    for (suite, env, variant), g in final.groupby(["suite", "env", "variant"], sort=True):
        m, lo, hi, sd = _t_interval(g["raw"].to_numpy())
        nm, nlo, nhi, _ = _t_interval(g["score"].to_numpy())
        rows.append((suite, env, variant, len(g), m, lo, hi, sd, nm, nlo, nhi))
    return pd.DataFrame(rows, columns=["suite", "env", "variant", "n", "mean", "lower",
                                       "upper", "std", "norm_mean", "norm_lower",
                                       "norm_upper"])


def estimate(runs: Runs, final: pd.DataFrame, groups, *, baseline: str, reps: int,
             seed: int, engine: str = "fast", curve_points: int = 20,
             n_jobs: int | None = None) -> Estimates:
    """Every table of the report; the bootstraps run in `n_jobs` processes
    (default: default_jobs())."""
    notes: list[str] = []
    for suite in sorted({s for s, _ in groups}):
        if (suite, baseline) not in groups:
            notes.append(f"{suite}: the baseline {baseline!r} has no finished runs, so no "
                         "baseline comparisons (choose one with --baseline)")
    full = full_vmpo(groups, baseline)
    fulls = full_vmpos(groups, baseline)
    abl = ablations(groups, fulls)
    alone = sorted({v for (_, v), g in groups.items() if g.algo == "vmpo"}
                   - set(abl) - set(fulls.values()))
    if alone:
        notes.append(f"no ablation comparison for {', '.join(alone)}: no full V-MPO of their "
                     "sweep label (`vmpo`, or `vmpo@<label>`) has finished runs here")
    pairs = _pairs(groups, baseline, abl, runs.table["steps"].to_numpy())
    shared = shared_runs(groups, pairs, runs.table["run_id"].to_numpy())
    notes += [f"{s}: `{x}` and `{y}` share {n} run id(s), reruns: the control under the "
              "probability of improvement" for (s, x, y), n in shared.items()]
    pj = profile_jobs(groups, reps, seed, engine)
    cj, grids = curve_jobs(runs, groups, reps, seed, engine, curve_points, notes)
    bj, binfo = common_budget_jobs(runs, groups, final, reps, seed, engine, notes)
    ag, aj = auc_jobs(runs, groups, reps, seed, engine, notes)
    jobs = {**aggregate_jobs(groups, reps, seed, engine), **aj,
            **poi_jobs(groups, pairs, reps, seed, engine), **pj, **cj, **bj,
            **ablation_jobs(groups, abl, reps, seed, engine)}
    results = run_jobs(jobs, default_jobs() if n_jobs is None else n_jobs)
    agg = aggregates(groups, results)
    poi = probabilities(groups, pairs, results)
    return Estimates(
        aggregate=agg, poi=poi, ablation=ablation_table(agg, poi, abl, groups, results),
        profiles=profiles(groups, pj, results), curves=curves(groups, grids, results),
        per_env=per_env(final), full=full, baseline=baseline, notes=notes, fulls=fulls,
        common=common_budget(groups, binfo, results), shared=shared,
        aggregate_auc=aggregates(ag, results, kind="aggregate_auc"))
