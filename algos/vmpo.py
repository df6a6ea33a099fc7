"""V-MPO (Song et al. 2019, "V-MPO: On-Policy Maximum a Posteriori Policy Optimization
for Discrete and Continuous Control", arXiv 1909.12238).

One learner step per rollout ("batch" = the T x B rollout, NEXT_STEP reset steps
masked out everywhere), minimising L = L_V + L_pi + L_eta + L_alpha; by default one
gradient step on the whole batch (the paper), or `epochs` passes of minibatches of
`minibatch_size` samples, each step its own E-step, M-step and dual step:

- Policy evaluation: L_V = 1/2 mean (n(s) - (G - mu)/sigma)^2 with n-step
  bootstrapped returns G from the online value function (n = the rollout length by
  default) and PopArt normalisation (`algos.popart`). The E-step's advantages are in
  PopArt's units, A = (G - V(s)) / sigma (`popart_advantages`, as PopArt-IMPALA's policy
  update; Hessel et al. 2019), so that eta, started at 1 and moved by Adam, lives on one
  scale whatever the rewards' (unnormalised, it could not catch up with returns in the
  100s: see tests/test_vmpo.py).
- E-step: keep the top `topk_fraction` of the batch by advantage (D~);
  psi = softmax_{D~}(A / eta) (log-sum-exp shifted), and the temperature loss
  L_eta = eta eps_eta + eta log mean_{D~} exp(A / eta) on the same samples (`algos.ops`,
  shared with MPO: written as max A + eta log mean exp((A - max A) / eta), so that its
  gradient in eta stays accurate in float32 at large A / eta).
- M-step: L_pi = -sum_{D~} sg[psi] log pi_theta(a|s) and the trust region
  L_alpha = mean_D [alpha (eps_alpha - sg[KL]) + sg[alpha] KL] with
  KL = KL(pi_target || pi_theta); for Gaussians decoupled into a mean part (alpha_mu,
  eps_alpha_mu) and a covariance part (alpha_sigma, eps_alpha_sigma) (Abdolmaleki et al.
  2018b; `algos.distributions.gaussian_kl_decoupled`), one alpha for categoricals.
- The target network pi_target is a separate copy of the online network that acts in
  the environment; it is refreshed from the online network every `target_period`
  learner steps, after the step. The KL is taken against it. With `target_period=1`
  no copy is kept: the online network acts, and the KL is taken against the behaviour
  policy, i.e. the online network's output before this update's step (computed without
  gradient on the batch; the acting weights and observation statistics are unchanged
  since the rollout, so this is exactly the policy that acted). With one gradient step
  per batch that KL and its gradient are then zero at the step: the trust region does
  not constrain theta (alpha only decays) - which is what that ablation removes.

Duals: eta and the alphas are kept positive by `algos.duals` and trained by their own
optimiser (`dual_lr`, `dual_optimizer`); the default parameterisation is the paper's
projection to >= 1e-8 after every step. An alpha at that floor is the constraint being
inactive, not stuck: with one gradient step per batch the policy moves less than
eps_alpha per target period for much of a short run, so L_alpha's gradient eps - KL > 0
drives alpha down; it leaves the floor within a few steps once KL exceeds eps
(tests/test_vmpo.py). More gradient steps per batch (`epochs`, `minibatch_size`) make it
bind.

Evaluation (`act(..., deterministic=True)`) uses the online network's mode, i.e. the
latest parameters; training data are collected by the target network.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import ClassVar, Literal

import numpy as np
import torch

from algos import ops
from algos.base import EnvSpec
from algos.config import ConfigError
from algos.distributions import categorical_kl, gaussian_kl, gaussian_kl_decoupled
from algos.duals import Duals, make_optimizer
from algos.networks import ActorCritic
from algos.onpolicy import (OnPolicyConfig, OnPolicyLearner, adam, epochs_gradient_steps,
                            minibatches)
from algos.popart import PopArt
from algos.returns import gae, nstep_returns


@dataclass
class Config(OnPolicyConfig):
    """V-MPO. Defaults: the paper (arXiv 1909.12238: its method section and the appendix tables of
    hyper-parameters) where it gives a value, on the shared MuJoCo-style network and
    rollout of `OnPolicyConfig`; per-suite values in SUITE_DEFAULTS."""

    lr: float = 1e-4
    """Adam learning rate of the networks (paper: Adam, 1e-4)."""
    adam_eps: float = 1e-8
    """Adam epsilon (the paper is silent: Kingma & Ba's default)."""
    max_grad_norm: float = 0.0
    """Global gradient-norm clip of the network step; 0 turns it off (the paper clips nothing)."""
    norm_reward: bool = False
    """Scale rewards by the running return std; off because PopArt normalises the values (paper: PopArt)."""
    # -- policy evaluation
    advantage: Literal["nstep", "gae"] = "nstep"
    """Value targets and advantages: "nstep" bootstrapped returns (paper's policy evaluation) or "gae" (GAE(lambda), an ablation)."""
    nstep: int = 0
    """n of the n-step returns; 0 means the rollout length (paper: n = the unroll length)."""
    gae_lambda: float = 0.95
    """lambda when advantage="gae" (PPO paper Table 3's value, for a like-for-like ablation)."""
    epochs: int = 1
    """Passes of gradient steps over each batch (paper: one step per batch, at 1e9-1e10 frames; more for small budgets, where the alpha trust region is what keeps the passes near the target policy)."""
    minibatch_size: int = 0
    """Samples per gradient step, shuffled each pass; 0 means the whole batch (paper)."""
    vf_coef: float = 1.0
    """Weight of L_V in the total loss (paper: L = L_V + L_pi + L_eta + L_alpha, weight 1)."""
    popart: bool = True
    """PopArt value normalisation (paper: used even for single tasks)."""
    popart_advantages: bool = True
    """With PopArt, the E-step takes the advantages in PopArt's normalised units, (G - V)/sigma = (G - mu)/sigma - n(s), as PopArt-IMPALA's policy update does (Hessel et al. 2019, arXiv 1809.04474, whose PopArt V-MPO uses): eta then lives on one scale whatever the rewards' (false: unnormalised A = G - V)."""
    popart_beta: float = 3e-4
    """PopArt statistics step size beta (3e-4: PopArt-IMPALA's, Hessel et al. 2019, arXiv 1809.04474, not a value of the V-MPO paper's tables; the PopArt paper, van Hasselt et al. 2016 sec. 4.1, used 1e-4; suites override)."""
    # -- E-step
    topk_fraction: float = 0.5
    """Fraction of the batch, by highest advantage, kept in psi and L_eta (paper: the top half); 1.0 keeps all."""
    eps_eta: float = 0.02
    """E-step KL bound epsilon_eta (paper's tables: DMLab 0.1 single-task, 0.5 multi-task; Atari 0.02 single-task, this default; suites override)."""
    eta_init: float = 1.0
    """Initial temperature eta (paper appendix tables: 1.0)."""
    learn_eta: bool = True
    """Learn eta through L_eta; false keeps eta fixed at eta_init (an ablation)."""
    importance_weighting: bool = False
    """Weight psi and L_eta by rho = min(1, pi_target/pi_behaviour) (paper appendix; off in its experiments; rho = 1 while the target acts): psi ~ rho exp(A/eta) over the kept samples, and L_eta's mean is the paper's rho-weighted sum over the kept samples divided by their number, eta log(1/|D~| sum rho exp(A/eta)) (as rlax; not divided by sum rho)."""
    # -- M-step
    trust_region: bool = True
    """The KL trust region L_alpha (paper's M-step); false drops L_alpha and the alphas (an ablation)."""
    decouple_kl: bool = True
    """Gaussian policies: separate (alpha_mu, eps_alpha_mu) and (alpha_sigma, eps_alpha_sigma); false: one alpha on the full KL."""
    eps_alpha: float = 0.01
    """KL bound of the single alpha (categorical, or decouple_kl=false). Paper, log-uniform by domain: DMLab [0.001, 0.01) single-task, [0.01, 0.1) multi-task; Atari [0.005, 0.01) single-task, [0.001, 0.01) multi-task. 0.01 (ours): the upper end of the single-task ranges, the lower end of DMLab multi-task's."""
    eps_alpha_mu: float = 0.0075
    """KL bound of the mean part for Gaussians (paper, continuous control: log-uniform in [0.005, 0.01]; the arithmetic middle, ours)."""
    eps_alpha_sigma: float = 1e-5
    """KL bound of the covariance part for Gaussians (paper, continuous control: log-uniform in [5e-6, 5e-5]; ours, below its geometric middle 1.6e-5)."""
    alpha_init: float = 5.0
    """Initial alpha of the single-alpha trust region (paper appendix, discrete actions: 5.0)."""
    alpha_mu_init: float = 1.0
    """Initial alpha_mu (paper appendix, continuous control: 1.0)."""
    alpha_sigma_init: float = 1.0
    """Initial alpha_sigma (paper appendix, continuous control: 1.0)."""
    target_period: int = 100
    """Learner steps between refreshes of the target network (paper: 10 DMLab, 100 multi-task Atari, 1000 single Atari); 1: no target network, and then the KL is taken against the behaviour policy, which is zero with zero gradient at the one step per batch: the trust region no longer constrains theta (an ablation, see the module docstring)."""
    # -- duals
    dual_parameterization: Literal["projection", "softplus"] = "projection"
    """How eta and alpha stay positive: "projection" to >= dual_min after each step (paper) or softplus."""
    dual_min: float = 1e-8
    """Lower bound of eta and alpha (paper: 1e-8)."""
    dual_lr: float = 1e-4
    """Learning rate of the duals' own optimiser (the paper gives one Adam rate, 1e-4, and none of the duals' own)."""
    dual_optimizer: Literal["adam", "sgd"] = "adam"
    """Optimiser of the duals (paper: Adam)."""

    SUITE_DEFAULTS: ClassVar[dict[str, dict]] = {
        # The paper's settings (Tables in its appendix) are for 1e9-1e10 frames from many
        # actors; with one gradient step per batch, budgets of 1e5-1e7 steps need more,
        # smaller batches, a larger learning rate, faster duals, a shorter target period
        # and faster PopArt statistics. Values below marked "ours" are our choices,
        # checked to learn (tests/test_vmpo.py, the PR notes); the rest cite the paper.
        #
        # MuJoCo: 8 envs x 32 steps (256 samples per learner step; ours), lr 1e-3 (ours;
        # paper 1e-4), dual lr 1e-2 (ours; Acme's MPO dual lr), T_target 10 (paper: DMLab),
        # eps_eta 0.1 (paper: DMLab single-task), PopArt beta 1e-2 (ours).
        "mujoco": {"num_envs": 8, "rollout_length": 32, "lr": 1e-3, "dual_lr": 1e-2,
                   "target_period": 10, "eps_eta": 0.1, "popart_beta": 1e-2},
        # Atari: paper's single-task Atari eps_eta 0.02, eps_alpha 0.01 (class default: the
        # upper end of single-task Atari's [0.005, 0.01)); T_target
        # 100 (paper: multi-task Atari; its single-task 1000 is for ~1e10 frames), 8 envs
        # x 128 steps like PPO (ours), no observation normalisation for pixels, rewards
        # clipped as in DQN/PPO's Atari setting, dual lr 1e-3 and PopArt beta 1e-3 (ours).
        "atari": {"num_envs": 8, "rollout_length": 128, "eps_eta": 0.02, "target_period": 100,
                  "norm_obs": False, "clip_reward": True, "dual_lr": 1e-3, "popart_beta": 1e-3},
        # Classic control: the paper has no setting (all ours): 8 envs x 32 steps, lr 1e-3,
        # dual lr 1e-2, T_target 10, eps_eta 0.1, PopArt beta 1e-2, raw observations.
        "classic": {"num_envs": 8, "rollout_length": 32, "lr": 1e-3, "dual_lr": 1e-2,
                    "target_period": 10, "eps_eta": 0.1, "popart_beta": 1e-2,
                    "norm_obs": False},
        # Pendulum-v1 (ours): 4 passes of 64-sample minibatches over each 256-step batch.
        # With one step per batch V-MPO had not learned it by 300k steps (eval -1,000,
        # seeds 0-1), its alphas at their floor: the policy moved less than eps_alpha per
        # target period. With these passes the trust region binds and seeds 0-3 reached
        # -120..-200 between 200k and 300k steps (lr 3e-3 instead: 2 of 3 seeds).
        "Pendulum-v1": {"epochs": 4, "minibatch_size": 64},
        # MinAtar (ours): the Atari entry's duals and collector, raw rewards (+1 per event)
        # and raw 0/1 observations; lr 1e-3 as for the other small-budget suites.
        "minatar": {"num_envs": 8, "rollout_length": 128, "eps_eta": 0.02,
                    "target_period": 100, "lr": 1e-3, "norm_obs": False, "dual_lr": 1e-3,
                    "popart_beta": 1e-3},
        # Other uint8-image Gymnasium ids (ours): the Atari entry without reward clipping.
        "gym-pixels": {"num_envs": 8, "rollout_length": 128, "eps_eta": 0.02,
                       "target_period": 100, "norm_obs": False, "dual_lr": 1e-3,
                       "popart_beta": 1e-3},
    }

    def validate(self) -> None:
        checks = [
            ("topk_fraction", 0.0 < self.topk_fraction <= 1.0, "expected 0 < value <= 1"),
            ("target_period", self.target_period >= 1, "expected an int >= 1"),
            ("nstep", self.nstep >= 0, "expected an int >= 0 (0: the rollout length)"),
            ("popart_beta", 0.0 < self.popart_beta <= 1.0, "expected 0 < value <= 1"),
            ("rollout_length", self.rollout_length >= 1, "expected a positive int"),
            ("max_grad_norm", self.max_grad_norm >= 0.0, "expected a float >= 0 (0: off)"),
            ("epochs", self.epochs >= 1, "expected an int >= 1"),
            ("minibatch_size", self.minibatch_size >= 0, "expected an int >= 0 (0: the whole batch)"),
        ]
        for name in ("lr", "dual_lr", "eps_eta", "eta_init", "eps_alpha", "eps_alpha_mu",
                     "eps_alpha_sigma", "alpha_init", "alpha_mu_init", "alpha_sigma_init",
                     "dual_min"):
            checks.append((name, getattr(self, name) > 0.0, "expected a float > 0"))
        for name, ok, msg in checks:
            if not ok:
                raise ConfigError(name, f"{msg}, got {getattr(self, name)!r}")


# gradient steps per agent env step of a resolved config: the dry-run's cost model
gradient_steps_per_env_step = epochs_gradient_steps


# -- pure pieces ---------------------------------------------------------------------


def topk_mask(adv: torch.Tensor, fraction: float) -> torch.Tensor:
    """bool [N]: the ceil(fraction * N) samples with the highest advantages (at least one;
    ties broken by torch.topk). fraction = 1 keeps every sample."""
    n = adv.shape[0]
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    k = min(n, max(1, math.ceil(fraction * n - 1e-9)))
    mask = torch.zeros(n, dtype=torch.bool, device=adv.device)
    if k >= n:
        return mask.fill_(True)
    mask[torch.topk(adv, k, sorted=False).indices] = True
    return mask


def estep(adv: torch.Tensor, eta: torch.Tensor, eps_eta: float, topk_fraction: float,
          log_rho: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """The E-step on a batch of advantages [N] (treated as constants): the top
    `topk_fraction` kept (D~), psi = softmax_{D~}(A / eta + log rho) and
    L_eta = eta eps_eta + eta log (1/|D~| sum_{D~} rho exp(A / eta)) (`algos.ops`; rho = 1
    without `log_rho` [N]).

    Returns (L_eta, psi [N] detached, zero outside the kept set, stats).
    """
    adv = adv.detach()
    keep = topk_mask(adv, topk_fraction)
    a = adv[keep]
    lr_ = None if log_rho is None else log_rho.detach()[keep]
    loss = ops.temperature_loss(a, eta, eps_eta, lr_)
    with torch.no_grad():
        psi_kept = ops.estep_weights(a, eta, lr_)
        psi = torch.zeros_like(adv)
        psi[keep] = psi_kept
        n_kept = a.shape[0]
        ess = 1.0 / psi_kept.pow(2).sum()
        # KL(psi || uniform over the kept samples): eps_eta at L_eta's minimiser
        kl_uniform = ops.kl_to_uniform(psi_kept)
        stats = {
            "loss/eta": loss.detach(),
            "topk/fraction_kept": torch.tensor(n_kept / adv.shape[0]),
            "psi/ess": ess,
            "psi/ess_fraction": ess / n_kept,
            "estep/kl_uniform": kl_uniform,
        }
    return loss, psi, stats


def policy_loss(log_prob: torch.Tensor, psi: torch.Tensor) -> tuple[torch.Tensor, dict]:
    """Weighted maximum likelihood L_pi = -sum_i sg[psi_i] log pi(a_i|s_i) (paper's M-step);
    psi [N] is zero outside the kept samples, so the sum runs over them."""
    loss = -(psi.detach() * log_prob).sum()
    return loss, {"loss/policy": loss.detach()}


def kl_parts(target: dict[str, torch.Tensor], online: dict[str, torch.Tensor], discrete: bool,
             decouple: bool) -> dict[str, torch.Tensor]:
    """Per-sample KL(pi_target || pi_theta) terms [N], keyed by the dual they go with:
    {"alpha": KL} (categorical, or Gaussian with decouple=False) or
    {"alpha_mu": mean part, "alpha_sigma": covariance part} (decoupled Gaussian)."""
    if discrete:
        return {"alpha": categorical_kl(target["logits"].detach(), online["logits"])}
    mu_t, std_t = target["mu"].detach(), target["std"].detach()
    if decouple:
        kl_mu, kl_sigma = gaussian_kl_decoupled(mu_t, std_t, online["mu"], online["std"])
        return {"alpha_mu": kl_mu, "alpha_sigma": kl_sigma}
    return {"alpha": gaussian_kl(mu_t, std_t, online["mu"], online["std"])}


def mstep_trust_region(kls: dict[str, torch.Tensor], duals: Duals, eps: dict[str, float]
                       ) -> tuple[torch.Tensor, dict]:
    """Sum over the KL parts [N] of L_alpha = mean_N [alpha (eps_alpha - sg[KL]) + sg[alpha] KL]
    (paper's M-step, over the whole batch; `ops.kl_constraint_loss`), with their stats."""
    total = torch.zeros((), device=next(iter(kls.values())).device)
    stats: dict[str, torch.Tensor] = {}
    for name, kl in kls.items():
        penalty, dual, _ = ops.kl_constraint_loss(kl, duals[name], eps[name])
        total = total + penalty + dual
    stats["loss/alpha"] = total.detach()
    return total, stats


# -- learner ---------------------------------------------------------------------------


_KL_NAMES = {"alpha": "kl", "alpha_mu": "kl/mean", "alpha_sigma": "kl/std"}


class Learner(OnPolicyLearner):
    """V-MPO on the shared on-policy interface (one learner step per rollout)."""

    def __init__(self, cfg: Config, spec: EnvSpec, num_envs: int, total_steps: int,
                 device: torch.device) -> None:
        super().__init__(cfg, spec, num_envs, total_steps, device)
        self.opt = adam(self.net.parameters(), lr=cfg.lr, eps=cfg.adam_eps)
        self.eps: dict[str, float] = {}
        inits: dict[str, float] = {}
        if cfg.learn_eta:
            inits["eta"] = cfg.eta_init
        if cfg.trust_region:
            if spec.discrete or not cfg.decouple_kl:
                inits["alpha"] = cfg.alpha_init if spec.discrete else cfg.alpha_mu_init
                self.eps["alpha"] = cfg.eps_alpha
            else:
                inits["alpha_mu"], inits["alpha_sigma"] = cfg.alpha_mu_init, cfg.alpha_sigma_init
                self.eps["alpha_mu"], self.eps["alpha_sigma"] = cfg.eps_alpha_mu, cfg.eps_alpha_sigma
        self.duals = Duals(inits, cfg.dual_parameterization, cfg.dual_min).to(device)
        self.dual_opt = make_optimizer(self.duals, cfg.dual_lr, cfg.dual_optimizer) if inits else None
        self.fixed_eta = torch.tensor(float(cfg.eta_init), device=device)
        # A real, separate copy; with target_period 1 there is none and the KL is taken
        # against the online network's output before the step (see the module doc).
        self.target: ActorCritic | None = None
        if cfg.target_period > 1:
            self.target = copy.deepcopy(self.net)
            self.target.requires_grad_(False)
            self.refresh_actor()  # the base class built its actor on the online network
        self.popart = PopArt(1, cfg.popart_beta).to(device) if cfg.popart else None

    # -- acting -----------------------------------------------------------------------
    @property
    def acting_net(self) -> ActorCritic:
        """The target network when there is one (also while the base class initialises,
        before it exists: then the online network)."""
        target = getattr(self, "target", None)
        return target if target is not None else self.net

    def act(self, obs: np.ndarray, deterministic: bool = False):
        """Behaviour: the acting (target) network, through the base class. Evaluation
        (deterministic): the online network's mode, the latest parameters."""
        if not deterministic or self.target is None:
            return super().act(obs, deterministic)
        with torch.inference_mode():
            o = self.obs_norm(torch.from_numpy(obs).to(self.device, non_blocking=True))
            return self.net.head.mode(self.net.policy(o)).cpu().numpy(), {}

    # -- learning ---------------------------------------------------------------------
    def _eta(self) -> torch.Tensor:
        return self.duals["eta"] if "eta" in self.duals else self.fixed_eta  # noqa: SIM401 (Duals has no .get)

    def unnormalized_values(self, obs: torch.Tensor) -> torch.Tensor:
        """V(obs) in the units of the returns, [T+1, B], no gradient."""
        v = self.values(obs)
        return self.popart.denormalize(v) if self.popart is not None else v

    def learn(self, data: dict[str, torch.Tensor]) -> dict[str, float]:
        """One learner step on a rollout: returns, advantages, PopArt and the target's
        policy once; then `epochs` passes of gradient steps over it (the whole batch per
        step, or shuffled minibatches of `minibatch_size`), each step its own E-step (top-k
        of its samples), M-step and dual step, the KL always against the target."""
        cfg, net = self.cfg, self.net
        T = data["rewards"].shape[0]
        valid = data["valid"]
        values = self.unnormalized_values(data["obs"])
        if cfg.advantage == "nstep":
            ret = nstep_returns(data["rewards"], values, data["terminated"], data["truncated"],
                                cfg.gamma, cfg.nstep or T, valid)
        else:
            _, ret = gae(data["rewards"], values, data["terminated"], data["truncated"],
                         cfg.gamma, cfg.gae_lambda, valid)
        adv = ops.masked_flatten(ret - values[:-1], valid)
        if self.popart is not None and cfg.popart_advantages:
            adv_e = adv / self.popart.std[0]  # the statistics V was computed with
        else:
            adv_e = adv
        ret = ops.masked_flatten(ret, valid)
        old_v = ops.masked_flatten(values[:-1], valid)
        obs = ops.masked_flatten(data["obs"][:-1], valid)
        actions = ops.masked_flatten(data["actions"], valid)

        # PopArt: fold the targets in (preserving V's unnormalised outputs), then learn
        # the normalised value on normalised targets.
        if self.popart is not None:
            self.popart.update(ret, net.value_head)
            v_target = self.popart.normalize(ret)
        else:
            v_target = ret

        with torch.no_grad():
            # target_period 1: the behaviour policy, i.e. the online network before this
            # step (it acted the rollout, and the observation statistics are frozen)
            target_params = (self.target if self.target is not None else net).policy(obs)
            log_rho = None
            if cfg.importance_weighting:
                logp_target = self.acting_net.head.log_prob(target_params, actions)
                log_rho = (logp_target - ops.masked_flatten(data["log_prob"], valid)).clamp(max=0.0)

        with torch.no_grad():
            probe = ops.spread(obs)  # kl/step: how far this learner step moves the policy
            before = net.policy(probe)
        n = adv.shape[0]
        size = cfg.minibatch_size if 0 < cfg.minibatch_size < n else n
        steps = []
        for _ in range(cfg.epochs):
            chunks = [None] if size == n else minibatches(n, size, device=obs.device)
            for idx in chunks:
                pick = (lambda x: x) if idx is None else (lambda x: None if x is None else x[idx])
                steps.append(self._step(pick(obs), pick(actions), pick(adv_e), pick(v_target),
                                        {k: pick(v) for k, v in target_params.items()},
                                        pick(log_rho)))
        if self.target is not None and (self.updates + 1) % cfg.target_period == 0:
            self.target.load_state_dict(net.state_dict())

        out = {k: sum(st[k] for st in steps) / len(steps) for k in steps[0]}
        with torch.no_grad():
            out["kl/step"] = float(net.head.kl(before, net.policy(probe)).mean())
        # what the trust region allows each KL part against the target (per target period)
        for name, metric in (("alpha_mu", "kl/allowed_mean"), ("alpha_sigma", "kl/allowed_std"),
                             ("alpha", "kl/allowed_target")):
            if cfg.trust_region and name in self.eps:
                out[metric] = self.eps[name]
        out["dual/eta"] = float(self._eta().detach())
        for name in ("alpha", "alpha_mu", "alpha_sigma"):
            if name in self.duals:
                out[f"dual/{name}"] = float(self.duals[name].detach())
        out["adv/mean"], out["adv/std"] = float(adv.mean()), float(adv.std()) if adv.numel() > 1 else 0.0
        if log_rho is not None:
            out["rho/mean"] = float(log_rho.exp().mean())
        if self.popart is not None:
            out["popart/mean"], out["popart/std"] = float(self.popart.mean[0]), float(self.popart.std[0])
        out["value/explained_variance"] = float(ops.explained_variance(old_v, ret))
        return out

    def _step(self, obs: torch.Tensor, actions: torch.Tensor, adv: torch.Tensor,
              v_target: torch.Tensor, target_params: dict[str, torch.Tensor],
              log_rho: torch.Tensor | None) -> dict[str, float]:
        """One gradient step of L = L_V + L_pi + L_eta + L_alpha on samples [N] (their
        advantages in the E-step's units, normalised value targets, the target's policy)."""
        cfg, net = self.cfg, self.net
        params, v = net(obs)
        log_prob = net.head.log_prob(params, actions)
        eta = self._eta()
        loss_eta, psi, stats = estep(adv, eta, cfg.eps_eta, cfg.topk_fraction, log_rho)
        loss_pi, s = policy_loss(log_prob, psi)
        stats.update(s)
        kls = kl_parts(target_params, params, self.spec.discrete, cfg.decouple_kl or self.spec.discrete)
        if cfg.trust_region:
            loss_alpha, s = mstep_trust_region(kls, self.duals, self.eps)
            stats.update(s)
        else:
            loss_alpha = torch.zeros((), device=obs.device)
        loss_v, s = ops.value_loss(v, v_target)
        stats.update(s)
        if not cfg.learn_eta:
            loss_eta = loss_eta.detach()  # eta is a constant: L_eta only logged
        loss = cfg.vf_coef * loss_v + loss_pi + loss_eta + loss_alpha

        self.opt.zero_grad(set_to_none=True)
        if self.dual_opt is not None:
            self.dual_opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.max_grad_norm > 0:
            stats["grad_norm"] = torch.nn.utils.clip_grad_norm_(net.parameters(), cfg.max_grad_norm)
        self.opt.step()
        if self.dual_opt is not None:
            self.dual_opt.step()
            self.duals.project_()

        out = {k: float(x) for k, x in stats.items()}
        out["loss/total"] = float(loss.detach())
        for name, kl in kls.items():
            out[_KL_NAMES[name]] = float(kl.detach().mean())
        if not self.spec.discrete and "alpha" in kls:
            out["kl/mean"], out["kl/std"] = (float(x.mean()) for x in gaussian_kl_decoupled(
                target_params["mu"], target_params["std"], params["mu"].detach(), params["std"].detach()))
        if not self.spec.discrete:
            out["policy/std"] = float(params["std"].detach().mean())
        # both action kinds, as PPO and TRPO log it (runs before 2026-12-07 logged it for
        # discrete actions only, so their diagnostics figure has no V-MPO entropy line)
        out["policy/entropy"] = float(net.head.entropy(params).detach().mean())
        return out

    # -- checkpoints ------------------------------------------------------------------
    def named_parameters(self):
        yield from self.net.named_parameters()
        for name, p in self.duals.named_parameters():
            yield f"duals.{name}", p

    def extra_state(self) -> dict:
        state = {"opt": self.opt.state_dict(), "duals": self.duals.state_dict()}
        if self.dual_opt is not None:
            state["dual_opt"] = self.dual_opt.state_dict()
        if self.target is not None:
            state["target"] = self.target.state_dict()
        if self.popart is not None:
            state["popart"] = self.popart.state_dict()
        return state

    def load_extra_state(self, state: dict) -> None:
        self.opt.load_state_dict(state["opt"])
        self.duals.load_state_dict(state["duals"])
        if self.dual_opt is not None:
            self.dual_opt.load_state_dict(state["dual_opt"])
        if self.target is not None:
            self.target.load_state_dict(state["target"])
        if self.popart is not None:
            self.popart.load_state_dict(state["popart"])
