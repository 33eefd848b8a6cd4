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


def poincare_cdist_reference(x: torch.Tensor, y: torch.Tensor, c: float) -> torch.Tensor:
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


def cdist_pair_weights(grad, dist, alpha, beta, c: float):
    """Weights ``(A, u)`` of the distance gradient for pairs with incoming gradient ``grad``,
    distance ``dist`` and ``α = 1 − c‖x‖²``, ``β = 1 − c‖y‖²`` (all broadcast together)."""
    sqrt_c = c**0.5
    t = sqrt_c * dist
    u = 2 * torch.sinh(t / 2).pow(2)  # cosh(t) - 1 without cancellation
    sinh_t = torch.sinh(t)
    # A_ij = g · (dd/du) · 4c / (α_i β_j), dd/du = 1 / (√c sinh(√c d)); zero where d == 0
    # (the subgradient at x == y).
    safe = torch.where(sinh_t > 0, sinh_t, torch.ones_like(sinh_t))
    a = torch.where(sinh_t > 0, grad * 4 * sqrt_c / (alpha * beta * safe), 0.0)
    return a, u


def add_cdist_pair_terms(grad_x, grad_y, i, j, a, u, x, y, alpha, beta):
    """``grad_x (B, D)``, ``grad_y (N, D)`` plus the terms of the pairs ``(i, j)`` (``(K,)`` each,
    weights ``a``, ``u``) from their exact differences, out of place: what the GEMM form loses to
    cancellation for nearly equal points."""
    an, un = a[:, None], u[:, None]
    diff = x[i] - y[j]
    grad_x = grad_x.index_add(0, i, an * (diff + un * beta[j][:, None] / 2 * x[i]))
    grad_y = grad_y.index_add(0, j, an * (un * alpha[i][:, None] / 2 * y[j] - diff))
    return grad_x, grad_y


def _cdist_weights(grad, x, y, dist, c):
    """Per-pair weights of the distance gradient (shared by the fallback backward)."""
    alpha = 1 - c * x.pow(2).sum(-1)
    beta = 1 - c * y.pow(2).sum(-1)
    a, u = cdist_pair_weights(grad, dist, alpha[:, None], beta[None, :], c)
    return a, u, alpha, beta


def _nonzero_unless_vmapped(mask: torch.Tensor):
    """``mask.nonzero(as_tuple=True)``, or ``None`` where ``torch.vmap`` batches ``mask`` (vmap
    allows no data-dependent shapes)."""
    try:
        return mask.nonzero(as_tuple=True)
    except RuntimeError as error:
        if "vmap" not in str(error):
            raise
        return None


def poincare_cdist_backward_reference(grad, x, y, dist, c: float):
    """Closed-form backward of :func:`poincare_cdist_reference` (GEMM form, exact for near pairs).

    ``grad (B, N)``, ``dist (B, N)`` the forward output → ``(grad_x (B, D), grad_y (N, D))``.
    Plain PyTorch, so differentiable in ``grad``, ``x``, ``y`` and ``dist``: the op's backward
    uses it when a graph of the gradient is built (higher derivatives).
    """
    a, u, alpha, beta = _cdist_weights(grad, x, y, dist, c)
    # The GEMM form cancels for nearly equal points (error ~ eps·‖x‖/‖x−y‖): those pairs (same
    # test as the kernels, ‖x−y‖² < (‖x‖² + ‖y‖²)/64) take the exact differences instead.
    near = u * alpha[:, None] * beta[None, :] / 2 < (2 - alpha[:, None] - beta[None, :]) / 64
    pairs = _nonzero_unless_vmapped(near)
    if pairs is None:  # under torch.vmap over the points: every pair in the GEMM form
        near = torch.zeros_like(near)
    a_far = torch.where(near, torch.zeros_like(a), a)
    row = (a_far * (1 + u * beta[None, :] / 2)).sum(1)
    col = (a_far * (1 + u * alpha[:, None] / 2)).sum(0)
    grad_x = row[:, None] * x - a_far @ y
    grad_y = col[:, None] * y - a_far.t() @ x
    if pairs is not None:  # no branch on their number: traceable with symbolic shapes
        i, j = pairs
        grad_x, grad_y = add_cdist_pair_terms(grad_x, grad_y, i, j, a[i, j], u[i, j], x, y, alpha, beta)
    return grad_x, grad_y


def _safe_sqrt(x: torch.Tensor) -> torch.Tensor:
    """sqrt with gradient 0 (not inf) at 0, for the non-smooth points of the LCA depth."""
    pos = x > 0
    return torch.where(pos, torch.sqrt(torch.where(pos, x, torch.ones_like(x))), torch.zeros_like(x))


def hyp_lca_depth_reference(a: torch.Tensor, b: torch.Tensor, c: float) -> torch.Tensor:
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


def hyphc_triplet_loss_reference(points, triplets, sims, c: float, tau: float = 0.05):
    """HypHC's per-triplet loss, ``points (P, D)``, ``triplets (T, 3)``, ``sims (T, 3)`` → ``(T,)``.

    ``loss = Σ s − s · softmax(δ / τ)`` with ``δ = (δ(z_i∨z_j), δ(z_i∨z_k), δ(z_j∨z_k))``.
    Materialises ``(T, 3, D)`` gathers; the compiled op does not.
    """
    zi, zj, zk = points[triplets[:, 0]], points[triplets[:, 1]], points[triplets[:, 2]]
    depth = torch.stack(
        [hyp_lca_depth_reference(zi, zj, c), hyp_lca_depth_reference(zi, zk, c), hyp_lca_depth_reference(zj, zk, c)],
        dim=-1,
    )
    # Shifted by the (constant) row maximum before the division: the largest term is exactly 0 and
    # no term overflows, so a tiny tau gives the softmax limit (ties share the weight).
    weights = torch.softmax((depth - depth.amax(-1, keepdim=True).detach()) / tau, dim=-1)
    return sims.sum(-1) - (sims * weights).sum(-1)


def _lca_depth_partials(aa, ae, ee, c: float):
    """δ of pairs from their scaled dots ``aa = c‖a‖², ae = c a·(b−a), ee = c‖b−a‖²`` and its
    partials in them (the closed form of :func:`hyp_lca_depth_reference`, differentiated by hand:
    the same subgradients, 0 at the kinks). Every branch is fed safe values, so autograd can
    differentiate the result again without NaN."""
    one, zero = torch.ones_like(aa), torch.zeros_like(aa)
    wa = (1 + aa) / 2
    dw = -(2 * ae + ee) / 2  # w_a − w_b
    num = aa * ee - ae * ae
    den = dw * dw * aa + 2 * wa * dw * ae + wa * wa * ee
    apart = den > 0
    bent = apart & (num > 0)  # else a, b and the origin are collinear: t = 0
    den_safe = torch.where(apart, den, one)
    t_bent = torch.sqrt(torch.where(bent, num, one) / den_safe)  # tanh(√c δ)
    dt_dnum, dt_dden = 0.5 / (t_bent * den_safe), -0.5 * t_bent / den_safe
    t = torch.where(bent, t_bent, zero)
    dt = [
        torch.where(bent, dt_dnum * ee + dt_dden * (dw * dw + dw * ae + wa * ee), zero),
        torch.where(bent, dt_dnum * (-2 * ae) + dt_dden * 2 * (wa * (dw - ae) - dw * aa), zero),
        torch.where(bent, dt_dnum * aa + dt_dden * (wa * wa - dw * aa - wa * ae), zero),
    ]
    # a == b: the depth of the midpoint, t = 2r / (1 + r²) with r² = mm = aa + ae + ee/4
    mm = aa + ae + ee / 4
    inside = ~apart & (mm > 0)
    r = torch.sqrt(torch.where(inside, mm, one))
    dt_dmm = torch.where(inside, (1 - mm) / (r * (1 + mm) ** 2), zero)
    t = torch.where(apart, t, torch.where(inside, 2 * r / (1 + mm), zero))
    dt = [torch.where(apart, d, dt_dmm * w) for d, w in zip(dt, (1.0, 1.0, 0.25))]
    ddelta_dt = 1 / (c**0.5 * (1 - t) * (1 + t))
    return torch.atanh(t) / c**0.5, [ddelta_dt * d for d in dt]


def _hyphc_pair_partials(points, triplets, sims, c: float, tau: float):
    """The rows ``z`` (three ``(T, D)``), the partials of each pair's depth in its scaled dots, the
    softmax weights ``(T, 3)`` and dloss/ddepth ``(T, 3)`` for an incoming gradient of 1."""
    z = [points[triplets[:, m]] for m in range(3)]  # (T, D) each
    depth, partials = [], []
    for i, j in _PAIRS:
        e = z[j] - z[i]
        d, p = _lca_depth_partials(c * (z[i] * z[i]).sum(-1), c * (z[i] * e).sum(-1), c * (e * e).sum(-1), c)
        depth.append(d)
        partials.append(p)
    depth = torch.stack(depth, dim=-1)
    weights = torch.softmax((depth - depth.amax(-1, keepdim=True).detach()) / tau, dim=-1)
    spread = (sims * weights).sum(-1, keepdim=True) - sims
    return z, partials, weights, weights * spread / tau


_PAIRS = ((0, 1), (0, 2), (1, 2))


def hyphc_triplet_loss_backward_reference(grad, points, triplets, sims, c: float, tau: float = 0.05):
    """Backward of :func:`hyphc_triplet_loss_reference` in closed form (the fallback kernel).

    ``grad (T,)`` → ``(grad_points (P, D), grad_sims (T, 3))``. Plain PyTorch (no autograd
    inside, so it also runs as a kernel), differentiable in ``grad``, ``points`` and ``sims``: the
    op's backward uses it when a graph of the gradient is built (higher derivatives).
    """
    z, partials, weights, dl_ddepth = _hyphc_pair_partials(points, triplets, sims, c, tau)
    dl_ddepth = grad[:, None] * dl_ddepth  # (T, 3)
    grad_z = [torch.zeros_like(zm) for zm in z]
    for m, ((i, j), (d_aa, d_ae, d_ee)) in enumerate(zip(_PAIRS, partials)):
        g = dl_ddepth[:, m, None] * c
        e = z[j] - z[i]
        # aa = c‖z_i‖², ae = c z_i·e, ee = c‖e‖² with e = z_j − z_i
        grad_z[i] = grad_z[i] + g * (2 * d_aa[:, None] * z[i] + d_ae[:, None] * (e - z[i]) - 2 * d_ee[:, None] * e)
        grad_z[j] = grad_z[j] + g * (d_ae[:, None] * z[i] + 2 * d_ee[:, None] * e)
    grad_points = torch.zeros_like(points)
    for m in range(3):
        grad_points = grad_points.index_add(0, triplets[:, m], grad_z[m])
    return grad_points, grad[:, None] * (1 - weights)
