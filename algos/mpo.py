"""MPO (Abdolmaleki et al. 2018a, "Maximum a Posteriori Policy Optimisation", arXiv
1806.06920; 2018b, "Relative Entropy Regularized Policy Iteration", arXiv 1812.02256),
off-policy, as Acme's MPO agent does it (defaults: `acme/agents/jax/mpo`).

Data: the shared collector acts with the online policy (a numpy snapshot, as the
on-policy learners) and hands its rollouts to `observe`, which appends them to a
`algos.buffers.SequenceReplay`. After `min_replay_size` steps, `ready()` is True while
updates are owed: `replay_ratio` learner updates per environment step.

One update, on `batch_size` sequences of `nstep` steps sampled uniformly from replay:

- Policy evaluation: Q(s, a) regressed (1/2 squared error) on its first step towards an
  n-step TD target G = sum_k gamma^k r_k + gamma^m V'(s_m) (`returns.nstep_returns`,
  cut at episode ends: termination does not bootstrap, truncation bootstraps from the
  final observation, no sequence starts at or bootstraps across a reset step), with
  V'(s) = E_{a ~ pi'} Q'(s, a) estimated from `num_samples` actions of the target policy
  pi' and the target critic Q'. Optionally Retrace(lambda) targets (`returns.retrace`).
- E-step (on the sequences' first states s): N = `num_samples` actions a_j ~ pi'(.|s);
  weights q_j(s) = softmax_j(Q'(s, a_j) / eta) per state (log-sum-exp: no overflow);
  temperature dual  L_eta = eta * epsilon + eta * mean_s log mean_j exp(Q'(s, a_j) / eta),
  whose minimiser makes mean_s KL(q(s) || pi'(s)) = epsilon (sample estimate); both
  from `algos.ops`, shared with V-MPO (L_eta shifted by max_j Q'(s, a_j), so that its
  gradient in eta stays accurate in float32 when Q' / eta is large).
  Action penalisation (Acme's default; MO-MPO, Abdolmaleki et al. 2020): a second E-step
  on the cost -|a - clip(a, low, high)| with its own temperature and `epsilon_penalty`;
  its weights are added to q.
- M-step: weighted maximum likelihood with decoupled KL constraints (2018b): the mean is
  fitted with the target's std and the std with the target's mean,
      L_pi = -mean_s sum_j q_j [log N(a_j; mu_theta, sigma') + log N(a_j; mu', sigma_theta)],
  and the trust region  sum_d sg[alpha_mu,d] KL_mu,d + sg[alpha_sigma,d] KL_sigma,d
  with the duals' losses alpha (epsilon - sg[KL]), KL_mu = KL(pi' || N(mu_theta, sigma'))
  = sum (mu_theta - mu')^2 / (2 sigma'^2) and KL_sigma = KL(pi' || N(mu', sigma_theta))
  (`distributions.gaussian_kl_decoupled`), per action dimension by default (Acme's
  per_dim_constraining). Categorical policies (discrete actions): the E-step is exact
  over all actions, q(a|s) ~ pi'(a|s) exp(Q'(s,a)/eta), L_pi = -mean_s sum_a q log pi_theta,
  and one KL(pi' || pi_theta) constraint with `epsilon_policy` (Acme's categorical MPO).
- The KL is against the *target* policy, a separate copy refreshed with the critic's
  target every `target_period` updates - never the online network's own stop-gradient
  copy. Duals (eta, alphas) are kept positive by `algos.duals` (softplus, as Acme) and
  trained by their own Adam (`dual_lr`).

The critic sees actions clipped to the action bounds (what the environment executed)
and rescaled to [-1, 1]; the policy's log-likelihoods use the unclipped samples.

Fast paths (`algos/fast/`), each used only while it equals its definition here, on the
run's own inputs at construction and at intervals; on a mismatch it steps aside for the
rest of the run with one line on stderr and a metric (fast/<name> = 0): the target
critic on the sampled actions (`mpo_targets.SampledQ`, definition `QCritic.sampled`,
metric fast/sampled_q), the update as one captured CUDA graph on a GPU
(`cuda_graph.GraphedUpdate`, definition `learn`, metric fast/cuda_graph) and acting in
numpy (`numpy_actor.NumpyActor`, definition the policy's forward).

Choices where Acme and the papers leave room (see the config fields): a plain
(non-distributional) critic, the shared policy torso of all algorithms, Adam steps of
policy, critic and duals on one combined loss, no observation normalisation by default
(Acme uses none on the control suite), the target on the first step of each sampled
sequence only.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
import torch
import torch.nn.functional as F

from algos import ops
from algos.base import Batch, EnvSpec
from algos.buffers import SequenceReplay
from algos.config import ConfigError
from algos.distributions import categorical_kl, gaussian_kl_decoupled, gaussian_log_prob
from algos.duals import Duals, make_optimizer
from algos.fast import cuda_graph
from algos.fast.cuda_graph import CudaBackend, GraphedUpdate
from algos.fast.mpo_targets import SampledQ
from algos.memory import keep_freed_memory
from algos.fast.numpy_actor import NumpyActor
from algos.networks import MPOPolicy, QCritic, sample_with_log_prob
from algos.normalize import ObsNormalizer
from algos.onpolicy import adam
from algos.returns import nstep_returns, retrace


@dataclass
class Config:
    """MPO. Defaults: Acme's MPO agent (acme/agents/jax/mpo: config.py MPOConfig and
    types.py Gaussian/CategoricalPolicyLossConfig; loss in acme/jax/losses/mpo.py), with
    the network and collector choices stated per field; per-suite values in SUITE_DEFAULTS."""

    # -- collection (read by the training loop)
    rollout_length: int = 250
    """Steps per env per collect; the owed updates run between collects, and the actor's weights refresh then (our choice: Acme's actors refresh every 1000 steps; 250 keeps metrics.csv at 4,000 row sets per 1M steps)."""
    gamma: float = 0.99
    """Discount (Acme MPOConfig.discount 0.99)."""
    # -- networks
    hidden: tuple[int, ...] = (64, 64)
    """Policy torso hidden sizes: the same torso as every algorithm here (PPO paper sec. 6.1); Acme uses (256, 256, 256)."""
    activation: str = "tanh"
    """Policy torso activation (the shared default)."""
    critic_hidden: tuple[int, ...] = (256, 256)
    """Q-network hidden sizes (our choice: the usual off-policy critic, TD3/SAC's (256, 256); Acme uses (512, 512, 256); the on-policy methods' V(s) is (64, 64))."""
    critic_activation: str = "relu"
    """Q-network activation (TD3/SAC's ReLU; Acme's ELU costs about 3x more on the CPU here)."""
    init_std: float = 1.0
    """Initial Gaussian std (ours: the shared default of every algorithm here, not an Acme value); the std is state-dependent (MPO)."""
    min_std: float = 1e-4
    """Lower bound of the Gaussian std, softplus(x) + min_std (ours: networks.GaussianHead's floor, not an Acme value)."""
    norm_obs: bool = False
    """Running observation normalisation (off: Acme uses none on the control suite)."""
    # -- replay
    replay_capacity: int = 1_000_000
    """Replay size in env steps (Acme max_replay_size 1e6)."""
    min_replay_size: int = 1_000
    """Env steps stored before the first update (Acme min_replay_size 1000)."""
    replay_ratio: float = 0.125
    """Learner updates per env step (Acme samples_per_insert 32 / batch_size 256 = 0.125)."""
    batch_size: int = 256
    """Sequences (states) per update (Acme batch_size 256)."""
    # -- policy evaluation
    nstep: int = 5
    """n of the n-step TD targets, also the sampled sequence length (Acme FromTransitions(n_step=5))."""
    use_retrace: bool = False
    """Retrace(lambda) targets over the sequence instead of n-step (Acme use_retrace False)."""
    retrace_lambda: float = 0.95
    """Retrace lambda (Acme retrace_lambda 0.95)."""
    critic_lr: float = 1e-4
    """Adam learning rate of the critic (Acme learning_rate 1e-4)."""
    # -- policy improvement
    policy_lr: float = 1e-4
    """Adam learning rate of the policy (Acme learning_rate 1e-4)."""
    num_samples: int = 20
    """Actions sampled per state from the target policy (E-step and V' estimates) (Acme num_samples 20)."""
    epsilon: float = 0.1
    """E-step KL bound on KL(q || pi_target) (Acme epsilon 0.1, Gaussian and categorical)."""
    epsilon_mean: float = 0.0025
    """M-step KL bound of the mean part (Acme epsilon_mean 0.0025)."""
    epsilon_stddev: float = 1e-6
    """M-step KL bound of the covariance part (Acme epsilon_stddev 1e-6)."""
    epsilon_policy: float = 0.0025
    """M-step KL bound of a categorical policy (Acme CategoricalPolicyLossConfig.epsilon_policy 0.0025)."""
    per_dim_constraining: bool = True
    """One alpha_mu and one alpha_sigma per action dimension (Acme per_dim_constraining True)."""
    action_penalization: bool = True
    """MO-MPO penalty on actions outside the bounds (Acme action_penalization True)."""
    epsilon_penalty: float = 0.001
    """KL bound of the action-penalty E-step (Acme epsilon_penalty 0.001)."""
    eta_init: float = 10.0
    """Initial temperature, Gaussian (Acme init_log_temperature 10 through softplus: 10.0)."""
    alpha_mean_init: float = 10.0
    """Initial alpha_mu (Acme init_log_alpha_mean 10 through softplus: 10.0)."""
    alpha_stddev_init: float = 1000.0
    """Initial alpha_sigma (Acme init_log_alpha_stddev 1000 through softplus: 1000.0)."""
    discrete_eta_init: float = 3.0486
    """Initial temperature, categorical (Acme init_log_temperature 3: softplus(3) = 3.0486)."""
    discrete_alpha_init: float = 3.0486
    """Initial alpha, categorical (Acme init_log_alpha 3: softplus(3) = 3.0486)."""
    dual_lr: float = 1e-2
    """Adam learning rate of the duals (Acme dual_learning_rate 1e-2)."""
    dual_parameterization: Literal["projection", "softplus"] = "softplus"
    """How the duals stay positive (Acme: softplus(x) + 1e-8)."""
    dual_min: float = 1e-8
    """Lower bound of the duals (Acme _MPO_FLOAT_EPSILON 1e-8)."""
    target_period: int = 100
    """Learner updates between refreshes of the target policy and critic (Acme target_update_period 100)."""
    max_grad_norm: float = 40.0
    """Gradient-norm clip of policy and critic, each; 0 turns it off (Acme grad_norm_clip 40)."""
    adam_eps: float = 1e-8
    """Adam epsilon (optax's default, which Acme uses)."""

    SUITE_DEFAULTS: ClassVar[dict[str, dict]] = {
        # MuJoCo: the class defaults (Acme), one env.
        "mujoco": {"num_envs": 1},
        # Atari (untuned): 8 envs like the others, a 100k-step replay (28 KB per pixel
        # observation), sign rewards are not clipped (Acme: reward_clip inf).
        "atari": {"num_envs": 8, "rollout_length": 32, "replay_capacity": 100_000},
        # Classic control (our choice, to learn within a CI budget): one update per env
        # step, faster learning rates, a shorter target period and the shared (64, 64)
        # size for the critic; Acme's constraints, sample count and batch size.
        "classic": {"num_envs": 1, "rollout_length": 50, "replay_ratio": 1.0,
                    "policy_lr": 3e-4, "critic_lr": 3e-4, "target_period": 25,
                    "critic_hidden": (64, 64)},
        # MinAtar and other images (untuned, ours): the Atari entry.
        "minatar": {"num_envs": 8, "rollout_length": 32, "replay_capacity": 100_000},
        "gym-pixels": {"num_envs": 8, "rollout_length": 32, "replay_capacity": 100_000},
    }

    def validate(self) -> None:
        checks = [
            ("rollout_length", self.rollout_length >= 1, "expected a positive int"),
            ("nstep", self.nstep >= 1, "expected an int >= 1"),
            ("num_samples", self.num_samples >= 1, "expected an int >= 1"),
            ("batch_size", self.batch_size >= 1, "expected an int >= 1"),
            ("replay_ratio", self.replay_ratio > 0, "expected a float > 0"),
            ("min_replay_size", self.min_replay_size >= 0, "expected an int >= 0"),
            ("target_period", self.target_period >= 1, "expected an int >= 1"),
            ("retrace_lambda", 0.0 <= self.retrace_lambda <= 1.0, "expected 0 <= value <= 1"),
            ("max_grad_norm", self.max_grad_norm >= 0, "expected a float >= 0 (0: off)"),
            ("replay_capacity", self.replay_capacity >= 2 * (self.rollout_length + self.nstep + 2),
             "expected an int well above rollout_length + nstep"),
        ]
        for name in ("policy_lr", "critic_lr", "dual_lr", "epsilon", "epsilon_mean",
                     "epsilon_stddev", "epsilon_policy", "epsilon_penalty", "eta_init",
                     "alpha_mean_init", "alpha_stddev_init", "discrete_eta_init",
                     "discrete_alpha_init", "dual_min", "init_std"):
            checks.append((name, getattr(self, name) > 0.0, "expected a float > 0"))
        for name, ok, msg in checks:
            if not ok:
                raise ConfigError(name, f"{msg}, got {getattr(self, name)!r}")


def gradient_steps_per_env_step(config) -> float:
    """Learner updates per agent env step of a resolved config (config.json's `config`):
    `replay_ratio` once min_replay_size steps are in replay (`Learner.updates_owed`), so
    slightly high for a run not much longer than min_replay_size. The dry-run's cost
    model (sweeps/plan.py)."""
    return float(config["replay_ratio"])


# -- pure pieces ---------------------------------------------------------------------


def estep_weights(q: torch.Tensor, eta: torch.Tensor | float, epsilon: float
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample-based E-step over q [N, B] (N actions per state, treated as constants).

    Returns (weights [N, B] detached: softmax over the N samples of q / eta, per state;
    the temperature loss eta * epsilon + eta * mean_B log mean_N exp(q / eta)), both
    from `algos.ops` (overflow-safe, and accurate in float32 at large |q| / eta)."""
    return ops.estep_weights(q, eta), ops.temperature_loss(q, eta, epsilon)


def categorical_estep(q: torch.Tensor, target_logits: torch.Tensor, eta: torch.Tensor | float,
                      epsilon: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact E-step for a categorical target policy: q [B, K] for every action.

    Returns (log q(a|s) [B, K] detached, q ~ pi_target exp(Q / eta); the temperature loss
    eta * epsilon + eta * mean_B log sum_a pi_target(a|s) exp(Q(s,a) / eta), i.e.
    `ops.temperature_loss` over the K actions weighted by K pi_target(a|s))."""
    log_prior = F.log_softmax(target_logits.detach(), dim=-1)
    logits = q.detach() / (eta.detach() if torch.is_tensor(eta) else eta) + log_prior
    log_q = logits - torch.logsumexp(logits, dim=-1, keepdim=True)
    k = q.shape[-1]
    loss = ops.temperature_loss(q, eta, epsilon, log_weights=log_prior + math.log(k), dim=-1)
    return log_q.detach(), loss


def action_penalty_cost(actions: torch.Tensor, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    """-|a - clip(a, low, high)|_2 over the last dim (0 inside the bounds): [..., A] -> [...]."""
    out = actions - torch.minimum(torch.maximum(actions, low), high)
    return -out.norm(dim=-1)


def gaussian_mstep_kls(target: dict[str, torch.Tensor], online: dict[str, torch.Tensor],
                       per_dim: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Decoupled KLs (each [B, A] per dimension, or [B, 1] summed):
    KL_mu = KL(pi_target || N(mu_online, std_target)), KL_sigma = KL(pi_target || N(mu_target, std_online))."""
    mu_t, std_t = target["mu"].detach(), target["std"].detach()
    kl_mu, kl_sigma = gaussian_kl_decoupled(mu_t.unsqueeze(-1), std_t.unsqueeze(-1),
                                            online["mu"].unsqueeze(-1), online["std"].unsqueeze(-1))
    if not per_dim:
        kl_mu, kl_sigma = kl_mu.sum(-1, keepdim=True), kl_sigma.sum(-1, keepdim=True)
    return kl_mu, kl_sigma


def gaussian_mpo_loss(online: dict[str, torch.Tensor], target: dict[str, torch.Tensor],
                      actions: torch.Tensor, weights: torch.Tensor, alpha_mean: torch.Tensor,
                      alpha_stddev: torch.Tensor, epsilon_mean: float, epsilon_stddev: float,
                      per_dim: bool = True) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The decoupled Gaussian M-step (2018b): weighted maximum likelihood of the sampled
    actions [N, B, A] under weights [N, B], the mean fitted with the target's std and the
    std with the target's mean, plus the alpha-weighted KL penalties and the alphas'
    dual losses (`ops.kl_constraint_loss`). online/target: {"mu","std"} [B, A]; alpha_* [D]
    (D = A per dimension, or 1). Returns (loss, stats)."""
    mu_t, std_t = target["mu"].detach(), target["std"].detach()
    w = weights.detach()
    logp_mean = gaussian_log_prob(online["mu"], std_t, actions)  # [N, B]: fixed std
    logp_std = gaussian_log_prob(mu_t, online["std"], actions)  # fixed mean
    loss_pi = -(w * logp_mean).sum(0).mean() - (w * logp_std).sum(0).mean()
    kl_mu, kl_sigma = gaussian_mstep_kls(target, online, per_dim)
    pen_mu, dual_mu, mkl_mu = ops.kl_constraint_loss(kl_mu, alpha_mean, epsilon_mean)
    pen_sigma, dual_sigma, mkl_sigma = ops.kl_constraint_loss(kl_sigma, alpha_stddev, epsilon_stddev)
    loss = loss_pi + pen_mu + pen_sigma + dual_mu + dual_sigma
    stats = {
        "loss/policy": loss_pi.detach(),
        "loss/kl_penalty": (pen_mu + pen_sigma).detach(),
        "loss/alpha": (dual_mu + dual_sigma).detach(),
        "kl/mean": mkl_mu.sum(),
        "kl/std": mkl_sigma.sum(),
        "kl/mean_rel": (mkl_mu / epsilon_mean).mean(),
        "kl/std_rel": (mkl_sigma / epsilon_stddev).mean(),
    }
    return loss, stats


def categorical_mpo_loss(online_logits: torch.Tensor, target_logits: torch.Tensor,
                         log_q: torch.Tensor, alpha: torch.Tensor, epsilon_policy: float
                         ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The categorical M-step: cross-entropy -mean_B sum_a q(a|s) log pi_theta(a|s) with
    log_q [B, K] from `categorical_estep`, and one KL(pi_target || pi_theta) constraint
    (alpha [1], epsilon_policy). Returns (loss, stats)."""
    logp = F.log_softmax(online_logits, dim=-1)
    loss_pi = -(log_q.detach().exp() * logp).sum(-1).mean()
    kl = categorical_kl(target_logits.detach(), online_logits).unsqueeze(-1)  # [B, 1]
    pen, dual, mkl = ops.kl_constraint_loss(kl, alpha, epsilon_policy)
    loss = loss_pi + pen + dual
    stats = {"loss/policy": loss_pi.detach(), "loss/kl_penalty": pen.detach(),
             "loss/alpha": dual.detach(), "kl": mkl.sum(), "kl/rel": mkl.sum() / epsilon_policy}
    return loss, stats


def critic_loss(q: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """1/2 mean (Q(s, a) - G)^2 over [B] (`ops.value_loss`). Returns (loss, stats)."""
    loss, stats = ops.value_loss(q, target, "loss/critic")
    stats.update({"critic/target_mean": target.detach().mean(), "critic/q_mean": q.detach().mean()})
    return loss, stats


def bootstrap_index(terminated: torch.Tensor, truncated: torch.Tensor) -> torch.Tensor:
    """For sequences [L, B] (from their first step): the index j in 1..L of the
    observation the n-step target of step 0 bootstraps from (the step after the first
    episode end, or L), [B] int64. `nstep_returns(..., n=L)[0]` reads values[j] only."""
    L = terminated.shape[0]
    done = (terminated | truncated).to(torch.int64)
    ended = done.cumsum(0) > 0  # [L, B]: an end at or before t
    first = torch.where(ended.any(0), ended.to(torch.int64).argmax(0), torch.full_like(done[0], L - 1))
    return first + 1


# -- learner ---------------------------------------------------------------------------


class Learner:
    """MPO on the shared learner interface (off-policy: replay through `observe`)."""

    STATE_NAMES = ("policy", "critic", "target_policy", "target_critic", "duals",
                   "policy_opt", "critic_opt", "dual_opt")
    """What an update changes (the CUDA graph's eager check copies them)."""

    def __init__(self, cfg: Config, spec: EnvSpec, num_envs: int, total_steps: int,
                 device: torch.device) -> None:
        self.cfg, self.spec, self.device = cfg, spec, device
        self.num_envs, self.total_steps = num_envs, total_steps
        if device.type == "cpu":
            keep_freed_memory()
        self.policy = MPOPolicy(spec, cfg.hidden, cfg.activation, cfg.init_std, cfg.min_std).to(device)
        self.critic = QCritic(spec, cfg.critic_hidden, cfg.critic_activation).to(device)
        self.target_policy = copy.deepcopy(self.policy).requires_grad_(False)
        self.target_critic = copy.deepcopy(self.critic).requires_grad_(False)
        self.policy_opt = adam(self.policy.parameters(), lr=cfg.policy_lr, eps=cfg.adam_eps)
        self.critic_opt = adam(self.critic.parameters(), lr=cfg.critic_lr, eps=cfg.adam_eps)

        # duals: one scalar per constraint (per action dimension with per_dim_constraining)
        self.penalize = (not spec.discrete) and cfg.action_penalization
        if spec.discrete:
            inits = {"eta": cfg.discrete_eta_init, "alpha": cfg.discrete_alpha_init}
            self.n_alpha = 1
        else:
            self.n_alpha = spec.action_dim if cfg.per_dim_constraining else 1
            inits = {"eta": cfg.eta_init}
            if self.penalize:
                inits["eta_penalty"] = cfg.eta_init
            for i in range(self.n_alpha):
                inits[f"alpha_mean_{i}"] = cfg.alpha_mean_init
                inits[f"alpha_stddev_{i}"] = cfg.alpha_stddev_init
        self.duals = Duals(inits, cfg.dual_parameterization, cfg.dual_min).to(device)
        self.dual_opt = make_optimizer(self.duals, cfg.dual_lr)
        if not spec.discrete:
            self.register_bounds()

        self.obs_norm = ObsNormalizer(spec.obs_shape, enabled=cfg.norm_obs and not spec.pixels)
        extras = ("log_prob",) if cfg.use_retrace else ()
        self.buffer = SequenceReplay(cfg.replay_capacity, num_envs, extras, device=device)
        self.updates = 0
        self.env_steps = 0
        seed = int(torch.randint(0, 2**62, ()).item())
        self.act_rng = np.random.default_rng(seed)
        self.sample_rng = np.random.default_rng(seed + 1)
        self.np_actor = (NumpyActor(self.policy, cfg.activation, normalize=self.obs_norm)
                         if NumpyActor.supports(self.policy) else None)
        self._actor_stale = True
        # fast paths, each used only while it equals its definition (algos/fast/)
        self.sampled_q = SampledQ()
        if not spec.discrete:
            self.sampled_q.check_at_construction(self.target_critic, cfg.num_samples)
        # the normaliser's statistics are replaced each rollout, which a graph would not see
        self.graph = (GraphedUpdate(self, self.STATE_NAMES, CudaBackend(device))
                      if device.type == "cuda" and cuda_graph.ENABLED and not self.obs_norm.enabled
                      else None)

    def register_bounds(self) -> None:
        low = torch.tensor(self.spec.action_low, dtype=torch.float32, device=self.device)
        high = torch.tensor(self.spec.action_high, dtype=torch.float32, device=self.device)
        self.low = torch.where(torch.isfinite(low), low, torch.full_like(low, -1e30))
        self.high = torch.where(torch.isfinite(high), high, torch.full_like(high, 1e30))

    def optimizers(self) -> tuple[torch.optim.Optimizer, ...]:
        return self.policy_opt, self.critic_opt, self.dual_opt

    # -- acting -------------------------------------------------------------------------
    def _refresh_actor(self) -> None:
        if self.np_actor is not None:
            if self.obs_norm.enabled:
                self.np_actor.snapshot(self.obs_norm._mean.cpu().numpy(),
                                       self.obs_norm._inv_std.cpu().numpy(), self.obs_norm.clip)
            else:
                self.np_actor.snapshot()
        self._actor_stale = False

    def act(self, obs: np.ndarray, deterministic: bool = False):
        """The online policy: a sample (behaviour) or its mode (evaluation)."""
        if self.np_actor is not None:
            if self._actor_stale:
                self._refresh_actor()
            action, logp = self.np_actor(obs, deterministic, self.act_rng)
            return action, ({} if deterministic else {"log_prob": logp})
        with torch.inference_mode():
            o = self.obs_norm(torch.from_numpy(obs).to(self.device))
            params = self.policy(o)
            if deterministic:
                return self.policy.head.mode(params).cpu().numpy(), {}
            action, logp = sample_with_log_prob(self.policy.head, params)
            return action.cpu().numpy(), {"log_prob": logp.cpu()}

    # -- the loop's calls ---------------------------------------------------------------
    def observe(self, batch: Batch) -> None:
        self.buffer.add(batch)
        self.env_steps += batch.num_steps * batch.num_envs
        if self.obs_norm.enabled:
            self.obs_norm.update_from(batch.obs[:-1][batch.valid])
            self._actor_stale = True

    def updates_owed(self) -> int:
        """replay_ratio updates per env step after the first min_replay_size steps."""
        return max(0, math.floor(self.cfg.replay_ratio * (self.env_steps - self.cfg.min_replay_size) + 1e-9))

    def ready(self) -> bool:
        return (len(self.buffer) >= self.cfg.min_replay_size
                and self.updates < self.updates_owed()
                and self.buffer.can_sample(self.cfg.nstep))

    def update(self) -> dict[str, torch.Tensor | float]:
        cfg = self.cfg
        if self.graph is not None and self.graph.active:
            stats = self.graph()
        else:
            seq = self.buffer.sample(cfg.batch_size, cfg.nstep, self.sample_rng)
            stats = self.learn(seq)
        self.updates += 1
        if self.updates % cfg.target_period == 0:
            self.refresh_targets()
        self._actor_stale = True
        stats["replay/size"] = float(len(self.buffer))
        if not self.spec.discrete:
            stats.update(self.sampled_q.stats())
        if self.graph is not None:
            stats.update(self.graph.stats())
        if self.np_actor is not None:
            stats.update(self.np_actor.guard.stats())
        return stats

    def refresh_targets(self) -> None:
        # in place (load_state_dict copies into the same tensors): a captured graph sees it
        self.target_policy.load_state_dict(self.policy.state_dict())
        self.target_critic.load_state_dict(self.critic.state_dict())

    # -- learning -----------------------------------------------------------------------
    def _alphas(self, prefix: str) -> torch.Tensor:
        return torch.stack([self.duals[f"{prefix}_{i}"] for i in range(self.n_alpha)])

    def noise_shape(self, length: int | None = None, batch: int | None = None) -> tuple[int, ...] | None:
        """The standard-normal draws of one update on `batch` sequences of `length` steps
        (default: nstep, batch_size), [N, M, A]: N sampled actions for each of the M states
        the target networks evaluate (each sequence's first and bootstrap states, 2B; all
        of its L+1 states with Retrace, (L+1)B); None (discrete: the E-step is exact)."""
        if self.spec.discrete:
            return None
        cfg = self.cfg
        L, B = length or cfg.nstep, batch or cfg.batch_size
        return (cfg.num_samples, (L + 1) * B if cfg.use_retrace else 2 * B, self.spec.action_dim)

    def _target_values(self, obs: torch.Tensor, noise: torch.Tensor | None
                       ) -> tuple[torch.Tensor, dict, torch.Tensor | None, torch.Tensor | None]:
        """For states obs [M, ...] and standard-normal noise [N, M, A]: (V'(s) [M], target
        policy params, sampled actions mu' + std' * noise [N, M, A] and their Q' [N, M]
        (continuous; None, Q'(s, .) [M, K] discrete))."""
        params = self.target_policy(obs)
        if self.spec.discrete:
            q_all = self.target_critic(obs)
            v = (F.softmax(params["logits"], -1) * q_all).sum(-1)
            return v, params, None, q_all
        mu, std = params["mu"], params["std"]
        actions = mu + std * noise
        q = self.sampled_q(self.target_critic, obs, actions)  # = target_critic.sampled
        return q.mean(0), params, actions, q

    def learn(self, seq: dict[str, torch.Tensor], noise: torch.Tensor | None = None
              ) -> dict[str, torch.Tensor | float]:
        """One update on sequences from replay; `noise` [`noise_shape()`] the standard-normal
        draws of the sampled actions (drawn here when None: the same draws either way)."""
        cfg, dev = self.cfg, self.device
        obs = self.obs_norm(seq["obs"].to(dev))  # [L+1, B, ...]
        act = seq["actions"].to(dev)
        rew, term = seq["rewards"].to(dev), seq["terminated"].to(dev)
        trunc, valid = seq["truncated"].to(dev), seq["valid"].to(dev)
        L, B = rew.shape
        if noise is None and not self.spec.discrete:
            noise = torch.randn(self.noise_shape(L, B), device=dev)
        obs0 = obs[0]

        # -- targets and E-step values from the target networks (no gradient)
        with torch.no_grad():
            if cfg.use_retrace:
                flat = obs.flatten(0, 1)
                v_all, tparams_all, samples_all, q_all = self._target_values(flat, noise)
                values = v_all.view(L + 1, B)
                tp = {k: x.view(L + 1, B, *x.shape[1:]) for k, x in tparams_all.items()}
                head = self.target_policy.head
                q_taken = self.target_critic.taken(obs[:-1].flatten(0, 1), act.flatten(0, 1)).view(L, B)
                log_pi = head.log_prob({k: x[:-1].flatten(0, 1) for k, x in tp.items()},
                                       act.flatten(0, 1)).view(L, B)
                log_rho = log_pi - seq["log_prob"].to(dev)
                g = retrace(rew, q_taken, values, log_rho, term, trunc, cfg.gamma,
                            cfg.retrace_lambda, valid)[0]
                tparams = {k: x[0] for k, x in tp.items()}
                if self.spec.discrete:
                    q_e = q_all.view(L + 1, B, -1)[0]
                    samples = None
                else:
                    samples = samples_all.view(cfg.num_samples, L + 1, B, -1)[:, 0]
                    q_e = q_all.view(cfg.num_samples, L + 1, B)[:, 0]
            else:
                j = bootstrap_index(term, trunc)  # [B]
                boot_obs = obs[j, torch.arange(B, device=dev)]
                v_all, tparams_all, samples_all, q_all = self._target_values(torch.cat([obs0, boot_obs]), noise)
                values = torch.zeros(L + 1, B, device=dev)
                values[j, torch.arange(B, device=dev)] = v_all[B:]
                g = nstep_returns(rew, values, term, trunc, cfg.gamma, L, valid)[0]
                tparams = {k: x[:B] for k, x in tparams_all.items()}
                if self.spec.discrete:
                    q_e, samples = q_all[:B], None
                else:
                    q_e, samples = q_all[:, :B], samples_all[:, :B]

        # -- policy evaluation
        q = self.critic.taken(obs0, act[0])
        loss_q, stats = critic_loss(q, g)

        # -- E-step and M-step
        online = self.policy(obs0)
        eta = self.duals["eta"]
        if self.spec.discrete:
            log_q, loss_eta = categorical_estep(q_e, tparams["logits"], eta, cfg.epsilon)
            loss_pi, s = categorical_mpo_loss(online["logits"], tparams["logits"], log_q,
                                              self.duals["alpha"].view(1), cfg.epsilon_policy)
            with torch.no_grad():
                kl_q = (log_q.exp() * (log_q - F.log_softmax(tparams["logits"], -1))).sum(-1).mean()
                stats["dual/alpha"] = self.duals["alpha"].detach()
        else:
            weights, loss_eta = estep_weights(q_e, eta, cfg.epsilon)
            kl_q = ops.kl_to_uniform(weights).mean()
            if self.penalize:
                cost = action_penalty_cost(samples, self.low, self.high)
                w_pen, loss_pen = estep_weights(cost, self.duals["eta_penalty"], cfg.epsilon_penalty)
                weights = weights + w_pen
                loss_eta = loss_eta + loss_pen
                stats["dual/eta_penalty"] = self.duals["eta_penalty"].detach()
                stats["kl/penalty_rel"] = ops.kl_to_uniform(w_pen).mean() / cfg.epsilon_penalty
            loss_pi, s = gaussian_mpo_loss(online, tparams, samples, weights,
                                           self._alphas("alpha_mean"), self._alphas("alpha_stddev"),
                                           cfg.epsilon_mean, cfg.epsilon_stddev, cfg.per_dim_constraining)
            with torch.no_grad():
                stats["policy/std"] = online["std"].mean()
                stats["policy/mean_abs"] = online["mu"].abs().mean()
                stats["dual/alpha_mean"] = self._alphas("alpha_mean").mean()
                stats["dual/alpha_stddev"] = self._alphas("alpha_stddev").mean()
        stats.update(s)
        loss = loss_q + loss_pi + loss_eta

        self.policy_opt.zero_grad(set_to_none=True)
        self.critic_opt.zero_grad(set_to_none=True)
        self.dual_opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.max_grad_norm > 0:
            stats["grad_norm/policy"] = torch.nn.utils.clip_grad_norm_(
                self.policy.parameters(), cfg.max_grad_norm, foreach=True)
            stats["grad_norm/critic"] = torch.nn.utils.clip_grad_norm_(
                self.critic.parameters(), cfg.max_grad_norm, foreach=True)
        self.policy_opt.step()
        self.critic_opt.step()
        self.dual_opt.step()
        self.duals.project_()

        with torch.no_grad():
            # how far this update moved the policy on its states, and what it was allowed
            # (the bounds on the KL against the target policy)
            after = self.policy(obs0)
            head = self.policy.head
            stats["kl/step"] = head.kl({k: x.detach() for k, x in online.items()}, after).mean()
            stats["policy/entropy"] = head.entropy(after).mean()
            if self.spec.discrete:  # constants: Python floats (no host-to-device copy)
                stats["kl/allowed_target"] = cfg.epsilon_policy
            else:
                stats["kl/allowed_mean"] = cfg.epsilon_mean
                stats["kl/allowed_std"] = cfg.epsilon_stddev
            stats["loss/eta"] = loss_eta.detach()
            stats["loss/total"] = loss.detach()
            stats["dual/eta"] = eta.detach()
            stats["kl/q_rel"] = kl_q / cfg.epsilon
            stats["q/mean"] = q_e.mean()
            stats["q/min"] = q_e.min(0).values.mean() if not self.spec.discrete else q_e.min(-1).values.mean()
            stats["q/max"] = q_e.max(0).values.mean() if not self.spec.discrete else q_e.max(-1).values.mean()
        # 0-dim tensors, not floats: the loop reads them once per rollout, so a GPU never
        # waits on the host between updates
        # copies: a projected dual's tensor is the parameter itself, which later steps
        # change in place before the loop reads the stats
        return {k: v.detach().clone() if torch.is_tensor(v) else float(v) for k, v in stats.items()}

    # -- checkpoints --------------------------------------------------------------------
    def named_parameters(self):
        for prefix, module in (("policy", self.policy), ("critic", self.critic),
                               ("target_policy", self.target_policy),
                               ("target_critic", self.target_critic), ("duals", self.duals)):
            for name, p in module.named_parameters():
                yield f"{prefix}.{name}", p

    def state_dict(self) -> dict[str, Any]:
        return {
            "policy": self.policy.state_dict(),
            "critic": self.critic.state_dict(),
            "target_policy": self.target_policy.state_dict(),
            "target_critic": self.target_critic.state_dict(),
            "policy_opt": self.policy_opt.state_dict(),
            "critic_opt": self.critic_opt.state_dict(),
            "duals": self.duals.state_dict(),
            "dual_opt": self.dual_opt.state_dict(),
            "obs_norm": self.obs_norm.state_dict(),
            "buffer": self.buffer.state_dict(),
            "updates": self.updates,
            "env_steps": self.env_steps,
            "act_rng": self.act_rng.bit_generator.state,
            "sample_rng": self.sample_rng.bit_generator.state,
            # a fast path that stepped aside stays aside in a resumed run
            "fast": {"sampled_q": self.sampled_q.guard.state_dict(),
                     **({"cuda_graph": self.graph.guard.state_dict()} if self.graph is not None else {}),
                     **({"numpy_actor": self.np_actor.guard.state_dict()} if self.np_actor is not None else {})},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.policy.load_state_dict(state["policy"])
        self.critic.load_state_dict(state["critic"])
        self.target_policy.load_state_dict(state["target_policy"])
        self.target_critic.load_state_dict(state["target_critic"])
        self.policy_opt.load_state_dict(state["policy_opt"])
        self.critic_opt.load_state_dict(state["critic_opt"])
        self.duals.load_state_dict(state["duals"])
        self.dual_opt.load_state_dict(state["dual_opt"])
        self.obs_norm.load_state_dict(state["obs_norm"])
        self.buffer.load_state_dict(state["buffer"])
        self.updates = int(state["updates"])
        self.env_steps = int(state["env_steps"])
        self.act_rng.bit_generator.state = state["act_rng"]
        self.sample_rng.bit_generator.state = state["sample_rng"]
        self._actor_stale = True
        # the loaded optimiser states are new tensors (a captured graph would update the
        # old ones), and a GPU run's `capturable` groups would fail on the CPU
        for opt in self.optimizers():
            for group in opt.param_groups:
                group["capturable"] = False
        fast = state.get("fast", {})
        if "sampled_q" in fast:
            self.sampled_q.guard.load_state_dict(fast["sampled_q"])
        if "numpy_actor" in fast and self.np_actor is not None:
            self.np_actor.guard.load_state_dict(fast["numpy_actor"])
        if self.graph is not None:
            if "cuda_graph" in fast:
                self.graph.guard.load_state_dict(fast["cuda_graph"])
            self.graph.reset()
