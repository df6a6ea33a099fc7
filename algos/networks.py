"""Torsos, policy heads and value heads shared by every algorithm.

Every learner builds its networks here with the same default torso sizes, so that a
comparison differs only in the algorithm:

- vector observations: an MLP torso, hidden sizes `(64, 64)` with tanh by default (the
  PPO paper's MuJoCo network, Schulman et al. 2017, sec. 6.1; CleanRL; SB3's default);
- pixels (`[4, 84, 84]` uint8): the Nature CNN torso (Mnih et al. 2015) -> 512 units,
  the input divided by 255 inside the torso;
- small images (MinAtar's `[C, 10, 10]` 0/1 floats, and any rank-3 float observation or
  uint8 image under 36x36, too small for the Nature CNN's strides): `SmallCNN`, MinAtar's
  network (Young and Tian 2019: one 3x3 conv of 16 channels, stride 1, then 128 units).

Initialisation is orthogonal (Saxe et al. 2014) with gain sqrt(2) on hidden layers,
0.01 on the policy output and 1 on value outputs (Andrychowicz et al. 2021; CleanRL).

A policy head maps features `[B, F]` to distribution parameters, a dict of tensors
(`{"mu", "std"}` `[B, A]` or `{"logits"}` `[B, N]`), and knows how to sample, score and
compare those parameters, so losses stay generic over discrete and continuous actions.
"""

from __future__ import annotations

import math
from typing import Sequence

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


def _conv_out(n: int, kernel: int, stride: int) -> int:
    return (n - kernel) // stride + 1


class _NHWCConv2d(nn.Conv2d):
    """A Conv2d that hands the convolution its weight in channels_last (NHWC) layout. The
    parameter itself stays NCHW-contiguous (state_dicts, FlatAdam's views, copies are as
    before); only the layout the kernel is given changes (autograd copies the gradient back)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type != "cpu":
            return super().forward(x)
        return self._conv_forward(x, self.weight.contiguous(memory_format=torch.channels_last), self.bias)


class NatureCNN(nn.Module):
    """Mnih et al. 2015: conv 32x8/4, 64x4/2, 64x3/1, dense 512, ReLU. [B,C,84,84] -> [B,512]
    (another `hw` >= 36x36: the same layers, the dense layer sized to the conv output).

    On the CPU the convolutions run in channels_last (NHWC) layout, input and weights:
    oneDNN's NCHW weight gradient of the first layer (4 -> 32 channels, 8x8 stride 4)
    took ~5x as long as its NHWC one here; with NHWC a PPO minibatch step at 256 samples
    takes 0.64x the NCHW time, a no-gradient forward of a 129x8 rollout 0.85x, acting on
    8 observations 0.95x (`benchmarks/atari_update.py`, paired medians on a loaded
    2-core CPU). The features equal the NCHW ones up to float32 rounding (max abs diff
    ~2e-6; tests/test_atari_speed_equiv.py), the flattened conv output is in NCHW order as
    before. Other devices keep NCHW (not measured there)."""

    MIN_SIDE = 36  # the smallest side the three convolutions leave >= 1 cell of

    def __init__(self, in_channels: int = 4, out_dim: int = 512,
                 hw: tuple[int, int] = (84, 84)) -> None:
        super().__init__()
        h, w = (_conv_out(_conv_out(_conv_out(n, 8, 4), 4, 2), 3, 1) for n in hw)
        self.net = nn.Sequential(
            init_layer(_NHWCConv2d(in_channels, 32, 8, stride=4)), nn.ReLU(),
            init_layer(_NHWCConv2d(32, 64, 4, stride=2)), nn.ReLU(),
            init_layer(_NHWCConv2d(64, 64, 3, stride=1)), nn.ReLU(),
            nn.Flatten(),
            init_layer(nn.Linear(64 * h * w, out_dim)), nn.ReLU(),
        )
        self.out_dim = out_dim

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        # one float copy of the input (NHWC on the CPU), divided in place: the same values
        # as obs.float() / 255, without a second [B, C, H, W] float buffer
        nhwc = obs.device.type == "cpu" and obs.dim() == 4
        fmt = torch.channels_last if nhwc else torch.contiguous_format
        return self.net(obs.to(torch.float32, memory_format=fmt, copy=True).div_(255.0))


class SmallCNN(nn.Module):
    """MinAtar's torso (Young and Tian 2019, sec. 4; their DQN and AC examples): conv 16x3/1,
    ReLU, dense `out_dim` (128), ReLU. [B, C, H, W] -> [B, out_dim]; the input times
    `scale` (1 for MinAtar's 0/1 channels, 1/255 for uint8 images)."""

    def __init__(self, in_channels: int, hw: tuple[int, int], out_dim: int = 128,
                 scale: float = 1.0) -> None:
        super().__init__()
        h, w = (_conv_out(n, 3, 1) for n in hw)
        if h < 1 or w < 1:
            raise ValueError(f"SmallCNN needs images of at least 3x3, got {tuple(hw)}")
        self.net = nn.Sequential(
            init_layer(nn.Conv2d(in_channels, 16, 3, stride=1)), nn.ReLU(),
            nn.Flatten(),
            init_layer(nn.Linear(16 * h * w, out_dim)), nn.ReLU(),
        )
        self.out_dim = out_dim
        self.scale = scale

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        x = obs.float()
        return self.net(x * self.scale if self.scale != 1.0 else x)


class MLPTorso(nn.Module):
    """Flattened vector observation [B, *obs] -> features [B, hidden[-1]]."""

    def __init__(self, in_dim: int, hidden: Sequence[int], activation: str) -> None:
        super().__init__()
        self.net = mlp(in_dim, hidden, activation)
        self.out_dim = hidden[-1] if hidden else in_dim

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.net(obs.flatten(1))


def make_torso(spec: EnvSpec, hidden: Sequence[int] = (64, 64), activation: str = "tanh") -> nn.Module:
    """The torso by observation shape. Has `.out_dim`.

    uint8 images [C, H, W] (`spec.pixels`): the Nature CNN, or `SmallCNN` (input / 255)
    under 36x36; other rank-3 observations [C, H, W] (MinAtar's 0/1 floats): `SmallCNN`;
    anything else: an MLP of `hidden` sizes on the flattened observation."""
    if len(spec.obs_shape) == 3:
        c, h, w = spec.obs_shape
        if spec.pixels and min(h, w) >= NatureCNN.MIN_SIDE:
            return NatureCNN(c, hw=(h, w))
        return SmallCNN(c, (h, w), scale=1 / 255 if spec.pixels else 1.0)
    if spec.pixels:
        raise ValueError(f"an image observation must be [C, H, W], got {spec.obs_shape}")
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


def policy_act(net: nn.Module, obs: torch.Tensor, deterministic: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    """How a policy acts: obs [B, *obs] (normalised) -> (its mode, None) or (a sample,
    its log-prob [B]), through `net.policy` and its head. The definition that the numpy
    actor (algos/fast/numpy_actor.py) is checked against and falls back to."""
    params = net.policy(obs)
    if deterministic:
        return net.head.mode(params), None
    return sample_with_log_prob(net.head, params)


# -- MPO's networks: a policy on its own, and a Q critic ----------------------------------


class MPOPolicy(nn.Module):
    """pi(a|s): the shared torso and a policy head (Gaussian with a state-dependent std,
    or categorical), obs [B, *obs] -> params. Attributes `policy_torso` and `head` as in
    `ActorCritic`, so the numpy actor can act with it."""

    def __init__(self, spec: EnvSpec, hidden: Sequence[int], activation: str, init_std: float,
                 min_std: float) -> None:
        super().__init__()
        self.policy_torso = make_torso(spec, hidden, activation)
        self.head = make_policy_head(spec, self.policy_torso.out_dim, state_dependent_std=True,
                                     init_std=init_std, min_std=min_std)

    def forward(self, obs: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.head(self.policy_torso(obs))

    policy = forward


class QCritic(nn.Module):
    """Q(s, a). Continuous actions: an MLP on [obs, action] -> [M], the actions clipped to
    the bounds and rescaled to [-1, 1] inside (what the environment executed). Discrete: a
    torso -> one Q per action, `forward(obs)` [M, K]; `taken(obs, a)` -> [M] for both."""

    def __init__(self, spec: EnvSpec, hidden: Sequence[int], activation: str) -> None:
        super().__init__()
        self.discrete = spec.discrete
        if spec.discrete:
            self.torso = make_torso(spec, hidden, activation)
            self.out = init_layer(nn.Linear(self.torso.out_dim, spec.action_dim), gain=1.0)
        else:
            if spec.pixels:
                raise ValueError("the continuous Q critic takes vector observations only")
            obs_dim = int(math.prod(spec.obs_shape))
            self.net = mlp(obs_dim + spec.action_dim, hidden, activation, out_dim=1, out_gain=1.0)
            low = torch.tensor(spec.action_low, dtype=torch.float32)
            high = torch.tensor(spec.action_high, dtype=torch.float32)
            finite = torch.isfinite(low) & torch.isfinite(high)
            self.register_buffer("low", torch.where(finite, low, torch.full_like(low, -1e30)))
            self.register_buffer("high", torch.where(finite, high, torch.full_like(high, 1e30)))
            self.register_buffer("center", torch.where(finite, (high + low) / 2, torch.zeros_like(low)))
            self.register_buffer("scale", torch.where(finite, (high - low).clamp_min(1e-6) / 2,
                                                     torch.ones_like(low)))

    def scale_action(self, action: torch.Tensor) -> torch.Tensor:
        a = torch.minimum(torch.maximum(action, self.low), self.high)
        return (a - self.center) / self.scale

    def forward(self, obs: torch.Tensor, action: torch.Tensor | None = None) -> torch.Tensor:
        if self.discrete:
            return self.out(self.torso(obs))
        x = torch.cat([obs.flatten(1), self.scale_action(action)], dim=-1)
        return self.net(x).squeeze(-1)

    def taken(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """Q(s, a) of the given actions, [M]."""
        if self.discrete:
            return self(obs).gather(-1, action.long().unsqueeze(-1)).squeeze(-1)
        return self(obs, action)

    def sampled(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Q(s_m, a_nm) of N actions for each of M states: obs [M, *obs], actions [N, M, A]
        -> [N, M], the forward on each state repeated N times (the definition that
        `algos.fast.mpo_targets` computes faster)."""
        N, M = actions.shape[0], obs.shape[0]
        reps = obs.unsqueeze(0).expand(N, *obs.shape).flatten(0, 1)
        return self(reps, actions.flatten(0, 1)).view(N, M)
