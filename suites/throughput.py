"""How much `suites.make`'s vector env costs over a raw env, and the Atari frame cap.

    python -m suites.throughput [--steps 20000] [--repeats 3] [--atari] [--check-cap]

Random actions (drawn beforehand from a seeded generator, so sampling is not timed);
steps/s are env steps (agent steps over all sub-envs), median over the repeats (the
settings interleaved within each repeat), one process. Two rates: by wall-clock time,
and by this process's CPU time (less sensitive to other processes' load; meaningless
for "async", whose workers are other processes, and a sum over threads for
AtariVectorEnv). Rows:

- raw: `gym.make(env_id)`, `step` with a Python-side reset when an episode ends;
- make xN: `suites.make(env_id, N, seed=0)` (autoreset inside the vector env);
- astype: the cost of casting a batch of MuJoCo observations (float64) to float32, the
  one cast the collector does per step.

--atari adds Pong with 8 envs on each vectorization. --check-cap plays Montezuma's
Revenge with NOOP until the episode ends, on both Atari paths, and prints the agent step
and emulator frame at which it was truncated (108,000-frame cap = 27,000 agent steps).
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

import suites
from suites.envs import MAKE_KWARGS


def _actions(space, n: int, seed: int) -> np.ndarray:
    space.seed(seed)
    return np.stack([space.sample() for _ in range(n)])


def raw_sps(env_id: str, steps: int) -> tuple[float, float]:
    import gymnasium as gym

    if suites.suite_of(env_id) == "mujoco":
        from suites.envs import require_mujoco

        require_mujoco()
    env = gym.make(env_id, **MAKE_KWARGS.get(env_id, {}))
    acts = _actions(env.action_space, steps, 0)
    env.reset(seed=0)
    step, reset = env.step, env.reset
    t, c = time.perf_counter(), time.process_time()
    for a in acts:
        _, _, term, trunc, _ = step(a)
        if term or trunc:
            reset()
    dt, dc = time.perf_counter() - t, time.process_time() - c
    env.close()
    return steps / dt, steps / dc


def vector_sps(env_id: str, num_envs: int, steps: int,
               vectorization: str = "auto") -> tuple[float, float]:
    envs = suites.make(env_id, num_envs, 0, vectorization=vectorization)
    n = max(1, steps // num_envs)
    acts = _actions(envs.action_space, n, 0)
    envs.reset(seed=0)
    step = envs.step
    t, c = time.perf_counter(), time.process_time()
    for a in acts:
        step(a)
    dt, dc = time.perf_counter() - t, time.process_time() - c
    envs.close()
    return n * num_envs / dt, n * num_envs / dc


def astype_us(shape=(8, 17), n: int = 100_000) -> float:
    x = np.random.default_rng(0).standard_normal(shape)
    t = time.perf_counter()
    for _ in range(n):
        x.astype(np.float32)
    return (time.perf_counter() - t) / n * 1e6


def check_cap(vectorization: str, env_id: str = "ALE/MontezumaRevenge-v5") -> tuple[int, int, bool]:
    """(agent steps, episode frame number, truncated) when a NOOP-only episode ends."""
    envs = suites.make(env_id, 1, 0, vectorization=vectorization)
    envs.reset(seed=0)
    noop = np.zeros(1, dtype=np.int64)
    for t in range(1, 40_000):
        _, _, term, trunc, info = envs.step(noop)
        if term[0] or trunc[0]:
            envs.close()
            return t, int(info["episode_frame_number"][0]), bool(trunc[0])
    raise RuntimeError("no episode end within 40,000 agent steps")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=20_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--atari", action="store_true")
    ap.add_argument("--check-cap", action="store_true")
    args = ap.parse_args(argv)
    # Settings are interleaved within each repeat, so that load from other processes
    # falls on all of them alike; the median over repeats is printed.
    settings = []
    for env_id in ("CartPole-v1", "HalfCheetah-v5"):
        settings.append((env_id, "raw gym.make", raw_sps, (env_id, args.steps)))
        for n in (1, 8):
            settings.append((env_id, f"make x{n} (sync)", vector_sps, (env_id, n, args.steps)))
    if args.atari:
        for v in ("auto", "sync", "async"):
            settings.append(("ALE/Pong-v5", f"make x8 ({v})", vector_sps,
                             ("ALE/Pong-v5", 8, args.steps // 4, v)))
    runs: list[list[tuple[float, float]]] = [[] for _ in settings]
    for _ in range(args.repeats):
        for i, (_, _, f, a) in enumerate(settings):
            runs[i].append(f(*a))
    print("env,setting,steps_per_s_wall,steps_per_s_cpu")
    for (env_id, name, _, _), r in zip(settings, runs):
        wall = statistics.median(x[0] for x in r)
        cpu = statistics.median(x[1] for x in r)
        print(f"{env_id},{name},{wall:.0f},{cpu:.0f}")
    print(f"astype float64->float32 [8,17]: {astype_us():.2f} us per call")
    if args.check_cap:
        for v in ("auto", "sync"):
            steps, frame, trunc = check_cap(v)
            print(f"cap check ({v}): episode ended at agent step {steps}, episode frame "
                  f"{frame}, truncated={trunc}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
