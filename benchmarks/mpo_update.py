"""MPO's update, timed piece by piece; optionally against another checkout, in one run.

    python benchmarks/mpo_update.py [--updates 200] [--repeats 3] [--compare PATH]

Builds MPO with its MuJoCo defaults on HalfCheetah-v5's shapes (obs 17, actions 6 in
[-1, 1]; a 64x64 tanh policy, a 256x256 ReLU critic, batch 256, 20 sampled actions,
n-step 5), fills its replay with 5,000 synthetic steps (episodes of 1,000 steps), and
times `--updates` calls of `Learner.update()` with one torch thread, as the training
loop runs it. Each piece is timed by wrapping the function that does it:

    replay       SequenceReplay.sample: draw starts, gather the sequences
    targets      Learner._target_values: target policy, 20 sampled actions per state and
                 the target critic on them, for the E-step and the V' bootstrap
    returns      nstep_returns (the n-step TD target)
    critic       the online critic's forward and its loss
    e-step       estep_weights (the temperature dual and the sample weights)
    m-step       gaussian_mpo_loss (weighted ML with the decoupled KLs, the alphas' losses)
    backward     loss.backward()
    optimisers   gradient clipping and the three Adam steps (policy, critic, duals)
    other        the rest of `update()` (the policy forward, stats, target refresh, ...)

Prints the median per update of each piece (ms) over the repeats. With `--compare PATH`
it runs the same measurement on the checkout at PATH (e.g. `git worktree add
/tmp/mpo-before <commit>`) in a subprocess, alternating with this checkout, and prints
both side by side with their ratio.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

PIECES = ("replay", "targets", "returns", "critic", "e-step", "m-step", "backward",
          "optimisers", "other")


def measure(updates: int, seed: int = 0) -> dict[str, float]:
    """Median ms per update of each piece (and "total"), for the `algos` on sys.path."""
    import torch

    import algos.mpo as M
    from algos.base import Batch, EnvSpec

    torch.set_num_threads(1)
    torch.manual_seed(seed)
    spec = EnvSpec((17,), False, 6, (-1.0,) * 6, (1.0,) * 6)
    learner = M.Learner(M.Config(), spec, 1, 10**6, torch.device("cpu"))
    g = torch.Generator().manual_seed(seed)
    T = 250
    last = torch.randn(1, 17, generator=g)
    for i in range(20):  # 5,000 steps: one continuing stream, an episode end every 1,000
        obs = torch.randn(T + 1, 1, 17, generator=g)
        obs[0] = last
        last = obs[-1].clone()
        truncated = torch.zeros(T, 1, dtype=torch.bool)
        if (i + 1) % 4 == 0:
            truncated[-1] = True
        learner.observe(Batch(obs, torch.rand(T, 1, 6, generator=g) * 2 - 1,
                              torch.randn(T, 1, generator=g), torch.zeros(T, 1, dtype=torch.bool),
                              truncated, torch.ones(T, 1, dtype=torch.bool)))

    spent: dict[str, float] = {}

    def timed(label, fn):
        def wrapper(*args, **kwargs):
            t = time.perf_counter()
            out = fn(*args, **kwargs)
            spent[label] = spent.get(label, 0.0) + time.perf_counter() - t
            return out
        return wrapper

    learner.buffer.sample = timed("replay", learner.buffer.sample)
    learner._target_values = timed("targets", learner._target_values)
    learner.critic.taken = timed("critic", learner.critic.taken)
    for name, label in (("nstep_returns", "returns"), ("critic_loss", "critic"),
                        ("estep_weights", "e-step"), ("gaussian_mpo_loss", "m-step")):
        setattr(M, name, timed(label, getattr(M, name)))
    for opt in (learner.policy_opt, learner.critic_opt, learner.dual_opt):
        opt.step = timed("optimisers", opt.step)
    clip = torch.nn.utils.clip_grad_norm_
    torch.nn.utils.clip_grad_norm_ = timed("optimisers", clip)
    backward = torch.Tensor.backward
    torch.Tensor.backward = timed("backward", backward)
    try:
        for _ in range(10):  # warm-up: first allocations
            learner.update()
        rows: list[dict[str, float]] = []
        for _ in range(updates):
            spent.clear()
            t = time.perf_counter()
            learner.update()
            total = time.perf_counter() - t
            row = {k: spent.get(k, 0.0) for k in PIECES[:-1]}
            row["other"] = total - sum(row.values())
            row["total"] = total
            rows.append(row)
    finally:
        torch.nn.utils.clip_grad_norm_ = clip
        torch.Tensor.backward = backward
    return {k: 1e3 * statistics.median(r[k] for r in rows) for k in (*PIECES, "total")}


def _run_in(repo: Path, updates: int) -> dict[str, float]:
    code = (f"import sys, json; sys.path.insert(0, {str(repo)!r}); sys.path.insert(0, {str(Path(__file__).parent)!r}); "
            f"import mpo_update; print(json.dumps(mpo_update.measure({updates})))")
    out = subprocess.run([sys.executable, "-c", code], cwd=repo, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--updates", type=int, default=200)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--compare", type=Path, default=None, metavar="PATH",
                   help="another checkout of this repository to measure in the same run")
    args = p.parse_args(argv)
    if args.compare is not None and not (args.compare / "algos" / "mpo.py").is_file():
        print(f"error: --compare: {args.compare} holds no algos/mpo.py (expected a checkout of this repository)",
              file=sys.stderr)
        return 2
    here = Path(__file__).resolve().parents[1]
    names = ["this"] + (["compare"] if args.compare else [])
    repos = {"this": here, "compare": args.compare}
    results: dict[str, list[dict[str, float]]] = {n: [] for n in names}
    for rep in range(args.repeats):
        for n in reversed(names):  # the other checkout first, then this one
            results[n].append(_run_in(repos[n], args.updates))
            print(f"[repeat {rep + 1}/{args.repeats}] {n}: {results[n][-1]['total']:.2f} ms per update",
                  file=sys.stderr, flush=True)
    med = {n: {k: statistics.median(r[k] for r in results[n]) for k in (*PIECES, "total")} for n in names}
    print(f"MPO update, HalfCheetah shapes, MuJoCo defaults, one torch thread: median ms per update "
          f"({args.updates} updates x {args.repeats} repeats)")
    if args.compare:
        print(f"{'piece':<11} {'compare':>9} {'this':>9} {'ratio':>7}    compare = {args.compare}")
        for k in (*PIECES, "total"):
            a, b = med["compare"][k], med["this"][k]
            print(f"{k:<11} {a:>9.2f} {b:>9.2f} {a / b if b > 0 else float('nan'):>6.2f}x")
    else:
        print(f"{'piece':<11} {'ms':>9}")
        for k in (*PIECES, "total"):
            print(f"{k:<11} {med['this'][k]:>9.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
