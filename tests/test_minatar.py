"""MinAtar as the named suite `minatar` (issue 26 section 2): its ids, observations
[C, 10, 10] float 0/1 channels first, the small CNN, the time cap, and PPO training a few
thousand steps on Breakout."""

from __future__ import annotations

import json

import numpy as np
import pytest

import suites

minatar = pytest.importorskip("minatar", reason="needs the minatar extra")


def test_suite_lists_the_five_games_with_minimal_action_sets():
    assert suites.resolve("minatar") == [f"MinAtar/{g}-v1" for g in (
        "Asterix", "Breakout", "Freeway", "Seaquest", "SpaceInvaders")]
    channels = {"Asterix": 4, "Breakout": 4, "Freeway": 7, "Seaquest": 10, "SpaceInvaders": 6}
    actions = {"Asterix": 5, "Breakout": 3, "Freeway": 3, "Seaquest": 6, "SpaceInvaders": 4}
    for env_id in suites.resolve("minatar"):
        game = env_id.split("/")[1][:-3]
        envs = suites.make(env_id, 2, 0)
        obs, _ = envs.reset(seed=0)
        assert obs.shape == (2, channels[game], 10, 10) and obs.dtype == np.float32
        assert set(np.unique(obs)) <= {0.0, 1.0}
        assert envs.single_action_space.n == actions[game]
        envs.close()


def test_observation_is_the_game_state_transposed():
    from minatar import Environment

    envs = suites.make("MinAtar/Breakout-v1", 1, 0)
    obs, _ = envs.reset(seed=3)
    raw = Environment("breakout", sticky_action_prob=0.1)
    raw.seed(3)
    raw.reset()
    np.testing.assert_array_equal(obs[0], np.moveaxis(raw.state(), -1, 0).astype(np.float32))


def test_time_cap_is_recorded_in_the_run_config():
    from algos import train

    r = train.resolve(train.RunSpec("ppo", "MinAtar/Breakout-v1", 0, 1000))
    assert r["suite"] == "minatar" and r["env_kwargs"] == {"max_episode_steps": 108_000}
    assert r["config"]["num_envs"] == 8 and r["config"]["norm_obs"] is False
    env = suites.envs.make_env("MinAtar/Breakout-v1")
    assert env.spec.max_episode_steps == 108_000


def test_ppo_trains_a_few_thousand_steps_on_breakout(tmp_path):
    from algos import train
    from algos.networks import SmallCNN

    out = tmp_path / "run"
    spec = train.RunSpec("ppo", "MinAtar/Breakout-v1", 0, 4096,
                         {"num_envs": 4, "rollout_length": 128, "eval_every": 2048,
                          "eval_episodes": 2})
    assert train.run(spec, out)["state"] == "done"
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["suite"] == "minatar" and "reference" not in cfg
    rows = (out / "metrics.csv").read_text().splitlines()
    evals = [float(r.split(",")[2]) for r in rows if ",eval/return," in r]
    assert len(evals) == 2 and all(np.isfinite(evals))
    # the network is MinAtar's: one 16-channel 3x3 conv and 128 units
    from algos.enjoy import load_policy

    policy = load_policy(out)
    assert any(isinstance(m, SmallCNN) for m in policy.learner.net.modules())
    env = policy.make_env()  # enjoy's env: the same observation as training's
    obs, _ = env.reset(seed=0)
    assert obs.shape == (4, 10, 10) and obs.dtype == np.float32
    assert int(policy.act(obs, deterministic=True)) in range(3)


def test_random_returns_are_measured_and_reproducible(capsys):
    """suites/data/random_returns.csv's MinAtar rows are what `measure_random` prints
    (Breakout rerun here: 100 episodes of ~10 steps), and MinAtar still has no reference
    pair: no published table was verified (suites/data/README.md)."""
    import csv

    from suites.measure_random import main
    from suites.reference import DATA, NoReferenceError

    with open(DATA / "random_returns.csv", newline="") as f:
        stored = {r["env_id"]: r for r in csv.DictReader(f)}
    assert {e: float(stored[e]["random"]) for e in suites.resolve("minatar")} == {
        "MinAtar/Asterix-v1": 0.49, "MinAtar/Breakout-v1": 0.43, "MinAtar/Freeway-v1": 0.31,
        "MinAtar/Seaquest-v1": 0.08, "MinAtar/SpaceInvaders-v1": 4.06}
    assert main(["MinAtar/Breakout-v1", "--episodes", "100", "--seed", "0"]) == 0
    row = next(csv.DictReader(capsys.readouterr().out.splitlines()))
    want = stored["MinAtar/Breakout-v1"]
    for key in ("random", "std", "sem", "episodes", "seeds", "mean_length", "versions"):
        assert row[key] == want[key], key
    assert "minatar==1.0.15" in row["versions"]
    for env_id in suites.resolve("minatar"):
        with pytest.raises(NoReferenceError):
            suites.reference(env_id)
