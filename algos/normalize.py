"""Running observation normalisation and reward scaling: learner state, checkpointed.

Both keep their statistics frozen while a rollout is collected and while the learner
updates on it, and fold the rollout in afterwards (`update_from`). Acting and learning
therefore see the same normalised observations: a PPO ratio starts at exactly 1.

ObsNormalizer:  o' = clip((o - mean) / sqrt(var + eps), -clip, clip)   (SB3 VecNormalize,
                CleanRL's NormalizeObservation: eps 1e-8, clip 10)
RewardScaler:   r' = clip(r / sqrt(Var[R] + eps), -clip, clip), R the running discounted
                return per env, R_t = gamma * R_{t-1} * (1 - done_{t-1}) + r_t
                (Engstrom et al. 2020, "Implementation matters"; SB3 VecNormalize)
"""

from __future__ import annotations

import torch

from algos.returns import backward_recursion


class RunningMeanStd:
    """Mean and variance over everything `update` has seen (Chan et al. parallel update)."""

    def __init__(self, shape: tuple[int, ...] = ()) -> None:
        self.mean = torch.zeros(shape, dtype=torch.float64)
        self.var = torch.ones(shape, dtype=torch.float64)
        self.count = 1e-4

    def update(self, x: torch.Tensor) -> None:
        """x: [N, *shape]."""
        x = x.to(torch.float64)
        n = x.shape[0]
        if n == 0:
            return
        b_mean = x.mean(0)
        b_var = x.var(0, unbiased=False)
        delta = b_mean - self.mean
        tot = self.count + n
        self.mean = self.mean + delta * n / tot
        m2 = self.var * self.count + b_var * n + delta.pow(2) * self.count * n / tot
        self.var = m2 / tot
        self.count = tot

    def state_dict(self) -> dict:
        return {"mean": self.mean.clone(), "var": self.var.clone(), "count": self.count}

    def load_state_dict(self, s: dict) -> None:
        self.mean, self.var, self.count = s["mean"].clone(), s["var"].clone(), float(s["count"])


class ObsNormalizer:
    """Normalises vector observations; a no-op when `enabled` is False (e.g. pixels)."""

    def __init__(self, shape: tuple[int, ...], enabled: bool = True, clip: float = 10.0,
                 eps: float = 1e-8) -> None:
        self.enabled = enabled
        self.rms = RunningMeanStd(shape)
        self.clip, self.eps = clip, eps
        self._refresh()

    def _refresh(self) -> None:
        self._mean = self.rms.mean.to(torch.float32)
        self._inv_std = (self.rms.var + self.eps).rsqrt().to(torch.float32)

    def __call__(self, obs: torch.Tensor) -> torch.Tensor:
        if not self.enabled:
            return obs
        if self._mean.device != obs.device:
            self._mean, self._inv_std = self._mean.to(obs.device), self._inv_std.to(obs.device)
        return ((obs - self._mean) * self._inv_std).clamp_(-self.clip, self.clip)

    def update_from(self, obs: torch.Tensor) -> None:
        """obs: [N, *shape] raw observations (e.g. a rollout flattened over T and B)."""
        if self.enabled:
            self.rms.update(obs.detach().cpu().reshape(-1, *self.rms.mean.shape))
            self._refresh()

    def state_dict(self) -> dict:
        return {"rms": self.rms.state_dict()}

    def load_state_dict(self, s: dict) -> None:
        self.rms.load_state_dict(s["rms"])
        self._refresh()


class RewardScaler:
    """Divides rewards by the running std of the discounted return; no-op when disabled."""

    def __init__(self, num_envs: int, gamma: float, enabled: bool = True, clip: float = 10.0,
                 eps: float = 1e-8) -> None:
        self.enabled = enabled
        self.gamma, self.clip, self.eps = gamma, clip, eps
        self.rms = RunningMeanStd(())
        self.ret = torch.zeros(num_envs, dtype=torch.float64)

    def scale(self, rewards: torch.Tensor) -> torch.Tensor:
        """rewards [T, B] -> scaled rewards [T, B] (with the frozen statistics)."""
        if not self.enabled:
            return rewards
        inv = float((self.rms.var + self.eps).rsqrt())
        return (rewards * inv).clamp(-self.clip, self.clip)

    def update_from(self, rewards: torch.Tensor, done: torch.Tensor, valid: torch.Tensor) -> None:
        """Fold a rollout in: rewards, done, valid [T, B]."""
        if not self.enabled:
            return
        r = rewards.detach().cpu().to(torch.float64)
        d = done.detach().cpu()
        # R_t = r_t + gamma (1 - done_{t-1}) R_{t-1}, R_{-1} = self.ret (zeroed at an end):
        # the shared recursion, run backwards over flipped time
        x = r.clone()
        x[0] += self.gamma * self.ret
        c = torch.zeros_like(r)
        c[1:] = self.gamma * (~d[:-1]).to(torch.float64)
        rets = backward_recursion(x.flip(0), c.flip(0)).flip(0)
        self.ret = torch.where(d[-1], torch.zeros_like(rets[-1]), rets[-1])
        self.rms.update(rets[valid.detach().cpu()])

    def state_dict(self) -> dict:
        return {"rms": self.rms.state_dict(), "ret": self.ret.clone()}

    def load_state_dict(self, s: dict) -> None:
        self.rms.load_state_dict(s["rms"])
        self.ret = s["ret"].clone()
