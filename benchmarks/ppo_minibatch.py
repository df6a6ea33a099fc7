"""PPO's minibatch step through numpy (`NumpyActorCritic`) and through autograd, one run.

    python benchmarks/ppo_minibatch.py [--repeats 5] [--obs 17] [--act 6]

Times `Learner._epochs_numpy` and `Learner._epochs_torch` on the same synthetic
2048-sample rollout (HalfCheetah's shapes, the MuJoCo defaults: 10 epochs of 64-sample
minibatches, a 64x64 tanh actor-critic), alternating the two, one torch thread as the
training loop uses; prints the median time per minibatch of each and their ratio.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from algos import ppo  # noqa: E402
from algos.base import EnvSpec  # noqa: E402
from algos.config import RunConfig  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--obs", type=int, default=17)
    p.add_argument("--act", type=int, default=6)
    args = p.parse_args(argv)
    torch.set_num_threads(RunConfig().torch_threads)
    spec = EnvSpec((args.obs,), False, args.act, (-1.0,) * args.act, (1.0,) * args.act)
    cfg = ppo.Config()
    learner = ppo.Learner(cfg, spec, 1, 10**6, torch.device("cpu"))
    g = torch.Generator().manual_seed(0)
    n = cfg.rollout_length
    data = (torch.randn(n, args.obs, generator=g), torch.randn(n, args.act, generator=g),
            torch.randn(n, generator=g), torch.randn(n, generator=g), torch.randn(n, generator=g))
    steps = cfg.epochs * -(-n // cfg.minibatch_size)
    times: dict[str, list[float]] = {"numpy": [], "autograd": []}
    for _ in range(args.repeats):
        for name, epochs in (("numpy", learner._epochs_numpy), ("autograd", learner._epochs_torch)):
            t = time.perf_counter()
            epochs(*data)
            times[name].append((time.perf_counter() - t) / steps * 1e6)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"{steps} minibatch steps of {cfg.minibatch_size} per update, {args.repeats} updates each, "
          f"torch {torch.__version__}, {torch.get_num_threads()} thread(s)")
    for k, v in med.items():
        print(f"{k:<9} {v:8.0f} us per minibatch (median)")
    print(f"autograd / numpy: {med['autograd'] / med['numpy']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
