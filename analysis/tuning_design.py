"""Design coverage of a variant's tuning trials (the report's `tuning_design` table): per
pair of its searched dimensions, the joint levels the trials reach against the most they
could and against what independent draws reach, a pair whose levels fix each other's
(aliased, at quartiles) or whose halves split the other's levels into disjoint sets
(confounded at halves) flagged: its effects cannot be told apart (`design_coverage`;
`design_table` over every tuned variant, `design_sentence` the report's paragraph).
`sweeps/launch.py --dry-run` warns from the same check (sweeps/tuning.py) before any run.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd

from analysis.tuning_values import NUMERIC_KINDS, is_numeric, value_text, range_position


QUARTILES = 4  # a numeric dimension's levels at full resolution: its range's quarters
HALVES = 2     # ... and in the coarse pass: its range's halves
DESIGN_COLUMNS = ["a", "b", "trials", "levels", "possible", "expected", "coverage", "aliased",
                  "aliased_at", "split"]
ALIASED_AT = ("quartiles", "halves")  # `aliased_at`, strongest first ("" where neither)


def _same(a, b) -> bool:
    if is_numeric([a, b]) and a is not None and b is not None:
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12)
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def _bin(value, kind: str, lo: float, hi: float, bins: int) -> int | None:
    """Which of `bins` equal parts of [lo, hi] (`range_position`) holds `value`."""
    if not is_numeric([value]) or value is None or (kind.startswith("log") and value <= 0):
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
        return " x ".join(value_text(f, v) for f, v in option.items())
    return value_text(key, option)


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


def design_sentence(design: pd.DataFrame) -> str:
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
