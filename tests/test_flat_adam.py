"""FlatAdam against torch.optim.Adam + clip_grad_norm_ on separate tensors."""

import copy

import pytest
import torch

from algos.fast.flat_adam import FlatAdam
from algos.networks import mlp


def _net(seed=0):
    torch.manual_seed(seed)
    return mlp(5, (16, 16), "tanh", out_dim=3)


def _loss(net, x, y):
    return (net(x) - y).pow(2).sum()


@pytest.mark.parametrize("max_norm", [0.5, 0.0, 1e9])
def test_steps_equal_torch_adam_with_clipping(max_norm):
    ref, flat_net = _net(), _net()
    flat_net.load_state_dict(ref.state_dict())
    opt_ref = torch.optim.Adam(ref.parameters(), lr=1e-2, eps=1e-5)
    opt = FlatAdam(flat_net.parameters(), lr=1e-2, eps=1e-5)
    g = torch.Generator().manual_seed(1)
    for _ in range(25):
        x, y = torch.randn(32, 5, generator=g), torch.randn(32, 3, generator=g) * 10
        opt_ref.zero_grad()
        _loss(ref, x, y).backward()
        if max_norm > 0:
            norm_ref = torch.nn.utils.clip_grad_norm_(ref.parameters(), max_norm)
        else:
            norm_ref = torch.linalg.vector_norm(torch.cat([p.grad.flatten() for p in ref.parameters()]))
        opt_ref.step()
        opt.zero_grad()
        _loss(flat_net, x, y).backward()
        norm = opt.clip_grad_norm_(max_norm)
        opt.step()
        assert norm == pytest.approx(float(norm_ref), rel=1e-5, abs=1e-6)
    for p_ref, p in zip(ref.parameters(), flat_net.parameters(), strict=True):
        torch.testing.assert_close(p, p_ref, rtol=1e-5, atol=1e-6)
    # the updates moved the parameters: the comparison is not between two untouched nets
    assert not torch.allclose(next(ref.parameters()), next(_net().parameters()))


def test_parameters_are_views_of_one_vector_and_load_state_dict_keeps_them():
    net = _net()
    opt = FlatAdam(net.parameters(), lr=1e-3)
    assert opt.flat.numel() == sum(p.numel() for p in net.parameters())
    other = copy.deepcopy(_net(seed=3).state_dict())
    net.load_state_dict(other)  # copies in place
    torch.testing.assert_close(opt.flat.detach()[: net[0].weight.numel()],
                               other["0.weight"].flatten())
    with torch.no_grad():
        opt.flat.zero_()
    assert all(float(p.detach().abs().sum()) == 0.0 for p in net.parameters())


def test_set_to_none_is_caught_instead_of_silently_not_learning():
    net = _net()
    opt = FlatAdam(net.parameters(), lr=1e-3)
    for p in net.parameters():
        p.grad = None
    _loss(net, torch.randn(4, 5), torch.randn(4, 3)).backward()
    with pytest.raises(RuntimeError, match="zero_grad"):
        opt.step()


def test_optimiser_state_round_trips():
    net = _net()
    opt = FlatAdam(net.parameters(), lr=1e-3)
    opt.zero_grad()
    _loss(net, torch.randn(4, 5), torch.randn(4, 3)).backward()
    opt.step()
    net2 = _net(seed=5)
    net2.load_state_dict(net.state_dict())
    opt2 = FlatAdam(net2.parameters(), lr=1e-3)
    opt2.load_state_dict(copy.deepcopy(opt.state_dict()))  # as a checkpoint would
    x, y = torch.randn(4, 5), torch.randn(4, 3)
    for n, o in ((net, opt), (net2, opt2)):
        o.zero_grad()
        _loss(n, x, y).backward()
        o.step()
    torch.testing.assert_close(opt.flat, opt2.flat)
