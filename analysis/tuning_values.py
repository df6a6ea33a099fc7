"""What the tuning modules share about a searched value and a trial: whether a value is a
number (`is_numeric`), where it sits in its range (`range_position`, for the ranged kinds
`NUMERIC_KINDS`), how people read it (`value_text`, `minibatch_text`, `passes_label`),
which config fields a variant's trials search (`searched_fields`), and the one rule that
picks the best trial (`best_of`, which `--phase select` uses too).

It sits below analysis/tuning.py and the section's parts (tuning_design, tuning_reliability,
tuning_figures), so that none of them imports the module that imports it.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pandas as pd


def is_numeric(values: list) -> bool:
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)


NUMERIC_KINDS = ("uniform", "log_uniform", "int", "log_int")  # sweeps.tuning's ranged kinds


def range_position(value: float, kind: str, lo: float, hi: float) -> float:
    """Where `value` sits in [lo, hi] as a share of the span, 0 at lo and 1 at hi, on
    the range's own scale (logarithmic for log_uniform and log_int)."""
    if kind.startswith("log"):
        return (math.log(value) - math.log(lo)) / (math.log(hi) - math.log(lo))
    return (value - lo) / (hi - lo)


WHOLE_BATCH = "whole batch"  # minibatch_size 0 (V-MPO's; PPO's must be >= 1)


def minibatch_text(minibatch_size) -> str:
    """A minibatch size as people read it: 0 is "whole batch", one gradient step per pass
    over the batch (algos/onpolicy.steps_per_pass; analysis does not import algos)."""
    return WHOLE_BATCH if is_numeric([minibatch_size]) and minibatch_size == 0 else f"{minibatch_size}"


def passes_label(epochs, minibatch_size) -> str:
    """An on-policy learner's passes over a batch: "5 x 64" (epochs x minibatch size),
    "1 x whole batch" (`minibatch_text`)."""
    return f"{epochs} x {minibatch_text(minibatch_size)}"


def value_text(field: str, value) -> str:
    """A value as a tick label or in a table: `minibatch_size` 0 is "whole batch"."""
    if field == "minibatch_size" and is_numeric([value]) and value == 0:
        return WHOLE_BATCH
    return f"{value:g}" if is_numeric([value]) and value is not None else json.dumps(value)


def searched_fields(tt: pd.DataFrame, variant: str) -> list[str]:
    """The config fields whose values differ between the variant's trials."""
    cfgs = tt.loc[tt["variant"] == variant, "config"]
    keys = sorted({k for c in cfgs for k in c})
    return [k for k in keys if len({json.dumps(c.get(k), sort_keys=True) for c in cfgs}) > 1]


def best_of(pairs) -> int | None:
    """The trial of the best (trial, score) pair: the highest finite score, ties to the
    lower trial (the defaults first). The one rule: `--phase select` picks by it too
    (sweeps.tuning.choose)."""
    ok = [(int(t), float(sc)) for t, sc in pairs if np.isfinite(sc)]
    return max(ok, key=lambda p: (p[1], -p[0]))[0] if ok else None


EDGE = 0.1  # a selected value this close to an end of its range (share of the span) is flagged


def edge_of(value: Any, kind: str, lo: float, hi: float) -> str:
    """"low end" / "high end" where a numeric `value` in [lo, hi] lies within EDGE of the
    span from an end (`range_position`), else "" (also for a value outside the range, such
    as a default the search does not cover): the best value may lie outside the range."""
    if not is_numeric([value]) or (kind.startswith("log") and value <= 0) or not lo <= value <= hi:
        return ""  # not a point of the range (a default outside it, 0 on a log range)
    u = range_position(value, kind, lo, hi)
    return "low end" if u <= EDGE else "high end" if u >= 1 - EDGE else ""
