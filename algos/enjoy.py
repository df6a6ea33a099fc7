"""Use what was trained: replay a run's policy, record it, or load it in a notebook.

    python -m algos.enjoy RUN_DIR [--episodes N] [--seed S] [--stochastic]
                                  [--video OUT.mp4] [--device cpu]

loads RUN_DIR's checkpoint.pt (the last one `algos.train` wrote: at the end of a done run)
and runs its policy, printing each episode's return and their mean. Writes nothing
but the video.

Defaults repeat the run's last evaluation: the deterministic policy (mean / arg-max, as
`algos.train` evaluates), the run's `eval_episodes` episodes on `min(episodes, 8)` eval
envs reset with that evaluation's seed (`algos.train.eval_seed`). For a done run the
mean then equals the last `eval/return` row of metrics.csv, and it says so (on the
same CPU model and code: see README on reproducibility). `--seed` gives other
episodes; `--stochastic` samples actions from the policy instead.

`--video OUT.mp4` records through `gymnasium.wrappers.RecordVideo` on one env built
with `render_mode="rgb_array"` (Atari: the Gymnasium path of `suites.atari`, the same
protocol), one episode by default; with `--episodes N` > 1, one file per episode,
`OUT-episode-<k>.mp4`. It needs moviepy (and pygame for the classic-control envs'
rendering): `pip install -e '.[video]'`. MuJoCo renders headless through EGL
(MUJOCO_GL=egl is set when unset and there is no display).

In a notebook:

    from algos.enjoy import load_policy
    policy = load_policy("results/quickstart/5d1f0c2a9e3b")
    env = policy.make_env()              # the run's env as its suite builds it (gymnasium.Env)
    obs, _ = env.reset(seed=0)
    action = policy.act(obs)             # numpy in, numpy out; a batch [B, *obs] works too
    policy.env_id, policy.step           # "CartPole-v1", the checkpoint's step

Exit status: 0 done; 2 a usage error (not a run directory, no checkpoint, a damaged
one, a missing video dependency, a bad --episodes), with a message naming what to do.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

import suites
from algos.base import EnvSpec
from algos.config import ConfigError
from algos.results import EVAL_RETURN, CorruptFile, RunDir
from algos.rollout import evaluate

VIDEO_HINT = "pip install -e '.[video]' (or: pip install moviepy)"


class UsageError(Exception):
    """Bad input the user can fix: the CLI prints it and exits 2."""


@dataclass
class Policy:
    """A trained policy, loaded from a run directory by `load_policy`.

    env_id, algo, variant, seed: the run's; step: the checkpoint's (agent steps);
    config: config.json's resolved run (its "config" the algorithm's and run's fields);
    evals_done: evaluations the run had made by then; spec: the env's EnvSpec;
    learner: the algorithm's Learner, weights loaded.
    """

    run_dir: Path
    env_id: str
    algo: str
    variant: str
    seed: int
    step: int
    evals_done: int
    evaluated_at_step: bool
    config: dict
    spec: EnvSpec
    learner: Any

    def act(self, obs: np.ndarray, deterministic: bool = True) -> np.ndarray:
        """The action for one observation (shape spec.obs_shape), or actions for a batch
        [B, *obs_shape]. deterministic: the evaluation policy (Gaussian mean, arg-max);
        else a sample. Continuous actions are not clipped (the env's bounds are
        spec.action_low/high)."""
        obs = np.asarray(obs, dtype=np.uint8 if self.spec.pixels else np.float32)
        single = obs.shape == tuple(self.spec.obs_shape)
        if not single and obs.shape[1:] != tuple(self.spec.obs_shape):
            raise ValueError(f"obs has shape {obs.shape}; expected {tuple(self.spec.obs_shape)} "
                             f"or [B, {', '.join(map(str, self.spec.obs_shape))}]")
        action, _ = self.learner.act(obs[None] if single else obs, deterministic=deterministic)
        action = np.asarray(action)
        return action[0] if single else action

    def make_env(self, render_mode: str | None = None):
        """One env of the run's kind, as its suite builds it (Atari: the protocol's
        Gymnasium wrappers), not reset. `render_mode="rgb_array"` for frames."""
        return make_single_env(self.env_id, render_mode)


def make_single_env(env_id: str, render_mode: str | None = None):
    """One Gymnasium env of `env_id` as `suites.make` builds each of its sub-envs."""
    if suites.suite_of(env_id) == "atari":
        from suites.atari import make_gym_env

        return make_gym_env(env_id, render_mode=render_mode)
    from suites.envs import make_env

    if render_mode is not None:
        # pygame (classic control) starts SDL's audio, which complains on a headless machine
        os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
    return make_env(env_id, render_mode)


def load_policy(run_dir: str | os.PathLike, device: str = "cpu") -> Policy:
    """The policy of `run_dir`'s checkpoint.pt, on `device`.

    Raises UsageError when run_dir is not a run directory (no config.json) or has no
    checkpoint, CorruptFile for a damaged one."""
    from algos import train

    rd = RunDir(Path(run_dir))
    if not rd.path.is_dir():
        raise UsageError(f"{run_dir} is not a folder; expected a run directory (with config.json "
                         "and checkpoint.pt), e.g. results/<sweep>/<run_id>")
    cfg = rd.read_config()
    if cfg is None:
        raise UsageError(f"{run_dir} holds no config.json: not a run directory; expected "
                         "results/<sweep>/<run_id> (a folder algos.train wrote)")
    if not rd.checkpoint_path.exists():
        raise UsageError(f"{run_dir} holds no checkpoint.pt (the run wrote none yet: it is "
                         "written every checkpoint_every steps and at the end)")
    for key in ("algo", "env", "seed", "steps", "config"):
        if key not in cfg:
            raise CorruptFile(rd.config_path, f"lacks {key!r}", "the JSON object algos.train writes")
    ckpt = train.load_checkpoint(rd, map_location=device)
    mod = train.algo_module(cfg["algo"])
    run_cfg, algo_cfg = train.configs(mod, cfg)
    probe = suites.make(cfg["env"], 1, 0, vectorization=run_cfg.vectorization)
    try:
        spec = EnvSpec.from_vector_env(probe)
    finally:
        probe.close()
    dev = torch.device(device)
    learner = mod.Learner(algo_cfg, spec, run_cfg.num_envs, int(cfg["steps"]), dev)
    learner.load_state_dict(ckpt["learner"])
    return Policy(rd.path, cfg["env"], cfg["algo"], cfg.get("variant") or cfg["algo"],
                  int(cfg["seed"]), int(ckpt["step"]), int(ckpt["evals_done"]),
                  bool(ckpt.get("evaluated_at_step")), cfg, spec, learner)


class _Sampling:
    """The learner with `act(obs, deterministic=True)` sampling instead: `evaluate` asks
    for the deterministic policy, --stochastic wants samples."""

    def __init__(self, learner) -> None:
        self.learner = learner

    def act(self, obs, deterministic: bool = True):
        return self.learner.act(obs, deterministic=False)


def last_eval_row(rd: RunDir) -> tuple[int, float] | None:
    """(step, value) of the last eval/return row of metrics.csv, None if there is none."""
    rows = [(s, v) for s, m, v, _ in rd.read_metrics() if m == EVAL_RETURN]
    return rows[-1] if rows else None


def _require_video(env_id: str) -> None:
    """UsageError naming what to install when recording cannot work."""
    try:
        import moviepy  # noqa: F401
    except ImportError as e:
        raise UsageError(f"--video needs moviepy, which is not installed ({e}); "
                         f"{VIDEO_HINT}") from None
    if suites.suite_of(env_id) == "classic":
        try:
            import pygame  # noqa: F401
        except ImportError as e:
            raise UsageError(f"--video of {env_id} needs pygame to render it ({e}); "
                             "pip install -e '.[video]' (or: pip install pygame)") from None


def _video_envs(policy: Policy, folder: Path, episodes: int):
    """A one-env vector env whose env records every episode into `folder`."""
    import gymnasium as gym
    from gymnasium.wrappers import RecordVideo

    from suites.sync_vector import LeanSyncVectorEnv

    def make():
        env = policy.make_env(render_mode="rgb_array")
        env.reset(seed=0)
        env.render()  # fails here, not mid-run, if rendering cannot work (evaluate reseeds)
        fps = env.metadata.get("render_fps", 30)
        if suites.suite_of(policy.env_id) == "atari":
            fps = 60 // suites.frameskip(policy.env_id)  # one frame per agent step, real time
        return RecordVideo(env, video_folder=str(folder), episode_trigger=lambda e: e < episodes,
                           name_prefix="enjoy", fps=fps, disable_logger=True)

    try:
        return LeanSyncVectorEnv([make])
    except gym.error.DependencyNotInstalled as e:
        raise UsageError(f"--video: {e}; {VIDEO_HINT}") from None
    except Exception as e:  # noqa: BLE001 - a GL context that cannot be made, typically
        hint = (" (MuJoCo renders headless with MUJOCO_GL=egl or MUJOCO_GL=osmesa)"
                if suites.suite_of(policy.env_id) == "mujoco" else "")
        raise UsageError(f"--video: {policy.env_id} cannot render ({type(e).__name__}: {e})"
                         f"{hint}") from None


def _video_paths(out: Path, episodes: int) -> list[Path]:
    if episodes == 1:
        return [out]
    return [out.with_name(f"{out.stem}-episode-{k}{out.suffix or '.mp4'}") for k in range(episodes)]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m algos.enjoy", description=__doc__.split("\n\n")[0],
                                epilog="Defaults repeat the run's last evaluation (see the "
                                       "module doc).")
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run directory: results/<sweep>/<run_id>")
    p.add_argument("--episodes", type=int, default=None,
                   help="episodes to run (default: the run's eval_episodes; 1 with --video)")
    p.add_argument("--seed", type=int, default=None,
                   help="seed the envs are reset with (default: the run's last evaluation's)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--deterministic", dest="deterministic", action="store_true", default=True,
                      help="the evaluation policy: Gaussian mean, arg-max (the default)")
    mode.add_argument("--stochastic", dest="deterministic", action="store_false",
                      help="sample actions from the policy")
    p.add_argument("--video", type=Path, default=None, metavar="OUT.mp4",
                   help="record the episodes (one file per episode when several); needs "
                        "the video extra")
    p.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    args = p.parse_args(argv)
    try:
        return _enjoy(args)
    except (UsageError, ConfigError, CorruptFile, suites.UnknownEnvError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def _enjoy(args) -> int:
    from algos import train

    if args.episodes is not None and args.episodes < 1:
        raise UsageError(f"--episodes: expected a positive int, got {args.episodes}")
    if args.video is not None:
        if args.video.is_dir():
            raise UsageError(f"--video {args.video} is a folder; expected a file name, e.g. out.mp4")
        problem = _writable_parent(args.video)
        if problem:
            raise UsageError(f"--video {args.video}: {problem}")
        rd_cfg = RunDir(Path(args.run_dir)).read_config() if Path(args.run_dir).is_dir() else None
        if rd_cfg and isinstance(rd_cfg.get("env"), str):
            _require_video(rd_cfg["env"])
            if (suites.suite_of(rd_cfg["env"]) == "mujoco" and "MUJOCO_GL" not in os.environ
                    and not os.environ.get("DISPLAY")):
                os.environ["MUJOCO_GL"] = "egl"  # before mujoco is imported
    policy = load_policy(args.run_dir, args.device)
    run_cfg = policy.config["config"]
    episodes = args.episodes or (1 if args.video else int(run_cfg["eval_episodes"]))
    last_k = policy.evals_done - 1
    seed = train.eval_seed(policy.seed, max(last_k, 0)) if args.seed is None else args.seed
    torch.manual_seed(seed)
    actor = policy.learner if args.deterministic else _Sampling(policy.learner)
    print(f"{policy.variant} on {policy.env_id}, seed {policy.seed}, checkpoint at step "
          f"{policy.step}: {episodes} episode(s), {'deterministic' if args.deterministic else 'stochastic'} "
          f"policy, envs reset with seed {seed}")
    tmp = None
    try:
        if args.video is not None:
            tmp = Path(tempfile.mkdtemp(prefix=".enjoy-video.", dir=args.video.resolve().parent))
            # a folder RecordVideo makes itself: it warns about one that exists
            envs = _video_envs(policy, tmp / "videos", episodes)
        else:
            envs = train.make_eval_envs(policy.env_id, episodes, policy.seed,
                                        run_cfg.get("vectorization", "auto"))
        try:
            returns = evaluate(actor, envs, episodes, seed=seed, spec=policy.spec)
        finally:
            envs.close()  # RecordVideo writes the last episode's file here
        for k, r in enumerate(returns):
            print(f"episode {k}: return {r:.6g}")
        mean = float(np.mean(returns))
        print(f"mean return {mean:.6g} over {len(returns)} episode(s) "
              f"(std {float(np.std(returns)):.6g})")
        if tmp is not None:
            made = sorted((tmp / "videos").glob("*.mp4"), key=lambda f: int(f.stem.rsplit("-", 1)[-1]))
            written = _video_paths(args.video, episodes)[:len(made)]
            for src, dst in zip(made, written):
                os.replace(src, dst)
            print("video: " + ", ".join(map(str, written)))
    finally:
        if tmp is not None:  # nothing left behind, whatever happened
            shutil.rmtree(tmp, ignore_errors=True)
    repeats = (args.deterministic and args.seed is None and episodes == int(run_cfg["eval_episodes"])
               and args.video is None)
    if repeats:
        _compare_with_log(policy, mean)
    return 0


def _compare_with_log(policy: Policy, mean: float) -> None:
    """Say whether `mean` repeats the run's logged last evaluation."""
    last = last_eval_row(RunDir(policy.run_dir))
    if policy.evals_done < 1 or last is None:
        print("the run logged no evaluation yet: nothing to compare with")
    elif not policy.evaluated_at_step or last[0] != policy.step:
        print(f"the checkpoint (step {policy.step}) is not where the last evaluation was logged "
              f"(step {last[0]}): nothing to compare with")
    else:
        same = np.isclose(mean, last[1], rtol=1e-9, atol=1e-9)
        print(f"the run's last evaluation (step {last[0]}) logged {EVAL_RETURN} {last[1]:.6g}: "
              + ("the same" if same else f"this differs by {mean - last[1]:.6g} (another CPU "
                                         "model or code version?)"))


def _writable_parent(path: Path) -> str | None:
    parent = path.resolve().parent
    if not parent.is_dir():
        return f"its folder {parent} does not exist"
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"its folder {parent} is not writable"
    return None


if __name__ == "__main__":
    sys.exit(main())
