"""Training throughput against the raw env, measured in one run.

    python benchmarks/throughput.py [--env HalfCheetah-v5] [--algos ppo,vmpo,trpo,mpo]
                                    [--steps 20480] [--repeats 3]

For each algorithm: trains `--steps` env steps with its MuJoCo defaults on ONE env
(PPO: 2048-step rollouts, minibatch 64, 10 epochs = Stable-Baselines3's defaults) and
takes the median of the per-rollout `time/sps` rows (evaluation excluded). Between
algorithm runs it measures the raw single-env random-action rate of the same env
(`gym.make`, actions drawn beforehand, auto-reset on episode end). Prints medians over
`--repeats` and the ratio train/env. Peer figure (issue 2, measured on these machines):
SB3 PPO 942 steps/s with the env at ~13,000 steps/s (ratio 0.072); target ratio >= 0.35.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from algos.results import RunDir  # noqa: E402
from algos.train import ALGOS, RunSpec, run  # noqa: E402


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


def train_rate(algo: str, env_id: str, steps: int, seed: int) -> float:
    with tempfile.TemporaryDirectory() as d:
        run(RunSpec(algo, env_id, seed, steps,
                    {"num_envs": 1, "eval_every": 0, "eval_episodes": 1, "checkpoint_every": 0}), d)
        rows = [(s, v) for s, m, v, _ in RunDir(Path(d)).read_metrics() if m == "time/sps"]
    # the first rollout includes start-up (imports, first allocations): drop it
    rates = [v for _, v in rows[1:]] or [v for _, v in rows]
    return statistics.median(rates)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--env", default="HalfCheetah-v5")
    p.add_argument("--algos", default=",".join(ALGOS))
    p.add_argument("--steps", type=int, default=20_480)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args(argv)
    algos = [a for a in args.algos.split(",") if a]
    unknown = [a for a in algos if a not in ALGOS]
    if unknown:
        print(f"error: --algos: unknown {unknown}; valid: {', '.join(ALGOS)}", file=sys.stderr)
        return 2
    env_rates: list[float] = []
    train: dict[str, list[float]] = {a: [] for a in algos}
    for rep in range(args.repeats):
        for algo in algos:
            env_rates.append(env_rate(args.env, seed=rep))
            train[algo].append(train_rate(algo, args.env, args.steps, seed=rep))
    env_med = statistics.median(env_rates)
    print(f"env {args.env}: raw single-env random-action rate, median of {len(env_rates)}: "
          f"{env_med:,.0f} steps/s")
    print(f"{'algo':<6} {'train steps/s (median)':>24} {'runs':>5} {'train/env':>10}")
    for algo in algos:
        med = statistics.median(train[algo])
        print(f"{algo:<6} {med:>24,.0f} {len(train[algo]):>5} {med / env_med:>10.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
