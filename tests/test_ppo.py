"""The PPO loss on hand-made numbers."""

import math

import pytest
import torch

from algos.ppo import ppo_loss


def test_ppo_loss_hand_computed():
    # ratios e^{0.5}=1.6487 (A=+1: clipped to 1.2), e^{-0.5}=0.6065 (A=+2: unclipped min),
    # 1 (A=-1), e^{0.3}=1.3499 (A=-1: unclipped is smaller, -1.3499)
    logp = torch.tensor([0.5, -0.5, 0.0, 0.3])
    old = torch.zeros(4)
    adv = torch.tensor([1.0, 2.0, -1.0, -1.0])
    r = [math.exp(0.5), math.exp(-0.5), 1.0, math.exp(0.3)]
    surr = [min(r[0] * 1, 1.2 * 1), min(r[1] * 2, 0.8 * 2), -1.0, min(-r[3], -1.2)]
    expected_policy = -sum(surr) / 4
    value = torch.tensor([1.0, 2.0, 3.0, 4.0])
    returns = torch.tensor([0.0, 2.0, 5.0, 4.5])
    expected_value = 0.5 * (1 + 0 + 4 + 0.25) / 4
    entropy = torch.tensor([1.0, 1.0, 2.0, 2.0])
    loss, stats = ppo_loss(logp, old, adv, value, value, returns, entropy,
                           clip_coef=0.2, vf_coef=0.5, ent_coef=0.01)
    assert stats["loss/policy"].item() == pytest.approx(expected_policy, rel=1e-6)
    assert stats["loss/value"].item() == pytest.approx(expected_value, rel=1e-6)
    assert loss.item() == pytest.approx(expected_policy + 0.5 * expected_value - 0.01 * 1.5, rel=1e-6)
    assert stats["clip_fraction"].item() == pytest.approx(0.75)  # |r-1| > 0.2 for three


def test_ppo_value_clipping_takes_the_larger_error():
    old_v = torch.tensor([0.0, 0.0])
    v = torch.tensor([1.0, 0.1])
    ret = torch.tensor([2.0, -1.0])
    zero = torch.zeros(2)
    _, stats = ppo_loss(zero, zero, zero, v, old_v, ret, zero, 0.2, 1.0, 0.0, clip_value=True)
    # sample 0: unclipped (1-2)^2=1, clipped (0.2-2)^2=3.24 -> 3.24; sample 1: (0.1+1)^2=1.21 both
    assert stats["loss/value"].item() == pytest.approx(0.5 * (3.24 + 1.21) / 2, rel=1e-6)


def test_ppo_gradient_is_zero_where_clipped():
    logp = torch.tensor([0.5, 0.0], requires_grad=True)
    adv = torch.tensor([1.0, 1.0])
    z = torch.zeros(2)
    loss, _ = ppo_loss(logp, z, adv, z, z, z, z, 0.2, 0.0, 0.0)
    loss.backward()
    assert logp.grad[0].item() == 0.0  # ratio 1.65 > 1.2 with A > 0: clipped
    assert logp.grad[1].item() == pytest.approx(-0.5)  # d/dlogp of -(e^logp * 1)/2 at 0
