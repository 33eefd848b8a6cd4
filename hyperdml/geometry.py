"""The Poincaré ball's maths, written once: small named functions over geoopt's ``PoincareBall``.

Every function takes the curvature magnitude ``c`` (the ball is ``‖x‖ < 1/√c``) explicitly; the
one place that chooses a curvature for the user is :class:`hyperdml.spaces.PoincareSpace`, which
calls these functions. geoopt does the maps where it is exact (``expmap0``, ``logmap0``); the
distance, the lowest-common-ancestor depth and the Lorentz map are written here in the forms that
stay exact near the boundary and for nearby points. The C++/CUDA kernels
(:mod:`hyperdml.ops`) and their pure-PyTorch references (:mod:`hyperdml.ops.reference`, the
independent oracle of the tests) are separate on purpose.
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

__all__ = [
    "ball", "expmap0", "logmap0", "project", "clip_features", "row_norm", "to_ball", "to_lorentz", "dist",
    "sq_dist_matrix", "lca_depth", "lca_tanh2", "tangent_mean", "lca_point", "BALL_EPS",
]

#: Relative margin kept from the boundary: points are held at norm ≤ (1 − BALL_EPS[dtype]) / √c.
BALL_EPS = {torch.float32: 1e-5, torch.float64: 1e-10}


def ball(c: float) -> geoopt.PoincareBall:
    """geoopt's Poincaré ball of curvature −c (``c > 0``).

    The curvature is stored in float64: geoopt would keep a Python float as float32, which puts
    float64 maths off by ~1e-8 relative at c = 0.1. float32 inputs still compute in float32.
    """
    return geoopt.PoincareBall(c=torch.tensor(check_curvature(c), dtype=torch.float64))


def project(x: torch.Tensor, c: float) -> torch.Tensor:
    """Rescale rows of ``x (..., D)`` that reach past ``(1 − eps)/√c`` back inside the ball."""
    eps = BALL_EPS.get(x.dtype, 1e-5)
    max_norm = (1 - eps) / check_curvature(c) ** 0.5
    norm = row_norm(x).clamp_min(1e-15)
    return torch.where(norm > max_norm, x / norm * max_norm, x)


def expmap0(v: torch.Tensor, c: float) -> torch.Tensor:
    """Exponential map at the origin: tangent vectors ``(..., D)`` → points of the ball, projected."""
    return project(ball(c).expmap0(v), c)


def logmap0(x: torch.Tensor, c: float) -> torch.Tensor:
    """Logarithmic map at the origin: points ``(..., D)`` → tangent vectors at 0."""
    return ball(c).logmap0(x)


def clip_features(v: torch.Tensor, clip_r: float | None) -> torch.Tensor:
    """Feature clipping (Guo et al., "Clipped Hyperbolic Classifiers"): ``min(1, r/‖v‖)·v``.

    Keeps tangent vectors within Euclidean norm ``clip_r`` so the exponential map never lands
    near the boundary, where gradients vanish. ``None`` disables it.
    """
    if clip_r is None:
        return v
    if not (clip_r > 0 and math.isfinite(clip_r)):
        raise ValueError(f"clip_r must be a finite number > 0 or None, got {clip_r}")
    norm = row_norm(v).clamp_min(1e-15)
    return v * torch.clamp(clip_r / norm, max=1.0)


def row_norm(v: torch.Tensor) -> torch.Tensor:
    """``‖v‖`` over the last dimension ``(..., 1)``, without overflow: float32 rows of norm ~1e20
    have squares past the float32 range, so the rows are scaled by their largest entry first."""
    scale = v.abs().amax(dim=-1, keepdim=True)
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    return (v / scale).norm(dim=-1, keepdim=True) * scale


def to_ball(v: torch.Tensor, c: float, clip_r: float | None) -> torch.Tensor:
    """Tangent vectors at the origin ``(..., D)`` → points of the ball: clipping, then :func:`expmap0`."""
    return expmap0(clip_features(v, clip_r), c)


def to_lorentz(x: torch.Tensor, c: float) -> torch.Tensor:
    """Poincaré ball ``(..., D)`` → hyperboloid ``(..., D + 1)`` of curvature −c.

    ``(x0, x_1..D) = ((1 + c‖x‖²), 2x√c) / (√c (1 − c‖x‖²))``, so that
    ``d_c(x, y) = arccosh(−c⟨X, Y⟩_L) / √c`` with the Lorentz product ``⟨X, Y⟩_L = −X0Y0 + Σ XiYi``.
    """
    c = check_curvature(c)
    check_in_ball(x, c, "x")
    sq = c * x.pow(2).sum(-1, keepdim=True)
    denom = (1 - sq) * c**0.5
    return torch.cat([(1 + sq) / denom, 2 * c**0.5 * x / denom], dim=-1)


def _dist_from_terms(diff2, xx, yy, c: float):
    """``d_c`` from ``‖x − y‖²``, ``‖x‖²``, ``‖y‖²``: ``(2/√c)·asinh(√u)``, ``u = c‖x−y‖²/((1−c‖x‖²)(1−c‖y‖²))``.

    The same as ``arccosh(1 + 2u)/√c``, without its cancellation for nearby points.
    """
    u = c * diff2 / ((1 - c * xx) * (1 - c * yy))
    return (2 / c**0.5) * torch.asinh(torch.sqrt(u.clamp_min(0)))


def dist(x: torch.Tensor, y: torch.Tensor, c: float) -> torch.Tensor:
    """Geodesic distance of broadcast rows: ``x (..., D)``, ``y (..., D)`` → ``(...)``.

    Elementwise (no GEMM): exact for nearby points and up to the boundary. For all pairs of two
    sets use :func:`hyperdml.ops.poincare_cdist` (fused, never forms ``(B, N, D)``).
    """
    c = check_curvature(c)
    return _dist_from_terms((x - y).pow(2).sum(-1), x.pow(2).sum(-1), y.pow(2).sum(-1), c)


def sq_dist_matrix(x: torch.Tensor, y: torch.Tensor, c: float) -> torch.Tensor:
    """Squared geodesic distances of all pairs, batched: ``x (..., K, D)``, ``y (..., M, D)`` → ``(..., K, M)``.

    Inner products by one batched GEMM (no ``(..., K, M, D)`` tensor); differentiable in both, with
    gradient 0 at ``x == y`` (that of d²).
    """
    c = check_curvature(c)
    dtype = torch.promote_types(x.dtype, y.dtype)
    x, y = x.to(dtype), y.to(dtype)
    xx = x.pow(2).sum(-1).unsqueeze(-1)  # (..., K, 1)
    yy = y.pow(2).sum(-1).unsqueeze(-2)  # (..., 1, M)
    diff2 = (xx + yy - 2 * (x @ y.transpose(-1, -2))).clamp_min(torch.finfo(dtype).tiny)
    return _dist_from_terms(diff2, xx, yy, c).pow(2)


def lca_tanh2(aa, ae, ee):
    """``tanh²(√c·δ(a∨x))`` of the hyperbolic lowest common ancestor, from three scalar products.

    ``aa = ‖a‖²``, ``ae = ⟨a, e⟩``, ``ee = ‖e‖²`` with ``e = x − a``, both points pre-scaled by
    √c. After that scaling the geodesic through a and x is an arc of the circle orthogonal to the
    boundary whose centre m satisfies ``m·a = w_a = (1 + ‖a‖²)/2``, ``m·x = w_x``, and the LCA
    (the arc's point closest to the origin) has ``tanh(√c·δ) = 1/‖m‖``, which gives
    ``tanh² = (‖a‖²‖x‖² − (a·x)²) / ‖w_a x − w_x a‖²``, written in ``e`` so nearby points lose no
    precision. When the two points coincide the LCA is the point itself. Works on NumPy arrays
    and torch tensors alike (broadcasting); ``tanh²`` increases with the depth, so it orders
    merges without ``artanh``. See :func:`lca_depth` for the depth itself.
    """
    wa = 0.5 * (1 + aa)
    dw = -(ae + 0.5 * ee)  # w_a − w_x
    num = aa * ee - ae * ae
    num = 0.5 * (num + abs(num))  # max(num, 0) for arrays and tensors
    den = dw * dw * aa + 2 * wa * dw * ae + wa * wa * ee
    general = den > 0
    same = 4 * aa / (1 + aa) ** 2  # x == a: tanh²(√c·d(0, a)) = (2‖a‖ / (1 + ‖a‖²))²
    return general * (num / (den + (~general))) + (~general) * same


def lca_depth(a: torch.Tensor, b: torch.Tensor, c: float) -> torch.Tensor:
    """Depth ``δ(a∨b) = d_c(0, a∨b)`` of the hyperbolic LCA of broadcast rows ``a``, ``b`` ``(..., D)`` → ``(...)``.

    ``a∨b`` is the point of the complete geodesic through a and b closest to the origin (HypHC's
    lowest common ancestor); see :func:`lca_tanh2`.
    """
    c = check_curvature(c)
    a = a * c**0.5
    e = b * c**0.5 - a
    t2 = lca_tanh2((a * a).sum(-1), (a * e).sum(-1), (e * e).sum(-1))
    return torch.atanh(t2.clamp(0, 1 - torch.finfo(t2.dtype).eps).sqrt()) / c**0.5


def tangent_mean(points: torch.Tensor, c: float, dim: int = -2) -> torch.Tensor:
    """Mean of ball points along ``dim`` in the tangent space at the origin: ``expmap0(mean logmap0(x))``.

    The origin is the root of a HypHC tree and the base point of the hyperbolic heads, so a mean
    there keeps the points' common direction and their depth; it has a closed form (the Fréchet
    mean needs an iterative solver) and is what k-means on ``logmap0`` features computes.
    """
    return expmap0(logmap0(points, c).mean(dim=dim), c)


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


def geodesic_points(x: torch.Tensor, y: torch.Tensor, c: float, n: int = 48) -> torch.Tensor:
    """``n`` points ``(n, D)`` along the geodesic from ``x (D,)`` to ``y (D,)``, evenly spaced in
    hyperbolic arc length: ``γ(t) = x ⊕ (t ⊗ ((−x) ⊕ y))``, ``t ∈ [0, 1]`` (geoopt's ``geodesic``)."""
    t = torch.linspace(0.0, 1.0, int(n), dtype=x.dtype, device=x.device)[:, None]
    return ball(c).geodesic(t, x[None, :], y[None, :])
