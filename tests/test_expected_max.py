"""analysis/expected_max.py: the closed forms against brute force and Monte Carlo, and the
curves on a hand-made tuning study whose numbers are worked out below."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from analysis.expected_max import curves, expected_max, expected_selected, figure, lines


def _brute_max(values: np.ndarray, n: int) -> float:
    """The mean, over all N^n equally likely ordered draws with replacement, of their max."""
    return float(np.mean([values[list(d)].max()
                          for d in itertools.product(range(len(values)), repeat=n)]))


def _brute_selected(a: np.ndarray, b: np.ndarray, n: int) -> float:
    """Over all N^n ordered draws: b of the draw with the highest a, a tie on a broken
    uniformly among the drawn positions that reach it (the mean of their b)."""
    out = []
    for d in itertools.product(range(len(a)), repeat=n):
        d = np.array(d)
        top = d[a[d] == a[d].max()]
        out.append(b[top].mean())
    return float(np.mean(out))


TIED = np.array([0.7, 0.3, 1.2, 0.3, 0.7])  # two tied pairs, not sorted


@pytest.mark.parametrize("n", [1, 2, 3])
@pytest.mark.parametrize("values", [np.array([0.3, -1.0, 2.5, 0.9]), TIED[:4], TIED])
def test_expected_max_equals_enumeration_of_every_draw(values, n):
    assert expected_max(values, n) == pytest.approx(_brute_max(values, n), abs=1e-12)


def test_expected_max_against_monte_carlo_n16():
    rng = np.random.default_rng(11)
    v = rng.normal(size=16)
    draws = 400_000
    for n in (2, 5, 16):
        m = v[rng.integers(0, 16, size=(draws, n))].max(axis=1)
        se = m.std(ddof=1) / np.sqrt(draws)
        assert abs(expected_max(v, n) - m.mean()) < 4 * se, n


def test_expected_max_ends_mean_and_max_and_array_n():
    v = np.array([0.2, 0.9, -0.4, 0.9, 0.5, 0.1])
    assert expected_max(v, 1) == pytest.approx(v.mean(), abs=1e-15)
    assert expected_max(v, 5000) == pytest.approx(v.max(), abs=1e-12)  # (4/6)^5000 ~ 0
    got = expected_max(v, np.arange(1, 7))
    assert got.shape == (6,) and np.all(np.diff(got) > 0)  # the expected best only grows
    assert got[2] == pytest.approx(expected_max(v, 3))
    # the textbook values: 2 draws of {0, 1}: max 0 only when both are 0, so 3/4
    assert expected_max(np.array([0.0, 1.0]), 2) == pytest.approx(0.75)


@pytest.mark.parametrize("n", [1, 2, 3])
def test_expected_selected_equals_enumeration_with_ties_on_the_selection_side(n):
    a = np.array([1.0, 2.0, 2.0, 0.0, 2.0])  # a three-way tie at the top
    b = np.array([5.0, 1.0, 3.0, 4.0, -2.0])
    assert expected_selected(a, b, n) == pytest.approx(_brute_selected(a, b, n), abs=1e-12)
    # a tie below the top, too
    a2 = np.array([0.5, 0.5, 3.0, 1.0])
    b2 = np.array([10.0, 0.0, 1.0, 7.0])
    assert expected_selected(a2, b2, n) == pytest.approx(_brute_selected(a2, b2, n), abs=1e-12)


def test_expected_selected_tie_averages_the_block():
    """Every trial ties on a: whatever n, the pick is any trial with equal chance, so
    the mean of b: the held-out curve of pure noise selection, exactly flat."""
    b = np.array([0.1, 0.8, 0.3, 0.6])
    got = expected_selected(np.full(4, 0.5), b, np.arange(1, 30))
    assert np.allclose(got, b.mean(), atol=1e-14)


def test_held_out_of_perfectly_correlated_sides_is_the_in_sample_curve():
    rng = np.random.default_rng(2)
    a = rng.normal(size=16)
    n = np.arange(1, 17)
    assert np.allclose(expected_selected(a, a, n), expected_max(a, n), atol=1e-14)
    b = np.exp(2 * a) - 1  # another scale, the same ranking
    assert np.allclose(expected_selected(a, b, n), expected_max(b, n), atol=1e-12)
    # a reversed ranking picks the worst on the other side: -E[max a]
    assert np.allclose(expected_selected(a, -a, n), -expected_max(a, n), atol=1e-14)


def test_held_out_of_independent_sides_is_flat_in_expectation():
    """b independent of a: averaged over many such pairs, E[b of the pick] is b's mean at
    every n (here b's mean is 0), while the in-sample curve of b rises."""
    rng = np.random.default_rng(4)
    reps, n = 4000, np.array([1, 4, 16])
    got = np.array([expected_selected(rng.normal(size=16), rng.normal(size=16), n)
                    for _ in range(reps)])
    se = got.std(axis=0, ddof=1) / np.sqrt(reps)
    assert np.all(np.abs(got.mean(axis=0)) < 4 * se)
    assert expected_max(rng.normal(size=16), 16) > 0.5  # the in-sample one does rise


@pytest.mark.parametrize("bad, match", [
    (dict(select_on=[0.1, np.nan], report=[1.0, 2.0], n=2), "select_on: scores must be finite"),
    (dict(select_on=[0.1, 0.2], report=[1.0], n=2), "one value per trial"),
    (dict(select_on=[], report=[], n=2), "select_on: a non-empty"),
    (dict(select_on=[0.1, 0.2], report=[1.0, 2.0], n=0), "n: whole numbers"),
    (dict(select_on=[0.1, 0.2], report=[1.0, 2.0], n=1.5), "n: whole numbers"),
])
def test_bad_input_names_the_field(bad, match):
    with pytest.raises(ValueError, match=match):
        expected_selected(**bad)


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
    x = c[c["variant"] == "x"].set_index("n")
    assert list(x.index) == [1, 2, 3] and (x["configurations"] == 3).all()
    # sorted scores 0.2, 0.4, 0.45; weights (i/3)^n - ((i-1)/3)^n: n=2 1,3,5 /9; n=3 1,7,19 /27
    assert x["expected_best"].tolist() == pytest.approx([1.05 / 3, 3.65 / 9, 11.55 / 27])
    # picked on A (0.0 t0, 0.3 t2, 0.6 t1) reported on B (0.4, 0.6, 0.2):
    #   n=1 0.4, n=2 (0.4 + 3*0.6 + 5*0.2)/9 = 3.2/9, n=3 (0.4 + 7*0.6 + 19*0.2)/27 = 8.4/27
    # picked on B (0.2 t1, 0.4 t0, 0.6 t2) reported on A (0.6, 0.0, 0.3):
    #   n=1 0.3, n=2 (0.6 + 0 + 5*0.3)/9 = 2.1/9, n=3 (0.6 + 0 + 19*0.3)/27 = 6.3/27
    assert x["expected_selected"].tolist() == pytest.approx(
        [0.35, (3.2 + 2.1) / 18, (8.4 + 6.3) / 54])
    # in-sample on one half: A sorted 0, 0.3, 0.6 -> n=2 (0.9 + 3.0)/9; B 0.2, 0.4, 0.6 ->
    # (0.2 + 1.2 + 3.0)/9
    assert x.loc[2, "expected_best_half"] == pytest.approx((3.9 + 4.4) / 18)
    assert (x["defaults"] == 0.2).all()
    assert (x["seeds_a"].iloc[0], x["seeds_b"].iloc[0]) == ("1000", "1001")
    y = c[c["variant"] == "y"].set_index("n")
    assert y["expected_best"].tolist() == pytest.approx([0.3, 0.1 / 4 + 0.5 * 3 / 4])
    assert y["expected_selected"].isna().all() and y["defaults"].isna().all()


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
    # A = (0.5, 0.2), B = (0.5, 0.0): picked on A -> B of t0 unless both draws are t1 (1/4)
    want_ab = 0.5 * 3 / 4 + 0.0 / 4
    want_ba = 0.5 * 3 / 4 + 0.2 / 4
    assert c.loc[2, "expected_selected"] == pytest.approx(0.5 * (want_ab + want_ba))
    assert (c.loc[1, "seeds_a"], c.loc[1, "seeds_b"]) == ("1000, 1001", "1002, 1003")


def test_figure_and_lines(tmp_path):
    c = curves(*_study())
    files = figure(c, tmp_path, "final")
    assert files == ["tuning_expected_max.png", "tuning_expected_max.pdf"]
    assert all((tmp_path / f).stat().st_size > 1000 for f in files)
    text = "\n".join(lines(c))
    # x at n = 1, N = 3: expected best 0.350 / 0.428, held-out 0.350 / 0.272, defaults 0.200
    assert "| `x` | 3 | 0.200 | 1, 3 | 0.350 / 0.428 | 0.350 / 0.272 |" in text
    assert "| `y` | 2 | " in text and "| 1, 2 | 0.300 / 0.400 | - (one seed) |" in text
    assert figure(c.iloc[:0], tmp_path, "final") == [] and lines(c.iloc[:0]) == []
