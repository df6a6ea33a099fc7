"""Equal-budget tuning (sweeps/tuning.py, sweeps/select.py, analysis/tuning.py and its
parts analysis/tuning_{values,design,reliability,figures}.py): the
distributions against direct computation, the Sobol draws pinned, bad input (exit 2,
the key named, nothing written), selection, and the whole protocol (tune, select, test,
report) on a tiny CartPole grid."""

from __future__ import annotations

import io
import json
import math
import os
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sweeps import launch
from sweeps.spec import SpecError, parse_spec
from sweeps.tuning import Dist, Trial, choose, parse_trial, trial_name, tuning_spec


SPEC = """
name: tun
seeds: [0]
envs: [CartPole-v1]
budgets:
  classic: {steps: 512, eval_every: 256, eval_episodes: 1, checkpoint_every: 0}
runs:
  vmpo: {algo: vmpo}
  vmpo-no-topk: {algo: vmpo, topk_fraction: 1.0}
  ppo: {}
tuning:
  configs: 3
  seeds: [1000]
  envs: [CartPole-v1]
  search:
    vmpo:
      eps_eta: {log_uniform: [0.01, 1.0]}
      batch: {choice: [{num_envs: 4, rollout_length: 64}, {num_envs: 8, rollout_length: 32}]}
    ppo:
      lr: {log_uniform: [1e-4, 3e-3]}
      epochs: {int: [1, 10]}
"""


def cli(tmp_path, *args, spec_text=SPEC):
    """launch.main in-process from tmp_path (spec_text written to spec.yaml unless None)."""
    if spec_text is not None:
        (tmp_path / "spec.yaml").write_text(textwrap.dedent(spec_text))
    out, err = io.StringIO(), io.StringIO()
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        rc = launch.main(["spec.yaml", *args], out=out, err=err)
    finally:
        os.chdir(cwd)
    return rc, out.getvalue(), err.getvalue()


# -- distributions --------------------------------------------------------------------------


def test_distribution_maps_against_direct_computation():
    lu = Dist("lr", "log_uniform", (1e-4, 1e-2))
    assert lu.value(0.5)["lr"] == pytest.approx(1e-3, rel=1e-3)  # geometric midpoint
    assert lu.value(0.0)["lr"] == pytest.approx(1e-4)
    assert Dist("x", "uniform", (2.0, 4.0)).value(0.25)["x"] == 2.5
    # int: both ends included, every value reached by an equal share of [0, 1)
    d = Dist("k", "int", (1, 4))
    grid = np.arange(1000) / 1000
    got = [d.value(u)["k"] for u in grid]
    assert sorted(set(got)) == [1, 2, 3, 4]
    assert [got.count(k) for k in (1, 2, 3, 4)] == [250, 250, 250, 250]
    # log_int: log-uniform on [lo, hi + 1), floored: P(k) = log((k+1)/k) / log((hi+1)/lo)
    d = Dist("k", "log_int", (1, 7))
    got = [d.value(u)["k"] for u in np.arange(100000) / 100000]
    for k in range(1, 8):
        assert got.count(k) / len(got) == pytest.approx(math.log((k + 1) / k) / math.log(8), abs=1e-4)
    c = Dist("batch", "choice", ({"num_envs": 1}, {"num_envs": 8, "rollout_length": 32}))
    assert c.value(0.7) == {"num_envs": 8, "rollout_length": 32}
    assert c.fields() == ["num_envs", "rollout_length"]
    assert Dist("lr", "uniform", (0.1, 0.2)).value(1 / 3)["lr"] == 0.133  # 3 significant digits


def test_trial_names_round_trip():
    assert trial_name("vmpo-no-topk", 3) == "vmpo-no-topk.c03"
    assert parse_trial("vmpo-no-topk.c03") == ("vmpo-no-topk", 3)
    assert parse_trial("vmpo") is None


SOBOL = SPEC.replace("  seeds: [1000]\n", "  seeds: [1000]\n  sampler: sobol\n")


def test_configurations_are_pinned_deterministic_and_start_with_the_defaults():
    from scipy.stats import qmc

    from algos.results import stable_hash

    seed = int(stable_hash([0, "vmpo"]), 16) % 2**32
    # sobol: the draws of every spec from before `tuning.sampler` existed, bit for bit
    # (scipy's scrambled Sobol, seeded by sampler_seed and the variant name); a change
    # here changes every trial's run_id
    t = parse_spec(textwrap.dedent(SOBOL), source="/x/spec.yaml").tuning
    vm = t.configurations("vmpo")
    assert t.sampler == "sobol" and vm[0] == {}         # trial c00: the defaults
    assert len(vm) == 3 and len(t.configurations("ppo")) == 3
    assert vm == t.configurations("vmpo")               # a pure function of the spec
    assert t.configurations("ppo") != [{}, *vm[1:]]
    assert vm[1:] == [{"eps_eta": 0.48, "num_envs": 4, "rollout_length": 64},
                      {"eps_eta": 0.0379, "num_envs": 8, "rollout_length": 32}]
    # ... and recomputed from scipy's sequence by hand: 0.01 * 100**u, option floor(2u)
    u = qmc.Sobol(d=2, scramble=True, seed=seed).random_base2(1)
    for cfg, (u_eta, u_batch) in zip(vm[1:], u):
        assert cfg["eps_eta"] == pytest.approx(0.01 * 100**u_eta, rel=5e-3)
        assert cfg["num_envs"] == (4, 8)[int(2 * u_batch)]
    # lhs, the default: pinned too, and recomputed from scipy's Latin hypercube by hand
    spec = parse_spec(textwrap.dedent(SPEC), source="/x/spec.yaml")
    t = spec.tuning
    vm = t.configurations("vmpo")
    assert t.sampler == "lhs" and vm[0] == {} and vm == t.configurations("vmpo")
    assert vm[1:] == [{"eps_eta": 0.022, "num_envs": 8, "rollout_length": 32},
                      {"eps_eta": 0.49, "num_envs": 4, "rollout_length": 64}]
    u = qmc.LatinHypercube(d=2, optimization="random-cd", seed=seed).random(2)
    for cfg, (u_eta, u_batch) in zip(vm[1:], u):
        assert cfg["eps_eta"] == pytest.approx(0.01 * 100**u_eta, rel=5e-3)
        assert cfg["num_envs"] == (4, 8)[int(2 * u_batch)]
    assert t.equal_budget and t.inherit == {"vmpo-no-topk": "vmpo"}
    tune = tuning_spec(spec)
    assert tune.name == "tun-tune" and tune.seeds == [1000]
    assert sorted(tune.variants) == ["ppo.c00", "ppo.c01", "ppo.c02", "vmpo.c00", "vmpo.c01", "vmpo.c02"]
    assert len({r.run_id for r in tune.runs}) == 6
    assert spec.runs == []  # no selection yet: no test runs


# -- bad input ------------------------------------------------------------------------------


@pytest.mark.parametrize("old,new,expected", [
    ("eps_eta: {log_uniform: [0.01, 1.0]}", "eps_etta: {log_uniform: [0.01, 1.0]}",
     "tuning.search.vmpo.eps_etta: unknown key (did you mean eps_eta?)"),
    ("eps_eta: {log_uniform: [0.01, 1.0]}", "eps_eta: {log_uniform: [0.5, 0.5]}",
     "tuning.search.vmpo.eps_eta.log_uniform: empty range [0.5, 0.5]: expected lo < hi"),
    ("eps_eta: {log_uniform: [0.01, 1.0]}", "eps_eta: {uniform: [1.0, 0.01]}",
     "tuning.search.vmpo.eps_eta.uniform: inverted range [1.0, 0.01]: expected lo < hi"),
    ("eps_eta: {log_uniform: [0.01, 1.0]}", "eps_eta: {log_uniform: [0, 1.0]}",
     "tuning.search.vmpo.eps_eta.log_uniform: a log-uniform range needs lo > 0, got [0, 1.0]"),
    ("seeds: [1000]", "seeds: [1000, 0]",
     "tuning.seeds: seed(s) 0 are also test seeds (seeds: [0])"),
    ("epochs: {int: [1, 10]}", "epochs: {int: [1.5, 10]}",
     "tuning.search.ppo.epochs.int: expected [lo, hi], two ints, got [1.5, 10]"),
    ("epochs: {int: [1, 10]}", "epochs: {normal: [1, 10]}",
     "tuning.search.ppo.epochs: expected one distribution"),
    ("    ppo:\n", "    trpo:\n", "tuning.search.trpo: unknown variant; valid: the spec's runs"),
    ("{num_envs: 4, rollout_length: 64}", "{num_envs: 4, rollout_lenght: 64}",
     "tuning.search.vmpo.batch.choice[0].rollout_lenght: unknown key"),
    ("configs: 3", "configs: 0", "tuning.configs: expected a positive int"),
    ("  seeds: [1000]\n", "", "tuning.seeds: required"),
    ("epochs: {int: [1, 10]}", "clip_value: {choice: [maybe, false]}",
     "tuning.search.ppo.clip_value: trial c01 sets clip_value: expected a bool, got \"maybe\""),
    ("  ppo: {}", "  ppo: {lr: 1e-3}", "tuning.search.ppo.lr: lr is also set by runs.ppo.lr"),
    ("  seeds: [1000]\n", "  seeds: [1000]\n  sampler: halton\n",
     'tuning.sampler: unknown sampler "halton"; valid: lhs, sobol'),
])
def test_bad_tuning_input_exits_2_names_the_key_and_writes_nothing(tmp_path, snapshot, old, new, expected):
    text = textwrap.dedent(SPEC)
    assert old in text
    (tmp_path / "spec.yaml").write_text(text.replace(old, new, 1))
    before = snapshot(tmp_path)
    rc, out, err = cli(tmp_path, "--executor", "debug", spec_text=None)
    assert rc == 2, err
    assert expected in err, err
    assert snapshot(tmp_path) == before


def test_phase_without_a_tuning_section_is_a_usage_error(tmp_path):
    plain = SPEC.split("tuning:")[0]
    rc, _, err = cli(tmp_path, "--phase", "tune", spec_text=plain)
    assert rc == 2 and "has no `tuning:` section" in err


def test_test_phase_without_a_selection_is_a_usage_error(tmp_path):
    rc, _, err = cli(tmp_path, "--phase", "test", "--executor", "debug")
    assert rc == 2 and "no selection yet" in err
    assert not (tmp_path / "results" / "tun").exists()


def test_a_selection_naming_unsearched_keys_is_an_error(tmp_path):
    (tmp_path / "spec.selected.yaml").write_text("runs:\n  vmpo: {lr: 0.1}\n  ppo: {}\n")
    with pytest.raises(SpecError) as e:
        parse_spec(textwrap.dedent(SPEC), source=str(tmp_path / "spec.yaml"))
    assert "spec.selected.yaml: runs.vmpo.lr: not a searched hyperparameter of vmpo" in str(e.value)


# -- selection --------------------------------------------------------------------------------


def test_choose_takes_the_best_and_ties_go_to_the_defaults():
    trials = [Trial("v", 0, {}, score=0.5), Trial("v", 1, {"lr": 1}, score=0.5),
              Trial("v", 2, {"lr": 2}, score=float("nan")), Trial("v", 3, {"lr": 3}, score=0.4)]
    assert choose(trials).trial == 0
    trials[3].score = 0.51
    assert choose(trials).trial == 3
    assert choose([Trial("v", 0, {})]) is None


def test_score_trials_mean_over_envs_and_seeds_and_failed_trials_are_out(tmp_path):
    from sweeps.tuning import score_trials

    spec = parse_spec(textwrap.dedent(SPEC).replace("envs: [CartPole-v1]\n  search",
                                                    "envs: [CartPole-v1, Acrobot-v1]\n  search"),
                      source=str(tmp_path / "spec.yaml"))
    rows, curves = [], []
    # CartPole: random 22.0 (suites' reference pair), reference 500 -> normalised (r-22)/478
    import suites

    for trial, (cp, ac, state) in enumerate([(261.0, -100.0, "done"), (500.0, -80.0, "done"),
                                             (500.0, -60.0, "failed")]):
        for env, ret in (("CartPole-v1", cp), ("Acrobot-v1", ac)):
            rows.append({"variant": trial_name("vmpo", trial), "env": env, "seed": 1000,
                         "state": state if env == "Acrobot-v1" else "done"})
            curves.append(([100, 200], [0.0, ret]))
    table = pd.DataFrame(rows)
    scored = score_trials(spec, table, lambda i: curves[i])["vmpo"]
    want0 = np.mean([suites.normalise("CartPole-v1", 261.0), suites.normalise("Acrobot-v1", -100.0)])
    assert scored[0].score == pytest.approx(want0)
    assert scored[1].score > scored[0].score
    assert math.isnan(scored[2].score) and scored[2].failed == 1
    assert choose(scored).trial == 1


# -- the whole protocol ---------------------------------------------------------------------------


def test_tune_select_test_and_report(tmp_path):
    """Auto phase on the debug executor: the trials, then the selection fragment, then the
    test runs on the test seeds with the selected values (an ablation keeps its switch);
    the report keeps trials out of the headline and draws the tuning section."""
    rc, out, err = cli(tmp_path, "--executor", "debug", "--dry-run")
    assert rc == 0 and "tun-tune" in out and "test phase: after selection" in out
    assert not (tmp_path / "results").exists()

    rc, out, err = cli(tmp_path, "--executor", "debug")
    assert rc == 0, err
    sel = tmp_path / "spec.selected.yaml"
    assert "wrote the selection" in out and sel.is_file()
    text = sel.read_text()
    assert "runs:" in text and "# Criterion: final" in text
    tune = tmp_path / "results" / "tun-tune"
    test = tmp_path / "results" / "tun"
    tune_cfgs = [json.loads(p.read_text()) for p in tune.glob("*/config.json")]
    test_cfgs = {c["variant"]: c for c in (json.loads(p.read_text()) for p in test.glob("*/config.json"))}
    assert len(tune_cfgs) == 6 and {c["seed"] for c in tune_cfgs} == {1000}
    assert sorted(test_cfgs) == ["ppo", "vmpo", "vmpo-no-topk"]
    assert {c["seed"] for c in test_cfgs.values()} == {0}

    import yaml
    chosen = yaml.safe_load(text)["runs"]
    for key, value in (chosen["vmpo"] or {}).items():
        assert test_cfgs["vmpo"]["config"][key] == value
        assert test_cfgs["vmpo-no-topk"]["config"][key] == value   # inherited
    assert test_cfgs["vmpo-no-topk"]["config"]["topk_fraction"] == 1.0  # its own switch
    for key, value in (chosen["ppo"] or {}).items():
        assert test_cfgs["ppo"]["config"][key] == value

    # relaunching does nothing new; --phase select again: the same selection, unchanged
    rc, out, _ = cli(tmp_path, "--executor", "debug", spec_text=None)
    assert rc == 0 and "nothing to launch" in out
    rc, out, _ = cli(tmp_path, "--phase", "select", spec_text=None)
    assert rc == 0 and "selection unchanged" in out
    sel.write_text(text.replace("runs:", "runs:  # edited"))
    rc, _, err = cli(tmp_path, "--phase", "select", spec_text=None)
    assert rc == 2 and "exists and differs" in err

    from analysis import report

    out_dir = tmp_path / "rep"
    report.build([str(test)], out_dir, reps=100, seed=0, baseline=None, allow_incomplete=False)
    md = (out_dir / "report.md").read_text()
    assert "## Tuning" in md and "disjoint from the tuning seeds [1000]" in md
    agg = pd.read_csv(out_dir / "aggregate.csv", comment="#")
    assert sorted(set(agg["variant"])) == ["ppo", "vmpo", "vmpo-no-topk"]  # no trial
    budget = pd.read_csv(out_dir / "tuning_budget.csv", comment="#")
    assert list(budget["configurations"]) == [3, 3] and list(budget["env_steps"]) == [1536, 1536]
    assert (out_dir / "tuning_sensitivity_ppo.png").is_file()
    dist = pd.read_csv(out_dir / "tuning_scores.csv", comment="#")
    trials = pd.read_csv(out_dir / "tuning_trials.csv", comment="#")
    for v in ("ppo", "vmpo"):
        s = trials.loc[trials["variant"] == v, "score"].to_numpy()
        row = dist[dist["variant"] == v].iloc[0]
        assert row["p50"] == pytest.approx(np.percentile(s, 50))
        assert row["best"] == pytest.approx(s.max())
    # the expected best of n configurations (without replacement): the trials' mean at
    # n = 1, their best at n = N
    em = pd.read_csv(out_dir / "tuning_expected_max.csv", comment="#")
    for v in ("ppo", "vmpo"):
        s = trials.loc[trials["variant"] == v, "score"].to_numpy()
        e = em[em["variant"] == v].set_index("n")["expected_best"]
        assert list(e.index) == [1, 2, 3]
        # abs: the trial scores come from the CSV's printed digits
        assert (e[1], e[3]) == (pytest.approx(s.mean(), abs=1e-6), pytest.approx(s.max(), abs=1e-6))
    assert "### Expected best trial score against configurations tried" in md
    assert (out_dir / "tuning_expected_max.png").is_file()
    # the selection on fresh seeds: the chosen trial's tuning score beside the test run's,
    # both final returns normalised by CartPole's pair, from the run directories directly
    import suites
    from analysis.load import load

    held = pd.read_csv(out_dir / "tuning_held_out.csv", comment="#").set_index("variant")
    assert "### The selection on fresh seeds" in md
    tune_runs, test_runs = load([str(tune)]).table, load([str(test)]).table
    import re
    named = dict(re.findall(r"^  # (\w+): trial c(\d+) of", text, re.M))  # the selection file's
    assert sorted(named) == ["ppo", "vmpo"]
    for v in ("ppo", "vmpo"):
        assert held.loc[v, "trial"] == int(named[v])
        assert f"`{v}` c{int(named[v]):02d} (the test runs' config)" in md
        t_raw = tune_runs.loc[tune_runs["variant"] == f"{v}.c{named[v]}", "score"].iloc[0]
        x_raw = test_runs.loc[test_runs["variant"] == v, "score"].iloc[0]
        assert held.loc[v, "tuning"] == pytest.approx(suites.normalise("CartPole-v1", t_raw), rel=1e-5)
        assert held.loc[v, "test"] == pytest.approx(suites.normalise("CartPole-v1", x_raw), rel=1e-5)
        assert held.loc[v, "change"] == pytest.approx(held.loc[v, "test"] - held.loc[v, "tuning"], abs=1e-5)

    # V-MPO's trust regions per trial: each its runs' median, as analysis.duals computes a run's
    from analysis.duals import run_trust_region
    from analysis.tuning import split_trials

    per_trial = pd.read_csv(out_dir / "tuning_trust_regions.csv", comment="#")
    assert sorted(per_trial["trial"]) == [0, 1, 2] and set(per_trial["variant"]) == {"vmpo"}
    _, trial_runs = split_trials(load([str(tune)]))
    for trial in range(3):
        i = int(np.flatnonzero(trial_runs.table["variant"] == f"vmpo.c0{trial}")[0])
        direct = run_trust_region(trial_runs, i)  # one env x one seed: the median is the run
        row = per_trial[per_trial["trial"] == trial].iloc[0]
        assert direct["kl_active"] == pytest.approx(row["kl_active"], abs=1e-6)  # categorical: one KL
        assert direct["kl_kl_ratio"] == pytest.approx(row["kl_kl_ratio"], rel=1e-5)  # tells trials apart
        assert np.isfinite(row["kl_kl_ratio"]) and int(row["kl_runs"]) == 1
    assert "### V-MPO's trust regions over its trials" in md

    # the archive packs a tune sweep against the spec: its manifest lists every trial
    import tarfile

    from analysis import archive

    packed = archive.pack(tune, tmp_path / "tune.tar.xz", spec=tmp_path / "spec.yaml")
    assert len(packed) == 6
    with tarfile.open(tmp_path / "tune.tar.xz") as tar:
        manifest = json.load(tar.extractfile("tun-tune/manifest.json"))
    assert sorted(r["variant"] for r in manifest["runs"]) == sorted(
        f"{v}.c0{i}" for v in ("ppo", "vmpo") for i in range(3))


def test_the_shipped_tuned_study_spec(tmp_path):
    from sweeps.spec import load_spec

    root = Path(__file__).resolve().parents[1]
    spec = load_spec(root / "sweeps" / "mujoco-tuned.yaml")
    t = spec.tuning
    assert t.configs == {"vmpo": 16, "ppo": 16, "trpo": 16} and t.equal_budget
    assert t.inherit == {"vmpo-no-topk": "vmpo", "vmpo-no-alpha": "vmpo", "vmpo-fixed-eta": "vmpo"}
    assert not set(t.seeds) & set(spec.seeds)
    searched = {f for d in t.search["vmpo"] for f in d.fields()}
    # issue 24's minimum space for V-MPO
    assert {"eps_eta", "topk_fraction", "eps_alpha_mu", "eps_alpha_sigma", "target_period",
            "num_envs", "rollout_length", "epochs", "minibatch_size", "lr"} <= searched
    runs = tuning_spec(spec).runs
    assert len(runs) == 3 * 16 * 2 * 2
    # its 192 trials were drawn by Sobol: `sampler: sobol` keeps their run ids (those of
    # the archived trials, docs/results/mujoco-tuned/tune-runs.tar.xz)
    import hashlib

    assert t.sampler == "sobol"
    ids = " ".join(sorted(r.run_id for r in runs)).encode()
    assert hashlib.sha256(ids).hexdigest()[:16] == "e563041fba138489"
    rc, out, err = cli(tmp_path, "--dry-run", "--executor", "local",
                       spec_text=(root / "sweeps" / "mujoco-tuned.yaml").read_text())
    assert rc == 0, err
    assert "= 192 runs" in out and "= 120 runs" in out
    # ... and the dry run warns of its aliased and halves-confounded pairs before anything
    # trains (no results folder: no trial ran, so no "already ran")
    warned = [ln for ln in err.splitlines() if ln.startswith("warning: tuning.search.")]
    assert len(warned) == 6, err
    for a, b in (("batch", "passes"), ("topk_fraction", "batch"), ("topk_fraction", "passes")):
        assert any(f"vmpo: {a} and {b} are aliased in the sobol design: its 15 trials reach 4 "
                   "of 15 possible joint levels" in ln for ln in warned), err
    assert "aliased together: batch x passes x topk_fraction" in err
    assert ("warning: tuning.search.ppo: lr and passes are confounded at halves in the sobol "
            "design (lr lower half: passes in {5 x 64, 10 x 64}; lr upper half: passes in "
            "{10 x 32, 20 x 128}, on all 15 trials)") in err
    assert ("warning: tuning.search.vmpo: eps_eta and lr are confounded at halves in the sobol "
            "design (eps_eta lower half <=> lr lower half, on all 15 trials)") in err
    assert "already ran" not in err


def test_a_partial_tune_sweep_is_reported_as_provisional(tmp_path):
    import shutil

    from analysis import report

    rc, _, err = cli(tmp_path, "--phase", "tune", "--executor", "debug",
                     spec_text=SPEC.replace("configs: 3", "configs: 2"))
    assert rc == 0, err
    tune = tmp_path / "results" / "tun-tune"
    report.build([str(tune)], tmp_path / "full", reps=100, seed=0, baseline=None,
                 allow_incomplete=False)
    assert "Tuning incomplete" not in (tmp_path / "full" / "report.md").read_text()
    shutil.rmtree(next(p for p in tune.iterdir() if (p / "config.json").is_file()))
    report.build([str(tune)], tmp_path / "part", reps=100, seed=0, baseline=None,
                 allow_incomplete=False)
    assert "Tuning incomplete: 3 of 4 trial runs done." in (tmp_path / "part" / "report.md").read_text()


# -- tuning envs need a reference pair ----------------------------------------------------------

NO_PAIR_ENV = "MountainCar-v0"  # a registered Gymnasium id outside the named suites: no pair


def _with_tuning_env(env: str, references: str = "") -> str:
    text = textwrap.dedent(SPEC).replace("  envs: [CartPole-v1]\n  search",
                                         f"  envs: [CartPole-v1, {env}]\n  search")
    text = text.replace("budgets:\n", "budgets:\n  gym: {steps: 512, eval_every: 256, eval_episodes: 1, "
                                     "checkpoint_every: 0}\n", 1)
    return text + references


def test_a_tuning_env_without_a_pair_exits_2_before_anything_trains(tmp_path, snapshot):
    (tmp_path / "spec.yaml").write_text(_with_tuning_env(NO_PAIR_ENV))
    before = snapshot(tmp_path)
    rc, out, err = cli(tmp_path, "--executor", "debug", spec_text=None)
    assert rc == 2, err
    assert f"tuning.envs: {NO_PAIR_ENV} has no reference pair" in err, err
    assert "references:" in err
    assert snapshot(tmp_path) == before


def test_a_tuning_env_takes_the_specs_pair_and_selection_uses_it(tmp_path):
    from sweeps.tuning import score_trials

    refs = (f"references:\n  {NO_PAIR_ENV}: {{random: -200.0, reference: -100.0, "
            "source: a test pair}\n")
    spec = parse_spec(_with_tuning_env(NO_PAIR_ENV, refs), source=str(tmp_path / "spec.yaml"))
    assert spec.references[NO_PAIR_ENV]["reference"] == -100.0
    rows, curves = [], []
    for env, ret in (("CartPole-v1", 500.0), (NO_PAIR_ENV, -150.0)):
        rows.append({"variant": trial_name("vmpo", 0), "env": env, "seed": 1000, "state": "done"})
        curves.append(([100, 200], [0.0, ret]))
    scored = score_trials(spec, pd.DataFrame(rows), lambda i: curves[i])["vmpo"]
    import suites

    # CartPole by its suite's pair; MountainCar by the spec's: halfway from -200 to -100
    cart = float(suites.normalise("CartPole-v1", 500.0))
    assert scored[0].per_env == pytest.approx({"CartPole-v1": cart, NO_PAIR_ENV: 0.5})
    assert scored[0].score == pytest.approx((cart + 0.5) / 2)


def test_a_tune_report_normalises_a_tuning_env_by_the_pair_its_runs_recorded(tmp_path):
    from analysis import report
    from analysis.load import load
    from analysis.tuning import trial_table

    refs = (f"references:\n  {NO_PAIR_ENV}: {{random: -300.0, reference: -100.0, "
            "source: a test pair}\n")
    text = _with_tuning_env(NO_PAIR_ENV, refs).replace("configs: 3", "configs: 1")
    rc, _, err = cli(tmp_path, "--phase", "tune", "--executor", "debug", spec_text=text)
    assert rc == 0, err
    tune = tmp_path / "results" / "tun-tune"
    runs = load([str(tune)])
    tt = trial_table(runs)
    mc = tt[tt["env"] == NO_PAIR_ENV]
    assert len(mc) == 2  # vmpo.c00 and ppo.c00
    for (_, r), (i, row) in zip(mc.iterrows(), runs.table[runs.table["env"] == NO_PAIR_ENV].iterrows()):
        _, values = runs.curve(i)
        assert r["final"] == pytest.approx((values[-1] + 300.0) / 200.0)
    report.build([str(tune)], tmp_path / "rep", reps=100, seed=0, baseline=None,
                 allow_incomplete=False)
    assert "## Tuning" in (tmp_path / "rep" / "report.md").read_text()


def test_a_trial_missing_a_tuning_env_is_not_scored_until_its_runs_exist(tmp_path):
    """A partial tune sweep in which PPO has not yet reached its second tuning env: its
    trials must not be scored on the one env they have (the spec asks for 2 envs x 1 seed)."""
    from analysis.tuning import _cells, trial_scores

    sweep = tmp_path / "tun-tune"
    sweep.mkdir()
    (sweep / "spec.yaml").write_text(textwrap.dedent(SPEC).replace(
        "envs: [CartPole-v1]\n  search", "envs: [CartPole-v1, Acrobot-v1]\n  search"))
    assert _cells(str(sweep)) == 2
    rows = [{"sweep": "tun-tune", "variant": v, "trial": 0, "env": env, "seed": 1000,
             "state": "done", "final": f, "auc": f, "config": {}}
            for v, env, f in (("vmpo", "CartPole-v1", 0.5), ("vmpo", "Acrobot-v1", 0.3),
                              ("ppo", "CartPole-v1", 0.9))]  # no PPO run on Acrobot yet
    tt = pd.DataFrame(rows)
    ts = trial_scores(tt, "final", {"tun-tune": _cells(str(sweep))}).set_index("variant")
    assert ts.loc["vmpo", "score"] == pytest.approx(0.4)
    assert math.isnan(ts.loc["ppo", "score"])
    # without the spec's count, the envs a variant's runs cover decide: PPO on CartPole alone
    assert trial_scores(tt, "final").set_index("variant").loc["ppo", "score"] == pytest.approx(0.9)


def test_chosen_values_show_their_searched_range_and_an_end_is_flagged(tmp_path):
    """The spec copy's ranges and choices reach the chosen-values table; a chosen value
    within 10% of its range's span from an end (log scale for log kinds) is flagged."""
    from analysis.tuning import chosen, pick, search_space
    from analysis.tuning_values import range_position

    sweep = tmp_path / "tun-tune"
    sweep.mkdir()
    (sweep / "spec.yaml").write_text(textwrap.dedent(SPEC))
    ranges, choices = search_space(str(sweep))
    assert ranges == {"vmpo": {"eps_eta": ("log_uniform", 0.01, 1.0)},
                      "ppo": {"lr": ("log_uniform", 1e-4, 3e-3), "epochs": ("int", 1.0, 10.0)}}
    assert choices == {"vmpo": {"num_envs": [4, 8], "rollout_length": [64, 32]}}
    # log scale: 0.1 is the geometric middle of [0.01, 1]; 0.0158 is 10% of the log-span in
    assert range_position(0.1, "log_uniform", 0.01, 1.0) == pytest.approx(0.5)
    assert range_position(10 ** -1.8, "log_uniform", 0.01, 1.0) == pytest.approx(0.1)
    assert range_position(9, "int", 1, 10) == pytest.approx(8 / 9)
    cfgs = [{"eps_eta": 0.1, "num_envs": 4, "rollout_length": 64},     # c00, defaults
            {"eps_eta": 0.015, "num_envs": 8, "rollout_length": 32},   # best: eps_eta at the low end
            {"eps_eta": 0.3, "num_envs": 4, "rollout_length": 64}]
    tt = pd.DataFrame([{"variant": "vmpo", "trial": i, "config": c} for i, c in enumerate(cfgs)])
    ts = pd.DataFrame([{"variant": "vmpo", "trial": i, "score": sc, "config": c}
                       for i, (c, sc) in enumerate(zip(cfgs, (0.2, 0.6, 0.4)))])
    ch = chosen(ts, tt, pick(ts, tt), ranges, choices).set_index("field")
    assert ch.loc["eps_eta", "chosen"] == 0.015 and ch.loc["eps_eta", "edge"] == "low end"
    assert ch.loc["eps_eta", "range"] == "log_uniform [0.01, 1]"
    assert ch.loc["num_envs", "range"] == "choice {4, 8}" and ch.loc["num_envs", "edge"] == ""
    ts.loc[1, "config"]["eps_eta"] = 0.02  # log position 0.15: inside, no flag
    assert chosen(ts, tt, pick(ts, tt), ranges, choices).set_index("field").loc["eps_eta", "edge"] == ""


def test_the_selection_fragment_says_when_a_value_sits_at_an_end_of_its_range(tmp_path):
    """A selected value within 10% of its range's span from an end (log scale for
    log_uniform) is commented in the fragment; a value inside, or a choice, is not."""
    from sweeps.tuning import selection_text

    spec = parse_spec(textwrap.dedent(SPEC), source=str(tmp_path / "spec.yaml"))
    scored = {"vmpo": [Trial("vmpo", 0, {}, score=0.1),
                       Trial("vmpo", 1, {"eps_eta": 0.9, "num_envs": 4, "rollout_length": 64}, score=0.5)],
              "ppo": [Trial("ppo", 0, {}, score=0.1),
                      Trial("ppo", 1, {"lr": 5e-4, "epochs": 10}, score=0.3)]}
    chosen = {v: trs[1] for v, trs in scored.items()}
    defaults = {"vmpo": {"eps_eta": 0.1, "num_envs": 8, "rollout_length": 32},
                "ppo": {"lr": 3e-4, "epochs": 10}}
    text = selection_text(spec, scored, chosen, defaults, "test provenance")
    line = {ln.split(":")[0].strip(): ln for ln in text.splitlines() if ln.startswith("    ")}
    # log10(0.9) is 97.7% of the way from log10(0.01) to log10(1)
    assert "at the high end of log_uniform [0.01, 1]" in line["eps_eta"]
    assert "at the high end of int [1, 10]" in line["epochs"]  # (10 - 1) / 9 = 1
    assert "end of" not in line["lr"]                          # log position 0.49
    assert "end of" not in line["num_envs"]                    # a choice has no range
    import yaml
    assert yaml.safe_load(text)["runs"]["vmpo"]["eps_eta"] == 0.9  # still a valid fragment


def test_the_report_scores_a_trial_only_with_all_its_tuning_envs_and_reads_yaml_as_the_launcher(tmp_path):
    """Through the report: PPO's trial has lost its Acrobot run, so the tuning section
    leaves it unscored while V-MPO's is scored; the spec copy's `1e-4` is the float the
    launcher read (YAML 1.2 numbers), in the choices beside a chosen value."""
    from analysis import report
    from analysis.load import load
    from analysis.tuning import search_space

    text = (textwrap.dedent(SPEC).replace("configs: 3", "configs: 1")
            .replace("envs: [CartPole-v1]\n  search", "envs: [CartPole-v1, Acrobot-v1]\n  search")
            .replace("      epochs: {int: [1, 10]}", "      epochs: {int: [1, 10]}\n"
                     "      clip_coef: {choice: [1e-1, 2e-1]}"))
    rc, _, err = cli(tmp_path, "--phase", "tune", "--executor", "debug", spec_text=text)
    assert rc == 0, err
    tune = tmp_path / "results" / "tun-tune"
    assert search_space(str(tune))[1]["ppo"] == {"clip_coef": [0.1, 0.2]}
    runs = load([str(tune)])
    gone = runs.table[(runs.table["variant"] == "ppo.c00") & (runs.table["env"] == "Acrobot-v1")]
    import shutil
    for path in gone["path"]:
        shutil.rmtree(path)
    report.build([str(tune)], tmp_path / "rep", reps=100, seed=0, baseline=None,
                 allow_incomplete=False)
    trials = pd.read_csv(tmp_path / "rep" / "tuning_trials.csv").set_index("variant")
    assert np.isfinite(trials.loc["vmpo", "score"]) and np.isnan(trials.loc["ppo", "score"])
    assert "Tuning incomplete: 3 of 4 trial runs done." in (tmp_path / "rep" / "report.md").read_text()


def test_per_env_table_shows_the_defaults_the_chosen_trial_and_each_envs_spread():
    from analysis.tuning import per_env_table, pick

    ts = pd.DataFrame([
        {"variant": "vmpo", "trial": 0, "score": 0.38, "per_env": {"A": 0.16, "B": 0.60}, "config": {}},
        {"variant": "vmpo", "trial": 1, "score": 0.49, "per_env": {"A": 0.18, "B": 0.80}, "config": {}},
        {"variant": "vmpo", "trial": 2, "score": 0.10, "per_env": {"A": 0.02, "B": 0.18}, "config": {}},
        {"variant": "vmpo", "trial": 3, "score": np.nan, "per_env": {"A": 0.90}, "config": {}},  # unscored
    ])
    t = per_env_table(ts, pick(ts, pd.DataFrame(columns=["variant", "config"]))).set_index("trial")
    spread = "spread over 3 scored trials (max - min)"
    assert list(t.index) == ["c00 (defaults)", "c01 (chosen)", spread]
    assert list(t.columns) == ["variant", "A", "B", "mean"]
    assert t.loc["c01 (chosen)", "B"] == "0.800" and t.loc["c00 (defaults)", "mean"] == "0.380"
    # the spread counts scored trials only: A 0.18 - 0.02, not 0.90 - 0.02
    assert t.loc[spread, "A"] == "0.160" and t.loc[spread, "B"] == "0.620"
    assert t.loc[spread, "mean"] == "0.390"
    # the defaults chosen: one row; one scored trial: no spread; unscored defaults: said
    one = per_env_table(ts.iloc[[0]], {"vmpo": (0, "best score")}).set_index("trial")
    assert list(one.index) == ["c00 (defaults, chosen)", "spread over 1 scored trials (max - min)"]
    assert (one.iloc[1][["A", "B", "mean"]] == "-").all()
    lone = ts.iloc[[3]].assign(trial=0)
    assert per_env_table(lone, {}).iloc[0]["trial"] == "c00 (defaults, unscored)"


def test_one_rule_picks_the_chosen_trial_for_select_and_the_report():
    """A trial with a NaN run scores NaN in both sweeps.tuning (select) and the report,
    so neither picks it; the report's pick prefers the trial the test runs ran, says when
    none matches, and otherwise takes the best score by the same rule as select."""
    from analysis.tuning import pick, trial_scores
    from analysis.tuning_values import best_of
    from sweeps.tuning import choose

    rows = []
    for trial, finals in enumerate([(0.2, 0.3), (0.9, np.nan), (0.5, 0.4)]):
        for seed, f in zip((1000, 1001), finals):
            rows.append({"sweep": "t-tune", "variant": "vmpo", "trial": trial, "env": "A",
                         "seed": seed, "state": "done", "final": f, "auc": f,
                         "config": {"lr": [1e-3, 2e-3, 3e-3][trial]}})
    tt = pd.DataFrame(rows)
    ts = trial_scores(tt, "final")
    assert math.isnan(ts.set_index("trial").loc[1, "score"])  # not 0.9 (a pandas skipna mean)
    assert best_of(zip(ts["trial"], ts["score"])) == 2
    trials = [Trial("vmpo", int(t), {}, score=float(sc)) for t, sc in zip(ts["trial"], ts["score"])]
    assert choose(trials).trial == 2
    assert best_of([(0, 0.5), (3, 0.5)]) == 0  # ties: the lower trial (the defaults first)
    assert pick(ts, tt) == {"vmpo": (2, "best score")}
    assert pick(ts, tt, {"vmpo": {"lr": 1e-3}}) == {"vmpo": (0, "the test runs' config")}
    assert pick(ts, tt, {"vmpo": {"lr": 9e-3}})["vmpo"] == (
        2, "best score (the test runs' config matches no trial)")


def test_edges_and_sensitivity_axes_with_a_default_outside_a_log_range(tmp_path):
    """A default of 0 on a log-ranged field (V-MPO's minibatch_size, PPO's ent_coef) is no
    point of the range: no edge flag, no crash, left off the log axis; a positive default
    outside the range widens the axis to show it."""
    import matplotlib

    matplotlib.use("Agg")
    from analysis.tuning_values import edge_of
    from analysis.tuning_figures import sensitivity_figure

    assert edge_of(0, "log_uniform", 1e-4, 1e-2) == "" and edge_of(0.0, "log_int", 32, 512) == ""
    assert edge_of(5e-2, "log_uniform", 1e-4, 1e-2) == ""  # outside: not an end of the range
    assert edge_of(9.5e-3, "log_uniform", 1e-4, 1e-2) == "high end"
    cfgs = [{"ent_coef": 0.0, "lr": 3e-2, "vf_lr": 1e-3}, {"ent_coef": 2e-3, "lr": 5e-4, "vf_lr": 4e-4},
            {"ent_coef": 8e-3, "lr": 2e-4, "vf_lr": 2.5e-3}]
    tt = pd.DataFrame([{"variant": "ppo", "trial": i, "config": c} for i, c in enumerate(cfgs)])
    ts = pd.DataFrame([{"variant": "ppo", "trial": i, "score": sc, "config": c}
                       for i, (c, sc) in enumerate(zip(cfgs, (0.3, 0.5, 0.4)))])
    import matplotlib.pyplot as plt

    captured = {}
    real_close = plt.close

    def keep(fig=None):  # analysis.plots.save closes the figure: read its axes first
        if fig is not None and hasattr(fig, "axes"):
            captured["xlim"] = {ax.get_xlabel(): ax.get_xlim() for ax in fig.axes}
            fig.canvas.draw()
            captured["labels"] = {ax.get_xlabel(): (
                [t.get_text() for t in ax.get_xticklabels() if t.get_text()
                 and ax.get_xlim()[0] <= t.get_position()[0] <= ax.get_xlim()[1]],
                [t.get_text() for t in ax.get_xticklabels(minor=True) if t.get_text()])
                for ax in fig.axes}
        return real_close(fig)

    plt.close = keep
    try:
        files = sensitivity_figure(ts, tt, "ppo", "final", tmp_path,
                                   {"ent_coef": ("log_uniform", 1e-4, 1e-2),
                                    "lr": ("log_uniform", 1e-4, 1e-3),
                                    "vf_lr": ("log_uniform", 3e-4, 3e-3)}, best=1)
    finally:
        plt.close = real_close
    assert "tuning_sensitivity_ppo.png" in files
    lo, hi = captured["xlim"]["ent_coef"]
    assert 0 < lo < 1e-4 and 1e-2 < hi < 2e-2  # the range, padded; 0 left off
    lo, hi = captured["xlim"]["lr"]
    assert lo < 1e-4 and hi > 3e-2  # widened to the default 3e-2 outside [1e-4, 1e-3]
    # a decade's range: no minor tick labels (they overlapped), majors at 1 and 3 per decade
    major, minor = captured["labels"]["vf_lr"]
    assert minor == [] and len(major) == 3, (major, minor)


def test_two_tune_sweeps_of_one_variant_are_refused(tmp_path):
    from analysis import report

    for name in ("a", "b"):
        rc, _, err = cli(tmp_path / name if (tmp_path / name).mkdir() is None else None,
                         "--phase", "tune", "--executor", "debug",
                         spec_text=SPEC.replace("name: tun", f"name: {name}").replace("configs: 3", "configs: 1"))
        assert rc == 0, err
    rc = report.main([str(tmp_path / "a" / "results" / "a-tune"), str(tmp_path / "b" / "results" / "b-tune"),
                      "--out", str(tmp_path / "rep"), "--reps", "50", "--jobs", "1"])
    assert rc == 2
    assert not (tmp_path / "rep").exists()


def test_other_criteria_show_when_the_pick_depends_on_the_criterion():
    """final: the mean over envs (env A's wide spread decides); rank: mean per-env rank
    (A and B count alike); auc: the mean over the curve (here a late riser loses)."""
    from analysis.tuning import other_criteria

    # trial -> {env: (final, auc)}, one seed each
    table = {0: {"A": (0.9, 0.3), "B": (0.10, 0.10)},   # best final mean (0.5), rank 1 + 3
             1: {"A": (0.5, 0.5), "B": (0.30, 0.30)},   # final 0.4, rank 2 + 1 = best rank
             2: {"A": (0.2, 0.2), "B": (0.20, 0.20)}}   # final 0.2, rank 3 + 2
    tt = pd.DataFrame([{"sweep": "t-tune", "variant": "vmpo", "trial": t, "env": e, "seed": 1000,
                        "state": "done", "final": f, "auc": a, "config": {}}
                       for t, envs in table.items() for e, (f, a) in envs.items()])
    oc = other_criteria(tt).set_index("criterion")
    assert oc.loc["final", "trial"] == 0 and oc.loc["final", "final"] == pytest.approx(0.5)
    assert oc.loc["rank", "trial"] == 1 and oc.loc["rank", "mean_rank"] == pytest.approx(1.5)
    assert oc.loc["auc", "trial"] == 1 and oc.loc["auc", "auc"] == pytest.approx(0.4)
    assert oc.loc["final", "mean_rank"] == pytest.approx(2.0)  # (1 + 3) / 2


def test_a_tuned_variant_with_no_trial_yet_shows_a_zero_budget(tmp_path):
    import shutil

    from analysis import report
    from analysis.load import load

    rc, _, err = cli(tmp_path, "--phase", "tune", "--executor", "debug",
                     spec_text=SPEC.replace("configs: 3", "configs: 1"))
    assert rc == 0, err
    tune = tmp_path / "results" / "tun-tune"
    t = load([str(tune)]).table
    for path in t.loc[t["variant"].str.startswith("ppo."), "path"]:
        shutil.rmtree(path)
    report.build([str(tune)], tmp_path / "rep", reps=100, seed=0, baseline=None,
                 allow_incomplete=False)
    b = pd.read_csv(tmp_path / "rep" / "tuning_budget.csv", comment="#").set_index("variant")
    assert b.loc["ppo", "runs"] == 0 and b.loc["ppo", "configurations"] == 0
    assert b.loc["vmpo", "runs"] == 1
    md = (tmp_path / "rep" / "report.md").read_text()
    # incomplete: what was spent so far, beside what the spec declares; no verdict on equality
    assert ("Budget spent so far (the tuning is incomplete, so the variants' budgets are not "
            "compared yet): the spec declares ppo 1 configurations; vmpo 1 configurations.") in md
    assert "Unequal tuning budgets" not in md and "had the same budget" not in md


def test_unequal_budgets_with_a_variant_not_started_and_declared_ones():
    from analysis.tuning import unequal

    b = pd.DataFrame([
        {"variant": "ppo", "configurations": 16, "runs": 46, "envs": "A, B", "seeds": "0, 1",
         "env_steps": 40_000_000, "core_hours": 4.0},  # 870k steps per run so far
        {"variant": "vmpo", "configurations": 16, "runs": 64, "envs": "A, B", "seeds": "0, 1",
         "env_steps": 64_000_000, "core_hours": 4.7},
        {"variant": "trpo", "configurations": 0, "runs": 0, "envs": "-", "seeds": "-",
         "env_steps": 0, "core_hours": 0.0}])
    diffs = unequal(b)  # no 0/0 steps per run for trpo
    assert diffs[-1] == "env steps per run: ppo 869,565; vmpo 1,000,000"
    assert diffs[0] == "configurations: ppo 16; vmpo 16; trpo 0"


def test_other_criteria_break_a_rank_tie_by_the_declared_criterion():
    from analysis.tuning import other_criteria

    # two envs, three trials: every trial's mean rank is 2.0 (1+3, 2+2, 3+1)
    table = {0: {"A": 0.9, "B": 0.1}, 1: {"A": 0.5, "B": 0.6}, 2: {"A": 0.1, "B": 0.8}}
    tt = pd.DataFrame([{"sweep": "t-tune", "variant": "vmpo", "trial": t, "env": e, "seed": 1000,
                        "state": "done", "final": f, "auc": f, "config": {}}
                       for t, envs in table.items() for e, f in envs.items()])
    oc = other_criteria(tt).set_index("criterion")
    assert oc.loc["final", "trial"] == 1  # 0.55, the best mean
    assert oc.loc["rank", "trial"] == 1 and oc.loc["rank", "mean_rank"] == pytest.approx(2.0)


def test_activity_correlations_are_per_variant_and_skip_what_cannot_be_ranked():
    from scipy.stats import spearmanr

    from analysis.tuning import activity_correlations

    rows = []
    for variant, sign in (("vmpo", 1), ("vmpo-no-topk", -1)):
        for t in range(6):  # within each variant the relation is perfect, of opposite sign
            rows.append({"variant": variant, "trial": t, "score": 0.1 * t + (0.0 if sign > 0 else 1.0),
                         "mean_active": 0.1 * t if sign > 0 else 1.0 - 0.1 * t,
                         "std_active": 0.5, "kl_active": np.nan})
    ttr = pd.DataFrame(rows)
    text = activity_correlations(ttr)
    assert text == ["`vmpo`, α_μ active against score: Spearman ρ = +1.00 (p = 0, 6 trials)",
                    "`vmpo-no-topk`, α_μ active against score: Spearman ρ = -1.00 (p = 0, 6 trials)"]
    pooled = spearmanr(ttr["score"], ttr["mean_active"]).statistic
    assert pooled > -0.9  # what one pooled rho would have said instead
    flat = ttr.assign(score=0.5)  # constant scores: no rho, no nan
    assert activity_correlations(flat) == []



def test_the_tuning_figures_are_byte_identical_from_the_same_runs(tmp_path, monkeypatch):
    """The figures spread equal values without a random generator, so the report leaves
    the caller's global one where it was; with two tuning seeds the section adds the
    split-seed reliability (and the scores figure each trial's seed spread). The same
    trials show the launcher's design record and its warnings after the fact."""
    from analysis import report
    from sweeps.tuning import Tuning

    text = SPEC.replace("  seeds: [1000]\n", "  seeds: [1000, 1001]\n")
    rc, _, err = cli(tmp_path, "--phase", "tune", "--executor", "debug", spec_text=text)
    assert rc == 0, err
    tune = tmp_path / "results" / "tun-tune"
    # the spec leaves `sampler` to its default: the tune sweep's manifest records it (the
    # test sweep's does not: it draws nothing), and the report reads it from there
    assert json.loads((tune / "manifest.json").read_text())["tuning"] == {"sampler": "lhs",
                                                                          "sampler_seed": 0}
    assert "sampler" not in (tune / "spec.yaml").read_text()
    # a design warning after every trial ran says so, through launch.py's dry run
    monkeypatch.setattr(Tuning, "design_warnings", lambda self: ["tuning.search.vmpo: x"])
    rc, _, err = cli(tmp_path, "--dry-run", "--executor", "local", spec_text=text)
    assert rc == 0 and "warning: tuning.search.vmpo: x (its trials already ran)\n" in err, err
    monkeypatch.undo()
    np.random.seed(123)
    before = np.random.random()
    np.random.seed(123)
    for name in ("a", "b"):
        report.build([str(tune)], tmp_path / name, reps=100, seed=0, baseline=None,
                     allow_incomplete=False)
    assert np.random.random() == before  # the global generator untouched by the report
    md = (tmp_path / "a" / "report.md").read_text()
    assert "### Does the trials' ranking replicate across seeds?" in md
    rel = pd.read_csv(tmp_path / "a" / "tuning_reliability.csv", comment="#")
    assert sorted(rel["variant"]) == ["ppo", "vmpo"] and set(rel["trials"]) == {3}
    assert "### Design coverage" in md and "No pair is aliased" in md  # 2 trials: nothing missed
    assert "the others are points of a Latin hypercube (`tuning.sampler: lhs`" in md
    for f in ("tuning_scores.png", "tuning_sensitivity_vmpo.png"):
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes(), f


# -- the design: sampler, coverage, aliasing ----------------------------------------------------


def _shipped_tuning(sampler: str):
    from dataclasses import replace

    from sweeps.spec import load_spec

    t = load_spec(Path(__file__).resolve().parents[1] / "sweeps" / "mujoco-tuned.yaml").tuning
    return replace(t, sampler=sampler)


def test_the_sobol_design_of_the_study_aliases_topk_batch_and_passes_and_lhs_does_not():
    from analysis.tuning_design import aliased_groups

    sobol = _shipped_tuning("sobol")
    cov = sobol.coverage("vmpo")
    bad = cov[cov["aliased"]]
    assert sorted(map(sorted, zip(bad["a"], bad["b"]))) == [
        ["batch", "passes"], ["batch", "topk_fraction"], ["passes", "topk_fraction"]]
    assert set(bad["levels"]) == {4} and set(bad["possible"]) == {15} and set(bad["trials"]) == {15}
    assert aliased_groups(cov) == [["batch", "passes", "topk_fraction"]]
    # brute force: the 15 trials' (batch option, passes option) pairs, from the configs
    cfgs = sobol.configurations("vmpo")[1:]
    batch = [(c["num_envs"], c["rollout_length"]) for c in cfgs]
    passes = [(c["epochs"], c["minibatch_size"]) for c in cfgs]
    assert len(set(zip(batch, passes))) == 4 == len(set(batch))
    assert not _shipped_tuning("sobol").coverage("trpo")["aliased"].any()
    lhs = _shipped_tuning("lhs")
    for v in ("vmpo", "ppo", "trpo"):
        cov = lhs.coverage(v)
        assert not cov["aliased"].any(), (v, cov.head())
        assert cov["levels"].min() >= 8  # the worst pair: at least 8 of 15 joint levels
    assert lhs.design_warnings() == [] and len(sobol.design_warnings()) == 6


def test_lhs_stratifies_every_dimension():
    """16 draws: each of a 4-option choice's options 4 times, each quarter of a range 4
    times (every marginal stratified), whatever the seed."""
    text = textwrap.dedent(SPEC).replace("configs: 3", "configs: 17").replace(
        "batch: {choice: [{num_envs: 4, rollout_length: 64}, {num_envs: 8, rollout_length: 32}]}",
        "batch: {choice: [{num_envs: 4, rollout_length: 64}, {num_envs: 8, rollout_length: 32},"
        " {num_envs: 2, rollout_length: 64}, {num_envs: 1, rollout_length: 128}]}")
    for seed in (0, 1, 2):
        t = parse_spec(text.replace("  seeds: [1000]\n", f"  seeds: [1000]\n  sampler_seed: {seed}\n"),
                       source="/x/spec.yaml").tuning
        cfgs = t.configurations("vmpo")[1:]
        assert len(cfgs) == 16
        assert sorted(np.unique([c["num_envs"] for c in cfgs], return_counts=True)[1]) == [4, 4, 4, 4]
        quarters = [min(int(4 * math.log(c["eps_eta"] / 0.01) / math.log(100)), 3) for c in cfgs]
        assert sorted(np.unique(quarters, return_counts=True)[1]) == [4, 4, 4, 4]


def test_design_coverage_of_hand_made_four_trial_designs():
    from analysis.tuning_design import design_coverage, dimension_levels

    dims = {"a": {"choice": [1, 2]}, "b": {"choice": [{"x": 0, "y": 1}, {"x": 5, "y": 6}]},
            "lr": {"log_uniform": [1e-4, 1e-2]}}
    aliased = {0: {"a": 9, "x": 9, "y": 9, "lr": 1e-3},   # trial 0, the defaults: left out
               1: {"a": 1, "x": 0, "y": 1, "lr": 1.1e-4}, 2: {"a": 2, "x": 5, "y": 6, "lr": 9e-3},
               3: {"a": 1, "x": 0, "y": 1, "lr": 2e-4}, 4: {"a": 2, "x": 5, "y": 6, "lr": 2e-3}}
    cov = design_coverage(dims, aliased).set_index(["a", "b"])
    assert cov.loc[("a", "b"), ["trials", "levels", "possible"]].tolist() == [4, 2, 4]
    assert bool(cov.loc[("a", "b"), "aliased"])
    # lr's quarters (of log10 from -4 to -2): 0, 3, 0, 2: 3 levels, not a function of a
    assert dimension_levels("lr", dims["lr"], [aliased[t] for t in (1, 2, 3, 4)])[0] == [0, 3, 0, 2]
    assert cov.loc[("a", "lr"), "levels"] == 3 and not cov.loc[("a", "lr"), "aliased"]
    full = {1: {"a": 1, "x": 0, "y": 1}, 2: {"a": 2, "x": 5, "y": 6},
            3: {"a": 1, "x": 5, "y": 6}, 4: {"a": 2, "x": 0, "y": 1}}
    cov = design_coverage({k: dims[k] for k in ("a", "b")}, full)
    assert cov[["levels", "possible", "coverage"]].values.tolist() == [[4, 4, 1.0]]
    assert not cov["aliased"].any()
    # two trials can reach only two levels: each fixes the other, but nothing was missed
    two = design_coverage({k: dims[k] for k in ("a", "b")}, {1: full[1], 2: full[2]})
    assert two[["levels", "possible"]].values.tolist() == [[2, 2]] and not two["aliased"].any()
    # a trial whose value is no option is left out of that dimension's pairs
    odd = design_coverage({k: dims[k] for k in ("a", "b")}, {**full, 5: {"a": 3, "x": 0, "y": 1}})
    assert odd["trials"].tolist() == [4]


def test_the_sobol_design_is_confounded_at_halves_where_quartiles_see_nothing():
    """The reader's finding: in the study's Sobol design PPO never tried 10x32 or 20x128 at
    a low lr, and V-MPO's eps_eta and lr halves coincide; at quartiles both pairs reach 8
    of 15 joint levels and are not aliased. The coarse pass flags exactly these two (the
    topk/batch/passes group is aliased at quartiles already); the LHS twin nothing."""
    from analysis.tuning_design import halves_pairs
    from analysis.tuning_values import range_position

    sobol, lhs = _shipped_tuning("sobol"), _shipped_tuning("lhs")
    found = {v: halves_pairs(sobol.coverage(v)) for v in ("vmpo", "ppo", "trpo")}
    assert found == {"vmpo": [("eps_eta", "lr")], "ppo": [("lr", "passes")], "trpo": []}
    for v in ("vmpo", "ppo"):
        cov = sobol.coverage(v).set_index(["a", "b"])
        pair = found[v][0]
        assert cov.loc[pair, "levels"] == 8 and not cov.loc[pair, "aliased"]
        assert cov.loc[pair, "aliased_at"] == "halves"
    # brute force from the configs: lr's half against the passes option
    cfgs = sobol.configurations("ppo")[1:]
    low = {(c["epochs"], c["minibatch_size"]) for c in cfgs
           if range_position(c["lr"], "log", 1e-4, 1e-3) < 0.5}
    high = {(c["epochs"], c["minibatch_size"]) for c in cfgs
            if range_position(c["lr"], "log", 1e-4, 1e-3) >= 0.5}
    assert low == {(5, 64), (10, 64)} and high == {(10, 32), (20, 128)}
    cov = sobol.coverage("ppo").set_index(["a", "b"])
    assert cov.loc[("lr", "passes"), "split"] == (
        "lr lower half: passes in {5 x 64, 10 x 64}; lr upper half: passes in {10 x 32, 20 x 128}")
    vm = sobol.configurations("vmpo")[1:]
    assert [range_position(c["eps_eta"], "log", 0.01, 1.0) < 0.5 for c in vm] == [
        range_position(c["lr"], "log", 1e-4, 3e-3) < 0.5 for c in vm]
    # worst first, the halves-confounded pair before its tie (gae_lambda x passes, 8 of 15)
    ppo = sobol.coverage("ppo")
    assert ppo[["a", "b"]].head(2).values.tolist() == [["lr", "passes"], ["gae_lambda", "passes"]]
    for v in ("vmpo", "ppo", "trpo"):
        assert (lhs.coverage(v)["aliased_at"] == "").all(), v


def test_halves_flag_only_disjoint_splits_not_unbalanced_ones():
    from analysis.tuning_design import design_coverage

    dims = {"x": {"uniform": [0.0, 1.0]}, "y": {"log_uniform": [1e-3, 1e-1]},
            "opt": {"choice": ["a", "b", "c", "d"]}}
    # x and y: halves coincide on every trial (y's middle is 1e-2), quarters differ
    xs = [0.1, 0.3, 0.45, 0.6, 0.7, 0.9]
    ys = [1.5e-3, 5e-3, 9e-3, 1.1e-2, 4e-2, 9e-2]
    opts = ["a", "b", "a", "c", "d", "c"]  # a, b only below x's middle; c, d only above
    trials = {i + 1: {"x": x, "y": y, "opt": o} for i, (x, y, o) in enumerate(zip(xs, ys, opts))}
    cov = design_coverage(dims, trials).set_index(["a", "b"])
    assert cov.loc[("x", "y"), "aliased_at"] == "halves" and not cov.loc[("x", "y"), "aliased"]
    assert cov.loc[("x", "y"), "split"] == "x lower half <=> y lower half"
    assert cov.loc[("x", "opt"), "split"] == "x lower half: opt in {\"a\", \"b\"}; x upper half: opt in {\"c\", \"d\"}"
    # exactly swapped halves are confounded too
    swapped = {t: {**c, "y": 1e-4 / c["y"]} for t, c in trials.items()}  # 1e-3 <-> 1e-1
    cov = design_coverage(dims, swapped).set_index(["a", "b"])
    assert cov.loc[("x", "y"), "split"] == "x lower half <=> y upper half"
    # one trial off the diagonal, or one option on both sides: not disjoint, not flagged,
    # though the split stays unbalanced (a and b still come only below x's middle)
    off = {**trials, 7: {"x": 0.2, "y": 5e-2, "opt": "c"}}
    cov = design_coverage(dims, off).set_index(["a", "b"])
    assert cov.loc[("x", "y"), "aliased_at"] == "" and cov.loc[("x", "opt"), "aliased_at"] == ""
    # two trials that differ on both fix each other but miss nothing: no flag
    two = design_coverage(dims, {1: trials[1], 2: trials[6]})
    assert (two["aliased_at"] == "").all()
    # a numeric dimension whose trials all sit in one half splits nothing
    low = design_coverage({"x": dims["x"], "opt": dims["opt"]},
                          {t: {**c, "x": c["x"] / 2.5} for t, c in trials.items()})
    assert (low["aliased_at"] == "").all()


def test_dimension_levels_of_int_ranges_with_fewer_reachable_parts():
    from analysis.tuning_design import design_coverage, dimension_levels

    cfgs = [{"k": k} for k in (1, 2, 3, 2)]
    # positions 0, 0.5, 1: quartiles 0, 2, 3 (quartile 1 unreachable), halves 0, 1, 1
    assert dimension_levels("k", {"int": [1, 3]}, cfgs) == ([0, 2, 3, 2], 3)
    assert dimension_levels("k", {"int": [1, 3]}, cfgs, 2) == ([0, 1, 1, 1], 2)
    assert dimension_levels("k", {"log_int": [1, 2]}, [{"k": 1}, {"k": 2}])[1] == 2
    # the pair's `possible` uses the 3 reachable levels: 3 x 2 = 6 of 8 trials
    trials = {i + 1: {"k": k, "o": o} for i, (k, o) in enumerate(
        [(1, 0), (2, 0), (3, 0), (1, 1), (2, 1), (3, 1), (1, 0), (2, 1)])}
    cov = design_coverage({"k": {"int": [1, 3]}, "o": {"choice": [0, 1]}}, trials)
    assert cov[["trials", "levels", "possible", "coverage"]].values.tolist() == [[8, 6, 6, 1.0]]


def test_expected_levels_against_the_exact_distribution_of_distinct_cells():
    """E[distinct cells] of n independent uniform draws into c cells, from the exact law
    P(k distinct) = C(c, k) k! S(n, k) / c^n (S: Stirling numbers of the second kind)."""
    from analysis.tuning_design import design_coverage, expected_levels

    def exact(c: int, n: int) -> float:
        S = [[0] * (n + 1) for _ in range(n + 1)]
        S[0][0] = 1
        for i in range(1, n + 1):
            for k in range(1, i + 1):
                S[i][k] = k * S[i - 1][k] + S[i - 1][k - 1]
        return sum(k * math.comb(c, k) * math.factorial(k) * S[n][k] for k in range(1, n + 1)) / c**n

    for c, n in ((16, 15), (12, 15), (4, 4), (3, 1)):
        assert expected_levels(c, n) == pytest.approx(exact(c, n), rel=1e-12)
    assert round(expected_levels(16, 15), 1) == 9.9 and round(expected_levels(12, 15), 1) == 8.7
    # in the table: a 2 x 2 pair over 4 trials
    full = {1: {"a": 1, "b": 1}, 2: {"a": 2, "b": 2}, 3: {"a": 1, "b": 2}, 4: {"a": 2, "b": 1}}
    cov = design_coverage({"a": {"choice": [1, 2]}, "b": {"choice": [1, 2]}}, full)
    assert cov["expected"].iloc[0] == pytest.approx(exact(4, 4))


def test_aliased_groups_merge_two_groups_a_pair_links():
    from analysis.tuning_design import aliased_groups

    cov = pd.DataFrame({"a": ["a", "c", "b", "x"], "b": ["b", "d", "c", "y"],
                        "aliased": [True, True, True, False]})
    assert aliased_groups(cov) == [["a", "b", "c", "d"]]


def _design_rows(rows: list[tuple]) -> pd.DataFrame:
    from analysis.tuning_design import DESIGN_COLUMNS, expected_levels

    out = []
    for variant, a, b, levels, possible, cells, at, split in rows:
        out.append({"variant": variant, "a": a, "b": b, "trials": 15, "levels": levels,
                    "possible": possible, "expected": expected_levels(cells, 15),
                    "coverage": levels / possible, "aliased": at == "quartiles",
                    "aliased_at": at, "split": split})
    return pd.DataFrame(out, columns=["variant", *DESIGN_COLUMNS])


def test_the_design_sentence_names_every_tied_worst_pair_and_each_kind_of_aliasing():
    from analysis.tuning_design import design_sentence

    d = _design_rows([
        ("ppo", "lr", "passes", 8, 15, 16, "halves", "lr lower half: passes in {5 x 64}"),
        ("ppo", "gae_lambda", "passes", 8, 15, 16, "", ""),
        ("ppo", "lr", "gae_lambda", 12, 15, 16, "", ""),
        ("vmpo", "batch", "passes", 4, 15, 16, "quartiles", ""),
        ("vmpo", "eps_eta", "lr", 12, 15, 16, "", "")])
    text = design_sentence(d)
    assert ("Worst: `ppo` lr x passes (confounded at halves), gae_lambda x passes: 8 of 15 "
            "each, against 9.9 for 15 independent uniform draws (median coverage over its 3 "
            "pairs 0.53); `vmpo` batch x passes (aliased): 4 of 15, against 9.9 for 15 "
            "independent uniform draws") in text
    assert ("**Aliased pairs** (each one's level fixes the other's): `vmpo`: batch x passes "
            "(4 of 15).") in text
    assert ("**Confounded at halves** (each numeric range cut at its middle, on its own scale: "
            "the levels of one split the other's into disjoint sets on every trial): `ppo`: lr "
            "x passes (lr lower half: passes in {5 x 64}).") in text
    assert "No pair is aliased" not in text
    clean = design_sentence(d[d["aliased_at"] == ""])
    assert "No pair is aliased" in clean and "Aliased pairs" not in clean and "Confounded" not in clean
    # untied worst pairs with different cells keep their own counts
    mixed = design_sentence(_design_rows([("t", "a", "b", 7, 12, 12, "", ""),
                                           ("t", "c", "d", 9, 15, 16, "", "")]))
    assert "`t` a x b: 7 of 12, against 8.7 for 15 independent uniform draws (median" in mixed


def test_whole_batch_labels_and_tuning_envs(tmp_path):
    from analysis.tuning import tuning_envs
    from analysis.tuning_values import value_text, minibatch_text, passes_label

    assert passes_label(1, 0) == "1 x whole batch" and passes_label(5, 64) == "5 x 64"
    assert minibatch_text(0) == "whole batch" and minibatch_text(128) == "128"
    assert value_text("minibatch_size", 0) == "whole batch" and value_text("lr", 0) == "0"
    (tmp_path / "spec.yaml").write_text("tuning:\n  envs: [classic, Foo-v0]\n")
    assert tuning_envs(str(tmp_path)) == {"CartPole-v1", "Acrobot-v1", "Pendulum-v1",
                                          "MountainCarContinuous-v0", "Foo-v0"}
    assert tuning_envs(str(tmp_path / "none")) == set()


def test_the_report_names_the_sampler_from_the_spec_copy_else_the_manifest(tmp_path):
    from analysis.tuning import _design_text, resolved_sampler

    (tmp_path / "spec.yaml").write_text("tuning:\n  configs: 4\n")
    assert resolved_sampler(str(tmp_path)) is None
    assert "neither the spec copy nor manifest.json names" in _design_text([str(tmp_path)])
    (tmp_path / "manifest.json").write_text(json.dumps(
        {"sweep": "x", "tuning": {"sampler": "sobol", "sampler_seed": 0}, "runs": []}))
    assert _design_text([str(tmp_path)]).startswith("the first points of a scrambled Sobol")
    (tmp_path / "spec.yaml").write_text("tuning:\n  configs: 4\n  sampler: lhs\n")
    assert resolved_sampler(str(tmp_path)) == "lhs"  # the spec copy says it: it wins


def test_warn_design_says_when_the_trials_already_ran(monkeypatch):
    from types import SimpleNamespace

    import sweeps.state
    from sweeps.tuning import warn_design

    tuning = SimpleNamespace(design_warnings=lambda: ["tuning.search.v: a and b are aliased"])
    states: list = []
    monkeypatch.setattr(sweeps.state, "run_states", lambda folder, spec: (states, []))

    def said(status=False, **kw) -> str:
        err = io.StringIO()
        warn_design(tuning, SimpleNamespace(status=status), err, **kw)
        return err.getvalue()

    where = {"tune": object(), "folder": Path("/nowhere")}
    states[:] = [SimpleNamespace(state="new")] * 4
    assert said(**where) == "warning: tuning.search.v: a and b are aliased\n"
    states[:2] = [SimpleNamespace(state="done"), SimpleNamespace(state="failed")]
    assert said(**where).endswith("aliased (2 of 4 trial runs already ran)\n")
    states[:] = [SimpleNamespace(state="done")] * 4
    assert said(**where).endswith("aliased (its trials already ran)\n")
    assert said() == "warning: tuning.search.v: a and b are aliased\n"  # no folder: not said
    assert said(status=True, **where) == ""


# -- a relaunch must not mix two designs under one trial name --------------------------------------


SOBOL = SPEC.replace("  seeds: [1000]\n", "  seeds: [1000]\n  sampler: sobol\n")


def _tune_of(tmp_path, text: str):
    from sweeps.spec import load_spec

    path = tmp_path / "other.yaml"
    path.write_text(textwrap.dedent(text))
    return load_spec(path), tuning_spec(load_spec(path))


def _fake_done(folder: Path, runs) -> None:
    """Run directories that read as done (config.json, status.json), no training."""
    for r in runs:
        (folder / r.run_id).mkdir(parents=True)
        (folder / r.run_id / "config.json").write_text(json.dumps(
            {"run_id": r.run_id, "variant": r.variant, "algo": r.algo, "env": r.env, "seed": r.seed}))
        (folder / r.run_id / "status.json").write_text(
            json.dumps({"state": "done", "step": 512, "error": None}))


def test_a_tune_phase_drawn_otherwise_than_its_folders_trials_is_refused(tmp_path, snapshot):
    """Done trials of the Sobol design, relaunched from a spec that leaves `sampler` to
    its default (lhs): every trial has a new run id under the same name; refused (exit 2,
    the key and the fix named, nothing written); --status and --dry-run only warn."""
    _, sobol = _tune_of(tmp_path, SOBOL)
    _, lhs = _tune_of(tmp_path, SPEC)
    folder = tmp_path / "results" / "tun-tune"
    _fake_done(folder, sobol.runs)
    moved = {r.run_id for r in sobol.runs} - {r.run_id for r in lhs.runs}
    assert len(moved) == 4  # c01, c02 of vmpo and ppo; c00 (the defaults) keeps its id
    (tmp_path / "spec.yaml").write_text(textwrap.dedent(SPEC))
    before = snapshot(tmp_path)
    for args in (["--phase", "tune"], []):
        rc, out, err = cli(tmp_path, "--executor", "debug", *args, spec_text=None)
        assert rc == 2, err
        assert err.startswith("error: tuning.sampler: ") and "holds 4 done trial run(s)" in err
        assert "`tuning.sampler: sobol` gives these trials their run ids again" in err
        assert "a new `name`" in err and err.endswith("nothing launched\n")
        assert "launching" not in out and snapshot(tmp_path) == before
    for args in (["--status"], ["--dry-run"], ["--phase", "tune", "--dry-run"]):
        rc, out, err = cli(tmp_path, "--executor", "debug", *args, spec_text=None)
        assert rc == 0 and "warning: tuning.sampler: " in err and "error" not in err, err
        assert snapshot(tmp_path) == before
    # a changed search space: no sampler gives the old ids back, so the search is named
    rc, _, err = cli(tmp_path, "--phase", "tune", "--executor", "debug",
                     spec_text=SOBOL.replace("[1e-4, 3e-3]", "[1e-4, 1e-2]"))
    assert rc == 2 and err.startswith("error: tuning.search: ") and "holds 2 done" in err, err
    assert "gives these trials" not in err
    # the design the trials were drawn with: nothing to launch, no warning
    rc, out, err = cli(tmp_path, "--phase", "tune", "--executor", "debug", spec_text=SOBOL)
    assert rc == 0 and "nothing to launch: 6 run(s)" in out and "tuning." not in err, err
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["tuning"] == {"sampler": "sobol", "sampler_seed": 0}


def test_a_manifest_recording_another_design_refuses_the_tune_phase(tmp_path, snapshot):
    folder = tmp_path / "results" / "tun-tune"
    folder.mkdir(parents=True)
    (tmp_path / "spec.yaml").write_text(textwrap.dedent(SPEC))  # lhs, sampler_seed 0

    def launched(record: dict, *args) -> tuple[int, str, str]:
        (folder / "manifest.json").write_text(json.dumps(
            {"sweep": "tun-tune", "tuning": record, "runs": []}))
        before = snapshot(tmp_path)
        rc, out, err = cli(tmp_path, "--phase", "tune", "--executor", "debug", *args, spec_text=None)
        assert snapshot(tmp_path) == before
        return rc, out, err

    rc, _, err = launched({"sampler": "sobol", "sampler_seed": 0})
    assert rc == 2 and err.startswith("error: tuning.sampler: ") and "'sobol'" in err, err
    assert "valid: `tuning.sampler: sobol`" in err and err.endswith("nothing launched\n")
    rc, _, err = launched({"sampler": "lhs", "sampler_seed": 7})
    assert rc == 2 and err.startswith("error: tuning.sampler_seed: ") and "`tuning.sampler_seed: 7`" in err
    rc, _, err = launched({"sampler": "lhs", "sampler_seed": 7}, "--dry-run")
    assert rc == 0 and err.startswith("warning: tuning.sampler_seed: "), err
    # the same record: the launch goes on (here a done trial on an env the spec dropped,
    # whose (trial, env, seed) the spec does not run, is no sign of a changed design)
    spec, tune = _tune_of(tmp_path, SPEC)
    _fake_done(folder, tune.runs)
    (folder / "stray").mkdir()
    (folder / "stray" / "config.json").write_text(json.dumps(
        {"variant": "vmpo.c01", "env": "Acrobot-v1", "seed": 1000}))
    (folder / "stray" / "status.json").write_text(json.dumps({"state": "done", "step": 1, "error": None}))
    (folder / "manifest.json").write_text(json.dumps(
        {"sweep": "tun-tune", "tuning": spec.tuning.record(), "runs": []}))
    rc, out, err = cli(tmp_path, "--phase", "tune", "--executor", "debug", spec_text=None)
    assert rc == 0 and "nothing to launch" in out and "tuning." not in err, err


def test_archive_with_the_spec_writes_the_launchers_tuning_record(tmp_path):
    """analysis.archive --spec and the launcher write one `tuning` record (a tune sweep
    only), here for a spec leaving `sampler` to its default."""
    from analysis.archive import _spec_manifest
    from sweeps.state import read_manifest, write_manifest

    spec, tune = _tune_of(tmp_path, SPEC.replace("  seeds: [1000]\n", "  seeds: [1000]\n  sampler_seed: 3\n"))
    _, packed = _spec_manifest(tmp_path / "other.yaml", "tun-tune", set())
    write_manifest(tmp_path / "launched", tune)
    assert json.loads(packed)["tuning"] == {"sampler": "lhs", "sampler_seed": 3}
    assert read_manifest(tmp_path / "launched")["tuning"] == json.loads(packed)["tuning"]
    _, test_phase = _spec_manifest(tmp_path / "other.yaml", "tun", set())
    assert "tuning" not in json.loads(test_phase)


# -- split-seed reliability ------------------------------------------------------------------------


def _seed_trials(values: dict[tuple[int, int, str], float]) -> pd.DataFrame:
    """A trial_table-like frame from {(trial, seed, env): final}, rows shuffled."""
    rows = [{"sweep": "sw", "variant": "v", "trial": t, "seed": s, "env": e, "state": "done",
             "final": x, "auc": x, "config": {"lr": t}} for (t, s, e), x in values.items()]
    return pd.DataFrame(rows).sample(frac=1.0, random_state=3).reset_index(drop=True)


def test_split_seed_reliability_against_scipy():
    from scipy.stats import rankdata, spearmanr

    from analysis.tuning import trial_scores
    from analysis.tuning_reliability import per_seed_scores, seed_reliability

    rng = np.random.default_rng(5)
    seeds, envs, n = (1000, 1001, 1002, 1003), ("A", "B"), 9
    vals = {(t, s, e): float(rng.normal()) for t in range(n) for s in seeds for e in envs}
    tt = _seed_trials(vals)
    ts = trial_scores(tt, "final")
    per = per_seed_scores(tt, ts, "final")
    got = seed_reliability(per, {"v": (4, "best score")}).iloc[0]
    # direct: per trial and seed the mean over envs; first half of the sorted seeds
    # (1000, 1001) averaged against the rest (1002, 1003)
    by_seed = {(t, s): np.mean([vals[(t, s, e)] for e in envs]) for t in range(n) for s in seeds}
    a = np.array([np.mean([by_seed[(t, s)] for s in seeds[:2]]) for t in range(n)])
    b = np.array([np.mean([by_seed[(t, s)] for s in seeds[2:]]) for t in range(n)])
    want = spearmanr(a, b)
    assert got["rho"] == pytest.approx(want.statistic) and got["p"] == pytest.approx(want.pvalue)
    assert (got["seeds_a"], got["seeds_b"], got["trials"]) == ("1000, 1001", "1002, 1003", n)
    assert got["chosen_rank_a"] == rankdata(-a, method="min")[4]
    assert got["chosen_rank_b"] == rankdata(-b, method="min")[4]
    assert (got["best_a"], got["best_b"]) == (int(np.argmax(a)), int(np.argmax(b)))


def test_split_seed_reliability_splits_by_seed_not_by_env():
    """Per trial t: seed 1000 scores 3t on env A and -2t on B (mean t/2, rising), seed 1001
    -t on A and 1.5t on B (mean t/4, rising): rho +1 between the seeds. Split by env
    instead (A: 3t, -t, mean t; B: -2t, 1.5t, mean -t/4) the ranking reverses: rho -1;
    a mix-up of the seeds' runs shows as well."""
    from analysis.tuning import trial_scores
    from analysis.tuning_reliability import per_seed_scores, seed_reliability

    per_t = {(1000, "A"): 3.0, (1000, "B"): -2.0, (1001, "A"): -1.0, (1001, "B"): 1.5}
    vals = {(t, s, e): k * t for t in range(6) for (s, e), k in per_t.items()}
    tt = _seed_trials(vals)
    ts = trial_scores(tt, "final")
    rel = seed_reliability(per_seed_scores(tt, ts, "final"), {"v": (5, "")}).iloc[0]
    assert rel["rho"] == pytest.approx(1.0) and rel["chosen_rank_a"] == rel["chosen_rank_b"] == 1
    assert (rel["best_a"], rel["best_b"]) == (5, 5)
    # a variant with one tuning seed has no split: left out
    one = seed_reliability(per_seed_scores(tt[tt["seed"] == 1000], ts, "final"))
    assert one.empty


def test_per_seed_scores_leave_out_a_trial_with_a_run_not_done():
    """A trial with one run still `running` has no score: absent from the per-seed scores,
    and the split-seed rho the same as without it (its partial value would move it)."""
    from analysis.tuning import trial_scores
    from analysis.tuning_reliability import per_seed_scores, seed_reliability

    rng = np.random.default_rng(11)
    vals = {(t, s, e): float(rng.normal()) for t in range(6) for s in (1000, 1001) for e in "AB"}
    tt = _seed_trials(vals)
    base = seed_reliability(per_seed_scores(tt, trial_scores(tt, "final"), "final")).iloc[0]
    extra = _seed_trials({(6, s, e): (9.0 if s == 1000 else -9.0) for s in (1000, 1001) for e in "AB"})
    extra.loc[0, "state"] = "running"
    more = pd.concat([tt, extra], ignore_index=True)
    ts = trial_scores(more, "final")
    assert np.isnan(ts.loc[ts["trial"] == 6, "score"].iloc[0])
    per = per_seed_scores(more, ts, "final")
    assert 6 not in set(per["trial"]) and sorted(set(per["trial"])) == list(range(6))
    got = seed_reliability(per).iloc[0]
    assert got["trials"] == 6 and got["rho"] == pytest.approx(base["rho"])


def test_split_seed_ranks_share_the_better_rank_on_ties_and_a_constant_side_has_no_rho():
    from scipy.stats import spearmanr

    from analysis.tuning_reliability import reliability_wide, seed_reliability, reliability_lines

    # seed 1000: trials 0, 1, 2 tie at the top (0.9); seed 1001: distinct scores
    a = {0: 0.9, 1: 0.9, 2: 0.9, 3: 0.5, 4: 0.1}
    b = {0: 0.2, 1: 0.4, 2: 0.8, 3: 0.6, 4: 0.3}
    per = pd.DataFrame([{"variant": "v", "trial": t, "seed": s, "score": x}
                        for s, d in ((1000, a), (1001, b)) for t, x in d.items()])
    got = seed_reliability(per, {"v": (2, "best score")}).iloc[0]
    # "min": the three tied trials all rank 1 (average would say 2, ordinal 3 for c02)
    assert got["chosen_rank_a"] == 1 and got["chosen_rank_b"] == 1
    assert got["best_a"] == 0  # the tie goes to the lower trial, as selection breaks it
    want = spearmanr(list(a.values()), list(b.values()))
    assert got["rho"] == pytest.approx(want.statistic) and got["p"] == pytest.approx(want.pvalue)
    # one side constant: no rho, no p, and the text says why
    flat = per.assign(score=np.where(per["seed"] == 1001, 0.5, per["score"]))
    rel = seed_reliability(flat, {"v": (3, "best score")})
    assert np.isnan(rel["rho"].iloc[0]) and np.isnan(rel["p"].iloc[0])
    assert rel["chosen_rank_b"].iloc[0] == 1
    text = reliability_lines(rel, "final")[0]
    assert "`v` ρ undefined (a side is constant)" in text
    assert "Not shown to replicate (ρ not positive at p < 0.05): `v`." in text
    assert reliability_wide(rel)["Spearman ρ"].tolist() == ["-"]


def test_only_a_positive_significant_rho_counts_as_replicating():
    from analysis.tuning_reliability import RELIABILITY_COLUMNS, reliability_lines

    rows = [("good", 0.93, 1e-6), ("negative", -0.9, 1e-4), ("weak", 0.18, 0.51),
            ("edge", 0.5, 0.05), ("none", np.nan, np.nan)]
    rel = pd.DataFrame([{c: None for c in RELIABILITY_COLUMNS} | {"variant": v, "rho": r, "p": p,
                                                                   "trials": 15}
                        for v, r, p in rows], columns=RELIABILITY_COLUMNS)
    text = reliability_lines(rel, "final")[0]
    assert text.endswith("Not shown to replicate (ρ not positive at p < 0.05): `negative`, "
                         "`weak`, `edge`, `none`.")
    assert "`good` ρ = +0.93 (p = 1e-06, 15 trials)" in text


# -- the figures -----------------------------------------------------------------------------------


def test_sensitivity_panels_put_a_choice_on_a_categorical_axis_and_the_legend_outside(tmp_path, captured_figures):
    from analysis.tuning_figures import sensitivity_figure

    kept = captured_figures
    passes = [{"epochs": 1, "minibatch_size": 0}, {"epochs": 4, "minibatch_size": 64}]
    dims = {"lr": {"log_uniform": [1e-4, 1e-2]}, "passes": {"choice": passes},
            "eps_eta": {"choice": [0.1, 1.0]}}
    cfgs = [{"lr": 1e-3, "epochs": 1, "minibatch_size": 0, "eps_eta": 0.5},  # c00: no option
            {"lr": 2e-4, "epochs": 4, "minibatch_size": 64, "eps_eta": 0.1},
            {"lr": 5e-3, "epochs": 1, "minibatch_size": 0, "eps_eta": 1.0},
            {"lr": 5e-3, "epochs": 4, "minibatch_size": 64, "eps_eta": 0.1}]
    tt = pd.DataFrame([{"variant": "vmpo", "algo": "vmpo", "trial": i, "config": c}
                       for i, c in enumerate(cfgs)])
    ts = pd.DataFrame([{"variant": "vmpo", "trial": i, "score": sc, "config": c}
                       for i, (c, sc) in enumerate(zip(cfgs, (0.3, 0.5, 0.4, 0.5)))])
    files = sensitivity_figure(ts, tt, "vmpo", "final", tmp_path, {"lr": ("log_uniform", 1e-4, 1e-2)},
                               best=1, dims=dims, aliased=[["passes", "eps_eta"]],
                               halves=[("lr", "eps_eta")])
    assert "tuning_sensitivity_vmpo.png" in files
    fig = kept[-1]
    axes = {ax.get_xlabel(): ax for ax in fig.axes if ax.get_visible()}
    assert sorted(axes) == ["eps_eta", "lr", "passes (epochs, minibatch_size)"]  # one panel each
    ax = axes["passes (epochs, minibatch_size)"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["1, whole batch", "4, 64"]
    ticks = [t.get_text() for t in axes["eps_eta"].get_xticklabels()]
    assert ticks == ["0.1", "1", "other"]  # the defaults' 0.5 is no option
    # trials 1 and 3 share an option and a score: spread sideways, around the option's slot
    pts = np.concatenate([c.get_offsets() for c in ax.collections if len(c.get_offsets()) == 4])
    x = dict(zip(range(4), pts[:, 0]))
    assert x[1] != x[3] and abs((x[1] + x[3]) / 2 - 1.0) < 1e-9 and abs(x[1] - x[3]) <= 0.4 + 1e-9
    assert axes["passes (epochs, minibatch_size)"].get_title() == "aliased with eps_eta"
    assert axes["lr"].get_title() == "confounded at halves with eps_eta"
    assert axes["eps_eta"].get_title() == "aliased with passes; confounded at halves with lr"
    # the legend: one, on the figure (below the panels), none inside an axes
    assert len(fig.legends) == 1 and all(a.get_legend() is None for a in fig.axes)
    legend_box = fig.legends[0].get_window_extent()
    for a in fig.axes:
        if a.get_visible():
            assert not legend_box.overlaps(a.get_window_extent())


def test_the_scores_figure_draws_each_trials_seed_spread_and_keeps_c00_visible(tmp_path, captured_figures):
    from matplotlib.collections import LineCollection

    from analysis.tuning import trial_scores
    from analysis.tuning_figures import distribution_figure
    from analysis.tuning_reliability import per_seed_scores

    kept = captured_figures
    vals = {(t, s, e): 0.1 * t + (0.05 if s == 1001 else 0.0) * (t + 1) + (0.01 if e == "B" else 0)
            for t in range(4) for s in (1000, 1001) for e in ("A", "B")}
    tt = _seed_trials(vals)
    ts = trial_scores(tt, "final")
    per = per_seed_scores(tt, ts, "final")
    distribution_figure(ts, "final", tmp_path, per, {"v": (2, "best score")})
    ax = kept[-1].axes[0]
    bars = [c for c in ax.collections if isinstance(c, LineCollection) and len(c.get_segments()) == 4]
    assert len(bars) == 1
    for t, seg in enumerate(bars[0].get_segments()):  # trial order, left to right
        lo = np.mean([vals[(t, 1000, e)] for e in "AB"])
        hi = np.mean([vals[(t, 1001, e)] for e in "AB"])
        assert seg[:, 1] == pytest.approx([lo, hi])
        assert seg[0, 0] == seg[1, 0]  # vertical
    # the defaults' star is open, over c00's own point, which shows through it; the chosen
    # trial (c02) ringed
    c00 = [bars[0].get_segments()[0][0, 0], ts["score"].iloc[0]]
    points = [c for c in ax.collections if len(c.get_offsets()) == 4
              and not isinstance(c, LineCollection)]
    assert len(points) == 1 and np.allclose(points[0].get_offsets()[0], c00)
    star, ring = sorted((c for c in ax.collections if c.get_zorder() >= 4), key=lambda c: c.get_zorder())
    assert np.allclose(star.get_offsets()[0], c00) and star.get_zorder() > points[0].get_zorder()
    assert star.get_facecolors().size == 0 or star.get_facecolors()[0][3] == 0
    assert np.allclose(ring.get_offsets()[0], [bars[0].get_segments()[2][0, 0], ts["score"].iloc[2]])
