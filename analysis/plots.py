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
from analysis.labels import base
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


LABELLED_TINT = 0.5  # a labelled variant's colour: its base's, this far towards white


def _tint(rgba, w: float):
    return tuple(c + (1.0 - c) * w for c in rgba[:3]) + tuple(rgba[3:])


class Style:
    """Colours per variant (fixed over every report: `variant_colours`), the interval
    text and the banner."""

    def __init__(self, variants: list[str], reps: int, incomplete: str | None,
                 mixed: dict[str, dict[str, list[int]]] | None = None,
                 env_counts: dict[str, dict[str, int]] | None = None):
        cmap = plt.get_cmap("tab10")
        self.colour = {v: cmap(i % 10) if v == base(v) else _tint(cmap(i % 10), LABELLED_TINT)
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

    def label(self, variant: str, n_runs, suite: str, sep: str = " ") -> str:
        """"variant (n=N)"; "variant (n=N, 300k steps)" where the variants' budgets
        differ in `suite` (the budgets `variant` ran in that suite, not in others);
        ", K envs" added where their numbers of envs there differ."""
        own = self.budget.get(suite, {})
        extra = f", {own[variant]} steps" if variant in own else ""
        k = self.envs.get(suite, {}).get(variant)
        extra += "" if k is None else f", {k} env{'s' if k != 1 else ''}"
        return f"{variant}{sep}(n={int(n_runs)}{extra})"

    def finish(self, fig, title: str) -> None:
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
    variants = sorted(set(a["variant"]))
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
    style.finish(fig, f"{suite_name(suite)}: aggregate {what}, {style.ci}")
    fig.tight_layout()
    return save(fig, out, f"aggregate_{file_key(suite)}")


def profile_figure(prof: pd.DataFrame, suite: str, style: Style, out: Path) -> list[str]:
    """Performance profiles with bands: profile_<suite>."""
    p = prof[prof["suite"] == suite]
    fig, ax = plt.subplots(figsize=(5.0, 3.4))
    for v, g in p.groupby("variant", sort=True):
        c = style.colour[v]
        ax.plot(g["tau"], g["point"], color=c, ls=style.ls[v], lw=1.5, label=style.label(v, g["n_runs"].iloc[0], suite))
        ax.fill_between(g["tau"], g["lower"], g["upper"], color=c, alpha=0.2, lw=0)
    ax.set_xlabel(f"Threshold τ: {score_label(suite).lower()}")
    ax.set_ylabel(f"Fraction of runs with {'return' if is_raw(suite) else 'score'} > τ")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(title="variant (runs)", frameon=False, loc="upper left",
              bbox_to_anchor=(1.01, 1))
    style.finish(fig, f"{suite_name(suite)}: performance profiles\n{style.ci}")
    fig.tight_layout()
    return save(fig, out, f"profile_{file_key(suite)}")


def poi_figure(poi: pd.DataFrame, suite: str, style: Style, out: Path) -> list[str]:
    """Probability of improvement with intervals: poi_<suite>."""
    p = poi[poi["suite"] == suite].drop_duplicates(["x", "y"])
    fig, ax = plt.subplots(figsize=(6.5, 0.45 * len(p) + 1.6))
    labels = [f"P({r.x} > {r.y})  ({int(r.n_x)} vs {int(r.n_y)} runs, {int(r.n_tasks)} "
              f"env{'s' if r.n_tasks != 1 else ''})"
              for r in p.itertuples(index=False)]
    ys = _intervals(ax, labels, p["point"], p["lower"], p["upper"],
                    [style.colour[y] for y in p["y"]])
    ax.axvline(0.5, color="grey", ls="--", lw=1)
    # a little past 0 and 1, and each estimate written out: an interval of [1, 1] or
    # [0, 0] has no width and would otherwise vanish into the frame
    ax.set_xlim(-0.04, 1.04)
    for yi, r in zip(ys, p.itertuples(index=False)):
        ax.scatter([r.point], [yi], color=style.colour[r.y], edgecolor="black", s=22, zorder=3)
        ax.annotate(f"{r.point:.2g}", (r.point, yi), xytext=(0, 12), textcoords="offset points",
                    va="bottom", ha="center", fontsize=7)
    ax.set_xlabel("Probability of improvement P(X > Y) (0.5 = no difference)")
    style.finish(fig, f"{suite_name(suite)}: probability of improvement\n{style.ci}")
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
    fig, axes = plt.subplots(1, len(panels), figsize=(5.4 + 3.6 * (len(panels) - 1), 3.8),
                             squeeze=False)
    fs = sorted(set((c["frames"] // c["step"].where(c["step"] > 0)).dropna().astype(int)))
    for ax, limit in zip(axes[0], panels):
        # an evaluation lands at the first rollout boundary past its step: up to a
        # rollout (a few %) past the budget
        part = c if limit is None else c[c["step"] <= 1.05 * limit]
        for v, g in part.groupby("variant", sort=True):
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
    axes[0][-1].legend(*axes[0][0].get_legend_handles_labels(), title="variant (runs)",
                       frameon=False, loc="upper left", bbox_to_anchor=(1.01, 1))
    style.finish(fig, f"{suite_name(suite)}: sample efficiency\n{style.ci}")
    fig.tight_layout()
    return save(fig, out, f"curves_{file_key(suite)}")


def ablation_figure(ab: pd.DataFrame, style: Style, out: Path) -> list[str]:
    """Each ablation's IQM beside full V-MPO's, one panel per suite: ablation."""
    suites = sorted(set(ab["suite"]))
    width = max(4.8, 1.1 * (1 + ab.groupby("suite").size().max()) + 1.4)
    fig, axes = plt.subplots(1, len(suites), figsize=(width * len(suites), 3.8), squeeze=False)
    for ax, suite in zip(axes[0], suites):
        a = ab[ab["suite"] == suite]
        f = a.iloc[0]
        # full V-MPO once, unless ablations run on fewer envs compare it on other env sets:
        # then a full V-MPO bar before each group of ablations that share its envs
        names, pts, los, his, ns = [], [], [], [], []
        for _, g in a.groupby(["full", "full_point", "full_n_runs", "n_tasks"], sort=False):
            h = g.iloc[0]
            for nm, rr in [(h["full"], (h["full_point"], h["full_lower"], h["full_upper"],
                                        h["full_n_runs"]))] + [
                    (r.variant, (r.point, r.lower, r.upper, r.n_runs)) for r in g.itertuples()]:
                names.append(nm)
                for lst, val in zip((pts, los, his, ns), rr):
                    lst.append(val)
        x = np.arange(len(names))
        if a["full"].nunique() == 1 and names.count(f["full"]) == 1:  # one full V-MPO bar
            ax.axhspan(f["full_lower"], f["full_upper"], color=style.colour[f["full"]],
                       alpha=0.12, lw=0)
        for xi, nm, p, lo, hi in zip(x, names, pts, los, his):
            ax.bar(xi, p, color=style.colour[nm], alpha=0.8, width=0.6)
            ax.errorbar(xi, p, yerr=[[p - lo], [hi - p]], color="black", capsize=3, lw=1)
        ax.set_xticks(x)
        ax.set_xticklabels([style.label(nm, n, suite, sep="\n") for nm, n in zip(names, ns)], rotation=30,
                           ha="right", fontsize=7)
        ax.set_ylabel(iqm_label(suite))
        ax.set_title(suite_name(suite))
        ax.grid(axis="y", alpha=0.3)
    style.finish(fig, f"V-MPO ablations: IQM of final scores beside full V-MPO\n"
                      f"(shaded: full V-MPO's interval), {style.ci}")
    fig.tight_layout()
    return save(fig, out, "ablation")


_DUAL_TITLES = {"dual/eta": "temperature η", "dual/alpha_mu": "α_μ (mean KL)",
                "dual/alpha_sigma": "α_Σ (covariance KL)", "dual/alpha": "α (KL)",
                "kl/mean": "KL, mean part", "kl/std": "KL, covariance part", "kl": "KL"}


def duals_figure(tr: pd.DataFrame, suite: str, style: Style, out: Path,
                 bounds: dict[str, dict[str, float]] | None = None) -> list[str]:
    """V-MPO's duals and KLs over training (median and quartiles over runs), one panel per
    metric, log scale: duals_<suite>. `bounds`: variant -> metric -> its epsilon, drawn
    dashed (black for one variant, else in each variant's colour) and named in the title."""
    bounds = {v: b for v, b in (bounds or {}).items() if b}
    d = tr[tr["suite"] == suite]
    metrics = [m for m in _DUAL_TITLES if (d["metric"] == m).any()]
    cols = min(3, len(metrics))
    rows_ = -(-len(metrics) // cols)
    fig, axes = plt.subplots(rows_, cols, figsize=(3.3 * cols + 1.8, 2.6 * rows_ + 0.6),
                             squeeze=False)
    for ax, m in zip(axes.ravel(), metrics):
        for v, g in d[d["metric"] == m].groupby("variant", sort=True):
            c = style.colour[v]
            ax.plot(g["step"], g["median"], color=c, ls=style.ls[v], lw=1.4, label=style.label(v, g["n_runs"].max(), suite))
            ax.fill_between(g["step"], g["q25"], g["q75"], color=c, alpha=0.2, lw=0)
        if m.startswith("dual/alpha"):
            ax.axhline(1e-8, color="grey", ls=":", lw=1)
        for v, b in bounds.items():
            if m in b:
                ax.axhline(b[m], color="black" if len(bounds) == 1 else style.colour[v],
                           ls="--", lw=1)
        ax.set_yscale("log")
        ax.set_title(_DUAL_TITLES[m])
        ax.set_xlabel(steps_axis(ax, d["step"].max()))
        ax.grid(alpha=0.3)
    for ax in axes.ravel()[len(metrics):]:
        ax.axis("off")
    handles, labels = axes.ravel()[0].get_legend_handles_labels()
    fig.legend(handles, labels, title="variant (runs)", frameon=False, loc="upper left",
               bbox_to_anchor=(1.0, 0.9))
    style.finish(fig, f"{suite_name(suite)}: V-MPO's duals and KLs per learner step (median, "
                      "quartiles over runs)\ndotted grey: the duals' 1e-8 floor; dashed: "
                      + (f"{next(iter(bounds))}'s KL bound ε" if len(bounds) == 1 else
                         "the KL bounds ε of " + ", ".join(bounds) + " in their colours"
                         if bounds else "the KL bound ε"))
    fig.tight_layout()
    return save(fig, out, f"duals_{file_key(suite)}")


_DIAG_PANELS = (
    ("policy/std", "policy std (mean over action dims)", "linear"),
    ("policy/entropy", "policy entropy (nats)", "linear"),
    ("kl/step", "KL(π_before ‖ π_after) per update", "log"),
)


def diagnostics_figure(tr: pd.DataFrame, suite: str, style: Style, out: Path) -> list[str]:
    """Every learner's policy width and step size over training (median and quartiles over
    runs): diagnostics_<suite>. In the KL panel each variant's `kl/allowed` (TRPO's max_kl),
    where logged, is drawn dashed in its colour."""
    d = tr[tr["suite"] == suite]
    panels = [p for p in _DIAG_PANELS if (d["metric"] == p[0]).any()]
    if not panels:
        return []
    fig, axes = plt.subplots(1, len(panels), figsize=(3.4 * len(panels) + 1.8, 3.0), squeeze=False)
    for ax, (m, title, scale) in zip(axes.ravel(), panels):
        for v, g in d[d["metric"] == m].groupby("variant", sort=True):
            c = style.colour[v]
            ax.plot(g["step"], g["median"], color=c, ls=style.ls[v], lw=1.4, label=style.label(v, g["n_runs"].max(), suite))
            ax.fill_between(g["step"], g["q25"], g["q75"], color=c, alpha=0.2, lw=0)
            if m == "kl/step":
                allowed = d[(d["metric"] == "kl/allowed") & (d["variant"] == v)]
                if len(allowed):
                    ax.plot(allowed["step"], allowed["median"], color=c, ls="--", lw=1)
        ax.set_yscale(scale)
        ax.set_title(title)
        ax.set_xlabel(steps_axis(ax, d["step"].max()))
        ax.grid(alpha=0.3)
    handles, labels = axes.ravel()[0].get_legend_handles_labels()
    fig.legend(handles, labels, title="variant (runs)", frameon=False, loc="upper left",
               bbox_to_anchor=(1.0, 0.9))
    style.finish(fig, f"{suite_name(suite)}: every learner's policy width and step size (median, "
                      "quartiles over runs)\ndashed: the KL an update was allowed (TRPO's max_kl)")
    fig.tight_layout()
    return save(fig, out, f"diagnostics_{file_key(suite)}")
