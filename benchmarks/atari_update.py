"""The Atari CPU path, piece by piece: the Nature CNN's layouts and torch threads, and
ale-py's env threads, timed in one run.

    python benchmarks/atari_update.py [--repeats 5] [--env ALE/Pong-v5] [--no-env] [--no-vmpo]

Components, each at the sizes of the Atari configs (PPO and V-MPO SUITE_DEFAULTS["atari"]:
8 envs x 128 steps, PPO minibatches of 256; resolved through `algos.train.resolve`):

  act B=8          the learner's acting call on a [8, 4, 84, 84] uint8 batch (16 calls)
  values 129x8     `learner.values` on a rollout's observations [129, 8, 4, 84, 84]: the
                   no-gradient forward that PPO (three times per update) and V-MPO (twice)
                   take over the whole rollout
  ppo minibatch    one PPO minibatch step at 256 samples, as `ppo.Learner._epochs_torch`
                   takes it: `minibatch_loss`, backward, FlatAdam's clip and step
                   (16 of them per Atari update: 4 epochs x 4 minibatches)
  vmpo update      `vmpo.Learner.learn` on a synthetic rollout (its values, its target's
                   policy, one forward-backward-Adam step on the 1,024 samples)
  ale step N=8     `AtariVectorEnv.step` of the Atari protocol's env (64 steps), by
                   ale-py's `num_threads`

Candidates for the network (the same weights, the same data, the same permutations):

  nchw (before)    the forward before channels_last: `obs.float() / 255` and NCHW
                   convolutions (`nchw_forward`, patched in for the row), 1 torch thread
  nhwc             `NatureCNN.forward` as shipped: the input copied once to float in
                   channels_last layout, /255 in place, convolutions given NHWC weights
  nhwc grad-only   NHWC only where autograd records (acting and values stay NCHW):
                   a candidate, not shipped
  nhwc 2 threads   the shipped forward with torch.set_num_threads(2) (RunConfig's
                   torch_threads=2)

Rows are interleaved in every repeat (the machine may be loaded: medians of paired
repeats, ratios to the first row). Before timing, each candidate's outputs are compared
with the `nchw (before)` path on the same weights and inputs: max |diff| of the CNN
features and of the PPO minibatch loss, the largest gradient difference relative to that
parameter's largest gradient, and V-MPO's loss/total from one update of identical copies.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from algos import ppo, vmpo  # noqa: E402
from algos.base import EnvSpec  # noqa: E402
from algos.networks import NatureCNN  # noqa: E402
from algos.train import RunSpec, algo_module, configs, resolve  # noqa: E402

PONG = EnvSpec((4, 84, 84), True, 6, pixels=True)


def nchw_forward(cnn: NatureCNN, obs: torch.Tensor) -> torch.Tensor:
    """NatureCNN's forward before channels_last (commit d1f7999): a float copy, a /255
    copy, each convolution on NCHW weights (`nn.Conv2d.forward`). The reference the
    shipped forward is compared with (here and in tests/test_atari_speed_equiv.py)."""
    x = obs.float() / 255.0
    for layer in cnn.net:
        x = nn.Conv2d.forward(layer, x) if isinstance(layer, nn.Conv2d) else layer(x)
    return x


def _grad_only_forward(cnn: NatureCNN, obs: torch.Tensor) -> torch.Tensor:
    return _SHIPPED(cnn, obs) if torch.is_grad_enabled() else nchw_forward(cnn, obs)


_SHIPPED = NatureCNN.forward
CANDIDATES = {  # name: (forward, torch threads)
    "nchw (before)": (nchw_forward, 1),
    "nhwc": (_SHIPPED, 1),
    "nhwc grad-only": (_grad_only_forward, 1),
    "nhwc 2 threads": (_SHIPPED, 2),
}


@contextlib.contextmanager
def candidate(name: str):
    """NatureCNN.forward and torch's thread count of a candidate, restored afterwards."""
    forward, threads = CANDIDATES[name]
    before = torch.get_num_threads()
    NatureCNN.forward = forward
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        NatureCNN.forward = _SHIPPED
        torch.set_num_threads(before)


def atari_config(algo: str):
    """The resolved Atari config of `algo` on Pong (suite defaults applied) and num_envs."""
    resolved = resolve(RunSpec(algo, "ALE/Pong-v5", 0, 10_000_000))
    run_cfg, cfg = configs(algo_module(algo), resolved)
    return cfg, run_cfg.num_envs


def synthetic_rollout(T: int, B: int, g: torch.Generator) -> dict[str, torch.Tensor]:
    """What `OnPolicyLearner.prepare` hands `learn` for Pong: obs [T+1, B, 4, 84, 84] uint8,
    actions [T, B], rewards in {-1, 0, 1}, a few episode ends, log-probs of a uniform policy."""
    terminated = torch.rand(T, B, generator=g) < 0.002
    valid = torch.ones(T, B, dtype=torch.bool)
    valid[1:] &= ~terminated[:-1]
    return {
        "obs": torch.randint(0, 256, (T + 1, B, *PONG.obs_shape), dtype=torch.uint8, generator=g),
        "actions": torch.randint(0, PONG.action_dim, (T, B), generator=g),
        "rewards": torch.randint(-1, 2, (T, B), generator=g).float() * (torch.rand(T, B, generator=g) < 0.02),
        "terminated": terminated,
        "truncated": torch.zeros(T, B, dtype=torch.bool),
        "valid": valid,
        "log_prob": torch.full((T, B), -float(np.log(PONG.action_dim))),
    }


class Workload:
    """The learners and data every candidate runs on (built once, same weights)."""

    def __init__(self, seed: int = 0) -> None:
        torch.manual_seed(seed)
        g = torch.Generator().manual_seed(seed)
        self.ppo_cfg, B = atari_config("ppo")
        self.vmpo_cfg, _ = atari_config("vmpo")
        dev = torch.device("cpu")
        self.ppo = ppo.Learner(self.ppo_cfg, PONG, B, 10_000_000, dev)
        self.vmpo = vmpo.Learner(self.vmpo_cfg, PONG, B, 10_000_000, dev)
        T = self.ppo_cfg.rollout_length
        self.rollout = synthetic_rollout(T, B, g)
        self.act_obs = self.rollout["obs"][0].numpy().copy()
        n, mb = T * B, self.ppo_cfg.minibatch_size
        idx = torch.randperm(n, generator=g)[:mb]
        flat = lambda x: x.flatten(0, 1)[idx]  # noqa: E731
        self.mb = (flat(self.rollout["obs"][:-1]), flat(self.rollout["actions"]),
                   flat(self.rollout["log_prob"]), torch.randn(mb, generator=g),
                   torch.randn(mb, generator=g), torch.randn(mb, generator=g))

    # -- the components ------------------------------------------------------------
    def act(self) -> None:
        for _ in range(16):
            self.ppo.act(self.act_obs)

    def values(self) -> None:
        self.ppo.values(self.rollout["obs"])

    def ppo_minibatch(self) -> None:
        L, cfg = self.ppo, self.ppo_cfg
        loss = L.minibatch_loss(*self.mb)
        L.opt.zero_grad()
        loss.backward()
        L.opt.clip_grad_norm_(cfg.max_grad_norm)
        L.opt.step()

    def vmpo_update(self) -> None:
        self.vmpo.learn(self.rollout)

    # -- equivalence -----------------------------------------------------------------
    def ppo_loss_and_grads(self) -> tuple[torch.Tensor, list[torch.Tensor]]:
        L = self.ppo
        L.opt.zero_grad()
        loss = L.minibatch_loss(*self.mb)
        loss.backward()
        grads = [p.grad.detach().clone() for p in L.net.parameters()]
        L.opt.zero_grad()
        return loss.detach(), grads

    def features(self, obs: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.ppo.net.policy_torso(obs)

    def vmpo_loss(self) -> float:
        return self.vmpo_copy().learn(self.rollout)["loss/total"]

    def vmpo_copy(self) -> vmpo.Learner:
        if not hasattr(self, "_vmpo0"):
            self._vmpo0 = copy.deepcopy(self.vmpo)
        return copy.deepcopy(self._vmpo0)


def equivalence(w: Workload) -> dict[str, dict[str, float]]:
    """Per candidate: how far its numbers are from `nchw (before)`'s on the same inputs."""
    obs8 = torch.from_numpy(w.act_obs)
    obs256 = w.mb[0]
    ref = {}
    out = {}
    for name in CANDIDATES:
        with candidate(name):
            loss, grads = w.ppo_loss_and_grads()
            got = {"f8": w.features(obs8), "f256": w.features(obs256), "loss": loss,
                   "grads": grads, "vmpo": w.vmpo_loss()}
        if not ref:
            ref = got
        out[name] = {
            "features": max(float((got[k] - ref[k]).abs().max()) for k in ("f8", "f256")),
            "ppo loss": float((got["loss"] - ref["loss"]).abs()),
            "grad (rel)": max(float((a - b).abs().max() / b.abs().max().clamp_min(1e-30))
                              for a, b in zip(got["grads"], ref["grads"])),
            "vmpo loss": abs(got["vmpo"] - ref["vmpo"]),
        }
    return out


def time_components(w: Workload, repeats: int, with_vmpo: bool) -> dict[str, dict[str, float]]:
    comps = {"act B=8 (x16)": w.act, "values 129x8": w.values, "ppo minibatch 256": w.ppo_minibatch}
    if with_vmpo:
        comps["vmpo update 128x8"] = w.vmpo_update
    times: dict[str, dict[str, list[float]]] = {c: {n: [] for n in CANDIDATES} for c in comps}
    for name in CANDIDATES:  # warm-up: oneDNN primitives, allocator
        with candidate(name):
            for f in comps.values():
                f()
    for r in range(repeats):
        order = list(CANDIDATES) if r % 2 == 0 else list(CANDIDATES)[::-1]
        for name in order:
            with candidate(name):
                for c, f in comps.items():
                    t0 = time.perf_counter()
                    f()
                    times[c][name].append(time.perf_counter() - t0)
    return {c: {n: statistics.median(v) for n, v in per.items()} for c, per in times.items()}


ENV_THREADS = (0, 1, 2)  # ale-py's num_threads; 0 is its default (what suites.atari passes)


def time_env(env_id: str, repeats: int, steps: int = 64) -> dict[str, float]:
    """Median seconds per `steps` steps of the protocol's AtariVectorEnv (8 envs, random
    actions), by ale-py's num_threads, interleaved."""
    from suites.atari import ATARI, import_ale
    from suites.registry import ale_game

    import_ale()
    from gymnasium.vector import AutoresetMode

    from suites.ale_vector import SeededAtariVectorEnv

    p = ATARI
    envs = {}
    for k in ENV_THREADS:
        envs[k] = SeededAtariVectorEnv(
            ale_game(env_id), 8, num_threads=k, frameskip=p.frameskip, maxpool=True,
            stack_num=p.frame_stack, img_height=p.screen_size, img_width=p.screen_size,
            grayscale=True, noop_max=p.noop_max, repeat_action_probability=p.repeat_action_probability,
            max_num_frames_per_episode=p.max_num_frames_per_episode,
            full_action_space=p.full_action_space, episodic_life=p.terminal_on_life_loss,
            life_loss_info=False, reward_clipping=p.reward_clipping, use_fire_reset=p.fire_reset,
            autoreset_mode=AutoresetMode.NEXT_STEP)
        envs[k].reset(seed=0)
    rng = np.random.default_rng(0)
    n_act = envs[0].single_action_space.n
    times: dict[int, list[float]] = {k: [] for k in ENV_THREADS}
    try:
        for r in range(repeats + 1):
            for k in (ENV_THREADS if r % 2 == 0 else ENV_THREADS[::-1]):
                acts = rng.integers(0, n_act, size=(steps, 8))
                t0 = time.perf_counter()
                for a in acts:
                    envs[k].step(a)
                if r > 0:  # the first round warms up
                    times[k].append(time.perf_counter() - t0)
    finally:
        for e in envs.values():
            e.close()
    return {f"num_threads={k}" + (" (default)" if k == 0 else ""): statistics.median(v)
            for k, v in times.items()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--env", default="ALE/Pong-v5")
    p.add_argument("--no-env", action="store_true", help="skip the ALE step rows")
    p.add_argument("--no-vmpo", action="store_true", help="skip the V-MPO update rows")
    args = p.parse_args(argv)
    if args.repeats < 1:
        print("--repeats: expected an int >= 1", file=sys.stderr)
        return 2
    torch.set_num_threads(1)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s) unless the row says; "
          f"medians of {args.repeats} interleaved repeats")
    w = Workload()
    print("\nequivalence with nchw (before), same weights and inputs (max abs diff):")
    print(f"  {'candidate':16s} {'features':>10s} {'ppo loss':>10s} {'grad (rel)':>11s} {'vmpo loss':>10s}")
    for name, d in equivalence(w).items():
        print(f"  {name:16s} {d['features']:10.2e} {d['ppo loss']:10.2e} {d['grad (rel)']:11.2e} {d['vmpo loss']:10.2e}")
    print("\nmedian ms (ratio to nchw (before), to nhwc):")
    for comp, per in time_components(w, args.repeats, not args.no_vmpo).items():
        base, ship = per["nchw (before)"], per["nhwc"]
        for name, t in per.items():
            print(f"  {comp:18s} {name:16s} {1000 * t:9.1f} ms  x{t / base:5.2f}  x{t / ship:5.2f}")
    if not args.no_env:
        per = time_env(args.env, args.repeats)
        base = next(iter(per.values()))
        for name, t in per.items():
            print(f"  {'ale step N=8 (x64)':18s} {name:26s} {1000 * t:9.1f} ms  x{t / base:5.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
