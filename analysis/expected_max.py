"""Expected best score against configurations tried, and its held-out twin.

Did a tuning budget of N configurations saturate? Dodge, Gururangan, Card, Schwartz &
Smith, "Show Your Work: Improved Reporting of Experimental Results", EMNLP-IJCNLP 2019,
pp. 2185-2194 (ACL Anthology D19-1224, arXiv:1909.03004): report the expected maximum
validation score of n hyperparameter assignments, for n = 1..N, estimated from the N
observed trials by drawing n of them with replacement from their empirical distribution.
With v_(1) <= ... <= v_(N) the trial scores sorted ascending, the maximum of n such draws
is <= v_(i) with probability (i/N)^n, so

    E[max_n] = sum_i v_(i) * ((i/N)^n - ((i-1)/N)^n)                          (1)

Checked (session search, 2026): the title, authors, venue and pages against the ACL
Anthology page of D19-1224 and arXiv:1909.03004; equation (1) against the authors' code
(github.com/dodgejesse/show_your_work, `expected_max_performance.samplemax`: the CDF of the
max `(i/N)**n` over the sorted scores, its differences the weights, "this implementation
assumes sampling with replacement for computing the empirical cdf") and its README
(n = 1 is the mean of the N scores; meant for n <= N, not to forecast beyond; assumes the
trials are i.i.d. draws, as random search makes them). The paper's own equation text was
not in the stored sources; the abstract and the code were. Tied scores need no rule in
(1): a tied block's weights sum to the block's share whatever order it is sorted in.

Caveats a reader should know. (1) is the plug-in estimate: Tang et al., "Showing Your
Work Doesn't Always Work" (ACL 2020) show it is biased low near n = N (at n = N the draws
repeat trials: E[max_16] is below the best of 16, which 16 draws with replacement include
with probability 1 - (15/16)^16 = 0.64). Here the trials are not i.i.d.: trial c00 is the
defaults and the others a scrambled Sobol (or LHS) design (`sweeps/tuning.py`); the curve
treats them as one sample of the search space. It carries no interval.

The held-out twin (`expected_selected`). In-sample, the best of n is scored on the seeds
that picked it, so where selection is noisy the curve rises with n partly on noise (the
winner's curse). Split the tuning seeds into halves A and B (as
`analysis.tuning_reliability.seed_halves` does: the first len // 2 sorted seeds, the rest), pick
the best of n draws by its score on A and report its score on B. With the same draws
with replacement, the pick's A score is the draws' maximum, so (1) holds with A's weights
applied to B's values; where trials tie on A, each member of the tied block is as likely
to be the pick (the draws are exchangeable), so B is averaged over the block:

    E[B of argmax_n A] = sum_k mean(B | A = a_k) * (F_A(a_k)^n - F_A(a_k-)^n)   (2)

over the distinct A values a_k, F_A the empirical CDF of A. `curves` averages (2) over
both directions (pick on A, report B; pick on B, report A). Selection that is pure noise
gives a flat curve at the mean (in expectation; exactly flat where A is constant);
selection that is reliable (B a rising function of A) gives (1) on B. The held-out curve
picks on one half of the seeds, a noisier pick than the protocol's (all tuning seeds), so
it understates what the protocol's selection holds on fresh seeds;
`expected_best_half` is the in-sample curve with the same one-half noise, its direct
counterpart.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from analysis.tuning_reliability import seed_halves

CURVE_COLUMNS = ["variant", "n", "configurations", "expected_best", "expected_best_half",
                 "expected_selected", "defaults", "seeds_a", "seeds_b"]
REPORT_N = (1, 4, 8)  # the budgets `lines` names, then N


def _scores(x, name: str) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 1 or not len(a):
        raise ValueError(f"{name}: a non-empty 1-D array of scores is needed, got shape {a.shape}")
    if not np.isfinite(a).all():
        raise ValueError(f"{name}: scores must be finite (leave unscored trials out), "
                         f"got {int((~np.isfinite(a)).sum())} NaN/inf of {len(a)}")
    return a


def _budgets(n) -> np.ndarray:
    ns = np.atleast_1d(np.asarray(n))
    if ns.ndim != 1 or not np.issubdtype(ns.dtype, np.integer) or (ns < 1).any():
        raise ValueError(f"n: whole numbers of configurations >= 1 are needed, got {n!r}")
    return ns.astype(np.float64)


def expected_selected(select_on: np.ndarray, report: np.ndarray, n: int | np.ndarray
                      ) -> float | np.ndarray:
    """Equation (2): the expected `report` value ([N]) of the trial with the highest
    `select_on` value ([N]) among n draws with replacement from the N trials; a tie on
    `select_on` averages `report` over the tied trials. n: an int (-> float) or an array
    of ints >= 1 (-> an array of that shape)."""
    a, b = _scores(select_on, "select_on"), _scores(report, "report")
    if len(a) != len(b):
        raise ValueError(f"select_on and report: one value per trial each, got {len(a)} and "
                         f"{len(b)}")
    ns = _budgets(n)
    _, block, counts = np.unique(a, return_inverse=True, return_counts=True)  # a ascending
    mean_b = np.bincount(block, weights=b) / counts
    upto = np.cumsum(counts)  # trials with A <= a_k; (upto - counts) with A < a_k
    hi, lo = upto / len(a), (upto - counts) / len(a)
    out = (hi[None, :] ** ns[:, None] - lo[None, :] ** ns[:, None]) @ mean_b
    return float(out[0]) if np.ndim(n) == 0 else out.reshape(np.shape(n))


def expected_max(values: np.ndarray, n: int | np.ndarray) -> float | np.ndarray:
    """Equation (1), Dodge et al. (2019): the expected maximum of n draws with replacement
    from `values` ([N]): the mean at n = 1, the maximum as n grows."""
    return expected_selected(values, values, n)


def _two_way(a: np.ndarray, b: np.ndarray, n: np.ndarray, held_out: bool) -> np.ndarray:
    """Averaged over the two directions: picked on a, reported on b (held_out) or on a."""
    return 0.5 * (expected_selected(a, b if held_out else a, n)
                  + expected_selected(b, a if held_out else b, n))


def curves(ts: pd.DataFrame, seed_scores: pd.DataFrame) -> pd.DataFrame:
    """Per tuned variant and n = 1..N (N its scored trials, `trial_scores`' finite
    `score`): `expected_best` ((1) on the trial scores), `expected_best_half` ((1) on one
    seed half's scores, both directions averaged), `expected_selected` ((2): picked on
    one half of the seeds, reported on the other, both directions averaged; from
    `per_seed_scores`), `defaults` (trial 0's score, NaN if unscored), `seeds_a`,
    `seeds_b` (the halves, "1000" and "1001"). The two seed-half columns are NaN for a
    variant with one tuning seed. Variants with no scored trial are left out."""
    rows = []
    for variant, g in ts.groupby("variant", sort=True):
        scored = g[np.isfinite(g["score"].to_numpy(dtype=np.float64))]
        if scored.empty:
            continue
        n = np.arange(1, len(scored) + 1)
        best = expected_max(scored["score"].to_numpy(dtype=np.float64), n)
        d = scored.loc[scored["trial"] == 0, "score"]
        split = seed_halves(seed_scores[seed_scores["variant"] == variant])
        if split is None:
            half = sel = np.full(len(n), np.nan)
            sa = sb = ""
        else:
            a_seeds, b_seeds, a, b = split
            a, b = a.to_numpy(dtype=np.float64), b.to_numpy(dtype=np.float64)
            half, sel = _two_way(a, b, n, held_out=False), _two_way(a, b, n, held_out=True)
            sa, sb = ", ".join(map(str, a_seeds)), ", ".join(map(str, b_seeds))
        rows.append(pd.DataFrame({
            "variant": variant, "n": n, "configurations": len(n), "expected_best": best,
            "expected_best_half": half, "expected_selected": sel,
            "defaults": float(d.iloc[0]) if len(d) else np.nan, "seeds_a": sa, "seeds_b": sb}))
    return (pd.concat(rows, ignore_index=True)[CURVE_COLUMNS] if rows
            else pd.DataFrame(columns=CURVE_COLUMNS))


def figure(curves: pd.DataFrame, out: Path, criterion: str) -> list[str]:
    """tuning_expected_max (.png, .pdf): one axis, x = configurations tried n (log 2),
    y = expected trial score; per variant (its report colour) a solid line (in-sample
    expected best, (1)), a dashed line (held-out, (2)) and a dotted horizontal line at its
    defaults. [] when `curves` is empty."""
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    from analysis.plots import Style, legend_below, order, save

    if curves.empty:
        return []
    variants = order(curves["variant"])
    colour = Style(variants, 0, None).colour
    fig, ax = plt.subplots(figsize=(5.6, 4.6), layout="constrained")
    handles, labels = [], []
    for v in variants:
        g = curves[curves["variant"] == v].sort_values("n")
        c = colour[v]
        ax.plot(g["n"], g["expected_best"], color=c, lw=1.8, marker="o", ms=3)
        if np.isfinite(g["expected_selected"]).any():
            ax.plot(g["n"], g["expected_selected"], color=c, lw=1.8, ls="--", marker="o",
                    ms=3, markerfacecolor="white")
        if np.isfinite(g["defaults"].iloc[0]):
            ax.axhline(g["defaults"].iloc[0], color=c, lw=1.0, ls=":")
        handles.append(Line2D([], [], color=c, lw=6))
        labels.append(f"{v} ({int(g['configurations'].iloc[0])} configurations"
                      + (f", seed halves {g['seeds_a'].iloc[0]} | {g['seeds_b'].iloc[0]})"
                         if g["seeds_a"].iloc[0] else ")"))
    for ls, mfc, text in (("-", None, "in-sample: expected best of n (trial score: mean over "
                           "every tuning seed)"),
                          ("--", "white", "held-out: picked on one seed half, scored on the "
                           "other (both ways averaged)"),
                          (":", None, "defaults (trial c00)")):
        handles.append(Line2D([], [], color="0.3", lw=1.5, ls=ls,
                              marker="o" if mfc or ls == "-" else None, ms=3,
                              markerfacecolor=mfc))
        labels.append(text)
    n_max = int(curves["n"].max())
    ax.set_xscale("log", base=2)
    ticks = sorted({2 ** k for k in range(int(np.log2(n_max)) + 1)} | {n_max})
    ax.set_xticks(ticks, [str(t) for t in ticks])
    ax.minorticks_off()
    ax.set_xlabel("configurations tried n (drawn with replacement from the trials)")
    ax.set_ylabel(f"expected trial score ({criterion}, normalised)")
    ax.grid(alpha=0.3)
    ax.set_title("Expected best trial score against configurations tried\n(Dodge et al. "
                 "2019; no interval: point estimates from the trials)")
    legend_below(fig, handles, labels, title="variant (colour); estimate (line style)")
    return save(fig, out, "tuning_expected_max")


def _at(s: pd.Series, ns: list[int]) -> str:
    return " / ".join(f"{s[k]:.3f}" for k in ns)


def lines(curves: pd.DataFrame) -> list[str]:
    """The report's part on the curves: one table row per variant (its defaults, the
    in-sample expected best and the held-out value at n = 1, 4, 8, N, and what the last
    doubling of n adds to each), then how to read it."""
    from analysis import tables

    if curves.empty:
        return []
    rows, below = [], []
    for v, g in curves.groupby("variant", sort=True):
        big = int(g["configurations"].iloc[0])
        ns = [k for k in REPORT_N if k < big] + [big]
        best = g.set_index("n")["expected_best"]
        sel = g.set_index("n")["expected_selected"]
        held = bool(np.isfinite(sel).all())
        d = g["defaults"].iloc[0]
        rows.append({
            "variant": f"`{v}`", "N": big, "defaults": f"{d:.3f}" if np.isfinite(d) else "-",
            "n": ", ".join(map(str, ns)), "expected best": _at(best, ns),
            "held-out": _at(sel, ns) if held else "- (one seed)",
            "last doubling": (f"{best[big] - best[big // 2]:+.3f} / "
                              + (f"{sel[big] - sel[big // 2]:+.3f}" if held else "-"))
            if big >= 2 else "-"})
        if held and np.isfinite(d) and (sel < d).all():
            below.append(f"`{v}`")
    return ["The expected best trial score of n configurations drawn at random (with "
            "replacement) from each variant's N scored trials (Dodge et al., EMNLP 2019), "
            "beside its held-out twin: the best of the n picked by its score on one half of "
            "the tuning seeds and scored on the other half, averaged over both directions "
            "(`tuning_expected_max`; `last doubling`: from n = N/2 to N, in-sample / "
            "held-out).", "", tables.to_markdown(pd.DataFrame(rows)),
            "How to read it: an in-sample curve still rising over its last doubling says "
            "more configurations of the same design would be expected to score higher on "
            "these seeds; a flat end says the budget saturated them. The held-out curve says "
            "how much of that rise a pick carries to unseen seeds: flat at its n = 1 value "
            "where selection is seed noise (in expectation), following the in-sample curve "
            "where it is reliable, falling where the trials best on one half score below "
            "the mean on the other. It picks on one seed half, a noisier pick than the "
            "selection's (every tuning seed), and its last points repeat trials (draws with "
            "replacement: below the observed best at n = N); point estimates, no interval."
            + (" Held-out below the defaults' score at every n: " + ", ".join(below)
               + " (in these point estimates, a pick made on one seed half scores below the "
               "defaults on the other)." if below else ""),
            ""]
