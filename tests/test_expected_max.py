"""analysis/expected_max.py: the closed forms against enumeration (every n-subset without
replacement, every ordered draw with), exact unbiasedness over every sample of a small
discrete population, the curves on hand-made tuning studies worked out below, the report
text's verdicts and the figure's lines."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from analysis.expected_max import (CURVE_COLUMNS, HEADING, SPLIT_SEED, curves, expected_max,
                                   expected_selected, figure, lines)


def _brute_selected(a: np.ndarray, b: np.ndarray, n: int, replace: bool) -> float:
    """The mean, over every n-subset of the trials (or every one of the N^n ordered draws
    with replacement), of b of the draw's highest a, a tie on a broken uniformly among
    the drawn trials that reach it (the mean of their b)."""
    draws = (itertools.product(range(len(a)), repeat=n) if replace
             else itertools.combinations(range(len(a)), n))
    out = []
    for d in draws:
        d = np.unique(d)  # distinct trials: a repeated draw is the same trial
        out.append(b[d[a[d] == a[d].max()]].mean())
    return float(np.mean(out))


def _brute_max(values: np.ndarray, n: int, replace: bool) -> float:
    draws = (itertools.product(range(len(values)), repeat=n) if replace
             else itertools.combinations(range(len(values)), n))
    return float(np.mean([values[list(d)].max() for d in draws]))


TIED = np.array([0.7, 0.3, 1.2, 0.3, 0.7])  # two tied pairs, not sorted
CASES = [np.array([0.3, -1.0, 2.5, 0.9]), TIED[:4], TIED,
         np.array([2.0, 2.0, 2.0]), np.array([1.0, 0.0, 1.0, 1.0, 0.0, 1.0])]


@pytest.mark.parametrize("values", CASES)
def test_expected_max_without_replacement_equals_every_n_subset(values):
    for n in range(1, len(values) + 1):
        assert expected_max(values, n) == pytest.approx(_brute_max(values, n, False), abs=1e-12)
    # the ends: the mean at n = 1, the observed best at n = N (exactly: no repeated draw)
    assert expected_max(values, 1) == pytest.approx(values.mean(), abs=1e-15)
    assert expected_max(values, len(values)) == values.max()


@pytest.mark.parametrize("n", [1, 2, 3])
@pytest.mark.parametrize("values", CASES[:3])
def test_expected_max_with_replacement_equals_every_ordered_draw(values, n):
    got = expected_max(values, n, with_replacement=True)
    assert got == pytest.approx(_brute_max(values, n, True), abs=1e-12)


def test_expected_max_with_replacement_against_monte_carlo_n16():
    rng = np.random.default_rng(11)
    v = rng.normal(size=16)
    draws = 400_000
    for n in (2, 5, 16):
        m = v[rng.integers(0, 16, size=(draws, n))].max(axis=1)
        se = m.std(ddof=1) / np.sqrt(draws)
        assert abs(expected_max(v, n, with_replacement=True) - m.mean()) < 4 * se, n


def test_plugin_is_never_above_the_without_replacement_curve_and_below_the_max_at_n_equal_N():
    rng = np.random.default_rng(3)
    for _ in range(200):
        big = int(rng.integers(2, 40))
        v = (rng.integers(0, 4, big).astype(float) if rng.random() < 0.5
             else rng.normal(size=big))
        n = np.arange(1, big + 1)
        plug, wo = expected_max(v, n, with_replacement=True), expected_max(v, n)
        assert np.all(plug <= wo + 1e-12)
        assert plug[0] == pytest.approx(wo[0], abs=1e-12)  # n = 1: both the mean
        assert wo[-1] == v.max()
        if len(np.unique(v)) == big:  # no tie: the plug-in misses the max at n = N
            assert plug[-1] < v.max() - 1e-6


def test_without_replacement_is_unbiased_over_every_sample_of_a_discrete_population():
    """Population {0, 1, 3} with probabilities .5, .3, .2; every sample of N = 4 i.i.d.
    trials, weighted by its probability: the mean of (1') is the true expected best of n
    i.i.d. draws, sum_v v (F(v)^n - F(v-)^n), exactly; the plug-in's is below it."""
    vals, prob = np.array([0.0, 1.0, 3.0]), np.array([0.5, 0.3, 0.2])
    cdf = np.cumsum(prob)
    big = 4
    for n in (2, 3, 4):
        truth = float(vals @ (cdf ** n - np.concatenate([[0.0], cdf[:-1]]) ** n))
        mean_wo = mean_plug = 0.0
        for idx in itertools.product(range(3), repeat=big):
            p = float(np.prod(prob[list(idx)]))
            mean_wo += p * expected_max(vals[list(idx)], n)
            mean_plug += p * expected_max(vals[list(idx)], n, with_replacement=True)
        assert mean_wo == pytest.approx(truth, abs=1e-12), n
        assert mean_plug < truth - 0.01, n


@pytest.mark.parametrize("replace", [False, True])
def test_expected_selected_equals_enumeration_with_ties_on_the_selection_side(replace):
    pairs = [(np.array([1.0, 2.0, 2.0, 0.0, 2.0]),  # a three-way tie at the top
              np.array([5.0, 1.0, 3.0, 4.0, -2.0])),
             (np.array([0.5, 0.5, 3.0, 1.0]),  # a tie below the top
              np.array([10.0, 0.0, 1.0, 7.0]))]
    rng = np.random.default_rng(5)
    for _ in range(30):
        big = int(rng.integers(1, 7))
        pairs.append((rng.integers(0, 3, big).astype(float), rng.normal(size=big)))
    for a, b in pairs:
        for n in range(1, (4 if replace else len(a)) + 1):
            want = _brute_selected(a, b, n, replace)
            assert expected_selected(a, b, n, with_replacement=replace) == pytest.approx(
                want, abs=1e-12), (a, b, n)


def test_expected_selected_tie_rule_is_uniform_over_the_tied_trials_not_the_lowest():
    """a = [1, 1, 0], b = [0, 3, 1], n = 2 without replacement: {t0, t1} tie -> mean b
    1.5, {t0, t2} -> 0, {t1, t2} -> 3: 4.5 / 3 = 1.5 (`best_of`'s lowest trial would give
    (0 + 0 + 3) / 3 = 1)."""
    a, b = np.array([1.0, 1.0, 0.0]), np.array([0.0, 3.0, 1.0])
    assert expected_selected(a, b, 2) == pytest.approx(1.5, abs=1e-15)
    assert expected_selected(a, b, 3) == pytest.approx(1.5, abs=1e-15)  # n = N: the tied block


def test_expected_selected_at_n_equal_N_is_the_observed_picks_report():
    rng = np.random.default_rng(8)
    a, b = rng.normal(size=12), rng.normal(size=12)
    assert expected_selected(a, b, 12) == pytest.approx(b[np.argmax(a)], abs=1e-14)
    assert expected_selected(a, b, 1) == pytest.approx(b.mean(), abs=1e-14)


def test_expected_selected_all_tied_is_flat_at_the_mean():
    """Every trial ties on a: whatever n, the pick is any trial with equal chance, so
    the mean of b: the split-seed curve of pure noise selection, exactly flat."""
    b = np.array([0.1, 0.8, 0.3, 0.6])
    assert np.allclose(expected_selected(np.full(4, 0.5), b, np.arange(1, 5)), b.mean(),
                       atol=1e-14)
    got = expected_selected(np.full(4, 0.5), b, np.arange(1, 30), with_replacement=True)
    assert np.allclose(got, b.mean(), atol=1e-14)


def test_split_seed_of_perfectly_correlated_sides_is_the_in_sample_curve():
    rng = np.random.default_rng(2)
    a = rng.normal(size=16)
    n = np.arange(1, 17)
    b = np.exp(2 * a) - 1  # another scale, the same ranking
    assert np.allclose(expected_selected(a, b, n), expected_max(b, n), atol=1e-12)
    # a reversed ranking picks the worst on the other side: -E[max a]
    assert np.allclose(expected_selected(a, -a, n), -expected_max(a, n), atol=1e-14)


def test_split_seed_of_independent_sides_is_flat_in_expectation():
    """b independent of a: averaged over many such pairs, E[b of the pick] is b's mean at
    every n (here 0)."""
    rng = np.random.default_rng(4)
    reps, n = 4000, np.array([1, 4, 16])
    got = np.array([expected_selected(rng.normal(size=16), rng.normal(size=16), n)
                    for _ in range(reps)])
    se = got.std(axis=0, ddof=1) / np.sqrt(reps)
    assert np.all(np.abs(got.mean(axis=0)) < 4 * se)


@pytest.mark.parametrize("bad, match", [
    (dict(select_on=[0.1, np.nan], report=[1.0, 2.0], n=2), "select_on: scores must be finite"),
    (dict(select_on=[0.1, 0.2], report=[1.0, np.nan], n=2), "report: scores must be finite"),
    (dict(select_on=[0.1, 0.2], report=[1.0], n=2), "one value per trial"),
    (dict(select_on=[], report=[], n=2), "select_on: a non-empty"),
    (dict(select_on=[0.1, 0.2], report=[1.0, 2.0], n=0), "n: whole numbers"),
    (dict(select_on=[0.1, 0.2], report=[1.0, 2.0], n=np.array([1, 0, 2])), "n: whole numbers"),
    (dict(select_on=[0.1, 0.2], report=[1.0, 2.0], n=True), "n: whole numbers"),
    (dict(select_on=[0.1, 0.2], report=[1.0, 2.0], n=np.array([True, True])),
     "n: whole numbers"),
    (dict(select_on=[0.1, 0.2], report=[1.0, 2.0], n=1.5), "n: whole numbers"),
    (dict(select_on=[0.1, 0.2], report=[1.0, 2.0], n=3), "n: at most N = 2"),
    (dict(select_on=np.arange(1100.0), report=np.arange(1100.0), n=550), "too many"),
])
def test_bad_input_names_the_field(bad, match):
    with pytest.raises(ValueError, match=match):
        expected_selected(**bad)


def test_n_beyond_N_only_with_replacement():
    v = np.array([0.2, 0.9, -0.4])
    assert expected_max(v, 5000, with_replacement=True) == pytest.approx(0.9, abs=1e-12)
    assert expected_max(v, np.array([[1, 2], [3, 3]])).shape == (2, 2)


def _study() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Variant `x`: trials 0-2 scored on seeds 1000 (A) and 1001 (B), trial 3 unscored;
    variant `y`: one tuning seed, trial 0 missing (no defaults score)."""
    a, b = [0.0, 0.6, 0.3], [0.4, 0.2, 0.6]  # trial scores: 0.2, 0.4, 0.45
    ts = pd.DataFrame({"variant": ["x"] * 4 + ["y"] * 2, "trial": [0, 1, 2, 3, 1, 2],
                       "score": [0.2, 0.4, 0.45, np.nan, 0.1, 0.5]})
    ss = pd.DataFrame({"variant": ["x"] * 6 + ["y"] * 2,
                       "trial": [0, 1, 2, 0, 1, 2, 1, 2],
                       "seed": [1000] * 3 + [1001] * 3 + [7, 7],
                       "score": a + b + [0.1, 0.5]})
    return ts, ss


def test_curves_on_a_hand_made_study():
    c = curves(*_study())
    assert list(c.columns) == CURVE_COLUMNS
    x = c[c["variant"] == "x"].set_index("n")
    assert list(x.index) == [1, 2, 3] and (x["configurations"] == 3).all()
    # subsets of the scores 0.2, 0.4, 0.45: n=2 maxima 0.4, 0.45, 0.45; n=3 0.45
    assert x["expected_best"].tolist() == pytest.approx([0.35, 1.3 / 3, 0.45])
    # with replacement: weights (i/3)^n - ((i-1)/3)^n: n=2 1,3,5 /9; n=3 1,7,19 /27
    assert x["expected_best_plugin"].tolist() == pytest.approx([0.35, 3.65 / 9, 11.55 / 27])
    # picked on A (t0 0.0, t1 0.6, t2 0.3), reported on B (0.4, 0.2, 0.6): n=1 0.4;
    #   n=2 {t0,t1} t1 0.2, {t0,t2} t2 0.6, {t1,t2} t1 0.2: 1.0/3; n=3 t1 0.2
    # picked on B, reported on A: n=1 0.3; n=2 {t0,t1} t0 0.0, {t0,t2} t2 0.3, {t1,t2} t2
    #   0.3: 0.2; n=3 t2 0.3
    assert x["expected_split_seed"].tolist() == pytest.approx(
        [0.35, (1.0 / 3 + 0.2) / 2, (0.2 + 0.3) / 2])
    # in-sample on one half: A's pair maxima 0.6, 0.3, 0.6 -> 0.5; B's 0.4, 0.6, 0.6 -> 1.6/3
    assert x["expected_best_half"].tolist() == pytest.approx(
        [0.35, (0.5 + 1.6 / 3) / 2, 0.6])
    assert (x["defaults"] == 0.2).all()
    assert x["defaults_split_seed"].tolist() == pytest.approx([0.2] * 3)  # (0.0 + 0.4) / 2
    # A - B = -0.4, 0.4, -0.3: sd sqrt(0.19); one seed a side: the SE of a 2-seed mean, sd/2
    assert x["seed_se"].tolist() == pytest.approx([np.sqrt(0.19) / 2] * 3)
    assert (x["seeds_a"].iloc[0], x["seeds_b"].iloc[0]) == ("1000", "1001")
    y = c[c["variant"] == "y"].set_index("n")
    assert y["expected_best"].tolist() == pytest.approx([0.3, 0.5])
    assert y["expected_best_plugin"].tolist() == pytest.approx([0.3, 0.1 / 4 + 0.5 * 3 / 4])
    for col in ("expected_split_seed", "expected_best_half", "defaults", "defaults_split_seed",
                "seed_se"):
        assert y[col].isna().all(), col


def test_curves_split_more_seeds_as_seed_reliability():
    """Four seeds: the first two sorted (1000, 1001) are half A, averaged, the rest B;
    so a trial's A is its mean over 1000 and 1001 whatever order the rows come in."""
    rows = []
    for t, (s0, s1, s2, s3) in enumerate([(0.0, 1.0, 0.9, 0.1), (0.2, 0.2, 0.0, 0.0)]):
        rows += [{"variant": "v", "trial": t, "seed": s, "score": x}
                 for s, x in zip((1002, 1000, 1003, 1001), (s2, s0, s3, s1))]
    ss = pd.DataFrame(rows)
    ts = pd.DataFrame({"variant": ["v", "v"], "trial": [0, 1], "score": [0.5, 0.1]})
    c = curves(ts, ss).set_index("n")
    # A = (0.5, 0.2), B = (0.5, 0.0): n = 2 draws both trials: picked on A -> t0's B 0.5,
    # picked on B -> t0's A 0.5
    assert c.loc[2, "expected_split_seed"] == pytest.approx(0.5)
    assert c.loc[1, "expected_split_seed"] == pytest.approx(0.5 * (0.25 + 0.35))
    assert (c.loc[1, "seeds_a"], c.loc[1, "seeds_b"]) == ("1000, 1001", "1002, 1003")


def _odd_study() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Three seeds, so halves of 1 (1000) and 2 (1001, 1002) seeds; three trials."""
    per_seed = {0: (0.9, 0.3, 0.6), 1: (0.1, 0.5, 0.3), 2: (0.4, 0.4, 1.0)}
    ss = pd.DataFrame([{"variant": "o", "trial": t, "seed": 1000 + k, "score": s[k]}
                       for t, s in per_seed.items() for k in range(3)])
    ts = pd.DataFrame({"variant": "o", "trial": list(per_seed),
                       "score": [float(np.mean(s)) for s in per_seed.values()]})
    return ts, ss


def test_curves_with_an_odd_number_of_seeds():
    c = curves(*_odd_study()).set_index("n")
    assert (c.loc[1, "seeds_a"], c.loc[1, "seeds_b"]) == ("1000", "1001, 1002")
    # the defaults: 0.6 over all three seeds; on the halves (0.9 + (0.3 + 0.6) / 2) / 2
    assert c.loc[1, "defaults"] == pytest.approx(0.6)
    assert c.loc[1, "defaults_split_seed"] == pytest.approx(0.675)
    # n = 1: (mean A + mean B) / 2 = (1.4/3 + 1.55/3) / 2 = 0.4917, not the mean trial
    # score (A + 2 B) / 3 averaged, 0.5: unequal halves weigh the seeds unequally (M-1)
    a, b = np.array([0.9, 0.1, 0.4]), np.array([0.45, 0.4, 0.7])
    assert c.loc[1, "expected_split_seed"] == pytest.approx(2.95 / 6)
    assert c.loc[1, "expected_best"] == pytest.approx(0.5)
    # seed SE: sd(A - B) * sqrt(1 * 2) / 3
    assert c.loc[1, "seed_se"] == pytest.approx(np.std(a - b, ddof=1) * np.sqrt(2) / 3)
    text = "\n".join(lines(curves(*_odd_study())))
    assert "The seed halves differ in size for `o` (1 and 2 seeds)" in text
    assert "| `o` | 3 | 0.600 (halves 0.675) |" in text


def test_seed_se_is_the_standard_error_of_a_trial_score_for_unequal_halves():
    """Many trials, three seeds (halves of 1 and 2), seed noise sd 0.2 around qualities
    of sd 1: a trial score (mean of 3 seeds) has SE 0.2 / sqrt(3) = 0.1155; equal-halves
    arithmetic (sd(A - B) / 2) would give 0.1225."""
    rng = np.random.default_rng(9)
    big = 6000
    mu = rng.normal(size=big)
    s = mu[:, None] + 0.2 * rng.normal(size=(big, 3))
    ss = pd.DataFrame({"variant": "v", "trial": np.repeat(np.arange(big), 3),
                       "seed": np.tile([1000, 1001, 1002], big), "score": s.ravel()})
    from analysis.expected_max import _seed_se
    from analysis.tuning_reliability import seed_halves

    sa, sb, a, b = seed_halves(ss)
    got = _seed_se(a.to_numpy(), b.to_numpy(), len(sa), len(sb))
    assert got == pytest.approx(0.2 / np.sqrt(3), rel=0.03)


def test_curves_refuse_split_trials_other_than_the_scored_ones():
    ts, ss = _study()
    ss = ss[~((ss["variant"] == "x") & (ss["trial"] == 2) & (ss["seed"] == 1001))]
    with pytest.raises(ValueError, match=r"x: .*scored but not on every seed: \[2\]"):
        curves(ts, ss)


def _curve(variant: str, best, split, defaults: float, halves: float | None = None,
           seeds=("1000", "1001")) -> pd.DataFrame:
    """A hand-written curves frame: `best` and `split` per n = 1..N; `halves`: the
    defaults on the seed halves (`defaults` if None)."""
    big = len(best)
    return pd.DataFrame({
        "variant": variant, "n": np.arange(1, big + 1), "configurations": big,
        "expected_best": best, "expected_best_plugin": best, "expected_best_half": best,
        "expected_split_seed": split, "defaults": defaults,
        "defaults_split_seed": defaults if halves is None else halves,
        "seed_se": 0.05, "seeds_a": seeds[0], "seeds_b": seeds[1]})[CURVE_COLUMNS]


def test_the_defaults_sentences_name_exactly_the_variants_they_hold_for():
    c = pd.concat([
        # p: split-seed below 0.6 at every n; in-sample above it from n = 2
        _curve("p", [0.4, 0.55, 0.65, 0.7], [0.4, 0.45, 0.5, 0.48], 0.6),
        # q: split-seed below at every n but n = 2, where it equals the defaults; in-sample
        # below them at every n
        _curve("q", [0.3, 0.4, 0.45, 0.5], [0.3, 0.6, 0.4, 0.35], 0.6),
        # r: the defaults are the best trial: in-sample reaches them at n = N only
        _curve("r", [0.2, 0.3, 0.4, 0.5], [0.2, 0.22, 0.25, 0.3], 0.5)], ignore_index=True)
    text = "\n".join(lines(c))
    below = text.split("Split-seed curve below the defaults at every n")[1].split(". These")[0]
    assert "`p` (at most 0.500 against 0.600, 0.100 below; seed SE 0.050)" in below
    assert "`r` (at most 0.300 against 0.500, 0.200 below" in below and "`q`" not in below
    assert "picked on **one** seed and scored on the other" in text
    assert "`tuning_held_out`" in text
    never = text.split("even on the seeds that chose it: ")[1].split(". ")[0]
    assert never == "`q`, `r` (the defaults are its best trial)"
    assert "The defaults of PPO and TRPO come from the community's own tuning" in text


def test_with_unequal_halves_the_split_seed_curve_meets_the_defaults_on_its_halves():
    """`u`: seed halves of 1 and 2 seeds; the defaults score 0.5 over all seeds, 0.6 on
    the halves averaged: the split-seed curve is below 0.6 at every n, not below 0.5."""
    c = _curve("u", [0.45, 0.6, 0.7], [0.4, 0.55, 0.5], 0.5, halves=0.6,
               seeds=("1000", "1001, 1002"))
    text = "\n".join(lines(c))
    assert "`u` (at most 0.550 against 0.600, 0.050 below; seed SE 0.050)" in text
    assert "picked on **one** seed half and scored on the other" in text
    assert "The seed halves differ in size for `u` (1 and 2 seeds)" in text


def test_in_sample_never_above_the_defaults_alone_brings_the_tuned_defaults_caveat():
    text = "\n".join(lines(_curve("w", [0.2, 0.3], [0.2, 0.6], 0.5)))
    assert "Split-seed curve below" not in text
    assert "even on the seeds that chose it: `w`." in text
    assert "The defaults of PPO and TRPO come from the community's own tuning on MuJoCo" in text


def test_no_defaults_sentences_when_a_pick_beats_the_defaults():
    c = pd.concat([_curve("p", [0.4, 0.55, 0.65, 0.7], [0.4, 0.5, 0.62, 0.61], 0.6),
                   _curve("s", [0.1, 0.2], [np.nan, np.nan], 0.05, seeds=("", ""))],
                  ignore_index=True)
    text = "\n".join(lines(c))
    assert "Split-seed curve below" not in text and "never above the defaults" not in text
    assert "PPO and TRPO" not in text and "differ in size" not in text
    assert ("| `s` | 2 | 0.050 | 0.050 | 1, 2 | 0.100 / 0.200 | - (one seed) | - (one seed) |"
            in text)


def test_lines_heading_table_and_last_doubling():
    c = curves(*_study())
    got = lines(c)
    assert got[0] == HEADING == "### Expected best trial score against configurations tried (n ≤ N)"
    text = "\n".join(got)
    # x, N = 3: in-sample 0.350 / 0.450, one half 0.350 / 0.600, split-seed 0.350 / 0.250;
    # last doubling from n = 1 to 3: +0.100 in-sample, -0.100 split-seed
    assert ("| `x` | 3 | 0.200 | 0.218 | 1, 3 | 0.350 / 0.450 | 0.350 / 0.600 | 0.350 / 0.250 "
            "| +0.100 / -0.100 |") in text
    assert ("| `y` | 2 | - | - | 1, 2 | 0.300 / 0.500 | - (one seed) | - (one seed) "
            "| +0.200 / - |") in text
    assert "held-out" not in text.replace("`tuning_held_out`", "")
    assert "does not forecast n > N" in text and "at n = N it is the observed best" in text
    # the split-seed curve (0.35, 0.267, 0.25) is not below x's defaults 0.2 at any n
    assert "Split-seed curve below" not in text
    assert lines(c.iloc[:0]) == []


def test_figure_draws_each_curve_with_its_values(tmp_path, captured_figures):
    from matplotlib.colors import to_hex

    kept = captured_figures
    ts, ss = _study()
    ts2, ss2 = _odd_study()
    c = curves(pd.concat([ts, ts2], ignore_index=True), pd.concat([ss, ss2], ignore_index=True))
    assert figure(c, tmp_path, "final") == ["tuning_expected_max.png", "tuning_expected_max.pdf"]
    assert (tmp_path / "tuning_expected_max.png").stat().st_size > 1000
    ax = kept[-1].axes[0]
    assert "n ≤ N" in ax.get_title() and "observed best" in ax.get_title()
    legend = [t.get_text() for t in kept[-1].legends[0].get_texts()]
    assert SPLIT_SEED in legend and "defaults on the seed halves (both ways averaged)" in legend
    colour = {to_hex(h.get_color()): t.split(" (")[0]
              for h, t in zip(kept[-1].legends[0].legend_handles, legend) if h.get_lw() == 6}
    drawn: dict[tuple[str, str], np.ndarray] = {}
    for line in ax.get_lines():
        key = (colour[to_hex(line.get_color())], line.get_linestyle())
        assert key not in drawn, key
        drawn[key] = np.asarray(line.get_ydata(), dtype=float)
    assert sorted(drawn) == [("o", "-"), ("o", "--"), ("o", "-."), ("o", ":"),
                             ("x", "-"), ("x", "--"), ("x", ":"), ("y", "-")]
    for v in ("o", "x", "y"):
        g = c[c["variant"] == v].sort_values("n")
        assert np.allclose(drawn[(v, "-")], g["expected_best"])
    for v in ("o", "x"):
        g = c[c["variant"] == v].sort_values("n")
        assert np.allclose(drawn[(v, "--")], g["expected_split_seed"])
        assert np.allclose(drawn[(v, ":")], g["defaults"].iloc[0])
    o = c[c["variant"] == "o"]
    assert np.allclose(drawn[("o", "-.")], o["defaults_split_seed"].iloc[0])
    assert not np.isclose(o["defaults_split_seed"].iloc[0], o["defaults"].iloc[0])
    assert figure(c.iloc[:0], tmp_path, "final") == []
