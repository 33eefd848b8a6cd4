"""The losses on a CUDA device: same values and gradients as on the CPU, no NaN under autocast,
proxies stay in the ball under Riemannian Adam. Skipped without a GPU."""

from __future__ import annotations

import copy

import pytest
import torch

from conftest import requires_cuda
from hyperdml.geometry import geoopt
from hyperdml.losses import CHEST, HypHCLoss, ProxyAnchor, ProxyNCA, SoftTriple
from hyperdml.spaces import EuclideanSpace, PoincareSpace

pytestmark = [requires_cuda, pytest.mark.filterwarnings("ignore::RuntimeWarning")]

LOSSES = {"anchor": ProxyAnchor, "nca": ProxyNCA, "soft": SoftTriple}
SPACES = {"euclidean": EuclideanSpace, "poincare": PoincareSpace}


def _batch(b=24, d=16, classes=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, d, generator=g, dtype=torch.float64), torch.randint(classes, (b,), generator=g)


@pytest.mark.parametrize("space", SPACES)
@pytest.mark.parametrize("name", LOSSES)
def test_cuda_matches_cpu(name, space):
    torch.manual_seed(0)
    cpu_loss = LOSSES[name](5, 16, space=SPACES[space]()).double()
    cuda_loss = copy.deepcopy(cpu_loss).cuda()
    emb, labels = _batch()
    e_cpu, e_cuda = emb.clone().requires_grad_(True), emb.cuda().requires_grad_(True)
    v_cpu, v_cuda = cpu_loss(e_cpu, labels), cuda_loss(e_cuda, labels)  # labels stay on the CPU
    v_cpu.backward()
    v_cuda.backward()
    torch.testing.assert_close(v_cuda.cpu(), v_cpu, rtol=1e-9, atol=1e-10)
    torch.testing.assert_close(e_cuda.grad.cpu(), e_cpu.grad, rtol=1e-8, atol=1e-10)
    torch.testing.assert_close(cuda_loss.proxies.grad.cpu(), cpu_loss.proxies.grad, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("name", LOSSES)
def test_cuda_autocast_and_riemannian_adam_keep_proxies_in_ball(name):
    torch.manual_seed(0)
    loss_fn = LOSSES[name](5, 16, space=PoincareSpace(c=0.1)).cuda()
    head = torch.nn.Linear(32, 16).cuda()
    opt = geoopt.optim.RiemannianAdam([*head.parameters(), *loss_fn.parameters()], lr=0.5)
    g = torch.Generator(device="cuda").manual_seed(0)
    for _ in range(50):
        x = torch.randn(32, 32, device="cuda", generator=g)
        labels = torch.randint(5, (32,), device="cuda", generator=g)
        with torch.autocast("cuda", dtype=torch.float16):
            loss = loss_fn(head(x), labels)
        assert torch.isfinite(loss)
        opt.zero_grad()
        loss.backward()
        opt.step()
    norms = loss_fn.proxy_points().detach().norm(dim=1)
    assert bool((norms < 0.1**-0.5).all())


def test_chest_and_hyphc_on_cuda():
    torch.manual_seed(0)
    loss_fn = CHEST(5, euclidean_size=16, hyperbolic_size=8, centers_per_class=2).cuda()
    g = torch.Generator(device="cuda").manual_seed(0)
    z_e = torch.randn(20, 16, device="cuda", generator=g, requires_grad=True)
    z_h = torch.randn(20, 8, device="cuda", generator=g, requires_grad=True)
    labels = torch.randint(5, (20,), device="cuda", generator=g)
    total = loss_fn(z_e, z_h, labels)
    total.backward()
    assert torch.isfinite(total) and set(loss_fn.parts) and z_h.grad is not None
    torch.testing.assert_close(sum(loss_fn.parts.values()), total.detach())
    points = (torch.randn(12, 4, device="cuda", generator=g) * 0.1).requires_grad_(True)
    sims = torch.rand(12, 12, device="cuda", generator=g)
    sims = (sims + sims.t()) / 2
    HypHCLoss()(points, sims).backward()
    assert torch.isfinite(points.grad).all()
