"""The report's tuning section: what each variant's tuning tried, spent and chose.

A tuning trial is an ordinary run whose variant is `<variant>.cNN` (sweeps/tuning.py:
trial c00 is the variant's defaults, the others points of a space-filling design,
`tuning.sampler`). The report keeps trials out of every headline table and figure
(`split_trials`) and draws them here, from the run directories alone:

- budget: configurations, runs, env steps and core-hours (each run's last `wall_time`:
  one run uses one core) per tuned variant, flagged where variants got unequal budgets;
- chosen values beside the defaults (trial c00), per searched hyperparameter (the config
  fields whose values differ between a variant's trials);
- design coverage (`design_coverage`): per pair of searched dimensions, the joint levels
  the trials reach against the most they could and against what independent draws reach,
  a pair whose levels fix each other's (aliased, at quartiles) or whose halves split the
  other's levels into disjoint sets (confounded at halves) flagged: its effects cannot be
  told apart;
- split-seed reliability (`seed_reliability`): Spearman's rho between the trials' scores
  on one tuning seed and on the other, and the chosen trial's rank on each alone: near 0,
  the ranking (and so the selection) is mostly seed noise;
- the distribution of trial scores (25th, 50th, 75th percentile configuration, best,
  defaults), and a figure of it, each trial's spread over its tuning seeds drawn;
- sensitivity: one panel per searched dimension (a choice on a categorical axis), trial
  score against its value, one point per trial.

A trial's score is the tuning criterion (the tune sweep's `spec.yaml`, `tuning.criterion`:
`final`, the last evaluation, or `auc`, the mean of all evaluations; normalised per env,
averaged over envs and seeds), the number `--phase select` ranked; a trial with a failed
or unfinished run has none.
"""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analysis.load import Runs
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


EDGE = 0.1  # a selected value this close to an end of its range (share of the span) is flagged


def range_position(value: float, kind: str, lo: float, hi: float) -> float:
    """Where `value` sits in [lo, hi] as a share of the span, 0 at lo and 1 at hi, on
    the range's own scale (logarithmic for log_uniform and log_int)."""
    if kind.startswith("log"):
        return (math.log(value) - math.log(lo)) / (math.log(hi) - math.log(lo))
    return (value - lo) / (hi - lo)


def edge_of(value: Any, kind: str, lo: float, hi: float) -> str:
    """"low end" / "high end" where a numeric `value` in [lo, hi] lies within EDGE of the
    span from an end (`range_position`), else "" (also for a value outside the range, such
    as a default the search does not cover): the best value may lie outside the range."""
    if not _numeric([value]) or (kind.startswith("log") and value <= 0) or not lo <= value <= hi:
        return ""  # not a point of the range (a default outside it, 0 on a log range)
    u = range_position(value, kind, lo, hi)
    return "low end" if u <= EDGE else "high end" if u >= 1 - EDGE else ""


NUMERIC_KINDS = ("uniform", "log_uniform", "int", "log_int")  # sweeps.tuning's ranged kinds


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


QUARTILES = 4  # a numeric dimension's levels at full resolution: its range's quarters
HALVES = 2     # ... and in the coarse pass: its range's halves
DESIGN_COLUMNS = ["a", "b", "trials", "levels", "possible", "expected", "coverage", "aliased",
                  "aliased_at", "split"]
ALIASED_AT = ("quartiles", "halves")  # `aliased_at`, strongest first ("" where neither)


def _same(a, b) -> bool:
    if _numeric([a, b]) and a is not None and b is not None:
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12)
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def _bin(value, kind: str, lo: float, hi: float, bins: int) -> int | None:
    """Which of `bins` equal parts of [lo, hi] (`range_position`) holds `value`."""
    if not _numeric([value]) or value is None or (kind.startswith("log") and value <= 0):
        return None
    u = range_position(value, kind, lo, hi)
    return min(max(int(u * bins), 0), bins - 1)


def dimension_levels(key: str, dist: dict, configs: list[dict], bins: int = QUARTILES
                     ) -> tuple[list[int | None], int]:
    """(each config's level on the dimension, the levels it has). A choice: the index of
    the option the config matches (a joint choice's option: all its fields); a numeric
    range: which of `bins` equal parts of `range_position` it falls in (quartiles, or
    halves with bins=2; an int range whose integers reach fewer parts has fewer levels:
    `int [1, 3]` reaches quartiles 0, 2, 3). None where the config matches no level."""
    if not (isinstance(dist, dict) and len(dist) == 1):
        return [None] * len(configs), 0
    kind, args = next(iter(dist.items()))
    if kind == "choice" and isinstance(args, list):
        wants = [o if isinstance(o, dict) else {key: o} for o in args]
        levels = [next((i for i, w in enumerate(wants)
                        if all(_same(c.get(f), v) for f, v in w.items())), None) for c in configs]
        return levels, len(args)
    if kind not in NUMERIC_KINDS or not (isinstance(args, list) and len(args) == 2):
        return [None] * len(configs), 0
    lo, hi = float(args[0]), float(args[1])
    k = (len({_bin(v, kind, lo, hi, bins) for v in range(int(lo), int(hi) + 1)})
         if kind in ("int", "log_int") else bins)
    return [_bin(c.get(key), kind, lo, hi, bins) for c in configs], k


def expected_levels(cells: int, trials: int) -> float:
    """The distinct cells `trials` independent uniform draws into `cells` cells reach on
    average: cells x (1 - (1 - 1/cells)^trials) (each cell missed by every draw with
    probability (1 - 1/cells)^trials): 9.9 for 15 draws into 16 cells, 8.7 into 12."""
    return cells * (1.0 - (1.0 - 1.0 / cells) ** trials) if cells > 0 else 0.0


def _fixes_each_other(joint: set[tuple[int, int]], possible: int) -> bool:
    """Each side's level determines the other's, both vary, and more could have been
    reached (two trials that differ on both fix each other without missing anything)."""
    xs, ys = {x for x, _ in joint}, {y for _, y in joint}
    return len(joint) < possible and len(xs) > 1 and len(xs) == len(joint) == len(ys)


def _option_text(key: str, option) -> str:
    """An option of dimension `key` as the report names it: a joint option's values joined
    by " x " (`passes` {epochs: 5, minibatch_size: 64}: "5 x 64", as `passes_label`)."""
    if isinstance(option, dict):
        return " x ".join(_value_text(f, v) for f, v in option.items())
    return _value_text(key, option)


def _halves_split(a: str, b: str, dims: dict[str, dict], la: list, lb: list, ka: int, kb: int
                  ) -> str:
    """The coarse pass of `design_coverage` on one pair: la, lb its trials' coarse levels
    (a numeric dimension's half, a choice's option; known on both). The text of how one
    splits the other (`split`) where the pair is confounded at halves, else ""."""
    kinds = {k: next(iter(dims[k])) for k in (a, b)}
    numeric = [k for k in (a, b) if kinds[k] in NUMERIC_KINDS]
    joint = set(zip(la, lb))
    if not numeric or len(joint) >= min(len(la), ka * kb):
        return ""  # no numeric side, or nothing the trials could have reached is missing
    half = {a: la, b: lb}
    if len(numeric) == 2:  # coincide, or are exactly swapped, on every trial
        if joint == {(0, 0), (1, 1)} or joint == {(0, 1), (1, 0)}:
            other = "lower" if (0, 0) in joint else "upper"
            return f"{a} lower half <=> {b} {other} half"
        return ""
    num = numeric[0]
    ch = b if num == a else a
    sets = [{o for o, h in zip(half[ch], half[num]) if h == side} for side in (0, 1)]
    if not (sets[0] and sets[1]) or sets[0] & sets[1]:
        return ""
    opts = next(iter(dims[ch].values()))
    return "; ".join(f"{num} {side} half: {ch} in {{"
                     + ", ".join(_option_text(ch, opts[o]) for o in sorted(s)) + "}"
                     for side, s in zip(("lower", "upper"), sets))


def design_coverage(dims: dict[str, dict], trials: dict[int, dict]) -> pd.DataFrame:
    """How well a variant's trials cover each pair of its searched dimensions.

    dims: dimension -> {kind: args} as `tuning.search.<variant>` writes it (a joint choice
    is one dimension); trials: trial number -> its config values (trial 0, the defaults,
    is left out: it is not a point of the design). Per pair (a, b), over the n trials whose
    levels on both are known (`dimension_levels`):

    - `levels`, the distinct joint levels (a choice: its option; a numeric range: the
      quarter of its range, `range_position`, it falls in); `possible`, min(n, k_a x k_b);
      `coverage` = levels / possible; `expected`, what n independent uniform draws into
      the k_a x k_b cells reach on average (`expected_levels`), to read `levels` by;
    - `aliased` (full resolution): each one's level determines the other's and the trials
      could have covered more (levels < possible): the pair's sensitivity panels show one
      partition of the trials twice, and their effects cannot be told apart;
    - confounded at halves (the coarse pass, a pair with a numeric side; each numeric
      dimension cut at the middle of its range on its own scale, a choice at its options):
      the trials' levels on one split the other's into two disjoint sets. Two numeric
      dimensions: their halves coincide, or are exactly swapped, on every trial. A choice
      and a numeric dimension: the options seen with the lower half and those seen with
      the upper half are disjoint, both non-empty (each option comes with one half only).
      Only where the trials could have reached more coarse joint levels than they did.
      By chance this is rare at 15 trials (each of four options' 3-4 trials all in one
      half; 15 trials on one diagonal of a 2 x 2 table), unlike a merely unbalanced split.
      `split` says how ("lr lower half: passes in {5 x 64, 10 x 64}; upper half: ...");
    - `aliased_at`: "quartiles" where `aliased`, else "halves" where confounded at halves,
      else "".

    Sorted by coverage, worst first; among equal coverage aliased pairs first."""
    keys = list(dims)
    numbers = sorted(t for t in trials if int(t) != 0)
    cfgs = [trials[t] for t in numbers]
    full = {k: dimension_levels(k, dims[k], cfgs) for k in keys}
    coarse = {k: dimension_levels(k, dims[k], cfgs, HALVES) for k in keys}
    rows = []
    for i, a in enumerate(keys):
        for b in keys[i + 1:]:
            (la, ka), (lb, kb) = full[a], full[b]
            known = [j for j, (x, y) in enumerate(zip(la, lb)) if x is not None and y is not None]
            if not known or not ka or not kb:
                continue
            joint = {(la[j], lb[j]) for j in known}
            possible = min(len(known), ka * kb)
            aliased = _fixes_each_other(joint, possible)
            (ca, kca), (cb, kcb) = coarse[a], coarse[b]
            split = _halves_split(a, b, dims, [ca[j] for j in known], [cb[j] for j in known],
                                  kca, kcb)
            rows.append({"a": a, "b": b, "trials": len(known), "levels": len(joint),
                         "possible": possible, "expected": expected_levels(ka * kb, len(known)),
                         "coverage": len(joint) / possible, "aliased": aliased,
                         "aliased_at": "quartiles" if aliased else "halves" if split else "",
                         "split": "" if aliased else split})
    out = pd.DataFrame(rows, columns=DESIGN_COLUMNS)
    rank = out["aliased_at"].map({"quartiles": 0, "halves": 1}).fillna(2)
    order = out.assign(_rank=rank).sort_values(["coverage", "_rank", "a", "b"], kind="stable")
    return out.loc[order.index].reset_index(drop=True)


def aliased_groups(cov: pd.DataFrame) -> list[list[str]]:
    """The aliased pairs of `design_coverage` (full resolution) joined into groups
    (topk_fraction, batch, passes: three pairs, one group), each in first-seen order; a
    pair that links two groups merges them."""
    groups: list[list[str]] = []
    for r in cov[cov["aliased"]].itertuples():
        hit = [g for g in groups if r.a in g or r.b in g]
        merged = [x for g in hit for x in g]
        for x in (r.a, r.b):
            if x not in merged:
                merged.append(x)
        groups = [g for g in groups if g not in hit] + [merged]
    return groups


def halves_pairs(cov: pd.DataFrame) -> list[tuple[str, str]]:
    """The pairs of `design_coverage` confounded at halves but not aliased: (a, b)."""
    return [(r.a, r.b) for r in cov[cov["aliased_at"] == "halves"].itertuples()]


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
    """(final, auc) of run i: its last evaluation and the mean of its evaluations, both
    normalised; NaN without evaluations or (a spec from before tuning envs needed one)
    without a reference pair. `learn_pairs` must have seen the runs."""
    from analysis.scores import has_pair, normalise

    _, values = runs.curve(i)
    env = runs.table["env"].iloc[i]
    if not len(values) or not has_pair(env):
        return np.nan, np.nan
    norm = normalise(env, values)
    return float(norm[-1]), float(norm.mean())


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


def searched_fields(tt: pd.DataFrame, variant: str) -> list[str]:
    """The config fields whose values differ between the variant's trials."""
    cfgs = tt.loc[tt["variant"] == variant, "config"]
    keys = sorted({k for c in cfgs for k in c})
    return [k for k in keys if len({json.dumps(c.get(k), sort_keys=True) for c in cfgs}) > 1]


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


def best_of(pairs) -> int | None:
    """The trial of the best (trial, score) pair: the highest finite score, ties to the
    lower trial (the defaults first). The one rule: `--phase select` picks by it too
    (sweeps.tuning.choose)."""
    ok = [(int(t), float(sc)) for t, sc in pairs if np.isfinite(sc)]
    return max(ok, key=lambda p: (p[1], -p[0]))[0] if ok else None


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


def design_table(ts: pd.DataFrame, dims: dict[str, dict[str, dict]]) -> pd.DataFrame:
    """`design_coverage` of every tuned variant whose searched dimensions the spec copy
    gives (`search_dims`), over its trials' configs (`trial_scores`: every trial that
    ran, scored or not): variant, then DESIGN_COLUMNS, each variant's pairs worst first."""
    parts = []
    for variant, g in ts.groupby("variant", sort=True):
        if variant in dims and len(dims[variant]) > 1:
            cov = design_coverage(dims[variant], dict(zip(g["trial"].astype(int), g["config"])))
            parts.append(cov.assign(variant=variant))
    cols = ["variant", *DESIGN_COLUMNS]
    return pd.concat(parts, ignore_index=True)[cols] if parts else pd.DataFrame(columns=cols)


def per_seed_scores(tt: pd.DataFrame, ts: pd.DataFrame, criterion: str) -> pd.DataFrame:
    """Each scored trial's score on each tuning seed alone: the criterion (normalised, as
    the trial score) averaged over the tuning envs of that seed. Columns: variant, trial,
    seed, score. Only trials with a score (all their runs done) take part, so every seed
    of a trial averages the same envs."""
    scored = ts[np.isfinite(ts["score"])][["variant", "trial"]]
    runs = tt.merge(scored, on=["variant", "trial"])
    out = (runs.groupby(["variant", "trial", "seed"], sort=True)[criterion]
           .mean().rename("score").reset_index())
    return out[["variant", "trial", "seed", "score"]]


RELIABILITY_COLUMNS = ["variant", "seeds_a", "seeds_b", "trials", "rho", "p", "chosen",
                       "chosen_rank_a", "chosen_rank_b", "best_a", "best_b"]


def seed_reliability(seed_scores: pd.DataFrame, picked: dict[str, tuple[int, str]] | None = None
                     ) -> pd.DataFrame:
    """Split-seed reliability of each variant's trial ranking: do the trials rank alike on
    different tuning seeds? With 2 seeds, each trial's score on one seed against the other
    (`per_seed_scores`); with more, the mean over the first half of the sorted seeds
    (n // 2 of them) against the mean over the rest. Spearman's rho over the trials and its
    p value (scipy.stats.spearmanr; NaN where a side is constant), the chosen trial
    (`picked`) and its rank on each side alone (1 the best; ties share the better rank),
    and each side's best trial. Variants with one tuning seed or fewer than 3 trials
    scored on every seed are left out. rho near 0: the ranking is mostly seed noise."""
    from scipy.stats import rankdata, spearmanr

    rows = []
    for variant, g in seed_scores.groupby("variant", sort=True):
        wide = g.pivot(index="trial", columns="seed", values="score").dropna()
        seeds = sorted(wide.columns)
        if len(seeds) < 2 or len(wide) < 3:
            continue
        half_a, half_b = seeds[: len(seeds) // 2], seeds[len(seeds) // 2:]
        a, b = wide[half_a].mean(axis=1), wide[half_b].mean(axis=1)
        const = a.nunique() < 2 or b.nunique() < 2
        r = None if const else spearmanr(a.to_numpy(), b.to_numpy())
        chosen_t = (picked or {}).get(variant, (None, ""))[0]
        rank_a = pd.Series(rankdata(-a.to_numpy(), method="min"), index=a.index)
        rank_b = pd.Series(rankdata(-b.to_numpy(), method="min"), index=b.index)
        rows.append({"variant": variant, "seeds_a": ", ".join(map(str, half_a)),
                     "seeds_b": ", ".join(map(str, half_b)), "trials": len(wide),
                     "rho": np.nan if r is None else float(r.statistic),
                     "p": np.nan if r is None else float(r.pvalue),
                     "chosen": chosen_t,
                     "chosen_rank_a": int(rank_a[chosen_t]) if chosen_t in rank_a.index else None,
                     "chosen_rank_b": int(rank_b[chosen_t]) if chosen_t in rank_b.index else None,
                     "best_a": best_of(zip(a.index, a)), "best_b": best_of(zip(b.index, b))})
    return pd.DataFrame(rows, columns=RELIABILITY_COLUMNS)


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


# -- figures ------------------------------------------------------------------------------


def _numeric(values: list) -> bool:
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)


WHOLE_BATCH = "whole batch"  # minibatch_size 0 (V-MPO's; PPO's must be >= 1)


def minibatch_text(minibatch_size) -> str:
    """A minibatch size as people read it: 0 is "whole batch", one gradient step per pass
    over the batch (algos/onpolicy.steps_per_pass; analysis does not import algos)."""
    return WHOLE_BATCH if _numeric([minibatch_size]) and minibatch_size == 0 else f"{minibatch_size}"


def passes_label(epochs, minibatch_size) -> str:
    """An on-policy learner's passes over a batch: "5 x 64" (epochs x minibatch size),
    "1 x whole batch" (`minibatch_text`)."""
    return f"{epochs} x {minibatch_text(minibatch_size)}"


def _value_text(field: str, value) -> str:
    """A value as a tick label or in a table: `minibatch_size` 0 is "whole batch"."""
    if field == "minibatch_size" and _numeric([value]) and value == 0:
        return WHOLE_BATCH
    return f"{value:g}" if _numeric([value]) and value is not None else json.dumps(value)


def _spread(keys: list, width: float) -> np.ndarray:
    """Offsets in [-width/2, width/2] that spread the points sharing a key (in the given
    order), 0 for a point alone: equal values stay apart, deterministically."""
    out = np.zeros(len(keys))
    groups: dict = {}
    for i, k in enumerate(keys):
        groups.setdefault(json.dumps(k, sort_keys=True), []).append(i)
    for idx in groups.values():
        if len(idx) > 1:
            for j, i in enumerate(idx):
                out[i] = width * (j / (len(idx) - 1) - 0.5)
    return out


def _panels(tt: pd.DataFrame, variant: str, dims: dict[str, dict] | None,
            ranges: dict[str, tuple[str, float, float]]) -> list[tuple[str, str, Any]]:
    """(kind, key, what) per panel: ("numeric", field, its range or None) or ("choice",
    dimension, its options). From the searched dimensions where the spec copy gives them
    (a joint choice is one panel), else one panel per searched field."""
    if dims:
        out = []
        for key, dist in dims.items():
            if not (isinstance(dist, dict) and len(dist) == 1):
                continue
            kind, args = next(iter(dist.items()))
            if kind == "choice" and isinstance(args, list):
                out.append(("choice", key, args))
            elif kind in NUMERIC_KINDS and isinstance(args, list) and len(args) == 2:
                out.append(("numeric", key, (kind, float(args[0]), float(args[1]))))
        return out
    fields = searched_fields(tt, variant)
    cfgs = tt.loc[tt["variant"] == variant, "config"]
    out = []
    for f in fields:
        vals = [c.get(f) for c in cfgs]
        if _numeric(vals):
            out.append(("numeric", f, ranges.get(f)))
        else:
            opts = []
            for v in vals:
                if v not in opts:
                    opts.append(v)
            out.append(("choice", f, opts))
    return out


def _marker_legend(fig, chosen: str | None, spread: bool = False, ncol: int = 4) -> None:
    """The markers' legend below the panels, outside every data area; `chosen` labels the
    red ring (None: no ring drawn)."""
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], marker="o", ls="", color="tab:blue", markersize=4,
                      label="trial (mean over tuning envs x seeds)")]
    if spread:
        handles.append(Line2D([], [], color="tab:blue", alpha=0.5, lw=0.8,
                              label="the trial's spread over its tuning seeds (min-max)"))
    handles.append(Line2D([], [], marker="*", ls="", markerfacecolor="none",
                          markeredgecolor="black", markersize=11, label="defaults (c00)"))
    if chosen:
        handles.append(Line2D([], [], marker="o", ls="", markerfacecolor="none",
                              markeredgecolor="red", markersize=9, label=chosen))
    fig.legend(handles=handles, loc="outside lower center", ncol=min(ncol, len(handles)),
               fontsize=7, frameon=False)


def _mark(ax, x, y, trial: np.ndarray, best: int | None) -> None:
    """The defaults (an open star, so c00's own point shows through) and the chosen trial
    (a red ring) over the points x, y of the trials `trial`."""
    for t, kw in ((0, {"marker": "*", "s": 120, "facecolors": "none", "edgecolors": "black",
                       "linewidths": 0.9, "zorder": 4}),
                  (best, {"marker": "o", "s": 75, "facecolors": "none", "edgecolors": "red",
                          "linewidths": 1.2, "zorder": 5})):
        hit = trial == t
        if t is not None and hit.any():
            ax.scatter(np.asarray(x)[hit], np.asarray(y)[hit], **kw)


def _choice_panel(ax, key: str, options: list, cfgs: list[dict]):
    """A choice dimension on a categorical axis: its options as tick labels (a value that is
    no option, such as a default outside the search, under "other"), points of one option
    spread sideways. Returns each config's x."""
    levels, k = dimension_levels(key, {"choice": list(options)}, cfgs)
    labels = [", ".join(_value_text(f, v) for f, v in o.items()) if isinstance(o, dict)
              else _value_text(key, o) for o in options]
    if any(lv is None for lv in levels):
        labels.append("other")
    x = np.array([k if lv is None else lv for lv in levels], dtype=float)
    x = x + _spread(list(x), 0.4)
    long = sum(map(len, labels)) > 28
    ax.set_xticks(range(len(labels)), labels, fontsize=7, rotation=30 if long else 0,
                  ha="right" if long else "center")
    ax.set_xlim(-0.5, len(labels) - 0.5)
    fields = list(dict.fromkeys(f for o in options if isinstance(o, dict) for f in o))
    ax.set_xlabel(f"{key} ({', '.join(fields)})" if fields else key)
    return x


def _numeric_panel(ax, key: str, rng: tuple[str, float, float] | None, cfgs: list[dict]):
    """A ranged field on its range's scale (see `sensitivity_figure`), equal values spread
    sideways by a sliver of the span. Returns each config's x and whether it is drawn (a
    value that is no number, or not positive on a log axis, is not)."""
    from matplotlib.ticker import LogLocator, NullFormatter

    vals = [c.get(key) for c in cfgs]
    ok = np.array([_numeric([v]) and v is not None for v in vals], dtype=bool)
    v = np.array([float(x) if good else np.nan for x, good in zip(vals, ok)])
    pos = v[ok & (v > 0)]
    log = (rng[0].startswith("log") if rng else
           bool(ok.all()) and len(pos) == len(v) and pos.max() / pos.min() >= 20)
    keep = ok & (v > 0) if log else ok
    shown = v[keep]
    lo, hi = ((min(rng[1], *shown), max(rng[2], *shown)) if rng else
              (shown.min(), shown.max()) if len(shown) else (1.0, 2.0))
    span = (math.log(hi / lo) if log else hi - lo) or 1.0
    off = _spread([x if good else None for x, good in zip(vals, keep)], 0.03 * span)
    x = np.exp(np.log(np.where(keep, v, 1.0)) + off) if log else v + off
    if rng:  # the searched range, widened to any value outside it (the defaults)
        if log:
            pad = (hi / lo) ** 0.04
            ax.set_xlim(lo / pad, hi * pad)
        else:
            ax.set_xlim(lo - 0.04 * (hi - lo), hi + 0.04 * (hi - lo))
        for end in rng[1:]:  # the searched range's ends
            ax.axvline(end, color="0.6", lw=0.8, ls=":")
    if log:
        ax.set_xscale("log")
        # matplotlib labels minor ticks on a span under ~1.5 decades, and in a
        # quarter-width panel they overlap: label 1 and 3 per decade instead
        ax.xaxis.set_minor_formatter(NullFormatter())
        lo_, hi_ = ax.get_xlim()
        if hi_ / lo_ < 30:
            ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 3.0)))
    ax.set_xlabel(key)
    return x, keep


def sensitivity_figure(ts: pd.DataFrame, tt: pd.DataFrame, variant: str, criterion: str,
                       out: Path, ranges: dict[str, tuple[str, float, float]] | None = None,
                       best: int | None = None, dims: dict[str, dict] | None = None,
                       aliased: list[list[str]] | None = None,
                       halves: list[tuple[str, str]] | None = None) -> list[str]:
    """Trial score against each searched dimension, one point per trial; the defaults
    (trial 0) an open star, the chosen trial (`best`, else the best score) ringed.

    dims (`search_dims`: the variant's `tuning.search`): one panel per dimension, a joint
    choice such as `batch` one panel; without it, one per searched field. A choice sits on
    a categorical axis, its options as tick labels (V-MPO's `minibatch_size 0`: "whole
    batch"; a value that is no option, such as a default outside the search: "other"). A
    ranged field's axis spans its searched range (`ranges`, from `search_space`;
    logarithmic for log kinds; a non-positive value cannot sit on a log axis and is left
    off it), so a choice at an end shows. Points with equal values are spread sideways.
    aliased (`aliased_groups`): each panel of a group is titled with the others in it;
    halves (`halves_pairs`): each panel of a pair confounded at halves with the other."""
    ranges = ranges or {}
    import matplotlib.pyplot as plt

    from analysis.plots import save

    g = ts[(ts["variant"] == variant) & np.isfinite(ts["score"])].sort_values("trial")
    panels = _panels(tt, variant, dims, ranges)
    if not panels or g.empty:
        return []
    if best is None:
        best = best_of(zip(g["trial"], g["score"]))
    cols = min(4, len(panels))
    rows = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(max(4.5, 3.0 * cols), 1.0 + 2.5 * rows),
                             squeeze=False, sharey=True, layout="constrained")
    cfgs, score, trial = list(g["config"]), g["score"].to_numpy(), g["trial"].to_numpy()
    for i, (ax, (kind, key, what)) in enumerate(zip(axes.flat, panels)):
        if kind == "choice":
            x, keep = _choice_panel(ax, key, what, cfgs), np.ones(len(cfgs), dtype=bool)
        else:
            x, keep = _numeric_panel(ax, key, what, cfgs)
        x, y, t = x[keep], score[keep], trial[keep]
        ax.scatter(x, y, color="tab:blue", s=22, edgecolors="none", zorder=3)
        _mark(ax, x, y, t, best)
        ax.set_ylabel(f"trial score ({criterion}, normalised)" if i % cols == 0 else "")
        group = next((gr for gr in aliased or [] if key in gr), [])
        coarse = [b if a == key else a for a, b in halves or [] if key in (a, b)]
        title = ["aliased with " + ", ".join(k for k in group if k != key)] if group else []
        title += ["confounded at halves with " + ", ".join(coarse)] if coarse else []
        if title:
            ax.set_title("; ".join(title), fontsize=7, color="tab:red")
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    _marker_legend(fig, f"chosen (c{int(best):02d})" if best is not None else None)
    fig.suptitle(f"{variant}: trial score against each searched value\n{len(g)} scored trials, "
                 "one point each (mean over tuning envs x seeds); dotted: the searched range's ends;"
                 "\nequal values spread sideways")
    return save(fig, out, f"tuning_sensitivity_{variant}")


def distribution_figure(ts: pd.DataFrame, criterion: str, out: Path,
                        seed_scores: pd.DataFrame | None = None,
                        picked: dict[str, tuple[int, str]] | None = None) -> list[str]:
    """Each tuned variant's trial scores, one point per configuration (side by side in
    trial order) over a box of its quartiles; a thin vertical bar per trial from its lowest
    to its highest per-seed score (`per_seed_scores`): how far one seed alone would have
    put it; the defaults (trial 0) an open star over their point, the chosen trial
    (`picked`) ringed."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    from analysis.plots import save

    g = ts[np.isfinite(ts["score"])].copy()
    if g.empty:
        return []
    order = sorted(g["variant"].unique())
    fig, ax = plt.subplots(figsize=(1.6 + 1.6 * len(order), 3.8), layout="constrained")
    sns.boxplot(data=g, x="variant", y="score", order=order, ax=ax, color="0.92", whis=(0, 100),
                showfliers=False, width=0.7)
    spread = seed_scores is not None and len(seed_scores) > 0
    for i, v in enumerate(order):
        gv = g[g["variant"] == v].sort_values("trial")
        n = len(gv)
        x = i + (0.5 * (np.arange(n) / (n - 1) - 0.5) if n > 1 else np.zeros(1))
        if spread:
            ss = seed_scores[seed_scores["variant"] == v].groupby("trial")["score"]
            lo, hi = ss.min(), ss.max()
            t = gv["trial"].to_numpy()
            ax.vlines(x, lo.reindex(t).to_numpy(), hi.reindex(t).to_numpy(), color="tab:blue",
                      alpha=0.5, lw=0.8, zorder=2)
        ax.scatter(x, gv["score"], color="tab:blue", s=16, edgecolors="none", zorder=3)
        _mark(ax, x, gv["score"].to_numpy(), gv["trial"].to_numpy(),
              (picked or {}).get(v, (None, ""))[0])
    ax.set_xticks(range(len(order)), [f"{v}\n({(g['variant'] == v).sum()} configs)" for v in order])
    ax.set_xlabel("")
    ax.set_ylabel(f"trial score ({criterion}, normalised)")
    ax.set_title("Scores over configurations (box: quartiles, whiskers: min-max over trials;\n"
                 "points in trial order c00, c01, ... left to right)", fontsize=9)
    chosen = {t for t, _ in (picked or {}).values()}
    _marker_legend(fig, (f"chosen (c{next(iter(chosen)):02d})" if len(chosen) == 1 else
                         "chosen trial") if chosen else None, spread, ncol=2)
    return save(fig, out, "tuning_scores")


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


def _worst_text(variant: str, g: pd.DataFrame) -> str:
    """A variant's worst-covered pairs (every pair tied at the lowest coverage, aliased
    first, as `design_coverage` sorts them), their counts beside what independent uniform
    draws reach, and the median coverage."""
    worst = g[np.isclose(g["coverage"], g["coverage"].min())]
    tag = {"quartiles": " (aliased)", "halves": " (confounded at halves)"}
    names = ", ".join(f"{r.a} x {r.b}{tag.get(r.aliased_at, '')}" for r in worst.itertuples())
    counts = list(dict.fromkeys((int(r.levels), int(r.possible), f"{r.expected:.1f}", int(r.trials))
                                for r in worst.itertuples()))
    each = " each" if len(worst) > 1 and len(counts) == 1 else ""
    nums = "; ".join(f"{lv} of {p}{each}, against {e} for {n} independent uniform draws"
                     for lv, p, e, n in counts)
    return (f"`{variant}` {names}: {nums} (median coverage over its {len(g)} pairs "
            f"{g['coverage'].median():.2f})")


def _design_sentence(design: pd.DataFrame) -> str:
    """The design-coverage paragraph: what is counted, each variant's worst pairs (all of
    a tie) against what independent draws reach, and the pairs aliased at full resolution
    and confounded at halves named (`design_table`)."""
    parts = [_worst_text(v, g) for v, g in design.groupby("variant", sort=True)]
    text = ("For each pair of a variant's searched dimensions (a joint choice such as a batch "
            "shape is one dimension), the distinct joint levels its trials c01.. reach (a "
            "choice: its option; a numeric range: the quarter of its range it falls in) against "
            "the most they could reach (min(trials, levels x levels)) and against what as many "
            "independent uniform draws would reach on average (cells x (1 - (1 - 1/cells)^trials), "
            "`expected`), all pairs in `tuning_design`. Worst: " + "; ".join(parts) + ". ")
    alias = design[design["aliased_at"] == "quartiles"]
    coarse = design[design["aliased_at"] == "halves"]
    if alias.empty and coarse.empty:
        return text + ("No pair is aliased (no pair's levels fix each other's) or confounded at "
                       "halves (no numeric dimension's lower and upper half come with disjoint "
                       "levels of another).")
    out = []
    if len(alias):
        named = [f"`{v}`: " + ", ".join(f"{r.a} x {r.b} ({r.levels} of {r.possible})"
                                        for r in g.itertuples())
                 for v, g in alias.groupby("variant", sort=True)]
        out.append("**Aliased pairs** (each one's level fixes the other's): " + "; ".join(named)
                   + ". Their sensitivity panels show one partition of the trials, so their "
                   "effects cannot be told apart.")
    if len(coarse):
        named = [f"`{v}`: " + ", ".join(f"{r.a} x {r.b} ({r.split})" for r in g.itertuples())
                 for v, g in coarse.groupby("variant", sort=True)]
        out.append("**Confounded at halves** (each numeric range cut at its middle, on its own "
                   "scale: the levels of one split the other's into disjoint sets on every "
                   "trial): " + "; ".join(named) + ". A trend in one's sensitivity panel may be "
                   "the other's: split at the middle, their effects cannot be told apart.")
    return text + " ".join(out)


RELIABLE_P = 0.05  # a split-seed rho with p above this: the ranking is not shown to replicate


def _reliability_lines(rel: pd.DataFrame, criterion: str) -> list[str]:
    """The split-seed reliability paragraph (`seed_reliability`)."""
    per = "; ".join(f"`{r.variant}` ρ = {r.rho:+.2f} (p = {r.p:.2g}, {r.trials} trials)"
                    if np.isfinite(r.rho) else f"`{r.variant}` ρ undefined (a side is constant)"
                    for r in rel.itertuples())
    weak = [r.variant for r in rel.itertuples() if not (np.isfinite(r.p) and r.p < RELIABLE_P
                                                        and r.rho > 0)]
    return [f"Each scored trial's score on one tuning seed alone (`{criterion}`, normalised, mean "
            "over the tuning envs) against the other seed (with more seeds: the first half of "
            "the sorted seeds against the rest, averaged within each): do the trials rank "
            "alike on fresh seeds? Spearman's rank correlation over the trials: " + per + ". "
            "ρ near 0 means the trials' ranking is mostly seed noise, so the selection is not "
            "shown to beat the defaults, and the sensitivity panels show noise as much as "
            "effects." + (" Not shown to replicate (ρ not positive at p < "
                          f"{RELIABLE_P:g}): " + ", ".join(f"`{v}`" for v in weak) + "."
                          if weak else ""), ""]


def _trial_text(t) -> str:
    return "-" if t is None or pd.isna(t) else f"c{int(t):02d}"


def reliability_wide(rel: pd.DataFrame) -> pd.DataFrame:
    """`seed_reliability` formatted for people: ranks as "2 of 16", trials as "c03"."""
    def rank(side: str) -> list[str]:
        return ["-" if r is None or pd.isna(r) else f"{int(r)} of {n}"
                for r, n in zip(rel[f"chosen_rank_{side}"], rel["trials"])]

    return pd.DataFrame({
        "variant": rel["variant"], "seeds": rel["seeds_a"] + " vs " + rel["seeds_b"],
        "trials": rel["trials"],
        "Spearman ρ": rel["rho"].map(lambda x: f"{x:+.2f}" if np.isfinite(x) else "-"),
        "p": rel["p"].map(lambda x: f"{x:.2g}" if np.isfinite(x) else "-"),
        "chosen": rel["chosen"].map(_trial_text),
        "its rank (first seeds)": rank("a"), "its rank (other seeds)": rank("b"),
        "best (first seeds)": rel["best_a"].map(_trial_text),
        "best (other seeds)": rel["best_b"].map(_trial_text)})


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
        L += ["### Design coverage", "", _design_sentence(design), ""]
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
              *_reliability_lines(rel, criterion), tables.to_markdown(relf), ""]
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
