"""Envs without a reference pair (issue 26 §2): the report gives their raw returns the
rliable treatment, each env a stratum of its own (`raw:<env>`), and keeps them out of the
normalised aggregates."""

import csv

import numpy as np
import pandas as pd
import pytest
from rliable import library as rly
from rliable import metrics as rlm
from scipy import stats

from analysis import report
from analysis.bootstrap import derive_seed
from analysis.plots import file_key
from analysis.scores import is_raw, raw_stratum, stratify
from analysis.synthetic import write_sweep

REPS = 300
SEED = 3
BREAKOUT, ASTERIX = "MinAtar/Breakout-v1", "MinAtar/Asterix-v1"  # no published pair
SEEDS = range(6)  # 6 runs: IQM (trim 1 each end) differs from the median and the mean
RAW = {  # final raw returns by variant, env, seed
    ("vmpo", BREAKOUT): [3.0, 10.0, 11.5, 12.0, 40.0, 7.0],
    ("ppo", BREAKOUT): [2.0, 4.0, 9.0, 13.0, 5.0, 30.0],
    ("vmpo", ASTERIX): [-1.0, 6.0, 2.5, 8.0, 0.5, 3.0],
    ("ppo", ASTERIX): [1.0, 1.5, -2.0, 0.0, 4.0, 2.0],
}


def _csv(path):
    with open(path) as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def all_raw(tmp_path_factory):
    d = tmp_path_factory.mktemp("raw")
    write_sweep(d / "res", "mina", variants={"vmpo": "vmpo", "ppo": "ppo"},
                envs={BREAKOUT: "minatar", ASTERIX: "minatar"}, seeds=SEEDS,
                final=lambda v, e, s: RAW[(v, e)][s], steps=1000, n_evals=4)
    out = d / "out"
    rc = report.main([str(d / "res"), "--out", str(out), "--reps", str(REPS),
                      "--seed", str(SEED), "--jobs", "1"])
    return rc, out


def test_a_report_of_envs_without_pairs_succeeds(all_raw):
    rc, out = all_raw
    assert rc == 0  # was exit 2: "nothing to normalise"
    for env in (BREAKOUT, ASTERIX):
        k = file_key(raw_stratum(env))
        assert "/" not in k and ":" not in k
        for fig in ("aggregate", "poi", "profile", "curves"):
            assert (out / f"{fig}_{k}.png").is_file() and (out / f"{fig}_{k}.pdf").is_file()


def test_raw_aggregates_are_rliables_on_the_final_returns(all_raw):
    _, out = all_raw
    rows = _csv(out / "aggregate.csv")
    assert {r["suite"] for r in rows} == {"raw:" + BREAKOUT, "raw:" + ASTERIX}
    # no optimality gap: it is the gap to a normalised 1
    assert sorted({r["metric"] for r in rows}) == ["IQM", "Mean", "Median"]
    assert len(rows) == 2 * 2 * 3
    funcs = {"IQM": rlm.aggregate_iqm, "Median": rlm.aggregate_median,
             "Mean": rlm.aggregate_mean}
    for r in rows:
        env = r["suite"][len("raw:"):]
        x = np.array(RAW[(r["variant"], env)])
        # rliable's median is over tasks of each task's mean over runs: with one env,
        # the mean (the report says so)
        want_point = {"IQM": stats.trim_mean(x, 0.25), "Median": np.mean(x),
                      "Mean": np.mean(x)}[r["metric"]]
        assert float(r["point"]) == pytest.approx(want_point, rel=1e-5), r
        assert float(r["lower"]) <= float(r["point"]) <= float(r["upper"])
        assert float(r["lower"]) < float(r["upper"])
        # the interval: rliable called directly on the (runs, 1) matrix of raw returns
        np.random.seed(derive_seed(SEED, "aggregate", r["suite"], r["variant"], r["metric"]))
        f = funcs[r["metric"]]
        _, ci = rly.get_interval_estimates({"x": x[:, None]},
                                           lambda s, f=f: np.array([f(s)]), reps=REPS)
        assert float(r["lower"]) == pytest.approx(ci["x"][0][0], rel=1e-5)
        assert float(r["upper"]) == pytest.approx(ci["x"][1][0], rel=1e-5)
        assert (r["n_runs"], r["n_tasks"], r["n_seeds"]) == ("6", "1", "6")
    # IQM, median over seeds and mean differ on these returns: the IQM is not a mislabelled one
    x = np.array(RAW[("vmpo", BREAKOUT)])
    assert len({stats.trim_mean(x, 0.25), np.median(x), np.mean(x)}) == 3
    md = (out / "aggregate.md").read_text()
    assert "n/a (raw returns)" in md
    # the LaTeX caption says what the Median of one env is (analysis/README.md)
    assert "with one env the mean over seeds" in (out / "aggregate.tex").read_text()


def test_raw_probability_of_improvement_curves_and_profiles(all_raw):
    _, out = all_raw
    poi = [r for r in _csv(out / "probability_of_improvement.csv")
           if r["suite"] == "raw:" + BREAKOUT]
    assert [(r["kind"], r["x"], r["y"]) for r in poi] == [("baseline", "vmpo", "ppo")]
    x, y = np.array(RAW[("vmpo", BREAKOUT)]), np.array(RAW[("ppo", BREAKOUT)])
    brute = np.mean([(a > b) + 0.5 * (a == b) for a in x for b in y])
    assert float(poi[0]["point"]) == pytest.approx(brute, rel=1e-5)

    cur = pd.read_csv(out / "curves.csv")
    c = cur[(cur["suite"] == "raw:" + BREAKOUT) & (cur["variant"] == "vmpo")]
    assert list(c["step"]) == [250, 500, 750, 1000]
    # raw units: the last point is the IQM of the final returns; the first, of the
    # linear curves' first evaluations (a quarter of the way from 0)
    assert c["point"].iloc[-1] == pytest.approx(stats.trim_mean(x, 0.25), rel=1e-5)
    assert c["point"].iloc[0] == pytest.approx(stats.trim_mean(x / 4, 0.25), rel=1e-5)

    prof = pd.read_csv(out / "profiles.csv")
    p = prof[(prof["suite"] == "raw:" + BREAKOUT) & (prof["variant"] == "ppo")]
    taus = p["tau"].to_numpy()
    both = np.concatenate([x, y])
    assert taus.min() < both.min() and taus.max() > both.max()  # spans the raw returns
    assert taus.max() < 2 * both.max()  # not [0, 1]-anchored
    assert np.allclose(p["point"], [(y > t).mean() for t in taus], atol=1e-6)


def test_report_md_says_raw_and_why_the_normalised_aggregates_are_absent(all_raw):
    _, out = all_raw
    md = (out / "report.md").read_text()
    assert ("No normalised aggregates: no env of these runs has a reference pair "
            f"({ASTERIX}, {BREAKOUT}: no reference pair: give one in the spec's "
            "`references:`)") in md
    assert f"## {BREAKOUT}, raw returns (no reference pair)" in md
    assert "### Sample efficiency (raw returns)" in md
    assert f"![curves raw:{BREAKOUT}](curves_{file_key('raw:' + BREAKOUT)}.png)" in md
    section = md.split(f"## {BREAKOUT}, raw returns")[1].split("\n## ")[0]
    assert "Optimality Gap" not in section and "has no meaning in raw units" in section
    assert "median over envs of each env's mean: with one env, its mean" in section
    # the per-env table is as before: the run's own suite, raw returns
    pe = pd.read_csv(out / "per_env.csv")
    r = pe[(pe["env"] == BREAKOUT) & (pe["variant"] == "vmpo")].iloc[0]
    assert r["suite"] == "minatar" and r["mean"] == pytest.approx(np.mean(RAW[("vmpo", BREAKOUT)]), rel=1e-5)
    assert np.isnan(r["norm_mean"])


# ----------------------------------------------------------------------------------
# Mixed: envs with a pair beside one without, in the same suite
# ----------------------------------------------------------------------------------
PONG, QBERT, TETRIS = "ALE/Pong-v5", "ALE/Qbert-v5", "ALE/Tetris-v5"  # Tetris: not atari57


def _mixed_final(v, e, s):
    return {"vmpo": 5.0, "ppo": 1.0, "vmpo-no-topk": 3.0}[v] + 2.0 * s + (e == QBERT) * 300


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    d = tmp_path_factory.mktemp("mixed")
    variants = {"vmpo": "vmpo", "ppo": "ppo", "vmpo-no-topk": "vmpo"}
    outs = {}
    for name, envs in (("paired", [PONG, QBERT]), ("with_raw", [PONG, QBERT, TETRIS])):
        write_sweep(d / name, "sw", variants=variants, envs={e: "atari" for e in envs},
                    seeds=range(3), final=_mixed_final, steps=1000, n_evals=4)
        outs[name] = d / f"out_{name}"
        assert report.main([str(d / name), "--out", str(outs[name]), "--reps", str(REPS),
                            "--seed", str(SEED), "--jobs", "1"]) == 0
    return outs


@pytest.mark.parametrize("name", ["aggregate", "probability_of_improvement", "profiles",
                                  "curves", "ablation"])
def test_raw_envs_leave_the_normalised_aggregates_unchanged(mixed, name):
    def atari(out):
        return [r for r in _csv(out / f"{name}.csv") if r["suite"] == "atari"]

    alone, beside = atari(mixed["paired"]), atari(mixed["with_raw"])
    assert alone and alone == beside
    if name == "aggregate":
        assert {r["n_tasks"] for r in beside} == {"2"}  # Tetris did not join the atari IQM


def test_the_raw_env_has_its_own_stratum(mixed):
    out = mixed["with_raw"]
    agg = _csv(out / "aggregate.csv")
    raw = [r for r in agg if is_raw(r["suite"])]
    assert {r["suite"] for r in raw} == {"raw:" + TETRIS}
    assert {r["metric"] for r in raw} == {"IQM", "Median", "Mean"}
    vmpo_iqm = next(r for r in raw if r["variant"] == "vmpo" and r["metric"] == "IQM")
    assert float(vmpo_iqm["point"]) == pytest.approx(
        stats.trim_mean([_mixed_final("vmpo", TETRIS, s) for s in range(3)], 0.25))
    assert (vmpo_iqm["n_tasks"], vmpo_iqm["n_runs"]) == ("1", "3")
    ab = [r for r in _csv(out / "ablation.csv") if is_raw(r["suite"])]
    assert [(r["suite"], r["variant"]) for r in ab] == [("raw:" + TETRIS, "vmpo-no-topk")]
    md = (out / "report.md").read_text()
    assert (f"Normalised aggregates leave out {TETRIS}: no reference pair: give one in the "
            "spec's `references:`") in md
    assert md.index("## Atari") < md.index(f"## {TETRIS}, raw returns (no reference pair)")
    atari = md.split("## Atari")[1].split("\n## ")[0]
    assert TETRIS not in atari  # its per-env row is in its own section
    # the per-env table keeps every env in its run's suite
    pe = pd.read_csv(out / "per_env.csv")
    assert set(pe.loc[pe["suite"] == "atari", "env"]) == {PONG, QBERT, TETRIS}


def test_stratify_moves_only_envs_without_a_pair():
    final = pd.DataFrame({
        "suite": ["atari", "atari", "atari", "minatar"], "variant": ["v"] * 4,
        "algo": ["vmpo"] * 4, "env": [PONG, TETRIS, PONG, BREAKOUT], "seed": [0, 0, 1, 0],
        "sweep": ["s"] * 4, "run_id": list("abcd"), "steps": [10] * 4, "frameskip": [1] * 4,
        "raw": [1.0, 7.0, np.nan, 3.0], "score": [0.5, np.nan, np.nan, np.nan],
        "row": [0, 1, 2, 3]})
    s = stratify(final)
    assert list(zip(s["suite"], s["env"], s["score"])) == [
        ("atari", PONG, 0.5), ("raw:" + TETRIS, TETRIS, 7.0), ("raw:" + BREAKOUT, BREAKOUT, 3.0)]
    assert list(s.columns) == list(final.columns)
    assert final["suite"].tolist()[1] == "atari"  # the input is left as it was
    assert file_key("atari") == "atari" and file_key("raw:" + BREAKOUT) == "raw-MinAtar-Breakout-v1"


def test_raw_profile_thresholds_when_every_return_is_equal():
    """An env whose runs all return the same (a solved CartPole: 500) still gets a
    threshold grid around that return, so its profile falls from 1 to 0 at it."""
    from analysis.aggregate import profile_taus

    taus = profile_taus(np.full(6, 500.0), points=101, raw=True)
    assert (taus[0], taus[-1]) == (250.0, 750.0)  # half the return's size each side
    assert np.all(np.diff(taus) > 0)
    frac = np.array([(np.full(6, 500.0) > t).mean() for t in taus])
    assert frac[0] == 1.0 and frac[-1] == 0.0
    # small or zero returns: at least 0.5 each side
    assert tuple(profile_taus(np.zeros(3), points=3, raw=True)) == (-0.5, 0.0, 0.5)
    # normalised scores keep their [min(0, lo), max(1, hi)] grid
    assert tuple(profile_taus(np.array([0.2, 0.4]), points=3)) == (0.0, 0.5, 1.0)


def test_two_envs_whose_names_sanitise_alike_get_distinct_figure_files():
    from analysis import plots

    try:
        keys = plots.assign_file_keys(["raw:a/B-v0", "raw:a:B-v0", "mujoco"])
        assert keys["mujoco"] == "mujoco"
        assert sorted([keys["raw:a/B-v0"], keys["raw:a:B-v0"]]) == ["raw-a-B-v0", "raw-a-B-v0-2"]
        assert plots.file_key("raw:a:B-v0") == keys["raw:a:B-v0"]  # what the report links
        assert plots.file_key("raw:other/C-v1") == "raw-other-C-v1"  # outside the report's set
    finally:
        plots.assign_file_keys([])


def test_the_report_names_its_figures_by_the_keys_it_assigned_then_forgets_them(tmp_path, monkeypatch):
    """report.build assigns each suite its file key once (so names that sanitise alike get
    -2) and links the figures by them; the keys end with the report."""
    from analysis import plots

    seen = []
    real = plots.assign_file_keys

    def spy(suites):
        seen.append(sorted(set(suites)))
        keys = real(suites)
        if seen[-1]:  # pretend the raw suite collided with another: it gets "-2"
            plots._KEYS["raw:" + BREAKOUT] = "raw-MinAtar-Breakout-v1-2"
        return keys

    monkeypatch.setattr(plots, "assign_file_keys", spy)
    write_sweep(tmp_path / "res", "mina", variants={"vmpo": "vmpo", "ppo": "ppo"},
                envs={BREAKOUT: "minatar"}, seeds=range(3), final=lambda v, e, s: 5.0 + s,
                steps=1000, n_evals=3)
    out = tmp_path / "out"
    assert report.main([str(tmp_path / "res"), "--out", str(out), "--reps", "50", "--jobs", "1"]) == 0
    assert seen[0] == ["raw:" + BREAKOUT] and seen[-1] == []  # assigned, then cleared
    md = (out / "report.md").read_text()
    assert "(curves_raw-MinAtar-Breakout-v1-2.png)" in md
    assert (out / "curves_raw-MinAtar-Breakout-v1-2.png").is_file()
