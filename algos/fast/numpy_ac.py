"""Forward and hand-derived backward pass of an MLP ActorCritic in numpy, in place.

PPO on MuJoCo takes 320 minibatch steps of 64 samples per 2048-step rollout. On the
CPU each step of a 64x64 MLP is bound by per-op dispatch, not arithmetic: a whole
minibatch step (forward, backward, clipping, Adam) costs about 790 us through autograd
here and about 170 us in numpy, 4.7x less (`benchmarks/ppo_minibatch.py`, medians of
one run). This module is that maths for the one network family where it pays
(`algos.fast.ppo_step` runs PPO's epochs with it, checked against autograd):
`ActorCritic` with separate MLP torsos of the same layer sizes (what `hidden` builds),
a Gaussian head with a state-independent log-std or a categorical head, and one value
output, float32 on the CPU. `NumpyActorCritic.supports(net, activation)` says whether
a net is one. (A float64 copy of such a net also works: the guard's checks run there.)

It owns no parameters. It reads the net's parameters and writes their gradients
through numpy views of the torch tensors (`FlatAdam` makes both one flat vector), so
an optimiser step on the torch side is seen at once, and `loss.backward()` is replaced
by `backward()`:

    forward(x [N, D])            -> caches every layer's output; out [N, A|K], v [N]
    log_prob(actions) -> [N]     log pi(a|x) of the last forward
    backward(g_logp [N], g_v [N], g_entropy)
        writes dL/dtheta into the .grad views, for any loss L whose dependence on the
        network is through log pi(a_i|x_i), V(x_i) and the mean entropy (1/N) sum_i H_i:
        g_logp = dL/dlog pi, g_v = dL/dV, g_entropy = dL/d(mean entropy).

Layer l: z_l = h_{l-1} W_l^T + b_l, h_l = f(z_l); backward dz_l = dh_l * f'(z_l) with
f' from the output (tanh: 1 - h^2; relu: [h > 0]; elu: h + 1 where h <= 0, else 1),
dW_l = dz_l^T h_{l-1}, db_l = 1^T dz_l, dh_{l-1} = dz_l W_l.
Gaussian head: log pi = -|z|^2/2 - sum log std - A/2 log 2 pi, z = (a - mu) / std, so
dlog pi/dmu = z / std and dlog pi/dlog std_j = z_j^2 - 1; H = sum_j log std_j + const.
Categorical head: l = logits - logsumexp(logits), p = exp(l): dlog pi/dlogits =
onehot(a) - p, and dH/dlogits = -p (l + H).
Tested against torch autograd through the same net (`tests/test_numpy_ac.py`).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from algos.networks import ActorCritic, CategoricalHead, GaussianHead, MLPTorso

ACTIVATIONS = ("tanh", "relu", "elu")


def _np(t: torch.Tensor) -> np.ndarray:
    """A numpy view (shared memory) of a CPU tensor."""
    return t.detach().numpy()


def _pair(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """A [2, *shape] view of two same-shape arrays that lie in one buffer (no copy): the
    policy and value torsos' layer l, so one numpy call serves both torsos."""
    delta = b.__array_interface__["data"][0] - a.__array_interface__["data"][0]
    return np.lib.stride_tricks.as_strided(a, shape=(2, *a.shape), strides=(delta, *a.strides))


def _linears(torso: MLPTorso) -> list[torch.nn.Linear]:
    return [m for m in torso.net if isinstance(m, torch.nn.Linear)]


class NumpyActorCritic:
    """See the module docstring. Build it after the optimiser that made the flat views.

    The policy and value torsos have the same layer shapes, so layer l of both is one
    `[2, out, in]` view (`_pair`) and every torso op is one numpy call for the two."""

    def __init__(self, net: ActorCritic, activation: str, max_n: int) -> None:
        if not self.supports(net, activation, (torch.float32, torch.float64)):
            raise ValueError("NumpyActorCritic needs separate MLP torsos of one shape, a Gaussian "
                             "head with a state-independent std or a categorical head, one value "
                             f"output, the CPU, float32 and an activation in {ACTIVATIONS}")
        if any(p.grad is None for p in net.parameters()) or not _one_buffer(net):
            raise ValueError("NumpyActorCritic: the parameters and their .grad must each lie in "
                             "one flat buffer; build it after FlatAdam(net.parameters())")
        self.act = activation
        self.max_n = max_n
        pairs = list(zip(_linears(net.policy_torso), _linears(net.value_torso)))
        self.w = [_pair(_np(p.weight), _np(v.weight)) for p, v in pairs]     # [2, out, in]
        self.b = [_pair(_np(p.bias), _np(v.bias))[:, None, :] for p, v in pairs]  # [2, 1, out]
        self.gw = [_pair(p.weight.grad.numpy(), v.weight.grad.numpy()) for p, v in pairs]
        self.gb = [_pair(p.bias.grad.numpy(), v.bias.grad.numpy()) for p, v in pairs]
        sizes = [w.shape[1] for w in self.w]
        dt = self.w[0].dtype
        self.h = [np.empty((2, max_n, k), dt) for k in sizes]    # layer outputs
        self.dh = [np.empty((2, max_n, k), dt) for k in sizes]
        self.tmp = [np.empty((2, max_n, k), dt) for k in sizes]
        head = net.head
        self.discrete = head.discrete
        lin = head.logits if self.discrete else head.mu
        self.w_out, self.b_out = _np(lin.weight), _np(lin.bias)
        self.gw_out, self.gb_out = lin.weight.grad.numpy(), lin.bias.grad.numpy()
        k = self.w_out.shape[0]
        if not self.discrete:
            self.log_std, self.g_log_std = _np(head.log_std), head.log_std.grad.numpy()
        self.w_v, self.b_v = _np(net.value_head.weight), _np(net.value_head.bias)
        self.gw_v, self.gb_v = net.value_head.weight.grad.numpy(), net.value_head.bias.grad.numpy()
        self.out = np.empty((max_n, k), dt)
        self.d_out = np.empty((max_n, k), dt)
        self.z = np.empty((max_n, k), dt)  # Gaussian: (a - mu)/std; categorical: log p
        self.v = np.empty((max_n, 1), dt)
        self.ones = np.ones(max_n, dt)
        self._n = 0

    @staticmethod
    def supports(net: ActorCritic, activation: str, dtypes=(torch.float32,)) -> bool:
        head = net.head
        gaussian = isinstance(head, GaussianHead) and not head.state_dependent_std
        if not (activation in ACTIVATIONS and not net.shared and net.value_outputs == 1
                and isinstance(net.policy_torso, MLPTorso) and isinstance(net.value_torso, MLPTorso)
                and (gaussian or isinstance(head, CategoricalHead))
                and all(p.device.type == "cpu" and p.dtype in dtypes for p in net.parameters())):
            return False
        shapes = [[m.weight.shape for m in _linears(t)] for t in (net.policy_torso, net.value_torso)]
        return shapes[0] == shapes[1] and len(shapes[0]) > 0

    # -- forward ----------------------------------------------------------------
    def forward(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """x [N, D] float32 (normalised observations), N <= max_n -> (mu or logits [N, K],
        v [N]); the arrays are buffers overwritten by the next call."""
        n = x.shape[0]
        if n > self.max_n:
            raise ValueError(f"forward: {n} rows > max_n={self.max_n}")
        self._n, self._x = n, x
        h = x  # [N, D], broadcast over the two torsos by the first matmul
        for w, b, buf, tmp in zip(self.w, self.b, self.h, self.tmp):
            z = np.matmul(h, w.transpose(0, 2, 1), out=buf[:, :n])
            z += b
            if self.act == "tanh":
                np.tanh(z, out=z)
            elif self.act == "relu":
                np.maximum(z, 0.0, out=z)
            else:  # elu: max(z, 0) + expm1(min(z, 0))
                neg = np.minimum(z, 0.0, out=tmp[:, :n])
                np.expm1(neg, out=neg)
                np.maximum(z, 0.0, out=z)
                z += neg
            h = z
        out = np.matmul(h[0], self.w_out.T, out=self.out[:n])
        out += self.b_out
        v = np.matmul(h[1], self.w_v.T, out=self.v[:n])
        v += self.b_v
        return out, v[:, 0]

    def log_prob(self, actions: np.ndarray) -> np.ndarray:
        """log pi(actions | x) [N] for the last forward; actions [N, A] float32 or [N] int."""
        n = self._n
        out, z = self.out[:n], self.z[:n]
        if self.discrete:
            np.subtract(out, out.max(-1, keepdims=True), out=z)
            z -= np.log(np.exp(z).sum(-1, keepdims=True))
            self._actions = actions
            return z[np.arange(n), actions]
        np.subtract(actions, out, out=z)
        self._inv_std = np.exp(-self.log_std)
        z *= self._inv_std
        return (z * z).sum(-1) * -0.5 - (float(self.log_std.sum()) + 0.5 * math.log(2 * math.pi) * z.shape[1])

    # -- backward ---------------------------------------------------------------
    def _grad_act(self, h: np.ndarray, dh: np.ndarray, out: np.ndarray) -> np.ndarray:
        """dz = dh * f'(z), f' from the layer's output h; written into `out`."""
        if self.act == "tanh":
            np.multiply(h, h, out=out)
            np.subtract(1.0, out, out=out)
            return np.multiply(dh, out, out=out)
        if self.act == "relu":
            return np.multiply(dh, h > 0, out=out)
        np.add(h, 1.0, out=out)
        np.minimum(out, 1.0, out=out)  # elu: h + 1 below zero, 1 above
        return np.multiply(dh, out, out=out)

    def backward(self, g_logp: np.ndarray, g_v: np.ndarray, g_entropy: float = 0.0) -> None:
        """Write dL/dtheta into the gradient views (overwriting them) for the last forward
        and log_prob: g_logp, g_v [N]; g_entropy = dL/d(mean entropy), a scalar."""
        n = self._n
        ones = self.ones[:n]
        d_out, z = self.d_out[:n], self.z[:n]
        if self.discrete:
            p = np.exp(z)
            if g_entropy:
                ent = -(p * z).sum(-1, keepdims=True)
                np.add(z, ent, out=d_out)
                d_out *= p
                d_out *= -g_entropy / n
            else:
                d_out[:] = 0.0
            d_out -= p * g_logp[:, None]
            d_out[np.arange(n), self._actions] += g_logp
        else:
            # dmu = g_logp z / std;  dlog std = sum_i g_logp_i (z_i^2 - 1) + g_entropy
            np.multiply(z, g_logp[:, None], out=d_out)
            self.g_log_std[:] = np.matmul(g_logp, z * z) - (float(g_logp.sum()) - g_entropy)
            d_out *= self._inv_std
        h = self.h[-1][:, :n]
        np.matmul(d_out.T, h[0], out=self.gw_out)
        np.matmul(ones, d_out, out=self.gb_out)
        g_v = g_v[:, None]
        np.matmul(g_v.T, h[1], out=self.gw_v)
        self.gb_v[0] = g_v.sum()
        dh = self.dh[-1][:, :n]
        np.matmul(d_out, self.w_out, out=dh[0])
        np.multiply(g_v, self.w_v, out=dh[1])
        for i in range(len(self.w) - 1, -1, -1):
            dz = self._grad_act(self.h[i][:, :n], dh, self.tmp[i][:, :n])
            h_in = self.h[i - 1][:, :n] if i > 0 else self._x
            np.matmul(dz.transpose(0, 2, 1), h_in, out=self.gw[i])
            np.matmul(ones, dz, out=self.gb[i])
            if i > 0:
                dh = np.matmul(dz, self.w[i], out=self.dh[i - 1][:, :n])


def _one_buffer(net: ActorCritic) -> bool:
    """Whether all parameters, and all their gradients, share one storage (FlatAdam's)."""
    params = list(net.parameters())
    return (len({p.untyped_storage().data_ptr() for p in params}) == 1
            and len({p.grad.untyped_storage().data_ptr() for p in params}) == 1)
