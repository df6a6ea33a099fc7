"""PopArt (van Hasselt et al. 2016): statistics against an independent computation, and
the unnormalised outputs preserved across every statistics update."""

import numpy as np
import pytest
import torch
from torch import nn

from algos.popart import PopArt, ema_moments, preserve_outputs_, std_from_moments


def _layer(in_dim=8, out_dim=1, seed=0):
    torch.manual_seed(seed)
    layer = nn.Linear(in_dim, out_dim).double()
    nn.init.normal_(layer.weight)
    nn.init.normal_(layer.bias)
    return layer


@pytest.mark.parametrize("beta", [3e-4, 0.1, 1.0])
def test_update_preserves_unnormalised_outputs(beta):
    layer = _layer()
    pop = PopArt(1, beta=beta)
    h = torch.randn(64, 8, dtype=torch.float64)
    g = torch.Generator().manual_seed(1)
    for scale, shift in [(1.0, 0.0), (1e3, 5e3), (1e-2, -3.0), (50.0, 100.0), (1e4, -1e5)]:
        before = pop.denormalize(layer(h).squeeze(-1)).detach().clone()
        targets = shift + scale * torch.randn(256, generator=g, dtype=torch.float64)
        pop.update(targets, layer)
        after = pop.denormalize(layer(h).squeeze(-1)).detach()
        torch.testing.assert_close(after, before, rtol=1e-9, atol=1e-9 * before.abs().max().item())


def test_preserves_outputs_in_float32_with_large_scale_changes():
    layer = _layer().float()
    pop = PopArt(1, beta=1.0)
    h = torch.randn(32, 8)
    before = pop.denormalize(layer(h).squeeze(-1)).detach().clone()
    pop.update(torch.randn(100) * 1e4 + 2e4, layer)  # sigma 1 -> ~1e4, mu 0 -> ~2e4
    after = pop.denormalize(layer(h).squeeze(-1)).detach()
    # float32 resolution at the new scale (|mu| ~ 2e4): ~2e4 * 1.2e-7; without the
    # rescaling the outputs would be off by ~2e4
    torch.testing.assert_close(after, before, rtol=0.0, atol=2e4 * 1e-6)


def test_statistics_follow_the_exponential_moving_average():
    beta = 0.05
    pop = PopArt(1, beta=beta)
    rng = np.random.default_rng(0)
    m, v = 0.0, 1.0  # the documented start: mu = 0, nu = 1
    for _ in range(30):
        x = rng.normal(7.0, 3.0, size=50)
        m = (1 - beta) * m + beta * x.mean()
        v = (1 - beta) * v + beta * (x**2).mean()
        pop.update(torch.from_numpy(x))
    assert pop.mean.item() == pytest.approx(m, rel=1e-12)
    assert pop.std.item() == pytest.approx(np.sqrt(v - m * m), rel=1e-10)


def test_beta_one_takes_the_batch_statistics_and_normalises_them():
    pop = PopArt(1, beta=1.0)
    x = torch.randn(1000, dtype=torch.float64) * 4.0 + 10.0
    pop.update(x)
    assert pop.mean.item() == pytest.approx(x.mean().item())
    assert pop.std.item() == pytest.approx(x.std(unbiased=False).item())
    z = pop.normalize(x)
    assert z.mean().item() == pytest.approx(0.0, abs=1e-9)
    assert z.std(unbiased=False).item() == pytest.approx(1.0, rel=1e-9)
    torch.testing.assert_close(pop.denormalize(z), x)


def test_starts_as_the_identity_and_ignores_empty_batches():
    pop = PopArt(1)
    x = torch.randn(10)
    torch.testing.assert_close(pop.normalize(x), x)
    pop.update(torch.empty(0))
    assert pop.mean.item() == 0.0 and pop.std.item() == 1.0


def test_std_is_clamped_for_constant_targets():
    pop = PopArt(1, beta=1.0, std_min=1e-4)
    pop.update(torch.full((10,), 3.0, dtype=torch.float64))
    assert pop.std.item() == pytest.approx(1e-4)
    assert torch.isfinite(pop.normalize(torch.tensor([3.0, 4.0]))).all()


def test_multiple_outputs_keep_separate_statistics_and_preserve_outputs():
    layer = _layer(out_dim=3)
    pop = PopArt(3, beta=0.5)
    h = torch.randn(20, 8, dtype=torch.float64)
    before = pop.denormalize(layer(h)).detach().clone()
    targets = torch.randn(200, 3, dtype=torch.float64) * torch.tensor([1.0, 10.0, 100.0]) + torch.tensor([0.0, -5.0, 50.0])
    pop.update(targets, layer)
    torch.testing.assert_close(pop.denormalize(layer(h)).detach(), before)
    m, sq = ema_moments(torch.zeros(3, dtype=torch.float64), torch.ones(3, dtype=torch.float64), targets, 0.5)
    torch.testing.assert_close(pop.mean, m)
    torch.testing.assert_close(pop.std, std_from_moments(m, sq))


def test_preserve_outputs_formula():
    layer = _layer(out_dim=1)
    h = torch.randn(5, 8, dtype=torch.float64)
    y = layer(h).detach()
    old_m, old_s = torch.tensor([2.0]), torch.tensor([3.0])
    new_m, new_s = torch.tensor([-1.0]), torch.tensor([0.5])
    preserve_outputs_(layer, old_m, old_s, new_m, new_s)
    torch.testing.assert_close(layer(h).detach() * 0.5 - 1.0, y * 3.0 + 2.0)


def test_state_dict_round_trip():
    pop = PopArt(1, beta=0.3)
    pop.update(torch.randn(40) * 5 + 1)
    other = PopArt(1, beta=0.3)
    other.load_state_dict(pop.state_dict())
    assert other.mean.item() == pop.mean.item() and other.std.item() == pop.std.item()


def test_bad_beta_is_rejected():
    with pytest.raises(ValueError):
        PopArt(1, beta=0.0)
