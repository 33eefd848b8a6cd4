"""hyperdml.geometry: maps, projection, clipping and the Lorentz model against independent formulas."""

from __future__ import annotations

import pytest
import torch

from conftest import ball_points
from hyperdml import geometry
from hyperdml.ops import poincare_cdist


@pytest.mark.parametrize("c", [0.1, 1.0, 2.5])
def test_expmap0_logmap0_roundtrip_and_distance_to_origin(c):
    v = torch.randn(20, 6, dtype=torch.float64) * 0.7
    x = geometry.expmap0(v, c)
    torch.testing.assert_close(geometry.logmap0(x, c), v, rtol=1e-9, atol=1e-12)
    # d_c(0, expmap0(v)) = 2‖v‖ for every c
    origin = torch.zeros(1, 6, dtype=torch.float64)
    torch.testing.assert_close(poincare_cdist(origin, x, c)[0], 2 * v.norm(dim=1), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("c", [0.1, 1.0, 2.5])
def test_project_keeps_points_strictly_inside(c):
    x = torch.randn(50, 4, dtype=torch.float64)  # many far outside
    p = geometry.project(x, c)
    assert bool((p.norm(dim=1) < c**-0.5).all())
    inside = x.norm(dim=1) < 0.5 * c**-0.5
    torch.testing.assert_close(p[inside], x[inside])  # points already inside are untouched
    huge = geometry.expmap0(torch.full((1, 4), 50.0), c)  # tanh saturates to 1 in float
    assert bool((huge.norm(dim=1) < c**-0.5).all())


def test_clip_features():
    v = torch.tensor([[3.0, 4.0], [0.3, 0.4], [0.0, 0.0]])
    out = geometry.clip_features(v, clip_r=2.3)
    torch.testing.assert_close(out.norm(dim=1), torch.tensor([2.3, 0.5, 0.0]))
    torch.testing.assert_close(out[1], v[1])
    assert geometry.clip_features(v, None) is v


@pytest.mark.parametrize("c", [0.1, 1.0, 2.5])
def test_lorentz_map(c):
    x = ball_points(10, 5, c, max_frac=0.95, seed=1)
    y = ball_points(7, 5, c, max_frac=0.95, seed=2)
    lx, ly = geometry.to_lorentz(x, c), geometry.to_lorentz(y, c)
    inner = -lx[:, :1] * ly[:, :1].t() + lx[:, 1:] @ ly[:, 1:].t()
    # on the hyperboloid ⟨X, X⟩_L = −1/c, and d_c(x, y) = arccosh(−c⟨X, Y⟩_L)/√c
    self_inner = -lx[:, 0] ** 2 + (lx[:, 1:] ** 2).sum(1)
    torch.testing.assert_close(self_inner, torch.full_like(self_inner, -1 / c), rtol=1e-9, atol=1e-9)
    dist = torch.acosh((-c * inner).clamp_min(1)) / c**0.5
    torch.testing.assert_close(dist, poincare_cdist(x, y, c), rtol=1e-7, atol=1e-7)


def test_ball_curvature_is_float64_and_validated():
    assert geometry.ball(0.1).c.dtype == torch.float64
    with pytest.raises(ValueError, match="curvature"):
        geometry.ball(0.0)
