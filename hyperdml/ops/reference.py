"""Pure-PyTorch references for the two hot ops.

These are the oracles the compiled kernels are tested against, and the fallback the package
uses when the C++ extension is not built. They are written for clarity and exactness (plain
autograd through textbook formulas), not for speed or memory.
"""

from __future__ import annotations

import torch

__all__ = [
    "poincare_cdist_reference",
    "poincare_cdist_backward_reference",
    "hyp_lca_depth_reference",
    "hyphc_triplet_loss_reference",
    "hyphc_triplet_loss_backward_reference",
]


def poincare_cdist_reference(x: torch.Tensor, y: torch.Tensor, c: float = 1.0) -> torch.Tensor:
    """Geodesic distances between rows of ``x (B, D)`` and ``y (N, D)`` in the ball of curvature -c.

    ``d = arccosh(1 + 2c‖x−y‖² / ((1−c‖x‖²)(1−c‖y‖²))) / √c``, with ``‖x−y‖²`` taken from the
    exact difference (this materialises ``(B, N, D)``; it is the oracle, not the fast path).
    Returns ``(B, N)``.
    """
    sq = (x[:, None, :] - y[None, :, :]).pow(2).sum(-1)
    alpha = 1 - c * x.pow(2).sum(-1)
    beta = 1 - c * y.pow(2).sum(-1)
    u = 2 * c * sq / (alpha[:, None] * beta[None, :])
    # arccosh(1 + u) = log1p(u + sqrt(u (u + 2))): exact for small u, unlike acosh(1 + u).
    return torch.log1p(u + torch.sqrt(u * (u + 2))) / c**0.5


def _cdist_weights(grad, x, y, dist, c):
    """Per-pair weights of the distance gradient (shared by the fallback backward)."""
    sqrt_c = c**0.5
    alpha = 1 - c * x.pow(2).sum(-1)
    beta = 1 - c * y.pow(2).sum(-1)
    t = sqrt_c * dist
    u = 2 * torch.sinh(t / 2).pow(2)  # cosh(t) - 1 without cancellation
    sinh_t = torch.sinh(t)
    # A_ij = g · (dd/du) · 4c / (α_i β_j), dd/du = 1 / (√c sinh(√c d)); zero where d == 0
    # (the subgradient at x == y).
    safe = torch.where(sinh_t > 0, sinh_t, torch.ones_like(sinh_t))
    a = torch.where(sinh_t > 0, grad * 4 * sqrt_c / (alpha[:, None] * beta[None, :] * safe), 0.0)
    return a, u, alpha, beta


def poincare_cdist_backward_reference(grad, x, y, dist, c: float = 1.0):
    """Closed-form backward of :func:`poincare_cdist_reference` (GEMM form, exact for near pairs).

    ``grad (B, N)``, ``dist (B, N)`` the forward output → ``(grad_x (B, D), grad_y (N, D))``.
    """
    a, u, alpha, beta = _cdist_weights(grad, x, y, dist, c)
    # The GEMM form cancels for nearly equal points (error ~ eps·‖x‖/‖x−y‖): those pairs (same
    # test as the kernels, ‖x−y‖² < (‖x‖² + ‖y‖²)/64) take the exact differences instead.
    near = u * alpha[:, None] * beta[None, :] / 2 < (2 - alpha[:, None] - beta[None, :]) / 64
    a_far = torch.where(near, torch.zeros_like(a), a)
    row = (a_far * (1 + u * beta[None, :] / 2)).sum(1)
    col = (a_far * (1 + u * alpha[:, None] / 2)).sum(0)
    grad_x = row[:, None] * x - a_far @ y
    grad_y = col[:, None] * y - a_far.t() @ x
    i, j = near.nonzero(as_tuple=True)
    if i.numel():
        an, un = a[i, j][:, None], u[i, j][:, None]
        diff = x[i] - y[j]
        grad_x = grad_x.index_add(0, i, an * (diff + un * beta[j][:, None] / 2 * x[i]))
        grad_y = grad_y.index_add(0, j, an * (un * alpha[i][:, None] / 2 * y[j] - diff))
    return grad_x, grad_y


def _safe_sqrt(x: torch.Tensor) -> torch.Tensor:
    """sqrt with gradient 0 (not inf) at 0, for the non-smooth points of the LCA depth."""
    pos = x > 0
    return torch.where(pos, torch.sqrt(torch.where(pos, x, torch.ones_like(x))), torch.zeros_like(x))


def hyp_lca_depth_reference(a: torch.Tensor, b: torch.Tensor, c: float = 1.0) -> torch.Tensor:
    """Depth ``δ(a∨b) = d_c(0, a∨b)`` of the hyperbolic LCA of rows of ``a`` and ``b`` (``(..., D)``).

    ``a∨b`` is the point of the complete geodesic through a and b closest to the origin (as in
    HypHC). Closed form: after scaling by √c, the geodesic is an arc of the circle through a and
    b orthogonal to the boundary; its centre m lies in span(a, b) with ``m·a = w_a = (1+‖a‖²)/2``
    and ``m·b = w_b = (1+‖b‖²)/2``, and ``tanh(√c·δ) = 1/‖m‖``, which gives

        tanh²(√c·δ) = (‖a‖²‖b‖² − (a·b)²) / ‖w_a b − w_b a‖².

    Both sides are written with ``e = b − a`` (``‖a‖²‖e‖² − (a·e)²`` and
    ``‖(w_a − w_b) a + w_a e‖²``) so that nearby points lose no precision. When a == b the LCA is
    the point itself, ``δ = d_c(0, a)``; its gradient is split evenly between a and b (the
    depth of their midpoint). Returns ``(...)``.
    """
    sqrt_c = c**0.5
    a = a * sqrt_c
    e = b * sqrt_c - a
    aa = (a * a).sum(-1)
    ae = (a * e).sum(-1)
    ee = (e * e).sum(-1)
    wa = (1 + aa) / 2
    wa_minus_wb = -(2 * ae + ee) / 2
    num = (aa * ee - ae * ae).clamp_min(0)
    den = wa_minus_wb.pow(2) * aa + 2 * wa * wa_minus_wb * ae + wa.pow(2) * ee
    general = den > 0
    tanh_general = _safe_sqrt(num / torch.where(general, den, torch.ones_like(den)))
    mid = a + e / 2
    mm = (mid * mid).sum(-1)
    tanh_same = 2 * _safe_sqrt(mm) / (1 + mm)
    t = torch.where(general, tanh_general, tanh_same)
    return torch.atanh(t) / sqrt_c


def hyphc_triplet_loss_reference(points, triplets, sims, c: float = 1.0, tau: float = 0.05):
    """HypHC's per-triplet loss, ``points (P, D)``, ``triplets (T, 3)``, ``sims (T, 3)`` → ``(T,)``.

    ``loss = Σ s − s · softmax(δ / τ)`` with ``δ = (δ(z_i∨z_j), δ(z_i∨z_k), δ(z_j∨z_k))``.
    Materialises ``(T, 3, D)`` gathers; the compiled op does not.
    """
    zi, zj, zk = points[triplets[:, 0]], points[triplets[:, 1]], points[triplets[:, 2]]
    depth = torch.stack(
        [hyp_lca_depth_reference(zi, zj, c), hyp_lca_depth_reference(zi, zk, c), hyp_lca_depth_reference(zj, zk, c)],
        dim=-1,
    )
    weights = torch.softmax(depth / tau, dim=-1)
    return sims.sum(-1) - (sims * weights).sum(-1)


def hyphc_triplet_loss_backward_reference(grad, points, triplets, sims, c: float = 1.0, tau: float = 0.05):
    """Backward of :func:`hyphc_triplet_loss_reference` by autograd (the fallback kernel).

    ``grad (T,)`` → ``(grad_points (P, D), grad_sims (T, 3))``.
    """
    with torch.enable_grad():
        p = points.detach().requires_grad_(True)
        s = sims.detach().requires_grad_(True)
        out = hyphc_triplet_loss_reference(p, triplets, s, c, tau)
        gp, gs = torch.autograd.grad(out, (p, s), grad)
    return gp, gs
