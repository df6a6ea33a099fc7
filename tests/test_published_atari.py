"""The published Atari figures say how their protocol differs from ours (issue 26 section 6):
CleanRL's ppo_atari and openai/baselines' PPO ran <Game>NoFrameskip-v4 (no sticky actions,
episodic life, FIRE on reset) against our ALE/<Game>-v5 protocol (suites.atari.ATARI)."""

from __future__ import annotations

from algos.ppo import Config as PPOConfig
from analysis.published import load_published
from suites.atari import ATARI


def test_atari_rows_state_the_protocol_difference():
    pub = load_published()
    atari = pub[pub["suite"] == "atari"]
    assert sorted(set(atari["env"])) == ["BeamRider", "Breakout", "Pong"] and len(atari) == 6
    for r in atari.itertuples(index=False):
        p = r.protocol
        assert p.startswith(f"{r.env}NoFrameskip-v4, not our ALE/{r.env}-v5: NO sticky actions")
        assert "repeat_action_probability 0; ours 0.25" in p
        assert "episodic life" in p and "FIRE on reset" in p
        assert "raw full-game score of training episodes" in p
    # What the text claims about ours is what suites.atari does.
    assert ATARI.repeat_action_probability == 0.25
    assert not ATARI.terminal_on_life_loss and not ATARI.fire_reset
    assert ATARI.noop_max == 30 and ATARI.frameskip == 4 and not ATARI.reward_clipping
    assert PPOConfig.SUITE_DEFAULTS["atari"]["clip_reward"] is True  # the learner clips
