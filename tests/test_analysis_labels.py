"""`report.py --label SWEEP=LABEL`: two studies whose variants share names, in one report."""

import csv
import json

import matplotlib.colors as mcolors
import numpy as np
import pytest
from rliable import library as rly
from rliable import metrics as rlm

from analysis import plots, report
from analysis.bootstrap import derive_seed
from analysis.plots import Style, variant_colours
from analysis.synthetic import write_sweep

PONG, BREAKOUT = "ALE/Pong-v5", "ALE/Breakout-v5"
TABLE = {PONG: (-20.7, 14.6), BREAKOUT: (1.7, 30.5)}
ENVS = {BREAKOUT: "atari", PONG: "atari"}
VARIANTS = {"vmpo": "vmpo", "vmpo-no-topk": "vmpo", "ppo": "ppo"}
SEEDS = range(4)
REPS = 300
# normalised finals: the rerun ("new") moves V-MPO from 0.2 to 0.25 and PPO from 0.5 to
# 0.52 (overlapping seeds), and no-topk from 0.1 to 0.6 (every new run above every old one)
BASE = {("old", "vmpo"): 0.2, ("new", "vmpo"): 0.25, ("old", "vmpo-no-topk"): 0.1,
        ("new", "vmpo-no-topk"): 0.6, ("old", "ppo"): 0.5, ("new", "ppo"): 0.52}


def norm(sweep, v, e, s):
    return BASE[(sweep, v)] + 0.03 * s + 0.01 * sorted(ENVS).index(e)


def matrix(sweep, v):
    return np.array([[norm(sweep, v, e, s) for e in sorted(ENVS)] for s in SEEDS])


def _final(sweep):
    def f(v, e, s):
        r, h = TABLE[e]
        return r + norm(sweep, v, e, s) * (h - r)
    return f


def _csv(path):
    with open(path) as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def res(tmp_path_factory):
    d = tmp_path_factory.mktemp("lab")
    for sweep in ("old", "new"):
        write_sweep(d / "res", sweep, variants=VARIANTS, envs=ENVS, seeds=SEEDS,
                    final=_final(sweep), steps=1000, n_evals=4, manifest="csv")
    return d / "res"


@pytest.fixture(scope="module")
def built(res, tmp_path_factory):
    out = tmp_path_factory.mktemp("out") / "rep"
    assert report.main([str(res), "--out", str(out), "--reps", str(REPS), "--seed", "3",
                        "--jobs", "1", "--label", "old=defaults"]) == 0
    return out


def test_without_a_label_two_studies_of_one_variant_name_are_refused(res, tmp_path, capsys):
    assert report.main([str(res), "--out", str(tmp_path / "o"), "--reps", "50"]) == 2
    assert "two runs of ppo on ALE/Breakout-v5 with seed 0" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_labelled_variants_are_aggregated_apart(built):
    agg = {(r["variant"], r["metric"]): r for r in _csv(built / "aggregate.csv")}
    assert {v for v, _ in agg} == {"vmpo", "vmpo-no-topk", "ppo", "vmpo@defaults",
                                   "vmpo-no-topk@defaults", "ppo@defaults"}
    for sweep, name in (("old", "ppo@defaults"), ("new", "ppo")):
        iqm = agg[(name, "IQM")]
        assert float(iqm["point"]) == pytest.approx(rlm.aggregate_iqm(matrix(sweep, "ppo")),
                                                    rel=1e-9)
        assert (iqm["n_runs"], iqm["n_seeds"]) == ("8", "4")


def test_each_variant_is_compared_with_its_namesake_and_the_baseline_within_its_label(built):
    rows = {(r["kind"], r["x"], r["y"]): r for r in _csv(built / "probability_of_improvement.csv")}
    # every pair the pooled report makes: the baseline only against its own label's
    # variants, no label pair of an ablation (vmpo-no-topk@defaults against vmpo-no-topk
    # would mix the tuning with the ablation: here P = 1, every new run above every old)
    assert list(rows) == [
        ("baseline", "vmpo", "ppo"), ("baseline", "vmpo", "vmpo-no-topk"),
        ("baseline", "vmpo@defaults", "ppo@defaults"),
        ("baseline", "vmpo@defaults", "vmpo-no-topk@defaults"),
        ("ablation", "vmpo", "vmpo-no-topk"),
        ("ablation", "vmpo@defaults", "vmpo-no-topk@defaults"),
        ("label", "ppo", "ppo@defaults"), ("label", "vmpo", "vmpo@defaults")]
    # an overlapping pair: rliable's own estimate with the report's seed for that pair
    x, y = matrix("new", "vmpo"), matrix("old", "vmpo")
    np.random.seed(derive_seed(3, "poi", "atari", "vmpo", "vmpo@defaults"))
    pt, ci = rly.get_interval_estimates(
        {"x": [x, y]}, lambda a, b: np.array([rlm.probability_of_improvement(a, b)]), reps=REPS)
    r = rows[("label", "vmpo", "vmpo@defaults")]
    assert 0.5 < float(r["point"]) < 1.0
    assert float(r["point"]) == pytest.approx(pt["x"][0], rel=1e-5)
    assert float(r["lower"]) == pytest.approx(ci["x"][0][0], rel=1e-5)
    assert float(r["upper"]) == pytest.approx(ci["x"][1][0], rel=1e-5)
    md = (built / "probability_of_improvement.md").read_text()
    assert "| atari | label | P(vmpo > vmpo@defaults) |" in md
    assert "| atari | baseline + ablation | P(vmpo@defaults > vmpo-no-topk@defaults) |" in md


def test_a_label_pair_whose_interval_holds_one_half_gets_seeds_needed(built):
    rows = _csv(built / "seeds_needed.csv")
    assert ("label", "ppo", "ppo@defaults") in {(r["kind"], r["x"], r["y"]) for r in rows}


def test_ablations_are_compared_within_their_own_label(built):
    ab = _csv(built / "ablation.csv")
    assert [(a["variant"], a["full"]) for a in ab] == [
        ("vmpo-no-topk", "vmpo"), ("vmpo-no-topk@defaults", "vmpo@defaults")]
    old = ab[1]
    assert float(old["full_point"]) == pytest.approx(rlm.aggregate_iqm(matrix("old", "vmpo")), rel=1e-9)
    assert float(old["point"]) == pytest.approx(
        rlm.aggregate_iqm(matrix("old", "vmpo-no-topk")), rel=1e-9)
    md = (built / "report.md").read_text()
    assert "Sweep `old` labelled `defaults` (`--label old=defaults`)" in md
    assert "--jobs" not in md and "--seed 3 --label old=defaults`" in md  # the command line


def test_a_labelled_baseline_and_an_ablation_without_its_full(res, tmp_path):
    out = tmp_path / "rep"
    assert report.main([str(res), "--out", str(out), "--reps", "50", "--jobs", "1",
                        "--label", "old=defaults", "--baseline", "vmpo-no-topk@defaults",
                        "--variants", "vmpo-no-topk,vmpo@defaults,vmpo-no-topk@defaults"]) == 0
    ab = _csv(out / "ablation.csv")
    assert [(a["variant"], a["full"]) for a in ab] == [("vmpo@defaults", "vmpo-no-topk@defaults")]
    md = (out / "report.md").read_text()
    assert ("no ablation comparison for vmpo-no-topk: no full V-MPO of their sweep label"
            in md)


def test_a_label_pair_that_reran_the_same_runs_says_so(tmp_path, monkeypatch):
    for sweep in ("old", "new"):
        sd = write_sweep(tmp_path / "res", sweep, variants={"ppo": "ppo"}, envs=ENVS,
                         seeds=SEEDS, final=_final(sweep), steps=1000, n_evals=2)
    # the same resolved config and seed in both sweeps: the same run id (sweeps/state.py)
    for d in sorted((tmp_path / "res" / "old").iterdir())[:3]:
        cfg = json.loads((d / "config.json").read_text())
        twin = next(x for x in (tmp_path / "res" / "new").iterdir()
                    if json.loads((x / "config.json").read_text())["seed"] == cfg["seed"]
                    and json.loads((x / "config.json").read_text())["env"] == cfg["env"])
        cfg["run_id"] = json.loads((twin / "config.json").read_text())["run_id"]
        (d / "config.json").write_text(json.dumps(cfg))
    out = tmp_path / "rep"
    drawn, real = {}, plots.save
    monkeypatch.setattr(plots, "save", lambda fig, d, name: drawn.setdefault(name, fig)
                        and real(fig, d, name))
    assert report.main([str(tmp_path / "res"), "--out", str(out), "--reps", "50", "--jobs", "1",
                        "--label", "old=defaults"]) == 0
    md = (out / "report.md").read_text()
    poi = next(r for r in _csv(out / "probability_of_improvement.csv") if r["kind"] == "label")
    # the figure alone says which row is the control: its tick label, and only its
    ticks = [t.get_text() for t in drawn["poi_atari"].axes[0].get_yticklabels()]
    tagged = [t for t in ticks if t.endswith(plots.CONTROL_TAG)]
    assert len(tagged) == 1 and tagged[0].startswith("P(ppo > ppo@defaults)")
    # under the table, before its figure: the pair, its interval and what it measures
    section = md.split("### Probability of improvement")[1].split("![poi")[0]
    control = next(line for line in section.splitlines() if line.startswith("**Control"))
    from analysis.tables import ci
    shown = ci(float(poi["point"]), float(poi["lower"]), float(poi["upper"]))
    assert control.startswith(f"**Control: P(ppo > ppo@defaults) = {shown}.** `ppo` and "
                              "`ppo@defaults` share 3 run ids (of the 8 vs 8 runs compared)")
    assert "noise floor of every X vs X@defaults comparison" in control
    # the Notes keep one short pointer
    assert "- atari: `ppo` and `ppo@defaults` share 3 run id(s), reruns: the control" in md


@pytest.mark.parametrize("args,match", [
    (["--label", "nosuch=x"], "--label nosuch=x: no sweep 'nosuch' in this report; its sweeps: new, old"),
    (["--label", "old"], "--label 'old': expected SWEEP=LABEL"),
    (["--label", "old=a@b"], "--label 'old=a@b': expected SWEEP=LABEL"),
    (["--label", "=x"], "--label '=x': expected SWEEP=LABEL"),
    (["--label", "old=a", "--label", "old=b"], "--label gives sweep 'old' two labels: 'a' and 'b'"),
    (["--variants", " , "], "--variants: expected comma-separated variant names, got ' , '"),
])
def test_bad_labels_exit_2_and_write_nothing(res, tmp_path, capsys, args, match):
    out = tmp_path / "o"
    assert report.main([str(res), "--out", str(out), "--reps", "50", *args]) == 2
    assert match in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize("flag", [["--label", "old=defaults"], ["--variants", "ppo"]])
def test_pooling_flags_need_one_report_folder(res, tmp_path, capsys, monkeypatch, flag):
    """Without --out each sweep gets its own report: a label or a selection names
    something of the pooled report, so refuse before writing any."""
    monkeypatch.chdir(tmp_path)
    assert report.main([str(res), "--reps", "50", *flag]) == 2
    assert "give it a folder with --out DIR" in capsys.readouterr().err
    assert not (tmp_path / "reports").exists()


def test_a_test_sweep_whose_trials_join_cannot_be_labelled(tmp_path, capsys):
    def f(v, e, s):
        return _final("old")("ppo", e, s)

    write_sweep(tmp_path / "res", "t", variants={"ppo": "ppo"}, envs=ENVS, seeds=[5, 6],
                final=f, steps=1000, n_evals=2)
    write_sweep(tmp_path / "res", "t-tune", variants={"ppo.c00": "ppo"}, envs=ENVS,
                seeds=[0, 1], final=f, steps=1000, n_evals=2)
    for arg in ("t=x", "t-tune=x"):
        assert report.main([str(tmp_path / "res" / "t"), "--out", str(tmp_path / "o"),
                            "--reps", "50", "--label", arg]) == 2
        assert "tuning trials join this report" in capsys.readouterr().err
        assert not (tmp_path / "o").exists()


def test_a_labelled_variant_takes_its_namesake_s_colour_lighter_and_dash_dotted():
    slots = variant_colours(["ppo", "ppo@defaults", "sac@old", "vmpo@old"])
    assert slots == {"ppo": 4, "ppo@defaults": 4, "sac@old": 7, "vmpo@old": 0}
    st = Style(["ppo", "ppo@defaults"], 10, None)
    ppo, old = np.array(mcolors.to_rgb(st.colour["ppo"])), np.array(mcolors.to_rgb(st.colour["ppo@defaults"]))
    from analysis.plots import labelled_tint  # per base name (plots.LABELLED_TINTS)
    assert 0 < labelled_tint("ppo@defaults") <= 0.5
    assert np.allclose(old, ppo + (1 - ppo) * labelled_tint("ppo@defaults"))
    assert (st.ls["ppo"], st.ls["ppo@defaults"]) == ("-", "-.")


def test_variants_keeps_only_the_named_ones_and_their_manifest_rows(res, tmp_path, capsys):
    out = tmp_path / "rep"
    # complete without --allow-incomplete: the manifests' other variants are left out too
    assert report.main([str(res), "--out", str(out), "--reps", "50", "--jobs", "1",
                        "--label", "old=defaults", "--variants", "ppo, ppo@defaults,vmpo"]) == 0
    agg = _csv(out / "aggregate.csv")
    assert sorted({r["variant"] for r in agg}) == ["ppo", "ppo@defaults", "vmpo"]
    pairs = {(r["kind"], r["x"], r["y"]) for r in _csv(out / "probability_of_improvement.csv")}
    # no vmpo@defaults, so no baseline pair in the defaults label: vmpo meets ppo@defaults nowhere
    assert pairs == {("baseline", "vmpo", "ppo"), ("label", "ppo", "ppo@defaults")}
    assert "--variants ppo,ppo@defaults,vmpo`" in (out / "report.md").read_text()
    # the published side-by-side (CleanRL's PPO on Breakout and Pong) has both namesakes
    pub = _csv(out / "published_side_by_side.csv")
    assert {(r["env"], r["algo"]) for r in pub} >= {(BREAKOUT, "ppo"), (BREAKOUT, "ppo@defaults")}
    assert report.main([str(res), "--out", str(tmp_path / "o"), "--reps", "50",
                        "--variants", "ppo,sac"]) == 2
    err = capsys.readouterr().err
    assert "--variants: no variant 'sac' in this report; its variants: ppo, vmpo, vmpo-no-topk" in err
    assert not (tmp_path / "o").exists()


def test_variants_keeps_a_named_variant_that_has_no_runs_yet_as_missing(tmp_path, capsys):
    write_sweep(tmp_path / "res", "old", variants={"vmpo": "vmpo"}, envs=ENVS, seeds=SEEDS,
                final=_final("old"), steps=1000, n_evals=2, manifest="csv")
    write_sweep(tmp_path / "res", "new", variants={"vmpo": "vmpo", "ppo": "ppo"}, envs=ENVS,
                seeds=SEEDS, final=_final("new"), steps=1000, n_evals=2, manifest="csv",
                states={("vmpo", e, s): "missing" for e in ENVS for s in SEEDS})
    args = [str(tmp_path / "res"), "--out", str(tmp_path / "o"), "--reps", "50", "--jobs", "1",
            "--label", "old=defaults", "--variants", "vmpo,vmpo@defaults"]
    assert report.main(args) == 2  # new's 8 vmpo runs are expected and missing
    assert "incomplete grid: 8 miss" in capsys.readouterr().err
    assert report.main([*args, "--allow-incomplete"]) == 0
    md = (tmp_path / "o" / "report.md").read_text()
    assert "# vmpo-bench report: new, old" in md


def test_a_sweep_with_a_manifest_and_no_run_yet_counts_as_missing(tmp_path, capsys):
    write_sweep(tmp_path / "res", "a", variants={"ppo": "ppo"}, envs=ENVS, seeds=SEEDS,
                final=_final("old"), steps=1000, n_evals=2, manifest="csv")
    write_sweep(tmp_path / "res", "b", variants={"ppo": "ppo"}, envs=ENVS, seeds=SEEDS,
                final=_final("old"), steps=1000, n_evals=2, manifest="csv",
                states={("ppo", e, s): "missing" for e in ENVS for s in SEEDS})
    args = [str(tmp_path / "res"), "--out", str(tmp_path / "o"), "--reps", "50", "--jobs", "1"]
    assert report.main(args) == 2
    assert "incomplete grid: 8 miss" in capsys.readouterr().err
    assert report.main([*args, "--label", "b=x", "--allow-incomplete"]) == 0


def test_labelled_lines_are_drawn_dash_dotted(monkeypatch, tmp_path):
    import pandas as pd

    from analysis import plots
    drawn = {}
    monkeypatch.setattr(plots, "save", lambda fig, out, name: drawn.setdefault(name, fig) and [])
    prof = pd.DataFrame({"suite": "atari", "variant": ["ppo"] * 2 + ["ppo@defaults"] * 2,
                         "tau": [0.0, 1.0] * 2, "point": [1.0, 0.0] * 2, "lower": 0.0,
                         "upper": 1.0, "n_runs": 8})
    plots.profile_figure(prof, "atari", Style(["ppo", "ppo@defaults"], 10, None), tmp_path)
    lines = {ln.get_label(): ln.get_linestyle() for ln in drawn["profile_atari"].axes[0].lines}
    assert lines == {"ppo (n=8)": "-", "ppo@defaults (n=8)": "-."}


def test_label_pairs_are_made_per_suite(tmp_path):
    """An Atari env and a raw-return MinAtar env: two strata, each with its own pair."""
    envs = {BREAKOUT: "atari", "MinAtar/Breakout-v1": "minatar"}
    for sweep, lift in (("old", 0.0), ("new", 5.0)):
        write_sweep(tmp_path / "res", sweep, variants={"ppo": "ppo"}, envs=envs, seeds=SEEDS,
                    final=lambda v, e, s, lift=lift: 10.0 + s + lift, steps=1000, n_evals=2)
    out = tmp_path / "rep"
    assert report.main([str(tmp_path / "res"), "--out", str(out), "--reps", "50", "--jobs", "1",
                        "--label", "old=defaults"]) == 0
    rows = {(r["suite"], r["kind"], r["x"], r["y"]): r["point"]
            for r in _csv(out / "probability_of_improvement.csv")}
    assert rows == {("atari", "label", "ppo", "ppo@defaults"): "1",
                    ("raw:MinAtar/Breakout-v1", "label", "ppo", "ppo@defaults"): "1"}


def test_the_duals_figure_draws_each_full_v_mpo_s_bound_in_its_colour(monkeypatch, tmp_path):
    import pandas as pd

    from analysis import plots
    drawn = {}
    monkeypatch.setattr(plots, "save", lambda fig, out, name: drawn.setdefault(name, fig) and [])
    tr = pd.DataFrame({"suite": "mujoco", "variant": ["vmpo", "vmpo@defaults"] * 2,
                       "metric": "kl/mean", "step": [1, 1, 2, 2], "median": 1e-3, "q25": 1e-4,
                       "q75": 1e-2, "n_runs": 3})
    st = Style(["vmpo", "vmpo@defaults"], 10, None)
    plots.duals_figure(tr, "mujoco", st, tmp_path,
                       {"vmpo": {"kl/mean": 0.08}, "vmpo@defaults": {"kl/mean": 0.0075}})
    fig = drawn["duals_mujoco"]
    hl = {ln.get_ydata()[0]: ln.get_color() for ln in fig.axes[0].lines if ln.get_linestyle() == "--"}
    assert hl == {0.08: st.colour["vmpo"], 0.0075: st.colour["vmpo@defaults"]}
    assert "the KL bounds ε of vmpo, vmpo@defaults in their colours" in fig._suptitle.get_text()
    drawn.clear()
    plots.duals_figure(tr, "mujoco", st, tmp_path, {"vmpo": {"kl/mean": 0.08}})
    fig = drawn["duals_mujoco"]
    assert [ln.get_color() for ln in fig.axes[0].lines if ln.get_linestyle() == "--"] == ["black"]
    assert "dashed: vmpo's KL bound ε" in fig._suptitle.get_text()


def test_a_label_follows_the_variant_name_rule_of_specs():
    from analysis.labels import LABEL_RE
    from sweeps.spec import NAME_RE
    assert LABEL_RE.pattern == NAME_RE.pattern
