"""PPO with the clipped surrogate (Schulman et al. 2017, arXiv 1707.06347).

L = -E[min(r A, clip(r, 1-eps, 1+eps) A)] + c_v L_V - c_e H[pi],   r = pi/pi_old,
A from GAE(lambda), normalised per minibatch; L_V = 1/2 E[(V - R)^2] (optionally the
clipped form max((V-R)^2, (V_old + clip(V - V_old, -eps, eps) - R)^2), CleanRL);
Adam with the learning rate annealed linearly to 0; gradient-norm clipping.

The gradient is defined here, once: autograd of `ppo_loss` through `minibatch_loss`.
On the CPU, MLP actor-critics (the MuJoCo and classic defaults) take the epochs through
a numpy fast path (`algos.fast.ppo_step`, several times faster per 64-sample minibatch:
benchmarks/ppo_minibatch.py) only while its gradient is shown equal to this one on the
run's own batches and config (checked at construction and at intervals; on a mismatch
the rest of the run is autograd, with a line on stderr and fast/ppo_numpy_step = 0).
Both paths take the same permutations, drawn once per update. Diagnostics come from
`ppo_loss` on the whole batch after the epochs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch

from algos import ops
from algos.base import EnvSpec
from algos.config import ConfigError
from algos.fast.flat_adam import FlatAdam
from algos.fast.ppo_step import NumpyPPOStep
from algos.onpolicy import OnPolicyConfig, OnPolicyLearner, epochs_gradient_steps
from algos.returns import gae


@dataclass
class Config(OnPolicyConfig):
    """PPO. Defaults: the PPO paper's MuJoCo setting (Table 3) with CleanRL's
    `ppo_continuous_action.py` details; per-suite values in SUITE_DEFAULTS."""

    lr: float = 3e-4
    """Adam learning rate (PPO paper Table 3)."""
    anneal_lr: bool = True
    """Anneal the learning rate linearly to 0 over the run (CleanRL; PPO paper Atari)."""
    adam_eps: float = 1e-5
    """Adam epsilon (CleanRL; OpenAI baselines)."""
    gae_lambda: float = 0.95
    """GAE lambda (PPO paper Table 3)."""
    epochs: int = 10
    """Passes over each rollout (PPO paper Table 3)."""
    minibatch_size: int = 64
    """Samples per gradient step (PPO paper Table 3; SB3 default)."""
    clip_coef: float = 0.2
    """Surrogate clipping epsilon (PPO paper Table 3)."""
    clip_value: bool = False
    """Clip the value loss around the old values (CleanRL clips; Andrychowicz et al. 2021 find it hurts)."""
    vf_coef: float = 0.5
    """Value-loss coefficient c_v (CleanRL; OpenAI baselines)."""
    ent_coef: float = 0.0
    """Entropy-bonus coefficient c_e (PPO paper: 0 on MuJoCo, 0.01 on Atari)."""
    max_grad_norm: float = 0.5
    """Global gradient-norm clip (CleanRL; OpenAI baselines); 0 turns it off."""
    norm_adv: bool = True
    """Normalise advantages per minibatch (CleanRL; OpenAI baselines)."""

    SUITE_DEFAULTS: ClassVar[dict[str, dict]] = {
        # MuJoCo: the class defaults (PPO paper Table 3, CleanRL), one env.
        "mujoco": {"num_envs": 1},
        # Atari: PPO paper Table 5 with CleanRL ppo_atari.py (8 envs x 128 steps,
        # 4 minibatches of 256, 4 epochs, clip 0.1, c_v 0.5, c_e 0.01, lr 2.5e-4).
        "atari": {"num_envs": 8, "rollout_length": 128, "lr": 2.5e-4, "epochs": 4,
                  "minibatch_size": 256, "clip_coef": 0.1, "clip_value": True,
                  "ent_coef": 0.01, "norm_obs": False, "norm_reward": False,
                  "clip_reward": True},
        # Classic control: CleanRL ppo.py (4 envs x 128 steps, 4 minibatches, 4 epochs,
        # c_e 0.01, lr 2.5e-4, no normalisation) ...
        "classic": {"num_envs": 4, "rollout_length": 128, "lr": 2.5e-4, "epochs": 4,
                    "minibatch_size": 128, "ent_coef": 0.01, "norm_obs": False,
                    "norm_reward": False},
        # ... except where RL Baselines3 Zoo tunes an env (hyperparams/ppo.yml).
        "CartPole-v1": {"num_envs": 8, "rollout_length": 32, "minibatch_size": 256,
                        "gae_lambda": 0.8, "gamma": 0.98, "epochs": 20, "ent_coef": 0.0,
                        "lr": 1e-3},
        "Pendulum-v1": {"num_envs": 4, "rollout_length": 1024, "minibatch_size": 64,
                        "gae_lambda": 0.95, "gamma": 0.9, "epochs": 10, "ent_coef": 0.0,
                        "lr": 1e-3, "norm_obs": True, "norm_reward": True},
        # MinAtar (ours): the Atari collector and passes above (8 envs x 128 steps, 4
        # epochs of 256, lr 2.5e-4, c_e 0.01; PPO paper Table 5, CleanRL ppo_atari.py)
        # on MinAtar's small CNN; clip 0.2 (the PPO paper's default), raw 0/1 observations,
        # rewards neither clipped nor scaled (already +1 per event).
        "minatar": {"num_envs": 8, "rollout_length": 128, "lr": 2.5e-4, "epochs": 4,
                    "minibatch_size": 256, "ent_coef": 0.01, "norm_obs": False,
                    "norm_reward": False},
        # Other Gymnasium ids (suites.anyenv): vectors ("gym") take the class defaults;
        # uint8 images ("gym-pixels") the Atari collector and passes, without Atari's
        # reward clipping (ours).
        "gym-pixels": {"num_envs": 8, "rollout_length": 128, "lr": 2.5e-4, "epochs": 4,
                       "minibatch_size": 256, "clip_coef": 0.1, "ent_coef": 0.01,
                       "norm_obs": False, "norm_reward": False},
    }

    def validate(self) -> None:
        checks = [
            ("rollout_length", self.rollout_length >= 1, "expected a positive int"),
            ("epochs", self.epochs >= 1, "expected a positive int"),
            ("minibatch_size", self.minibatch_size >= 1, "expected a positive int (samples per gradient step)"),
            ("max_grad_norm", self.max_grad_norm >= 0.0, "expected a float >= 0 (0: off)"),
            ("lr", self.lr > 0.0, "expected a float > 0"),
        ]
        for name, ok, msg in checks:
            if not ok:
                raise ConfigError(name, f"{msg}, got {getattr(self, name)!r}")


# gradient steps per agent env step of a resolved config: the dry-run's cost model
gradient_steps_per_env_step = epochs_gradient_steps


def ppo_loss(
    log_prob: torch.Tensor,
    old_log_prob: torch.Tensor,
    advantages: torch.Tensor,
    value: torch.Tensor,
    old_value: torch.Tensor,
    returns: torch.Tensor,
    entropy: torch.Tensor,
    clip_coef: float,
    vf_coef: float,
    ent_coef: float,
    clip_value: bool = False,
    with_stats: bool = True,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The PPO loss on a minibatch; every input is [N] (advantages already normalised
    if wanted). Returns (loss, stats) with stats detached; `with_stats=False` skips the
    diagnostics (an empty dict) in the inner loop, where every op costs."""
    log_ratio = log_prob - old_log_prob
    ratio = log_ratio.exp()
    surr1 = ratio * advantages
    surr2 = ratio.clamp(1.0 - clip_coef, 1.0 + clip_coef) * advantages
    policy_loss = -torch.min(surr1, surr2).mean()
    if clip_value:
        v_clipped = old_value + (value - old_value).clamp(-clip_coef, clip_coef)
        value_loss = 0.5 * torch.max((value - returns).pow(2), (v_clipped - returns).pow(2)).mean()
    else:
        value_loss = 0.5 * (value - returns).pow(2).mean()
    ent = entropy.mean()
    loss = policy_loss + vf_coef * value_loss - ent_coef * ent
    if not with_stats:
        return loss, {}
    with torch.no_grad():
        stats = {
            "loss/policy": policy_loss.detach(),
            "loss/value": value_loss.detach(),
            "loss/entropy": ent.detach(),
            "loss/total": loss.detach(),
            # k3 estimator of KL(old || new) (Schulman 2020, "Approximating KL divergence")
            "kl/approx": ((ratio - 1.0) - log_ratio).mean(),
            "clip_fraction": ((ratio - 1.0).abs() > clip_coef).float().mean(),
        }
    return loss, stats


class Learner(OnPolicyLearner):
    """PPO on the shared on-policy interface."""

    def __init__(self, cfg: Config, spec: EnvSpec, num_envs: int, total_steps: int,
                 device: torch.device) -> None:
        super().__init__(cfg, spec, num_envs, total_steps, device)
        # one flat parameter vector: the 320 minibatch steps per rollout are launch-bound
        self.opt = FlatAdam(self.net.parameters(), lr=cfg.lr, eps=cfg.adam_eps)
        self.total_updates = max(1, math.ceil(total_steps / (cfg.rollout_length * num_envs)))
        # MLP nets on the CPU: the numpy epochs, while checked equal to autograd
        self.fast = NumpyPPOStep(self) if NumpyPPOStep.supports(self) else None

    def learn(self, data: dict[str, torch.Tensor]) -> dict[str, float]:
        cfg, net = self.cfg, self.net
        values = self.values(data["obs"])
        adv, ret = gae(data["rewards"], values, data["terminated"], data["truncated"],
                       cfg.gamma, cfg.gae_lambda, data["valid"])
        valid = data["valid"]
        obs = ops.masked_flatten(data["obs"][:-1], valid)
        actions = ops.masked_flatten(data["actions"], valid)
        old_v = ops.masked_flatten(values[:-1], valid)
        adv, ret = ops.masked_flatten(adv, valid), ops.masked_flatten(ret, valid)
        if cfg.anneal_lr:
            frac = 1.0 - self.updates / self.total_updates
            for g in self.opt.param_groups:
                g["lr"] = cfg.lr * max(frac, 0.0)
        # one permutation per epoch, drawn before either path runs (so that an update
        # the fast path's check turns down is autograd's with the same draws)
        n, mb = obs.shape[0], cfg.minibatch_size
        perms = [torch.randperm(n, device=obs.device) for _ in range(cfg.epochs)]
        with torch.no_grad():
            probe = ops.spread(obs)  # kl/step: how far this update moves the policy
            before = net.policy(probe)
        batch = (obs, actions, old_v, adv, ret)
        if self.fast is not None and perms and self.fast.allowed(batch, perms[0][:mb],
                                                                 f"at update {self.updates}"):
            old_logp, grad_norms = self.fast.epochs(*batch, perms)
        else:
            old_logp, grad_norms = self._epochs_torch(*batch, perms)
        # Diagnostics once, on the whole batch with the updated policy (cheaper than per
        # minibatch, and kl/approx is then the KL the whole update moved the policy by).
        with torch.no_grad():
            dist, v = net(obs)
            a = (adv - adv.mean()) / (adv.std() + 1e-8) if cfg.norm_adv and n > 1 else adv
            _, stats = ppo_loss(net.head.log_prob(dist, actions), old_logp, a, v, old_v, ret,
                                net.head.entropy(dist), cfg.clip_coef, cfg.vf_coef,
                                cfg.ent_coef, cfg.clip_value)
        out = {k: float(v_) for k, v_ in stats.items()}
        out["grad_norm"] = sum(float(g) for g in grad_norms) / len(grad_norms)
        out["lr"] = self.opt.param_groups[0]["lr"]
        if not self.spec.discrete:
            out["policy/std"] = float(dist["std"].mean())
        with torch.no_grad():
            # the whole batch's forward above serves both: no second pass
            out["policy/entropy"] = out["loss/entropy"]
            after = {k: ops.spread(x) for k, x in dist.items()}
            out["kl/step"] = float(net.head.kl(before, after).mean())
        # explained variance of the value targets (CleanRL's diagnostic)
        out["value/explained_variance"] = float(ops.explained_variance(old_v, ret))
        return out

    def minibatch_loss(self, obs, actions, old_logp, old_v, adv, ret) -> torch.Tensor:
        """The loss of one minibatch step, tensors [n, ...] (advantages normalised here when
        norm_adv): what the autograd path back-propagates, and the definition the numpy
        path is checked against."""
        cfg, net = self.cfg, self.net
        if cfg.norm_adv and adv.numel() > 1:
            adv = (adv - adv.mean()) / (adv.std() + 1e-8)
        dist, v = net(obs)
        loss, _ = ppo_loss(
            net.head.log_prob(dist, actions), old_logp, adv, v, old_v, ret,
            net.head.entropy(dist), cfg.clip_coef, cfg.vf_coef, cfg.ent_coef,
            cfg.clip_value, with_stats=False,
        )
        return loss

    def _epochs_torch(self, obs, actions, old_v, adv, ret, perms) -> tuple[torch.Tensor, list[float]]:
        """The minibatch epochs through autograd, one permutation of the batch per epoch;
        returns (old log-probs [N], grad norms)."""
        cfg, net = self.cfg, self.net
        # behaviour log-probs recomputed with the acting weights (unchanged since the
        # rollout) in the same float32 maths as the update, so the first ratio is 1
        with torch.no_grad():
            old_logp = net.head.log_prob(net.policy(obs), actions)
        n, mb = obs.shape[0], cfg.minibatch_size
        grad_norms = []
        for perm in perms:
            # one gather per epoch; minibatches are then slices (views), not gathers
            e_obs, e_act, e_logp, e_v, e_adv, e_ret = (
                x[perm] for x in (obs, actions, old_logp, old_v, adv, ret))
            for i in range(0, n, mb):
                s = slice(i, i + mb)
                loss = self.minibatch_loss(e_obs[s], e_act[s], e_logp[s], e_v[s], e_adv[s], e_ret[s])
                self.opt.zero_grad()
                loss.backward()
                grad_norms.append(self.opt.clip_grad_norm_(cfg.max_grad_norm))
                self.opt.step()
        return old_logp, grad_norms

    def fast_guards(self) -> list:
        guards = super().fast_guards()
        if self.opt.flat.device.type == "cpu":  # FlatAdam's numpy step is CPU-only
            guards.append(self.opt.guard)
        return guards + ([self.fast.guard] if self.fast is not None else [])

    def extra_state(self) -> dict:
        return {"opt": self.opt.state_dict()}

    def load_extra_state(self, state: dict) -> None:
        self.opt.load_state_dict(state["opt"])
