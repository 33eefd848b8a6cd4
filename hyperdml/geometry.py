"""A thin layer over geoopt's Poincaré ball: the ball object carries the curvature.

``PoincareBall(c)`` here is geoopt's ``PoincareBall`` (curvature −c) with the few helpers DML
needs: feature clipping before the exponential map (Hyp-ViT / HIER's ``clip_r``), a projection
that keeps points strictly inside the ball, and the map to the Lorentz (hyperboloid) model used
for exact hyperbolic kNN through an inner product.
"""

from __future__ import annotations

import math

import torch

from hyperdml.ops._checks import check_curvature, check_in_ball

# geoopt imports torch.jit.script at import time and warns about it on new torch releases.
import warnings

with warnings.catch_warnings():
    warnings.simplefilter("ignore", FutureWarning)
    import geoopt

__all__ = ["ball", "expmap0", "logmap0", "project", "clip_features", "to_ball", "to_lorentz", "lca_point", "BALL_EPS"]

#: Relative margin kept from the boundary: points are held at norm ≤ (1 − BALL_EPS[dtype]) / √c.
BALL_EPS = {torch.float32: 1e-5, torch.float64: 1e-10}


def ball(c: float = 1.0) -> geoopt.PoincareBall:
    """geoopt's Poincaré ball of curvature −c (``c > 0``).

    The curvature is stored in float64: geoopt would keep a Python float as float32, which puts
    float64 maths off by ~1e-8 relative at c = 0.1. float32 inputs still compute in float32.
    """
    return geoopt.PoincareBall(c=torch.tensor(check_curvature(c), dtype=torch.float64))


def project(x: torch.Tensor, c: float = 1.0) -> torch.Tensor:
    """Rescale rows of ``x (..., D)`` that reach past ``(1 − eps)/√c`` back inside the ball."""
    eps = BALL_EPS.get(x.dtype, 1e-5)
    max_norm = (1 - eps) / check_curvature(c) ** 0.5
    norm = x.norm(dim=-1, keepdim=True).clamp_min(1e-15)
    return torch.where(norm > max_norm, x / norm * max_norm, x)


def expmap0(v: torch.Tensor, c: float = 1.0) -> torch.Tensor:
    """Exponential map at the origin: tangent vectors ``(..., D)`` → points of the ball, projected."""
    return project(ball(c).expmap0(v), c)


def logmap0(x: torch.Tensor, c: float = 1.0) -> torch.Tensor:
    """Logarithmic map at the origin: points ``(..., D)`` → tangent vectors at 0."""
    return ball(c).logmap0(x)


def clip_features(v: torch.Tensor, clip_r: float | None = 2.3) -> torch.Tensor:
    """Feature clipping (Guo et al., "Clipped Hyperbolic Classifiers"): ``min(1, r/‖v‖)·v``.

    Keeps tangent vectors within Euclidean norm ``clip_r`` so the exponential map never lands
    near the boundary, where gradients vanish. ``None`` disables it.
    """
    if clip_r is None:
        return v
    if not (clip_r > 0 and math.isfinite(clip_r)):
        raise ValueError(f"clip_r must be a finite number > 0 or None, got {clip_r}")
    norm = v.norm(dim=-1, keepdim=True).clamp_min(1e-15)
    return v * torch.clamp(clip_r / norm, max=1.0)


def to_ball(v: torch.Tensor, c: float = 1.0, clip_r: float | None = 2.3) -> torch.Tensor:
    """Head output ``(..., D)`` → point of the ball: clipping, then :func:`expmap0`."""
    return expmap0(clip_features(v, clip_r), c)


def to_lorentz(x: torch.Tensor, c: float = 1.0) -> torch.Tensor:
    """Poincaré ball ``(..., D)`` → hyperboloid ``(..., D + 1)`` of curvature −c.

    ``(x0, x_1..D) = ((1 + c‖x‖²), 2x√c) / (√c (1 − c‖x‖²))``, so that
    ``d_c(x, y) = arccosh(−c⟨X, Y⟩_L) / √c`` with the Lorentz product ``⟨X, Y⟩_L = −X0Y0 + Σ XiYi``.
    """
    c = check_curvature(c)
    check_in_ball(x, c, "x")
    sq = c * x.pow(2).sum(-1, keepdim=True)
    denom = (1 - sq) * c**0.5
    return torch.cat([(1 + sq) / denom, 2 * c**0.5 * x / denom], dim=-1)


def lca_point(x: torch.Tensor, y: torch.Tensor, c: float) -> torch.Tensor:
    """Hyperbolic lowest common ancestor of rows of ``x`` and ``y`` (``(..., D)``, broadcast) → ``(..., D)``.

    The point of the complete geodesic through x and y closest to the origin (HypHC's ``x∨y``);
    its distance to the origin is the LCA depth of :func:`hyperdml.ops.hyp_lca_depth_reference`.
    After scaling by √c, the geodesic is an arc of the circle orthogonal to the boundary whose
    centre ``m = αx + βy`` has ``m·x = (1 + ‖x‖²)/2`` and ``m·y = (1 + ‖y‖²)/2``; the point is
    ``m/‖m‖ · (‖m‖ − √(‖m‖² − 1))``. When the geodesic passes through the origin (x, y and 0
    collinear, or one of them 0) the LCA is the origin; when ``x == y`` it is the point itself.
    """
    c = check_curvature(c)
    s = c**0.5
    u, v = x * s, y * s
    u, v = torch.broadcast_tensors(u, v)
    e = v - u
    uu, ue, ee = (u * u).sum(-1, keepdim=True), (u * e).sum(-1, keepdim=True), (e * e).sum(-1, keepdim=True)
    uv, vv = uu + ue, uu + 2 * ue + ee
    det = (uu * ee - ue * ue).clamp_min(0)  # = ‖u‖²‖v‖² − (u·v)², written with e for nearby points
    wu, wv = (1 + uu) / 2, (1 + vv) / 2
    tiny = torch.finfo(u.dtype).eps * (uu * vv).clamp_min(torch.finfo(u.dtype).tiny)
    general = det > tiny
    safe = torch.where(general, det, torch.ones_like(det))
    m = ((wu * vv - wv * uv) * u + (wv * uu - wu * uv) * v) / safe
    mm = (m * m).sum(-1, keepdim=True).clamp_min(1.0)
    # m/‖m‖ · (‖m‖ − √(‖m‖² − 1)) = m / (‖m‖² + ‖m‖·√(‖m‖² − 1)), stable for large ‖m‖
    point = m / (mm + mm.sqrt() * (mm - 1).sqrt())
    same = ee <= torch.finfo(u.dtype).eps * uu.clamp_min(1.0)
    point = torch.where(general, point, torch.where(same, u + e / 2, torch.zeros_like(u)))
    return point / s
