"""The report compares like with like, and its verdicts say how much they rest on:
which pairs get a probability of improvement (aggregate._pairs), the ablation verdicts
(claims.ablation_claims), the aggregate rows over other envs than their suite's, and the
tuning envs against the held-out ones (aggregate.env_split)."""

import csv

import numpy as np
import pytest
from rliable import library as rly
from rliable import metrics as rlm

from analysis import claims, report, report_sections
from analysis.aggregate import _pairs, same_budget
from analysis.bootstrap import derive_seed
from analysis.scores import Group, ablations, full_vmpos
from analysis.synthetic import write_sweep
from suites import normalise

HC, HOP, W2D = "HalfCheetah-v5", "Hopper-v5", "Walker2d-v5"


def _csv(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def _groups(budgets: dict[str, int]):
    """Groups of 3 seeds x 2 envs, each variant's runs at its budget, its algo the name's
    head (vmpo-no-topk@d: vmpo); the steps array (runs.table["steps"]) their rows index."""
    groups, steps = {}, []
    for v, b in budgets.items():
        rows = np.arange(len(steps), len(steps) + 6).reshape(3, 2)
        steps += [b] * 6
        groups[("mujoco", v)] = Group("mujoco", v, v.split("@")[0].split("-")[0], ["a", "b"],
                                      rows, np.zeros((3, 2)), 0)
    return groups, np.array(steps)


def test_a_pooled_two_label_set_gets_exactly_the_pairs_that_compare_like_with_like():
    m, k = 1_000_000, 100_000
    groups, steps = _groups(
        {"vmpo": m, "vmpo-no-topk": m, "ppo": m, "mpo": k, "vmpo@d": m, "vmpo-no-topk@d": m,
         "ppo@d": m, "trpo@d": m, "mpo@d": k})
    abl = ablations(groups, full_vmpos(groups, "vmpo"))
    assert abl == {"vmpo-no-topk": "vmpo", "vmpo-no-topk@d": "vmpo@d"}
    pairs = [p[1:] for p in _pairs(groups, "vmpo", abl, steps)]
    assert pairs == [
        # the baseline against its own label's variants; MPO's 100k runs meet no 1M baseline
        ("baseline", "vmpo", "ppo"), ("baseline", "vmpo", "vmpo-no-topk"),
        ("baseline", "vmpo@d", "ppo@d"), ("baseline", "vmpo@d", "trpo@d"),
        ("baseline", "vmpo@d", "vmpo-no-topk@d"),
        ("ablation", "vmpo", "vmpo-no-topk"), ("ablation", "vmpo@d", "vmpo-no-topk@d"),
        # namesakes at one budget, MPO's included; never an ablation's namesake
        ("label", "mpo", "mpo@d"), ("label", "ppo", "ppo@d"), ("label", "vmpo", "vmpo@d")]
    # a labelled baseline names its base: each label's namesake of it is that label's baseline
    assert [p[1:] for p in _pairs(groups, "ppo@d", {}, steps) if p[1] == "baseline"] == [
        ("baseline", "ppo", "vmpo"), ("baseline", "ppo", "vmpo-no-topk"),
        ("baseline", "ppo@d", "trpo@d"), ("baseline", "ppo@d", "vmpo-no-topk@d"),
        ("baseline", "ppo@d", "vmpo@d")]


def test_an_mpo_variant_at_a_smaller_budget_gets_no_pair_even_a_namesake():
    groups, steps = _groups({"vmpo": 1000, "mpo": 100, "mpo@d": 1000})
    assert _pairs(groups, "vmpo", {}, steps) == []
    assert not same_budget(groups[("mujoco", "vmpo")], groups[("mujoco", "mpo")], steps)
    # budgets are compared env by env: one run at another budget on one env is enough
    steps[groups[("mujoco", "mpo")].rows] = 1000
    steps[groups[("mujoco", "mpo")].rows[2, 1]] = 999
    assert not same_budget(groups[("mujoco", "vmpo")], groups[("mujoco", "mpo")], steps)
    steps[groups[("mujoco", "mpo")].rows[2, 1]] = 1000
    assert [p[1:] for p in _pairs(groups, "vmpo", {}, steps)] == [
        ("baseline", "vmpo", "mpo"), ("label", "mpo", "mpo@d")]


# ----------------------------------------------------------------------------------
# Ablation verdicts and aggregate rows over fewer envs
# ----------------------------------------------------------------------------------
FINALS = {"vmpo": 3000.0, "vmpo-no-topk": 300.0, "vmpo-no-alpha": 2900.0}
CONFIGS = {"vmpo-no-topk": {"topk_fraction": 1.0}, "vmpo-no-alpha": {"trust_region": False}}


@pytest.fixture(scope="module")
def ablated(tmp_path_factory):
    """Sweep `a`: V-MPO and no-topk on HalfCheetah and Hopper; sweep `b`: no-alpha on
    Hopper alone. Both grids complete: no-alpha's comparison covers 1 of the 2 envs."""
    d = tmp_path_factory.mktemp("abl")
    fin = lambda v, e, s: FINALS[v] + 100 * s  # noqa: E731
    write_sweep(d / "res", "a", variants={"vmpo": "vmpo", "vmpo-no-topk": "vmpo"},
                envs={HC: "mujoco", HOP: "mujoco"}, seeds=range(3), final=fin, steps=1000,
                n_evals=2, configs=CONFIGS)
    write_sweep(d / "res", "b", variants={"vmpo-no-alpha": "vmpo"}, envs={HOP: "mujoco"},
                seeds=range(3), final=fin, steps=1000, n_evals=2, configs=CONFIGS)
    out = d / "rep"
    assert report.main([str(d / "res"), "--out", str(out), "--reps", "200", "--jobs", "1"]) == 0
    return out, (out / "report.md").read_text()


def _claim(md, variant):
    return next(line for line in md.splitlines() if line.startswith(f"- `{variant}` ("))


def test_a_verdict_on_every_env_names_them_and_reproduces(ablated):
    _, md = ablated
    c = _claim(md, "vmpo-no-topk")
    # every no-topk run (300-500) below every V-MPO run (3000-3200) on both envs: P = 1
    assert "P(vmpo > vmpo-no-topk) = 1 [1, 1] (mujoco, 2 envs, 6 vs 6 runs)" in c
    assert c.endswith("This study reproduces the claim.")


def test_a_verdict_on_fewer_envs_than_the_suite_has_is_provisional(ablated):
    _, md = ablated
    c = _claim(md, "vmpo-no-alpha")
    # on Hopper V-MPO's 3000, 3100, 3200 against no-alpha's 2900, 3000, 3100:
    # P(vmpo > no-alpha), ties counting half: (1.5 + 2.5 + 3) / 9 = 7 / 9
    x = np.array([3000.0, 3100, 3200])
    y = np.array([2900.0, 3000, 3100])
    p = (np.mean(x[:, None] > y[None, :]) + 0.5 * np.mean(x[:, None] == y[None, :]))
    assert p == pytest.approx(7 / 9)
    assert f"P(vmpo > vmpo-no-alpha) = {p:.3g} [" in c
    assert "(mujoco, Hopper-v5 only, 3 vs 3 runs)" in c
    assert c.endswith("This study gives a provisional verdict (1 of 2 envs).")
    assert "reproduces" not in c and "contradicts" not in c
    # one line on the family, after the bullets
    lines = md.split("## The paper's claims, checked")[1].split("\n## ")[0].strip().splitlines()
    assert lines[-1] == claims.family_line(2)


def test_the_family_line_bounds_at_100_percent_and_says_the_bound_is_nominal():
    assert claims.family_line(1) == ("1 ablation comparison, each at 95% without correction "
                                     "for multiplicity.")
    two = claims.family_line(2)
    assert "up to min(100%, 2 x 5%) = 10% at nominal coverage" in two
    assert "(a percentile bootstrap on few runs covers less, so the chance is higher)" in two
    # Bonferroni's union bound: 25 x 5% is no probability
    assert "min(100%, 25 x 5%) = 100% at nominal coverage" in claims.family_line(25)
    assert "125%" not in claims.family_line(25)


def test_verdict_scope_and_its_verdict_alone():
    import pandas as pd

    final = pd.DataFrame({"suite": "mujoco", "variant": ["f", "f", "f", "a", "a", "b"],
                          "env": [HC, HOP, W2D, HC, HOP, HOP]})
    assert claims.verdict_scope(final, None, "mujoco", "a", "f") == ([HC, HOP], 3, False)
    # an env expected of the suite with no ok run yet counts; a run not ok makes it undone;
    # another suite's undone runs do not
    status = pd.DataFrame({"suite": ["mujoco", "mujoco", "atari"], "env": [HC, "Ant-v5", "Pong"],
                           "variant": ["f", "b", "a"], "status": ["ok", "running", "failed"]})
    assert claims.verdict_scope(final, status, "mujoco", "a", "f") == ([HC, HOP], 4, False)
    assert claims.verdict_scope(final, status, "mujoco", "b", "f") == ([HOP], 4, True)
    sv = claims.scope_verdict
    assert sv([HC, HOP], 2, False, 0.6, 0.9) == "reproduces the claim"
    assert sv([HC, HOP], 2, False, 0.1, 0.4) == "contradicts the claim"
    assert sv([HC, HOP], 2, False, 0.4, 0.9) == "does not reproduce the claim at this scale"
    assert sv([HC], 2, False, 0.6, 0.9) == "gives a provisional verdict (1 of 2 envs)"
    assert sv([HC, HOP], 2, True, 0.6, 0.9) == (
        "gives a provisional verdict (2 of 2 envs, some of these runs not done)")


def test_an_ablation_at_another_budget_gets_no_verdict(tmp_path):
    write_sweep(tmp_path / "res", "a", variants={"vmpo": "vmpo"}, envs={HC: "mujoco"},
                seeds=range(3), final=lambda v, e, s: FINALS[v] + 100 * s, steps=1000, n_evals=2)
    write_sweep(tmp_path / "res", "b", variants={"vmpo-no-topk": "vmpo"}, envs={HC: "mujoco"},
                seeds=range(3), final=lambda v, e, s: FINALS[v] + 100 * s, steps=500, n_evals=2,
                configs=CONFIGS)
    out = tmp_path / "rep"
    assert report.main([str(tmp_path / "res"), "--out", str(out), "--reps", "50",
                        "--jobs", "1"]) == 0
    md = (out / "report.md").read_text()
    c = _claim(md, "vmpo-no-topk")
    assert c.endswith("no comparison with `vmpo`: budgets differ (mujoco); the common-budget "
                      "table scores both at the smaller one.")
    assert "nan" not in c and "does not reproduce" not in c
    assert "ablation comparison" not in md  # no family of comparisons to count


def test_the_readme_describes_the_pairs_the_report_makes():
    from pathlib import Path

    text = " ".join((Path(report.__file__).parent / "README.md").read_text().split())
    assert "P(baseline > each other variant)" not in text
    assert "Pairs: the baseline against every other variant" not in text
    for said in ("against every other variant of the same label, never one of another label",
                 "The one-budget rule: no pair whose budgets",
                 "`label`: each variant X that is not an ablation against its namesake X@label",
                 "(control: the same runs rerun)", "no comparison: budgets differ",
                 "min(100%, n x 5%) at nominal coverage"):
        assert said in text, said


def test_an_incomplete_grid_makes_a_verdict_provisional_on_every_env(tmp_path):
    write_sweep(tmp_path / "res", "a", variants={"vmpo": "vmpo", "vmpo-no-topk": "vmpo"},
                envs={HC: "mujoco", HOP: "mujoco"}, seeds=range(3),
                final=lambda v, e, s: FINALS[v] + 100 * s, steps=1000, n_evals=2,
                configs=CONFIGS, states={("vmpo-no-topk", HC, 2): "running"})
    out = tmp_path / "rep"
    assert report.main([str(tmp_path / "res"), "--out", str(out), "--reps", "50", "--jobs", "1",
                        "--allow-incomplete"]) == 0
    md = (out / "report.md").read_text()
    c = _claim(md, "vmpo-no-topk")
    assert "(mujoco, 2 envs, 6 vs 4 runs)" in c  # 2 seeds x 2 envs: rliable's full matrix
    assert c.endswith("This study gives a provisional verdict (2 of 2 envs, some of these "
                      "runs not done).")
    assert "1 ablation comparison, each at 95% without correction for multiplicity." in md


def test_an_aggregate_row_over_fewer_envs_than_its_suite_names_them(ablated):
    out, md = ablated
    table = (out / "aggregate.md").read_text()
    assert "| mujoco | vmpo-no-alpha | 3 (3x1: Hopper-v5) |" in table
    assert "| mujoco | vmpo | 6 (3x2) |" in table
    assert "| vmpo-no-alpha | 3 (3x1: Hopper-v5) |" in md  # the report's section drops the suite


def test_seeds_needed_says_it_is_post_hoc_and_shows_no_null(ablated):
    _, md = ablated
    text = md.split("## Seeds needed")[1].split("\n## ")[0]
    assert "post-hoc power" in text and "does not show a null" in text
    assert "The table cannot tell whether the true effect is near zero" in text
    assert "a null the runs support" not in text


# ----------------------------------------------------------------------------------
# Tuning envs against held-out envs
# ----------------------------------------------------------------------------------
TEST_FINAL = {"vmpo": {HC: 4000.0, HOP: 1500.0, W2D: 1000.0},
              "ppo": {HC: 2000.0, HOP: 2500.0, W2D: 3000.0}}
SPEC = "name: t-tune\ntuning:\n  configs: 1\n  seeds: [1000, 1001]\n  envs: [HalfCheetah-v5]\n"


@pytest.fixture(scope="module")
def tuned(tmp_path_factory):
    """Test sweep `t` (vmpo on HalfCheetah, Hopper, Walker2d; ppo on Hopper and Walker2d),
    its tune sweep `t-tune` tuned on HalfCheetah (spec.yaml), seeds 1000 and 1001."""
    d = tmp_path_factory.mktemp("ho")
    fin = lambda v, e, s: TEST_FINAL[v][e] + 200 * s  # noqa: E731
    write_sweep(d / "res", "t", variants={"vmpo": "vmpo"}, envs={HC: "mujoco", HOP: "mujoco",
                W2D: "mujoco"}, seeds=range(4), final=fin, steps=1000, n_evals=2)
    write_sweep(d / "res", "t", variants={"ppo": "ppo"}, envs={HOP: "mujoco", W2D: "mujoco"},
                seeds=range(4), final=fin, steps=1000, n_evals=2)
    tune = write_sweep(d / "res", "t-tune", variants={"vmpo.c00": "vmpo", "ppo.c00": "ppo"},
                       envs={HC: "mujoco"}, seeds=[1000, 1001],
                       final=lambda v, e, s: 1000.0, steps=1000, n_evals=2)
    (tune / "spec.yaml").write_text(SPEC)
    out = d / "rep"
    assert report.main([str(d / "res" / "t"), "--out", str(out), "--reps", "300", "--seed", "4",
                        "--jobs", "1", "--allow-incomplete"]) == 0
    return out


def _norm(v, envs):
    """(4 seeds, len(envs)) normalised final scores of the test sweep."""
    return np.array([[normalise(e, [TEST_FINAL[v][e] + 200 * s])[0] for e in envs]
                     for s in range(4)])


def test_the_tuning_envs_come_from_the_tune_spec(tmp_path):
    from analysis.load import load
    from analysis.tuning import split_trials

    write_sweep(tmp_path / "res", "x-tune", variants={"ppo.c00": "ppo"}, envs={HOP: "mujoco"},
                seeds=[1000], final=lambda v, e, s: 1.0, steps=10, n_evals=1)
    (tmp_path / "res" / "x-tune" / "spec.yaml").write_text(
        "tuning:\n  envs: [HalfCheetah-v5, Hopper-v5]\n")
    _, trials = split_trials(load([str(tmp_path / "res")]))
    # the spec's envs, also one no trial has reached yet
    assert report_sections.trial_envs(trials) == {HC, HOP}


def test_held_out_envs_table_splits_each_variant_s_envs(tuned):
    rows = {(r["variant"], r["part"]): r for r in _csv(tuned / "held_out_envs.csv")}
    assert set(rows) == {("vmpo", "tuning"), ("vmpo", "held out"), ("ppo", "held out")}
    assert rows[("vmpo", "tuning")]["envs"] == HC
    assert rows[("vmpo", "held out")]["envs"] == f"{HOP}, {W2D}"
    # the IQM over the held-out envs, and its interval as rliable draws it with this seed
    x = _norm("vmpo", [HOP, W2D])
    r = rows[("vmpo", "held out")]
    assert (r["n_runs"], r["n_tasks"]) == ("8", "2")
    np.random.seed(derive_seed(4, "env_split", "mujoco", "vmpo", f"{HOP},{W2D}"))
    pt, ci = rly.get_interval_estimates(
        {"x": x}, lambda a: np.array([rlm.aggregate_iqm(a)]), reps=300)
    assert float(r["point"]) == pytest.approx(rlm.aggregate_iqm(x), rel=1e-5)
    assert float(r["lower"]) == pytest.approx(ci["x"][0][0], rel=1e-5)
    assert float(r["upper"]) == pytest.approx(ci["x"][1][0], rel=1e-5)
    assert float(rows[("vmpo", "tuning")]["point"]) == pytest.approx(
        rlm.aggregate_iqm(_norm("vmpo", [HC])), rel=1e-5)
    # PPO ran held-out envs only: its figures are the aggregate table's IQM row exactly
    agg = next(a for a in _csv(tuned / "aggregate.csv")
               if a["variant"] == "ppo" and a["metric"] == "IQM")
    assert [rows[("ppo", "held out")][c] for c in ("point", "lower", "upper")] == [
        agg[c] for c in ("point", "lower", "upper")]


def test_held_out_section_says_what_a_tuning_env_score_means(tuned):
    md = (tuned / "report.md").read_text()
    text = md.split("## Held-out envs beside tuning envs")[1].split("\n## ")[0]
    assert ("A variant tuned on HalfCheetah-v5 is evaluated there on seeds its tuning never "
            "used, but on envs it was selected on") in text
    assert ("Hopper-v5 and Walker2d-v5 are held out from this study's tuning for every "
            "algorithm, though not from the literature's") in text
    assert "PPO's defaults, its trial c00, were community-tuned on MuJoCo" in text
    assert "| mujoco | ppo | — | — | — | Hopper-v5, Walker2d-v5 |" in text
    assert md.index("## Held-out envs beside tuning envs") < md.index("\n## Tuning\n")
    assert "held_out_envs.tex" in md.split("## Files")[1]


def test_no_held_out_table_where_a_suite_holds_only_tuning_envs_or_none():
    from analysis.aggregate import env_split_jobs

    groups, _ = _groups({"vmpo": 1000, "ppo": 1000})  # envs a and b
    assert env_split_jobs(groups, {"a", "b"}, 10, 0, "fast") == {}  # nothing held out
    assert env_split_jobs(groups, {"c"}, 10, 0, "fast") == {}       # tuned elsewhere
    jobs = env_split_jobs(groups, {"a"}, 10, 0, "fast")
    assert sorted(jobs) == [("env_split", "mujoco", v, p) for v in ("ppo", "vmpo")
                            for p in ("held out", "tuning")]
    assert jobs[("env_split", "mujoco", "vmpo", "tuning")][1][0].shape == (3, 1)
