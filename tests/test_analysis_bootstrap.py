"""The fast bootstrap engine gives exactly rliable's numbers (same RNG stream, same
arithmetic), for every statistic the report uses."""

import numpy as np
import pytest
from rliable import library as rly
from rliable import metrics as rlm

from analysis import bootstrap as bs

RNG = np.random.default_rng(20261122)
SHAPES = [(5, 3), (10, 7), (3, 1), (6, 57)]


def _scores(shape):
    x = np.round(RNG.normal(0.5, 0.4, size=shape), 2)  # rounding makes ties
    return x


def _equal(a, b):
    for u, v in zip(a, b):
        np.testing.assert_array_equal(np.asarray(u, dtype=float), np.asarray(v, dtype=float))


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("metric", bs.METRICS)
def test_aggregate_equals_rliable(shape, metric):
    s = _scores(shape)
    _equal(bs.aggregate(s, metric, 300, 11, "fast"), bs.aggregate(s, metric, 300, 11, "rliable"))


def test_aggregate_equals_rliable_called_directly():
    s = _scores((8, 5))
    np.random.seed(123)
    pt, ci = rly.get_interval_estimates(
        {"a": s}, lambda x: np.array([rlm.aggregate_iqm(x)]), reps=500)
    p, lo, hi = bs.aggregate(s, "IQM", 500, 123)
    assert p[0] == pt["a"][0]
    assert (lo[0], hi[0]) == (ci["a"][0][0], ci["a"][1][0])
    assert lo[0] < p[0] < hi[0]


@pytest.mark.parametrize("shape", SHAPES)
def test_curve_profile_poi_equal_rliable(shape):
    c = _scores((*shape, 4))
    _equal(bs.curve(c, 200, 5, "fast"), bs.curve(c, 200, 5, "rliable"))
    s = _scores(shape)
    taus = np.linspace(-0.5, 1.5, 21)
    _equal(bs.profile(s, taus, 200, 9, "fast"), bs.profile(s, taus, 200, 9, "rliable"))
    y = _scores(shape)
    reps = 200 if shape[1] < 10 else 20  # rliable runs a Mann-Whitney test per task and rep
    _equal(bs.probability_of_improvement(s, y, reps, 4, "fast"),
           bs.probability_of_improvement(s, y, reps, 4, "rliable"))
    y2 = _scores((shape[0] + 2, shape[1]))  # unequal run counts
    _equal(bs.probability_of_improvement(s, y2, reps, 4, "fast"),
           bs.probability_of_improvement(s, y2, reps, 4, "rliable"))


def test_many_blocks_give_the_same_stream(monkeypatch):
    s = _scores((7, 6))
    one = bs.aggregate(s, "IQM", 400, 3)
    monkeypatch.setattr(bs, "_BLOCK_ELEMENTS", 100)  # a block of 2 replications
    _equal(bs.aggregate(s, "IQM", 400, 3), one)
    _equal(bs.aggregate(s, "IQM", 400, 3, "rliable"), one)
    c = _scores((4, 3, 5))
    _equal(bs.curve(c, 50, 3), bs.curve(c, 50, 3, "rliable"))


def test_int32_draws_match_rliable_choice():
    a = np.random.RandomState(7)
    b = np.random.RandomState(7)
    want = np.stack([a.choice(21, (21, 57), replace=True) for _ in range(20)])
    np.testing.assert_array_equal(bs._draw(b, 21, (20, 21, 57)), want)


def test_known_values():
    s = np.array([[0.0, 1.0], [1.0, 2.0], [2.0, 3.0], [3.0, 40.0]])
    p, lo, hi = bs.aggregate(s, "Mean", 1000, 0)
    assert p[0] == 6.5
    assert 0.5 <= lo[0] < 6.5 < hi[0] <= 21.5  # task means range over [0, 3] and [1, 40]
    p, _, _ = bs.aggregate(s, "IQM", 1000, 0)
    assert p[0] == 2.0  # middle half of 0,1,1,2,2,3,3,40 is 1,2,2,3: the outlier is out
    p, _, _ = bs.aggregate(s, "Median", 1000, 0)
    assert p[0] == 6.5  # median of the task means 1.5 and 11.5
    p, _, _ = bs.aggregate(s, "Optimality Gap", 1000, 0)
    assert p[0] == 1 - 7 / 8
    x, y = np.array([[2.0], [3.0]]), np.array([[1.0], [2.0]])
    p, _, _ = bs.probability_of_improvement(x, y, 100, 0)
    assert p[0] == (3 + 0.5) / 4  # 2>1, 3>1, 3>2 and one tie


def test_derive_seed_is_stable_and_keyed():
    assert bs.derive_seed(0, "aggregate", "atari", "vmpo", "IQM") == \
        bs.derive_seed(0, "aggregate", "atari", "vmpo", "IQM")
    assert bs.derive_seed(0, "a") != bs.derive_seed(1, "a")
    assert bs.derive_seed(0, "a") != bs.derive_seed(0, "b")
    assert 0 <= bs.derive_seed(5, "x") < 2**32


def test_bad_arguments():
    with pytest.raises(ValueError, match="engine"):
        bs.aggregate(np.ones((2, 2)), "IQM", 10, 0, engine="numba")
    with pytest.raises(ValueError, match="metric"):
        bs.aggregate(np.ones((2, 2)), "Max", 10, 0)


def test_report_cli_knows_the_engines():
    from analysis import report

    assert report.ENGINES == bs.ENGINES
