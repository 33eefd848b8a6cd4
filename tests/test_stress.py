"""Numerical stress: 10 000 Riemannian Adam steps of hyperbolic losses, started on the edge of the
ball with a large learning rate, in float32 and under CPU autocast (bfloat16): no NaN/Inf ever,
and the proxies (and points) stay strictly inside the ball.
"""

from __future__ import annotations

import math

import pytest
import torch

from hyperdml.geometry import geoopt
from hyperdml.losses import HypHCLoss, ProxyAnchor, SoftTriple
from hyperdml.optim import make_optimizer
from hyperdml.spaces import PoincareSpace

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::RuntimeWarning")]

STEPS = 10_000
C = 0.1
EDGE = (1 - 1e-3) / math.sqrt(C)


def on_the_edge(n: int, d: int, seed: int) -> torch.Tensor:
    """``n`` random directions at norm (1 − 1e-3)/√c."""
    v = torch.randn(n, d, generator=torch.Generator().manual_seed(seed))
    return v / v.norm(dim=1, keepdim=True) * EDGE


def assert_inside(points: torch.Tensor, what: str, step: int) -> None:
    assert bool(torch.isfinite(points).all()), f"{what} became NaN/Inf at step {step}"
    norm = float(points.detach().norm(dim=1).max())
    assert math.sqrt(C) * norm < 1, f"{what} left the ball at step {step}: norm {norm} >= 1/sqrt(c)"


def run(loss_fn, params_to_check, optimizer, autocast: bool) -> None:
    """``STEPS`` steps of ``loss_fn(step)``; checks every loss, and the points every 50 steps."""
    initial = [p.detach().clone() for _, p in params_to_check()]
    for step in range(STEPS):
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            loss = loss_fn(step)
        assert loss.dtype == torch.float32, "hyperbolic maths must not run in half precision"
        assert math.isfinite(loss.item()), f"loss is {loss.item()} at step {step}"
        loss.backward()
        optimizer.step()
        if step % 50 == 0 or step == STEPS - 1:
            for what, p in params_to_check():
                assert_inside(p, what, step)
    for (what, p), p0 in zip(params_to_check(), initial):  # the steps did move them (not a no-op)
        assert float((p.detach() - p0).abs().max()) > 1e-3, f"{what} never moved"


@pytest.mark.parametrize("autocast", [False, True], ids=["float32", "autocast-bf16"])
@pytest.mark.parametrize("name", ["soft_triple", "proxy_anchor"])
def test_proxy_losses_survive_large_steps_from_the_edge(name, autocast, one_thread):
    torch.manual_seed(0)
    classes, dim, batch = 4, 8, 16
    space = PoincareSpace(c=C)
    if name == "soft_triple":
        loss = SoftTriple(classes, dim, centers_per_class=2, space=space)
    else:
        loss = ProxyAnchor(classes, dim, space=space)
    with torch.no_grad():
        loss.proxies.copy_(on_the_edge(loss.proxies.shape[0], dim, seed=1))
    head = torch.nn.Linear(dim, dim)
    # large learning rates: 0.05 on the head, ×100 = 5 on the proxies (Riemannian steps)
    optimizer = make_optimizer(head, loss, lr=0.05, proxy_lr_mult=100.0)
    g = torch.Generator().manual_seed(2)
    inputs = torch.randn(256, dim, generator=g) * 10
    labels = torch.randint(0, classes, (256,), generator=g)

    def loss_fn(step):
        idx = torch.randint(0, 256, (batch,), generator=g)
        return loss(head(inputs[idx]), labels[idx])

    run(loss_fn, lambda: [("proxies", loss.proxies), ("proxy points", loss.proxy_points())], optimizer, autocast)


@pytest.mark.parametrize("autocast", [False, True], ids=["float32", "autocast-bf16"])
def test_hyphc_loss_survives_large_steps_from_the_edge(autocast, one_thread):
    torch.manual_seed(0)
    n, dim = 8, 4
    ball = geoopt.PoincareBall(c=C)
    points = geoopt.ManifoldParameter(on_the_edge(n, dim, seed=3), manifold=ball)
    feats = torch.randn(n, 3, generator=torch.Generator().manual_seed(4))
    sims = (0.5 * (1 + torch.nn.functional.normalize(feats) @ torch.nn.functional.normalize(feats).t())).clamp(0, 1)
    loss = HypHCLoss(c=C, tau=0.05)
    optimizer = geoopt.optim.RiemannianAdam([points], lr=1.0)
    run(lambda step: loss(points, sims), lambda: [("points", points)], optimizer, autocast)
