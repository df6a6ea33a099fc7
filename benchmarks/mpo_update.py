"""MPO's update, timed piece by piece; optionally against another checkout, in one run.

    python benchmarks/mpo_update.py [--updates 200] [--repeats 3] [--compare PATH]
                                    [--roofline] [--device cpu|cuda]

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

Prints the median per update of each piece (ms) over the repeats. `--roofline` adds the
floor that arithmetic sets: the update's matrix-product FLOPs (counted by torch's
FlopCounterMode) over the fastest rate this core reaches on the critic's hidden layer
(addmm and oneDNN timed alternately), the whole update through each kernel in paired
blocks, and the steps/s that floor allows. With `--compare PATH`
it runs the same measurement on the checkout at PATH (e.g. `git worktree add
/tmp/mpo-before <commit>`) in a subprocess, alternating with this checkout, and prints
both side by side with their ratio.

`--device cuda` (a GPU): the same pieces, the update run eagerly with the device waited
for around each piece (attribution only: the waits cost time a queued update does not
pay), then whole updates queued back to back as the training loop issues them, the host
waiting once per block of `--updates`: eager, and as the replay of MPO's CUDA graph
(`algos.mpo.CUDA_GRAPH`). Measured on an H200 (2026-12-04, torch 2.11): 11.2 ms eager,
1.06 ms graphed per update (10.6x): eager, the update is bound by launching its many
small kernels, not by the GPU.
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


def make_learner(seed: int = 0, device: str = "cpu", cuda_graph: bool = True):
    """MPO at its MuJoCo defaults on HalfCheetah's shapes, its replay holding 5,000
    synthetic steps (the `algos` on sys.path); `cuda_graph`: on a GPU, through the
    captured graph (`algos.mpo.CUDA_GRAPH`) or eagerly."""
    import torch

    import algos.mpo as M
    from algos.base import Batch, EnvSpec

    torch.set_num_threads(1)
    torch.manual_seed(seed)
    spec = EnvSpec((17,), False, 6, (-1.0,) * 6, (1.0,) * 6)
    learner = M.Learner(M.Config(), spec, 1, 10**6, torch.device(device))
    learner.cuda_graph = cuda_graph
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
    return learner


def update_flops(seed: int = 0) -> dict[str, float]:
    """Matrix-product FLOPs of one MPO update at its defaults, counted by
    torch.utils.flop_counter.FlopCounterMode (matmuls, forward and backward; elementwise
    ops and matrix-vector products are not counted): {"total", "targets"}. Counted on the
    addmm path, since FlopCounterMode has no formula for oneDNN's fused linear (the same
    products)."""
    from torch.utils.flop_counter import FlopCounterMode

    import algos.mpo as M

    learner = make_learner(seed)
    learner.update()
    kernel, M.ONEDNN_LINEAR = M.ONEDNN_LINEAR, None
    counts = {}
    target_values = learner._target_values

    def counted_targets(*args, **kwargs):
        with FlopCounterMode(display=False) as inner:
            out = target_values(*args, **kwargs)
        counts["targets"] = inner.get_total_flops()
        return out

    learner._target_values = counted_targets
    try:
        with FlopCounterMode(display=False) as fc:
            learner.update()
    finally:
        M.ONEDNN_LINEAR = kernel
    return {"total": float(fc.get_total_flops()), "targets": float(counts["targets"])}


def kernel_rates(rows: int = 1024, width: int = 256, calls: int = 30, repeats: int = 7
                 ) -> dict[str, float]:
    """GFLOP/s of the critic's hidden layer relu(x W^T + b), x [rows, width], W [width,
    width], one torch thread, through each kernel `Critic.sampled` can take (medians of
    `repeats` x `calls`, the kernels alternating): {"addmm": ..., "onednn": ...}."""
    import torch

    import algos.mpo as M

    torch.set_num_threads(1)
    M.keep_freed_memory()
    g = torch.Generator().manual_seed(0)
    x = torch.randn(rows, width, generator=g).relu_()
    w, b = torch.randn(width, width, generator=g) / width**0.5, torch.randn(width, generator=g)
    kernels = {"addmm": lambda: torch.relu_(torch.addmm(b, x, w.t()))}
    if M.ONEDNN_LINEAR is not None:
        kernels["onednn"] = lambda: M.ONEDNN_LINEAR(x, w, b, "relu", [], "")
    times: dict[str, list[float]] = {k: [] for k in kernels}
    with torch.no_grad():
        for _ in range(repeats):
            for name, fn in kernels.items():
                fn()
                t = time.perf_counter()
                for _ in range(calls):
                    fn()
                times[name].append((time.perf_counter() - t) / calls)
    flops = 2 * rows * width * width
    return {k: flops / statistics.median(v) / 1e9 for k, v in times.items()}


def kernel_ab(blocks: int = 30, per_block: int = 10, seed: int = 0) -> dict[str, float]:
    """The whole update through either kernel of `Critic.sampled`'s hidden layers, paired:
    one learner, blocks of `per_block` updates alternating between addmm and oneDNN
    (the order swapping every block), so that a drift of the machine's speed falls on
    both. Returns the median ms of each and the quartiles of the per-block ratio
    addmm / oneDNN ({} where this build has no oneDNN linear)."""
    import algos.mpo as M

    op = M.ONEDNN_LINEAR
    if op is None:
        return {}
    learner = make_learner(seed)
    for _ in range(10):
        learner.update()
    times: dict[str, list[float]] = {"addmm": [], "onednn": []}
    ratios = []
    try:
        for block in range(blocks):
            med = {}
            for name in (("addmm", "onednn") if block % 2 else ("onednn", "addmm")):
                M.ONEDNN_LINEAR = op if name == "onednn" else None
                ts = []
                for _ in range(per_block):
                    t = time.perf_counter()
                    learner.update()
                    ts.append(time.perf_counter() - t)
                med[name] = statistics.median(ts)
                times[name].append(med[name])
            ratios.append(med["addmm"] / med["onednn"])
    finally:
        M.ONEDNN_LINEAR = op
    q1, q2, q3 = statistics.quantiles(ratios, n=4)
    return {"addmm_ms": 1e3 * statistics.median(times["addmm"]),
            "onednn_ms": 1e3 * statistics.median(times["onednn"]),
            "ratio_q1": q1, "ratio": q2, "ratio_q3": q3}


def measure(updates: int, seed: int = 0, device: str = "cpu") -> dict[str, float]:
    """Median ms per update of each piece (and "total"), for the `algos` on sys.path. On
    a GPU the update runs eagerly (no CUDA graph: a graph has no pieces) and each
    piece waits for the device before and after, so that its time is its own: the
    pieces' sum is not what a queued update costs (see `pipelined`)."""
    import torch

    import algos.mpo as M

    learner = make_learner(seed, device, cuda_graph=False)
    spent: dict[str, float] = {}
    sync = torch.cuda.synchronize if learner.device.type == "cuda" else (lambda: None)

    def timed(label, fn):
        def wrapper(*args, **kwargs):
            sync()
            t = time.perf_counter()
            out = fn(*args, **kwargs)
            sync()
            spent[label] = spent.get(label, 0.0) + time.perf_counter() - t
            return out
        return wrapper

    learner.buffer.sample = timed("replay", learner.buffer.sample)
    learner._target_values = timed("targets", learner._target_values)
    learner.critic.taken = timed("critic", learner.critic.taken)
    pieces = {"nstep_returns": "returns", "critic_loss": "critic", "estep_weights": "e-step",
              "gaussian_mpo_loss": "m-step"}
    originals = {name: getattr(M, name) for name in pieces}
    for name, label in pieces.items():
        setattr(M, name, timed(label, originals[name]))
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
            sync()
            t = time.perf_counter()
            learner.update()
            sync()
            total = time.perf_counter() - t
            row = {k: spent.get(k, 0.0) for k in PIECES[:-1]}
            row["other"] = total - sum(row.values())
            row["total"] = total
            rows.append(row)
    finally:  # the module's own functions back: a later learner in this process is untimed
        for name, fn in originals.items():
            setattr(M, name, fn)
        torch.nn.utils.clip_grad_norm_ = clip
        torch.Tensor.backward = backward
    return {k: 1e3 * statistics.median(r[k] for r in rows) for k in (*PIECES, "total")}


def pipelined(updates: int, seed: int = 0, device: str = "cuda", graph: bool = True,
              blocks: int = 5) -> float:
    """Median ms per update over `blocks` blocks of `updates` updates queued back to back,
    the host waiting for the device only at each block's end, as the training loop runs
    them (it reads a rollout's stats once); `graph`: through the CUDA graph."""
    import torch

    learner = make_learner(seed, device, cuda_graph=graph)
    for _ in range(20):  # warm-up, capture
        learner.update()
    torch.cuda.synchronize()
    times = []
    for _ in range(blocks):
        t = time.perf_counter()
        for _ in range(updates):
            learner.update()
        torch.cuda.synchronize()
        times.append((time.perf_counter() - t) / updates)
    return 1e3 * statistics.median(times)


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
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"),
                   help="cuda: the pieces timed eagerly with the device waited for around each, "
                        "then whole updates queued back to back, eager and through the CUDA graph")
    p.add_argument("--roofline", action="store_true",
                   help="also count the update's FLOPs, time the hidden layer's kernels and print "
                        "the floor they set on the update and on MPO's steps/s")
    args = p.parse_args(argv)
    if args.compare is not None and not (args.compare / "algos" / "mpo.py").is_file():
        print(f"error: --compare: {args.compare} holds no algos/mpo.py (expected a checkout of this repository)",
              file=sys.stderr)
        return 2
    here = Path(__file__).resolve().parents[1]
    if args.device == "cuda":
        return main_cuda(here, args.updates, args.repeats)
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
    if args.roofline:
        print_roofline(med["this"]["total"])
    return 0


def main_cuda(here: Path, updates: int, repeats: int) -> int:
    import torch

    sys.path.insert(0, str(here))
    import algos.mpo as M

    if not torch.cuda.is_available():
        print("error: --device cuda: torch sees no CUDA device", file=sys.stderr)
        return 2
    rows = [measure(updates, seed=r, device="cuda") for r in range(repeats)]
    med = {k: statistics.median(r[k] for r in rows) for k in (*PIECES, "total")}
    print(f"MPO update on {torch.cuda.get_device_name()}, torch {torch.__version__}, HalfCheetah "
          f"shapes, MuJoCo defaults: median ms per update ({updates} updates x {repeats} repeats)")
    print("eager, each piece waited for (attribution only):")
    for k in (*PIECES, "total"):
        print(f"  {k:<11} {med[k]:>8.3f}")
    eager = statistics.median(pipelined(updates, r, graph=False) for r in range(repeats))
    graph = statistics.median(pipelined(updates, r, graph=True) for r in range(repeats))
    per_update = 1 / M.Config().replay_ratio
    print(f"queued back to back (as the loop runs them): eager {eager:.3f} ms, CUDA graph "
          f"{graph:.3f} ms per update ({eager / graph:.2f}x); at {per_update:.0f} env steps per "
          f"update, at most {1e3 * per_update / eager:,.0f} / {1e3 * per_update / graph:,.0f} "
          "steps/s (env and acting free)")
    return 0


def print_roofline(measured_ms: float) -> None:
    """The floor that arithmetic sets: the update's matrix-product FLOPs over the fastest
    rate measured for the critic's hidden layer on this core, and the steps/s that floor
    allows at 1 / replay_ratio env steps per update (the env and acting taken as free)."""
    import algos.mpo as M

    fl = update_flops()
    rates = kernel_rates(rows=M.Critic.SAMPLED_ROWS)
    best = max(rates.values())
    floor_ms = fl["total"] / best / 1e6
    per_update = 1 / M.Config().replay_ratio
    print(f"roofline: {fl['total'] / 1e9:.3f} GFLOP of matrix products per update "
          f"({fl['targets'] / 1e9:.3f} in the targets: {100 * fl['targets'] / fl['total']:.0f}%)")
    print("  hidden layer [" + f"{M.Critic.SAMPLED_ROWS}, 256] x [256, 256] + ReLU, one thread: "
          + ", ".join(f"{k} {v:.0f} GFLOP/s" for k, v in rates.items()))
    print(f"  floor at {best:.0f} GFLOP/s: {floor_ms:.2f} ms per update; measured {measured_ms:.2f} ms "
          f"({100 * floor_ms / measured_ms:.0f}% of it arithmetic at that rate)")
    ab = kernel_ab()
    if ab:
        print(f"  the whole update, paired blocks: addmm {ab['addmm_ms']:.2f} ms, onednn "
              f"{ab['onednn_ms']:.2f} ms; addmm / onednn {ab['ratio']:.3f}x "
              f"(quartiles {ab['ratio_q1']:.3f}-{ab['ratio_q3']:.3f})")
    print(f"  at {per_update:.0f} env steps per update, MPO's steps/s is at most "
          f"{1e3 * per_update / floor_ms:,.0f} at the floor, {1e3 * per_update / measured_ms:,.0f} "
          "at the measured update (env and acting free)")


if __name__ == "__main__":
    sys.exit(main())
