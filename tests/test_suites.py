"""suites: names, resolution, errors, reference scores, and the vector envs `make` builds."""

from __future__ import annotations

import csv
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import suites
from suites.reference import DATA, NoReferenceError
from suites.registry import ALE_GAMES, ATARI57_GAMES, ale_game, ale_id

ROOT = Path(__file__).resolve().parents[1]

CLASSIC = ["CartPole-v1", "Acrobot-v1", "Pendulum-v1", "MountainCarContinuous-v0"]
MUJOCO = ["HalfCheetah-v5", "Hopper-v5", "Walker2d-v5", "Ant-v5", "Humanoid-v5", "Swimmer-v5",
          "InvertedPendulum-v5", "InvertedDoublePendulum-v5", "Reacher-v5"]
ATARI5 = ["ALE/BattleZone-v5", "ALE/DoubleDunk-v5", "ALE/NameThisGame-v5", "ALE/Phoenix-v5",
          "ALE/Qbert-v5"]


def _csv(name: str) -> list[dict[str, str]]:
    with open(DATA / name, newline="") as f:
        return list(csv.DictReader(f))


# ---------------------------------------------------------------- names and resolution

def test_suites_and_resolve():
    assert set(suites.SUITES) == {"classic", "mujoco", "atari5", "atari57", "minatar"}
    assert suites.resolve("classic") == CLASSIC
    assert suites.resolve("mujoco") == MUJOCO
    assert suites.resolve("atari5") == ATARI5
    atari57 = suites.resolve("atari57")
    assert len(atari57) == len(set(atari57)) == 57
    assert {"ALE/Pong-v5", "ALE/MontezumaRevenge-v5", "ALE/UpNDown-v5", "ALE/Surround-v5"} <= set(atari57)
    assert set(ATARI5) <= set(atari57)
    assert suites.resolve("atari") == atari57
    assert suites.resolve("HalfCheetah-v5") == ["HalfCheetah-v5"]
    assert suites.resolve("ALE/Adventure-v5") == ["ALE/Adventure-v5"]  # any ALE v5 game
    # CartPole-v0 is Gymnasium's: any registered id is accepted (tests/test_any_env.py)
    for bad in ("HalfCheeta-v5", "Pong", "ALE/Pong-v4", ""):
        with pytest.raises(suites.UnknownEnvError):
            suites.resolve(bad)


def test_suite_of_and_frameskip():
    for e in CLASSIC:
        assert suites.suite_of(e) == "classic" and suites.frameskip(e) == 1
    for e in MUJOCO:
        assert suites.suite_of(e) == "mujoco" and suites.frameskip(e) == 1
    for e in suites.resolve("atari57") + ["ALE/Tetris-v5"]:
        assert suites.suite_of(e) == "atari" and suites.frameskip(e) == 4
    for bad in ("classic", "atari", "LunarLander-v3", "PongNoFrameskip-v4"):
        with pytest.raises(suites.UnknownEnvError):
            suites.suite_of(bad)
    assert ale_game("ALE/BattleZone-v5") == "battle_zone"
    assert ale_id("battle_zone") == "ALE/BattleZone-v5"


def test_unknown_env_error_text():
    with pytest.raises(suites.UnknownEnvError) as info:
        suites.suite_of("HalfCheeta-v5")
    msg = str(info.value)
    assert isinstance(info.value, ValueError)
    assert msg.startswith("unknown env or suite 'HalfCheeta-v5'; did you mean HalfCheetah-v5?")
    assert info.value.suggestions == ["HalfCheetah-v5"]
    for part in ("Suites: classic (CartPole-v1, Acrobot-v1", "mujoco (HalfCheetah-v5", "atari5",
                 "atari57", "ALE/<Game>-v5"):
        assert part in msg
    # Bare game names, other versions and case slips find their env; nonsense finds nothing.
    assert suites.UnknownEnvError("Pong").suggestions == ["ALE/Pong-v5"]
    assert suites.UnknownEnvError("BreakoutNoFrameskip-v4").suggestions == ["ALE/Breakout-v5"]
    assert suites.UnknownEnvError("cartpole").suggestions == ["CartPole-v1"]
    assert suites.UnknownEnvError("clasic").suggestions == ["classic"]
    err = suites.UnknownEnvError("xyzzy")
    assert err.suggestions == [] and "did you mean" not in str(err)


# ---------------------------------------------------------------- reference scores

def test_atari_table_matches_game_list():
    rows = _csv("atari57_random_human.csv")
    assert [r["game"] for r in rows] == sorted(ATARI57_GAMES)
    assert set(ATARI57_GAMES) <= set(ALE_GAMES)


def test_normalise_by_hand():
    # Atari: DQN Zoo's pong (random -20.7, human 14.6).
    assert suites.normalise("ALE/Pong-v5", -20.7) == pytest.approx(0.0)
    assert suites.normalise("ALE/Pong-v5", 14.6) == pytest.approx(1.0)
    assert suites.normalise("ALE/Pong-v5", 21.0) == pytest.approx((21.0 + 20.7) / 35.3)
    ref = suites.reference("ALE/Pong-v5")
    assert (ref.random, ref.reference) == (-20.7, 14.6) and "DQN Zoo" in ref.source
    assert (suites.reference("ALE/BattleZone-v5").random,
            suites.reference("ALE/BattleZone-v5").reference) == (2360.0, 37187.5)
    # Classic: CartPole, measured random 24.96, reference = reward_threshold 475.
    assert suites.normalise("CartPole-v1", 200.0) == pytest.approx((200.0 - 24.96) / (475.0 - 24.96))
    assert suites.normalise("Pendulum-v1", -150.0) == pytest.approx((-150.0 + 1197.1836) / 1197.1836)
    # MuJoCo: HalfCheetah, measured random -267.7092, D4RL expert 12135.0.
    assert suites.normalise("HalfCheetah-v5", 3000.0) == pytest.approx(
        (3000.0 + 267.7092) / (12135.0 + 267.7092))
    # Arrays keep their shape; scalars come back as float.
    out = suites.normalise("ALE/Pong-v5", np.array([[-20.7, 14.6], [-3.05, 49.9]]))
    np.testing.assert_allclose(out, [[0.0, 1.0], [0.5, 2.0]])
    assert isinstance(suites.normalise("Hopper-v5", 1), float)
    with pytest.raises(NoReferenceError):
        suites.reference("ALE/Adventure-v5")
    with pytest.raises(suites.UnknownEnvError):
        suites.normalise("HalfCheeta-v5", 1.0)


def test_every_suite_env_has_a_sourced_reference():
    randoms = {r["env_id"]: r for r in _csv("random_returns.csv")}
    refs = {r["env_id"]: r for r in _csv("reference_returns.csv")}
    assert set(refs) == set(CLASSIC + MUJOCO) == set(randoms) - set(suites.resolve("minatar"))
    for env_id in CLASSIC + MUJOCO:
        rnd, ref = randoms[env_id], refs[env_id]
        assert rnd["source"] and ref["source"] and rnd["date"] and rnd["versions"]
        assert int(rnd["episodes"]) == 100 and rnd["seeds"] == "0-99"
        r = suites.reference(env_id)
        assert r.reference > r.random and r.source
    for env_id in suites.resolve("atari57"):
        r = suites.reference(env_id)
        assert r.reference != r.random
    assert suites.reference("CartPole-v1").reference == 475.0
    assert suites.reference("Acrobot-v1").reference == -100.0
    assert suites.reference("MountainCarContinuous-v0").reference == 90.0
    assert suites.reference("Pendulum-v1").reference == 0.0
    assert suites.reference("Hopper-v5").reference == 3234.3


def test_measure_random_is_reproducible(capsys):
    from suites.measure_random import main

    main(["CartPole-v1", "--episodes", "100", "--seed", "0"])
    row = next(csv.DictReader(capsys.readouterr().out.splitlines()))
    stored = {r["env_id"]: r for r in _csv("random_returns.csv")}["CartPole-v1"]
    assert row["random"] == stored["random"] and row["std"] == stored["std"]


# ---------------------------------------------------------------- make: classic

def _rollout(envs, seed: int, actions: np.ndarray):
    obs, _ = envs.reset(seed=seed)
    out = [obs.copy()]
    for a in actions:
        obs, *_ = envs.step(a)
        out.append(obs.copy())
    return np.stack(out)


def test_make_cartpole_shapes_and_reproducible():
    envs = suites.make("CartPole-v1", 3, seed=7)
    assert envs.num_envs == 3
    assert envs.single_observation_space.shape == (4,)
    assert envs.metadata["autoreset_mode"].name == "NEXT_STEP"
    obs, _ = envs.reset(seed=7)
    assert obs.shape == (3, 4) and obs.dtype == np.float32
    # Constant action 1 ends CartPole episodes within 30 steps: autoreset is covered.
    actions = np.ones((30, 3), dtype=np.int64)
    obs, r, term, trunc, _ = envs.step(actions[0])
    assert r.shape == term.shape == trunc.shape == (3,)
    a = _rollout(envs, 7, actions)
    b = _rollout(suites.make("CartPole-v1", 3, seed=7), 7, actions)
    c = _rollout(suites.make("CartPole-v1", 3, seed=8), 8, actions)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    # The seed also fixes action sampling.
    s1 = suites.make("CartPole-v1", 3, seed=7).action_space.sample()
    s2 = suites.make("CartPole-v1", 3, seed=7).action_space.sample()
    np.testing.assert_array_equal(s1, s2)


@pytest.mark.parametrize("env_id,steps", [("CartPole-v1", 300), ("Pendulum-v1", 450)])
def test_lean_sync_vector_env_steps_like_gymnasiums(env_id, steps):
    """Same observations, rewards, terminations and truncations as gym.make_vec's
    SyncVectorEnv through episode ends (CartPole: terminations; Pendulum: the 200-step
    time limit), including the NEXT_STEP reset step; only the infos differ (empty)."""
    import gymnasium as gym

    from suites.sync_vector import LeanSyncVectorEnv

    lean = suites.make(env_id, 3, seed=4)
    ref = gym.make_vec(env_id, 3, vectorization_mode="sync")
    assert isinstance(lean, LeanSyncVectorEnv) and type(ref) is gym.vector.SyncVectorEnv
    ref.action_space.seed(4)
    actions = [ref.action_space.sample() for _ in range(steps)]
    for envs in (lean, ref):
        envs.reset(seed=4)
    ends = {"term": 0, "trunc": 0}
    for a in actions:
        out_lean, out_ref = lean.step(a), ref.step(a)
        for x, y in zip(out_lean[:4], out_ref[:4]):
            np.testing.assert_array_equal(x, y)
            assert x.dtype == y.dtype
        assert out_lean[4] == {}
        ends["term"] += int(out_ref[2].sum())
        ends["trunc"] += int(out_ref[3].sum())
    assert ends["term" if env_id == "CartPole-v1" else "trunc"] >= 3
    # a partial reset (Gymnasium's reset_mask) keeps the other envs' current observations
    mask = np.array([True, False, False])
    for x, y in zip(lean.reset(seed=9, options={"reset_mask": mask})[0],
                    ref.reset(seed=9, options={"reset_mask": mask.copy()})[0]):
        np.testing.assert_array_equal(x, y)
    # the returned batch is a copy: the next step does not overwrite it
    obs, *_ = lean.step(actions[0])
    kept = obs.copy()
    lean.step(actions[1])
    np.testing.assert_array_equal(obs, kept)


def test_make_rejects_bad_arguments():
    with pytest.raises(ValueError, match="vectorization"):
        suites.make("CartPole-v1", 2, 0, vectorization="ale")
    with pytest.raises(ValueError, match="num_envs"):
        suites.make("CartPole-v1", 0, 0)
    with pytest.raises(suites.UnknownEnvError):
        suites.make("CartPol-v1", 2, 0)


def test_classic_needs_no_extras():
    """`import suites` and classic envs work with mujoco and ale_py unimportable."""
    code = textwrap.dedent("""
        import sys
        sys.modules["mujoco"] = None; sys.modules["ale_py"] = None
        import suites
        envs = suites.make("Pendulum-v1", 2, 0)
        envs.reset(seed=0); envs.step(envs.action_space.sample())
        suites.resolve("atari57"); suites.suite_of("ALE/Pong-v5"); suites.normalise("ALE/Pong-v5", 1.0)
        for env_id, extra in (("Hopper-v5", "mujoco"), ("ALE/Pong-v5", "atari")):
            try:
                suites.make(env_id, 1, 0)
            except ImportError as e:
                assert f"pip install -e '.[{extra}]'" in str(e), e
            else:
                raise AssertionError(env_id)
        print("ok")
    """)
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         check=False)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


# ---------------------------------------------------------------- make: MuJoCo

@pytest.mark.mujoco
@pytest.mark.parametrize("vectorization", ["sync", "async"])
def test_ant_observes_what_ant_v4_did_no_contact_forces(vectorization):
    """Ant-v5's default observation adds 84 contact forces (105 dims); the published Ant
    figures (v3, v4) had none, and with them PPO's Ant return at 1M steps fell from
    ~1,300 (at 500k, without) to ~300. suites.make builds Ant-v5 with v4's 27 dims."""
    pytest.importorskip("mujoco")
    import gymnasium as gym

    envs = suites.make("Ant-v5", 2, seed=0, vectorization=vectorization)
    obs, _ = envs.reset(seed=0)
    assert obs.shape == (2, 27)
    envs.close()
    raw = gym.make("Ant-v5")
    assert raw.observation_space.shape == (105,)  # what Gymnasium's default would have been
    raw.close()
    # the run's identity records it: a run of the 105-dim Ant is another run
    from algos.train import RunSpec, resolve

    ant = resolve(RunSpec("ppo", "Ant-v5", 0, 1000))
    assert ant["env_kwargs"] == {"include_cfrc_ext_in_observation": False}
    assert "env_kwargs" not in resolve(RunSpec("ppo", "Hopper-v5", 0, 1000))


@pytest.mark.mujoco
@pytest.mark.filterwarnings("ignore:MuJoCo. compiler attribute 'settotalmass'")
def test_make_halfcheetah(tmp_path, monkeypatch):
    pytest.importorskip("mujoco")
    monkeypatch.chdir(tmp_path)
    envs = suites.make("HalfCheetah-v5", 2, seed=0)
    obs, _ = envs.reset(seed=0)
    assert obs.shape == (2, 17) and envs.single_action_space.shape == (6,)
    obs2, r, *_ = envs.step(envs.action_space.sample())
    assert obs2.shape == (2, 17) and r.shape == (2,) and np.isfinite(r).all()
    assert not (tmp_path / "MUJOCO_LOG.TXT").exists()  # MuJoCo's warning log stays off
    envs.close()


# ---------------------------------------------------------------- make: Atari

@pytest.fixture
def ale_py():
    return pytest.importorskip("ale_py")


@pytest.mark.atari
def test_atari_game_list_matches_ale_registry(ale_py):
    import gymnasium as gym

    gym.register_envs(ale_py)
    registered = {k for k in gym.registry if k.startswith("ALE/") and k.endswith("-v5")}
    assert {ale_id(g) for g in ALE_GAMES} == registered
    for env_id in suites.resolve("atari57"):
        assert env_id in registered
        assert gym.registry[env_id].kwargs["game"] == ale_game(env_id)


@pytest.mark.atari
@pytest.mark.parametrize("vectorization", ["auto", "sync", "async"])
def test_make_atari_shapes(ale_py, vectorization):
    pytest.importorskip("cv2")
    envs = suites.make("ALE/Pong-v5", 2, seed=0, vectorization=vectorization)
    try:
        assert envs.single_observation_space.shape == (4, 84, 84)
        assert envs.metadata["autoreset_mode"].name == "NEXT_STEP"
        obs, _ = envs.reset(seed=0)
        assert obs.shape == (2, 4, 84, 84) and obs.dtype == np.uint8
        obs, r, *_ = envs.step(np.array([0, 1]))
        assert obs.shape == (2, 4, 84, 84) and obs.dtype == np.uint8 and r.shape == (2,)
        assert envs.single_action_space.n == 6  # Pong's minimal action set
    finally:
        envs.close()


@pytest.mark.atari
def test_atari_gym_path_settings_read_back(ale_py):
    pytest.importorskip("cv2")
    from gymnasium.wrappers import AtariPreprocessing

    envs = suites.make("ALE/Pong-v5", 1, seed=0, vectorization="sync")
    env = envs.envs[0]
    ale = env.unwrapped.ale
    assert ale.getFloat("repeat_action_probability") == pytest.approx(0.25)
    assert ale.getInt("max_num_frames_per_episode") == 108_000
    assert env.unwrapped._frameskip == 1
    pre = env.env
    assert isinstance(pre, AtariPreprocessing)
    assert (pre.frame_skip, pre.noop_max, pre.terminal_on_life_loss, pre.scale_obs) == (4, 30, False, False)
    envs.close()


@pytest.mark.atari
def test_atari_ale_path_settings(ale_py, monkeypatch):
    """AtariVectorEnv cannot report its settings: record what make() passes it."""
    import ale_py.vector_env as ve

    seen = {}
    init = ve.AtariVectorEnv.__init__

    def spy(self, game, num_envs, **kwargs):
        seen.update(kwargs, game=game)
        init(self, game, num_envs, **kwargs)

    monkeypatch.setattr(ve.AtariVectorEnv, "__init__", spy)
    envs = suites.make("ALE/BattleZone-v5", 1, seed=0)
    envs.close()
    assert isinstance(envs, ve.AtariVectorEnv)
    assert seen["game"] == "battle_zone"
    expected = {"frameskip": 4, "maxpool": True, "stack_num": 4, "img_height": 84,
                "img_width": 84, "grayscale": True, "noop_max": 30,
                "repeat_action_probability": 0.25, "max_num_frames_per_episode": 108_000,
                "full_action_space": False, "episodic_life": False, "reward_clipping": False,
                "use_fire_reset": False}
    assert {k: seen[k] for k in expected} == expected


@pytest.mark.atari
@pytest.mark.parametrize("vectorization", ["auto", "sync"])
def test_atari_frame_cap_applies(ale_py, vectorization):
    """A 400-frame cap truncates Pong (NOOP) after 100 agent steps of 4 frames.

    AtariVectorEnv counts frames after the no-op start; the Gymnasium env counts all of
    them (so it truncates a few agent steps earlier, at episode frame 400). With the
    real cap of 108,000 frames, `python -m suites.throughput --check-cap` measured
    27,000 (AtariVectorEnv) and 26,995 agent steps (Gymnasium, frame 108,000).
    """
    pytest.importorskip("cv2")
    from suites.atari import AtariProtocol, make_atari

    envs = make_atari("ALE/Pong-v5", 1, vectorization,
                      AtariProtocol(max_num_frames_per_episode=400))
    _, info = envs.reset(seed=0)
    noop_frames = int(info["episode_frame_number"][0])
    for t in range(1, 200):
        _, _, term, trunc, info = envs.step(np.zeros(1, dtype=np.int64))
        if term[0] or trunc[0]:
            break
    envs.close()
    assert trunc[0] and not term[0]
    if vectorization == "auto":
        assert t == 100 and info["episode_frame_number"][0] == 400 + noop_frames
    else:
        assert info["episode_frame_number"][0] == 400
        assert t == -(-(400 - noop_frames) // 4)


@pytest.mark.atari
@pytest.mark.parametrize("vectorization", ["auto", "sync"])
def test_atari_raw_rewards_and_reproducible(ale_py, vectorization):
    """Rewards are raw game scores (Asterix pays 50 a pick-up), and a seed fixes the run."""
    pytest.importorskip("cv2")
    rng = np.random.default_rng(0)
    actions = rng.integers(0, 9, size=(150, 2))

    def run(seed):
        envs = suites.make("ALE/Asterix-v5", 2, seed=seed, vectorization=vectorization)
        obs, _ = envs.reset(seed=seed)
        frames, rewards = [obs], []
        for a in actions:
            obs, r, *_ = envs.step(a)
            frames.append(obs)
            rewards.append(r)
        envs.close()
        return np.stack(frames), np.stack(rewards)

    f1, r1 = run(3)
    f2, r2 = run(3)
    np.testing.assert_array_equal(f1, f2)
    np.testing.assert_array_equal(r1, r2)
    assert r1.max() >= 50  # not clipped to 1


@pytest.mark.atari
def test_atari_ale_path_takes_large_seeds(ale_py):
    """ale-py takes only int32 seeds; ours folds them mod 2**31 (sub-env i: seed + i)."""
    envs = suites.make("ALE/Pong-v5", 2, seed=0)
    a, _ = envs.reset(seed=5)
    b, _ = envs.reset(seed=2**31 + 5)
    c, _ = envs.reset(seed=np.int64(6))
    envs.reset(seed=7919 * 10_000_000)  # the loop's resume seed after 10M steps
    envs.close()
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a[1], c[0])
