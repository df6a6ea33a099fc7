"""The report end to end on synthetic run directories with known scores."""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from rliable import library as rly
from rliable import metrics as rlm

from analysis import report
from analysis.bootstrap import derive_seed
from analysis.synthetic import write_sweep

ROOT = Path(__file__).resolve().parent.parent
PONG, BREAKOUT, QBERT = "ALE/Pong-v5", "ALE/Breakout-v5", "ALE/Qbert-v5"
TABLE = {PONG: (-20.7, 14.6), BREAKOUT: (1.7, 30.5), QBERT: (163.9, 13455.0)}
ENVS = {BREAKOUT: "atari", PONG: "atari", QBERT: "atari"}
VARIANTS = {"vmpo": "vmpo", "vmpo-no-topk": "vmpo", "ppo": "ppo"}
BASE = {"vmpo": 0.8, "vmpo-no-topk": 0.3, "ppo": 0.5}
SEEDS = range(4)
REPS = 300


def norm(v, e, s):
    """The known normalised final score of a run."""
    return BASE[v] + 0.1 * s + 0.05 * sorted(ENVS).index(e) + (0.7 if s == 3 and v == "ppo" else 0)


def final(v, e, s):
    r, h = TABLE[e]
    return r + norm(v, e, s) * (h - r)


def matrix(v):
    """(seeds, envs) of known normalised scores, envs sorted like the report's."""
    return np.array([[norm(v, e, s) for e in sorted(ENVS)] for s in SEEDS])


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    d = tmp_path_factory.mktemp("rep")
    write_sweep(d / "results", "sw", variants=VARIANTS, envs=ENVS, seeds=SEEDS, final=final,
                steps=1000, n_evals=5, frameskip={e: 4 for e in ENVS}, manifest="csv")
    out = d / "out"
    rc = report.main([str(d / "results"), "--out", str(out), "--reps", str(REPS),
                      "--seed", "7", "--jobs", "1"])
    assert rc == 0
    return d, out


def _csv(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_outputs(built):
    _, out = built
    names = set(os.listdir(out))
    for stem in ("aggregate", "per_env", "probability_of_improvement", "ablation",
                 "completeness_summary"):
        assert {f"{stem}.csv", f"{stem}.md", f"{stem}.tex"} <= names
    for fig in ("aggregate_atari", "profile_atari", "poi_atari", "curves_atari",
                "curves_per_env_atari", "ablation"):
        assert {f"{fig}.png", f"{fig}.pdf"} <= names
    assert {"report.md", "curves.csv", "curves_per_env.csv", "profiles.csv", "completeness.csv",
            "published.csv", "published.md"} <= names
    assert not [n for n in os.listdir(out.parent) if n.startswith(".")]  # no temp left


def test_aggregate_csv_equals_rliable_called_directly(built):
    _, out = built
    rows = _csv(out / "aggregate.csv")
    assert list(rows[0]) == ["suite", "variant", "metric", "point", "lower", "upper",
                             "n_runs", "n_tasks", "n_seeds", "complete"]
    assert len(rows) == 3 * 4
    funcs = {"IQM": rlm.aggregate_iqm, "Median": rlm.aggregate_median,
             "Mean": rlm.aggregate_mean, "Optimality Gap": rlm.aggregate_optimality_gap}
    for r in rows:
        scores = matrix(r["variant"])
        np.random.seed(derive_seed(7, "aggregate", "atari", r["variant"], r["metric"]))
        f = funcs[r["metric"]]
        pt, ci = rly.get_interval_estimates({"x": scores}, lambda x, f=f: np.array([f(x)]),
                                            reps=REPS)
        for got, want in ((r["point"], pt["x"][0]), (r["lower"], ci["x"][0][0]),
                          (r["upper"], ci["x"][1][0])):
            assert float(got) == pytest.approx(want, rel=1e-5, abs=1e-9), r
        assert (r["n_runs"], r["n_tasks"], r["n_seeds"], r["complete"]) == ("12", "3", "4", "true")
    iqm = {r["variant"]: float(r["point"]) for r in rows if r["metric"] == "IQM"}
    # known IQMs: middle half of the 12 known scores
    for v in VARIANTS:
        assert iqm[v] == pytest.approx(np.mean(np.sort(matrix(v).ravel())[3:9]), abs=1e-5)


def test_probability_of_improvement_and_ablation(built):
    _, out = built
    rows = _csv(out / "probability_of_improvement.csv")
    pairs = [(r["kind"], r["x"], r["y"]) for r in rows]
    assert pairs == [("baseline", "vmpo", "ppo"), ("baseline", "vmpo", "vmpo-no-topk"),
                     ("ablation", "vmpo", "vmpo-no-topk")]
    # vmpo beats vmpo-no-topk on every run pair of every env: P = 1 exactly
    r = rows[1]
    assert (r["point"], r["lower"], r["upper"]) == ("1", "1", "1")
    x, y = matrix("vmpo"), matrix("ppo")
    np.random.seed(derive_seed(7, "poi", "atari", "vmpo", "ppo"))
    pt, ci = rly.get_interval_estimates(
        {"x": [x, y]}, lambda a, b: np.array([rlm.probability_of_improvement(a, b)]), reps=REPS)
    assert float(rows[0]["point"]) == pytest.approx(pt["x"][0], rel=1e-5)
    assert float(rows[0]["lower"]) == pytest.approx(ci["x"][0][0], rel=1e-5)
    ab = _csv(out / "ablation.csv")
    assert [(a["variant"], a["full"]) for a in ab] == [("vmpo-no-topk", "vmpo")]
    assert ab[0]["p_full_better"] == "1"
    # the same envs: full V-MPO's IQM is its aggregate row
    agg = next(r for r in _csv(out / "aggregate.csv") if r["variant"] == "vmpo" and r["metric"] == "IQM")
    assert (ab[0]["full_point"], ab[0]["full_lower"], ab[0]["n_tasks"]) == (agg["point"], agg["lower"], "3")


def test_an_ablation_on_fewer_envs_is_compared_on_the_envs_it_has(tmp_path):
    """No-topk not run on Qbert: full V-MPO's IQM beside it is over Breakout and Pong only
    (over all three it would mix a task the ablation never saw into the comparison)."""
    write_sweep(tmp_path / "res", "sw", variants=VARIANTS, envs=ENVS, seeds=SEEDS, final=final,
                steps=1000, n_evals=5, manifest="json",
                states={("vmpo-no-topk", QBERT, s): "missing" for s in SEEDS})
    out = tmp_path / "out"
    assert report.main([str(tmp_path / "res"), "--out", str(out), "--reps", "200",
                        "--allow-incomplete", "--jobs", "1"]) == 0
    ab = _csv(out / "ablation.csv")[0]
    both = matrix("vmpo")[:, :2]  # sorted envs: Breakout, Pong (Qbert is the third)
    assert float(ab["full_point"]) == pytest.approx(rlm.aggregate_iqm(both), rel=1e-9)
    assert (ab["n_tasks"], ab["full_n_runs"], ab["n_runs"]) == ("2", "8", "8")
    whole = next(r for r in _csv(out / "aggregate.csv") if r["variant"] == "vmpo" and r["metric"] == "IQM")
    assert float(whole["point"]) == pytest.approx(rlm.aggregate_iqm(matrix("vmpo")), rel=1e-9)
    assert float(whole["point"]) != pytest.approx(float(ab["full_point"]))
    assert float(ab["point"]) == pytest.approx(rlm.aggregate_iqm(matrix("vmpo-no-topk")[:, :2]), rel=1e-9)
    assert "| sw | vmpo-no-topk |" not in (out / "ablation.md").read_text()  # suite column: atari
    assert "| 8 | 2 |" in (out / "ablation.md").read_text()


def test_per_env_final_scores(built):
    _, out = built
    rows = {(r["env"], r["variant"]): r for r in _csv(out / "per_env.csv")}
    r = rows[(PONG, "vmpo")]
    raws = [final("vmpo", PONG, s) for s in SEEDS]
    assert r["n"] == "4"
    assert float(r["mean"]) == pytest.approx(np.mean(raws), rel=1e-5)
    half = 3.182446305284263 * np.std(raws, ddof=1) / 2  # t(0.975, 3) * sd / sqrt(4)
    assert float(r["upper"]) == pytest.approx(np.mean(raws) + half, rel=1e-5)
    assert float(r["norm_mean"]) == pytest.approx(np.mean([norm("vmpo", PONG, s) for s in SEEDS]),
                                                  rel=1e-5)


def test_report_md(built):
    _, out = built
    md = (out / "report.md").read_text()
    for text in ("# vmpo-bench report: sw", "## Atari", "![aggregate atari](aggregate_atari.png)",
                 "## V-MPO ablations", "## Provenance", "0000000000000000000000000000000000000000",
                 "torch: 2.13.0 (36)", "ours / openai/baselines",
                 "one CPU model): Synthetic CPU (torch AVX2) (36)", "Published figures beside ours",
                 "DQN Zoo", "300 replications, seed 7"):
        assert text in md, text
    assert "INCOMPLETE" not in md and "Runs resumed from a checkpoint" not in md


def test_deterministic_and_replaces_an_old_report(built, tmp_path):
    d, out = built
    again = tmp_path / "again"
    assert report.main([str(d / "results"), "--out", str(again), "--reps", str(REPS),
                        "--seed", "7", "--jobs", "2"]) == 0
    for name in sorted(os.listdir(out)):
        assert (out / name).read_bytes() == (again / name).read_bytes(), name
    # a different seed changes intervals, not points
    assert report.main([str(d / "results"), "--out", str(again), "--reps", str(REPS),
                        "--seed", "8", "--jobs", "1"]) == 0
    a, b = _csv(out / "aggregate.csv"), _csv(again / "aggregate.csv")
    assert [r["point"] for r in a] == [r["point"] for r in b]
    assert [r["lower"] for r in a] != [r["lower"] for r in b]


def test_incomplete_grid(tmp_path, capsys):
    write_sweep(tmp_path / "res", "sw", variants=VARIANTS, envs=ENVS, seeds=SEEDS, final=final,
                steps=1000, n_evals=5, manifest="json",
                states={("ppo", PONG, 1): "missing", ("vmpo", QBERT, 2): "failed",
                        ("vmpo-no-topk", BREAKOUT, 0): "running"})
    resumed = next(d for d in (tmp_path / "res" / "sw").iterdir() if (d / "config.json").exists()
                   and json.loads((d / "config.json").read_text())["variant"] == "ppo")
    st = json.loads((resumed / "status.json").read_text())
    (resumed / "status.json").write_text(json.dumps({**st, "resumed_at": [400, 800]}))
    out = tmp_path / "out"
    assert report.main([str(tmp_path / "res"), "--out", str(out), "--reps", "200"]) == 2
    err = capsys.readouterr().err
    assert "incomplete grid: 1 missing, 1 failed, 1 unfinished of 36 expected runs (33 ok)" in err
    assert "ppo ALE/Pong-v5 seed 1" in err and "--allow-incomplete" in err
    assert not out.exists()
    assert report.main([str(tmp_path / "res"), "--out", str(out), "--reps", "200",
                        "--allow-incomplete", "--jobs", "1"]) == 0
    note = "INCOMPLETE GRID: 33 of 36 expected runs finished (1 missing, 1 failed, 1 unfinished)."
    for name in ("aggregate.md", "per_env.md", "probability_of_improvement.md", "ablation.md",
                 "report.md"):
        assert note in (out / name).read_text(), name
    for name in ("aggregate.tex", "per_env.tex"):
        assert "INCOMPLETE GRID" in (out / name).read_text()
    for name in ("aggregate.csv", "per_env.csv", "curves.csv", "profiles.csv"):
        assert {r["complete"] for r in _csv(out / name)} == {"false"}, name
    rows = _csv(out / "aggregate.csv")
    ppo = next(r for r in rows if r["variant"] == "ppo" and r["metric"] == "IQM")
    assert (ppo["n_runs"], ppo["n_seeds"]) == ("9", "3")  # 3 seeds on every env
    cfg = json.loads((resumed / "config.json").read_text())
    md = (out / "report.md").read_text()
    assert "Runs resumed from a checkpoint (1;" in md
    assert (f"- sw: `ppo` {cfg['env']} seed {cfg['seed']} [{cfg['run_id']}] at step 400, 800"
            in md)


@pytest.mark.parametrize("args,match", [
    (["nope"], "results path 'nope' is not a directory"),
    (["RES", "--baseline", "sac"], "--baseline 'sac' has no finished runs; variants: ppo, vmpo"),
    (["RES", "--reps", "0"], "--reps must be a positive integer"),
])
def test_usage_errors_exit_2(tmp_path, capsys, args, match):
    write_sweep(tmp_path / "res", "sw", variants={"vmpo": "vmpo", "ppo": "ppo"},
                envs={PONG: "atari"}, seeds=[0, 1], final=final, n_evals=2)
    args = [str(tmp_path / "res") if a == "RES" else a for a in args]
    with pytest.raises(SystemExit) if "--reps" in args else _nothing():
        rc = report.main([*args, "--out", str(tmp_path / "o")])
        assert rc == 2
    assert match in capsys.readouterr().err


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


def test_out_must_be_a_report_folder(tmp_path, capsys):
    write_sweep(tmp_path / "res", "sw", variants={"vmpo": "vmpo"}, envs={PONG: "atari"},
                seeds=[0, 1], final=final, n_evals=2)
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "thesis.tex").write_text("do not delete")
    assert report.main([str(tmp_path / "res"), "--out", str(precious), "--reps", "50"]) == 2
    assert "is not a report folder" in capsys.readouterr().err
    assert (precious / "thesis.tex").read_text() == "do not delete"


def test_runs_as_a_script_with_default_paths(tmp_path):
    write_sweep(tmp_path / "results", "mysweep", variants={"vmpo": "vmpo"},
                envs={PONG: "atari"}, seeds=[0, 1], final=final, n_evals=2)
    p = subprocess.run([sys.executable, str(ROOT / "analysis" / "report.py"), "--reps", "50",
                        "--jobs", "1"], cwd=tmp_path, capture_output=True, text=True,
                       check=False)
    assert p.returncode == 0, p.stderr
    assert (tmp_path / "reports" / "mysweep" / "aggregate.csv").is_file()
    p = subprocess.run([sys.executable, str(ROOT / "analysis" / "report.py")],
                       cwd=tmp_path / "reports", capture_output=True, text=True, check=False)
    assert p.returncode == 2 and "./results does not exist" in p.stderr


def test_fast_engine_tables_equal_rliable_engine_tables(tmp_path):
    """The whole report through rliable's own bootstrap loop gives byte-identical tables."""
    write_sweep(tmp_path / "res", "sw", variants={"vmpo": "vmpo", "vmpo-no-topk": "vmpo",
                                                 "ppo": "ppo"},
                envs={PONG: "atari", BREAKOUT: "atari"}, seeds=range(3), final=final,
                n_evals=3, steps=300)
    outs = {}
    for engine in ("fast", "rliable"):
        outs[engine] = tmp_path / engine
        assert report.main([str(tmp_path / "res"), "--out", str(outs[engine]), "--reps", "100",
                            "--curve-points", "3", "--engine", engine, "--jobs", "1"]) == 0
    for name in ("aggregate.csv", "probability_of_improvement.csv", "ablation.csv",
                 "profiles.csv", "curves.csv", "per_env.csv"):
        assert (outs["fast"] / name).read_text() == (outs["rliable"] / name).read_text(), name


def test_mixed_budgets_claims_and_published_side_by_side(tmp_path):
    """A MuJoCo sweep where MPO has a smaller budget: every variant's curve spans its own
    range, a table compares all at MPO's budget, the ablations are described by the
    config fields they change, and PPO sits beside the published figures."""
    hc, hop = "HalfCheetah-v5", "Hopper-v5"
    envs = {hc: "mujoco", hop: "mujoco"}
    variants = {"vmpo": "vmpo", "vmpo-no-topk": "vmpo", "ppo": "ppo", "mpo": "mpo"}
    finals = {"vmpo": 2000.0, "vmpo-no-topk": 1500.0, "ppo": 700.0, "mpo": 1000.0}
    write_sweep(tmp_path / "res", "mj", variants=variants, envs=envs, seeds=range(3),
                final=lambda v, e, s: finals[v] + 10 * s,
                steps={"vmpo": 10_000, "vmpo-no-topk": 10_000, "ppo": 1_000_000, "mpo": 3_000},
                n_evals=10, configs={"vmpo-no-topk": {"topk_fraction": 1.0}})
    out = tmp_path / "out"
    assert report.main([str(tmp_path / "res"), "--out", str(out), "--reps", "200",
                        "--jobs", "1"]) == 0
    curves = _csv(out / "curves.csv")
    last = {v: max(int(r["step"]) for r in curves if r["variant"] == v) for v in variants}
    assert last == {"vmpo": 10_000, "vmpo-no-topk": 10_000, "ppo": 1_000_000, "mpo": 3_000}
    common = {r["variant"]: r for r in _csv(out / "common_budget.csv")}
    assert set(common) == set(variants) and {r["step"] for r in common.values()} == {"3000"}
    # vmpo at step 3000: its 3rd of 10 linear evaluations, 0.3 of the way from 0 to its final
    from suites import normalise

    at = [normalise(e, [0.3 * (finals["vmpo"] + 10 * s)])[0] for e in envs for s in range(3)]
    assert float(common["vmpo"]["point"]) == pytest.approx(
        rlm.aggregate_iqm(np.array(at).reshape(2, 3).T), rel=1e-6)
    assert common["mpo"]["budget"] == "3,000"
    md = (out / "report.md").read_text()
    assert "MuJoCo: budgets differ between variants" in md and "`mpo` 3,000" in md
    assert "## The paper's claims, checked" in md
    claim = next(line for line in md.splitlines() if line.startswith("- `vmpo-no-topk`"))
    assert "topk_fraction=1.0" in claim and "removes top-k advantage selection" in claim
    assert "P(vmpo > vmpo-no-topk) = 1 [1, 1]" in claim and "reproduces the claim" in claim
    side = _csv(out / "published_side_by_side.csv")
    ppo_hc = next(r for r in side if r["env"] == hc and r["algo"] == "ppo")
    assert float(ppo_hc["ours / CleanRL"]) == pytest.approx(710 / 1442.6, abs=1e-3)
    assert ppo_hc["CleanRL"] == "1443 ± 46" and ppo_hc["SB3 zoo"] == "5819"
    assert ppo_hc["steps"] == "1,000,000"  # the published budget: flagged where under half
    assert ppo_hc["below half of"] == "CleanRL, Tianshou, SB3 zoo"
    # ours at another budget is never flagged
    write_sweep(tmp_path / "res2", "mj", variants={"ppo": "ppo"}, envs={hc: "mujoco"},
                seeds=range(3), final=lambda v, e, s: 100.0, steps=10_000, n_evals=2)
    assert report.main([str(tmp_path / "res2"), "--out", str(tmp_path / "out2"), "--reps", "50",
                        "--jobs", "1"]) == 0
    row = _csv(tmp_path / "out2" / "published_side_by_side.csv")[0]
    assert row["steps"] == "10,000" and row["below half of"] == ""
    assert not any(r["algo"] == "trpo" for r in side)  # no trpo runs: no row


def test_dual_traces_bin_each_run_and_take_quartiles_over_runs(tmp_path):
    from analysis import duals
    from analysis.load import load
    from analysis.completeness import check
    from analysis.scores import final_scores
    from analysis.synthetic import run_config, write_run

    sd = tmp_path / "res" / "sw"
    for seed, level in enumerate((1e-8, 1e-2, 1.0)):
        cfg = run_config(sweep="sw", algo="vmpo", variant="vmpo", suite="mujoco",
                         env="Hopper-v5", seed=seed, steps=1000)
        rd = write_run(sd, cfg, [(500, 10.0), (1000, 20.0)])
        with open(rd / "metrics.csv", "a") as f:  # two learner steps per half of the run
            for step, mult in ((100, 1), (400, 3), (600, 2), (900, 2)):
                f.write(f"{step},dual/alpha_mu,{level * mult!r},1.0\n")
    runs = load([tmp_path / "res"])
    final = final_scores(runs, check(runs))
    tr = duals.traces(runs, final, ["vmpo"], points=2)
    a = tr[tr["metric"] == "dual/alpha_mu"].set_index("step")
    assert list(a.index) == [500, 1000] and set(tr["metric"]) == {"dual/alpha_mu"}
    assert a.loc[500, "median"] == pytest.approx(2e-2)  # per run: mean(1, 3) * level
    assert a.loc[1000, "median"] == pytest.approx(2e-2)
    assert a.loc[500, "q25"] == pytest.approx(np.percentile([2e-8, 2e-2, 2.0], 25))
    assert int(a.loc[500, "n_runs"]) == 3


def _vmpo_run(sd, seed, rows, variant="vmpo", config=None):
    """A finished V-MPO run of 1,000 steps with `rows` [(step, metric, value)] appended to
    its metrics.csv."""
    from analysis.synthetic import run_config, write_run

    cfg = run_config(sweep="sw", algo="vmpo", variant=variant, suite="mujoco", env="Hopper-v5",
                     seed=seed, steps=1000, config={"eps_alpha_mu": 0.01, "eps_alpha_sigma": 1e-4,
                                                    **(config or {})})
    rd = write_run(sd, cfg, [(500, 10.0), (1000, 20.0)])
    with open(rd / "metrics.csv", "a") as f:
        f.writelines(f"{st},{m},{float(v)!r},1.0\n" for st, m, v in rows)


def _trust_regions(res, variants):
    from analysis import duals
    from analysis.completeness import check
    from analysis.load import load
    from analysis.scores import final_scores

    runs = load([res])
    return duals.trust_regions(runs, final_scores(runs, check(runs)), variants, spans=5)


def test_trust_regions_average_spans_of_the_second_half_then_take_the_median_over_runs(tmp_path):
    """duals.trust_regions against a direct computation: the second half of a 1,000-step
    run in 5 spans of 100 steps, each the mean of its learner steps (two per span here),
    alpha 'active' above 100x the run's dual_min, KL/eps by the bound logged at the same
    step (else the config's), medians over spans, then over runs."""
    sd = tmp_path / "res" / "sw"
    late = [550, 600, 650, 700, 750, 800, 850, 900, 950, 1000]  # two per span of (500, 1000]
    # seed 0: alpha alternates 1e-8 / 3e-6 within each span: span mean 1.5e-6 > 1e-6, so
    # every span is active (a per-step count would give 50%); KL 0.005 / 0.015 -> ratio 1.0
    rows0 = [(100, "dual/alpha_mu", 5.0), (100, "kl/mean", 0.5)]  # first half: never counted
    for i, st in enumerate(late):
        rows0 += [(st, "dual/alpha_mu", 3e-6 if i % 2 else 1e-8),
                  (st, "kl/mean", 0.015 if i % 2 else 0.005), (st, "kl/allowed_mean", 0.01)]
    _vmpo_run(sd, 0, rows0)
    # seed 1: alpha at the floor; the bound logged only from step 900 (0.02), the config's
    # 0.01 before it: ratios 0.2 x 8 then 0.1 x 2 -> span means 0.2, 0.2, 0.2, 0.2, 0.1
    rows1 = [(st, "dual/alpha_mu", 1e-8) for st in late]
    rows1 += [(st, "kl/mean", 0.002) for st in late]
    rows1 += [(st, "kl/allowed_mean", 0.02) for st in (950, 1000)]
    _vmpo_run(sd, 1, rows1)
    # seed 2: a raised floor (dual_min 1e-5): alpha 5e-4 is under 100x it, never active
    rows2 = [(st, "dual/alpha_mu", 5e-4) for st in late] + [(st, "kl/mean", 0.006) for st in late]
    _vmpo_run(sd, 2, rows2, config={"dual_min": 1e-5})
    # no trust region: kl/mean is a diagnostic only
    _vmpo_run(sd, 0, [(600, "kl/mean", 0.05)], variant="vmpo-no-alpha", config={"trust_region": False})
    tr = _trust_regions(tmp_path / "res", ["vmpo", "vmpo-no-alpha"]).set_index("variant")
    # per run: active 1.0, 0.0, 0.0 -> median 0; KL/eps 1.0, 0.2, 0.6 -> median 0.6
    assert tr.loc["vmpo", "mean_active"] == pytest.approx(0.0)
    assert tr.loc["vmpo", "mean_kl_ratio"] == pytest.approx(0.6)
    assert int(tr.loc["vmpo", "mean_runs"]) == 3 and int(tr.loc["vmpo", "std_runs"]) == 0
    assert np.isnan(tr.loc["vmpo", "std_active"])  # no alpha_sigma logged
    assert int(tr.loc["vmpo-no-alpha", "mean_runs"]) == 0
    assert tr.loc["vmpo-no-alpha", ["mean_active", "mean_kl_ratio"]].isna().all()
    one = {seed: _trust_regions_of_seed(tmp_path, seed) for seed in (0, 1)}
    assert one[0]["mean_active"] == pytest.approx(1.0) and one[0]["mean_kl_ratio"] == pytest.approx(1.0)
    assert one[1]["mean_active"] == pytest.approx(0.0) and one[1]["mean_kl_ratio"] == pytest.approx(0.2)


def _trust_regions_of_seed(tmp_path, seed):
    from analysis import duals
    from analysis.completeness import check
    from analysis.load import load
    from analysis.scores import final_scores

    runs = load([tmp_path / "res"])
    final = final_scores(runs, check(runs))
    final = final[(final["seed"] == seed) & (final["variant"] == "vmpo")]
    return duals.trust_regions(runs, final, ["vmpo"], spans=5).iloc[0]


def test_trust_regions_of_a_categorical_policy_and_the_table_a_reader_sees(tmp_path):
    from analysis import tables

    sd = tmp_path / "res" / "sw"
    late = range(600, 1001, 100)
    _vmpo_run(sd, 0, [(st, m, v) for st in late for m, v in
                      (("dual/alpha", 0.3), ("kl", 0.02), ("kl/allowed_target", 0.01),
                       ("psi/ess_fraction", 0.8))])
    tr = _trust_regions(tmp_path / "res", ["vmpo"])
    assert tr["kl_active"].iloc[0] == 1.0 and tr["kl_kl_ratio"].iloc[0] == pytest.approx(2.0)
    assert tr["ess_fraction"].iloc[0] == pytest.approx(0.8)
    wide = tables.trust_regions_wide(tr)
    assert list(wide.columns) == ["suite", "variant", "env", "KL (α): α active / KL/ε",
                                  tables.TR_ESS]  # only the constraint the runs have
    assert wide.iloc[0, 3] == "100% / 2.00 (1)" and wide.iloc[0, 4] == "80%"
    # runs that log no duals at all: no table (the report then has no such section)
    empty = tr.assign(kl_runs=0, kl_active=np.nan, kl_kl_ratio=np.nan, ess_fraction=np.nan)
    assert tables.trust_regions_wide(empty).empty


def test_a_report_whose_vmpo_runs_log_no_duals_has_no_trust_region_section(tmp_path):
    write_sweep(tmp_path / "res", "sw", variants={"vmpo": "vmpo", "ppo": "ppo"},
                envs={"Hopper-v5": "mujoco"}, seeds=range(2),
                final=lambda v, e, s: 100.0 + 10 * s, steps=1000, n_evals=2)
    assert report.main([str(tmp_path / "res"), "--out", str(tmp_path / "out"), "--reps", "50",
                        "--jobs", "1"]) == 0
    assert "trust regions bind" not in (tmp_path / "out" / "report.md").read_text()
    assert not (tmp_path / "out" / "trust_regions.csv").exists()


def test_late_sections_go_before_the_closing_ones_and_their_files_are_listed(tmp_path):
    # two variants alike: P(X > Y) contains 0.5, so the report has a "Seeds needed" section
    write_sweep(tmp_path / "res", "sw", variants={"vmpo": "vmpo", "ppo": "ppo"},
                envs={"Hopper-v5": "mujoco"}, seeds=range(3),
                final=lambda v, e, s: 100.0 + 10 * s, steps=1000, n_evals=2)
    out = tmp_path / "out"
    assert report.main([str(tmp_path / "res"), "--out", str(out), "--reps", "50", "--jobs", "1"]) == 0
    md = (out / "report.md").read_text()
    heads = [ln for ln in md.splitlines() if ln.startswith("## ")]
    assert heads.index("## Seeds needed") < heads.index("## Provenance") < heads.index("## Files")
    assert heads[-1] == "## Files"
    listed = md.rstrip().splitlines()[-1]
    assert "`seeds_needed.csv`" in listed
    on_disk = {p.name for p in out.iterdir()} - {"report.md"}
    assert {f.strip(" `") for f in listed.split(",")} == on_disk


def test_a_heading_quoted_in_a_run_error_does_not_move_the_late_sections(tmp_path):
    from analysis.synthetic import linear_evals, run_config, write_run

    write_sweep(tmp_path / "res", "sw", variants={"vmpo": "vmpo", "ppo": "ppo"},
                envs={"Hopper-v5": "mujoco"}, seeds=range(3),
                final=lambda v, e, s: 100.0 + 10 * s, steps=1000, n_evals=2)
    cfg = run_config(sweep="sw", algo="ppo", variant="ppo", suite="mujoco", env="Hopper-v5",
                     seed=7, steps=1000)
    write_run(tmp_path / "res" / "sw", cfg, linear_evals(50.0, 1000, 1), state="failed",
              error="RuntimeError: bad\n## Provenance\nsee the log")
    out = tmp_path / "out"
    assert report.main([str(tmp_path / "res"), "--out", str(out), "--reps", "50", "--jobs", "1",
                        "--allow-incomplete"]) == 0
    md = (out / "report.md").read_text()
    assert md.count("\n## Provenance\n") == 2  # the quoted one and the real one
    seeds = md.index("\n## Seeds needed\n")
    assert md.index("\n## Provenance\n") < seeds < md.rindex("\n## Provenance\n")
    assert md.index("\n## References for normalisation\n") > seeds


def test_a_variant_keeps_its_colour_whichever_others_a_report_has():
    from analysis.plots import variant_colours
    alone = variant_colours(["vmpo", "vmpo-no-alpha"])
    with_ppo = variant_colours(["ppo", "vmpo", "vmpo-no-alpha", "sac", "a2c"])
    assert alone["vmpo"] == with_ppo["vmpo"] == 0 and alone["vmpo-no-alpha"] == with_ppo["vmpo-no-alpha"] == 2
    assert with_ppo["ppo"] == 4 and (with_ppo["a2c"], with_ppo["sac"]) == (7, 8)
    many = variant_colours([f"x{i}" for i in range(5)])
    assert sorted(many.values()) == [7, 8, 9, 10, 11]  # past the 10 slots: tab10 repeats


def test_curves_zoom_into_the_smallest_budget_only_where_budgets_differ_2x():
    import pandas as pd

    from analysis.plots import zoom_budget

    def rows(ends):
        return pd.DataFrame([{"variant": v, "step": s} for v, end in ends.items()
                             for s in (0, end // 2, end)])

    assert zoom_budget(rows({"vmpo": 1_000_000, "ppo": 1_000_000})) is None
    assert zoom_budget(rows({"vmpo": 1_000_000, "mpo": 600_000})) is None  # under 2x
    assert zoom_budget(rows({"vmpo": 1_000_000, "ppo": 1_001_472, "mpo": 100_352})) == 100_352
    assert zoom_budget(rows({"mpo": 100_000})) is None  # one variant: nothing to zoom


def test_a_figure_label_gives_the_budget_its_variant_ran_in_that_suite():
    from analysis.plots import Style

    style = Style(["vmpo", "mpo", "ppo"], 100, None,
                  {"mujoco": {"vmpo": [1_000_000], "mpo": [100_000]},
                   "atari": {"vmpo": [10_000_000], "ppo": [10_000_000, 5_000_000]}})
    assert style.label("vmpo", 3, "mujoco") == "vmpo (n=3, 1M steps)"  # not "1M/10M"
    assert style.label("vmpo", 3, "atari") == "vmpo (n=3, 10M steps)"
    assert style.label("ppo", 6, "atari", sep="\n") == "ppo\n(n=6, 5M/10M steps)"
    assert style.label("ppo", 3, "mujoco") == "ppo (n=3)"  # budgets equal there: no label
