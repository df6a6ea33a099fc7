"""Atari through ale-py: one evaluation protocol, two ways to build the vector env.

The protocol (`ATARI`, an `AtariProtocol`) follows Machado et al., "Revisiting the Arcade
Learning Environment", JAIR 2018, with the DQN-style observation pipeline:

- observations: 84x84 greyscale, max-pooled over the last two emulator frames of each
  agent step, the last 4 agent-step frames stacked: `[num_envs, 4, 84, 84]` uint8;
- 4 emulator frames per agent step (`frameskip`); sticky actions with probability 0.25
  (applied by the emulator at every frame); the minimal action set;
- up to 30 no-op frames at the start of each episode (on top of sticky actions; the
  random/human table we normalise with was measured with 30 no-op starts);
- episodes capped at 108,000 emulator frames (30 minutes of play = 27,000 agent steps),
  reported as truncation;
- no termination on life loss (the episode is the whole game, as Machado et al. advise);
- NO reward clipping in the env: rewards and returns are raw game scores, which is what
  evaluation reports and what the human-normalised score needs. Learners that want
  clipped or scaled rewards do it themselves;
- no FIRE on reset (see below).

Two builders, picked by `suites.make(..., vectorization=...)`:

- "auto" (or "ale"): ale-py's own `ale_py.vector_env.AtariVectorEnv`, whose C++ threads
  step all games and do the preprocessing; the fastest on two cores (8 envs of Pong,
  agent steps/s: 3,730 vs 1,560 Sync / 1,820 Async on an idle machine; 1,855 vs 1,268 /
  1,428 under load; `python -m suites.throughput --atari`).
  Its defaults are NOT this protocol and are all set explicitly here:
  `reward_clipping=True` by default -> False, because returns must be raw game scores
  (evaluation and human normalisation read them from the env) and clipping is a learner's
  choice; `use_fire_reset=True` by default -> False, because pressing FIRE after a reset
  is game-specific knowledge that Machado et al. 2018 recommend against, that the
  Gymnasium path below does not do, and that would make the two paths differ; `repeat_action_probability=0.0` by default
  -> 0.25 (sticky actions).
- "sync" / "async": Gymnasium's `gym.make("ALE/<Game>-v5", frameskip=1,
  repeat_action_probability=0.25, max_num_frames_per_episode=108000)` wrapped in
  `AtariPreprocessing(noop_max=30, frame_skip=4, screen_size=84, grayscale_obs=True,
  terminal_on_life_loss=False, scale_obs=False)` and `FrameStackObservation(4)`, in a
  `SyncVectorEnv` / `AsyncVectorEnv`. Needs OpenCV (`opencv-python-headless`).

Both give Gymnasium 1.x vector envs with the default NEXT_STEP autoreset and
`single_observation_space = Box(0, 255, (4, 84, 84), uint8)`. Where they differ (all
measured with ale-py 0.12.1, gymnasium 1.4.0):

- The frame cap: the Gymnasium env counts every emulator frame of the episode, the no-op
  frames included (truncated at `episode_frame_number == 108000`, at most 27,000 agent
  steps); AtariVectorEnv counts the frames after the no-op start (truncated after exactly
  27,000 agent steps). The difference is at most 30 frames.
- No-op starts: AtariPreprocessing draws 1..30 no-op frames; AtariVectorEnv 0..29.
- Rewards come as float64 (Gymnasium) or int32 (AtariVectorEnv); `info` keys differ.
- The frame stack right after a reset: FrameStackObservation repeats the reset frame.

Seeding: `envs.reset(seed=s)` seeds sub-env i with s + i on both paths (emulator,
sticky-action and no-op randomness); on each path the same seed gives the same episodes
(the two paths do not give the same episodes as each other). AtariVectorEnv
only takes int32 seeds; ours folds them, (s + i) mod 2**31 (see `suites.ale_vector`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import partial

from suites.registry import ale_game

ATARI_HINT = "Atari envs need the atari extra: pip install -e '.[atari]'"


@dataclass(frozen=True)
class AtariProtocol:
    """The Atari environment settings (Machado et al. 2018 plus DQN-style preprocessing)."""

    frameskip: int = 4
    """Emulator frames per agent step; the observation is the max over the last two."""
    frame_stack: int = 4
    """Agent-step frames stacked into one observation (the channel axis)."""
    screen_size: int = 84
    """Observations are resized to screen_size x screen_size greyscale."""
    noop_max: int = 30
    """Up to this many no-op frames at the start of each episode."""
    repeat_action_probability: float = 0.25
    """Sticky actions: at each frame the emulator repeats the previous action with this
    probability (Machado et al. 2018, section 5.2)."""
    max_num_frames_per_episode: int = 108_000
    """Episode cap in emulator frames (30 min at 60 Hz = 27,000 agent steps); truncation."""
    full_action_space: bool = False
    """False: the game's minimal action set."""
    terminal_on_life_loss: bool = False
    """Machado et al. 2018: the episode ends at game over, not at a lost life."""
    reward_clipping: bool = False
    """Raw game scores from the env; learners clip or scale rewards themselves."""
    fire_reset: bool = False
    """No game-specific FIRE after reset (AtariVectorEnv's default is True)."""


ATARI = AtariProtocol()


def import_ale():
    """`ale_py`, registered with Gymnasium; ImportError with the install hint if missing."""
    try:
        import ale_py
    except ImportError as e:
        raise ImportError(f"{ATARI_HINT} ({e})") from e
    import gymnasium as gym

    gym.register_envs(ale_py)
    return ale_py


def make_ale_vector(env_id: str, num_envs: int, protocol: AtariProtocol = ATARI):
    """ale-py's `AtariVectorEnv` for `env_id` under `protocol`; obs [num_envs, 4, 84, 84] uint8.

    A thin subclass (`suites.ale_vector.SeededAtariVectorEnv`) whose `reset` accepts
    seeds of any size (ale-py's own takes only int32 seeds).

    The protocol it was built with is kept as `envs.protocol` (ale-py cannot report its
    settings back).
    """
    import_ale()
    from gymnasium.vector import AutoresetMode

    from suites.ale_vector import SeededAtariVectorEnv

    p = protocol
    envs = SeededAtariVectorEnv(
        ale_game(env_id), num_envs,
        frameskip=p.frameskip, maxpool=True, stack_num=p.frame_stack,
        img_height=p.screen_size, img_width=p.screen_size, grayscale=True,
        noop_max=p.noop_max,
        repeat_action_probability=p.repeat_action_probability,
        # ale-py passes this on as the episode cap counted from the end of the no-op
        # start, in emulator frames (cap / frameskip agent steps).
        max_num_frames_per_episode=p.max_num_frames_per_episode,
        full_action_space=p.full_action_space,
        episodic_life=p.terminal_on_life_loss, life_loss_info=False,
        reward_clipping=p.reward_clipping,
        use_fire_reset=p.fire_reset,
        autoreset_mode=AutoresetMode.NEXT_STEP,
    )
    envs.protocol = p
    return envs


def make_gym_env(env_id: str, protocol: AtariProtocol = ATARI, render_mode: str | None = None):
    """One Gymnasium Atari env under `protocol`: obs [4, 84, 84] uint8.

    A module-level function (not a lambda) so that AsyncVectorEnv can pickle it.
    `render_mode="rgb_array"`: `render()` gives the screen (algos.enjoy records videos).
    """
    import_ale()
    import gymnasium as gym
    from gymnasium.wrappers import AtariPreprocessing, FrameStackObservation

    try:
        import cv2  # noqa: F401  AtariPreprocessing resizes with OpenCV
    except ImportError as e:
        raise ImportError(f"{ATARI_HINT} (AtariPreprocessing needs OpenCV: {e})") from e
    p = protocol
    env = gym.make(
        env_id, frameskip=1,  # AtariPreprocessing does the frame skip and the max-pool
        repeat_action_probability=p.repeat_action_probability,
        max_num_frames_per_episode=p.max_num_frames_per_episode,
        full_action_space=p.full_action_space, render_mode=render_mode,
    )
    env = AtariPreprocessing(
        env, noop_max=p.noop_max, frame_skip=p.frameskip, screen_size=p.screen_size,
        terminal_on_life_loss=p.terminal_on_life_loss, grayscale_obs=True,
        grayscale_newaxis=False, scale_obs=False,
    )
    return FrameStackObservation(env, p.frame_stack)


def make_gym_vector(env_id: str, num_envs: int, mode: str, protocol: AtariProtocol = ATARI):
    """Sync (mode "sync") or Async ("async") vector env of `make_gym_env`; `envs.protocol` set."""
    import gymnasium as gym

    import_ale()
    fns = [partial(make_gym_env, env_id, protocol)] * num_envs
    envs = gym.vector.SyncVectorEnv(fns) if mode == "sync" else gym.vector.AsyncVectorEnv(fns)
    envs.protocol = protocol
    return envs


def make_atari(env_id: str, num_envs: int, vectorization: str = "auto",
               protocol: AtariProtocol = ATARI):
    """The Atari vector env: "auto"/"ale" -> AtariVectorEnv, "sync"/"async" -> Gymnasium."""
    if vectorization in ("auto", "ale"):
        return make_ale_vector(env_id, num_envs, protocol)
    return make_gym_vector(env_id, num_envs, vectorization, protocol)


def protocol_dict(protocol: AtariProtocol = ATARI) -> dict:
    """The protocol as a plain dict (for config files and reports)."""
    return asdict(protocol)
