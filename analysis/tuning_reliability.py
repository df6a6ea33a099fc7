"""Split-seed reliability of the tuning trials' ranking (the report's `tuning_reliability`
table): Spearman's rho between the trials' scores on one tuning seed and on the other, and
the chosen trial's rank on each alone (`seed_reliability`, over `per_seed_scores`): near 0,
the ranking (and so the selection) is mostly seed noise.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.tuning_values import best_of


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


def seed_halves(g: pd.DataFrame) -> tuple[list, list, pd.Series, pd.Series] | None:
    """One variant's `per_seed_scores` rows split into two halves of its sorted tuning
    seeds (A: the first len // 2, B: the rest): (seeds A, seeds B, each trial's mean score
    over A, over B), over the trials scored on every seed; None with fewer than 2 seeds or
    no such trial."""
    wide = g.pivot(index="trial", columns="seed", values="score").dropna()
    seeds = sorted(wide.columns)
    if len(seeds) < 2 or wide.empty:
        return None
    sa, sb = seeds[: len(seeds) // 2], seeds[len(seeds) // 2:]
    return sa, sb, wide[sa].mean(axis=1), wide[sb].mean(axis=1)


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
        split = seed_halves(g)
        if split is None or len(split[2]) < 3:
            continue
        half_a, half_b, a, b = split
        const = a.nunique() < 2 or b.nunique() < 2
        r = None if const else spearmanr(a.to_numpy(), b.to_numpy())
        chosen_t = (picked or {}).get(variant, (None, ""))[0]
        rank_a = pd.Series(rankdata(-a.to_numpy(), method="min"), index=a.index)
        rank_b = pd.Series(rankdata(-b.to_numpy(), method="min"), index=b.index)
        rows.append({"variant": variant, "seeds_a": ", ".join(map(str, half_a)),
                     "seeds_b": ", ".join(map(str, half_b)), "trials": len(a),
                     "rho": np.nan if r is None else float(r.statistic),
                     "p": np.nan if r is None else float(r.pvalue),
                     "chosen": chosen_t,
                     "chosen_rank_a": int(rank_a[chosen_t]) if chosen_t in rank_a.index else None,
                     "chosen_rank_b": int(rank_b[chosen_t]) if chosen_t in rank_b.index else None,
                     "best_a": best_of(zip(a.index, a)), "best_b": best_of(zip(b.index, b))})
    return pd.DataFrame(rows, columns=RELIABILITY_COLUMNS)


RELIABLE_P = 0.05  # a split-seed rho with p above this: the ranking is not shown to replicate


def reliability_lines(rel: pd.DataFrame, criterion: str) -> list[str]:
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
