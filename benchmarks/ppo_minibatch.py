"""PPO's minibatch step: the numpy fast path against the torch ways of taking it, one run.

    python benchmarks/ppo_minibatch.py [--repeats 7] [--obs 17] [--act 6] [--no-compile]

Times one update's epochs (a synthetic 2048-sample rollout with HalfCheetah's shapes and
the MuJoCo defaults: 10 epochs of 64-sample minibatches, a 64x64 tanh actor-critic, the
same permutations for every variant), one torch thread as the training loop uses, the
variants interleaved in each repeat; prints the median time per minibatch step of each
and its ratio to the numpy path:

  numpy               algos.fast.ppo_step (numpy forward/backward, FlatAdam's numpy Adam)
  numpy+flat fused    the same with FlatAdam's torch step (fused Adam on the flat vector)
  autograd+FlatAdam   the fallback: ppo.Learner._epochs_torch (autograd, FlatAdam)
  autograd+Adam       autograd, torch.optim.Adam (default: per-tensor, for-each off on
                      the CPU) and torch.nn.utils.clip_grad_norm_
  autograd+Adam fused the same with torch.optim.Adam(fused=True)
  compiled+Adam fused torch.compile of the minibatch loss (forward and backward through
                      inductor), fused Adam; its compile time printed apart

and what the guards cost: one check of each fast path (PPO's step, FlatAdam's step, the
numpy actor on one observation), per check and amortised over its interval, as a share
of an update's numpy epochs.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from algos import ppo  # noqa: E402
from algos.base import EnvSpec  # noqa: E402
from algos.config import RunConfig  # noqa: E402
from algos.fast import flat_adam, numpy_actor, ppo_step  # noqa: E402
from algos.networks import ActorCritic  # noqa: E402


def torch_epochs(loss_fn, net, opt, cfg, batch, perms) -> None:
    """autograd epochs with a torch optimiser on the net's own parameter tensors."""
    obs, actions, old_v, adv, ret = batch
    with torch.no_grad():
        old_logp = net.head.log_prob(net.policy(obs), actions)
    n, mb = obs.shape[0], cfg.minibatch_size
    params = list(net.parameters())
    for perm in perms:
        e = [x[perm] for x in (obs, actions, old_logp, old_v, adv, ret)]
        for i in range(0, n, mb):
            loss = loss_fn(*(x[i:i + mb] for x in e))
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
            opt.step()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--obs", type=int, default=17)
    p.add_argument("--act", type=int, default=6)
    p.add_argument("--no-compile", action="store_true", help="skip the torch.compile variant")
    args = p.parse_args(argv)
    torch.set_num_threads(RunConfig().torch_threads)
    spec = EnvSpec((args.obs,), False, args.act, (-1.0,) * args.act, (1.0,) * args.act)
    cfg = ppo.Config()
    torch.manual_seed(0)
    learner = ppo.Learner(cfg, spec, 1, 10**6, torch.device("cpu"))
    g = torch.Generator().manual_seed(0)
    n = cfg.rollout_length
    batch = (torch.randn(n, args.obs, generator=g), torch.randn(n, args.act, generator=g),
             torch.randn(n, generator=g), torch.randn(n, generator=g), torch.randn(n, generator=g))
    perms = [torch.randperm(n, generator=g) for _ in range(cfg.epochs)]
    steps = cfg.epochs * -(-n // cfg.minibatch_size)

    def numpy_flat_fused(*a):
        learner.opt.guard.active = False  # FlatAdam.step then takes torch's fused step
        try:
            learner.fast.epochs(*a)
        finally:
            learner.opt.guard.active = True

    variants = {"numpy": learner.fast.epochs, "numpy+flat fused": numpy_flat_fused,
                "autograd+FlatAdam": learner._epochs_torch}
    def torch_variant(fused: bool, compile_loss: bool = False):
        """(epochs function, the torch net it trains) with its own net and torch Adam."""
        torch.manual_seed(0)
        net = ActorCritic(spec, cfg.hidden, cfg.activation)
        opt = torch.optim.Adam(net.parameters(), lr=cfg.lr, eps=cfg.adam_eps, fused=fused)
        shim = SimpleNamespace(cfg=cfg, net=net)  # minibatch_loss reads only cfg and net

        def loss_fn(*x):
            return ppo.Learner.minibatch_loss(shim, *x)

        loss_fn = torch.compile(loss_fn) if compile_loss else loss_fn
        return lambda *a: torch_epochs(loss_fn, net, opt, cfg, a[:5], a[5])

    variants["autograd+Adam"] = torch_variant(fused=False)
    variants["autograd+Adam fused"] = torch_variant(fused=True)
    compile_s = None
    if not args.no_compile:
        compiled = torch_variant(fused=True, compile_loss=True)
        t = time.perf_counter()
        try:
            compiled(*batch, perms[:1])  # compiles (one minibatch shape: 2048 = 32 x 64)
            compile_s = time.perf_counter() - t
            variants["compiled+Adam fused"] = compiled
        except Exception as e:  # noqa: BLE001 - report and go on without it
            print(f"torch.compile failed here: {type(e).__name__}: {str(e).splitlines()[0]}")

    times: dict[str, list[float]] = {k: [] for k in variants}
    for _ in range(args.repeats):
        for name, epochs in variants.items():
            t = time.perf_counter()
            epochs(*batch, perms)
            times[name].append((time.perf_counter() - t) / steps * 1e6)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"{steps} minibatch steps of {cfg.minibatch_size} per update, {args.repeats} updates each, "
          f"torch {torch.__version__}, {torch.get_num_threads()} thread(s)")
    for k, v in med.items():
        print(f"{k:<20} {v:8.0f} us per minibatch (median)   {v / med['numpy']:5.2f}x numpy")
    if compile_s is not None:
        print(f"torch.compile: {compile_s:.1f} s to compile (first epoch included)")

    # the guards: one check each, against an update of numpy epochs
    learner.refresh_actor()  # the epochs above moved the weights: a stale snapshot fails its check
    first = perms[0][:cfg.minibatch_size]
    obs1 = batch[0][:1].numpy()
    checks = {
        "ppo_numpy_step": (lambda: learner.fast.check(*(x[first] for x in batch), where="bench"),
                           math.ceil(ppo_step.STEP_CHECK_EVERY / steps)),
        "numpy_adam": (lambda: learner.opt.check(learner.opt.flat.grad, "bench"),
                       flat_adam.ADAM_CHECK_EVERY / steps),
        "numpy_actor": (lambda: learner.np_actor.check(obs1, "bench"), numpy_actor.ACTOR_CHECK_EVERY),
    }
    update_us = med["numpy"] * steps
    print(f"guards (update = {update_us / 1e3:.1f} ms of numpy epochs):")
    for name, (check, every_updates) in checks.items():
        ts = []
        for _ in range(max(args.repeats, 20)):
            t = time.perf_counter()
            check()
            ts.append((time.perf_counter() - t) * 1e6)
        c = statistics.median(ts)
        print(f"  {name:<15} {c:7.0f} us per check = {100 * c / update_us:5.2f}% of an update; "
              f"every {every_updates:g} updates: {100 * c / (update_us * max(every_updates, 1)):.3f}% amortised")
    assert all(g_.active for g_ in (learner.fast.guard, learner.opt.guard, learner.np_actor.guard))
    return 0


if __name__ == "__main__":
    sys.exit(main())
