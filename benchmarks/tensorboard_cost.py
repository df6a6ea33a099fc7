"""What TensorBoard writing costs a run: per metrics row, and in steps/s of short runs.

    python benchmarks/tensorboard_cost.py [--reps 5] [--steps 20000] [--algos vmpo,ppo,mpo]

Per row: `algos.tracking.TensorBoardLog.write` of the rows a real run logs (one dict of
every metric of a step), the process's CPU time over many rows and the close. Per run: the same run (CartPole-v1 for
the on-policy learners, Pendulum-v1 for MPO, whose rows are the most frequent per step)
with TensorBoard on and off (VMPO_BENCH_TENSORBOARD=0), alternated, `--reps` pairs;
steps/s = steps / the wall time metrics.csv records at its last row, and steps per CPU
second of the process (the whole run() call, TensorBoard's writer thread included).
Prints medians and the median of the paired ratios (on/off): other processes on the
machine move both runs of a pair alike, CPU time less than wall time.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from algos import tracking  # noqa: E402
from algos.results import RunDir  # noqa: E402
from algos.train import RunSpec, run  # noqa: E402

ENVS = {"mpo": "Pendulum-v1"}


def rows_of(run_dir: Path) -> list[tuple[int, dict[str, float]]]:
    by_step: dict[int, dict[str, float]] = defaultdict(dict)
    for step, metric, value, _ in RunDir(run_dir).read_metrics():
        by_step[step][metric] = value
    return sorted(by_step.items())


def train_sps(algo: str, steps: int, tensorboard: bool, folder: Path) -> tuple[float, float, int]:
    """(steps per wall second, steps per CPU second of the process, logged steps)."""
    os.environ[tracking.TENSORBOARD_ENV] = "1" if tensorboard else "0"
    out = folder / f"{algo}-{'tb' if tensorboard else 'off'}-{time.perf_counter_ns()}"
    cpu = time.process_time()
    run(RunSpec(algo, ENVS.get(algo, "CartPole-v1"), 0, steps, {"checkpoint_every": 0}), out)
    cpu = time.process_time() - cpu
    rows = RunDir(out).read_metrics()
    return rows[-1][0] / rows[-1][3], rows[-1][0] / cpu, len({r[0] for r in rows})


def per_row_us(rows: list[tuple[int, dict[str, float]]], folder: Path, repeat: int = 20) -> float:
    """CPU time of the process per row, the writer thread's included (it computes each
    record's CRC in pure Python, most of the cost), until the file is closed."""
    log = tracking.TensorBoardLog(folder / "bench", purge_step=0)
    t0 = time.process_time()
    n = 0
    for k in range(repeat):
        for step, metrics in rows:
            log.write(step + k * 10**9, metrics)
            n += 1
    log.close()
    return (time.process_time() - t0) / n * 1e6


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--steps", type=int, default=20_000)
    p.add_argument("--algos", default="vmpo,ppo,mpo")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for algo in args.algos.split(","):
            steps = args.steps if algo != "mpo" else min(args.steps, 2000)
            on, off, off_cpu, ratios, cpu_ratios, n_rows = [], [], [], [], [], 0
            for _ in range(args.reps):
                a, a_cpu, n_rows = train_sps(algo, steps, True, folder)
                b, b_cpu, _ = train_sps(algo, steps, False, folder)
                on.append(a)
                off.append(b)
                off_cpu.append(b_cpu)
                ratios.append(a / b)
                cpu_ratios.append(a_cpu / b_cpu)
            ref = next(d for d in folder.iterdir() if d.name.startswith(f"{algo}-tb"))
            rows = rows_of(ref)
            width = statistics.median(len(m) for _, m in rows)
            us = per_row_us(rows, folder / algo)
            print(f"{algo} on {ENVS.get(algo, 'CartPole-v1')}, {steps} steps, {n_rows} logged steps: "
                  f"steps/s with TensorBoard {statistics.median(on):,.0f}, without "
                  f"{statistics.median(off):,.0f} (medians of {args.reps}); median paired ratio "
                  f"{statistics.median(ratios):.3f} [{min(ratios):.3f}, {max(ratios):.3f}], "
                  f"per CPU second {statistics.median(cpu_ratios):.3f} "
                  f"[{min(cpu_ratios):.3f}, {max(cpu_ratios):.3f}]; "
                  f"per row ({width:.0f} metrics) {us:.0f} us of CPU; rows x per-row cost = "
                  f"{n_rows * us / 1e6 / (steps / statistics.median(off_cpu)) * 100:.2f}% of the "
                  "run's CPU time without TensorBoard")


if __name__ == "__main__":
    main()
