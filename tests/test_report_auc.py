"""The headline under auc beside the final score (issue 24's reviewer: does the ranking
depend on the score?): `scores.auc_score`, the report's `aggregate_auc` table and its
"Under auc ..." paragraph (`analysis.auc_ranking.ranking`)."""

import csv

import numpy as np
import pandas as pd
import pytest
from rliable import library as rly
from rliable import metrics as rlm
from scipy import stats

from analysis import report, report_md
from analysis.auc_ranking import ranking as auc_ranking
from analysis.bootstrap import derive_seed
from analysis.load import load
from analysis.scores import auc_score
from analysis.synthetic import linear_evals, run_config, write_run, write_sweep
from analysis.tuning import run_scores

REPS = 300
SEED = 5
PONG, BREAKOUT = "ALE/Pong-v5", "ALE/Breakout-v5"
TABLE = {PONG: (-20.7, 14.6), BREAKOUT: (1.7, 30.5)}  # DQN Zoo random, human
MINATAR = "MinAtar/Breakout-v1"  # no reference pair: a raw stratum
ENVS = {PONG: "atari", BREAKOUT: "atari", MINATAR: "minatar"}
SEEDS = range(4)
N_EVALS = 5
STEPS = 1000


def _norm_curve(v, e, s):
    """(start, final) of a run's linear curve in normalised units: `ppo` learns late and
    ends high, `trpo` starts high and ends lower, so final and auc order them oppositely.
    trpo's seed 3 on Pong is an outlier, so that the IQM differs from the mean."""
    if v == "ppo":
        return 0.0, 1.0 + 0.02 * s + 0.01 * sorted(TABLE).index(e)
    return 0.95, 0.7 + 0.02 * s + (0.6 if (e, s) == (PONG, 3) else 0.0)


def _raw_curve(v, e, s):
    return (0.0, 30.0 + s) if v == "ppo" else (20.0, 25.0 + s)


def _curve(v, e, s):
    if e == MINATAR:
        return _raw_curve(v, e, s)
    r, h = TABLE[e]
    return tuple(r + x * (h - r) for x in _norm_curve(v, e, s))


def _by_hand_auc(v, e, s):
    """The mean of the run's evaluations (those `write_sweep` writes), each normalised by
    hand with DQN Zoo's pair; raw for the env without one."""
    start, final = _curve(v, e, s)
    vals = np.array([x for _, x in linear_evals(final, STEPS, N_EVALS, start)])
    if e == MINATAR:
        return float(np.mean(vals))
    r, h = TABLE[e]
    return float(np.mean([(x - r) / (h - r) for x in vals]))


def _csv(path):
    with open(path) as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    d = tmp_path_factory.mktemp("auc")
    write_sweep(d / "res", "sw", variants={"ppo": "ppo", "trpo": "trpo"}, envs=ENVS,
                seeds=SEEDS, final=lambda v, e, s: _curve(v, e, s)[1],
                start=lambda v, e, s: _curve(v, e, s)[0], steps=STEPS, n_evals=N_EVALS)
    out = d / "out"
    rc = report.main([str(d / "res"), "--out", str(out), "--reps", str(REPS), "--seed",
                      str(SEED), "--jobs", "1", "--baseline", "ppo"])
    assert rc == 0
    return d, out


# ----------------------------------------------------------------------------------
# The auc score: one definition
# ----------------------------------------------------------------------------------
def test_auc_score_is_the_mean_of_the_normalised_evaluations(tmp_path):
    evals = [(250, 100.0), (500, 1500.0), (750, -50.0), (1000, 3000.0)]
    write_run(tmp_path / "sw", run_config(sweep="sw", algo="ppo", variant="ppo",
                                          suite="mujoco", env="HalfCheetah-v5", seed=0,
                                          steps=1000), evals)
    runs = load([tmp_path / "sw"])
    rnd, ref = -267.7092, 12135.0  # suites/data's HalfCheetah-v5 pair, written out
    by_hand = sum((v - rnd) / (ref - rnd) for _, v in evals) / len(evals)
    assert auc_score(runs, 0) == pytest.approx(by_hand, rel=1e-12)
    assert auc_score(runs, 0, raw=True) == pytest.approx(1137.5, rel=1e-12)  # raw mean
    # the tuning's criterion is this same number, beside the last evaluation normalised
    final, auc = run_scores(runs, 0)
    assert auc == auc_score(runs, 0)
    assert final == pytest.approx((3000.0 - rnd) / (ref - rnd), rel=1e-12)
    assert auc != pytest.approx(final)  # a curve that is not flat: the two differ


def test_auc_score_without_evaluations_is_nan(tmp_path):
    write_run(tmp_path / "sw", run_config(sweep="sw", algo="ppo", variant="ppo",
                                          suite="atari", env=PONG, seed=0, steps=1000),
              [], state="running")
    assert np.isnan(auc_score(load([tmp_path / "sw"]), 0))


# ----------------------------------------------------------------------------------
# The aggregate_auc table
# ----------------------------------------------------------------------------------
def test_aggregate_auc_is_rliable_on_the_auc_scores(study):
    _, out = study
    for f in ("aggregate_auc.csv", "aggregate_auc.md", "aggregate_auc.tex"):
        assert (out / f).is_file()
    rows = {(r["suite"], r["variant"], r["metric"]): r for r in _csv(out / "aggregate_auc.csv")}
    final = {(r["suite"], r["variant"], r["metric"]): r for r in _csv(out / "aggregate.csv")}
    assert set(rows) == set(final)  # the same groups and metrics as the headline
    for v in ("ppo", "trpo"):
        # (seeds, envs) in the report's env order (sorted)
        x = np.array([[_by_hand_auc(v, e, s) for e in sorted(TABLE)] for s in SEEDS])
        r = rows[("atari", v, "IQM")]
        assert float(r["point"]) == pytest.approx(stats.trim_mean(x.ravel(), 0.25), rel=1e-5)
        assert float(rows[("atari", v, "Mean")]["point"]) == pytest.approx(x.mean(), rel=1e-5)
        assert (r["n_runs"], r["n_tasks"], r["n_seeds"]) == ("8", "2", "4")
        # the interval: rliable itself on the (runs, envs) matrix, under the table's seed
        np.random.seed(derive_seed(SEED, "aggregate_auc", "atari", v, "IQM"))
        _, ci = rly.get_interval_estimates(
            {"x": x}, lambda m: np.array([rlm.aggregate_iqm(m)]), reps=REPS)
        assert float(r["lower"]) == pytest.approx(ci["x"][0][0], rel=1e-5)
        assert float(r["upper"]) == pytest.approx(ci["x"][1][0], rel=1e-5)
        # not the final table under another name
        assert float(r["point"]) != pytest.approx(float(final[("atari", v, "IQM")]["point"]))
    # trpo's outlier: an IQM that is the mean would pass the check above by accident
    xt = np.array([_by_hand_auc("trpo", e, s) for s in SEEDS for e in TABLE])
    assert stats.trim_mean(xt, 0.25) != pytest.approx(xt.mean(), rel=1e-3)
    # an env without a reference pair: its raw stratum, auc in raw return units
    raw = np.array([_by_hand_auc("ppo", MINATAR, s) for s in SEEDS])
    r = rows[("raw:" + MINATAR, "ppo", "IQM")]
    assert float(r["point"]) == pytest.approx(stats.trim_mean(raw, 0.25), rel=1e-5)
    assert ("raw:" + MINATAR, "ppo", "Optimality Gap") not in rows


def test_report_md_says_the_swap_after_the_headline(study):
    _, out = study
    md = (out / "report.md").read_text()
    atari = md.split("## Atari")[1].split("\n## ")[0]
    head, auc = atari.index("### Aggregate final scores"), atari.index(
        "### Area under the learning curve (auc)")
    assert head < auc < atari.index("### Probability of improvement")
    text = atari[auc:]
    assert "Under auc the IQM ranks the variants `trpo`" in text
    assert "under the final score, `ppo`" in text
    assert "`ppo` and `trpo` swap" in text and "intervals apart under both" in text
    assert "no swap is resolved" not in text
    assert "- auc of a run (`aggregate_auc`): the mean of all its evaluations" in md  # Method
    assert "`aggregate_auc.csv`" in md.split("## Files")[1]


# ----------------------------------------------------------------------------------
# The paragraph: only the claims the intervals support
# ----------------------------------------------------------------------------------
def _agg(rows, seeds=None):
    """An aggregates table of IQM rows {variant: (point, lower, upper)} on suite "s";
    seeds: variant -> seeds per env (3 if not given)."""
    return pd.DataFrame([("s", v, "IQM", *t, (seeds or {}).get(v, 3)) for v, t in rows.items()],
                        columns=["suite", "variant", "metric", "point", "lower", "upper",
                                 "n_seeds"])


def test_a_swap_is_named_when_both_intervals_are_apart():
    final = _agg({"A": (0.9, 0.8, 1.0), "B": (0.5, 0.4, 0.6)})
    auc = _agg({"A": (0.3, 0.25, 0.35), "B": (0.6, 0.55, 0.65)})
    text = auc_ranking(final, auc, "s")
    assert "Under auc the IQM ranks the variants `B` 0.6 > `A` 0.3" in text
    assert "under the final score, `A` 0.9 > `B` 0.5" in text
    assert "The two orders differ: `A` and `B` swap" in text
    assert "not resolved" not in text


def test_overlapping_auc_intervals_are_not_resolved_not_a_swap():
    final = _agg({"A": (0.9, 0.8, 1.0), "B": (0.5, 0.4, 0.6)})
    auc = _agg({"A": (0.50, 0.40, 0.62), "B": (0.55, 0.45, 0.65)})
    text = auc_ranking(final, auc, "s")
    assert "no swap is resolved" in text and "swap," not in text
    assert "the auc order of `A`/`B` is not resolved" in text


def test_an_auc_order_where_the_final_one_is_not_resolved_is_no_swap():
    final = _agg({"A": (0.6, 0.4, 0.8), "B": (0.5, 0.3, 0.7)})
    auc = _agg({"A": (0.3, 0.25, 0.35), "B": (0.6, 0.55, 0.65)})
    text = auc_ranking(final, auc, "s")
    assert "no swap is resolved" in text
    assert "`B` is above `A` under auc with intervals apart" in text
    assert "their final IQM intervals overlap" in text


def test_agreeing_orders_and_their_unresolved_pairs():
    final = _agg({"A": (0.9, 0.8, 1.0), "B": (0.5, 0.4, 0.6), "C": (0.2, 0.1, 0.3)})
    auc = _agg({"A": (0.7, 0.6, 0.8), "B": (0.65, 0.55, 0.75), "C": (0.1, 0.05, 0.15)})
    text = auc_ranking(final, auc, "s")
    assert ("The two orders agree on all 3 pairs (2 with auc intervals apart; `A`/`B` "
            "overlap)") in text
    assert "swap" not in text


def test_variants_of_another_budget_are_not_ranked_with_the_others():
    final = _agg({"A": (0.9, 0.8, 1.0), "B": (0.5, 0.4, 0.6), "M": (0.95, 0.9, 1.0)})
    auc = _agg({"A": (0.7, 0.6, 0.8), "B": (0.3, 0.2, 0.4), "M": (0.9, 0.85, 0.95)})
    text = auc_ranking(final, auc, "s",
                              {"A": [1_000_000], "B": [1_000_000], "M": [100_000]})
    assert "ranks the variants at 1,000,000 steps `A` 0.7 > `B` 0.3;" in text
    assert "`M` is ranked with no other variant: none shares its budget (100,000 steps)." in text
    assert "The two orders agree (auc intervals apart)." in text
    assert "`M` 0.9 >" not in text
    # one variant alone: nothing to rank
    assert auc_ranking(_agg({"A": (1, 0, 2)}), _agg({"A": (1, 0, 2)}), "s") == ""


def test_variants_on_other_envs_or_with_one_seed_are_not_ranked_with_the_others():
    # an incomplete grid: C ran one env of the two, D one seed (a zero-width "interval")
    final = _agg({"A": (0.9, 0.8, 1.0), "B": (0.5, 0.4, 0.6), "C": (0.1, 0.05, 0.15),
                  "D": (0.2, 0.2, 0.2)}, seeds={"D": 1})
    auc = _agg({"A": (0.3, 0.25, 0.35), "B": (0.6, 0.55, 0.65), "C": (0.9, 0.85, 0.95),
                "D": (0.95, 0.95, 0.95)}, seeds={"D": 1})
    envs = {"A": ["e1", "e2"], "B": ["e1", "e2"], "C": ["e1"], "D": ["e1", "e2"]}
    text = auc_ranking(final, auc, "s", None, envs)
    assert "ranks the variants on e1, e2 `B` 0.6 > `A` 0.3;" in text
    assert "`A` and `B` swap" in text
    assert "`C` is ranked with no other variant: none shares its envs (e1)." in text
    assert "`D` has one seed per env, so no interval: not ranked." in text
    assert "`C` 0.9 >" not in text and "`D` 0.95 >" not in text


def test_a_variant_left_out_of_the_auc_table_is_named():
    # aggregate.auc_jobs leaves out a group with a non-finite evaluation: the paragraph
    # must say so, not rank the others as if it were absent from the study
    from types import SimpleNamespace

    from analysis.scores import Group

    def table(d):
        return pd.DataFrame([("s", v, "IQM", *t, 6, 2, 3) for v, t in d.items()],
                            columns=["suite", "variant", "metric", "point", "lower", "upper",
                                     "n_runs", "n_tasks", "n_seeds"])

    est = SimpleNamespace(
        aggregate=table({"A": (0.9, 0.8, 1.0), "B": (0.5, 0.4, 0.6), "C": (0.2, 0.1, 0.3)}),
        aggregate_auc=table({"A": (0.7, 0.6, 0.8), "B": (0.3, 0.2, 0.4)}))
    groups = {("s", v): Group("s", v, "ppo", ["e1", "e2"], np.zeros((3, 2), dtype=int),
                              np.zeros((3, 2)), 0) for v in "ABC"}
    text = "\n".join(report_md.auc_lines(est, groups, "s", None))
    assert "`C` is not in the auc table: some of its runs have a non-finite evaluation." in text
    assert "Under auc the IQM ranks the variants `A` 0.7 > `B` 0.3" in text
    est.aggregate = est.aggregate[est.aggregate["variant"] != "C"]
    assert "not in the auc table" not in "\n".join(report_md.auc_lines(est, groups, "s", None))


def test_curve_score_is_the_one_rule_for_final_and_auc():
    # the selection (sweeps.tuning.score_trials), the tuning section and the report's auc
    # all score a curve through it
    from analysis.scores import curve_score

    assert curve_score([0.1, 0.5, 0.3], "final") == 0.3
    assert curve_score([0.1, 0.5, 0.3], "auc") == pytest.approx(0.3)
    assert curve_score([0.2, 0.4, 0.9], "auc") == pytest.approx(0.5)
    assert np.isnan(curve_score([], "auc"))
    with pytest.raises(ValueError, match="criterion: 'final' or 'auc'"):
        curve_score([1.0], "best")


def test_points_that_print_alike_are_joined_by_approx_not_by_greater():
    # the order still follows the unrounded points (B above C), but "0.129 > 0.129" would
    # read as a typo
    final = _agg({"A": (0.9, 0.8, 1.0), "B": (0.1291, 0.1, 0.15), "C": (0.1289, 0.1, 0.15)})
    auc = _agg({"A": (0.7, 0.6, 0.8), "B": (0.12, 0.1, 0.14), "C": (0.11, 0.09, 0.13)})
    text = auc_ranking(final, auc, "s")
    assert "under the final score, `A` 0.9 > `B` 0.129 ≈ `C` 0.129." in text
    assert "`A` 0.7 > `B` 0.12 > `C` 0.11" in text
