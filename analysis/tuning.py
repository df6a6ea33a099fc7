"""The report's tuning section: what each variant's tuning tried, spent and chose.

A tuning trial is an ordinary run whose variant is `<variant>.cNN` (sweeps/tuning.py:
trial c00 is the variant's defaults, the others points of a space-filling design,
`tuning.sampler`). The report keeps trials out of every headline table and figure
(`split_trials`) and draws them here, from the run directories alone:

- budget: configurations, runs, env steps and core-hours (each run's last `wall_time`:
  one run uses one core) per tuned variant, flagged where variants got unequal budgets;
- chosen values beside the defaults (trial c00), per searched hyperparameter (the config
  fields whose values differ between a variant's trials);
- design coverage (`design_coverage`, analysis/tuning_design.py): per pair of searched
  dimensions, the joint levels the trials reach against the most they could and against
  what independent draws reach, a pair whose levels fix each other's (aliased, at
  quartiles) or whose halves split the other's levels into disjoint sets (confounded at
  halves) flagged: its effects cannot be told apart;
- split-seed reliability (`seed_reliability`, analysis/tuning_reliability.py): Spearman's
  rho between the trials' scores on one tuning seed and on the other, and the chosen
  trial's rank on each alone: near 0, the ranking (and so the selection) is mostly seed
  noise;
- the distribution of trial scores (25th, 50th, 75th percentile configuration, best,
  defaults), and a figure of it, each trial's spread over its tuning seeds drawn;
- sensitivity: one panel per searched dimension (a choice on a categorical axis), trial
  score against its value, one point per trial (both figures: analysis/tuning_figures.py).

A trial's score is the tuning criterion (the tune sweep's `spec.yaml`, `tuning.criterion`:
`final`, the last evaluation, or `auc`, the mean of all evaluations; normalised per env,
averaged over envs and seeds), the number `--phase select` ranked; a trial with a failed
or unfinished run has none.

This module reads the tune sweep's spec copy and manifest, builds the trial tables, scores
and selects trials, and writes the section (`section`); what its parts share about a
searched value and a trial (`best_of`, `searched_fields`, ...) is analysis/tuning_values.py.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd

from analysis import expected_max
from analysis.load import Runs
from analysis.tuning_design import design_sentence, aliased_groups, design_table, halves_pairs
from analysis.tuning_figures import distribution_figure, sensitivity_figure
from analysis.tuning_reliability import (reliability_lines, per_seed_scores, reliability_wide,
                                         seed_reliability)
from analysis.tuning_values import (EDGE, NUMERIC_KINDS, best_of, edge_of, searched_fields)
from rundir import last_wall_time

TRIAL_RE = re.compile(r"^(?P<variant>.+)\.c(?P<trial>\d{2,})$")  # as sweeps.tuning names them
TUNE_SUFFIX = "-tune"
CHOSEN_COLUMNS = ["variant", "field", "default", "chosen", "trial", "range", "edge"]


def subset(runs: Runs, mask: np.ndarray) -> Runs:
    """The runs where mask ([n_runs] bool) holds, curves included."""
    idx = np.flatnonzero(mask)
    offsets = np.zeros(len(idx) + 1, dtype=np.int64)
    counts = runs.eval_offsets[idx + 1] - runs.eval_offsets[idx]
    np.cumsum(counts, out=offsets[1:])
    take = np.concatenate([np.arange(runs.eval_offsets[i], runs.eval_offsets[i + 1]) for i in idx]
                          ) if len(idx) else np.zeros(0, dtype=np.int64)
    table = runs.table.iloc[idx].reset_index(drop=True)
    sweeps = set(table["sweep"])
    return Runs(table, offsets, runs.eval_steps[take], runs.eval_values[take],
                {k: v for k, v in runs.manifests.items() if k in sweeps},
                {k: v for k, v in runs.sweep_paths.items() if k in sweeps}, list(runs.notes))


def is_trial(variants: pd.Series) -> np.ndarray:
    return variants.str.match(TRIAL_RE.pattern).to_numpy(dtype=bool)


def split_trials(runs: Runs) -> tuple[Runs, Runs]:
    """(headline runs, tuning trials). A sweep with a manifest but no run directory yet
    goes to the side its manifest's variants belong to, so its runs count as missing."""
    mask = is_trial(runs.table["variant"])
    head, trials = subset(runs, ~mask), subset(runs, mask)
    for sweep, man in runs.manifests.items():
        if sweep in head.manifests or sweep in trials.manifests:
            continue
        side = trials if man is not None and len(man) and is_trial(man["variant"]).all() else head
        side.manifests[sweep] = man
        if sweep in runs.sweep_paths:
            side.sweep_paths[sweep] = runs.sweep_paths[sweep]
    return head, trials


def sibling_tune_sweeps(paths: list[str | os.PathLike]) -> list[str]:
    """`<sweep>-tune` folders beside the sweep folders given (a test sweep's tuning)."""
    from analysis.load import find_sweeps

    found = {p.resolve() for p in find_sweeps(paths)}
    out = []
    for sweep in sorted(found):
        tune = sweep.with_name(sweep.name + TUNE_SUFFIX)
        if tune.is_dir() and tune.resolve() not in found:
            out.append(str(tune))
    return out


def _spec_tuning(sweep_path: str) -> dict:
    """The `tuning:` section of the sweep folder's spec.yaml copy ({} if unreadable)."""
    import yaml

    from rundir.yaml12 import load  # the launcher's YAML rules: 1e-4 is a float

    try:
        spec = load(Path(sweep_path, "spec.yaml").read_text())
        return dict(spec.get("tuning") or {})
    except (OSError, AttributeError, TypeError, ValueError, yaml.YAMLError):
        return {}


def tuning_envs(sweep_path: str) -> set[str]:
    """The envs the sweep folder's spec.yaml copy tunes on (`tuning.envs`, suite names
    resolved; an entry no suite knows kept as written), empty where the copy does not say."""
    import suites

    entries = _spec_tuning(sweep_path).get("envs") or []
    out: set[str] = set()
    for entry in entries if isinstance(entries, list) else [entries]:
        try:
            out.update(suites.resolve(str(entry)))
        except ValueError:  # suites.UnknownEnvError: the id as the spec gives it
            out.add(str(entry))
    return out


def _manifest_tuning(sweep_path: str) -> dict:
    """The `tuning` record at the top of the sweep folder's manifest.json (the design the
    launcher resolved: `sampler`, `sampler_seed`; sweeps.tuning.Tuning.record), {} where
    the manifest is absent, unreadable or older than the record."""
    try:
        m = json.loads(Path(sweep_path, "manifest.json").read_text())
        return dict(m.get("tuning") or {}) if isinstance(m, dict) else {}
    except (OSError, ValueError, TypeError, AttributeError):
        return {}


def resolved_sampler(sweep_path: str) -> str | None:
    """How the tune sweep's trials c01.. were drawn: the spec copy's `tuning.sampler`, else
    the launcher's record in manifest.json (`_manifest_tuning`), else None (a spec copy
    without the key, launched before the launcher recorded it: Sobol before the key
    existed, LHS after, and nothing left says which)."""
    said = _spec_tuning(sweep_path).get("sampler") or _manifest_tuning(sweep_path).get("sampler")
    return str(said) if said is not None else None


def _criterion(sweep_path: str) -> str:
    crit = _spec_tuning(sweep_path).get("criterion", "final")
    return crit if crit in ("final", "auc") else "final"


def search_space(sweep_path: str) -> tuple[dict[str, dict[str, tuple[str, float, float]]],
                                          dict[str, dict[str, list]]]:
    """The spec copy's `tuning.search`, per variant and field: (ranges, choices).
    ranges: field -> (kind, lo, hi) for each ranged dimension; choices: field -> the
    values its `choice` dimensions offer (a joint choice's mappings give each of their
    fields), in spec order. Both {} where the copy does not say."""
    ranges: dict[str, dict[str, tuple[str, float, float]]] = {}
    choices: dict[str, dict[str, list]] = {}
    search = _spec_tuning(sweep_path).get("search")
    for variant, dims in (search.items() if isinstance(search, dict) else ()):
        for key, dist in (dims.items() if isinstance(dims, dict) else ()):
            if not (isinstance(dist, dict) and len(dist) == 1):
                continue
            kind, args = next(iter(dist.items()))
            if kind in NUMERIC_KINDS and isinstance(args, list) and len(args) == 2:
                ranges.setdefault(variant, {})[key] = (kind, float(args[0]), float(args[1]))
            elif kind == "choice" and isinstance(args, list):
                for o in args:
                    for f, v in (o.items() if isinstance(o, dict) else ((key, o),)):
                        vals = choices.setdefault(variant, {}).setdefault(f, [])
                        if v not in vals:
                            vals.append(v)
    return ranges, choices


def search_dims(sweep_path: str) -> dict[str, dict[str, dict]]:
    """The spec copy's `tuning.search` as written, per variant: dimension -> {kind: args}
    (a joint choice such as `batch` is one dimension, unlike `search_space`'s fields)."""
    search = _spec_tuning(sweep_path).get("search")
    return {v: dict(d) for v, d in (search.items() if isinstance(search, dict) else ())
            if isinstance(d, dict)}


def _cells(sweep_path: str) -> int | None:
    """Runs per trial the spec asks for (tuning envs x tuning seeds), None where the spec
    copy does not say."""
    seeds, envs = _spec_tuning(sweep_path).get("seeds"), tuning_envs(sweep_path)
    try:
        n_seeds = len(seeds) if isinstance(seeds, list) else int(seeds)
    except (TypeError, ValueError):
        return None
    return len(envs) * n_seeds if envs else None


def _expected_runs(sweep_path: str) -> int | None:
    """Trial runs the spec asks for (`declared_configs` x `_cells`, summed over its tuned
    variants), None where the spec copy does not say."""
    configs, cells = declared_configs([sweep_path]), _cells(sweep_path)
    return sum(configs.values()) * cells if configs and cells is not None else None


def run_scores(runs: Runs, i: int) -> tuple[float, float]:
    """(final, auc) of run i: its last evaluation and the mean of its evaluations
    (`scores.curve_score`, the selection's and the report's auc too), both normalised; NaN without evaluations
    or (a spec from before tuning envs needed one) without a reference pair. `learn_pairs`
    must have seen the runs."""
    from analysis.scores import curve_score, has_pair, normalise

    _, values = runs.curve(i)
    env = runs.table["env"].iloc[i]
    if not len(values) or not has_pair(env):
        return np.nan, np.nan
    norm = normalise(env, values)
    return curve_score(norm, "final"), curve_score(norm, "auc")


def trial_table(trials: Runs) -> pd.DataFrame:
    """One row per trial run: row (its position in trials.table), sweep, algo, variant
    (the tuned one), trial, env, seed, state,
    steps (budget), steps_done, wall_s, final and auc (normalised), config (dict)."""
    from analysis.scores import learn_pairs

    learn_pairs(trials, range(len(trials.table)))  # pairs a spec's `references:` recorded
    rows = []
    for i, (_, r) in enumerate(trials.table.iterrows()):
        m = TRIAL_RE.match(r["variant"])
        final, auc = run_scores(trials, i)
        rows.append({
            "row": i, "sweep": r["sweep"], "algo": r["algo"], "variant": m["variant"],
            "trial": int(m["trial"]),
            "env": r["env"], "seed": int(r["seed"]), "state": r["state"],
            "steps": int(r["steps"]), "steps_done": max(int(r["status_step"]), 0),
            "wall_s": last_wall_time(r["path"]),
            "final": final, "auc": auc,
            "config": json.loads(r["config"]),
        })
    return pd.DataFrame(rows, columns=["row", "sweep", "algo", "variant", "trial", "env", "seed", "state", "steps",
                                       "steps_done", "wall_s", "final", "auc", "config"])


def trial_scores(tt: pd.DataFrame, criterion: str, cells: dict[str, int | None] | None = None
                 ) -> pd.DataFrame:
    """Per (sweep, variant, trial): runs, failed, score (the criterion's mean over the
    trial's runs, NaN unless every run is done, and NaN where a run's criterion is: as
    `--phase select` scores it), per_env ({env: the criterion's mean over that env's
    seeds}, for the envs whose runs are all done), and the config (of its first run).

    cells: per sweep, the runs a trial needs (`_cells`: the spec's tuning envs x seeds).
    Where a sweep has none, the envs x seeds its variant's runs cover: then a partial
    sweep whose variant has not reached a tuning env yet scores on the envs it has."""
    present = tt.groupby(["sweep", "variant"]).apply(
        lambda g: g["env"].nunique() * g["seed"].nunique(), include_groups=False)
    rows = []
    for (sweep, variant, trial), g in tt.groupby(["sweep", "variant", "trial"], sort=True):
        done = g["state"] == "done"
        need = (cells or {}).get(sweep) or present[(sweep, variant)]
        ok = bool(done.all()) and len(g) == need
        per_env = {env: float(np.mean(e[criterion].to_numpy(dtype=np.float64)))
                   for env, e in g.groupby("env", sort=True) if (e["state"] == "done").all()}
        rows.append({"sweep": sweep, "variant": variant, "trial": trial, "runs": len(g),
                     "failed": int((g["state"] == "failed").sum()),
                     "score": float(np.mean(g[criterion].to_numpy(dtype=np.float64))) if ok else np.nan,
                     "per_env": per_env, "config": g["config"].iloc[0]})
    return pd.DataFrame(rows, columns=["sweep", "variant", "trial", "runs", "failed", "score",
                                       "per_env", "config"])


def pick(ts: pd.DataFrame, tt: pd.DataFrame, tested: dict[str, dict] | None = None,
         fields: dict[str, list[str]] | None = None) -> dict[str, tuple[int, str]]:
    """variant -> (its chosen trial, how it was found). Where test runs of the variant
    exist (`tested`: variant -> its test runs' resolved config), the trial whose searched
    values (`fields`: per variant, the spec's searched fields; else `searched_fields`)
    the test runs ran: "the test runs' config" (the selection the headline used, even
    if a trial finished after selection would now score better). Where no trial matches,
    or without test runs, the best score (`best_of`): "best score"."""
    out: dict[str, tuple[int, str]] = {}
    for variant, g in ts.groupby("variant", sort=True):
        best = best_of(zip(g["trial"], g["score"]))
        cfg = (tested or {}).get(variant)
        if cfg is not None:
            keys = (fields or {}).get(variant) or searched_fields(tt, variant)
            match = [int(t) for t, c in zip(g["trial"], g["config"])
                     if all(json.dumps(c.get(k)) == json.dumps(cfg.get(k)) for k in keys)]
            if match:
                out[variant] = (min(match), "the test runs' config")
                continue
            if best is not None:
                out[variant] = (best, "best score (the test runs' config matches no trial)")
                continue
        if best is not None:
            out[variant] = (best, "best score")
    return out


def budgets(tt: pd.DataFrame) -> pd.DataFrame:
    """Per tuned variant: configurations, runs, envs, seeds, env steps, core-hours."""
    rows = []
    for variant, g in tt.groupby("variant", sort=True):
        rows.append({"variant": variant, "configurations": g["trial"].nunique(), "runs": len(g),
                     "envs": ", ".join(sorted(g["env"].unique())),
                     "seeds": ", ".join(map(str, sorted(g["seed"].unique()))),
                     "env_steps": int(g["steps_done"].sum()),
                     "core_hours": float(np.nansum(g["wall_s"])) / 3600})
    return pd.DataFrame(rows, columns=["variant", "configurations", "runs", "envs", "seeds",
                                       "env_steps", "core_hours"])


def unequal(b: pd.DataFrame) -> list[str]:
    """What differs between the variants' tuning budgets (empty: equal)."""
    out = []
    for col, what in (("configurations", "configurations"), ("envs", "tuning envs"),
                      ("seeds", "tuning seeds")):
        if b[col].nunique() > 1:
            out.append(what + ": " + "; ".join(f"{v} {x}" for v, x in zip(b["variant"], b[col])))
    ran = b[b["runs"] > 0]  # a variant with no run yet has no steps per run
    per_run = ran["env_steps"] / ran["runs"]
    if len(ran) > 1 and per_run.max() > 1.05 * per_run.min():
        out.append("env steps per run: " + "; ".join(
            f"{v} {int(x):,}" for v, x in zip(ran["variant"], per_run)))
    return out


def declared_configs(sweep_paths) -> dict[str, int]:
    """variant -> the configurations its spec copy declares (`tuning.configs`: one number
    for every tuned variant, or a mapping; 16 by default), for the variants it searches."""
    out: dict[str, int] = {}
    for p in sweep_paths:
        t = _spec_tuning(p)
        configs = t.get("configs", 16)
        for v in t.get("search") or {}:
            try:
                out[v] = int(configs[v] if isinstance(configs, dict) else configs)
            except (KeyError, TypeError, ValueError):
                continue
    return out


def chosen(ts: pd.DataFrame, tt: pd.DataFrame, picked: dict[str, tuple[int, str]],
           ranges: dict[str, dict[str, tuple[str, float, float]]] | None = None,
           choices: dict[str, dict[str, list]] | None = None) -> pd.DataFrame:
    """Per tuned variant and searched field: the default (trial 0) and the chosen value
    (`picked`), with both trials' scores.

    ranges (`search_space`): adds the field's searched range and `edge`, "low end" or
    "high end" where the chosen value lies within EDGE of the span from an end (on the
    range's scale): the best value may lie outside what was searched. choices
    (`search_space`): a choice field's range lists its options."""
    ranges, choices = ranges or {}, choices or {}
    rows = []
    for variant, g in ts.groupby("variant", sort=True):
        if variant not in picked:
            continue
        best = g[g["trial"] == picked[variant][0]].iloc[0]
        d = g[g["trial"] == 0]
        default_cfg = d["config"].iloc[0] if len(d) else {}
        for f in searched_fields(tt, variant):
            value = best["config"].get(f)
            rng = ranges.get(variant, {}).get(f)
            edge = edge_of(value, *rng) if rng is not None else ""
            rows.append({"variant": variant, "field": f, "default": default_cfg.get(f),
                         "chosen": value, "trial": int(best["trial"]),
                         "score": float(best["score"]),
                         "default_score": float(d["score"].iloc[0]) if len(d) else np.nan,
                         "range": (f"{rng[0]} [{rng[1]:g}, {rng[2]:g}]" if rng else
                                   "choice {" + ", ".join(map(json.dumps, opts)) + "}"
                                   if (opts := choices.get(variant, {}).get(f)) else ""),
                         "edge": edge})
    out = pd.DataFrame(rows, columns=["variant", "field", "default", "chosen", "trial", "score",
                                      "default_score", "range", "edge"])
    for col in ("default", "chosen"):  # keep each value's own type (an int stays an int)
        out[col] = pd.Series([r[col] for r in rows], dtype=object)
    return out


def _f3(x: float) -> str:
    return f"{x:.3f}" if np.isfinite(x) else "-"


def per_env_table(ts: pd.DataFrame, picked: dict[str, tuple[int, str]]) -> pd.DataFrame:
    """Per tuned variant: its defaults (trial 0) and its chosen trial (`picked`; one row
    where they are the same), each with its score per tuning env and the mean, formatted
    ("unscored" where a run is missing or failed); then each env's spread over the
    variant's scored trials (max - min; "-" with fewer than two), which is how much that
    env can move a ranking of the mean."""
    rows = []
    for variant, g in ts.groupby("variant", sort=True):
        ok = g[np.isfinite(g["score"])]
        envs = sorted({e for d in g["per_env"] for e in d})
        chosen_t = picked.get(variant, (None, ""))[0]
        roles = {0: ["defaults"]}
        if chosen_t is not None:
            roles.setdefault(chosen_t, []).append("chosen")
        for t, names in sorted(roles.items()):
            r = g[g["trial"] == t]
            if r.empty:
                rows.append({"variant": variant, "trial": f"c{t:02d} ({', '.join(names)}): no runs"})
                continue
            r = r.iloc[0]
            unscored = "" if np.isfinite(r["score"]) else ", unscored"
            rows.append({"variant": variant, "trial": f"c{t:02d} ({', '.join(names)}{unscored})",
                         **{e: _f3(r["per_env"].get(e, np.nan)) for e in envs},
                         "mean": _f3(r["score"])})
        two = len(ok) >= 2
        rows.append({"variant": variant, "trial": f"spread over {len(ok)} scored trials (max - min)",
                     **{e: _f3(np.ptp([d[e] for d in ok["per_env"] if e in d])) if two else "-"
                        for e in envs},
                     "mean": _f3(np.ptp(ok["score"])) if two else "-"})
    envs = sorted({e for d in ts["per_env"] for e in d})
    return pd.DataFrame(rows, columns=["variant", "trial", *envs, "mean"]).fillna("-")


def test_scores(headline: Runs, criterion: str) -> pd.DataFrame:
    """One row per finished headline (test) run with a reference pair: variant, env, seed,
    steps (budget), value (the criterion, normalised: `final` its last evaluation, `auc`
    the mean of its evaluations, as `trial_table` scores a trial's run)."""
    from analysis.scores import learn_pairs

    t = headline.table
    learn_pairs(headline, range(len(t)))
    rows = []
    for i in np.flatnonzero((t["state"] == "done").to_numpy() & ~is_trial(t["variant"])):
        r = t.iloc[i]
        final, auc = run_scores(headline, int(i))
        if not (np.isnan(final) and np.isnan(auc)):  # held_out leaves a NaN value out
            rows.append({"variant": r["variant"], "env": r["env"], "seed": int(r["seed"]),
                         "steps": int(r["steps"]), "value": final if criterion == "final" else auc})
    return pd.DataFrame(rows, columns=["variant", "env", "seed", "steps", "value"])


def held_out(tt: pd.DataFrame, picked: dict[str, tuple[int, str]], test: pd.DataFrame,
             criterion: str) -> pd.DataFrame:
    """The selection's optimism, measured: per tuned variant and tuning env, its chosen
    trial's criterion on the tuning seeds beside the same variant's test runs on that env
    (`test_scores`: fresh seeds, the same criterion). The best of many trials on few seeds
    is biased upwards (the winner's curse); the test runs are not. Non-finite values are
    left out and not counted. Columns: variant, env, trial, criterion, tuning (mean),
    tuning_min, tuning_max, tuning_seeds, tuning_steps, then the same for test, and change
    (test - tuning)."""
    rows = []
    for variant, (trial, _) in sorted(picked.items()):
        runs = tt[(tt["variant"] == variant) & (tt["trial"] == trial) & (tt["state"] == "done")]
        for env, r in runs.groupby("env", sort=True):
            x = test[(test["variant"] == variant) & (test["env"] == env)]
            a = r[criterion].to_numpy(dtype=np.float64)
            b = x["value"].to_numpy(dtype=np.float64)
            a, b = a[np.isfinite(a)], b[np.isfinite(b)]
            if not len(a) or not len(b):
                continue
            rows.append({"variant": variant, "env": env, "trial": trial, "criterion": criterion,
                         "tuning": a.mean(), "tuning_min": a.min(), "tuning_max": a.max(),
                         "tuning_seeds": len(a), "tuning_steps": int(r["steps"].max()),
                         "test": b.mean(), "test_min": b.min(), "test_max": b.max(),
                         "test_seeds": len(b), "test_steps": int(x["steps"].max()),
                         "change": b.mean() - a.mean()})
    return pd.DataFrame(rows, columns=["variant", "env", "trial", "criterion", "tuning",
                                       "tuning_min", "tuning_max", "tuning_seeds", "tuning_steps",
                                       "test", "test_min", "test_max", "test_seeds", "test_steps",
                                       "change"])


def other_criteria(tt: pd.DataFrame, cells: dict[str, int | None] | None = None,
                   criterion: str = "final") -> pd.DataFrame:
    """How fragile is the selection? Per tuned variant, the trial each criterion would
    pick (`best_of` on its scores): `final` and `auc` (`trial_scores`), and `rank`, the
    mean over tuning envs of each trial's rank by its per-env final score (1 the best;
    lowest mean wins; a tie goes to the declared `criterion`'s better trial, then the
    lower trial), which no env's scale can dominate. Only
    trials scored under `final` take part. A robustness check beside the spec's declared
    criterion, never a second selection. Columns: variant, criterion, trial, final, auc,
    mean_rank (the picked trial's)."""
    fin, auc = trial_scores(tt, "final", cells), trial_scores(tt, "auc", cells)
    rows = []
    for variant, g in fin.groupby("variant", sort=True):
        g = g[np.isfinite(g["score"])].set_index("trial")
        if g.empty:
            continue
        a = auc[auc["variant"] == variant].set_index("trial")["score"]
        per_env = pd.DataFrame({t: d for t, d in g["per_env"].items()}).T  # trial x env
        ranks = per_env.rank(ascending=False, method="average").mean(axis=1)
        declared = g["score"] if criterion == "final" else a.reindex(g.index)
        # equal mean ranks are common with two envs: the declared criterion breaks the tie
        top = ranks[ranks == ranks.min()].index
        picks = {"final": best_of(zip(g.index, g["score"])),
                 "auc": best_of((t, a.get(t, np.nan)) for t in g.index),
                 "rank": best_of((t, declared[t]) for t in top)}
        for crit, t in picks.items():
            if t is not None:
                rows.append({"variant": variant, "criterion": crit, "trial": int(t),
                             "final": float(g.loc[t, "score"]), "auc": float(a.get(t, np.nan)),
                             "mean_rank": float(ranks[t])})
    return pd.DataFrame(rows, columns=["variant", "criterion", "trial", "final", "auc", "mean_rank"])


def trial_trust_regions(trials: Runs, tt: pd.DataFrame, ts: pd.DataFrame) -> pd.DataFrame:
    """Per V-MPO trial: its score and its trust regions' activity over the second half of
    its runs (`analysis.duals.run_trust_region`, median over the trial's finished runs,
    every tuning env and seed): does a configuration's trust region bind, and do the
    configurations that score well have one that binds? Sorted by score, best first."""
    from analysis.duals import median_over_runs, run_trust_region

    rows = []
    done = tt[(tt["algo"] == "vmpo") & (tt["state"] == "done")]
    for (variant, trial), g in done.groupby(["variant", "trial"], sort=True):
        stats = median_over_runs([run_trust_region(trials, int(i)) for i in g["row"]])
        sc = ts[(ts["variant"] == variant) & (ts["trial"] == trial)]["score"]
        rows.append({"variant": variant, "trial": int(trial),
                     "score": float(sc.iloc[0]) if len(sc) else np.nan, **stats})
    from analysis.duals import TR_COLUMNS

    out = pd.DataFrame(rows, columns=["variant", "trial", "score", "runs", *TR_COLUMNS])
    return out.sort_values(["variant", "score"], ascending=[True, False], na_position="last",
                           ignore_index=True)


def activity_correlations(ttr: pd.DataFrame) -> list[str]:
    """Per V-MPO variant and constraint, Spearman's rank correlation between its trials'
    scores and their alpha's active share (`trial_trust_regions`), as text, with its p
    value and number of trials; only with at least 5 scored trials and neither column
    constant (each variant on its own: pooling variants could reverse the sign)."""
    from scipy.stats import spearmanr

    out = []
    for variant, g in ttr.groupby("variant", sort=True):
        for c, name in (("mean", "α_μ"), ("std", "α_Σ"), ("kl", "α")):
            ok = g[np.isfinite(g["score"]) & np.isfinite(g[f"{c}_active"])]
            if len(ok) >= 5 and ok[f"{c}_active"].nunique() > 1 and ok["score"].nunique() > 1:
                r = spearmanr(ok["score"], ok[f"{c}_active"])
                out.append(f"`{variant}`, {name} active against score: Spearman ρ = "
                           f"{r.statistic:+.2f} (p = {r.pvalue:.2g}, {len(ok)} trials)")
    return out


def distribution(ts: pd.DataFrame) -> pd.DataFrame:
    """Per tuned variant: what its 25th/50th/75th percentile configuration reaches, its
    best, its defaults (trial 0), over the scored trials."""
    rows = []
    for variant, g in ts.groupby("variant", sort=True):
        s = g.loc[np.isfinite(g["score"]), "score"].to_numpy()
        d = g.loc[g["trial"] == 0, "score"]
        q = np.percentile(s, [25, 50, 75]) if len(s) else [np.nan] * 3
        rows.append({"variant": variant, "scored": len(s), "trials": len(g), "p25": q[0],
                     "p50": q[1], "p75": q[2], "best": s.max() if len(s) else np.nan,
                     "defaults": float(d.iloc[0]) if len(d) else np.nan})
    return pd.DataFrame(rows, columns=["variant", "scored", "trials", "p25", "p50", "p75", "best",
                                       "defaults"])


# -- the section ----------------------------------------------------------------------------


def _tested(headline: Runs | None) -> dict[str, dict]:
    """variant -> the resolved config of its first finished headline (test) run."""
    if headline is None:
        return {}
    t = headline.table
    out: dict[str, dict] = {}
    for _, r in t[(t["state"] == "done") & ~is_trial(t["variant"])].iterrows():
        out.setdefault(r["variant"], json.loads(r["config"]))
    return out


SAMPLER_TEXT = {
    "lhs": "points of a Latin hypercube (`tuning.sampler: lhs`: scipy's LatinHypercube, "
           "optimization=\"random-cd\")",
    "sobol": "the first points of a scrambled Sobol sequence (`tuning.sampler: sobol`)",
}


def _design_text(sweep_paths) -> str:
    """How the trials c01.. were drawn: the spec copies' `tuning.sampler`, else the
    launcher's record in manifest.json (`resolved_sampler`), else a hedge."""
    said = sorted({str(resolved_sampler(p)) for p in sweep_paths})
    if len(said) == 1 and said[0] in SAMPLER_TEXT:
        return SAMPLER_TEXT[said[0]]
    if said == ["None"]:
        return ("points of a space-filling design (neither the spec copy nor manifest.json names "
                "`tuning.sampler`: a scrambled Sobol sequence if it was launched before the key "
                "existed, else a Latin hypercube, the default; the design coverage below shows "
                "what it covered)")
    return "points of the designs " + ", ".join(f"`{x}`" for x in said) + " (`tuning.sampler`)"


def _range_text(mean: float, lo: float, hi: float, n: int) -> str:
    """"0.803 [0.62, 0.98] (2)": mean [min, max] (seeds)."""
    return f"{mean:.3f} [{lo:.3g}, {hi:.3g}] ({int(n)})"


def section(trials: Runs, out: Path, headline: Runs | None = None
            ) -> tuple[list[str], list[str]]:
    """Write the tuning tables and figures into `out`; return (files, markdown lines).

    headline: the headline (test) runs, to check and say that the test seeds are disjoint
    from the tuning seeds, to find the trial each test variant ran (`pick`) and to set its
    test scores beside its tuning score (`held_out`). UsageError when two tune sweeps
    tune the same variant (their trials would pool by number)."""
    from analysis import tables
    from analysis.load import UsageError

    tt = trial_table(trials)
    if tt.empty:
        return [], []
    per_variant = tt.groupby("variant")["sweep"].unique()
    twice = {v: sorted(sw) for v, sw in per_variant.items() if len(sw) > 1}
    if twice:
        raise UsageError("a tuned variant appears in more than one tune sweep: " + "; ".join(
            f"{v} in {', '.join(sw)}" for v, sw in twice.items())
            + "; report one tune sweep per variant (pass the sweep folders apart)")
    crits = {_criterion(p) for s, p in trials.sweep_paths.items()}
    criterion = crits.pop() if len(crits) == 1 else "final"
    ts = trial_scores(tt, criterion, {s: _cells(p) for s, p in trials.sweep_paths.items()})
    b = budgets(tt)
    # a variant the spec tunes but no trial of which has started: its budget so far is 0
    missing = sorted({v for p in trials.sweep_paths.values()
                      for v in (_spec_tuning(p).get("search") or {})} - set(b["variant"]))
    if missing:
        b = pd.concat([b, pd.DataFrame([{"variant": v, "configurations": 0, "runs": 0, "envs": "-",
                                         "seeds": "-", "env_steps": 0, "core_hours": 0.0}
                                        for v in missing])], ignore_index=True)
    ranges: dict[str, dict[str, tuple[str, float, float]]] = {}
    choices: dict[str, dict[str, list]] = {}
    for p in trials.sweep_paths.values():  # one tune sweep per variant (checked above)
        r, c = search_space(p)
        ranges.update(r)
        choices.update(c)
    spec_fields = {v: sorted(set(ranges.get(v, {})) | set(choices.get(v, {})))
                   for v in set(ranges) | set(choices)}
    picked = pick(ts, tt, _tested(headline), spec_fields)
    ch = chosen(ts, tt, picked, ranges, choices)
    dist = distribution(ts)
    files: list[str] = []
    w = tables.write
    fmt = b.assign(env_steps=b["env_steps"].map(lambda x: f"{x:,}"),
                   core_hours=b["core_hours"].map(lambda x: f"{x:.3g}"))
    files += w(out, "tuning_budget", b, fmt, "Tuning budget per variant.", True, None)
    chf = ch.assign(default=ch["default"].map(json.dumps), chosen=ch["chosen"].map(json.dumps))
    files += w(out, "tuning_chosen", ch, chf[CHOSEN_COLUMNS],
               "Selected values beside the defaults.", True, None)
    pe = per_env_table(ts, picked)
    if len(pe):
        files += w(out, "tuning_per_env", pe, pe, "Defaults and chosen trial per tuning env.",
                   True, None)
    dsf = dist.copy()
    for c in ("p25", "p50", "p75", "best", "defaults"):
        dsf[c] = dsf[c].map(_f3)  # "-": no scored trial
    files += w(out, "tuning_scores", dist, dsf, "Trial scores over configurations.", True, None)
    files += w(out, "tuning_trials", ts.assign(
        per_env=ts["per_env"].map(lambda d: json.dumps(d, sort_keys=True)),
        config=ts["config"].map(lambda c: json.dumps(c, sort_keys=True))), None, "", True, None)
    dims: dict[str, dict[str, dict]] = {}
    for p in trials.sweep_paths.values():
        dims.update(search_dims(p))
    seed_scores = per_seed_scores(tt, ts, criterion)
    figs = distribution_figure(ts, criterion, out, seed_scores, picked)
    design = design_table(ts, dims)
    sens = {v: sensitivity_figure(ts, tt, v, criterion, out, ranges.get(v),
                                  picked.get(v, (None, ""))[0], dims.get(v),
                                  aliased_groups(design[design["variant"] == v]),
                                  halves_pairs(design[design["variant"] == v]))
            for v in sorted(ts["variant"].unique())}
    files += figs + [f for v in sens.values() for f in v]

    L = ["## Tuning", ""]
    expected = [_expected_runs(p) for p in trials.sweep_paths.values()]
    done = int((tt["state"] == "done").sum())
    incomplete = all(e is not None for e in expected) and done < sum(expected)
    if incomplete:
        L += [f"> **Tuning incomplete: {done} of {sum(expected)} trial runs done.** A trial is scored "
              "once every run it needs (tuning envs x seeds) is done, and a variant's choice is "
              "among its scored configurations: provisional until every trial is done.", ""]
    L.append(f"Tuning trials: {len(tt)} runs in {', '.join(sorted(set(tt['sweep'])))}; kept out "
             "of every headline table and figure. Each tuned variant's trial c00 is its defaults; "
             f"the others are {_design_text(trials.sweep_paths.values())} over its search space "
             f"(sweeps/tuning.py). Trial score: `{criterion}` "
             + ("(the last evaluation" if criterion == "final" else "(the mean of every evaluation")
             + ", normalised, averaged over the tuning envs and seeds); the selected "
             "configuration is the best-scoring trial.")
    L.append("")
    declared = declared_configs(trials.sweep_paths.values())
    if declared and len(set(declared.values())) > 1:
        L += ["> **Unequal tuning budgets declared**: configurations " + "; ".join(
            f"{v} {n}" for v, n in sorted(declared.items())) + ".", ""]
    if incomplete:
        L += ["Budget spent so far (the tuning is incomplete, so the variants' budgets are "
              "not compared yet)" + (": the spec declares " + "; ".join(
                  f"{v} {n} configurations" for v, n in sorted(declared.items())) if declared
                  else "") + ".", ""]
    elif diffs := unequal(b):
        L += ["> **Unequal tuning budgets.** " + " | ".join(diffs), ""]
    else:
        L += ["Every tuned variant had the same budget (configurations, envs, seeds, env "
              "steps per run).", ""]
    L += ["### Budget", "", tables.to_markdown(fmt), ""]
    if len(design):
        dsg = design.assign(coverage=design["coverage"].map(lambda x: f"{x:.2f}"),
                            expected=design["expected"].map(lambda x: f"{x:.1f}"),
                            aliased=design["aliased"].map(lambda a: "ALIASED" if a else ""))
        files += w(out, "tuning_design", design, dsg, "Design coverage: the joint levels each "
                   "pair of searched dimensions reaches over the trials.", True, None)
        L += ["### Design coverage", "", design_sentence(design), ""]
    if headline is not None and len(headline.table):
        tune_seeds = set(tt["seed"])
        test = headline.table[~is_trial(headline.table["variant"])]
        overlap = sorted(tune_seeds & set(test["seed"]))
        tuned = set(b["variant"])
        untuned = sorted(set(test["variant"]) - tuned)
        if overlap:
            L += [f"> **Test seeds overlap the tuning seeds: {overlap}.** The headline is not "
                  "held out from selection.", ""]
        else:
            L += [f"Headline runs use seeds {sorted(set(test['seed']))}, disjoint from the tuning "
                  f"seeds {sorted(tune_seeds)}: selection never saw them.", ""]
        if untuned:
            L += ["Variants in the headline without their own tuning (an ablation takes its "
                  "tuned variant's selection with its own switch changed; see each run's "
                  f"config): {', '.join(f'`{v}`' for v in untuned)}.", ""]
        unmatched = [v for v, (_, how) in picked.items() if "matches no trial" in how]
        if unmatched:
            L += ["> **The test runs' config matches no trial** of " + ", ".join(
                f"`{v}`" for v in unmatched) + " (a selection edited by hand, or trials "
                "changed since): its chosen trial below is its best score.", ""]
        ho = held_out(tt, picked, test_scores(headline, criterion), criterion)
        if len(ho):
            hof = pd.DataFrame({
                "variant": ho["variant"], "env": ho["env"], "trial": ho["trial"].map(lambda t: f"c{t:02d}"),
                "tuning: mean [min, max] (seeds)": [
                    _range_text(r.tuning, r.tuning_min, r.tuning_max, r.tuning_seeds)
                    for r in ho.itertuples()],
                "test: mean [min, max] (seeds)": [
                    _range_text(r.test, r.test_min, r.test_max, r.test_seeds)
                    for r in ho.itertuples()],
                "change": ho["change"].map(lambda x: f"{x:+.3f}")})
            files += w(out, "tuning_held_out", ho, hof, "Chosen trial on the tuning seeds beside "
                       f"the test runs on the same envs ({criterion}, normalised).", True, None)
            L += ["### The selection on fresh seeds", "",
                  f"Each tuned variant's chosen trial (the one its test runs ran), `{criterion}` "
                  "normalised score on its tuning seeds beside the same variant's test runs on that "
                  "env (fresh seeds). The best of many trials on few seeds is biased upwards (the "
                  "winner's curse): `change` is how much of the tuning score held; a change "
                  "within the seeds' [min, max] spread is as likely noise. The headline uses the "
                  "test runs only.", "", tables.to_markdown(hof), ""]
            steps = ho[ho["tuning_steps"] != ho["test_steps"]]
            if len(steps):
                L += ["> **Budgets differ between tuning and test** (" + "; ".join(
                    f"{r.variant} {r.env}: {r.tuning_steps:,} vs {r.test_steps:,} steps"
                    for r in steps.itertuples()) + "): the scores above are at different steps.", ""]
    L += ["### Chosen values beside the defaults", ""]
    how = sorted({h for _, h in picked.values()})
    if how:
        L += ["Chosen trial: " + "; ".join(
            f"`{v}` c{t:02d} ({h})" for v, (t, h) in sorted(picked.items())) + ".", ""]
    L += [tables.to_markdown(chf[CHOSEN_COLUMNS]), ""]
    if len(pe):
        L += ["Per tuning env (the criterion, normalised, mean over the tuning seeds), the "
              "chosen trial beside the defaults (`tuning_per_env`): the selection ranks the "
              "mean over envs, so an env whose scores spread more over the trials weighs more "
              "in it.", "", tables.to_markdown(pe), ""]
    oc = other_criteria(tt, {sw: _cells(p) for sw, p in trials.sweep_paths.items()}, criterion)
    if len(oc):
        ocf = oc.assign(trial=oc["trial"].map(lambda t: f"c{t:02d}"),
                        final=oc["final"].map(_f3), auc=oc["auc"].map(_f3),
                        mean_rank=oc["mean_rank"].map(lambda x: f"{x:.1f}"))
        files += w(out, "tuning_other_criteria", oc, ocf, "The trial each criterion would pick.",
                   True, None)
        differ = sorted({v for v, g in oc.groupby("variant")
                         if g["trial"].nunique() > 1 or (v in picked and picked[v][0] not in set(g["trial"]))})
        L += ["Would another criterion have picked another trial? A robustness check beside the "
              f"spec's declared `{criterion}`, which made the selection: `final` and `auc` as "
              "trial scores, and `rank`, each trial's mean rank by its per-env `final` score "
              "over the tuning envs (which no env's scale dominates; a tie goes to the declared "
              f"criterion). With {tt['seed'].nunique()} tuning seed(s) per env, a disagreement "
              "between close trials may be seed noise. " + (
                  "They disagree, or differ from the chosen trial, for "
                  + ", ".join(f"`{v}`" for v in differ) + ": the choice there depends on the "
                  "criterion." if differ else "For every variant they agree with each other "
                  "and with the chosen trial."), "", tables.to_markdown(ocf), ""]
    rel = seed_reliability(seed_scores, picked)
    if len(rel):
        relf = reliability_wide(rel)
        files += w(out, "tuning_reliability", rel, relf, "Split-seed reliability: the trials' "
                   "ranking on one tuning seed against the other.", True, None)
        L += ["### Does the trials' ranking replicate across seeds?", "",
              *reliability_lines(rel, criterion), tables.to_markdown(relf), ""]
    emc = expected_max.curves(ts, seed_scores)
    if len(emc):
        files += w(out, "tuning_expected_max", emc, None, "", True, None)
        files += expected_max.figure(emc, out, criterion)
        L += [*expected_max.lines(emc),
              "![expected best against configurations tried](tuning_expected_max.png)", ""]
    at_edge = ch[ch["edge"] != ""]
    if len(at_edge):
        L += [f"> **Chosen at an end of the searched range** (within {EDGE:.0%} of its span, on "
              "its own scale): " + "; ".join(
                  f"{r.variant} {r.field} = {json.dumps(r.chosen)} ({r.edge} of {r.range})"
                  for r in at_edge.itertuples())
              + ". The best value may lie outside what was searched.", ""]
    ttr = trial_trust_regions(trials, tt, ts)
    if len(ttr) and ttr["mean_runs"].add(ttr["std_runs"]).add(ttr["kl_runs"]).sum() > 0:
        from analysis import tables as _t

        wide = _t.trust_regions_wide(ttr.assign(trial=ttr["trial"].map(lambda t: f"c{t:02d}"),
                                                score=ttr["score"].map(_f3)),
                                     keys=("variant", "trial", "score"))
        files += w(out, "tuning_trust_regions", ttr, wide, "V-MPO's trust regions per trial.",
                   True, None)
        corr = activity_correlations(ttr)
        scored = bool(np.isfinite(ttr["score"]).any())
        L += ["### V-MPO's trust regions over its trials", "",
              "Each V-MPO trial's score beside how often its trust regions bound over the second "
              "half of its runs (as in the headline's trust-region table; median over the "
              "trial's envs and seeds)"
              + (": do the configurations that score well have constraints that act? "
                 if scored else "; no trial is scored yet. ")
              + ("Rank correlations over the trials, descriptive only (one search space's "
                 "configurations, each on few seeds): " + "; ".join(corr) + "." if corr else ""), "",
              tables.to_markdown(wide), ""]
    L += ["### Scores over configurations", "",
          "What each variant reaches at its 25th, 50th and 75th percentile configuration, its "
          "best and its defaults (trial scores, normalised):", "", tables.to_markdown(dsf), ""]
    if figs:
        L += ["![tuning scores](tuning_scores.png)", ""]
    L += ["### Sensitivity", ""]
    for v, f in sens.items():
        if f:
            L += [f"![sensitivity {v}](tuning_sensitivity_{v}.png)", ""]
    return files, L
