"""Replaying a trained policy (algos.enjoy): the repeated last evaluation equals the logged
one for every algorithm, load_policy for notebooks, and --video with and without its
dependencies."""

from __future__ import annotations

import re
import sys

import numpy as np
import pytest

from algos import enjoy
from algos.results import RunDir
from algos.train import RunSpec, run
from conftest import eval_returns

# small budgets: what matters is that the replay repeats the logged evaluation
BUDGETS = {"ppo": 2048, "trpo": 2048, "vmpo": 2048, "mpo": 256}


def trained(tmp_path, algo: str, env: str = "CartPole-v1", seed: int = 0, **overrides):
    out = tmp_path / f"{algo}-{env}"
    over = {"eval_every": BUDGETS[algo] // 2, "eval_episodes": 5, **overrides}
    status = run(RunSpec(algo, env, seed, BUDGETS[algo], over), out)
    assert status["state"] == "done"
    return out


def printed_returns(text: str) -> list[float]:
    return [float(x) for x in re.findall(r"^episode \d+: return (\S+)$", text, re.M)]


@pytest.mark.parametrize("algo", list(BUDGETS))
def test_replaying_the_last_evaluation_gives_the_logged_return(tmp_path, capsys, algo):
    out = trained(tmp_path, algo, seed=5)
    capsys.readouterr()
    assert enjoy.main([str(out)]) == 0
    text = capsys.readouterr().out
    returns = printed_returns(text)
    step, logged = eval_returns(out)[-1]
    assert len(returns) == 5 and step >= BUDGETS[algo]  # the last rollout's boundary
    # printed with 6 significant digits; CartPole returns are whole numbers
    assert np.mean(returns) == logged
    assert f"logged eval/return {logged:.6g}: the same" in text


def test_other_seeds_and_sampled_actions_give_other_episodes(tmp_path, capsys):
    out = trained(tmp_path, "ppo")
    capsys.readouterr()
    assert enjoy.main([str(out), "--episodes", "3", "--seed", "11"]) == 0
    text = capsys.readouterr().out
    assert len(printed_returns(text)) == 3 and "logged" not in text
    assert "envs reset with seed 11" in text
    assert enjoy.main([str(out), "--stochastic"]) == 0
    assert "stochastic policy" in capsys.readouterr().out


def test_load_policy_acts_on_one_observation_or_a_batch(tmp_path):
    out = trained(tmp_path, "ppo", env="Pendulum-v1")
    policy = enjoy.load_policy(out)
    assert (policy.env_id, policy.algo) == ("Pendulum-v1", "ppo")
    assert policy.step == RunDir(out).read_status()["step"] >= 2048
    env = policy.make_env()
    obs, _ = env.reset(seed=0)
    action = policy.act(obs)
    assert action.shape == (1,) and action.dtype == np.float32
    batch = np.stack([obs, obs * 0.5, obs * 0.0]).astype(np.float32)
    actions = policy.act(batch)
    assert actions.shape == (3, 1)
    np.testing.assert_allclose(actions[0], action, rtol=1e-5)  # a batch's matmul rounds apart
    # the same as the learner's own deterministic act, and a differing obs differs
    np.testing.assert_array_equal(actions, policy.learner.act(batch, deterministic=True)[0])
    assert actions[1] != actions[0]
    obs, reward, *_ = env.step(np.clip(action, -2, 2))
    with pytest.raises(ValueError, match="expected"):
        policy.act(np.zeros(5))


def test_discrete_actions_are_integers(tmp_path):
    policy = enjoy.load_policy(trained(tmp_path, "ppo"))
    a = policy.act(np.zeros(4, dtype=np.float32))
    assert a.shape == () and np.issubdtype(a.dtype, np.integer) and 0 <= int(a) < 2


def test_not_a_run_directory_is_a_usage_error(tmp_path, capsys):
    assert enjoy.main([str(tmp_path)]) == 2
    assert "not a run directory" in capsys.readouterr().err
    assert enjoy.main([str(tmp_path / "nope")]) == 2
    assert "is not a folder" in capsys.readouterr().err


def test_video_without_moviepy_exits_2_naming_the_extra(tmp_path, capsys, monkeypatch, snapshot):
    out = trained(tmp_path, "ppo")
    monkeypatch.setitem(sys.modules, "moviepy", None)  # import moviepy -> ImportError
    before = snapshot(tmp_path)
    assert enjoy.main([str(out), "--video", str(tmp_path / "v.mp4")]) == 2
    assert "pip install -e '.[video]'" in capsys.readouterr().err
    assert snapshot(tmp_path) == before


def test_video_records_each_step_of_the_episode(tmp_path, capsys):
    pytest.importorskip("moviepy", reason="the video extra is not installed")
    pytest.importorskip("pygame", reason="the video extra is not installed")
    from moviepy import VideoFileClip

    out = trained(tmp_path, "ppo")
    capsys.readouterr()
    video = tmp_path / "videos" / "cartpole.mp4"
    video.parent.mkdir()
    assert enjoy.main([str(out), "--video", str(video)]) == 0
    (ret,) = printed_returns(capsys.readouterr().out)
    clip = VideoFileClip(str(video))
    # CartPole: reward 1 a step, so the episode has `ret` steps, and RecordVideo the reset
    # frame and one frame a step at the env's 50 fps; moviepy writes int(sum of the frame
    # durations * fps) of them, which float rounding makes one fewer for some lengths
    expected = int(sum([1.0 / 50] * (int(ret) + 1)) * 50)
    assert clip.fps == 50 and sum(1 for _ in clip.iter_frames()) == expected >= int(ret)
    clip.close()
    assert sorted(p.name for p in video.parent.iterdir()) == ["cartpole.mp4"]  # no temp left
    assert enjoy.main([str(out), "--video", str(video), "--episodes", "2"]) == 0
    assert sorted(p.name for p in video.parent.iterdir()) == [
        "cartpole-episode-0.mp4", "cartpole-episode-1.mp4", "cartpole.mp4"]


def test_an_env_that_cannot_render_is_a_usage_error_leaving_nothing(tmp_path, capsys, monkeypatch,
                                                                     snapshot):
    pytest.importorskip("moviepy", reason="the video extra is not installed")
    out = trained(tmp_path, "ppo")
    real = enjoy.make_single_env

    def no_gl(env_id, render_mode=None):
        env = real(env_id)  # render_mode None: render() gives nothing

        def render():
            raise RuntimeError("no OpenGL context")

        env.render = render
        return env

    monkeypatch.setattr(enjoy, "make_single_env", no_gl)
    before = snapshot(tmp_path)
    assert enjoy.main([str(out), "--video", str(tmp_path / "v.mp4")]) == 2
    assert "CartPole-v1 cannot render (RuntimeError: no OpenGL context)" in capsys.readouterr().err
    after = snapshot(tmp_path)
    # the temp folder is gone too (the folder's own mtime aside: it was made and removed there)
    assert {k: v for k, v in after.items() if k != "."} == {k: v for k, v in before.items() if k != "."}
