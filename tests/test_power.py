"""Seeds needed (analysis/power.py): power against what the effect dictates."""

import numpy as np
import pandas as pd
import pytest

from analysis import power


def test_a_clear_effect_has_full_power_and_a_null_has_about_alpha():
    rng = np.random.default_rng(0)
    y = rng.normal(0.0, 0.1, (3, 4))
    x = y + 1.0                                      # every x above every y: P = 1
    curve = power.power_curve(x, y, candidates=(3, 10), experiments=40)
    assert curve == {3: 1.0, 10: 1.0}
    assert power.seeds_needed(curve) == 3
    # the same population on both sides: an interval excludes 0.5 about 5% of the time
    pop = rng.normal(0.0, 1.0, (200, 4))
    curve = power.power_curve(pop, pop, candidates=(5, 20), experiments=200)
    assert all(p <= 0.15 for p in curve.values()), curve
    assert power.seeds_needed(curve) is None


def test_a_moderate_effect_gains_power_with_seeds():
    # per env, x beats y in 7 of 9 pairs (P = 0.78): underpowered at 3, not at 20
    x = np.tile(np.array([[1.0], [2.0], [4.0]]), (1, 3))
    y = np.tile(np.array([[0.5], [1.5], [1.8]]), (1, 3))
    assert np.mean(x[:, :1, None] > y[None, :, 0]) == pytest.approx(7 / 9)
    curve = power.power_curve(x, y, candidates=(3, 20), experiments=60)
    assert curve[3] < 0.8 <= curve[20]
    assert power.seeds_needed(curve) == 20


def test_table_takes_each_pair_once_and_only_nulls():
    from analysis.scores import Group

    s = np.array([[0.1, 0.2], [0.3, 0.4], [0.5, 0.6]])
    g = {("m", v): Group("m", v, "vmpo", ["a", "b"], np.zeros((3, 2), int), s + d, 0)
         for v, d in (("vmpo", 0.0), ("abl", 0.05), ("ppo", 5.0))}
    poi = pd.DataFrame([("m", "baseline", "vmpo", "abl", 0.6, 0.3, 0.8, 3, 3, 2),
                        ("m", "ablation", "vmpo", "abl", 0.6, 0.3, 0.8, 3, 3, 2),
                        ("m", "baseline", "vmpo", "ppo", 0.0, 0.0, 0.0, 3, 3, 2)],
                       columns=["suite", "kind", "x", "y", "point", "lower", "upper", "n_x", "n_y", "n_tasks"])
    t = power.table(poi, g, candidates=(3, 5))
    assert list(zip(t["x"], t["y"])) == [("vmpo", "abl")]
    assert list(power.wide(t).columns)[-1] == "seeds needed (80%)"
