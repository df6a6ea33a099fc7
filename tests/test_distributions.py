"""Closed-form KLs against torch.distributions.kl_divergence."""

import torch
from torch.distributions import Categorical, Independent, Normal, kl_divergence

from algos import distributions as D


def _gauss(B=16, A=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    mu_old, mu = torch.randn(B, A, generator=g), torch.randn(B, A, generator=g)
    std_old = torch.rand(B, A, generator=g) * 2 + 0.05
    std = torch.rand(B, A, generator=g) * 2 + 0.05
    return mu_old.double(), std_old.double(), mu.double(), std.double()


def _kl(mu_p, std_p, mu_q, std_q):
    return kl_divergence(Independent(Normal(mu_p, std_p), 1), Independent(Normal(mu_q, std_q), 1))


def test_gaussian_kl_matches_torch():
    mu_old, std_old, mu, std = _gauss()
    assert torch.allclose(D.gaussian_kl(mu_old, std_old, mu, std), _kl(mu_old, std_old, mu, std))


def test_decoupled_kl_parts_match_torch():
    mu_old, std_old, mu, std = _gauss(seed=1)
    kl_mean, kl_std = D.gaussian_kl_decoupled(mu_old, std_old, mu, std)
    assert kl_mean.shape == kl_std.shape == (16,)
    assert torch.allclose(kl_mean, _kl(mu_old, std_old, mu, std_old))
    assert torch.allclose(kl_std, _kl(mu_old, std_old, mu_old, std))


def test_decoupled_mean_kl_divides_by_old_variance():
    # published pitfall: the mean KL multiplied by sigma_old^2 instead of divided
    mu_old = torch.zeros(1, 1)
    std_old = torch.full((1, 1), 0.1)
    kl_mean, _ = D.gaussian_kl_decoupled(mu_old, std_old, torch.ones(1, 1), torch.ones(1, 1))
    assert kl_mean.item() == torch.tensor(0.5 / 0.01).item()


def test_decoupled_kl_is_finite_for_many_tiny_stds():
    # per-dimension sums, not products of precisions (which overflow)
    A = 300
    mu_old, std_old = torch.zeros(2, A), torch.full((2, A), 1e-3)
    kl_mean, kl_std = D.gaussian_kl_decoupled(mu_old, std_old, torch.full((2, A), 1e-3), torch.full((2, A), 2e-3))
    assert torch.isfinite(kl_mean).all() and torch.isfinite(kl_std).all()
    assert torch.allclose(kl_mean, torch.full((2,), 0.5 * A))


def test_categorical_kl_matches_torch():
    g = torch.Generator().manual_seed(2)
    p, q = torch.randn(32, 6, generator=g).double(), torch.randn(32, 6, generator=g).double()
    ref = kl_divergence(Categorical(logits=p), Categorical(logits=q))
    assert torch.allclose(D.categorical_kl(p, q), ref)


def test_log_probs_and_entropies_match_torch():
    mu_old, std_old, mu, _ = _gauss(seed=3)
    dist = Independent(Normal(mu_old, std_old), 1)
    assert torch.allclose(D.gaussian_log_prob(mu_old, std_old, mu), dist.log_prob(mu))
    assert torch.allclose(D.gaussian_entropy(std_old), dist.entropy())
    logits = torch.randn(8, 4).double()
    a = torch.tensor([0, 1, 2, 3, 3, 2, 1, 0])
    cat = Categorical(logits=logits)
    assert torch.allclose(D.categorical_log_prob(logits, a), cat.log_prob(a))
    assert torch.allclose(D.categorical_entropy(logits), cat.entropy())
