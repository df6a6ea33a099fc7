"""Figures (PNG and PDF, Agg backend) of the report's estimates.

Every figure labels its axes with units, states the number of runs behind each
estimate (in the tick labels or legend), the interval (95% stratified bootstrap, reps),
and carries an INCOMPLETE banner when the grid is. A variant keeps one colour in every
figure. PDFs are written without a creation date, so the same inputs give the same bytes.

A raw-return stratum (suite key `raw:<env>`, an env without a reference pair) is drawn in
the env's return units, every label saying so, with no optimality-gap panel; its file
names use `file_key` (no ":" or "/" of the env id in a file name).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import matplotlib.ticker
import numpy as np
import pandas as pd

import re

from analysis.aggregate import metrics as suite_metrics
from analysis.duals import DUAL_MIN
from analysis.labels import base, label as label_of
from analysis.scores import is_raw, raw_env

plt.rcParams.update({"font.size": 9, "axes.titlesize": 9, "axes.labelsize": 9,
                     "legend.fontsize": 8, "svg.hashsalt": "vmpo-bench"})

SUITE_NAMES = {"atari": "Atari", "mujoco": "MuJoCo", "classic": "Classic control"}
RAW_LABEL = "Return (raw, no reference pair)"


def score_label(suite: str) -> str:
    """The x/y axis label of a score of `suite` (normalised, or a raw stratum's return)."""
    if is_raw(suite):
        return RAW_LABEL
    if suite == "atari":
        return "Human-normalised score (0 = random, 1 = human)"
    return "Normalised score (0 = random, 1 = reference)"


def iqm_label(suite: str) -> str:
    """A short y-axis label for an IQM of the scores of `suite`."""
    if is_raw(suite):
        return "IQM return (raw, no reference pair)"
    if suite == "atari":
        return "IQM human-normalised score"
    return "IQM normalised score (1 = reference)"


def suite_name(suite: str) -> str:
    """"Atari"; "<env>, raw returns (no reference pair)" for a raw stratum."""
    if is_raw(suite):
        return f"{raw_env(suite)}, raw returns (no reference pair)"
    return SUITE_NAMES.get(suite, suite)


_KEYS: dict[str, str] = {}  # the current report's suite -> file key (assign_file_keys)


def _sanitised(suite: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", suite)


def assign_file_keys(suites) -> dict[str, str]:
    """Give each suite of one report a distinct file key (`file_key` then returns it):
    its sanitised name, and for a later suite (in sorted order) whose sanitised name is
    taken, that name with -2, -3, ... (raw:a/B-v0 and raw:a:B-v0 both sanitise to
    raw-a-B-v0)."""
    _KEYS.clear()
    used: set[str] = set()
    for suite in sorted(set(suites)):
        key, n = _sanitised(suite), 1
        while key in used:
            n += 1
            key = f"{_sanitised(suite)}-{n}"
        used.add(key)
        _KEYS[suite] = key
    return dict(_KEYS)


def file_key(suite: str) -> str:
    """`suite` as a part of a file name: "atari" as it is; "raw:MinAtar/Breakout-v1" as
    "raw-MinAtar-Breakout-v1"; the key `assign_file_keys` gave it in this report, where
    two suites' names sanitise alike."""
    return _KEYS.get(suite) or _sanitised(suite)


# The specs' variant names keep one tab10 colour in every report (a report with PPO and
# one without draw V-MPO alike); other names take the slots left, in sorted order.
CANONICAL = ("vmpo", "vmpo-no-topk", "vmpo-no-alpha", "vmpo-fixed-eta", "ppo", "trpo", "mpo")


def variant_colours(variants: list[str]) -> dict[str, int]:
    """variant -> tab10 slot: CANONICAL names their own slot, the rest the free ones; a
    labelled variant (`ppo@defaults`, analysis/labels.py) takes its base name's slot."""
    bases = sorted({base(v) for v in variants})
    slots = {v: CANONICAL.index(v) for v in bases if v in CANONICAL}
    others = [v for v in bases if v not in slots]
    slots.update({v: len(CANONICAL) + i for i, v in enumerate(others)})
    return {v: slots[base(v)] for v in variants}


# A labelled variant's colour: its base's, this far towards white. 0.45 by default, and
# per base name where that would leave two colours of the canonical set close. With one
# tint of 0.5 for all, the closest pair of the 14 (the 7 CANONICAL names and their
# labelled namesakes) was ppo@x beside mpo@x: CIEDE2000 9.1 (CIE76 13.1), and readers
# confused mpo@x with vmpo-fixed-eta@x (17.6). With these tints the closest pair is 13.3
# (CIE76 20.2) and that one 21.3; tab10's own closest pair (red, brown) is 16.2. Found by
# a search over tints 0.2-0.65 per name; none past 0.5, so a labelled line stays visible
# on white.
LABELLED_TINT = 0.45
LABELLED_TINTS = {"ppo": 0.3, "vmpo-fixed-eta": 0.4, "trpo": 0.5}


def labelled_tint(name: str) -> float:
    """How far towards white a labelled variant of base name `name` is drawn."""
    return LABELLED_TINTS.get(base(name), LABELLED_TINT)


def _tint(rgba, w: float):
    return tuple(c + (1.0 - c) * w for c in rgba[:3]) + tuple(rgba[3:])


def order(variants) -> list[str]:
    """The distinct `variants` sorted by (base name, label): vmpo, vmpo@defaults,
    vmpo-fixed-eta, ... As text '@' sorts after '-', which would put vmpo@defaults after
    every vmpo-* and away from vmpo."""
    return sorted(set(variants), key=lambda v: (base(v), label_of(v)))


class Style:
    """Colours per variant (fixed over every report: `variant_colours`), the interval
    text and the banner."""

    def __init__(self, variants: list[str], reps: int, incomplete: str | None,
                 mixed: dict[str, dict[str, list[int]]] | None = None,
                 env_counts: dict[str, dict[str, int]] | None = None):
        cmap = plt.get_cmap("tab10")
        self.colour = {v: cmap(i % 10) if v == base(v) else
                       _tint(cmap(i % 10), labelled_tint(v))
                       for v, i in variant_colours(variants).items()}
        # a labelled variant's lines are dash-dotted too, told apart from its namesake in
        # print (dotted and dashed mean floors and bounds in the duals figures)
        self.ls = {v: "-" if v == base(v) else "-." for v in variants}
        self.ci = f"95% stratified-bootstrap CIs ({reps:,} reps)"
        self.incomplete = incomplete
        # in a suite whose variants ran different budgets (scores.mixed_budgets), every
        # label of that suite's figures says its variant's budgets there
        self.budget = {suite: {v: "/".join(steps_text(b) for b in sorted(set(bs)))
                               for v, bs in budgets.items()}
                       for suite, budgets in (mixed or {}).items()}
        # in a suite whose variants ran different numbers of envs (an incomplete grid, two
        # studies pooled), every label of that suite's figures says its variant's count
        self.envs = env_counts or {}

    def label(self, variant: str, n_runs, suite: str, sep: str = " ",
              n_envs: int | None = None) -> str:
        """"variant (n=N)"; "variant (n=N, 300k steps)" where the variants' budgets
        differ in `suite` (the budgets `variant` ran in that suite, not in others);
        ", K envs" added where their numbers of envs there differ, or always where
        `n_envs` gives K (the envs of one comparison, not the variant's in the suite)."""
        own = self.budget.get(suite, {})
        extra = f", {own[variant]} steps" if variant in own else ""
        k = self.envs.get(suite, {}).get(variant) if n_envs is None else n_envs
        extra += "" if k is None else f", {int(k)} env{'s' if k != 1 else ''}"
        return f"{variant}{sep}(n={int(n_runs)}{extra})"

    @staticmethod
    def labelled_note(drawn, lines: bool = True) -> str | None:
        """The caption line for the labelled variants among `drawn`: "tinted,
        dash-dotted: the defaults study (X@defaults)"; None where none is labelled.
        `lines`: False where they are bars (no line style)."""
        labs = sorted({label_of(v) for v in drawn} - {""})
        if not labs:
            return None
        studies = " and ".join(labs) + (" studies" if len(labs) > 1 else " study")
        names = ", ".join(f"X@{lab}" for lab in labs)
        return f"{'tinted, dash-dotted' if lines else 'tinted'}: the {studies} ({names})"

    def finish(self, fig, title: str, drawn=(), lines: bool = True) -> None:
        """The figure's title, then the labelled variants' caption line (`labelled_note`
        of the `drawn` variants), then the INCOMPLETE banner."""
        note = self.labelled_note(drawn, lines)
        if note:
            title = f"{title}\n{note}"
        if self.incomplete:
            title = f"{title}\n{self.incomplete}"
        fig.suptitle(title, color="firebrick" if self.incomplete else "black")


def steps_text(n: int) -> str:
    """1000000 -> "1M", 300000 -> "300k", 2500 -> "2.5k"."""
    for div, unit in ((1_000_000, "M"), (1_000, "k")):
        if n >= div:
            return f"{n / div:g}{unit}"
    return str(n)


def save(fig, out: Path, name: str) -> list[str]:
    """Write name.png (150 dpi) and name.pdf; close the figure; return the file names."""
    fig.savefig(out / f"{name}.png", dpi=150, bbox_inches="tight", metadata={"Software": None})
    fig.savefig(out / f"{name}.pdf", bbox_inches="tight",
                metadata={"CreationDate": None, "ModDate": None})
    plt.close(fig)
    return [f"{name}.png", f"{name}.pdf"]


def _intervals(ax, labels, points, lowers, uppers, colours) -> np.ndarray:
    """Horizontal interval bars, the first label on top; returns their y positions."""
    y = np.arange(len(labels))[::-1]
    for yi, p, lo, hi, c in zip(y, points, lowers, uppers, colours):
        ax.barh(yi, hi - lo, left=lo, height=0.6, color=c, alpha=0.75)
        ax.plot([p, p], [yi - 0.3, yi + 0.3], color="black", lw=1.5)
    ax.set_yticks(y)
    ax.set_yticklabels(labels)
    ax.grid(axis="x", alpha=0.3)
    return y


def aggregate_figure(agg: pd.DataFrame, suite: str, style: Style, out: Path) -> list[str]:
    """IQM, median, mean, optimality gap per variant with intervals: aggregate_<suite>.
    A raw stratum has no optimality-gap panel (the gap to 1 means nothing in raw units)."""
    a = agg[agg["suite"] == suite]
    variants = order(a["variant"])
    metrics = suite_metrics(suite)
    raw = is_raw(suite)
    fig, axes = plt.subplots(1, len(metrics), figsize=(2.6 * len(metrics), 0.45 * len(variants) + 1.6),
                             sharey=True)
    for ax, metric in zip(axes, metrics):
        m = a[a["metric"] == metric].set_index("variant").loc[variants]
        labels = [style.label(v, m.loc[v, "n_runs"], suite) for v in variants]
        _intervals(ax, labels, m["point"], m["lower"], m["upper"],
                   [style.colour[v] for v in variants])
        ax.set_title(metric + (" (lower is better)" if metric == "Optimality Gap" else
                               " (= mean: one env)" if raw and metric == "Median" else ""))
        ax.set_xlabel("Return (raw)" if raw else
                      "Normalised score" if metric != "Optimality Gap" else "Gap to 1")
    if raw:
        fig.supxlabel(f"{RAW_LABEL}; n = runs (seeds, one env); no optimality gap: the gap "
                      "to a normalised score of 1 has no meaning in raw units", fontsize=8)
    else:
        fig.supxlabel(score_label(suite) + "; n = runs (seeds x envs)", fontsize=8)
    what = "final returns" if raw else "final scores"
    style.finish(fig, f"{suite_name(suite)}: aggregate {what}, {style.ci}", variants, lines=False)
    fig.tight_layout()
    return save(fig, out, f"aggregate_{file_key(suite)}")


def legend_below(fig, handles, labels, title: str = "variant (runs)") -> None:
    """The figure's legend under its axes, in as many columns (up to 3) as keep it about
    as wide as the figure, so that the axes keep the figure's width whatever the number
    of variants (a legend beside them took 3/4 of a profile's width at 12 variants)."""
    width = fig.get_figwidth()
    longest = max((len(t) for t in labels), default=1)
    ncol = int(max(1, min(3, len(labels), width // max(0.065 * longest, 1.0))))
    fig.legend(handles, labels, title=title, frameon=False, loc="outside lower center",
               ncol=ncol)


def profile_figure(prof: pd.DataFrame, suite: str, style: Style, out: Path) -> list[str]:
    """Performance profiles with bands: profile_<suite>. The legend goes under the axes."""
    p = prof[prof["suite"] == suite]
    variants = order(p["variant"])
    fig, ax = plt.subplots(figsize=(6.4, 3.6 + 0.12 * len(variants)), layout="constrained")
    for v in variants:
        g = p[p["variant"] == v]
        c = style.colour[v]
        ax.plot(g["tau"], g["point"], color=c, ls=style.ls[v], lw=1.5, label=style.label(v, g["n_runs"].iloc[0], suite))
        ax.fill_between(g["tau"], g["lower"], g["upper"], color=c, alpha=0.2, lw=0)
    ax.set_xlabel(f"Threshold τ: {score_label(suite).lower()}")
    ax.set_ylabel(f"Fraction of runs with {'return' if is_raw(suite) else 'score'} > τ")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    legend_below(fig, *ax.get_legend_handles_labels())
    style.finish(fig, f"{suite_name(suite)}: performance profiles\n{style.ci}", variants)
    return save(fig, out, f"profile_{file_key(suite)}")


# The kinds of comparison (aggregate._pairs), in the order the P(X > Y) figure groups them
POI_KINDS = {"baseline": "the baseline against each variant of its label",
             "ablation": "full V-MPO against each of its ablations",
             "label": "each variant against its namesake of a labelled study"}


CONTROL_TAG = "(control: the same runs rerun)"


def poi_figure(poi: pd.DataFrame, suite: str, style: Style, out: Path,
               controls=()) -> list[str]:
    """Probability of improvement with intervals: poi_<suite>. Rows grouped by kind of
    comparison (POI_KINDS order, then any other kind; a pair of two kinds with the
    ablations), each group under a heading and a thin line; each estimate and interval
    written in a column right of the axes, clear of the 0.5 line (and of a [0, 0] or
    [1, 1] interval, which has no width). `controls`: the (x, y) pairs whose compared
    runs share run ids (aggregate.shared_runs): their tick label ends CONTROL_TAG and
    their bar is hatched, so that a reader of the figure alone reads the row as the
    noise floor of a rerun, not as an effect of a change."""
    controls = set(controls)
    p = poi[poi["suite"] == suite]
    # a pair made as two kinds (the baseline V-MPO against an ablation is both) is drawn
    # once, in the more specific group: with the ablations
    p = p.assign(_first=p["kind"] != "ablation").sort_values("_first", kind="stable")
    p = p.drop_duplicates(["x", "y"]).drop(columns="_first")
    kinds = sorted(set(p["kind"]), key=lambda k: (list(POI_KINDS).index(k)
                                                  if k in POI_KINDS else len(POI_KINDS), k))
    rank = {v: i for i, v in enumerate(order(set(p["x"]) | set(p["y"])))}
    rows, heads = [], []  # rows top to bottom; heads: (row index, kind) of each heading
    for k in kinds:
        heads.append((len(rows) + len(heads), k))
        g = p[p["kind"] == k]
        rows += sorted(g.itertuples(index=False), key=lambda r: (rank[r.x], rank[r.y]))
    n = len(rows) + len(heads)
    fig, ax = plt.subplots(figsize=(9.0, 0.42 * n + 1.6))
    head_at = {i for i, _ in heads}
    slots = [i for i in range(n) if i not in head_at]
    ys = n - 1 - np.asarray(slots, dtype=float)  # the first row on top
    for yi, r in zip(ys, rows):
        c = style.colour[r.y]
        ax.barh(yi, r.upper - r.lower, left=r.lower, height=0.6, color=c, alpha=0.75,
                hatch="///" if (r.x, r.y) in controls else None, edgecolor="grey", lw=0)
        ax.plot([r.point, r.point], [yi - 0.3, yi + 0.3], color="black", lw=1.5)
        ax.scatter([r.point], [yi], color=c, edgecolor="black", s=22, zorder=3)
        ax.text(1.02, yi, f"{r.point:.2g} [{r.lower:.2g}, {r.upper:.2g}]", va="center",
                ha="left", fontsize=7, transform=ax.get_yaxis_transform())
    for i, k in heads:
        y = n - 1 - i
        ax.text(-0.02, y, POI_KINDS.get(k, k), transform=ax.get_yaxis_transform(),
                ha="right", va="center", fontsize=8, fontstyle="italic", fontweight="bold")
        if i:  # a thin line between two groups
            ax.axhline(y + 0.5, color="grey", lw=0.6)
    ax.set_yticks(ys)
    ax.set_yticklabels([f"P({r.x} > {r.y})  ({int(r.n_x)} vs {int(r.n_y)} runs, "
                        f"{int(r.n_tasks)} env{'s' if r.n_tasks != 1 else ''})"
                        + (f"\n{CONTROL_TAG}" if (r.x, r.y) in controls else "")
                        for r in rows])
    ax.set_ylim(-0.6, n - 0.4)
    ax.axvline(0.5, color="grey", ls="--", lw=1, zorder=0)
    ax.grid(axis="x", alpha=0.3)
    # a little past 0 and 1: an interval of [1, 1] or [0, 0] has no width
    ax.set_xlim(-0.04, 1.04)
    ax.text(1.02, n - 0.4, "P [95% CI]", transform=ax.get_yaxis_transform(), ha="left",
            va="bottom", fontsize=7, fontweight="bold")
    ax.set_xlabel("Probability of improvement P(X > Y) (0.5 = no difference); bar colour: Y's"
                  + ("; hatched: a control, the same runs rerun" if controls & {(r.x, r.y) for r in rows}
                     else ""))
    style.finish(fig, f"{suite_name(suite)}: probability of improvement\n{style.ci}",
                 set(p["x"]) | set(p["y"]), lines=False)
    fig.tight_layout()
    return save(fig, out, f"poi_{file_key(suite)}")


def steps_axis(ax, max_step: float) -> str:
    """Tick the x axis in thousands or millions of steps (no matplotlib "1e6" offset in
    the corner, which reads as part of the last tick) and return the axis label."""
    if max_step < 1e4:
        return "Agent environment steps"
    scale, word = (1e6, "millions") if max_step >= 1e6 else (1e3, "thousands")
    ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda x, _: f"{x / scale:g}"))
    return f"Agent environment steps ({word})"


def zoom_budget(cur: pd.DataFrame) -> int | None:
    """The smallest variant's last step where the variants' ranges differ by 2x or more
    (MPO at 100k beside 1M-step learners draws as a smudge in the corner of the whole
    range), else None. `cur`: one suite's curve rows (variant, step)."""
    ends = cur.groupby("variant")["step"].max()
    return int(ends.min()) if len(ends) > 1 and ends.max() >= 2 * ends.min() else None


def curve_figure(cur: pd.DataFrame, suite: str, style: Style, out: Path) -> list[str]:
    """IQM against agent steps with bands: curves_<suite>. Where the variants' budgets
    differ 2x or more (`zoom_budget`), a second panel draws every variant over the
    smallest budget's range, where all of them were evaluated."""
    c = cur[cur["suite"] == suite]
    zoom = zoom_budget(c)
    panels = [None] if zoom is None else [None, zoom]
    n_var = c["variant"].nunique()
    fig, axes = plt.subplots(1, len(panels), figsize=(5.4 + 3.6 * (len(panels) - 1),
                                                      3.9 + 0.12 * n_var),
                             squeeze=False, layout="constrained")
    fs = sorted(set((c["frames"] // c["step"].where(c["step"] > 0)).dropna().astype(int)))
    for ax, limit in zip(axes[0], panels):
        # an evaluation lands at the first rollout boundary past its step: up to a
        # rollout (a few %) past the budget
        part = c if limit is None else c[c["step"] <= 1.05 * limit]
        for v in order(part["variant"]):
            g = part[part["variant"] == v]
            col = style.colour[v]
            ax.plot(g["step"], g["point"], color=col, ls=style.ls[v], lw=1.5, marker="o", ms=2.5,
                    label=style.label(v, g["n_runs"].iloc[0], suite))
            ax.fill_between(g["step"], g["lower"], g["upper"], color=col, alpha=0.2, lw=0)
        unit = steps_axis(ax, part["step"].max())
        if len(fs) == 1 and fs[0] > 1:
            unit += f" (frames = steps x {fs[0]})"
        ax.set_xlabel(unit)
        ax.grid(alpha=0.3)
        if zoom is not None:
            ax.set_title("whole budgets" if limit is None else
                         f"first {steps_text(limit)} steps (every variant)", fontsize=10)
    axes[0][0].set_ylabel(iqm_label(suite))
    legend_below(fig, *axes[0][0].get_legend_handles_labels())
    style.finish(fig, f"{suite_name(suite)}: sample efficiency\n{style.ci}", set(c["variant"]))
    return save(fig, out, f"curves_{file_key(suite)}")


def per_env_curve_figure(pe: pd.DataFrame, suite: str, style: Style, out: Path) -> list[str]:
    """Raw eval return against agent steps, one panel per env: each run a thin line and
    each variant's mean over its seeds a thick one, in the variant's colour and line
    style (seed_curves.table rows): curves_per_env_<suite>. No interval: the seeds are
    the spread (a bimodal env, a collapsed seed show here, not in the pooled IQM)."""
    c = pe[pe["suite"] == suite]
    envs = sorted(set(c["env"]))
    if not envs:
        return []
    cols = min(4, int(np.ceil(np.sqrt(len(envs)))))  # 4 envs: 2 x 2, panels wide enough
    rows_ = -(-len(envs) // cols)
    n_var = c["variant"].nunique()
    fig, axes = plt.subplots(rows_, cols, figsize=(max(4.2 * cols, 6.4), 3.0 * rows_ + 1.4
                                                   + 0.12 * n_var),
                             squeeze=False, layout="constrained")
    variants = order(c["variant"])
    handles: dict[str, object] = {}
    for ax, env in zip(axes.ravel(), envs):
        e = c[c["env"] == env]
        for v in variants:
            g = e[e["variant"] == v]
            if g.empty:
                continue
            col, ls = style.colour[v], style.ls[v]
            seeds = g[g["kind"] == "seed"]
            for _, r in seeds.groupby("seed", sort=True):
                ax.plot(r["step"], r["eval_return"], color=col, ls=ls, lw=0.6, alpha=0.55,
                        gid="seed")
            m = g[g["kind"] == "mean"]
            (h,) = ax.plot(m["step"], m["eval_return"], color=col, ls=ls, lw=1.9, gid="mean")
            handles.setdefault(v, h)
        ax.set_title(env)
        ax.set_xlabel(steps_axis(ax, e["step"].max()))
        ax.grid(alpha=0.3)
    for ax in axes[:, 0]:
        ax.set_ylabel("Eval return (raw)")
    for ax in axes.ravel()[len(envs):]:
        ax.axis("off")
    runs = c[c["kind"] == "seed"].drop_duplicates(["env", "variant", "seed"])
    n_runs = runs.groupby("variant").size()  # seeds x envs, as the aggregates count them
    legend_below(fig, [handles[v] for v in variants if v in handles],
                 [style.label(v, n_runs.get(v, 0), suite) for v in variants if v in handles],
                 title="variant (runs); thick: the mean over seeds, thin: one seed each")
    style.finish(fig, f"{suite_name(suite)}: eval return per env, every seed and each "
                      "variant's mean (raw returns, no interval)", variants)
    return save(fig, out, f"curves_per_env_{file_key(suite)}")


def short_env(env: str) -> str:
    """"Walker2d-v5" -> "Walker2d"; "ALE/Pong-v5" -> "Pong"."""
    return re.sub(r"-v\d+$", "", env.rsplit("/", 1)[-1])


def ablation_groups(a: pd.DataFrame, envs: dict | None = None) -> list[dict]:
    """One suite's ablation rows (aggregate.ablation_table) as the figure draws them: a
    group per comparison (full V-MPO, the envs compared), each {full, lo, hi, point, n,
    n_tasks, envs, rows}; groups ordered by (label, full, most envs first), each group's
    ablations by `order`. envs: (suite, ablation) -> the envs compared, where known."""
    envs = envs or {}
    out: dict[tuple, dict] = {}
    for r in a.itertuples(index=False):
        shared = tuple(envs.get((r.suite, r.variant), ()))
        key = (r.full, shared or int(r.n_tasks), r.full_point, r.full_n_runs)
        g = out.setdefault(key, {"full": r.full, "point": r.full_point, "lo": r.full_lower,
                                 "hi": r.full_upper, "n": r.full_n_runs,
                                 "n_tasks": int(r.n_tasks), "envs": list(shared), "rows": []})
        g["rows"].append(r)
    groups = sorted(out.values(), key=lambda g: (label_of(g["full"]), base(g["full"]),
                                                 -g["n_tasks"], g["envs"]))
    for g in groups:
        rank = {v: i for i, v in enumerate(order(r.variant for r in g["rows"]))}
        g["rows"].sort(key=lambda r: rank[r.variant])
    return groups


def ablation_figure(ab: pd.DataFrame, style: Style, out: Path, envs: dict | None = None,
                    studies: dict[str, str] | None = None) -> list[str]:
    """Each ablation's IQM beside its full V-MPO's on the envs the two share, one panel
    per suite: ablation. A group of bars per comparison (`ablation_groups`): the full
    V-MPO first, labelled with that comparison's envs (its n_tasks, not the suite's), its
    interval shaded across the group, then its ablations; groups apart by a thin line and
    captioned with their study (`studies`: full V-MPO -> sweep name, else its label) and
    their envs (`envs`: (suite, ablation) -> envs compared, else their number)."""
    suites = sorted(set(ab["suite"]))
    per = {s: ablation_groups(ab[ab["suite"] == s], envs) for s in suites}
    bars = max(sum(1 + len(g["rows"]) for g in gs) for gs in per.values())
    width = max(4.8, 1.1 * bars + 1.4)
    fig, axes = plt.subplots(1, len(suites), figsize=(width * len(suites), 4.2), squeeze=False)
    shaded = False
    for ax, suite in zip(axes[0], suites):
        x, ticks, top = 0, [], 0.0
        for j, g in enumerate(per[suite]):
            entries = [(g["full"], g["point"], g["lo"], g["hi"], g["n"])] + [
                (r.variant, r.point, r.lower, r.upper, r.n_runs) for r in g["rows"]]
            x0 = x
            for nm, pt, lo, hi, n in entries:
                ax.bar(x, pt, color=style.colour[nm], alpha=0.8, width=0.6)
                ax.errorbar(x, pt, yerr=[[pt - lo], [hi - pt]], color="black", capsize=3, lw=1)
                ticks.append((x, style.label(nm, n, suite, sep="\n", n_envs=g["n_tasks"])))
                top = max(top, hi if np.isfinite(hi) else pt)
                x += 1
            if np.isfinite(g["lo"]) and np.isfinite(g["hi"]):
                ax.fill_between([x0 - 0.45, x - 0.55], g["lo"], g["hi"], lw=0, alpha=0.15,
                                color=style.colour[g["full"]], zorder=0)
                shaded = True
            if j:
                ax.axvline(x0 - 0.75, color="grey", lw=0.8)
            lab = label_of(g["full"])
            name = (studies or {}).get(g["full"])
            head = (f"{name} (@{lab})" if name and lab else name or
                    (f"@{lab}" if lab else "unlabelled"))
            where = (", ".join(short_env(e) for e in g["envs"]) if g["envs"] else
                     f"{g['n_tasks']} env{'s' if g['n_tasks'] != 1 else ''}")
            ax.text((x0 + x - 1) / 2, 0.98, f"{head}\n{where}", ha="center", va="top",
                    fontsize=7, transform=ax.get_xaxis_transform(), wrap=True)
            x += 0.5  # a gap between groups
        ax.set_ylim(top=top * 1.3 if top > 0 else None)
        ax.set_xticks([t for t, _ in ticks])
        ax.set_xticklabels([t for _, t in ticks], rotation=30, ha="right", fontsize=7)
        ax.set_ylabel(iqm_label(suite))
        ax.set_title(suite_name(suite))
        ax.grid(axis="y", alpha=0.3)
    one = all(len(gs) == 1 for gs in per.values())
    shade = ("" if not shaded else "shaded: full V-MPO's interval; " if one else
             "shaded: each group's full V-MPO interval; ")
    style.finish(fig, "V-MPO ablations: IQM of final scores beside full V-MPO on the envs "
                      f"both ran\n{shade}{style.ci}", set(ab["variant"]) | set(ab["full"]),
                 lines=False)
    fig.tight_layout()
    return save(fig, out, "ablation")


_DUAL_TITLES = {"dual/eta": "temperature η", "dual/alpha_mu": "α_μ (mean KL)",
                "dual/alpha_sigma": "α_Σ (covariance KL)", "dual/alpha": "α (KL)",
                "kl/mean": "KL, mean part", "kl/std": "KL, covariance part", "kl": "KL"}


def _at_floor_strips(ax, d: pd.DataFrame, variants: list[str], style: Style,
                     floors: dict[str, float]) -> None:
    """Under an alpha panel's lowest floor line, a strip per variant (its colour and line
    style) over the spans whose median alpha sits on its own floor (`floors`: variant ->
    its runs' dual_min): several variants on the floor draw one line over another, and
    the strips show whose spans they are."""
    at = [(v, d[d["variant"] == v]) for v in variants]
    at = [(v, g) for v, g in at if (g["median"] <= 1.5 * floors[v]).any()]
    low = min(floors.values())
    for k, (v, g) in enumerate(at):
        y = low / 10 ** (0.4 * (k + 1))
        on = np.where(g["median"] <= 1.5 * floors[v], y, np.nan)
        ax.plot(g["step"], on, color=style.colour[v], ls=style.ls[v], lw=2.2, marker="s",
                ms=2, solid_capstyle="butt", zorder=1.5, gid="floor-strip")
    if at:
        ax.set_ylim(bottom=low / 10 ** (0.4 * (len(at) + 1)))


def _floor_text(floors: dict[str, float]) -> str:
    """"1e-08 floor" where every variant drawn has one floor, else each floor with its
    variants."""
    by: dict[float, list[str]] = {}
    for v in order(floors):
        by.setdefault(floors[v], []).append(v)
    if len(by) == 1:
        return f"{next(iter(by)):g} floor"
    return "floors (dual_min) " + "; ".join(f"{f:g}: {', '.join(vs)}" for f, vs in sorted(by.items()))


def duals_figure(tr: pd.DataFrame, suite: str, style: Style, out: Path,
                 bounds: dict[str, dict[str, float]] | None = None,
                 floors: dict[str, float] | None = None) -> list[str]:
    """V-MPO's duals and KLs against agent env steps (median and quartiles over runs of
    each span's mean of the values logged per learner step: duals.traces), one panel per
    metric, log scale: duals_<suite>. `bounds`: variant -> metric -> its epsilon, drawn
    dashed (black for one variant, else in each variant's colour), named in the title and
    inside each panel's y range (a loose bound above the data stays on the axis). The
    floor lines (`floors`: variant -> its runs' dual_min, duals.dual_floor; DUAL_MIN where
    not given) go under the data, and `_at_floor_strips` marks whose alpha is on its own."""
    bounds = {v: b for v, b in (bounds or {}).items() if b}
    d = tr[tr["suite"] == suite]
    variants = order(d["variant"])
    floors = {v: (floors or {}).get(v, DUAL_MIN) for v in variants}
    metrics = [m for m in _DUAL_TITLES if (d["metric"] == m).any()]
    cols = min(3, len(metrics))
    rows_ = -(-len(metrics) // cols)
    fig, axes = plt.subplots(rows_, cols, figsize=(3.3 * cols + 1.8, 2.6 * rows_ + 0.6),
                             squeeze=False)
    for ax, m in zip(axes.ravel(), metrics):
        dm = d[d["metric"] == m]
        for v in order(dm["variant"]):
            g = dm[dm["variant"] == v]
            c = style.colour[v]
            ax.plot(g["step"], g["median"], color=c, ls=style.ls[v], lw=1.4, label=style.label(v, g["n_runs"].max(), suite))
            ax.fill_between(g["step"], g["q25"], g["q75"], color=c, alpha=0.2, lw=0)
        ax.set_yscale("log")
        lo, hi = ax.get_ylim()
        for v, b in bounds.items():
            if m in b:
                ax.axhline(b[m], color="black" if len(bounds) == 1 else style.colour[v],
                           ls="--", lw=1, zorder=1)
                lo, hi = min(lo, b[m] / 1.5), max(hi, b[m] * 1.5)
        if m.startswith("dual/alpha"):
            lo = min(lo, min(floors.values()) / 1.5)
        ax.set_ylim(lo, hi)
        if m.startswith("dual/alpha"):
            for f in sorted(set(floors.values())):
                ax.axhline(f, color="grey", ls=":", lw=1, zorder=0.5)
            _at_floor_strips(ax, dm, order(dm["variant"]), style, floors)
        ax.set_title(_DUAL_TITLES[m])
        ax.set_xlabel(steps_axis(ax, d["step"].max()))
        ax.grid(alpha=0.3)
    for ax in axes.ravel()[len(metrics):]:
        ax.axis("off")
    handles, labels = axes.ravel()[0].get_legend_handles_labels()
    fig.legend(handles, labels, title="variant (runs)", frameon=False, loc="upper left",
               bbox_to_anchor=(1.0, 0.9))
    dashed = ("" if not bounds else f"\ndashed: {next(iter(bounds))}'s KL bound ε"
              if len(bounds) == 1 else
              "\ndashed: the KL bounds ε of " + ", ".join(order(bounds)) + " in their colours")
    style.finish(fig, f"{suite_name(suite)}: V-MPO's duals and KLs against agent env steps\n"
                      "(median, quartiles over runs of each span's mean over its learner steps)"
                      f"\ndotted grey: the duals' {_floor_text(floors)}; under it, a strip "
                      f"per variant over the spans where it sits on its floor{dashed}", variants)
    fig.tight_layout()
    return save(fig, out, f"duals_{file_key(suite)}")


_DIAG_PANELS = (
    ("policy/std", "policy std (mean over action dims)", "linear"),
    ("policy/entropy", "policy entropy (nats)", "linear"),
    ("kl/step", "KL(π_before ‖ π_after) per update\n(one update: see below)", "log"),
)
ALGO_NAMES = {"ppo": "PPO", "trpo": "TRPO", "vmpo": "V-MPO", "mpo": "MPO"}


def _legend_entries(axes) -> tuple[list, list[str]]:
    """The handles and labels of every panel, each label once (a variant missing from the
    first panel still gets its entry)."""
    seen: dict[str, object] = {}
    for ax in axes:
        for h, t in zip(*ax.get_legend_handles_labels()):
            seen.setdefault(t, h)
    return list(seen.values()), list(seen)


def diagnostics_figure(tr: pd.DataFrame, suite: str, style: Style, out: Path,
                       algos: dict[str, str] | None = None,
                       updates: dict[str, str] | None = None) -> list[str]:
    """Every learner's policy width and step size over training (median and quartiles over
    runs): diagnostics_<suite>. In the KL panel each variant's `kl/allowed` (TRPO's
    max_kl), where logged, is drawn dashed in its colour. The title names the learners
    drawn (`algos`: variant -> algo); under the panels, what one update is for each
    variant (`updates`: variant -> duals.update_text), the unit of the KL panel: PPO's
    update is its epochs over a rollout, V-MPO's a learner step over its batch, MPO's one
    gradient step, so the panel compares unlike steps."""
    d = tr[tr["suite"] == suite]
    panels = [p for p in _DIAG_PANELS if (d["metric"] == p[0]).any()]
    if not panels:
        return []
    fig, axes = plt.subplots(1, len(panels), figsize=(3.4 * len(panels) + 1.8, 3.2), squeeze=False)
    drawn: list[str] = []
    allowed_by: list[str] = []
    in_any = set(d.loc[d["metric"].isin([p[0] for p in panels]), "variant"])
    for ax, (m, title, scale) in zip(axes.ravel(), panels):
        dm = d[d["metric"] == m]
        missing = order(in_any - set(dm["variant"]))
        if missing:  # say so, lest a reader take a missing line for one hidden under another
            ax.text(0.98, 0.97, "not logged by\n" + "\n".join(missing), transform=ax.transAxes,
                    ha="right", va="top", fontsize=7, color="0.35")
        for v in order(dm["variant"]):
            g = dm[dm["variant"] == v]
            drawn.append(v)
            c = style.colour[v]
            ax.plot(g["step"], g["median"], color=c, ls=style.ls[v], lw=1.4, label=style.label(v, g["n_runs"].max(), suite))
            ax.fill_between(g["step"], g["q25"], g["q75"], color=c, alpha=0.2, lw=0)
            if m == "kl/step":
                allowed = d[(d["metric"] == "kl/allowed") & (d["variant"] == v)]
                if len(allowed):
                    ax.plot(allowed["step"], allowed["median"], color=c, ls="--", lw=1)
                    allowed_by.append(v)
        ax.set_yscale(scale)
        ax.set_title(title)
        ax.set_xlabel(steps_axis(ax, d["step"].max()))
        ax.grid(alpha=0.3)
    fig.legend(*_legend_entries(axes.ravel()), title="variant (runs)", frameon=False,
               loc="upper left", bbox_to_anchor=(1.0, 0.9))
    drawn = order(drawn)
    present = {(algos or {}).get(v) for v in drawn} - {None}
    names = [ALGO_NAMES[a] for a in ALGO_NAMES if a in present] + sorted(present - set(ALGO_NAMES))
    who = ", ".join(names) if names else f"{len(drawn)} variant{'s' if len(drawn) != 1 else ''}"
    dashed = ("" if not allowed_by else
              f"\ndashed: the KL an update was allowed ({', '.join(allowed_by)}: TRPO's max_kl)")
    style.finish(fig, f"{suite_name(suite)}: policy width and step size of {who} (median, "
                      f"quartiles over runs){dashed}", drawn)
    fig.tight_layout()
    if updates and any(p[0] == "kl/step" for p in panels):
        kl_drawn = order(d.loc[d["metric"] == "kl/step", "variant"])
        by_text: dict[str, list[str]] = {}
        for v in kl_drawn:
            if updates.get(v):
                by_text.setdefault(updates[v], []).append(v)
        lines = [f"{', '.join(vs)}: {t}" for t, vs in by_text.items()]
        if lines:
            fig.text(0.01, -0.02, "One update (KL panel) of\n" + "\n".join(lines),
                     ha="left", va="top", fontsize=7)
    return save(fig, out, f"diagnostics_{file_key(suite)}")
