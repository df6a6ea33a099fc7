"""Equal-budget tuning (sweeps/tuning.py, sweeps/select.py, analysis/tuning.py): the
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


def test_configurations_are_pinned_deterministic_and_start_with_the_defaults():
    spec = parse_spec(textwrap.dedent(SPEC), source="/x/spec.yaml")
    t = spec.tuning
    vm = t.configurations("vmpo")
    assert vm[0] == {}                                  # trial c00: the defaults
    assert len(vm) == 3 and len(t.configurations("ppo")) == 3
    assert vm == t.configurations("vmpo")               # a pure function of the spec
    assert t.configurations("ppo") != [{}, *vm[1:]]
    # pinned: the first Sobol points of this spec (scipy's scrambled Sobol, seeded by
    # sampler_seed and the variant name); a change here changes every trial's run_id
    assert vm[1:] == [{"eps_eta": 0.48, "num_envs": 4, "rollout_length": 64},
                      {"eps_eta": 0.0379, "num_envs": 8, "rollout_length": 32}]
    # ... and recomputed from scipy's sequence by hand: 0.01 * 100**u, option floor(2u)
    from scipy.stats import qmc

    from algos.results import stable_hash

    u = qmc.Sobol(d=2, scramble=True, seed=int(stable_hash([0, "vmpo"]), 16) % 2**32).random_base2(1)
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
     "tuning.search.ppo.clip_value: trial c02 sets clip_value: expected a bool, got \"maybe\""),
    ("  ppo: {}", "  ppo: {lr: 1e-3}", "tuning.search.ppo.lr: lr is also set by runs.ppo.lr"),
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
    assert len(tuning_spec(spec).runs) == 3 * 16 * 2 * 2
    rc, out, err = cli(tmp_path, "--dry-run", "--executor", "local",
                       spec_text=(root / "sweeps" / "mujoco-tuned.yaml").read_text())
    assert rc == 0, err
    assert "= 192 runs" in out and "= 120 runs" in out


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
    from analysis.tuning import chosen, pick, range_position, search_space

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
    from analysis.tuning import best_of, pick, trial_scores
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
    from analysis.tuning import edge_of, sensitivity_figure

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



def test_the_tuning_figures_are_byte_identical_from_the_same_runs(tmp_path):
    """seaborn's stripplot jitters with numpy's global generator; the report seeds it for
    the call (and leaves the caller's generator where it was)."""
    from analysis import report

    rc, _, err = cli(tmp_path, "--phase", "tune", "--executor", "debug",
                     spec_text=SPEC.replace("configs: 3", "configs: 2"))
    assert rc == 0, err
    tune = tmp_path / "results" / "tun-tune"
    np.random.seed(123)
    before = np.random.random()
    np.random.seed(123)
    for name in ("a", "b"):
        report.build([str(tune)], tmp_path / name, reps=100, seed=0, baseline=None,
                     allow_incomplete=False)
    assert np.random.random() == before  # the global generator untouched by the report
    for f in ("tuning_scores.png", "tuning_sensitivity_vmpo.png"):
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes(), f
