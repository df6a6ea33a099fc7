"""TRPO (Schulman et al. 2015, "Trust Region Policy Optimization", arXiv 1502.05477).

One policy step per rollout, on the whole rollout (NEXT_STEP reset steps masked out):

    maximise  L(theta) = mean[ pi_theta(a|s) / pi_old(a|s) * A ]
    s.t.      KLbar(theta) = mean_s KL(pi_old(.|s) || pi_theta(.|s)) <= delta

- A from GAE(lambda) with the value function before this update (`algos.returns.gae`),
  normalised over the rollout (sb3-contrib's `normalize_advantage`).
- Natural-gradient direction s ~= F^-1 g by `conjugate_gradient` (paper appendix C:
  10 iterations) on Fisher-vector products `F v + damping v`. F is the Hessian of KLbar
  at theta_old, computed by double back-propagation (`make_fvp`): the KL is taken
  between the policy and a stop-gradient copy of itself, which is zero with a zero
  gradient at theta_old but whose *Hessian* there is the Fisher matrix - the one place
  where a KL against one's own stop-gradient copy is the right thing.
- The step scaled to the trust region: beta = sqrt(2 delta / s^T F s), full step beta s
  (the quadratic model's KL equals delta), then `line_search` backtracks by `shrink^i`
  and accepts the first step whose *measured* KLbar <= delta and whose surrogate
  improves; if none does, the old parameters stay (paper sec. 6 and appendix C).
- The value function is fitted separately with Adam, `vf_epochs` passes of minibatches
  over the rollout towards the GAE returns (sb3-contrib `n_critic_updates`).

Discrete (categorical) and continuous (Gaussian) actions alike: the KLs come from the
policy head (`algos.distributions`). For pixel observations the network is built with
separate policy and value torsos, so that fitting the value never moves the policy
outside its trust region.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch.nn.utils import parameters_to_vector, vector_to_parameters

from algos import ops
from algos.base import EnvSpec
from algos.config import ConfigError
from algos.networks import ActorCritic
from algos.onpolicy import OnPolicyConfig, OnPolicyLearner, adam, steps_per_pass
from algos.returns import gae


@dataclass
class Config(OnPolicyConfig):
    """TRPO. Defaults: the issue's (CG 10 iterations, delta 0.01, both also Schulman et
    al. 2015, appendix C) and otherwise sb3-contrib's `TRPO` defaults (n_steps 2048,
    critic Adam 1e-3 in minibatches of 128 for 10 epochs, CG damping 0.1, line search
    0.8^i for at most 10 tries, GAE 0.95, gamma 0.99), on the shared network and
    normalisation of `OnPolicyConfig`; per-suite values in SUITE_DEFAULTS."""

    max_kl: float = 0.01
    """Trust-region bound delta on the mean KL(pi_old || pi_new) (paper sec. 8 / appendix C: 0.01; sb3-contrib target_kl 0.01)."""
    cg_iters: int = 10
    """Conjugate-gradient iterations (paper appendix C: 10; sb3-contrib uses 15)."""
    cg_damping: float = 0.1
    """Damping lambda added to the Fisher-vector product, F v + lambda v (sb3-contrib cg_damping 0.1)."""
    cg_residual_tol: float = 1e-10
    """Stop CG early when the squared residual falls below this (OpenAI baselines, sb3-contrib: 1e-10)."""
    line_search_shrink: float = 0.8
    """Backtracking factor: step fractions 1, s, s^2, ... (sb3-contrib line_search_shrinking_factor 0.8)."""
    line_search_max_iter: int = 10
    """Step sizes tried before the update is rejected (sb3-contrib line_search_max_iter 10)."""
    fvp_subsample: int = 1
    """Use every k-th sample for the Fisher-vector products (Schulman's thesis pp. 40-42; sb3-contrib sub_sampling_factor 1)."""
    gae_lambda: float = 0.95
    """GAE lambda (sb3-contrib 0.95; Schulman et al. 2016)."""
    norm_adv: bool = True
    """Normalise advantages over the rollout (sb3-contrib normalize_advantage)."""
    vf_lr: float = 1e-3
    """Adam learning rate of the value function (sb3-contrib learning_rate 1e-3)."""
    vf_epochs: int = 10
    """Passes over the rollout fitting the value function (sb3-contrib n_critic_updates 10)."""
    vf_minibatch_size: int = 128
    """Samples per value-function Adam step (sb3-contrib batch_size 128)."""
    adam_eps: float = 1e-5
    """Adam epsilon of the value optimiser (SB3's policies set 1e-5)."""

    SUITE_DEFAULTS: ClassVar[dict[str, dict]] = {
        # MuJoCo: the class defaults (sb3-contrib defaults with the CG 10 and
        # delta 0.01), one env; obs and reward normalisation on, as RL Zoo's
        # `normalize: true` for its MuJoCo TRPO runs.
        "mujoco": {"num_envs": 1},
        # Atari: PPO's Atari setting of the collector (8 envs x 128, Nature CNN, sign
        # rewards); no published TRPO-Atari setting is taken over beyond the paper's delta.
        "atari": {"num_envs": 8, "rollout_length": 128, "norm_obs": False,
                  "norm_reward": False, "clip_reward": True, "vf_epochs": 4,
                  "vf_minibatch_size": 256},
        # Classic control: RL Baselines3 Zoo hyperparams/trpo.yml where it tunes the env.
        "classic": {"num_envs": 2, "rollout_length": 1024, "norm_obs": False,
                    "norm_reward": False},
        "CartPole-v1": {"num_envs": 2, "rollout_length": 512, "vf_minibatch_size": 512,
                        "cg_damping": 1e-3, "gae_lambda": 0.98, "gamma": 0.99,
                        "vf_lr": 1e-3, "vf_epochs": 20},
        "Pendulum-v1": {"num_envs": 2, "rollout_length": 1024, "gamma": 0.9,
                        "vf_epochs": 15, "norm_obs": True, "norm_reward": True},
        # MinAtar and other images (ours): the Atari collector above, raw rewards.
        "minatar": {"num_envs": 8, "rollout_length": 128, "norm_obs": False,
                    "norm_reward": False, "vf_epochs": 4, "vf_minibatch_size": 256},
        "gym-pixels": {"num_envs": 8, "rollout_length": 128, "norm_obs": False,
                       "norm_reward": False, "vf_epochs": 4, "vf_minibatch_size": 256},
    }

    def validate(self) -> None:
        checks = [
            ("max_kl", self.max_kl > 0, "expected a float > 0"),
            ("cg_iters", self.cg_iters >= 1, "expected an int >= 1"),
            ("cg_damping", self.cg_damping >= 0, "expected a float >= 0"),
            ("line_search_shrink", 0 < self.line_search_shrink < 1, "expected 0 < value < 1"),
            ("line_search_max_iter", self.line_search_max_iter >= 1, "expected an int >= 1"),
            ("fvp_subsample", self.fvp_subsample >= 1, "expected an int >= 1"),
            ("vf_lr", self.vf_lr > 0, "expected a float > 0"),
            ("vf_epochs", self.vf_epochs >= 0, "expected an int >= 0"),
            ("vf_minibatch_size", self.vf_minibatch_size >= 1, "expected an int >= 1"),
            ("rollout_length", self.rollout_length >= 1, "expected a positive int"),
        ]
        for name, ok, msg in checks:
            if not ok:
                raise ConfigError(name, f"{msg}, got {getattr(self, name)!r}")


def gradient_steps_per_env_step(config) -> float:
    """Learner steps per agent env step of a resolved config (config.json's `config`): per
    num_envs x rollout_length batch, one natural-gradient policy step (counted as one) and
    `vf_epochs` passes of value-function Adam steps in minibatches of `vf_minibatch_size`.
    Coarse: the policy step (cg_iters Fisher-vector products and a line search over the
    whole batch) costs more than a value step. The dry-run's cost model (sweeps/plan.py)."""
    n = config["num_envs"] * config["rollout_length"]
    return (1 + config["vf_epochs"] * steps_per_pass(n, config["vf_minibatch_size"])) / n


# -- pure pieces ---------------------------------------------------------------------


def conjugate_gradient(Avp: Callable[[torch.Tensor], torch.Tensor], b: torch.Tensor,
                       iters: int = 10, residual_tol: float = 1e-10) -> torch.Tensor:
    """Approximately solve A x = b for a symmetric positive-definite A given only as the
    product `Avp(v) = A @ v` (Hestenes & Stiefel 1952). Starts at x = 0; runs `iters`
    iterations or stops when |r|^2 < residual_tol. Exact after n iterations for an n x n
    system (in exact arithmetic)."""
    x = torch.zeros_like(b)
    r = b.clone()
    p = b.clone()
    rr = torch.dot(r, r)
    for _ in range(iters):
        if rr < residual_tol:
            break
        Ap = Avp(p)
        alpha = rr / torch.dot(p, Ap)
        x = x + alpha * p
        r = r - alpha * Ap
        rr_new = torch.dot(r, r)
        p = r + (rr_new / rr) * p
        rr = rr_new
    return x


def flat_grad(y: torch.Tensor, params: Sequence[torch.Tensor], create_graph: bool = False,
              retain_graph: bool | None = None) -> torch.Tensor:
    """d y / d params as one flat vector (zeros for parameters y does not depend on)."""
    grads = torch.autograd.grad(y, list(params), create_graph=create_graph,
                                retain_graph=retain_graph, allow_unused=True)
    return torch.cat([(g if g is not None else torch.zeros_like(p)).reshape(-1)
                      for g, p in zip(grads, params)])


def make_fvp(kl: torch.Tensor, params: Sequence[torch.Tensor], damping: float = 0.0
             ) -> Callable[[torch.Tensor], torch.Tensor]:
    """Fisher-vector products by double back-propagation: with g = d kl / d params built
    once with its graph, `fvp(v) = d (g . v) / d params + damping * v`.

    `kl` is the mean KL(sg[pi_old] || pi_theta) over states, a scalar with a graph to
    `params`; at theta = theta_old its Hessian is the Fisher information matrix (its
    value and gradient there are zero). The returned callable may be called many times
    (conjugate-gradient iterations)."""
    params = list(params)
    g = flat_grad(kl, params, create_graph=True)

    def fvp(v: torch.Tensor) -> torch.Tensor:
        hv = flat_grad(torch.dot(g, v.detach()), params, retain_graph=True)
        return hv + damping * v

    return fvp


def fisher_vector_product(kl: torch.Tensor, params: Sequence[torch.Tensor], v: torch.Tensor,
                          damping: float = 0.0) -> torch.Tensor:
    """(H_kl + damping I) v for one vector v: the Hessian of the scalar `kl` w.r.t.
    `params` (the Fisher matrix at theta_old, see `make_fvp`) times v."""
    return make_fvp(kl, params, damping)(v)


def surrogate_loss(log_prob: torch.Tensor, old_log_prob: torch.Tensor, advantages: torch.Tensor
                   ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Negated importance-sampled surrogate, -mean(pi/pi_old * A); inputs [N].
    Returns (loss, stats)."""
    ratio = (log_prob - old_log_prob).exp()
    loss = -(ratio * advantages).mean()
    return loss, {"loss/policy": loss.detach()}


@dataclass
class LineSearchResult:
    params: torch.Tensor
    """The accepted flat parameters (theta_old when nothing was accepted)."""
    accepted: bool
    step_fraction: float
    """Fraction of the full step taken (shrink^i), 0 when rejected."""
    iters: int
    """Candidate steps evaluated."""
    kl: float
    """Measured mean KL of the accepted step (0 when rejected)."""
    improvement: float
    """Surrogate improvement of the accepted step (0 when rejected)."""


def line_search(evaluate: Callable[[torch.Tensor], tuple[float, float]], theta_old: torch.Tensor,
                full_step: torch.Tensor, surrogate_old: float, max_kl: float,
                shrink: float = 0.8, max_iter: int = 10) -> LineSearchResult:
    """Backtracking line search on theta_old + shrink^i * full_step, i = 0..max_iter-1.

    `evaluate(theta) -> (surrogate, mean KL(pi_old || pi_theta))` (the surrogate to be
    maximised). The first candidate with KL <= max_kl and surrogate > surrogate_old is
    accepted; if none is (or one gives a non-finite value), theta_old is returned."""
    frac = 1.0
    for i in range(max_iter):
        theta = theta_old + frac * full_step
        surr, kl = evaluate(theta)
        improvement = surr - surrogate_old
        if math.isfinite(kl) and math.isfinite(improvement) and kl <= max_kl and improvement > 0:
            return LineSearchResult(theta, True, frac, i + 1, kl, improvement)
        frac *= shrink
    return LineSearchResult(theta_old.clone(), False, 0.0, max_iter, 0.0, 0.0)


# -- learner ---------------------------------------------------------------------------


class Learner(OnPolicyLearner):
    """TRPO on the shared on-policy interface (one trust-region step per rollout)."""

    def __init__(self, cfg: Config, spec: EnvSpec, num_envs: int, total_steps: int,
                 device: torch.device) -> None:
        super().__init__(cfg, spec, num_envs, total_steps, device)
        if self.net.shared:
            # pixels: separate torsos, so that the value fit cannot move the policy
            self.net = ActorCritic(spec, cfg.hidden, cfg.activation, shared=False,
                                   state_dependent_std=cfg.state_dependent_std,
                                   init_std=cfg.init_std).to(device)
            self.np_actor = self.make_numpy_actor(self.net)
            self.refresh_actor()
        self.policy_params = self.net.policy_parameters()
        self.vf_opt = adam(self.net.value_parameters(), lr=cfg.vf_lr, eps=cfg.adam_eps)

    def learn(self, data: dict[str, torch.Tensor]) -> dict[str, float]:
        cfg = self.cfg
        values = self.values(data["obs"])
        adv, ret = gae(data["rewards"], values, data["terminated"], data["truncated"],
                       cfg.gamma, cfg.gae_lambda, data["valid"])
        valid = data["valid"]
        obs = ops.masked_flatten(data["obs"][:-1], valid)
        actions = ops.masked_flatten(data["actions"], valid)
        adv, ret = ops.masked_flatten(adv, valid), ops.masked_flatten(ret, valid)
        old_v = ops.masked_flatten(values[:-1], valid)
        if cfg.norm_adv and adv.numel() > 1:
            adv = (adv - adv.mean()) / (adv.std() + 1e-8)

        stats = self.policy_step(obs, actions, adv)
        stats.update(self.fit_value(obs, ret))
        stats["value/explained_variance"] = float(ops.explained_variance(old_v, ret))
        return stats

    def policy_step(self, obs: torch.Tensor, actions: torch.Tensor, adv: torch.Tensor) -> dict[str, float]:
        cfg, net, params = self.cfg, self.net, self.policy_params
        head = net.head
        # one forward pass: theta_old's distribution (detached) and the graph to theta
        new = net.policy(obs)
        old = {k: v.detach() for k, v in new.items()}
        old_logp = head.log_prob(old, actions)
        # gradient of the surrogate at theta_old
        loss, s = surrogate_loss(head.log_prob(new, actions), old_logp, adv)
        g = -flat_grad(loss, params, retain_graph=True)
        surr_old = -float(loss.detach())
        # Fisher-vector products on (a subsample of) the states
        if cfg.fvp_subsample > 1:
            sub = slice(None, None, cfg.fvp_subsample)
            kl_f = head.kl({k: v[sub] for k, v in old.items()}, net.policy(obs[sub])).mean()
        else:
            kl_f = head.kl(old, new).mean()
        fvp = make_fvp(kl_f, params, cfg.cg_damping)
        step_dir = conjugate_gradient(fvp, g, cfg.cg_iters, cfg.cg_residual_tol)
        shs = torch.dot(step_dir, fvp(step_dir))
        del fvp, kl_f, new
        stats: dict[str, float] = {"loss/policy": float(s["loss/policy"]),
                                   "grad_norm": float(g.norm())}
        theta_old = parameters_to_vector(params).detach()
        if not bool(torch.isfinite(shs)) or shs <= 0 or not bool(torch.isfinite(step_dir).all()):
            result = LineSearchResult(theta_old, False, 0.0, 0, 0.0, 0.0)
        else:
            full_step = torch.sqrt(2.0 * cfg.max_kl / shs) * step_dir
            stats["policy/full_step_norm"] = float(full_step.norm())
            stats["policy/expected_improvement"] = float(torch.dot(g, full_step))

            def evaluate(theta: torch.Tensor) -> tuple[float, float]:
                with torch.no_grad():
                    vector_to_parameters(theta, params)
                    p = net.policy(obs)
                    surr = (((head.log_prob(p, actions) - old_logp).exp()) * adv).mean()
                    kl = head.kl(old, p).mean()
                return float(surr), float(kl)

            result = line_search(evaluate, theta_old, full_step, surr_old, cfg.max_kl,
                                 cfg.line_search_shrink, cfg.line_search_max_iter)
        with torch.no_grad():
            vector_to_parameters(result.params, params)
        stats.update({
            "kl": result.kl,
            "policy/improvement": result.improvement,
            "line_search/accepted": float(result.accepted),
            "line_search/step_fraction": result.step_fraction,
            "line_search/iters": float(result.iters),
        })
        with torch.no_grad():
            p = net.policy(obs)
            stats["policy/entropy"] = float(head.entropy(p).mean())
            if not self.spec.discrete:
                stats["policy/std"] = float(p["std"].mean())
        # the KL this update moved the policy by (0 when the line search kept the old
        # parameters) and the bound it was allowed
        stats["kl/step"], stats["kl/allowed"] = result.kl, cfg.max_kl
        return stats

    def fit_value(self, obs: torch.Tensor, ret: torch.Tensor) -> dict[str, float]:
        cfg, net = self.cfg, self.net
        n, mb = obs.shape[0], cfg.vf_minibatch_size
        losses = []
        for _ in range(cfg.vf_epochs):
            perm = torch.randperm(n, device=obs.device)
            e_obs, e_ret = obs[perm], ret[perm]
            for i in range(0, n, mb):
                loss, _ = ops.value_loss(net.value(e_obs[i:i + mb]), e_ret[i:i + mb])
                self.vf_opt.zero_grad(set_to_none=True)
                loss.backward()
                self.vf_opt.step()
                losses.append(loss.detach())
        with torch.no_grad():
            _, s = ops.value_loss(net.value(obs), ret)
        out = {"loss/value": float(s["loss/value"])}
        if losses:
            out["loss/value_fit_mean"] = float(torch.stack(losses).mean())
        return out

    def extra_state(self) -> dict:
        return {"vf_opt": self.vf_opt.state_dict()}

    def load_extra_state(self, state: dict) -> None:
        self.vf_opt.load_state_dict(state["vf_opt"])
