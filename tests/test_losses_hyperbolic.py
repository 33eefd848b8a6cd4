"""Hyperbolic proxy losses: the Poincaré space, gradcheck, proxies kept in the ball, autocast, optimiser."""

from __future__ import annotations

import math

import pytest
import torch
from torch.func import functional_call

from hyperdml import geometry
from hyperdml.geometry import geoopt
from hyperdml.losses import ProxyAnchor, ProxyNCA, SoftTriple
from hyperdml.optim import make_optimizer
from hyperdml.spaces import EuclideanSpace, PoincareSpace

LOSSES = {
    "anchor": lambda c, d, sp: ProxyAnchor(c, d, space=sp),
    "anchor_k2": lambda c, d, sp: ProxyAnchor(c, d, proxies_per_class=2, space=sp),
    "nca": lambda c, d, sp: ProxyNCA(c, d, space=sp),
    "soft": lambda c, d, sp: SoftTriple(c, d, centers_per_class=3, space=sp),
    "soft_reg": lambda c, d, sp: SoftTriple(c, d, centers_per_class=3, tau=0.2, space=sp),
}
PARAMS = ["manifold", "tangent"]


pytestmark = pytest.mark.usefixtures("one_thread")


def test_poincare_space():
    torch.manual_seed(0)
    sp = PoincareSpace()
    assert (sp.c, sp.clip_r, sp.proxy_param) == (0.1, 2.3, "manifold")
    h = torch.randn(7, 5, dtype=torch.float64) * 4
    z = sp.to_space(h)
    # clipped to 2.3, then expmap0: distance to the origin is 2·min(‖h‖, 2.3)
    d0 = sp.manifold.dist0(z)
    torch.testing.assert_close(d0, 2 * h.norm(dim=1).clamp(max=2.3))
    p = sp.proxy_points(sp.init_proxies(4, 5).double())
    dist = sp.manifold.dist(z[:, None], p[None])  # geoopt is the oracle
    torch.testing.assert_close(sp.distance(z, p), dist)
    torch.testing.assert_close(sp.similarity(z, p), 1 - dist / 4.6)
    # the default scale maps [0, 4·clip_r] (the diameter of the clipped region) onto [1, −1]
    # (geoopt holds c in float32, so float64 expmap0 is exact to ~1e-8 relative only)
    far = sp.to_space(torch.tensor([[100.0, 0, 0, 0, 0], [-100.0, 0, 0, 0, 0]], dtype=torch.float64))
    minus_one = torch.tensor([[-1.0]], dtype=torch.float64)
    torch.testing.assert_close(sp.similarity(far[:1], far[1:]), minus_one, rtol=0, atol=1e-6)
    raw = PoincareSpace(sim_scale=1, sim_offset=0)
    torch.testing.assert_close(raw.similarity(z, p), -dist)
    assert PoincareSpace(clip_r=1.0).sim_scale == 0.5


@pytest.mark.parametrize("proxy_param", PARAMS)
def test_proxies_are_in_the_ball(proxy_param):
    sp = PoincareSpace(c=0.5, proxy_param=proxy_param)
    loss = SoftTriple(5, 4, space=sp)
    if proxy_param == "manifold":
        assert isinstance(loss.proxies, geoopt.ManifoldParameter)
        assert isinstance(loss.proxies.manifold, geoopt.PoincareBall)
        assert float(loss.proxies.manifold.c) == pytest.approx(0.5)
    else:
        assert type(loss.proxies) is torch.nn.Parameter
    pts = loss.proxy_points()
    assert pts.shape == (50, 4)
    assert bool((pts.norm(dim=1) < 1 / math.sqrt(0.5)).all())
    # initialised near the origin: ‖v‖ ≈ 0.5, distance ≈ 1
    assert float(sp.manifold.dist0(pts.detach()).mean()) < 2.0


@pytest.mark.parametrize("proxy_param", PARAMS)
@pytest.mark.parametrize("name", list(LOSSES))
def test_gradcheck(name, proxy_param):
    torch.manual_seed(0)
    loss = LOSSES[name](4, 3, PoincareSpace(proxy_param=proxy_param)).double()
    x = (torch.randn(6, 3, dtype=torch.float64) * 0.8).requires_grad_(True)  # norms well below clip_r
    y = torch.tensor([0, 1, 1, 2, 0, 0])  # class 3 absent
    proxies = loss.proxies.detach().clone().requires_grad_(True)

    def f(emb, prox):
        return functional_call(loss, {"proxies": prox}, (emb, y))

    assert torch.autograd.gradcheck(f, (x, proxies), eps=1e-6, atol=1e-6, rtol=1e-5)
    # the clipped regime too (the head output beyond clip_r)
    direction = torch.nn.functional.normalize(torch.randn(6, 3, dtype=torch.float64), dim=1)
    x_far = (direction * torch.linspace(3, 6, 6, dtype=torch.float64)[:, None]).requires_grad_(True)
    assert torch.autograd.gradcheck(f, (x_far, proxies), eps=1e-6, atol=1e-6, rtol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["anchor", "nca", "soft"])
def test_proxies_stay_inside_ball_with_riemannian_adam(name):
    """1 000 steps at a huge proxy learning rate (1.0 in ball coordinates, radius 1/√c ≈ 3.16)."""
    torch.manual_seed(0)
    c = 0.1
    loss = LOSSES[name](6, 8, PoincareSpace(c=c))
    head = torch.nn.Linear(12, 8)
    opt = make_optimizer(None, loss, head, lr=1e-2, proxy_lr_mult=100)
    assert isinstance(opt, geoopt.optim.RiemannianAdam)
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(96, 12, generator=gen) * 3, torch.randint(6, (96,), generator=gen)
    max_norm = 0.0
    for step in range(1000):
        idx = torch.randint(96, (24,), generator=gen)
        value = loss(head(x[idx]), y[idx])
        opt.zero_grad()
        value.backward()
        opt.step()
        assert math.isfinite(value.item()), f"loss not finite at step {step}"
        norms = loss.proxies.detach().norm(dim=1)
        assert bool(torch.isfinite(norms).all())
        max_norm = max(max_norm, float(norms.max()))
        assert max_norm * math.sqrt(c) < 1.0, f"a proxy left the ball at step {step}"
    # the test is meaningful only if the proxies were pushed towards the boundary
    assert max_norm * math.sqrt(c) > 0.5


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("proxy_param", PARAMS)
@pytest.mark.parametrize("name", list(LOSSES))
def test_no_nan_under_autocast(name, proxy_param, dtype):
    torch.manual_seed(0)
    loss = LOSSES[name](5, 8, PoincareSpace(proxy_param=proxy_param))
    head = torch.nn.Linear(16, 8)
    x = torch.randn(12, 16) * 5  # some outputs far beyond clip_r, some near the origin
    x[0] = 0
    y = torch.randint(5, (12,))
    with torch.autocast("cpu", dtype=dtype):
        h = head(x)
        assert h.dtype == dtype
        sim = loss.class_similarity(h)
        assert sim.dtype == torch.float32  # hyperbolic math in float32
        value = loss(h, y)
    value.backward()
    assert value.dtype == torch.float32 and math.isfinite(value.item())
    for p in (*head.parameters(), loss.proxies):
        assert bool(torch.isfinite(p.grad).all())
        assert float(p.grad.abs().sum()) > 0


def test_mixed_dtypes_promote():
    """float32 proxies meet float64 embeddings in float64 (both spaces)."""
    for sp in (EuclideanSpace(), PoincareSpace()):
        loss = ProxyAnchor(3, 4, space=sp)
        value = loss(torch.randn(5, 4, dtype=torch.float64), torch.tensor([0, 1, 2, 0, 1]))
        assert value.dtype == torch.float64


def test_make_optimizer_groups():
    torch.manual_seed(0)
    backbone, head = torch.nn.Linear(6, 6), torch.nn.Linear(6, 4)
    model = torch.nn.Sequential(backbone, head)
    loss = SoftTriple(3, 4, space=PoincareSpace())
    frozen = torch.nn.Parameter(torch.zeros(2), requires_grad=False)
    opt = make_optimizer([*model.parameters(), frozen], loss, head, lr=1e-3, head_lr_mult=10, proxy_lr_mult=100,
                         weight_decay=1e-4)
    groups = {g["name"]: g for g in opt.param_groups}
    assert list(groups) == ["proxies", "head", "backbone"]
    assert groups["proxies"]["lr"] == pytest.approx(0.1) and groups["proxies"]["params"] == [loss.proxies]
    assert groups["proxies"]["weight_decay"] == 0
    assert groups["head"]["lr"] == pytest.approx(1e-2) and len(groups["head"]["params"]) == 2
    assert groups["backbone"]["lr"] == pytest.approx(1e-3) and len(groups["backbone"]["params"]) == 2
    assert groups["backbone"]["weight_decay"] == 1e-4
    # one step moves the manifold proxies on the ball
    value = loss(model(torch.randn(8, 6)), torch.randint(3, (8,)))
    before = loss.proxies.detach().clone()
    opt.zero_grad()
    value.backward()
    opt.step()
    assert not torch.equal(before, loss.proxies.detach())
    assert bool((loss.proxies.detach().norm(dim=1) < 1 / math.sqrt(0.1)).all())
    with pytest.raises(ValueError, match="no trainable parameters"):
        make_optimizer(None, None)


def test_poincare_rejects_bad_ball_input_clearly():
    """A proxy moved outside the ball by hand is projected back, not a NaN."""
    loss = ProxyNCA(3, 2, space=PoincareSpace(c=1.0))
    with torch.no_grad():
        loss.proxies[0] = torch.tensor([3.0, 0.0])
    pts = loss.proxy_points()
    assert float(pts.detach().norm(dim=1).max()) < 1.0
    assert math.isfinite(loss(torch.randn(4, 2), torch.tensor([0, 1, 2, 0])).item())
    assert geometry.BALL_EPS[torch.float32] > 0
