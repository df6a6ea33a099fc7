"""A fifth algorithm through the path docs/adding-an-algorithm.md describes: one module
(this file: a Config dataclass and a Learner) plus one line in the registry, then trained
a few rollouts by algos.train.run on CartPole-v1, and its run directory read back."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import torch

from algos import base, train
from algos.returns import gae
from rundir import RunDir


@dataclass
class Config:
    """REINFORCE with a linear softmax policy: the smallest learner the contract allows."""

    rollout_length: int = 64
    """Steps per env in each rollout."""
    lr: float = 0.01
    """Adam step size."""
    gamma: float = 0.99
    """Discount of the returns-to-go."""


class Learner:
    """grad log pi(a_t|s_t) * G_t over each rollout, G_t the discounted return-to-go
    cut at episode ends (no bootstrap: the return of the rest of the rollout)."""

    def __init__(self, cfg: Config, spec: base.EnvSpec, num_envs: int, total_steps: int,
                 device: torch.device) -> None:
        assert spec.discrete, "this sketch handles Discrete actions only"
        self.cfg, self.device = cfg, device
        self.policy = torch.nn.Linear(int(np.prod(spec.obs_shape)), spec.action_dim).to(device)
        self.opt = torch.optim.Adam(self.policy.parameters(), lr=cfg.lr)
        self.batch: base.Batch | None = None

    def _dist(self, obs: torch.Tensor) -> torch.distributions.Categorical:
        return torch.distributions.Categorical(logits=self.policy(obs.float().flatten(1)))

    @torch.no_grad()
    def act(self, obs: np.ndarray, deterministic: bool = False):
        dist = self._dist(torch.as_tensor(obs, device=self.device))
        action = dist.probs.argmax(-1) if deterministic else dist.sample()
        return action.cpu().numpy(), {}

    def observe(self, batch: base.Batch) -> None:
        self.batch = batch.to(self.device)

    def ready(self) -> bool:
        return self.batch is not None

    def update(self) -> dict[str, float]:
        b, self.batch = self.batch, None
        zeros = torch.zeros(b.num_steps + 1, b.num_envs, device=self.device)
        _, returns = gae(b.rewards, zeros, b.terminated, b.truncated, self.cfg.gamma, 1.0, b.valid)
        logp = self._dist(b.obs[:-1].flatten(0, 1)).log_prob(b.actions.flatten())
        mask = b.valid.flatten().float()
        loss = -(logp * returns.flatten() * mask).sum() / mask.sum()
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        return {"loss/policy": float(loss.detach()), "reinforce/return_to_go": float(returns.mean())}

    def state_dict(self) -> dict:
        return {"policy": self.policy.state_dict(), "opt": self.opt.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.policy.load_state_dict(state["policy"])
        self.opt.load_state_dict(state["opt"])

    def named_parameters(self):
        return self.policy.named_parameters()


@pytest.fixture
def registered(monkeypatch):
    """The one line a new algorithm adds to algos/base.py's ALGOS (undone after the test)."""
    monkeypatch.setitem(base.ALGOS, "reinforce", __name__)
    yield "reinforce"


def test_a_registered_learner_trains_through_the_loop_into_a_run_directory(tmp_path, registered):
    assert "reinforce" in train.ALGOS and train.algo_module("reinforce").Learner is Learner
    over = {"num_envs": 2, "eval_every": 128, "eval_episodes": 2, "lr": 0.05}
    spec = train.RunSpec("reinforce", "CartPole-v1", 0, 3 * 64 * 2, over)
    status = train.run(spec, tmp_path / "run")
    assert status["state"] == "done" and status["step"] == 384
    rd = RunDir(tmp_path / "run")
    cfg = rd.read_config()
    assert (cfg["algo"], cfg["run_id"]) == ("reinforce", train.resolve(spec)["run_id"])
    assert cfg["config"]["lr"] == 0.05 and cfg["config"]["rollout_length"] == 64
    rows = rd.read_metrics(strict=True)
    steps = sorted({s for s, m, _, _ in rows if m == "loss/policy"})
    assert steps == [128, 256, 384]  # one row per rollout of 64 steps x 2 envs
    evals = [(s, v) for s, m, v, _ in rows if m == "eval/return"]
    assert [s for s, _ in evals] == [128, 256, 384] and all(1 <= v <= 500 for _, v in evals)
    assert rd.checkpoint_path.exists() and any((rd.path / "tb").iterdir())
    # resumable through the same path: the done run is found, not retrained
    assert train.run(spec, tmp_path / "run")["step"] == 384


def test_an_unregistered_name_is_a_usage_error_listing_the_registry():
    assert "reinforce" not in base.ALGOS and {"ppo", "trpo", "vmpo", "mpo"} <= set(base.ALGOS)
    with pytest.raises(train.ConfigError) as e:
        train.algo_module("reinforce")
    assert str(e.value) == f"algo: unknown algorithm 'reinforce'; valid: {', '.join(base.ALGOS)}"
