"""Training throughput against the raw env, measured in one run; optionally the peers too.

    python benchmarks/throughput.py [--env HalfCheetah-v5] [--algos ppo,vmpo,trpo,mpo]
                                    [--steps 20480] [--repeats 3] [--peers [sb3-ppo,sb3-trpo]]
                                    [--device cpu|cuda] [--set KEY=VALUE ...]

For each algorithm: trains `--steps` env steps with its MuJoCo defaults on ONE env
(PPO: 2048-step rollouts, minibatch 64, 10 epochs = Stable-Baselines3's defaults) and
takes the median of the per-rollout `time/sps` rows (one iteration: collect + update;
the first, which holds the start-up, is dropped; evaluation excluded). "whole" is the
run's steps over the wall time of its training loop (model construction and the final
evaluation excluded). Between runs it measures the raw single-env random-action rate of
the same env (`gym.make`, actions drawn beforehand, auto-reset on episode end). Prints
medians over `--repeats` and the ratios train/env.

`--peers` also measures, interleaved with ours in each repeat (each peer right after the
algorithm it matches), Stable-Baselines3 PPO (`PPO("MlpPolicy", env)`: n_steps 2048,
batch 64, 10 epochs) and sb3-contrib TRPO (`TRPO("MlpPolicy", env)`), both with their
defaults, and SB3 SAC matched to MPO's defaults (`peer_kwargs`: one gradient step per 8
env steps, batch 256, 1,000 warm-up steps, a 64x64 policy and 256x256 twin Q-networks),
on one env (`gym.make(--env)`, which SB3 wraps in Monitor + DummyVecEnv),
on the `--device` ours learns on (default cpu; cuda: both learn on the GPU, the envs
step on the CPU), torch threads = RunConfig.torch_threads (1), as ours. A peer is timed over
`model.learn(total_timesteps=--steps)` (construction excluded): "whole" is its steps over
that wall time, and the per-iteration figure, from a callback that marks each rollout
start, is the same statistic as ours (median, first iteration dropped). It then prints
each algorithm's speed-up over its peer (ppo / sb3-ppo, trpo / sb3-trpo, mpo / sb3-sac) on both,
and, for MPO and SAC, what one update of each costs: its matrix-product FLOPs (torch's
FlopCounterMode around one MPO update, one SAC gradient step) and its median time (MPO:
100 updates of benchmarks/mpo_update.py, queued back to back on a GPU; SAC: 50 gradient
steps after each `learn`). `--set KEY=VALUE` overrides a field of our runs' configs as
`algos.train --set` does (e.g. `--set batch_size=512`); VMPO_MPO_CUDA_GRAPH=0 in the
environment takes MPO's eager update on a GPU (`algos.fast.cuda_graph.ENABLED`).

The project does not depend on SB3: the peers are imported only under `--peers`, and
are best installed in a venv of their own next to the project, with the same torch:

    python3 -m venv /tmp/sb3venv
    /tmp/sb3venv/bin/pip install torch==2.13.0   # the CPU wheel; never an unpinned torch
    /tmp/sb3venv/bin/pip install stable-baselines3 sb3-contrib "gymnasium[mujoco]==1.4.0" \
        mujoco==4.0.0 "pyyaml>=6" "tqdm>=4.60"
    /tmp/sb3venv/bin/pip install --no-deps -e .
    /tmp/sb3venv/bin/python benchmarks/throughput.py --algos ppo,trpo --peers

Earlier peer figure (issue 2, measured on these machines in separate runs): SB3 PPO
942 steps/s with the env at ~13,000 steps/s (ratio 0.072); target ratio >= 0.35.
Measured with this script on 2026-12-02 (`--peers --repeats 3`): ppo 11,255 steps/s,
0.405 of the env's 27,793, 6.87x SB3 PPO's 1,639 (figures in the README).
"""

from __future__ import annotations

import os

# numpy's BLAS: one thread, as every training run has (algos/__init__.py); set before numpy loads
for _var in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from algos.config import RunConfig  # noqa: E402
from algos.results import RunDir  # noqa: E402
from algos.config import ConfigError  # noqa: E402
from algos.train import ALGOS, RunSpec, parse_sets, resolve, run  # noqa: E402

# peer name -> (our algorithm it matches, module, class)
PEERS: dict[str, tuple[str, str, str]] = {
    "sb3-ppo": ("ppo", "stable_baselines3", "PPO"),
    "sb3-trpo": ("trpo", "sb3_contrib", "TRPO"),
    "sb3-sac": ("mpo", "stable_baselines3", "SAC"),
}


def peer_kwargs(peer: str) -> dict:
    """The peer's constructor arguments beyond its defaults. SAC is matched to MPO's
    MuJoCo defaults in what sets its cost: the update-to-data ratio (one gradient step per
    1 / replay_ratio env steps), the batch size, the replay warm-up, and the networks'
    sizes (policy torso `hidden`, Q-network `critic_hidden`; SB3's own activations, ReLU)."""
    if peer != "sb3-sac":
        return {}
    from algos.mpo import Config

    cfg = Config()
    every = round(1 / cfg.replay_ratio)
    if abs(every * cfg.replay_ratio - 1) > 1e-9:
        raise ValueError(f"MPO's replay_ratio {cfg.replay_ratio} is no 1/k: SAC cannot match it")
    return {"train_freq": every, "gradient_steps": 1, "batch_size": cfg.batch_size,
            "learning_starts": cfg.min_replay_size, "buffer_size": cfg.replay_capacity,
            "policy_kwargs": {"net_arch": {"pi": list(cfg.hidden), "qf": list(cfg.critic_hidden)}}}
PEER_HINT = ("the peers need stable-baselines3 and sb3-contrib, best in a venv of their own: "
             "see `python benchmarks/throughput.py --help`")
TORCH_THREADS = RunConfig().torch_threads
DEVICE = "cpu"  # --device: where ours and the peers learn
SETS: dict[str, str] = {}  # --set: overrides of our runs' configs, as algos.train reads them


def env_rate(env_id: str, steps: int = 20_000, seed: int = 0) -> float:
    import gymnasium as gym

    env = gym.make(env_id)
    env.reset(seed=seed)
    space = env.action_space
    rng = np.random.default_rng(seed)
    if hasattr(space, "n"):
        actions = rng.integers(0, space.n, size=steps)
    else:
        actions = rng.uniform(space.low, space.high, size=(steps, *space.shape)).astype(space.dtype)
    t = time.perf_counter()
    for i in range(steps):
        _, _, term, trunc, _ = env.step(actions[i])
        if term or trunc:
            env.reset()
    rate = steps / (time.perf_counter() - t)
    env.close()
    return rate


def _median_iter(rates: list[float]) -> float:
    # the first iteration includes start-up (imports, first allocations): drop it
    return statistics.median(rates[1:] or rates)


def run_spec(algo: str, env_id: str, steps: int, seed: int) -> RunSpec:
    """One of our runs as this benchmark trains it (one env, no evaluation but the last)."""
    return RunSpec(algo, env_id, seed, steps,
                   {"num_envs": 1, "eval_every": 0, "eval_episodes": 1, "checkpoint_every": 0,
                    "torch_threads": TORCH_THREADS, "device": DEVICE, **SETS})


def train_rate(algo: str, env_id: str, steps: int, seed: int) -> tuple[float, float]:
    """(median per-iteration steps/s, steps / training-loop wall time) of one of ours."""
    with tempfile.TemporaryDirectory() as d:
        run(run_spec(algo, env_id, steps, seed), d, from_strings=True)
        rows = [(s, v, w) for s, m, v, w in RunDir(Path(d)).read_metrics() if m == "time/sps"]
    # the wall column runs from the loop's start: the last row's is the loop's time
    last_step, _, last_wall = rows[-1]
    return _median_iter([v for _, v, _ in rows]), last_step / last_wall


def peer_class(peer: str):
    import importlib

    _, module, cls = PEERS[peer]
    return getattr(importlib.import_module(module), cls)


def peer_rate(peer: str, env_id: str, steps: int, seed: int) -> tuple[float, float]:
    """(median per-iteration steps/s, steps / `learn` wall time) of a peer with its defaults."""
    import gymnasium as gym
    import torch
    from stable_baselines3.common.callbacks import BaseCallback

    class Marks(BaseCallback):
        def __init__(self) -> None:
            super().__init__()
            self.marks: list[tuple[float, int]] = []

        def _on_rollout_start(self) -> None:
            self.marks.append((time.perf_counter(), self.model.num_timesteps))

        def _on_step(self) -> bool:
            return True

    torch.set_num_threads(TORCH_THREADS)
    env = gym.make(env_id)
    model = peer_class(peer)("MlpPolicy", env, seed=seed, device=DEVICE, verbose=0, **peer_kwargs(peer))
    cb = Marks()
    t = time.perf_counter()
    model.learn(total_timesteps=steps, callback=cb)
    end = time.perf_counter()
    done = model.num_timesteps
    if hasattr(model, "gradient_steps"):  # off-policy (SAC): what one gradient step costs
        UPDATE_COST.setdefault(peer, []).append(gradient_step_cost(model))
    env.close()
    marks = [*cb.marks, (end, done)]
    rates = [(s1 - s0) / (t1 - t0) for (t0, s0), (t1, s1) in zip(marks, marks[1:])]
    return _median_iter(rates), done / (end - t)


# off-policy peer -> (matrix-product FLOPs of one gradient step, its median seconds per
# repeat), filled by peer_rate
UPDATE_COST: dict[str, list[tuple[float, float]]] = {}


def gradient_step_cost(model, calls: int = 50) -> tuple[float, float]:
    """(matrix-product FLOPs, median seconds) of one gradient step of an SB3 off-policy
    model (its `train`, on batches from its replay, after `learn`): the FLOPs counted by
    torch's FlopCounterMode as benchmarks/mpo_update.update_flops counts MPO's, the time
    over `calls` steps, as benchmarks/mpo_update.py times MPO's update."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as fc:
        model.train(gradient_steps=1, batch_size=model.batch_size)
    times = []
    for _ in range(calls):
        t = time.perf_counter()
        model.train(gradient_steps=1, batch_size=model.batch_size)
        times.append(time.perf_counter() - t)
    return float(fc.get_total_flops()), statistics.median(times)


def _version(dist: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return "?"


def main(argv: list[str] | None = None) -> int:
    global TORCH_THREADS, DEVICE
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--env", default="HalfCheetah-v5")
    p.add_argument("--algos", default=",".join(ALGOS))
    p.add_argument("--steps", type=int, default=20_480)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=TORCH_THREADS,
                   help=f"torch threads of every run, ours and the peers' (default {TORCH_THREADS}, "
                        "RunConfig.torch_threads: what the training loop uses)")
    p.add_argument("--peers", nargs="?", const=",".join(PEERS), default="", metavar="LIST",
                   help=f"also measure these peers (bare: all of {', '.join(PEERS)}); "
                        "needs stable-baselines3 and sb3-contrib")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"),
                   help="where ours (RunConfig.device) and the peers learn (default cpu); the "
                        "envs step on the CPU either way")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a field of our runs' configs, as algos.train --set does "
                        "(e.g. batch_size=512); repeatable")
    args = p.parse_args(argv)
    DEVICE = args.device
    if args.threads < 1:
        print(f"error: --threads: expected a positive int, got {args.threads}", file=sys.stderr)
        return 2
    TORCH_THREADS = args.threads
    algos = [a for a in args.algos.split(",") if a]
    unknown = [a for a in algos if a not in ALGOS]
    if unknown:
        print(f"error: --algos: unknown {unknown}; valid: {', '.join(ALGOS)}", file=sys.stderr)
        return 2
    try:  # every override checked as algos.train checks it, before anything runs
        SETS.clear()
        SETS.update(parse_sets(args.set))
        for algo in algos:
            resolve(run_spec(algo, args.env, args.steps, 0), from_strings=True)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    peers = [q for q in args.peers.split(",") if q]
    unknown = [q for q in peers if q not in PEERS]
    if unknown:
        print(f"error: --peers: unknown {unknown}; valid: {', '.join(PEERS)}", file=sys.stderr)
        return 2
    for q in peers:
        try:
            peer_class(q)
        except ImportError as e:
            print(f"error: --peers: {q}: {e}; {PEER_HINT}", file=sys.stderr)
            return 2

    # each peer runs right after the algorithm it matches; unmatched peers last
    order: list[str] = []
    for algo in algos:
        order += [algo, *(q for q in peers if PEERS[q][0] == algo)]
    order += [q for q in peers if q not in order]

    env_rates: list[float] = []
    per_iter: dict[str, list[float]] = {n: [] for n in order}
    whole: dict[str, list[float]] = {n: [] for n in order}
    for rep in range(args.repeats):
        for name in order:
            env_rates.append(env_rate(args.env, seed=rep))
            measure = peer_rate if name in PEERS else train_rate
            it, wh = measure(name, args.env, args.steps, seed=rep)
            per_iter[name].append(it)
            whole[name].append(wh)
            print(f"[repeat {rep + 1}/{args.repeats}] {name}: {it:,.0f} steps/s per iteration, "
                  f"{wh:,.0f} whole (env {env_rates[-1]:,.0f})", file=sys.stderr, flush=True)

    import torch

    env_med = statistics.median(env_rates)
    versions = f"torch {torch.__version__}"
    if peers:
        versions += (f", stable-baselines3 {_version('stable-baselines3')}, "
                     f"sb3-contrib {_version('sb3-contrib')}")
    where = "cpu" if DEVICE == "cpu" else f"{DEVICE} ({torch.cuda.get_device_name()})"
    print(f"{args.steps} steps per run, one env, {args.repeats} repeats, torch threads "
          f"{TORCH_THREADS} for every run, learning on {where}; {versions}")
    print(f"env {args.env}: raw single-env random-action rate, median of {len(env_rates)}: "
          f"{env_med:,.0f} steps/s")
    print(f"{'algo':<9} {'train steps/s (median)':>23} {'whole steps/s':>14} {'runs':>5} "
          f"{'train/env':>10} {'whole/env':>10}")
    med_it = {n: statistics.median(per_iter[n]) for n in order}
    med_wh = {n: statistics.median(whole[n]) for n in order}
    for n in order:
        print(f"{n:<9} {med_it[n]:>23,.0f} {med_wh[n]:>14,.0f} {len(per_iter[n]):>5} "
              f"{med_it[n] / env_med:>10.3f} {med_wh[n] / env_med:>10.3f}")
    pairs = [(PEERS[q][0], q) for q in peers if PEERS[q][0] in algos]
    if pairs:
        for q in peers:
            if peer_kwargs(q):
                print(f"{q} settings: {peer_kwargs(q)}")
        print("speed-up over the peer (train median; whole): " + ", ".join(
            f"{a} / {q} {med_it[a] / med_it[q]:.2f}x ({med_wh[a] / med_wh[q]:.2f}x)"
            for a, q in pairs))
        for a, q in pairs:
            if a == "mpo" and q in UPDATE_COST:
                sys.path.insert(0, str(Path(__file__).parent))
                from mpo_update import measure, pipelined, update_flops

                flops, secs = UPDATE_COST[q][0][0], statistics.median(t for _, t in UPDATE_COST[q])
                ours = update_flops()["total"]
                ours_ms = measure(100)["total"] if DEVICE == "cpu" else pipelined(100)
                print(f"one update (one MPO update; one {q} gradient step, medians): "
                      f"mpo {ours / 1e9:.3f} GFLOP of matrix products in {ours_ms:.2f} ms "
                      f"({ours / ours_ms / 1e6:.0f} GFLOP/s), {q} {flops / 1e9:.3f} GFLOP in "
                      f"{1e3 * secs:.2f} ms ({flops / secs / 1e9:.0f} GFLOP/s); "
                      f"mpo computes {ours / flops:.2f}x as much")
    return 0


if __name__ == "__main__":
    sys.exit(main())
