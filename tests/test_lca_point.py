"""``geometry.lca_point``: the point of the complete geodesic through x and y closest to the origin.

Oracle: a brute-force search along the geodesic, parametrised by arc length with geoopt's
``PoincareBall.geodesic_unit``; the depth must also match ``hyp_lca_depth_reference``.
"""

from __future__ import annotations

import pytest
import torch

from hyperdml import geometry
from hyperdml.ops.reference import hyp_lca_depth_reference

DT = torch.float64


def brute_force_lca(x: torch.Tensor, y: torch.Tensor, c: float) -> torch.Tensor:
    """Closest point to the origin on the geodesic through x and y, by a dense search then refinement."""
    ball = geometry.ball(c)
    u = ball.logmap(x, y)
    u = u / ball.norm(x, u)  # unit speed
    reach = 2 * float(ball.dist0(x)) + 2 * float(ball.dist(x, y)) + 1.0  # the closest point lies within this

    def norms(t):
        return ball.geodesic_unit(t.unsqueeze(-1), x, u).norm(dim=-1)

    t = torch.linspace(-reach, reach, 40_001, dtype=DT)
    for _ in range(6):  # zoom in around the minimum
        i = int(norms(t).argmin())
        lo, hi = t[max(i - 2, 0)], t[min(i + 2, len(t) - 1)]
        t = torch.linspace(float(lo), float(hi), 2001, dtype=DT)
    best = t[int(norms(t).argmin())]
    return ball.geodesic_unit(best.reshape(1, 1), x, u).reshape(-1)


@pytest.mark.parametrize("c", [0.1, 1.0, 2.5])
@pytest.mark.parametrize("seed", range(6))
def test_matches_brute_force_along_the_geodesic(c, seed):
    g = torch.Generator().manual_seed(seed)
    d = 2 + seed % 4
    radius = 1 / c**0.5
    x = torch.randn(d, generator=g, dtype=DT)
    y = torch.randn(d, generator=g, dtype=DT)
    x = x / x.norm() * radius * float(torch.rand(1, generator=g, dtype=DT) * 0.9 + 0.05)
    y = y / y.norm() * radius * float(torch.rand(1, generator=g, dtype=DT) * 0.9 + 0.05)
    got = geometry.lca_point(x, y, c)
    want = brute_force_lca(x, y, c)
    torch.testing.assert_close(got, want, atol=1e-6 * radius, rtol=0)
    depth = geometry.ball(c).dist0(got)
    torch.testing.assert_close(depth, hyp_lca_depth_reference(x, y, c), atol=1e-9, rtol=1e-9)


def test_rows_broadcast_and_symmetry():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(7, 5, generator=g, dtype=DT) * 0.3
    y = torch.randn(7, 5, generator=g, dtype=DT) * 0.3
    p = geometry.lca_point(x, y, 1.0)
    assert p.shape == (7, 5)
    torch.testing.assert_close(p, geometry.lca_point(y, x, 1.0))
    for i in range(7):
        torch.testing.assert_close(p[i], geometry.lca_point(x[i], y[i], 1.0))
    # one point against many
    torch.testing.assert_close(geometry.lca_point(x[:1], y, 1.0)[3], geometry.lca_point(x[0], y[3], 1.0))


def test_degenerate_pairs():
    x = torch.tensor([0.3, 0.4], dtype=DT)
    # the same point: its own LCA
    torch.testing.assert_close(geometry.lca_point(x, x, 1.0), x)
    # collinear with the origin (the geodesic is a diameter) and the origin itself: the origin
    torch.testing.assert_close(geometry.lca_point(x, 0.5 * x, 1.0), torch.zeros(2, dtype=DT))
    torch.testing.assert_close(geometry.lca_point(x, -x, 1.0), torch.zeros(2, dtype=DT))
    torch.testing.assert_close(geometry.lca_point(x, torch.zeros(2, dtype=DT), 1.0), torch.zeros(2, dtype=DT))
    # points on one sphere: the LCA lies on the bisector, and deeper for a smaller angle
    a = geometry.lca_point(torch.tensor([0.9, 0.0], dtype=DT), torch.tensor([0.0, 0.9], dtype=DT), 1.0)
    torch.testing.assert_close(a[0], a[1])
    b = geometry.lca_point(torch.tensor([0.9, 0.0], dtype=DT), 0.9 * torch.tensor([0.8, 0.6], dtype=DT), 1.0)
    assert b.norm() > a.norm()
    assert torch.isfinite(geometry.lca_point(x, x * (1 + 1e-12), 1.0)).all()
