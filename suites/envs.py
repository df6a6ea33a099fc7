"""`make`: the one way to build a suite's vector env.

MuJoCo, ale-py and minatar are imported only when one of their envs is made, so the
classic suite works without the `mujoco` / `atari` / `minatar` extras.

MinAtar and any other Gymnasium id (`suites.anyenv`) are built here per sub-env by
`make_env`, which also serves `algos.enjoy`: MinAtar's [10, 10, C] bool observation
becomes [C, 10, 10] float32 (channels first, for the CNN); a channels-last uint8 image of
another env becomes [C, H, W] uint8.
"""

from __future__ import annotations

import contextlib
import functools
import warnings

import gymnasium as gym
import numpy as np

from suites import anyenv
from suites.registry import MINATAR_ALL, suite_of
from suites.sync_vector import LeanSyncVectorEnv

MUJOCO_HINT = "MuJoCo envs need the mujoco extra: pip install -e '.[mujoco]'"
VECTORIZATIONS = ("auto", "sync", "async", "ale")

# Arguments every `gym.make` of an env gets here. Ant-v5 puts the 84 external contact
# forces (cfrc_ext) in its observation by default (105 dims); Ant-v4 left them out
# (use_contact_forces=False: 27 dims) and Ant-v3 under mujoco-py 2 gave them as zeros, so
# every published 1M-step Ant figure (Tianshou, SB3 zoo: v3) saw none. They are large,
# sparse spikes that swamp a running observation normaliser: PPO with its MuJoCo
# defaults reached an eval return of 308 at 1M steps with them and 1,313 by 500k without
# (seed 0, this machine, 2026-12-02). Ant here is Ant-v5's physics with v4's observation.
#
# MinAtar registers no time limit, and Breakout, Asterix and Space Invaders can go on for
# ever under a good (or a stuck deterministic) policy: an evaluation would never end. The
# cap is the Atari protocol's 108,000 frames (Machado et al. 2018), one MinAtar step being
# one frame; Freeway ends itself at 2,500. Recorded in each run's config as env_kwargs.
MINATAR_MAX_STEPS = 108_000
MAKE_KWARGS: dict[str, dict] = {
    "Ant-v5": {"include_cfrc_ext_in_observation": False},
    **{e: {"max_episode_steps": MINATAR_MAX_STEPS} for e in MINATAR_ALL},
}


def _mujoco_warning(message: str) -> None:
    # Never raise into MuJoCo's C code (warnings.warn raises under `-W error`).
    with contextlib.suppress(Exception):
        warnings.warn(f"MuJoCo: {message}", RuntimeWarning, stacklevel=2)


def require_mujoco() -> None:
    """Import MuJoCo (ImportError with the install hint if missing) and keep its warnings
    out of the working directory.

    mujoco 4.0.0 warns at every HalfCheetah construction that the model's `settotalmass`
    attribute is deprecated; by default it prints each warning and appends it to
    ./MUJOCO_LOG.TXT. Here, process-wide and once: file logging is switched off, and
    unless someone installed a handler already, MuJoCo's warnings become Python
    `RuntimeWarning`s (shown once per message by Python's default filter). Forked
    AsyncVectorEnv workers inherit both.
    """
    try:
        import mujoco
    except ImportError as e:
        raise ImportError(f"{MUJOCO_HINT} ({e})") from e
    config = mujoco.MjLogConfig.get()
    if config.logto_file:
        config.logto_file = False
        config.set()
    if mujoco.get_mju_user_warning() is None:
        mujoco.set_mju_user_warning(_mujoco_warning)


def _channels_first(env: gym.Env, dtype) -> gym.Env:
    """[H, W, C] observations -> [C, H, W] of `dtype` (bool -> float32 0/1 for MinAtar)."""
    space = env.observation_space
    h, w, c = space.shape
    new = gym.spaces.Box(0 if dtype == np.float32 else space.low.min(),
                         1 if dtype == np.float32 else space.high.max(),
                         (c, h, w), dtype=dtype)
    return gym.wrappers.TransformObservation(
        env, lambda o: np.ascontiguousarray(np.moveaxis(o, -1, 0), dtype=dtype), new)


def make_env(env_id: str, render_mode: str | None = None) -> gym.Env:
    """One env of a classic, MuJoCo, MinAtar or other Gymnasium id, as `make` builds each
    of its sub-envs (not Atari: `suites.atari`). Not reset."""
    kind = suite_of(env_id)
    if kind == "atari":
        raise ValueError("make_env does not build Atari envs: suites.atari.make_gym_env does")
    if kind == "mujoco":
        require_mujoco()
    if kind == "minatar":
        anyenv.register_minatar()
    kw = {} if render_mode is None else {"render_mode": render_mode}
    env = gym.make(env_id, **kw, **MAKE_KWARGS.get(env_id, {}))
    if kind == "minatar":
        return _channels_first(env, np.float32)
    if kind == "gym-pixels" and anyenv.channels_last(env.observation_space.shape):
        return _channels_first(env, env.observation_space.dtype)
    return env


def make(env_id: str, num_envs: int, seed: int, *, vectorization: str = "auto") -> gym.vector.VectorEnv:
    """A Gymnasium 1.x vector env of `num_envs` copies of `env_id`, NEXT_STEP autoreset.

    Args:
        env_id: a known env id (see `suites.resolve`); UnknownEnvError otherwise.
        num_envs: number of sub-envs (>= 1).
        seed: seeds the action spaces (`envs.action_space` and `envs.single_action_space`,
            so `sample()` is reproducible). The env itself is NOT reset here: the caller
            calls `envs.reset(seed=seed)` (sub-env i gets seed + i), and the same seed then
            gives the same observations for the same actions.
        vectorization: "auto" | "sync" | "async" (| "ale" for Atari).
            classic/mujoco: "sync" = `LeanSyncVectorEnv` (Gymnasium's SyncVectorEnv
            without the info merge, `suites.sync_vector`), "async" =
            `gym.make_vec(env_id, num_envs, vectorization_mode="async")`; "auto" = "sync"
            (faster than async on two cores: HalfCheetah x8 11,300 vs 5,450 steps/s). Atari: "auto" = "ale" = ale-py's AtariVectorEnv, "sync"/"async"
            = Gymnasium's Sync/AsyncVectorEnv over AtariPreprocessing; see `suites.atari`.
            MinAtar and other Gymnasium ids: sync or async over `make_env`.

    Returns:
        The vector env. Observations are batched `[num_envs, *obs_shape]`:
        classic/mujoco keep the env's own dtype (float32 for the classic tasks, float64
        for MuJoCo) -- casting is the caller's job (`algos.rollout.Collector` casts to
        float32 once per step, one `astype` on the batch); Atari gives
        `[num_envs, 4, 84, 84]` uint8; MinAtar `[num_envs, C, 10, 10]` float32 (0/1);
        other ids their own, images channels first. Rewards are raw (never clipped or scaled) so that
        episode returns are the scores reported. On the step an episode ends, the
        observation is its final observation; that env's next step only resets it.

    Raises:
        UnknownEnvError: unknown env id. ValueError: bad num_envs or vectorization.
        ImportError: the mujoco / atari extra is missing (the message says what to install).
    """
    kind = suite_of(env_id)
    if isinstance(num_envs, bool) or not isinstance(num_envs, int) or num_envs < 1:
        raise ValueError(f"num_envs must be a positive int, got {num_envs!r}")
    allowed = VECTORIZATIONS if kind == "atari" else VECTORIZATIONS[:3]
    if vectorization not in allowed:
        raise ValueError(f"vectorization must be one of {', '.join(allowed)} for {env_id}, "
                         f"got {vectorization!r}")
    if kind == "atari":
        from suites.atari import make_atari

        envs = make_atari(env_id, num_envs, vectorization)
    elif kind not in ("classic", "mujoco"):
        # MinAtar and any Gymnasium id: each sub-env through make_env (its wrappers)
        fns = [functools.partial(make_env, env_id)] * num_envs
        envs = (gym.vector.AsyncVectorEnv(fns) if vectorization == "async"
                else LeanSyncVectorEnv(fns))
    else:
        if kind == "mujoco":
            require_mujoco()
        kwargs = MAKE_KWARGS.get(env_id, {})
        if vectorization == "async":
            envs = gym.make_vec(env_id, num_envs, vectorization_mode="async", **kwargs)
        else:
            # gym.make_vec's SyncVectorEnv with the lean step (suites/sync_vector.py); each
            # sub-env is gym.make(env_id, **MAKE_KWARGS), as make_vec builds them
            envs = LeanSyncVectorEnv([functools.partial(gym.make, env_id, **kwargs)] * num_envs)
    envs.action_space.seed(seed)
    envs.single_action_space.seed(seed)
    return envs
