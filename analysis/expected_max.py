"""Expected best score against configurations tried (n <= N), and its split-seed twin.

How good is the best of n configurations drawn at random from the N tried? Dodge,
Gururangan, Card, Schwartz & Smith, "Show Your Work: Improved Reporting of Experimental
Results", EMNLP-IJCNLP 2019, pp. 2185-2194 (ACL Anthology D19-1224, arXiv:1909.03004):
report the expected maximum validation score of n hyperparameter assignments, for
n = 1..N, estimated from the N observed trials. With v_(1) <= ... <= v_(N) the trial
scores sorted ascending, they draw the n with replacement from the trials' empirical
distribution (the plug-in estimate): the maximum of n such draws is <= v_(i) with
probability (i/N)^n, so

    E[max_n] ~ sum_i v_(i) * ((i/N)^n - ((i-1)/N)^n)                            (1)

Tang, Lee, Xin, Liu, Yu & Lin, "Showing Your Work Doesn't Always Work", ACL 2020
(arXiv:2004.13705) show that (1) is biased and "favors negative errors", and derive an
unbiased alternative: draw the n without replacement, i.e. average the maximum over every
n-subset of the N trials. The maximum of an n-subset is <= v_(i) with probability
C(i, n) / C(N, n), so

    E[max_n] = sum_i v_(i) * (C(i, n) - C(i-1, n)) / C(N, n)                    (1')

a U-statistic (kernel: the max of n), unbiased for the expected best of n i.i.d. draws
from the trials' population; the mean at n = 1 and exactly the observed best at n = N.
(1') is the default here (`with_replacement=False`); (1) is kept as the CSV's
`expected_best_plugin`. (1) is never above (1'): C(i, n) / C(N, n) = prod_j<n (i-j)/(N-j)
<= (i/N)^n at every i, so its CDF of the max is lower; the gap is largest near n = N,
where (1)'s draws repeat trials (16 draws with replacement from 16 trials include the
best with probability 1 - (15/16)^16 = 0.64).

Checked (session search, 2026): Dodge et al.'s title, authors, venue and pages against the
ACL Anthology page of D19-1224 and arXiv:1909.03004; (1) against their code
(github.com/dodgejesse/show_your_work, `expected_max_performance.samplemax`: the CDF of the
max `(i/N)**n`, "this implementation assumes sampling with replacement") and README (n = 1
is the mean; for n <= N, not to forecast beyond N; assumes i.i.d. trials, as random search
makes them). Tang et al.: the authors and arXiv abstract (biased, "We derive an unbiased
alternative"); the venue ACL 2020 from the authors' README (github.com/castorini/meanmax,
"Implementations of the unbiased estimator"); (1') against their code:
`CorrectedMeanMaxEstimator.estimate_point`, which `meanmax/run/simulate.py --unbiased`
uses, weights the sorted sample by C(j-1, n-1) / C(B, n), and C(i, n) - C(i-1, n) =
C(i-1, n-1). The paper's own equation text was not in the stored sources; the abstract
and the code were. Ties need no rule in (1) or (1'): a tied block's weights telescope to
the same block total whatever order it is sorted in.

Caveats a reader should know. The trials are not i.i.d.: trial c00 is the defaults and
the others a scrambled Sobol (or LHS) design (`sweeps/tuning.py`); the curve treats them
as one sample of the search space. It says nothing about n > N. It carries no interval.

The split-seed twin (`expected_selected`). In-sample, the best of n is scored on the
seeds that picked it, so where selection is noisy the curve rises with n partly on noise
(the winner's curse). Split the tuning seeds into halves A and B (as
`analysis.tuning_reliability.seed_halves` does: the first len // 2 sorted seeds, the
rest), pick the best of n drawn trials by its score on A and report its score on B. The
pick's A score is the draws' maximum, so (1') (or (1)) holds with A's weights applied to
B's values; where trials tie on A, each member of the tied block is as likely to be the
pick (the draws are exchangeable), so B is averaged over the block:

    E[B of argmax_n A] = sum_k mean(B | A = a_k) * w_k(n)                       (2)

over the distinct A values a_k, with w_k(n) = (C(U_k, n) - C(U_k - c_k, n)) / C(N, n)
without replacement (U_k the trials with A <= a_k, c_k those with A = a_k), or
(U_k/N)^n - ((U_k - c_k)/N)^n with. The pick's tie rule is uniform over the tied trials,
unlike `best_of` (and `--phase select`), which gives a tie to the lowest trial; the two
differ only where trials tie exactly (a score ceiling). `curves` averages (2) over both
directions (pick on A, report B; pick on B, report A): with equal halves that cancels a
seed-level offset and puts the curve on the in-sample curve's level at n = 1. Selection
that is pure noise gives a flat curve at the mean (in expectation; exactly flat where A is
constant); selection that is reliable brings it towards the in-sample curve from below,
short by the in-sample pick's winner's curse. It picks on one half of the seeds, in
expectation a noisier pick than the protocol's (every tuning seed), so it tends to
understate what the protocol's selection holds on fresh seeds; `expected_best_half` is
the in-sample curve of the same one-half pick, its direct counterpart. With an odd number
of seeds the halves differ in size, the two directions pick with unlike noise, and the
average is not on the in-sample curve's level; `defaults_split_seed` scores the defaults
on the same halves, the like-for-like comparison.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from analysis.tuning_reliability import seed_halves

CURVE_COLUMNS = ["variant", "n", "configurations", "expected_best", "expected_best_plugin",
                 "expected_best_half", "expected_split_seed", "defaults", "defaults_split_seed",
                 "seed_se", "seeds_a", "seeds_b"]
REPORT_N = (1, 4, 8)  # the budgets `lines` names, then N
HEADING = "### Expected best trial score against configurations tried (n ≤ N)"
SPLIT_SEED = "split-seed: picked on one seed half, scored on the other (both ways averaged)"


def _scores(x, name: str) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 1 or not len(a):
        raise ValueError(f"{name}: a non-empty 1-D array of scores is needed, got shape {a.shape}")
    if not np.isfinite(a).all():
        raise ValueError(f"{name}: scores must be finite (leave unscored trials out), "
                         f"got {int((~np.isfinite(a)).sum())} NaN/inf of {len(a)}")
    return a


def _budgets(n, trials: int, with_replacement: bool) -> np.ndarray:
    ns = np.atleast_1d(np.asarray(n)).ravel()
    if not np.issubdtype(ns.dtype, np.integer) or (ns < 1).any():
        raise ValueError(f"n: whole numbers of configurations >= 1 are needed, got {n!r}")
    if not with_replacement and (ns > trials).any():
        raise ValueError(f"n: at most N = {trials} configurations can be drawn without "
                         f"replacement from {trials} trials, got {n!r} (with_replacement=True "
                         "draws more)")
    return ns.astype(np.float64)


def _weights(upto: np.ndarray, counts: np.ndarray, ns: np.ndarray, with_replacement: bool
             ) -> np.ndarray:
    """[len(ns), K]: the probability that the best of n draws lies in block k (blocks
    ascending, `upto` the trials at or below each, `counts` each one's size)."""
    big = upto[-1]
    if with_replacement:
        hi, lo = upto / big, (upto - counts) / big
        return hi[None, :] ** ns[:, None] - lo[None, :] ** ns[:, None]
    from scipy.special import comb  # C(k, n) = 0 for k < n

    total = comb(big, ns)  # the largest of the C(k, n): finite, so are they
    if not np.isfinite(total).all():  # past float64's range: N above about 1000
        raise ValueError(f"select_on: {big} trials are too many for C(N, n) in float64")
    return ((comb(upto[None, :], ns[:, None]) - comb((upto - counts)[None, :], ns[:, None]))
            / total[:, None])


def expected_selected(select_on: np.ndarray, report: np.ndarray, n: int | np.ndarray,
                      with_replacement: bool = False) -> float | np.ndarray:
    """Equation (2): the expected `report` value ([N]) of the trial with the highest
    `select_on` value ([N]) among n trials drawn at random: without replacement (n <= N;
    Tang et al.'s unbiased estimator, the observed pick's `report` at n = N, the mean of
    `report` at n = 1) or, `with_replacement`, Dodge et al.'s plug-in (1). A tie on
    `select_on` averages `report` over the tied trials (uniform, not `best_of`'s lowest
    trial). n: an int (-> float) or an array of ints >= 1 (-> an array of that shape)."""
    a, b = _scores(select_on, "select_on"), _scores(report, "report")
    if len(a) != len(b):
        raise ValueError(f"select_on and report: one value per trial each, got {len(a)} and "
                         f"{len(b)}")
    ns = _budgets(n, len(a), with_replacement)
    _, block, counts = np.unique(a, return_inverse=True, return_counts=True)  # a ascending
    mean_b = np.bincount(block, weights=b) / counts
    out = _weights(np.cumsum(counts), counts, ns, with_replacement) @ mean_b
    return float(out[0]) if np.ndim(n) == 0 else out.reshape(np.shape(n))


def expected_max(values: np.ndarray, n: int | np.ndarray, with_replacement: bool = False
                 ) -> float | np.ndarray:
    """Equation (1'): the expected maximum of n of `values` ([N]) drawn without
    replacement (the mean at n = 1, the maximum at n = N); `with_replacement`: Dodge et
    al.'s (1), never above (1') and reaching the maximum only as n grows without bound."""
    return expected_selected(values, values, n, with_replacement)


def _two_way(a: np.ndarray, b: np.ndarray, n: np.ndarray, split_seed: bool) -> np.ndarray:
    """Averaged over the two directions: picked on a, reported on b (split_seed) or on a."""
    return 0.5 * (expected_selected(a, b if split_seed else a, n)
                  + expected_selected(b, a if split_seed else b, n))


def _seed_se(a: np.ndarray, b: np.ndarray, k_a: int, k_b: int) -> float:
    """The standard error a trial score (the mean over its k_a + k_b seeds) owes to seed
    noise, from the halves' means a, b ([N]): with independent per-seed noise of variance
    s^2, Var(a - b) = s^2 (1/k_a + 1/k_b) whatever the trial's quality, so
    s^2 / (k_a + k_b) = Var(a - b) k_a k_b / (k_a + k_b)^2. NaN below 2 trials."""
    if len(a) < 2:
        return np.nan
    return float(np.std(a - b, ddof=1) * np.sqrt(k_a * k_b) / (k_a + k_b))


def curves(ts: pd.DataFrame, seed_scores: pd.DataFrame) -> pd.DataFrame:
    """Per tuned variant and n = 1..N (N its scored trials, `trial_scores`' finite
    `score`): `expected_best` ((1') on the trial scores), `expected_best_plugin` ((1), for
    reference), `expected_best_half` ((1') on one seed half's scores, both directions
    averaged), `expected_split_seed` ((2): picked on one half of the seeds, reported on the
    other, both directions averaged; from `per_seed_scores`), `defaults` (trial 0's score,
    NaN if unscored), `defaults_split_seed` (trial 0's mean of its two halves' scores, the
    split-seed curve's like-for-like defaults; = `defaults` with equal halves),
    `seed_se` (`_seed_se`), `seeds_a`, `seeds_b` (the halves, "1000" and "1001"). The
    seed-half columns are NaN for a variant with one tuning seed. Variants with no scored
    trial are left out. ValueError if the trials with a score on every seed are not the
    scored trials (the two curves would be over different N)."""
    rows = []
    for variant, g in ts.groupby("variant", sort=True):
        scored = g[np.isfinite(g["score"].to_numpy(dtype=np.float64))]
        if scored.empty:
            continue
        v = scored["score"].to_numpy(dtype=np.float64)
        n = np.arange(1, len(v) + 1)
        d = scored.loc[scored["trial"] == 0, "score"]
        split = seed_halves(seed_scores[seed_scores["variant"] == variant])
        half = sel = np.full(len(n), np.nan)
        d_split = se = np.nan
        sa = sb = ""
        if split is not None:
            a_seeds, b_seeds, a, b = split
            if set(a.index) != set(scored["trial"]):
                raise ValueError(
                    f"{variant}: the split-seed curve needs a score on every tuning seed for "
                    f"exactly the scored trials; scored but not on every seed: "
                    f"{sorted(set(scored['trial']) - set(a.index))}, on every seed but not "
                    f"scored: {sorted(set(a.index) - set(scored['trial']))}")
            av, bv = a.to_numpy(dtype=np.float64), b.to_numpy(dtype=np.float64)
            n_split = np.arange(1, len(av) + 1)  # its own trials (the same N, checked above)
            half = _two_way(av, bv, n_split, split_seed=False)
            sel = _two_way(av, bv, n_split, split_seed=True)
            d_split = 0.5 * (a[0] + b[0]) if 0 in a.index else np.nan
            se = _seed_se(av, bv, len(a_seeds), len(b_seeds))
            sa, sb = ", ".join(map(str, a_seeds)), ", ".join(map(str, b_seeds))
        rows.append(pd.DataFrame({
            "variant": variant, "n": n, "configurations": len(n),
            "expected_best": expected_max(v, n),
            "expected_best_plugin": expected_max(v, n, with_replacement=True),
            "expected_best_half": half, "expected_split_seed": sel,
            "defaults": float(d.iloc[0]) if len(d) else np.nan,
            "defaults_split_seed": d_split, "seed_se": se, "seeds_a": sa, "seeds_b": sb}))
    return (pd.concat(rows, ignore_index=True)[CURVE_COLUMNS] if rows
            else pd.DataFrame(columns=CURVE_COLUMNS))


def _differs(x: float, y: float) -> bool:
    """Two defaults values a reader would see apart at 3 decimals."""
    return bool(np.isfinite(x) and np.isfinite(y) and abs(x - y) >= 5e-4)


def figure(curves: pd.DataFrame, out: Path, criterion: str) -> list[str]:
    """tuning_expected_max (.png, .pdf): one axis, x = configurations tried n (log 2),
    y = expected trial score; per variant (its report colour) a solid line (in-sample
    expected best, (1')), a dashed line (split-seed, (2)), a dotted horizontal line at its
    defaults and, where the seed halves score the defaults differently (an odd number of
    seeds), a dash-dot one at `defaults_split_seed`. [] when `curves` is empty."""
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    from analysis.plots import Style, legend_below, order, save

    if curves.empty:
        return []
    variants = order(curves["variant"])
    colour = Style(variants, 0, None).colour
    fig, ax = plt.subplots(figsize=(5.6, 4.6), layout="constrained")
    handles, labels, halves_line = [], [], False
    for v in variants:
        g = curves[curves["variant"] == v].sort_values("n")
        c = colour[v]
        ax.plot(g["n"], g["expected_best"], color=c, lw=1.8, marker="o", ms=3)
        if np.isfinite(g["expected_split_seed"]).any():
            ax.plot(g["n"], g["expected_split_seed"], color=c, lw=1.8, ls="--", marker="o",
                    ms=3, markerfacecolor="white")
        d, ds = g["defaults"].iloc[0], g["defaults_split_seed"].iloc[0]
        if np.isfinite(d):
            ax.axhline(d, color=c, lw=1.0, ls=":")
        if _differs(d, ds) or (np.isfinite(ds) and not np.isfinite(d)):
            ax.axhline(ds, color=c, lw=1.0, ls="-.")
            halves_line = True
        handles.append(Line2D([], [], color=c, lw=6))
        labels.append(f"{v} ({int(g['configurations'].iloc[0])} configurations"
                      + (f", seed halves {g['seeds_a'].iloc[0]} | {g['seeds_b'].iloc[0]})"
                         if g["seeds_a"].iloc[0] else ")"))
    styles = [("-", None, "in-sample: expected best of n (trial score: mean over every "
               "tuning seed)"), ("--", "white", SPLIT_SEED), (":", None, "defaults (trial c00)")]
    if halves_line:
        styles.append(("-.", None, "defaults on the seed halves (both ways averaged)"))
    for ls, mfc, text in styles:
        handles.append(Line2D([], [], color="0.3", lw=1.5, ls=ls,
                              marker="o" if mfc or ls == "-" else None, ms=3,
                              markerfacecolor=mfc))
        labels.append(text)
    n_max = int(curves["n"].max())
    ax.set_xscale("log", base=2)
    ticks = sorted({2 ** k for k in range(int(np.log2(n_max)) + 1)} | {n_max})
    ax.set_xticks(ticks, [str(t) for t in ticks])
    ax.minorticks_off()
    ax.set_xlabel("configurations tried n (drawn without replacement from the N trials)")
    ax.set_ylabel(f"expected trial score ({criterion}, normalised)")
    ax.grid(alpha=0.3)
    ax.set_title("Expected best trial score against configurations tried\n(n ≤ N; without "
                 "replacement: n = N is the observed best; no interval)")
    legend_below(fig, handles, labels, title="variant (colour); estimate (line style)")
    return save(fig, out, "tuning_expected_max")


def _at(s: pd.Series, ns: list[int]) -> str:
    return " / ".join(f"{s[k]:.3f}" for k in ns)


def _size(seeds: str) -> int:
    return len(seeds.split(", ")) if seeds else 0


def _one_variant(v: str, g: pd.DataFrame) -> tuple[dict, dict]:
    """One variant's table row, and what the text below the table says of it."""
    g = g.set_index("n")
    big = int(g["configurations"].iloc[0])
    ns = [k for k in REPORT_N if k < big] + [big]
    best, half, sel = g["expected_best"], g["expected_best_half"], g["expected_split_seed"]
    split = bool(np.isfinite(sel).all())
    d, ds, se = (g[c].iloc[0] for c in ("defaults", "defaults_split_seed", "seed_se"))
    k_a, k_b = _size(g["seeds_a"].iloc[0]), _size(g["seeds_b"].iloc[0])
    row = {"variant": f"`{v}`", "N": big,
           "defaults": (f"{d:.3f}" if np.isfinite(d) else "-")
           + (f" (halves {ds:.3f})" if _differs(d, ds) else ""),
           "seed SE": f"{se:.3f}" if np.isfinite(se) else "-",
           "n": ", ".join(map(str, ns)), "in-sample": _at(best, ns),
           "in-sample, one half": _at(half, ns) if split else "- (one seed)",
           "split-seed": _at(sel, ns) if split else "- (one seed)",
           "last doubling": (f"{best[big] - best[big // 2]:+.3f} / "
                             + (f"{sel[big] - sel[big // 2]:+.3f}" if split else "-"))
           if big >= 2 else "-"}
    said = {"below": None, "never_above": None, "unequal": None}
    if split and np.isfinite(ds) and (sel < ds).all():
        said["below"] = (f"`{v}` (at most {sel.max():.3f} against {ds:.3f}, "
                         f"{ds - sel.max():.3f} below"
                         + (f"; seed SE {se:.3f})" if np.isfinite(se) else ")"), k_a == k_b == 1)
    if np.isfinite(d) and (best <= d + 1e-12).all():
        said["never_above"] = f"`{v}`" + (" (the defaults are its best trial)"
                                         if best[big] >= d - 1e-12 else "")
    if split and k_a != k_b:
        said["unequal"] = f"`{v}` ({k_a} and {k_b} seeds)"
    return row, said


def lines(curves: pd.DataFrame) -> list[str]:
    """The report's subsection on the curves: its heading, one table row per variant (its
    defaults, the seed SE of a trial score, the in-sample, one-half and split-seed values
    at n = 1, 4, 8, N, and what the last doubling of n adds), then how to read it and what
    the split-seed curve says against the defaults."""
    from analysis import tables

    if curves.empty:
        return []
    rows, said = [], []
    for v, g in curves.groupby("variant", sort=True):
        row, s = _one_variant(v, g)
        rows.append(row)
        said.append(s)
    below = [s["below"] for s in said if s["below"]]
    never = [s["never_above"] for s in said if s["never_above"]]
    unequal = [s["unequal"] for s in said if s["unequal"]]
    text = ("How to read it: the in-sample curve is the best of n on the seeds that made the "
            "pick (winner's curse included), for n ≤ N only: it does not forecast n > N, and "
            "at n = N it is the observed best. A last doubling small beside the seed SE says "
            "several near-equal configurations share the top of the N tried; a large one says "
            "the best of N rests on one or two trials, so a rerun of the search could land "
            "well below it. The split-seed curve says how much of the in-sample rise a pick "
            "carries to seeds it did not see: flat at its n = 1 value where selection is seed "
            "noise (in expectation), approaching the in-sample curve from below (short by the "
            "winner's curse) where selection is reliable, falling where the trials best on "
            "one half score below the mean on the other; `in-sample, one half` is the same "
            "pick scored on the half that made it. It picks on one seed half, in expectation "
            "a noisier pick than the selection's (every tuning seed), so it tends to "
            "understate what the selection holds on fresh seeds. Point estimates, no "
            "interval.")
    if unequal:
        text += (" The seed halves differ in size for " + ", ".join(unequal) + ": the two "
                 "directions pick with unlike noise, so the split-seed curve averages two "
                 "unlike picks and need not start at the in-sample n = 1 value; its defaults "
                 "are scored on the same halves (`defaults`, in brackets).")
    if below:
        one = all(one_seed for _, one_seed in below)
        text += (" Split-seed curve below the defaults at every n (the defaults scored on the "
                 "same seed halves, both ways averaged): " + ", ".join(t for t, _ in below)
                 + ". These are point estimates for a configuration picked on **one** seed"
                 + ("" if one else " half") + " and scored on the other, not for the "
                 "selection's pick on every tuning seed: that pick's scores on fresh test "
                 "seeds are in `tuning_held_out` (\"The selection on fresh seeds\").")
    if never:
        text += (" In-sample curve never above the defaults, so nothing drawn beats them "
                 "even on the seeds that chose it: " + ", ".join(never) + ".")
    if below or never:
        text += (" The defaults of PPO and TRPO come from the community's own tuning on "
                 "MuJoCo, so not beating them is no evidence that selection is useless.")
    intro = ("The expected best trial score of n configurations drawn at random, without "
             "replacement, from each variant's N scored trials, for n ≤ N: the mean trial "
             "score at n = 1, the observed best at n = N (Dodge et al., EMNLP 2019, with the "
             "unbiased without-replacement estimator of Tang et al., ACL 2020; Dodge et al.'s "
             "with-replacement estimate, biased low near n = N, is the CSV's "
             "`expected_best_plugin`). `split-seed`: the best of the n picked by its score on "
             "one half of the tuning seeds and scored on the other half, averaged over both "
             "directions; `in-sample, one half`: the same pick scored on the half that made "
             "it; `seed SE`: the standard error a trial score owes to its tuning seeds, from "
             "the halves' differences across trials; `last doubling`: from n = ⌊N/2⌋ to N, "
             "in-sample / split-seed (`tuning_expected_max`).")
    return [HEADING, "", intro, "", tables.to_markdown(pd.DataFrame(rows)), text, ""]
