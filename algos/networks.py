"""Torsos, policy heads and value heads shared by every algorithm.

Every learner builds its networks here with the same default torso sizes, so that a
comparison differs only in the algorithm:

- vector observations: an MLP torso, hidden sizes `(64, 64)` with tanh by default (the
  PPO paper's MuJoCo network, Schulman et al. 2017, sec. 6.1; CleanRL; SB3's default);
- pixels (`[4, 84, 84]` uint8): the Nature CNN torso (Mnih et al. 2015) -> 512 units,
  the input divided by 255 inside the torso.

Initialisation is orthogonal (Saxe et al. 2014) with gain sqrt(2) on hidden layers,
0.01 on the policy output and 1 on value outputs (Andrychowicz et al. 2021; CleanRL).

A policy head maps features `[B, F]` to distribution parameters, a dict of tensors
(`{"mu", "std"}` `[B, A]` or `{"logits"}` `[B, N]`), and knows how to sample, score and
compare those parameters, so losses stay generic over discrete and continuous actions.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from algos import distributions as D
from algos.base import EnvSpec

ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU, "elu": nn.ELU}


def init_layer(layer: nn.Module, gain: float = math.sqrt(2.0), bias: float = 0.0) -> nn.Module:
    """Orthogonal weights with `gain`, constant bias."""
    nn.init.orthogonal_(layer.weight, gain)
    nn.init.constant_(layer.bias, bias)
    return layer


def mlp(in_dim: int, hidden: Sequence[int], activation: str = "tanh",
        out_dim: int | None = None, out_gain: float = 1.0) -> nn.Sequential:
    """Linear-activation stack `in_dim -> hidden... [-> out_dim]` (no activation at the end)."""
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
    layers: list[nn.Module] = []
    d = in_dim
    for h in hidden:
        layers += [init_layer(nn.Linear(d, h)), ACTIVATIONS[activation]()]
        d = h
    if out_dim is not None:
        layers.append(init_layer(nn.Linear(d, out_dim), gain=out_gain))
    return nn.Sequential(*layers)


class NatureCNN(nn.Module):
    """Mnih et al. 2015: conv 32x8/4, 64x4/2, 64x3/1, dense 512, ReLU. [B,C,84,84] -> [B,512]."""

    def __init__(self, in_channels: int = 4, out_dim: int = 512) -> None:
        super().__init__()
        self.net = nn.Sequential(
            init_layer(nn.Conv2d(in_channels, 32, 8, stride=4)), nn.ReLU(),
            init_layer(nn.Conv2d(32, 64, 4, stride=2)), nn.ReLU(),
            init_layer(nn.Conv2d(64, 64, 3, stride=1)), nn.ReLU(),
            nn.Flatten(),
            init_layer(nn.Linear(64 * 7 * 7, out_dim)), nn.ReLU(),
        )
        self.out_dim = out_dim

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.net(obs.float() / 255.0)


class MLPTorso(nn.Module):
    """Flattened vector observation [B, *obs] -> features [B, hidden[-1]]."""

    def __init__(self, in_dim: int, hidden: Sequence[int], activation: str) -> None:
        super().__init__()
        self.net = mlp(in_dim, hidden, activation)
        self.out_dim = hidden[-1] if hidden else in_dim

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.net(obs.flatten(1))


def make_torso(spec: EnvSpec, hidden: Sequence[int] = (64, 64), activation: str = "tanh") -> nn.Module:
    """Nature CNN for pixels, else an MLP of `hidden` sizes. Has `.out_dim`."""
    if spec.pixels:
        return NatureCNN(spec.obs_shape[0])
    return MLPTorso(int(math.prod(spec.obs_shape)), tuple(hidden), activation)


class GaussianHead(nn.Module):
    """Diagonal Gaussian policy head: features [B, F] -> {"mu": [B, A], "std": [B, A]}.

    `state_dependent_std=False` (default): std = exp(log_std), a learned vector
    independent of the state, initialised to `init_std` (PPO paper; CleanRL).
    `True`: std = softplus(linear(features)) + min_std, initialised near `init_std`
    (MPO/V-MPO-style heads, Abdolmaleki et al. 2018b).
    """

    discrete = False

    def __init__(self, in_dim: int, action_dim: int, state_dependent_std: bool = False,
                 init_std: float = 1.0, min_std: float = 1e-4) -> None:
        super().__init__()
        self.mu = init_layer(nn.Linear(in_dim, action_dim), gain=0.01)
        self.state_dependent_std = state_dependent_std
        self.min_std = min_std
        if state_dependent_std:
            self.std = init_layer(nn.Linear(in_dim, action_dim), gain=0.01,
                                  bias=_softplus_inverse(init_std - min_std))
        else:
            self.log_std = nn.Parameter(torch.full((action_dim,), math.log(init_std)))

    def forward(self, features: torch.Tensor) -> dict[str, torch.Tensor]:
        mu = self.mu(features)
        if self.state_dependent_std:
            std = F.softplus(self.std(features)) + self.min_std
        else:
            std = self.log_std.exp().expand_as(mu)
        return {"mu": mu, "std": std}

    @staticmethod
    def sample(params: dict[str, torch.Tensor]) -> torch.Tensor:
        return params["mu"] + params["std"] * torch.randn_like(params["mu"])

    @staticmethod
    def mode(params: dict[str, torch.Tensor]) -> torch.Tensor:
        return params["mu"]

    @staticmethod
    def log_prob(params: dict[str, torch.Tensor], action: torch.Tensor) -> torch.Tensor:
        return D.gaussian_log_prob(params["mu"], params["std"], action)

    @staticmethod
    def entropy(params: dict[str, torch.Tensor]) -> torch.Tensor:
        return D.gaussian_entropy(params["std"])

    @staticmethod
    def kl(p: dict[str, torch.Tensor], q: dict[str, torch.Tensor]) -> torch.Tensor:
        """KL(p || q), [B]."""
        return D.gaussian_kl(p["mu"], p["std"], q["mu"], q["std"])


class CategoricalHead(nn.Module):
    """Categorical policy head: features [B, F] -> {"logits": [B, N]}."""

    discrete = True

    def __init__(self, in_dim: int, num_actions: int) -> None:
        super().__init__()
        self.logits = init_layer(nn.Linear(in_dim, num_actions), gain=0.01)

    def forward(self, features: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"logits": self.logits(features)}

    @staticmethod
    def sample(params: dict[str, torch.Tensor]) -> torch.Tensor:
        return torch.multinomial(F.softmax(params["logits"], -1), 1).squeeze(-1)

    @staticmethod
    def mode(params: dict[str, torch.Tensor]) -> torch.Tensor:
        return params["logits"].argmax(-1)

    @staticmethod
    def log_prob(params: dict[str, torch.Tensor], action: torch.Tensor) -> torch.Tensor:
        return D.categorical_log_prob(params["logits"], action)

    @staticmethod
    def entropy(params: dict[str, torch.Tensor]) -> torch.Tensor:
        return D.categorical_entropy(params["logits"])

    @staticmethod
    def kl(p: dict[str, torch.Tensor], q: dict[str, torch.Tensor]) -> torch.Tensor:
        return D.categorical_kl(p["logits"], q["logits"])


def _softplus_inverse(y: float) -> float:
    return math.log(math.expm1(y)) if y < 20 else y


def make_policy_head(spec: EnvSpec, in_dim: int, state_dependent_std: bool = False,
                     init_std: float = 1.0, min_std: float = 1e-4) -> nn.Module:
    if spec.discrete:
        return CategoricalHead(in_dim, spec.action_dim)
    return GaussianHead(in_dim, spec.action_dim, state_dependent_std, init_std, min_std)


class ActorCritic(nn.Module):
    """Policy and state-value networks on one observation.

    MLP observations: separate torsos for policy and value (PPO paper, CleanRL's
    continuous PPO), unless `shared=True`. Pixels: one shared Nature CNN (Mnih et al.
    2016; CleanRL's Atari PPO). `value_outputs` > 1 serves PopArt / multi-head values.

    policy(obs [B, *obs]) -> params; value(obs) -> [B] (or [B, value_outputs]);
    forward(obs) -> (params, value) in one pass through a shared torso.
    """

    def __init__(self, spec: EnvSpec, hidden: Sequence[int] = (64, 64), activation: str = "tanh",
                 shared: bool | None = None, state_dependent_std: bool = False,
                 init_std: float = 1.0, min_std: float = 1e-4, value_outputs: int = 1) -> None:
        super().__init__()
        self.spec = spec
        self.shared = spec.pixels if shared is None else shared
        self.policy_torso = make_torso(spec, hidden, activation)
        self.value_torso = self.policy_torso if self.shared else make_torso(spec, hidden, activation)
        d = self.policy_torso.out_dim
        self.head = make_policy_head(spec, d, state_dependent_std, init_std, min_std)
        self.value_head = init_layer(nn.Linear(self.value_torso.out_dim, value_outputs), gain=1.0)
        self.value_outputs = value_outputs

    def policy(self, obs: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.head(self.policy_torso(obs))

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        v = self.value_head(self.value_torso(obs))
        return v.squeeze(-1) if self.value_outputs == 1 else v

    def forward(self, obs: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        if self.shared:
            f = self.policy_torso(obs)
            v = self.value_head(f)
            return self.head(f), (v.squeeze(-1) if self.value_outputs == 1 else v)
        return self.policy(obs), self.value(obs)

    def policy_parameters(self) -> list[nn.Parameter]:
        """Parameters that shape the policy (the torso too when it is shared)."""
        return list(self.policy_torso.parameters()) + list(self.head.parameters())

    def value_parameters(self) -> list[nn.Parameter]:
        """Value-only parameters (excludes a shared torso)."""
        extra = [] if self.shared else list(self.value_torso.parameters())
        return extra + list(self.value_head.parameters())


def sample_with_log_prob(head: nn.Module, params: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """(action, log pi(action)) in one pass; for Gaussians the log-prob reuses the noise
    (log N(mu + std*z; mu, std) = -|z|^2/2 - sum log std - A/2 log 2pi), saving the
    acting path a subtraction and a division per step."""
    if head.discrete:
        a = head.sample(params)
        return a, head.log_prob(params, a)
    mu, std = params["mu"], params["std"]
    z = torch.randn_like(mu)
    logp = -0.5 * z.pow(2).sum(-1) - torch.log(std).sum(-1) - 0.5 * D.LOG_2PI * mu.shape[-1]
    return mu + std * z, logp


class NumpyActor:
    """A numpy snapshot of an MLP policy (and the observation normaliser) for acting.

    Acting happens one env step at a time on a batch of a few observations, where each
    torch op costs several microseconds of dispatch; the same maths in numpy costs about
    a quarter of that (measured: benchmarks/throughput.py). Built from an `ActorCritic`
    whose policy torso is an `MLPTorso`; `snapshot()` copies the current weights, and
    must be called after every change to them (the learners do, after each update).

    __call__(obs [B, *obs], deterministic, rng) -> (action [B, A] or [B], log_prob [B])
    with the distribution of the torch head: Gaussian mu + std * z, z ~ N(0, I), and
    log pi = -|z|^2/2 - sum log std - A/2 log 2pi with z = (action - mu) / std;
    categorical by inverse-CDF sampling.
    """

    _ACT = {"tanh": np.tanh, "relu": lambda x, out=None: np.maximum(x, 0.0, out=out),
            # elu ignores `out` and returns a new array (callers use the return value)
            "elu": lambda x, out=None: np.where(x > 0, x, np.expm1(np.minimum(x, 0.0)))}

    def __init__(self, net: ActorCritic, activation: str) -> None:
        self.net, self.act_fn = net, self._ACT[activation]
        self.snapshot()

    @staticmethod
    def supports(net: ActorCritic) -> bool:
        return isinstance(net.policy_torso, MLPTorso)

    def snapshot(self, obs_mean: np.ndarray | None = None, obs_inv_std: np.ndarray | None = None,
                 obs_clip: float = 10.0) -> None:
        with torch.no_grad():
            linears = [m for m in self.net.policy_torso.net if isinstance(m, nn.Linear)]
            self.layers = [(m.weight.detach().cpu().numpy().T.copy(), m.bias.detach().cpu().numpy().copy())
                           for m in linears]
            head = self.net.head
            self.discrete = head.discrete
            if head.discrete:
                self.out = (head.logits.weight.cpu().numpy().T.copy(), head.logits.bias.cpu().numpy().copy())
            else:
                self.out = (head.mu.weight.cpu().numpy().T.copy(), head.mu.bias.cpu().numpy().copy())
                self.state_dependent_std = head.state_dependent_std
                if head.state_dependent_std:
                    self.std_layer = (head.std.weight.cpu().numpy().T.copy(), head.std.bias.cpu().numpy().copy())
                    self.min_std = head.min_std
                else:
                    self.log_std = head.log_std.detach().cpu().numpy().copy()
                    self.std = np.exp(self.log_std)
                    self.log_std_sum = float(self.log_std.sum())
        self.obs_mean, self.obs_inv_std, self.obs_clip = obs_mean, obs_inv_std, obs_clip

    def __call__(self, obs: np.ndarray, deterministic: bool, rng: np.random.Generator):
        # in-place ufuncs throughout: at a batch of one env each op is ~1 us of dispatch
        x = obs.reshape(obs.shape[0], -1).astype(np.float32, copy=False)
        if self.obs_mean is not None:
            x = np.subtract(x, self.obs_mean)
            x *= self.obs_inv_std
            np.minimum(x, self.obs_clip, out=x)  # np.clip's Python wrapper costs more
            np.maximum(x, -self.obs_clip, out=x)
        for w, b in self.layers:
            x = x @ w
            x += b
            x = self.act_fn(x, out=x)
        out = x @ self.out[0]
        out += self.out[1]
        if self.discrete:
            if deterministic:
                return out.argmax(-1), None
            logp_all = out - out.max(-1, keepdims=True)
            logp_all -= np.log(np.exp(logp_all).sum(-1, keepdims=True))
            cdf = np.exp(logp_all).cumsum(-1)
            u = rng.random((out.shape[0], 1), dtype=np.float32) * cdf[:, -1:]
            a = np.minimum((cdf < u).sum(-1), out.shape[-1] - 1)
            return a, np.take_along_axis(logp_all, a[:, None], -1)[:, 0]
        if deterministic:
            return out, None
        if self.state_dependent_std:
            s = x @ self.std_layer[0] + self.std_layer[1]
            std = np.logaddexp(0.0, s) + self.min_std  # softplus
            log_std_sum = np.log(std).sum(-1)
        else:
            std, log_std_sum = self.std, self.log_std_sum
        a = rng.standard_normal(out.shape, dtype=np.float32)
        a *= std
        a += out
        # z recomputed from the float32 action, as the learner will: with a small std,
        # mu + std*z loses digits of z
        z = np.subtract(a, out)
        z /= std
        np.square(z, out=z)
        logp = z.sum(-1)
        logp *= -0.5
        logp -= log_std_sum + 0.5 * D.LOG_2PI * out.shape[-1]
        return a, logp.astype(np.float32, copy=False)
