"""gae() and nstep_returns() against brute-force loops over one env at a time, with
termination, truncation and Gymnasium's NEXT_STEP reset step in the data."""

import pytest
import torch

from algos.returns import backward_recursion, gae, nstep_returns


def _episode_data(T=12, B=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    rewards = torch.randn(T, B, generator=g)
    values = torch.randn(T + 1, B, generator=g)
    terminated = torch.zeros(T, B, dtype=torch.bool)
    truncated = torch.zeros(T, B, dtype=torch.bool)
    # env 0: terminates at t=3, truncated at t=8; env 1: truncated at 5; env 2: never ends
    terminated[3, 0] = True
    truncated[8, 0] = True
    truncated[5, 1] = True
    done = terminated | truncated
    valid = torch.ones(T, B, dtype=torch.bool)
    valid[1:] = ~done[:-1]  # NEXT_STEP: the step after an end only resets
    rewards[~valid] = 0.0  # what Gymnasium returns on the reset step
    return rewards, values, terminated, truncated, valid


def brute_gae(r, v, term, trunc, gamma, lam):
    T, B = r.shape
    adv = torch.zeros(T, B, dtype=torch.float64)
    for b in range(B):
        for t in range(T):
            total, coef = 0.0, 1.0
            for k in range(t, T):
                boot = 0.0 if term[k, b] else gamma * float(v[k + 1, b])
                delta = float(r[k, b]) + boot - float(v[k, b])
                total += coef * delta
                if term[k, b] or trunc[k, b]:
                    break
                coef *= gamma * lam
            adv[t, b] = total
    return adv


def brute_nstep(r, v, term, trunc, gamma, n):
    T, B = r.shape
    out = torch.zeros(T, B, dtype=torch.float64)
    for b in range(B):
        for t in range(T):
            g, k = 0.0, t
            while True:
                g += gamma ** (k - t) * float(r[k, b])
                if term[k, b]:
                    break
                if trunc[k, b] or k - t + 1 == n or k == T - 1:
                    g += gamma ** (k - t + 1) * float(v[k + 1, b])
                    break
                k += 1
            out[t, b] = g
    return out


@pytest.mark.parametrize("gamma,lam", [(0.99, 0.95), (0.9, 1.0), (0.5, 0.0)])
def test_gae_matches_brute_force(gamma, lam):
    r, v, term, trunc, valid = _episode_data()
    adv, ret = gae(r, v, term, trunc, gamma, lam, valid)
    ref = brute_gae(r, v, term, trunc, gamma, lam)
    assert torch.allclose(adv[valid].double(), ref[valid], atol=1e-5)
    assert torch.allclose(ret, adv + v[:-1])
    assert (adv[~valid] == 0).all()  # the reset step carries nothing


def test_gae_truncation_bootstraps_and_termination_does_not():
    r = torch.tensor([[1.0], [1.0]])
    v = torch.tensor([[0.0], [10.0], [0.0]])
    term = torch.tensor([[True], [False]])
    trunc = torch.tensor([[False], [False]])
    adv, _ = gae(r, v, term, trunc, 0.9, 1.0)
    assert adv[0, 0].item() == pytest.approx(1.0)  # no 0.9 * V(s1) after termination
    adv, _ = gae(r, v, trunc, term, 0.9, 1.0)  # same step, now a time limit
    assert adv[0, 0].item() == pytest.approx(1.0 + 0.9 * 10.0)


@pytest.mark.parametrize("n", [1, 2, 3, 5, 12, 100])
def test_nstep_matches_brute_force(n):
    r, v, term, trunc, valid = _episode_data(seed=n)
    out = nstep_returns(r, v, term, trunc, 0.97, n, valid)
    ref = brute_nstep(r, v, term, trunc, 0.97, n)
    assert torch.allclose(out[valid].double(), ref[valid], atol=1e-5)
    assert torch.equal(out[~valid], v[:-1][~valid])


def test_nstep_full_rollout_equals_gae_lambda_one():
    r, v, term, trunc, valid = _episode_data(seed=7)
    _, ret = gae(r, v, term, trunc, 0.99, 1.0, valid)
    out = nstep_returns(r, v, term, trunc, 0.99, r.shape[0], valid)
    assert torch.allclose(out[valid], ret[valid], atol=1e-5)


def test_nstep_rejects_n_below_one():
    r, v, term, trunc, valid = _episode_data()
    with pytest.raises(ValueError, match="n must be >= 1"):
        nstep_returns(r, v, term, trunc, 0.99, 0)


@pytest.mark.parametrize("B", [1, 3, 8, 9, 20])
def test_backward_recursion_matches_a_loop_on_both_paths(B):
    """B <= 8 runs over Python floats per env, wider batches over numpy rows: both give
    y_t = x_t + c_t y_{t+1} in x's dtype (and GAE built on it matches brute force)."""
    g = torch.Generator().manual_seed(B)
    x, c = torch.randn(50, B, generator=g), torch.rand(50, B, generator=g)
    c[17] = 0.0  # an episode cut
    y = backward_recursion(x, c)
    ref = torch.zeros(B, dtype=torch.float64)
    for t in range(49, -1, -1):
        ref = x[t].double() + c[t].double() * ref
        torch.testing.assert_close(y[t].double(), ref, rtol=1e-5, atol=1e-5)
    assert y.dtype == x.dtype and y.shape == x.shape
    r, v, term, trunc, valid = _episode_data(T=12, B=max(B, 3), seed=B)
    adv, _ = gae(r, v, term, trunc, 0.99, 0.95, valid)
    expected = brute_gae(r, v, term, trunc, 0.99, 0.95)
    torch.testing.assert_close(adv[valid].double(), expected[valid], rtol=1e-5, atol=1e-5)
