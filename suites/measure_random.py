"""Measure the mean return of a uniform random policy; prints CSV.

    python -m suites.measure_random [--episodes 100] [--seed 0] [ENV_OR_SUITE ...] \
        > suites/data/random_returns.csv

Default: every env of the classic and mujoco suites; `minatar` (or a MinAtar id) measures
MinAtar's games. This is how the `random` column of `suites/data/random_returns.csv` (the
lower end of the classic/MuJoCo/MinAtar normalisation) was made; Atari's random scores
come from DQN Zoo's table instead.

Protocol, fixed so that a rerun gives the same numbers on the same versions:
- one env as `suites.envs.make_env` builds it: `gym.make(env_id)` with the registry's
  defaults (its time limit included) and `suites.envs.MAKE_KWARGS` (MinAtar: minatar's
  own defaults, sticky actions p = 0.1 and difficulty ramping, and the 108,000-step cap);
- episode i (i = 0..episodes-1) starts with `env.reset(seed=seed + i)` and draws its
  actions from `env.action_space.sample()` after `env.action_space.seed(seed + i)`
  (uniform over the Discrete set or the Box bounds);
- an episode runs until terminated or truncated; its return is the undiscounted sum of
  rewards. Printed: mean, standard deviation (ddof=1), standard error of the mean,
  mean episode length, the date, the seeds and the package versions.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import sys
from importlib import metadata

import numpy as np

from suites.envs import make_env
from suites.registry import CLASSIC, MUJOCO, resolve, suite_of

COLUMNS = ("env_id", "random", "std", "sem", "episodes", "seeds", "mean_length", "date",
           "versions", "source")
SOURCE = ("measured: python -m suites.measure_random; uniform random actions "
          "(action_space.sample()), mean undiscounted return over the episodes, "
          "registry time limit")


def random_returns(env_id: str, episodes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Returns and lengths of `episodes` uniform-random episodes of `env_id` (see module doc)."""
    env = make_env(env_id)
    returns = np.empty(episodes)
    lengths = np.empty(episodes, dtype=np.int64)
    for i in range(episodes):
        env.reset(seed=seed + i)
        env.action_space.seed(seed + i)
        total, n, done = 0.0, 0, False
        while not done:
            _, r, terminated, truncated, _ = env.step(env.action_space.sample())
            total += float(r)
            n += 1
            done = terminated or truncated
        returns[i], lengths[i] = total, n
    env.close()
    return returns, lengths


def _versions(kind: str) -> str:
    names = ["gymnasium"] + ([kind] if kind in ("mujoco", "minatar") else [])
    return " ".join(f"{n}=={metadata.version(n)}" for n in names)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("envs", nargs="*",
                    help="env ids or suite names, e.g. minatar (default: classic, mujoco)")
    ap.add_argument("--episodes", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0, help="episode i is seeded with seed + i")
    args = ap.parse_args(argv)
    env_ids = [e for name in args.envs for e in resolve(name)] or [*CLASSIC, *MUJOCO]
    today = datetime.date.today().isoformat()
    out = csv.writer(sys.stdout, lineterminator="\n")
    out.writerow(COLUMNS)
    for env_id in env_ids:
        kind = suite_of(env_id)
        if kind == "atari":
            raise SystemExit(f"{env_id}: Atari's random scores come from DQN Zoo's table")
        ret, length = random_returns(env_id, args.episodes, args.seed)
        out.writerow([
            env_id, f"{ret.mean():.4f}", f"{ret.std(ddof=1):.4f}",
            f"{ret.std(ddof=1) / np.sqrt(len(ret)):.4f}", args.episodes,
            f"{args.seed}-{args.seed + args.episodes - 1}", f"{length.mean():.1f}", today,
            _versions(kind), SOURCE,
        ])
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
