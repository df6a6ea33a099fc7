"""Scores: normalisation through suites, last evaluation, rliable matrices, curves,
completeness, and ablations recognised from the run config."""

import numpy as np
import pytest

import suites
from analysis import completeness
from analysis.load import UsageError, load
from analysis.scores import (
    ablations,
    curve_grid,
    curve_tensor,
    final_scores,
    full_vmpo,
    full_vmpos,
    groups,
    normalise,
)
from analysis.synthetic import run_config, write_run, write_sweep

PONG, BREAKOUT = "ALE/Pong-v5", "ALE/Breakout-v5"
ATARI = {PONG: "atari", BREAKOUT: "atari"}
# DQN Zoo's random / human scores (suites/data/atari57_random_human.csv)
TABLE = {PONG: (-20.7, 14.6), BREAKOUT: (1.7, 30.5)}


def raw(env, norm):
    r, h = TABLE[env]
    return r + norm * (h - r)


def test_atari_normalisation_is_human_normalised():
    np.testing.assert_allclose(normalise(PONG, [-20.7, 14.6, -3.05]), [0.0, 1.0, 0.5],
                               atol=1e-12)
    assert normalise(BREAKOUT, 30.5) == pytest.approx(1.0)
    x = np.array([[1.0, 2.0], [3.0, 400.0]])
    np.testing.assert_array_equal(
        normalise(BREAKOUT, x), [[suites.normalise(BREAKOUT, v) for v in row] for row in x])


def test_other_suites_use_suites_references():
    for env in ("CartPole-v1", "HalfCheetah-v5"):
        ref = suites.reference(env)
        np.testing.assert_allclose(normalise(env, [ref.random, ref.reference]), [0.0, 1.0])


def test_unknown_env_is_a_usage_error():
    with pytest.raises(UsageError, match="NoSuchEnv-v0"):
        normalise("NoSuchEnv-v0", [1.0])


def _sweep(tmp_path, **kw):
    args = {"variants": {"vmpo": "vmpo", "ppo": "ppo"}, "envs": ATARI, "seeds": range(3),
            "final": lambda v, e, s: raw(e, 0.1 * s + (0.5 if v == "vmpo" else 0.0)),
            "n_evals": 4, "steps": 400, "frameskip": {PONG: 4, BREAKOUT: 4}}
    args.update(kw)
    write_sweep(tmp_path, "sw", **args)
    runs = load([tmp_path])
    status = completeness.check(runs)
    return runs, status


def test_final_scores_and_matrix(tmp_path):
    runs, status = _sweep(tmp_path)
    final = final_scores(runs, status)
    assert len(final) == 12
    g = groups(final)
    vm = g[("atari", "vmpo")]
    assert vm.envs == [BREAKOUT, PONG]  # sorted
    np.testing.assert_allclose(vm.scores, [[0.5, 0.5], [0.6, 0.6], [0.7, 0.7]], atol=1e-12)
    np.testing.assert_allclose(g[("atari", "ppo")].scores[:, 0], [0.0, 0.1, 0.2], atol=1e-12)
    assert vm.n_runs == 6 and vm.dropped == 0


def test_unequal_seeds_keep_the_lowest_n(tmp_path):
    runs, status = _sweep(tmp_path, states={("vmpo", PONG, 1): "failed"})
    g = groups(final_scores(runs, status))[("atari", "vmpo")]
    # Pong keeps seeds 0 and 2; Breakout keeps its 2 lowest seeds (0, 1) and drops 1 run.
    np.testing.assert_allclose(g.scores, [[0.5, 0.5], [0.6, 0.7]], atol=1e-12)
    assert g.dropped == 1


def test_curve_forward_fills_the_latest_evaluation(tmp_path):
    runs, status = _sweep(tmp_path)
    g = groups(final_scores(runs, status))[("atari", "vmpo")]
    grid = curve_grid(runs, g.rows.ravel(), 7)
    np.testing.assert_array_equal(grid, [100, 200, 300, 400])  # the evaluation steps
    np.testing.assert_array_equal(curve_grid(runs, g.rows.ravel(), 3), [100, 300, 400])
    ten = curve_tensor(runs, g, np.array([100, 150, 200, 250, 300, 350, 400]))
    assert ten.shape == (3, 2, 7)
    # seed 0 rises linearly from raw 0 to normalised 0.5 over evals at 100..400
    r0 = normalise(BREAKOUT, 0.0)
    want_raw = [raw(BREAKOUT, 0.5) * f for f in (0.25, 0.25, 0.5, 0.5, 0.75, 0.75, 1.0)]
    np.testing.assert_allclose(ten[0, 0], normalise(BREAKOUT, want_raw), atol=1e-12)
    assert ten[0, 0, 0] > r0


def test_curve_takes_each_evaluation_of_a_jittered_schedule(tmp_path):
    # TRPO's 2048-step batches: the evaluation owed at k x 50k happens at the next batch
    # boundary. An evenly spaced grid fell just before some of them and the curve repeated
    # the previous value there (the flat pairs in the first mujoco-core figure).
    steps = [-(-50_000 * k // 2048) * 2048 for k in range(1, 21)]
    for seed in range(2):
        cfg = run_config(sweep="sw", algo="trpo", variant="trpo", suite="mujoco",
                         env="Hopper-v5", seed=seed, steps=steps[-1])
        write_run(tmp_path / "sw", cfg, [(s, 100.0 * k) for k, s in enumerate(steps, 1)])
    runs = load([tmp_path])
    g = groups(final_scores(runs, completeness.check(runs)))[("mujoco", "trpo")]
    grid = curve_grid(runs, g.rows.ravel(), 20)
    np.testing.assert_array_equal(grid, steps)
    curve = curve_tensor(runs, g, grid)[0, 0]
    assert (np.diff(curve) > 0).all()  # a strictly rising run draws a strictly rising curve


def test_ablations_come_from_the_config_algo(tmp_path):
    runs, status = _sweep(tmp_path, variants={
        "vmpo": "vmpo", "vmpo-no-topk": "vmpo", "big-batch": "vmpo", "ppo": "ppo",
        "ppo-no-clip": "ppo"})
    g = groups(final_scores(runs, status))
    assert full_vmpo(g, "vmpo") == "vmpo"
    assert ablations(g, full_vmpos(g, "vmpo")) == {"big-batch": "vmpo", "vmpo-no-topk": "vmpo"}
    assert full_vmpo(g, "ppo") == "vmpo"        # a non-V-MPO baseline: full V-MPO is "vmpo"
    assert full_vmpo(g, "big-batch") == "big-batch"
    assert ablations(g, full_vmpos(g, "big-batch")) == {"vmpo": "big-batch",
                                                        "vmpo-no-topk": "big-batch"}


def test_one_variant_name_one_algo(tmp_path):
    write_sweep(tmp_path, "a", variants={"x": "vmpo"}, envs=ATARI, seeds=[0],
                final=lambda *a: 1.0)
    write_sweep(tmp_path, "b", variants={"x": "ppo"}, envs=ATARI, seeds=[1],
                final=lambda *a: 1.0)
    runs = load([tmp_path])
    with pytest.raises(UsageError, match="several algorithms"):
        groups(final_scores(runs, completeness.check(runs)))


# ---------------------------------------------------------------- completeness
def test_statuses_with_manifest(tmp_path):
    _, status = _sweep(tmp_path, manifest="csv", states={
        ("vmpo", PONG, 0): "missing", ("vmpo", PONG, 1): "failed",
        ("ppo", PONG, 2): "running", ("ppo", BREAKOUT, 0): "nostatus",
        ("ppo", BREAKOUT, 1): "partial"})
    by = {(r.variant, r.env, r.seed): (r.status, r.detail) for r in status.itertuples()}
    assert len(status) == 12
    assert by[("vmpo", PONG, 0)] == ("missing", "listed in the manifest, no run directory")
    assert by[("vmpo", PONG, 1)] == ("failed", "diverged: loss/total is nan")
    assert by[("ppo", PONG, 2)] == ("unfinished", "running, step 200 of 400")
    assert by[("ppo", BREAKOUT, 0)] == ("unfinished", "no status.json")
    assert by[("ppo", BREAKOUT, 1)] == ("ok", "")  # its half-written last row is dropped
    s = completeness.summary(status).set_index(["variant", "env"])
    assert s.loc[("vmpo", PONG)].to_dict() == {
        "suite": "atari", "expected": 3, "ok": 1, "missing": 1, "failed": 1,
        "unfinished": 0, "no_score": 0}
    with pytest.raises(completeness.IncompleteError) as e:
        completeness.require_complete(status)
    msg = str(e.value)
    assert "1 missing, 1 failed, 2 unfinished of 12 expected runs (8 ok)" in msg
    assert "vmpo ALE/Pong-v5 seed 0" in msg and "--allow-incomplete" in msg


def test_missing_from_the_grid_without_manifest(tmp_path):
    _, status = _sweep(tmp_path, states={("ppo", BREAKOUT, 2): "missing"})
    bad = status[status["status"] != "ok"]
    assert [(r.variant, r.env, r.seed, r.status) for r in bad.itertuples()] == [
        ("ppo", BREAKOUT, 2, "missing")]


def test_done_without_eval_is_no_score(tmp_path):
    _, status = _sweep(tmp_path, n_evals=0, variants={"vmpo": "vmpo"}, seeds=[0])
    assert set(status["status"]) == {"no_score"}
