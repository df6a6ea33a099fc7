"""The Atari CPU speed-ups compute what the code before them computed.

NatureCNN on the CPU runs its convolutions in channels_last (NHWC) layout and divides its
float copy of the input by 255 in place (algos/networks.py; benchmarks/atari_update.py
times it). Checked here against `nchw_forward`, the forward before the change (float copy,
/255 copy, NCHW convolutions), on the same weights: features and gradients equal up to
float32 rounding, the input scaling exactly equal, the parameters' layout, names and
initialisation unchanged (checkpoints, FlatAdam's flat views and seeded runs rely on them).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
import torch.nn as nn

from algos.base import EnvSpec
from algos.networks import ActorCritic, NatureCNN, init_layer

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from atari_update import nchw_forward  # noqa: E402

PIX = EnvSpec((4, 84, 84), True, 6, pixels=True)


def _obs(n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 4, 84, 84), dtype=torch.uint8, generator=g)


def _first_conv_input(cnn: NatureCNN, obs: torch.Tensor) -> torch.Tensor:
    seen = []
    h = cnn.net[0].register_forward_hook(lambda m, args, out: seen.append(args[0]))
    try:
        with torch.no_grad():
            cnn(obs)
    finally:
        h.remove()
    return seen[0]


def test_the_convolutions_see_channels_last_input_scaled_exactly_as_before():
    """The first convolution's input is NHWC (the speed-up is in use) and holds exactly
    obs.float() / 255 for every uint8 value (all 256 occur in the batch)."""
    torch.manual_seed(0)
    cnn = NatureCNN()
    obs = _obs(2)
    obs.view(-1)[:256] = torch.arange(256, dtype=torch.uint8)
    x = _first_conv_input(cnn, obs)
    assert x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
    assert x.dtype == torch.float32 and torch.equal(x, obs.float() / 255.0)


def test_float_input_is_not_divided_in_place():
    """The in-place /255 works on the forward's own copy: a float32 input that is already
    channels_last-contiguous (which `.to()` would return as is without copy=True) keeps
    its values."""
    torch.manual_seed(0)
    cnn = NatureCNN()
    obs = _obs(3).float().contiguous(memory_format=torch.channels_last)
    before = obs.clone()
    with torch.no_grad():
        out = cnn(obs)
    assert torch.equal(obs, before)
    assert torch.allclose(out, nchw_forward(cnn, obs), atol=1e-5, rtol=0)


@pytest.mark.parametrize("batch", [1, 8, 64])
def test_features_equal_the_nchw_forward_up_to_rounding(batch):
    """Max abs difference of the 512 features (values O(1)) at float32 rounding level; the
    two paths are not the same computation (a difference is expected to exist at all
    for the larger batches, so the comparison is not of a path with itself)."""
    torch.manual_seed(1)
    cnn = NatureCNN()
    obs = _obs(batch, seed=batch)
    with torch.no_grad():
        new, old = cnn(obs), nchw_forward(cnn, obs)
    assert new.shape == old.shape == (batch, 512)
    assert float(old.abs().max()) > 0.1  # features of a realistic size
    assert float((new - old).abs().max()) < 1e-5
    if batch == 64:
        assert not torch.equal(new, old)


def test_gradients_equal_the_nchw_backward_up_to_rounding():
    """The gradient of a PPO-like loss through the actor-critic, every parameter: the
    largest difference is < 1e-5 of that parameter's largest gradient."""
    torch.manual_seed(2)
    net = ActorCritic(PIX)
    obs = _obs(32, seed=3)
    actions = torch.randint(0, 6, (32,), generator=torch.Generator().manual_seed(4))
    weights = torch.linspace(-1.0, 1.0, 32)

    def grads(forward):
        NatureCNN.forward, saved = forward, NatureCNN.forward
        try:
            net.zero_grad(set_to_none=True)
            params, v = net(obs)
            loss = -(weights * net.head.log_prob(params, actions)).mean() + v.pow(2).mean()
            loss.backward()
        finally:
            NatureCNN.forward = saved
        return float(loss.detach()), [p.grad.clone() for p in net.parameters()]

    loss_new, g_new = grads(NatureCNN.forward)
    loss_old, g_old = grads(nchw_forward)
    assert loss_new == pytest.approx(loss_old, rel=1e-6)
    for (name, _), a, b in zip(net.named_parameters(), g_new, g_old):
        assert a.shape == b.shape and a.is_contiguous(), name
        assert float((a - b).abs().max()) <= 1e-5 * float(b.abs().max()), name


def test_parameters_names_layout_and_initialisation_unchanged():
    """Same state_dict keys, NCHW-contiguous conv weights, and, for a seed, the same
    initial weights as the plain nn.Conv2d network before the change."""
    torch.manual_seed(5)
    cnn = NatureCNN()
    torch.manual_seed(5)
    plain = nn.Sequential(
        init_layer(nn.Conv2d(4, 32, 8, stride=4)), nn.ReLU(),
        init_layer(nn.Conv2d(32, 64, 4, stride=2)), nn.ReLU(),
        init_layer(nn.Conv2d(64, 64, 3, stride=1)), nn.ReLU(),
        nn.Flatten(), init_layer(nn.Linear(3136, 512)), nn.ReLU(),
    )
    new, old = cnn.net.state_dict(), plain.state_dict()
    assert list(new) == list(old)
    for k in old:
        assert torch.equal(new[k], old[k]), k
        assert new[k].is_contiguous(), k


def test_flat_adam_views_survive_a_ppo_minibatch_step():
    """PPO's FlatAdam makes every parameter and gradient a view of one vector; the NHWC
    weight copies inside the forward must not replace them (autograd accumulates the
    gradient back into the NCHW view), and the step must move the conv weights."""
    from algos import ppo

    torch.manual_seed(6)
    cfg = ppo.Config(minibatch_size=16, epochs=1, norm_obs=False, norm_reward=False)
    learner = ppo.Learner(cfg, PIX, 2, 10_000, torch.device("cpu"))
    flat, grad = learner.opt.flat, learner.opt.flat.grad
    lo, hi = flat.data_ptr(), flat.data_ptr() + flat.numel() * flat.element_size()
    glo = grad.data_ptr()
    conv_w = learner.net.policy_torso.net[0].weight
    w0 = conv_w.detach().clone()
    g = torch.Generator().manual_seed(7)
    batch = (_obs(16, seed=8), torch.randint(0, 6, (16,), generator=g), torch.zeros(16),
             torch.randn(16, generator=g), torch.randn(16, generator=g))
    learner._epochs_torch(*batch, [torch.randperm(16, generator=g)])
    for name, p in learner.net.named_parameters():
        assert lo <= p.data_ptr() < hi, name
        assert p.grad is not None and p.grad.data_ptr() - glo == p.data_ptr() - lo, name
    assert not torch.equal(conv_w.detach(), w0)


def test_the_benchmark_refuses_a_bad_repeat_count(capsys):
    import atari_update

    assert atari_update.main(["--repeats", "0"]) == 2
    assert "--repeats: expected an int >= 1" in capsys.readouterr().err
