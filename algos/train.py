"""The training loop: one run of one algorithm on one env, written to a run directory.

    python -m algos.train --algo ppo --env HalfCheetah-v5 --seed 0 --steps 1000000 \
        --out RUN_DIR [--set key=value ...] [--variant NAME] [--track]
    python -m algos.train --algo vmpo --help          # every config field: default, suite defaults, doc
    python -m algos.train --algo vmpo --env HalfCheetah-v5 --print-config [--set ...]
                                                      # the resolved config as a spec's runs entry (YAML)

The loop knows no algorithm: it builds the registered algorithm's `Learner` (the
contract and the registry `ALGOS` are in `algos/base.py`; docs/adding-an-algorithm.md),
lets the collector fill a rollout, hands it to `observe`, and calls `update()` while `ready()`. It evaluates the
deterministic policy on separate eval envs every `eval_every` steps and at the end,
checkpoints atomically every `checkpoint_every` steps and at the end, and resumes from
RUN_DIR's checkpoint when RUN_DIR holds the same config (a different config there is an
error, never an overwrite). A NaN/Inf in a logged loss or in a parameter stops the run
with status "failed" naming it.

On resume, metrics rows past the checkpoint's step are cut (they belong to a trajectory
the checkpoint does not hold), and the envs are reset with a seed derived from the run's
seed and the step: an episode in flight at the checkpoint is lost.

Before anything is written, RUN_DIR is checked: it must be a folder that can be written
(or be creatable), no other process may be training it (a lock on the folder itself), and
what it holds must be readable: config.json, status.json, metrics.csv (every row, and a
row at the checkpoint's step) and checkpoint.pt. A damaged file is an error naming it
(exit 2), never a silent restart; nothing is repaired or deleted but the temp files of a
writer that was killed. A write that fails mid-run (a full disk) fails the run with the
error; the last checkpoint is intact and the same command resumes from it.

Beside metrics.csv every run writes TensorBoard event files (`RUN_DIR/tb/<variant>.<env>.seed<k>/`:
`tensorboard --logdir results/<sweep>` shows a sweep), and `--track` (or VMPO_BENCH_TRACK=wandb)
logs to Weights & Biases; neither is part of the config (run ids stay); see `algos.tracking`.
The progress bar shows steps/s, `ret` (the mean training episode return of the last 100
episodes, as SB3's ep_rew_mean) and `eval` (the last evaluation return).
`python -m algos.enjoy RUN_DIR` replays the trained policy (and records videos).

Exit status: 0 done; 1 the run failed (divergence, a failed write; status.json says
"failed" where it could be written); 2 a usage error or a damaged RUN_DIR, nothing
written; 3 another process is training RUN_DIR.

The budget `steps` counts agent env steps over all training envs; a run stops at the
first rollout boundary at or past it (a whole number of T * num_envs steps), where it
evaluates a last time.
"""

from __future__ import annotations

import argparse
import collections
import random
import sys
import textwrap
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

import suites
from algos import base
from algos.base import EnvSpec
from algos import tracking
from algos.config import (
    ConfigError,
    RunConfig,
    build,
    describe_fields,
    field_types,
    format_fields,
    to_yaml,
    unknown_key,
)
from algos.memory import keep_freed_memory
from algos.rollout import Collector, evaluate
from rundir import (
    CorruptFile,
    RunDir,
    atomic_torch_save,
    first_non_finite,
    provenance,
    stable_hash,
    writable_dir_problem,
)

ALGOS = base.ALGOS  # the registry (name -> module), one object: `name in ALGOS`, `", ".join(ALGOS)`
CHECKPOINT_VERSION = 1
MAX_SEED = 2**32 - 1  # numpy's seed range; torch and Gymnasium take it too
EVAL_SEED = 1_000_003  # evaluation envs are seeded apart from the training envs' seeds
RETURN_WINDOW = 100  # the console's training return: the mean of the last 100 episodes (SB3's ep_rew_mean)
CHECKPOINT_EXPECTED = (f"a checkpoint algos.train wrote (version {CHECKPOINT_VERSION}); restore it, "
                       "or delete checkpoint.pt and metrics.csv to train the run from step 0")


class DivergenceError(RuntimeError):
    """A logged metric or a parameter became NaN or Inf."""


class RunDirConflict(ConfigError):
    """RUN_DIR holds a run of another config."""


class RunBusy(RuntimeError):
    """Another process is training RUN_DIR (it holds the folder's lock)."""


@dataclass
class RunSpec:
    """What to run. `overrides` sets fields of the algorithm's Config and of RunConfig."""

    algo: str
    env: str
    seed: int
    steps: int
    overrides: dict[str, Any] = field(default_factory=dict)
    variant: str | None = None
    sweep: str | None = None
    reference: dict[str, Any] | None = None
    """A normalisation pair {random, reference, source} from a spec's `references:`
    (sweeps.spec checks it); recorded in config.json only when given (run ids unchanged)."""


def algo_module(name: str):
    """The registered algorithm's module (`base.algorithm`): ConfigError for an unknown name."""
    return base.algorithm(name)


def _defaults(config_cls: type, suite: str, env: str) -> dict[str, Any]:
    table = getattr(config_cls, "SUITE_DEFAULTS", {})
    return {**table.get(suite, {}), **table.get(env, {})}


def resolve(spec: RunSpec, from_strings: bool = False) -> dict[str, Any]:
    """The resolved run: config.json's content without provenance and sweep, with run_id.

    Raises ConfigError naming the key (`algo`, `seed`, `steps`, or an override key) or
    suites.UnknownEnvError for an unknown env.
    """
    mod = algo_module(spec.algo)
    suite = suites.suite_of(spec.env)
    if (isinstance(spec.seed, bool) or not isinstance(spec.seed, int) or spec.seed < 0
            or spec.seed > MAX_SEED):
        raise ConfigError("seed", f"expected an int from 0 to 2**32 - 1, got {spec.seed!r}")
    if isinstance(spec.steps, bool) or not isinstance(spec.steps, int) or spec.steps <= 0:
        raise ConfigError("steps", f"expected a positive int, got {spec.steps!r}")
    run_types, algo_types = field_types(RunConfig), field_types(mod.Config)
    defaults = _defaults(mod.Config, suite, spec.env)
    run_over, algo_over = {}, {}
    for key, value in spec.overrides.items():
        if key in run_types:
            run_over[key] = value
        elif key in algo_types:
            algo_over[key] = value
        else:
            raise unknown_key("", key, list(run_types) + list(algo_types))
    run_cfg = build(RunConfig, run_over, from_string=from_strings,
                    base={k: v for k, v in defaults.items() if k in run_types})
    algo_cfg = build(mod.Config, algo_over, from_string=from_strings,
                     base={k: v for k, v in defaults.items() if k in algo_types})
    for key in ("num_envs", "eval_episodes"):
        if getattr(run_cfg, key) < 1:
            raise ConfigError(key, f"expected a positive int, got {getattr(run_cfg, key)}")
    for key in ("eval_every", "checkpoint_every"):
        if getattr(run_cfg, key) < 0:
            raise ConfigError(key, f"expected an int >= 0 (0: only at the end), got {getattr(run_cfg, key)}")
    _check_run_values(run_cfg, suite)
    resolved = {
        "algo": spec.algo,
        "variant": spec.variant or spec.algo,
        "suite": suite,
        "env": spec.env,
        "seed": spec.seed,
        "steps": spec.steps,
        "frameskip": suites.frameskip(spec.env),
        "config": {**_jsonable(asdict(run_cfg)), **_jsonable(asdict(algo_cfg))},
    }
    from suites.envs import MAKE_KWARGS  # the env's construction arguments are part of the run

    if MAKE_KWARGS.get(spec.env):
        resolved["env_kwargs"] = dict(MAKE_KWARGS[spec.env])
    if spec.reference is not None:
        resolved["reference"] = dict(spec.reference)
    resolved["run_id"] = stable_hash(resolved)
    return resolved


def _check_run_values(run_cfg: RunConfig, suite: str) -> None:
    """Values of RunConfig that would otherwise fail only once the run has started."""
    from suites.envs import VECTORIZATIONS

    if run_cfg.torch_threads < 1:
        raise ConfigError("torch_threads", f"expected a positive int, got {run_cfg.torch_threads}")
    allowed = VECTORIZATIONS if suite == "atari" else VECTORIZATIONS[:3]
    if run_cfg.vectorization not in allowed:
        raise ConfigError("vectorization", f"expected one of {', '.join(allowed)} for the "
                                           f"{suite} suite, got {run_cfg.vectorization!r}")
    if run_cfg.device != "auto":
        try:
            torch.device(run_cfg.device)
        except (RuntimeError, ValueError):
            raise ConfigError("device", f'expected "auto", "cpu", "cuda" or "cuda:N" (a torch '
                                        f'device), got {run_cfg.device!r}') from None


def _jsonable(d: dict[str, Any]) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


def configs(mod, resolved: dict) -> tuple[RunConfig, Any]:
    """(RunConfig, the algorithm's Config) of a resolved run (config.json's content)."""
    c = resolved["config"]
    run_types, algo_types = field_types(RunConfig), field_types(mod.Config)
    run_cfg = build(RunConfig, {k: v for k, v in c.items() if k in run_types})
    algo_cfg = build(mod.Config, {k: v for k, v in c.items() if k in algo_types})
    return run_cfg, algo_cfg


def eval_seed(seed: int, k: int) -> int:
    """The seed the run's k-th evaluation (k = 0, 1, ...) resets its eval envs with."""
    return seed + EVAL_SEED + 7919 * k


def make_eval_envs(env: str, eval_episodes: int, seed: int, vectorization: str):
    """The evaluation vector env: `rollout.eval_env_count(eval_episodes)` copies
    (`rollout.evaluate` spreads the episodes over them)."""
    from algos.rollout import eval_env_count

    return suites.make(env, eval_env_count(eval_episodes), seed + EVAL_SEED,
                       vectorization=vectorization)


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _same_run(existing: dict, resolved: dict) -> bool:
    return all(existing.get(k) == v for k, v in resolved.items())


def run(spec: RunSpec, out_dir: str | Path, progress: bool = False,
        from_strings: bool = False, track: str | None = None,
        wandb_project: str | None = None, wandb_entity: str | None = None) -> dict:
    """Train `spec` in `out_dir`, resuming from its checkpoint; return the final status.

    Validates everything before writing anything: ConfigError (RunDirConflict for a
    folder of another run) for a usage error, CorruptFile for a damaged file in
    `out_dir`, RunBusy when another process trains it. On a later exception the status
    becomes "failed" with the error (where it can be written), and the exception
    propagates.

    Besides metrics.csv the run writes TensorBoard event files and, with `track="wandb"`
    (None: what VMPO_BENCH_TRACK says), logs to Weights & Biases (`wandb_project`,
    `wandb_entity`: default WANDB_PROJECT or "vmpo-bench", WANDB_ENTITY); see
    `algos.tracking`. Neither changes the run or its run_id.
    """
    resolved = resolve(spec, from_strings=from_strings)
    track = tracking.tracker_from_env() if track is None else tracking.tracker_from_env(track)
    if track == "wandb":
        tracking.require_wandb()
    problem = writable_dir_problem(out_dir) if str(out_dir) else "the path is empty"
    if problem:
        raise ConfigError("out", f"{problem}; expected a folder for the run (made if absent)")
    rd = RunDir(Path(out_dir))
    made = not rd.path.exists()
    rd.path.mkdir(parents=True, exist_ok=True)
    lock = rd.lock()
    if lock is None:
        raise RunBusy(f"another process is training {rd.path} (it holds the folder's lock)")
    try:
        try:
            existing, status, ckpt = _read_run_dir(rd, resolved)
        except BaseException:
            if made:
                _rmdir_if_empty(rd.path)
            raise
        if existing is not None and status and status.get("state") == "done":
            return status
        rd.remove_temp_files()
        try:
            # kept across resumes; a run trained again from step 0 (no checkpoint) starts afresh
            resumed_at = [*(status or {}).get("resumed_at", []), int(ckpt["step"])] if ckpt else []
            return _train(spec, resolved, rd, existing is None, ckpt, progress, resumed_at,
                          dict(track=track, wandb_project=wandb_project,
                               wandb_entity=wandb_entity))
        except KeyboardInterrupt:
            _mark_failed(rd, "KeyboardInterrupt: interrupted")
            raise
        except Exception as e:  # noqa: BLE001 - every failure is recorded, then re-raised
            _mark_failed(rd, f"{type(e).__name__}: {e}")
            raise
    finally:
        lock.release()


def _rmdir_if_empty(path: Path) -> None:
    try:
        path.rmdir()
    except OSError:
        pass


def _read_run_dir(rd: RunDir, resolved: dict) -> tuple[dict | None, dict | None, dict | None]:
    """(config.json, status.json, the checkpoint to resume from) of `rd`, each checked;
    raises RunDirConflict or CorruptFile. A done run's checkpoint is not loaded."""
    existing = rd.read_config()
    if existing is not None and not _same_run(existing, resolved):
        diff = sorted(k for k in resolved if existing.get(k) != resolved[k])
        if "config" in diff:
            old = existing.get("config") if isinstance(existing.get("config"), dict) else {}
            diff = [f"config.{k}" for k in sorted(set(old) | set(resolved["config"]))
                    if old.get(k) != resolved["config"].get(k)]
        raise RunDirConflict(
            "out", f"{rd.path} holds a run of another config (differs in {', '.join(diff)}); "
            "choose another --out or delete that folder"
        )
    status = rd.read_status()
    if existing is None:
        return None, status, None
    if status and status.get("state") == "done":
        return existing, status, None
    rows = rd.read_metrics(strict=True)
    ckpt = load_checkpoint(rd) if rd.checkpoint_path.exists() else None
    if ckpt is not None and not any(r[0] == ckpt["step"] for r in rows):
        last = rows[-1][0] if rows else None
        raise CorruptFile(rd.metrics_path, f"has no row at step {ckpt['step']}, the checkpoint's "
                          f"step (its last row is at step {last})",
                          "every row up to the checkpoint's step (it was cut short or replaced); "
                          "restore it, or delete checkpoint.pt and metrics.csv to train the run "
                          "from step 0")
    return existing, status, ckpt


def load_checkpoint(rd: RunDir, map_location: str | torch.device = "cpu") -> dict:
    """`rd`'s checkpoint.pt, checked; CorruptFile naming what is wrong."""
    path = rd.checkpoint_path
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as e:  # noqa: BLE001 - truncated or not a torch file: say which file
        raise CorruptFile(path, f"cannot be loaded ({type(e).__name__}: {e})", CHECKPOINT_EXPECTED) from None
    if not isinstance(ckpt, dict) or ckpt.get("version") != CHECKPOINT_VERSION:
        got = ckpt.get("version") if isinstance(ckpt, dict) else type(ckpt).__name__
        raise CorruptFile(path, f"is not a version-{CHECKPOINT_VERSION} checkpoint (got {got!r})",
                          CHECKPOINT_EXPECTED)
    missing = [k for k in ("step", "wall_time", "evals_done", "learner", "rng") if k not in ckpt]
    step = ckpt.get("step")
    if missing or isinstance(step, bool) or not isinstance(step, int) or not 0 < step:
        why = f"lacks {', '.join(missing)}" if missing else f"has step {step!r}"
        raise CorruptFile(path, why, CHECKPOINT_EXPECTED)
    return ckpt


def _mark_failed(rd: RunDir, error: str) -> None:
    """Record the failure in status.json; where even that cannot be written (a full
    disk) the status keeps its last state, which resumes the same way."""
    try:
        if rd.config_path.exists():
            st = rd.read_status() or {}
            rd.write_status("failed", int(st.get("step", 0)), error, st.get("resumed_at", []))
    except (OSError, CorruptFile):
        pass


def _close_all(closers, raise_error: bool) -> None:
    """Call every closer even if one raises; then raise the first error if `raise_error`."""
    first = None
    for close in closers:
        try:
            close()
        except Exception as e:  # noqa: BLE001
            first = first or e
    if first is not None and raise_error:
        raise first


def _train(spec: RunSpec, resolved: dict, rd: RunDir, fresh: bool, ckpt: dict | None,
           progress: bool, resumed_at: list[int], views_kw: dict | None = None) -> dict:
    mod = algo_module(spec.algo)
    run_cfg, algo_cfg = configs(mod, resolved)
    torch.set_num_threads(run_cfg.torch_threads)
    keep_freed_memory()
    device = pick_device(run_cfg.device)
    seed, budget = spec.seed, spec.steps

    if fresh:
        rd.write_config({**resolved, "sweep": spec.sweep, "provenance": provenance()})
    step = int(ckpt["step"]) if ckpt else 0
    rd.truncate_metrics(step if ckpt else -1)
    rd.write_status("running", step, resumed_at=resumed_at)

    random.seed(seed + step)
    np.random.seed((seed + step) % 2**32)
    torch.manual_seed(seed + step)
    envs = suites.make(spec.env, run_cfg.num_envs, seed, vectorization=run_cfg.vectorization)
    eval_envs = make_eval_envs(spec.env, run_cfg.eval_episodes, seed, run_cfg.vectorization)
    env_spec = EnvSpec.from_vector_env(envs)
    learner = mod.Learner(algo_cfg, env_spec, run_cfg.num_envs, budget, device)
    wall0, evals_done = 0.0, 0
    if ckpt:
        # checked on the CPU; the learner's tensors go where torch.load maps them, the RNG
        # state stays on the CPU (torch.set_rng_state takes nothing else)
        learner.load_state_dict(ckpt["learner"] if device.type == "cpu" else torch.load(
            rd.checkpoint_path, map_location=device, weights_only=False)["learner"])
        torch.set_rng_state(ckpt["rng"]["torch"])
        np.random.set_state(ckpt["rng"]["numpy"])
        wall0, evals_done = float(ckpt["wall_time"]), int(ckpt["evals_done"])
    # A resumed run restarts its envs with a seed of its own, not the first episodes again.
    collector = Collector(envs, env_spec, algo_cfg.rollout_length, seed=seed + 7919 * step)
    per_iter = algo_cfg.rollout_length * run_cfg.num_envs

    writer = rd.open_metrics()
    closers = [writer.close, envs.close, eval_envs.close]
    try:
        # the first step this process writes: TensorBoard hides what a killed one wrote from there
        views = tracking.open_trackers(rd.path, resolved, spec.sweep,
                                       purge_step=step + 1 if ckpt else 0, **(views_kw or {}))
    except BaseException:
        _close_all(closers, raise_error=False)
        raise
    closers += views.closers()
    t_start = time.perf_counter()
    wall = lambda: wall0 + time.perf_counter() - t_start  # noqa: E731
    last_eval_step = step if ckpt and ckpt.get("evaluated_at_step") else -1
    last_eval_return = ckpt.get("last_eval_return", float("nan")) if ckpt else float("nan")
    next_eval = _next_multiple(step, run_cfg.eval_every)
    next_ckpt = _next_multiple(step, run_cfg.checkpoint_every)

    bar = _progress_bar(progress, budget, step, resolved)
    recent_returns: collections.deque[float] = collections.deque(maxlen=RETURN_WINDOW)
    log_t, log_step = time.perf_counter(), step
    finished = False
    try:
        while step < budget:
            batch = collector.collect(learner)
            step += per_iter
            learner.observe(batch)
            updates: list[dict] = []
            while learner.ready():
                updates.append(learner.update())
            n_updates = len(updates)
            stats = mean_stats(updates)
            _check_finite(stats, learner, step)
            episodes = collector.pop_episodes()
            if episodes:
                recent_returns.extend(r for r, _ in episodes)
                stats["train/episode_return"] = float(np.mean([r for r, _ in episodes]))
                stats["train/episode_length"] = float(np.mean([n for _, n in episodes]))
                stats["train/episodes"] = float(len(episodes))
            now = time.perf_counter()
            stats["time/sps"] = (step - log_step) / max(now - log_t, 1e-9)
            stats["time/updates"] = float(n_updates)
            log_t, log_step = now, step
            writer.write(step, stats, wall())
            views.write(step, stats)

            done = step >= budget
            if (next_eval is not None and step >= next_eval) or done:
                returns = evaluate(learner, eval_envs, run_cfg.eval_episodes,
                                   seed=eval_seed(seed, evals_done), spec=env_spec)
                evals_done += 1
                last_eval_return = float(np.mean(returns))
                row = {"eval/return": last_eval_return, "eval/return_std": float(np.std(returns)),
                       "eval/episodes": float(len(returns))}
                writer.write(step, row, wall())
                views.write(step, row)
                last_eval_step = step
                next_eval = _next_multiple(step, run_cfg.eval_every)
            if (next_ckpt is not None and step >= next_ckpt) or done:
                _save(rd, learner, step, wall(), evals_done, last_eval_step == step, last_eval_return)
                next_ckpt = _next_multiple(step, run_cfg.checkpoint_every)
                rd.write_status("running", step, resumed_at=resumed_at)
                views.flush()
            if bar is not None:
                bar.set_postfix_str(console_line(stats["time/sps"], recent_returns,
                                                 last_eval_return), refresh=False)
                bar.update(per_iter)
        finished = True
    finally:
        # every one closed; a close error is raised only if nothing else is in flight
        _close_all(closers + ([bar.close] if bar else []), raise_error=finished)
    rd.write_status("done", step, resumed_at=resumed_at)
    return rd.read_status()


def console_line(sps: float, recent_returns, last_eval_return: float) -> str:
    """The progress bar's postfix: steps/s, the mean training episode return over the
    last RETURN_WINDOW episodes (`ret`, "-" before the first episode ends) and the last
    evaluation return (`eval`, nan before the first)."""
    ret = f"{float(np.mean(recent_returns)):.1f}" if recent_returns else "-"
    return f"sps={sps:.0f} ret={ret} eval={last_eval_return:.1f}"


def mean_stats(updates: list[dict[str, Any]]) -> dict[str, float]:
    """The mean of each stat over a rollout's updates, as floats. A learner may return
    0-dim tensors (MPO does, on its device, so that a GPU never waits for the host
    between updates): they are averaged where they are and read in one transfer."""
    keys = list(dict.fromkeys(k for u in updates for k in u))
    cols = {k: [u[k] for u in updates if k in u] for k in keys}
    lazy = [k for k in keys if torch.is_tensor(cols[k][0])]
    out = {k: float(sum(cols[k]) / len(cols[k])) for k in keys if k not in lazy}
    if lazy:
        dev = cols[lazy[0]][0].device
        means = torch.stack([
            torch.stack([torch.as_tensor(v, dtype=torch.float32, device=dev).reshape(()) for v in cols[k]]).mean()
            for k in lazy])
        out.update(zip(lazy, means.tolist()))
    return {k: out[k] for k in keys}


def _next_multiple(step: int, every: int) -> int | None:
    """The first multiple of `every` above `step`, or None when `every` is 0 (end only)."""
    return None if every <= 0 else (step // every + 1) * every


def _check_finite(stats: dict[str, float], learner, step: int) -> None:
    name = first_non_finite(stats)
    if name is not None:
        raise DivergenceError(f"{name} is {stats[name]} at step {step}")
    params = list(learner.named_parameters())
    if not params:
        return
    # one flag per parameter, read back together: one device synchronisation, not one each
    finite = torch.stack([torch.isfinite(p.detach()).all() for _, p in params]).tolist()
    for (pname, _), ok in zip(params, finite):
        if not ok:
            raise DivergenceError(f"parameter {pname} is not finite at step {step}")


def _save(rd: RunDir, learner, step: int, wall: float, evals_done: int, evaluated: bool,
          last_eval_return: float) -> None:
    atomic_torch_save({
        "version": CHECKPOINT_VERSION,
        "step": step,
        "wall_time": wall,
        "evals_done": evals_done,
        "evaluated_at_step": evaluated,
        "last_eval_return": last_eval_return,
        "learner": learner.state_dict(),
        "rng": {"torch": torch.get_rng_state(), "numpy": np.random.get_state()},
    }, rd.checkpoint_path)


def _progress_bar(progress: bool, budget: int, step: int, resolved: dict):
    if not progress:
        return None
    from tqdm import tqdm

    return tqdm(total=budget, initial=step, unit="step", unit_scale=True, dynamic_ncols=True,
                desc=f"{resolved['variant']} {resolved['env']} s{resolved['seed']}",
                file=sys.stderr, mininterval=1.0)


# -- command line -----------------------------------------------------------------


def parse_sets(items: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError("--set", f"expected key=value, got {item!r}")
        out[key.strip()] = value.strip()
    return out


def config_help(algo: str | None) -> str:
    """The fields `--help` lists: those of `algo`'s Config and of RunConfig, each with its
    type, default, suite defaults (the algorithm's SUITE_DEFAULTS) and one-line doc; without
    an algorithm, the algorithms and how to see their fields."""
    if algo is None:
        return (f"algorithms: {', '.join(ALGOS)}. Pass --algo NAME with --help to list every "
                "field of that algorithm's config and of the run (defaults, suite defaults, "
                "docs), e.g. python -m algos.train --algo vmpo --help")
    if algo not in ALGOS:
        return f"unknown --algo {algo!r}; valid: {', '.join(ALGOS)}"
    cls = algo_module(algo).Config
    table = getattr(cls, "SUITE_DEFAULTS", {})
    head = ("Every field below is set with --set KEY=VALUE (values read as YAML: 3e-4, true, "
            "null, [64, 64]). \"suite defaults\" replace the default on that suite or env id "
            "(SUITE_DEFAULTS, the env id's entry winning); --set wins over both. "
            "--print-config shows the result for an env.")
    return "\n\n".join([
        textwrap.fill(head, 100),
        format_fields(f"{algo} config ({cls.__module__}.Config):", describe_fields(cls)),
        format_fields("run config (algos.config.RunConfig):", describe_fields(RunConfig, table)),
    ])


def print_config(spec: RunSpec, with_steps: bool, out=None) -> None:
    """The resolved config of `spec` as a sweep spec's `runs.<variant>` entry, in YAML:
    every field of the algorithm's Config and of RunConfig with the suite's and env's
    defaults and the overrides applied (and `steps` where `with_steps`)."""
    out = out or sys.stdout
    resolved = resolve(spec, from_strings=True)
    entry = {"algo": spec.algo, **({"steps": spec.steps} if with_steps else {}),
             **resolved["config"]}
    budget = f", {spec.steps} steps" if with_steps else ""
    name = resolved["variant"] + ("" if resolved["variant"] == spec.algo else f" ({spec.algo})")
    out.write(f"# {name} on {spec.env} (suite {resolved['suite']}), "
              f"seed {spec.seed}{budget}: run_id {resolved['run_id']}\n"
              "# resolved: the defaults of the config classes, then SUITE_DEFAULTS of the suite "
              "and of the env id, then --set\n"
              "# a sweep spec's `runs:` entry (sweeps/spec.py); the spec's envs, seeds and "
              "budgets give the env, seed and budget\n")
    out.write(to_yaml({"runs": {resolved["variant"]: entry}}))


def _parser(epilog: str | None) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m algos.train", description=__doc__.split("\n\n")[0],
        epilog=epilog, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--algo", required=True, help=f"one of {', '.join(ALGOS)}; with --help: "
                                                  "list its config fields")
    p.add_argument("--env", required=True, help="env id (e.g. CartPole-v1, HalfCheetah-v5, ALE/Pong-v5)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, help="budget in agent env steps (required to train)")
    p.add_argument("--out", help="run directory, resumed if it holds this run (required to train)")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                   help="override a field of the algorithm's config or of the run (listed "
                        "below with --algo)")
    p.add_argument("--variant", default=None, help="name reports show (default: the algorithm)")
    p.add_argument("--sweep", default=None)
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--print-config", action="store_true",
                   help="print the resolved config as YAML for a sweep spec's runs.<variant> "
                        "and exit, training and writing nothing")
    p.add_argument("--track", action="store_true",
                   help=f"also log to Weights & Biases (needs `{tracking.WANDB_HINT}`; offline "
                        f"without credentials; also {tracking.TRACK_ENV}=wandb); not part "
                        "of the config: run ids do not change")
    p.add_argument("--wandb-project", default=None, help="W&B project (default: WANDB_PROJECT "
                                                          "or vmpo-bench)")
    p.add_argument("--wandb-entity", default=None, help="W&B entity (default: WANDB_ENTITY)")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    pre = argparse.ArgumentParser(add_help=False)  # --help's field list needs --algo first
    pre.add_argument("--algo", default=None)
    pre.add_argument("-h", "--help", action="store_true")
    first = pre.parse_known_args(argv)[0]
    p = _parser(config_help(first.algo) if first.help else None)
    args = p.parse_args(argv)
    if not args.print_config:
        missing = [f"--{k}" for k in ("steps", "out") if getattr(args, k) is None]
        if missing:
            p.error(f"the following arguments are required: {', '.join(missing)}")
    try:
        spec = RunSpec(args.algo, args.env, args.seed, 1 if args.steps is None else args.steps,
                       parse_sets(args.sets), args.variant, args.sweep)
        if args.print_config:
            print_config(spec, with_steps=args.steps is not None)
            return 0
        resolve(spec, from_strings=True)  # every usage error before anything is written
        track = "wandb" if args.track else tracking.tracker_from_env()
        if track == "wandb":
            tracking.require_wandb()
    except (ConfigError, suites.UnknownEnvError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    try:
        status = run(spec, args.out, progress=not args.no_progress, from_strings=True,
                     track=track or "", wandb_project=args.wandb_project,
                     wandb_entity=args.wandb_entity)
    except ConfigError as e:  # the run directory: another run's, or not a writable folder
        print(f"error: {e}", file=sys.stderr)
        return 2
    except CorruptFile as e:
        print(f"error: {e}\nnothing was written; the run was not started", file=sys.stderr)
        return 2
    except RunBusy as e:
        print(f"error: {e}; nothing was written", file=sys.stderr)
        return 3
    except DivergenceError as e:
        print(f"run failed: {e}", file=sys.stderr)
        return 1
    except OSError as e:  # a full disk, say: the checkpoint is written atomically, so intact
        ckpt_step = _checkpoint_step(Path(args.out))
        where = (f"its last checkpoint (step {ckpt_step}) is intact" if ckpt_step
                 else "it had no checkpoint yet")
        print(f"run failed: {type(e).__name__}: {e}\n{where}; run the same command again to "
              "resume once the problem is fixed", file=sys.stderr)
        return 1
    print(f"{status['state']} at step {status['step']}: {args.out}")
    return 0 if status["state"] == "done" else 1


def _checkpoint_step(out: Path) -> int | None:
    try:
        return load_checkpoint(RunDir(out))["step"]
    except (CorruptFile, OSError):
        return None


if __name__ == "__main__":
    sys.exit(main())
