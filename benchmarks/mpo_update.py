"""MPO's update, timed piece by piece; optionally against another checkout, in one run.

    python benchmarks/mpo_update.py [--updates 200] [--repeats 3] [--compare PATH]
                                    [--roofline] [--targets] [--device cpu|cuda]

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
(addmm and oneDNN's fused linear timed alternately), and the steps/s that floor allows.
With `--compare PATH` it runs the same measurement on the checkout at PATH (e.g.
`git worktree add /tmp/mpo-before <commit>`) in a subprocess, alternating with this
checkout, and prints both side by side with their ratio.

`--targets` (only): the whole update through each way of computing the targets' Q'(s,
a_n) (`target_variants`: the fast path `algos.fast.mpo_targets.sampled_split`, the plain
forward on repeated states it is checked against, the split with oneDNN's fused linear
+ ReLU for the hidden layer, and torch.compile of the split), in paired blocks whose
order rotates. Measured 2026-12-06, torch 2.13 CPU, one core of the Intel Xeon here with
the other core busy (two runs; ratio = split / variant, median of 24 blocks, quartiles):

    split     57.7 / 45.1 ms   1
    plain     64.1 / 60.3 ms   0.902 (0.810-0.964) / 0.782 (0.725-0.871)
    onednn    53.4 / 45.4 ms   1.025 (0.950-1.088) / 1.020 (0.916-1.121)
    compile   52.4 / 44.6 ms   1.074 (1.007-1.161) / 1.034 (0.893-1.149); compiling 5-6 s

The oneDNN kernel (a private op, 1.03-1.05x on the AMD EPYC this ran on before) does not
pay for itself here and was dropped; torch.compile was not adopted (see the figures and
mpo_targets' docstring); the split path pays against the plain forward and stays, under
its guard.

`--device cuda` (a GPU): the same pieces, the update run eagerly with the device waited
for around each piece (attribution only: the waits cost time a queued update does not
pay), then whole updates queued back to back as the training loop issues them, the host
waiting once per block of `--updates`: eager, and as the replay of MPO's CUDA graph
(`algos.fast.cuda_graph`). Measured on an H200 (2026-12-04, torch 2.11): 11.2 ms eager,
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
    captured graph (`algos.fast.cuda_graph`) or eagerly."""
    import torch

    import algos.mpo as M
    from algos.base import Batch, EnvSpec

    torch.set_num_threads(1)
    torch.manual_seed(seed)
    spec = EnvSpec((17,), False, 6, (-1.0,) * 6, (1.0,) * 6)
    learner = M.Learner(M.Config(), spec, 1, 10**6, torch.device(device))
    if not cuda_graph:
        learner.graph = None
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
    ops and matrix-vector products are not counted): {"total", "targets"}."""
    from torch.utils.flop_counter import FlopCounterMode

    learner = make_learner(seed)
    learner.update()
    counts = {}
    target_values = learner._target_values

    def counted_targets(*args, **kwargs):
        with FlopCounterMode(display=False) as inner:
            out = target_values(*args, **kwargs)
        counts["targets"] = inner.get_total_flops()
        return out

    learner._target_values = counted_targets
    with FlopCounterMode(display=False) as fc:
        learner.update()
    return {"total": float(fc.get_total_flops()), "targets": float(counts["targets"])}


def _onednn_op():
    """oneDNN's fused linear + activation (the kernel inductor emits for CPU linears), a
    private op: None where this torch build lacks it."""
    import torch

    if not torch.backends.mkldnn.is_available():
        return None
    return getattr(torch.ops.mkldnn, "_linear_pointwise", None)


def kernel_rates(rows: int = 1024, width: int = 256, calls: int = 30, repeats: int = 7
                 ) -> dict[str, float]:
    """GFLOP/s of the critic's hidden layer relu(x W^T + b), x [rows, width], W [width,
    width], one torch thread, through addmm (what `algos.fast.mpo_targets` uses) and
    oneDNN's fused linear (measured, not used: see `targets_ab`) (medians of `repeats` x
    `calls`, the kernels alternating): {"addmm": ..., "onednn": ...}."""
    import torch

    from algos.memory import keep_freed_memory

    torch.set_num_threads(1)
    keep_freed_memory()
    g = torch.Generator().manual_seed(0)
    x = torch.randn(rows, width, generator=g).relu_()
    w, b = torch.randn(width, width, generator=g) / width**0.5, torch.randn(width, generator=g)
    kernels = {"addmm": lambda: torch.relu_(torch.addmm(b, x, w.t()))}
    op = _onednn_op()
    if op is not None:
        kernels["onednn"] = lambda: op(x, w, b, "relu", [], "")
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


def _split_onednn(critic, obs, actions):
    """`mpo_targets.sampled_split` with the hidden layers through oneDNN's fused linear +
    ReLU (the kernel the fast path used until it was measured not to pay; kept here to
    measure it again)."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    from algos.fast import mpo_targets

    op = _onednn_op()
    with torch.no_grad():
        N, M = actions.shape[0], obs.shape[0]
        linears = [m for m in critic.net if isinstance(m, nn.Linear)]
        first, last = linears[0], linears[-1]
        o = obs.flatten(1)
        k = o.shape[1]
        s = F.linear(o, first.weight[:, :k], first.bias)
        a = critic.scale_action(actions)
        w_a = first.weight[:, k:].t()
        out = torch.empty(N, M, dtype=s.dtype)
        per = max(1, mpo_targets.ROWS // M)
        for i in range(0, N, per):
            h = torch.matmul(a[i:i + per], w_a)
            h += s
            h = torch.relu_(h.view(-1, h.shape[-1]))
            for layer in linears[1:-1]:
                h = op(h, layer.weight, layer.bias, "relu", [], "")
            torch.addmv(last.bias, h, last.weight[0], out=out[i:i + per].view(-1))
        return out


def target_variants() -> dict:
    """Ways to compute the targets' Q'(s, a_n) for the whole-update comparison, each a
    stand-in for `algos.fast.mpo_targets.sampled_split`: "split" (it: split first layer,
    addmm), "plain" (the definition, `QCritic.sampled`: the forward on repeated states),
    "onednn" (split, hidden layers through oneDNN's fused linear), "compile"
    (torch.compile of the split; its compile time is reported apart)."""
    import torch

    from algos.fast import mpo_targets

    out = {"split": mpo_targets.sampled_split,
           "plain": lambda critic, obs, actions: critic.sampled(obs, actions)}
    if _onednn_op() is not None:
        out["onednn"] = _split_onednn
    out["compile"] = torch.compile(mpo_targets.sampled_split)
    return out


def targets_ab(blocks: int = 24, per_block: int = 10, seed: int = 0) -> dict[str, dict[str, float]]:
    """The whole update with each of `target_variants`, paired: one learner, blocks of
    `per_block` updates per variant, the variants' order rotating every block, so that a
    drift of the machine's speed falls on all. Returns per variant the median ms per
    update and the quartiles of the per-block ratio split / variant (above 1: the
    variant is faster than the split path), and "compile" its compile time (s)."""
    import torch

    from algos.fast import mpo_targets

    torch.set_num_threads(1)
    variants = target_variants()
    learner = make_learner(seed)
    for _ in range(5):
        learner.update()
    original = mpo_targets.sampled_split
    compile_s = 0.0
    times: dict[str, list[float]] = {k: [] for k in variants}
    ratios: dict[str, list[float]] = {k: [] for k in variants}
    names = list(variants)
    try:
        mpo_targets.sampled_split = variants["compile"]
        t = time.perf_counter()
        learner.update()  # compiles
        compile_s = time.perf_counter() - t
        for block in range(blocks):
            med = {}
            order = names[block % len(names):] + names[:block % len(names)]
            for name in order:
                mpo_targets.sampled_split = variants[name]
                learner.update()  # first call after the switch untimed
                ts = []
                for _ in range(per_block):
                    t = time.perf_counter()
                    learner.update()
                    ts.append(time.perf_counter() - t)
                med[name] = statistics.median(ts)
                times[name].append(med[name])
            for name in names:
                ratios[name].append(med["split"] / med[name])
    finally:
        mpo_targets.sampled_split = original
    out = {}
    for name in names:
        q1, q2, q3 = statistics.quantiles(ratios[name], n=4)
        out[name] = {"ms": 1e3 * statistics.median(times[name]), "ratio_q1": q1, "ratio": q2, "ratio_q3": q3}
    out["compile"]["compile_s"] = compile_s
    return out


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
    p.add_argument("--targets", action="store_true",
                   help="only compare the whole update through each way of computing the targets "
                        "(split/addmm, plain forward, oneDNN, torch.compile), in paired blocks")
    args = p.parse_args(argv)
    if args.compare is not None and not (args.compare / "algos" / "mpo.py").is_file():
        print(f"error: --compare: {args.compare} holds no algos/mpo.py (expected a checkout of this repository)",
              file=sys.stderr)
        return 2
    here = Path(__file__).resolve().parents[1]
    if args.device == "cuda":
        return main_cuda(here, args.updates, args.repeats)
    if args.targets:
        print_targets_ab()
        return 0
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
    from algos.fast import mpo_targets

    fl = update_flops()
    rates = kernel_rates(rows=mpo_targets.ROWS)
    best = max(rates.values())
    floor_ms = fl["total"] / best / 1e6
    per_update = 1 / M.Config().replay_ratio
    print(f"roofline: {fl['total'] / 1e9:.3f} GFLOP of matrix products per update "
          f"({fl['targets'] / 1e9:.3f} in the targets: {100 * fl['targets'] / fl['total']:.0f}%)")
    print("  hidden layer [" + f"{mpo_targets.ROWS}, 256] x [256, 256] + ReLU, one thread: "
          + ", ".join(f"{k} {v:.0f} GFLOP/s" for k, v in rates.items()))
    print(f"  floor at {best:.0f} GFLOP/s: {floor_ms:.2f} ms per update; measured {measured_ms:.2f} ms "
          f"({100 * floor_ms / measured_ms:.0f}% of it arithmetic at that rate)")
    print(f"  at {per_update:.0f} env steps per update, MPO's steps/s is at most "
          f"{1e3 * per_update / floor_ms:,.0f} at the floor, {1e3 * per_update / measured_ms:,.0f} "
          "at the measured update (env and acting free)")


def print_targets_ab() -> None:
    import platform

    import torch

    ab = targets_ab()
    print(f"MPO update through each way of computing the targets, HalfCheetah shapes, MuJoCo "
          f"defaults, one torch thread, torch {torch.__version__}, {platform.processor() or platform.machine()}")
    print("paired blocks; ratio = split / variant per block (above 1: the variant is faster)")
    print(f"{'variant':<9} {'ms':>8} {'ratio':>7}  quartiles")
    for name, r in ab.items():
        print(f"{name:<9} {r['ms']:>8.2f} {r['ratio']:>7.3f}  {r['ratio_q1']:.3f}-{r['ratio_q3']:.3f}")
    print(f"torch.compile's first update (compiling): {ab['compile']['compile_s']:.1f} s")


if __name__ == "__main__":
    sys.exit(main())
