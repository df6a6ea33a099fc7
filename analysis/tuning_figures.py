"""The tuning section's figures: the distribution of trial scores over configurations
(`distribution_figure`, tuning_scores: each trial's spread over its tuning seeds drawn) and
sensitivity (`sensitivity_figure`, tuning_sensitivity_<variant>: one panel per searched
dimension, a choice on a categorical axis, trial score against its value, one point per
trial). The defaults (trial 0) are an open star, the chosen trial a red ring.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analysis.tuning_design import dimension_levels
from analysis.tuning_values import NUMERIC_KINDS, is_numeric, value_text, best_of, searched_fields


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
        if is_numeric(vals):
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
    labels = [", ".join(value_text(f, v) for f, v in o.items()) if isinstance(o, dict)
              else value_text(key, o) for o in options]
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
    ok = np.array([is_numeric([v]) and v is not None for v in vals], dtype=bool)
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
