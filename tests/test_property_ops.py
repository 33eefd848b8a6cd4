"""Property tests (hypothesis) of the two compiled ops against their pure-PyTorch references.

Random shapes (0 and 1 included), float32/float64, curvatures from 1e-3 to 10, non-contiguous
(transposed, sliced) and, for poincare_cdist, expanded (stride-0) inputs, points at the origin,
spread through the ball and near the boundary ((1 − 1e-3)/√c down to the dtype's limit),
repeated indices. Values and gradients are compared with the float64 reference under an explicit
error model (the conditioning of each quantity), so the tolerances are tight where the maths is
well conditioned.

The quick tests follow the profile chosen by ``HYPERDML_HYPOTHESIS_PROFILE`` (conftest.py,
"default": a few dozen examples); the ``slow`` ones always run the "ci" profile (≥ 1000
examples per op).
"""

from __future__ import annotations

import math

import pytest
import torch

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from conftest import ball_points  # noqa: E402
from hyperdml.geometry import BALL_EPS  # noqa: E402
from hyperdml.ops import hyphc_triplet_loss, poincare_cdist  # noqa: E402
from hyperdml.ops.reference import (  # noqa: E402
    hyp_lca_depth_reference,
    hyphc_triplet_loss_reference,
    poincare_cdist_reference,
)

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")

DTYPES = (torch.float32, torch.float64)
CURVATURES = (1e-3, 0.1, 0.5, 1.0, 2.5, 10.0)
LAYOUTS = ("contiguous", "transposed", "sliced", "expanded")
EPS64 = torch.finfo(torch.float64).eps
CI = settings.get_profile("ci")


# -- input generation ------------------------------------------------------------------------


@st.composite
def ball_rows(draw, n: int, d: int, c: float, dtype: torch.dtype, min_gap: float | None = None):
    """``(n, d)`` float64 points strictly inside the ball in ``dtype``: each row at the origin,
    inside, or near the boundary at norm ``(1 − gap)/√c`` with gap from 1e-3 down to the dtype's
    limit (``BALL_EPS``, or ``min_gap``)."""
    seed = draw(st.integers(0, 2**31 - 1))
    kinds = draw(st.lists(st.sampled_from(["origin", "inside", "boundary"]), min_size=n, max_size=n))
    lo = 3.0
    hi = -math.log10(min_gap if min_gap is not None else BALL_EPS[dtype])
    exps = draw(st.lists(st.floats(lo, hi), min_size=n, max_size=n))
    g = torch.Generator().manual_seed(seed)
    direction = torch.randn(n, d, generator=g, dtype=torch.float64)
    direction = direction / direction.norm(dim=1, keepdim=True).clamp_min(1e-300)
    radius = torch.rand(n, generator=g, dtype=torch.float64) * 0.999
    for r, (kind, e) in enumerate(zip(kinds, exps)):
        if kind == "origin":
            radius[r] = 0.0
        elif kind == "boundary":
            radius[r] = 1 - 10.0**-e
    x = (direction * radius[:, None] / math.sqrt(c)).to(dtype)
    # rounding to the dtype may land a boundary row on the sphere: pull it back by a few ulps
    for _ in range(50):
        out = c * x.pow(2).sum(1) >= 1
        if not bool(out.any()):
            break
        x[out] *= 1 - 4 * torch.finfo(dtype).eps
    return x


def layout(leaf: torch.Tensor, kind: str, rows: int) -> torch.Tensor:
    """A differentiable view of ``leaf`` with ``rows`` rows in memory layout ``kind``.

    ``expanded`` takes ``leaf``'s first row with stride 0 (``leaf`` must have ≥ 1 row when rows > 0).
    """
    if kind == "contiguous":
        return leaf
    if kind == "transposed":
        return leaf.t().contiguous().t()
    if kind == "sliced":
        pad = torch.zeros(leaf.shape[0], 3, dtype=leaf.dtype)
        return torch.cat([leaf, pad], dim=1)[:, : leaf.shape[1]]
    return leaf[:1].expand(rows, leaf.shape[1])


def quick_and_ci(strategy, check, **ci):
    """Two tests of ``check(case)`` on ``strategy``: a quick one under the active profile and a
    ``slow`` one pinned to the "ci" profile (overridden by ``ci``, e.g. ``max_examples``)."""
    return given(strategy)(check), pytest.mark.slow(settings(CI, **ci)(given(strategy)(check)))


# -- poincare_cdist --------------------------------------------------------------------------


@st.composite
def cdist_case(draw):
    dtype = draw(st.sampled_from(DTYPES))
    c = draw(st.sampled_from(CURVATURES))
    b, n, d = draw(st.integers(0, 7)), draw(st.integers(0, 7)), draw(st.integers(1, 9))
    lx, ly = draw(st.sampled_from(LAYOUTS)), draw(st.sampled_from(LAYOUTS))
    x = draw(ball_rows(b if lx != "expanded" else min(b, 1), d, c, dtype))
    y = draw(ball_rows(n if ly != "expanded" else min(n, 1), d, c, dtype))
    if draw(st.booleans()) and b and n:  # share rows: x == y pairs (distance 0, non-smooth)
        k = min(x.shape[0], y.shape[0])
        y[:k] = x[:k]
    return dtype, c, x, y, lx, ly, b, n


def cdist_error_model(x, y, c, dtype, ref):
    """Bound on |kernel − reference| per entry: the GEMM form's cancellation (kNearRatio = 1/64)
    plus 1/α, 1/β conditioning near the boundary, relative to the distance."""
    eps = torch.finfo(dtype).eps
    alpha = 1 - c * x.double().pow(2).sum(1)
    beta = 1 - c * y.double().pow(2).sum(1)
    cond = 64 + 1 / alpha[:, None] + 1 / beta[None, :]
    return 8 * eps * cond * ref.abs() + 1e-300


def safe_reference(x, y, c):
    """:func:`poincare_cdist_reference` whose autograd gives the op's documented subgradient 0 at
    ``x == y`` (the plain reference's is NaN there: the derivative of √u at 0)."""
    sq = (x[:, None, :] - y[None, :, :]).pow(2).sum(-1)
    alpha = 1 - c * x.pow(2).sum(-1)
    beta = 1 - c * y.pow(2).sum(-1)
    u = 2 * c * sq / (alpha[:, None] * beta[None, :])
    pos = sq > 0
    u = torch.where(pos, u, torch.ones_like(u))
    return torch.where(pos, torch.log1p(u + torch.sqrt(u * (u + 2))) / c**0.5, torch.zeros_like(u))


def check_cdist(case):
    dtype, c, x0, y0, lx, ly, b, n = case
    x_leaf = x0.clone().requires_grad_(True)
    y_leaf = y0.clone().requires_grad_(True)
    x, y = layout(x_leaf, lx, b), layout(y_leaf, ly, n)
    assert x.shape == (b, x0.shape[1]) and y.shape == (n, y0.shape[1])
    out = poincare_cdist(x, y, c)
    assert out.shape == (b, n) and out.dtype == dtype
    xd = x.detach().double().requires_grad_(True)
    yd = y.detach().double().requires_grad_(True)
    ref = poincare_cdist_reference(xd, yd, c)
    assert torch.isfinite(out).all(), "non-finite distance for points inside the ball"
    err = (out.detach().double() - ref.detach()).abs()
    bound = cdist_error_model(xd.detach(), yd.detach(), c, dtype, ref.detach())
    assert bool((err <= bound).all()), f"max excess {(err - bound).max().item():.3g} (c={c}, {dtype})"
    if out.numel() == 0:
        return
    # gradients of a random weighting, against autograd through the float64 reference
    w = torch.randn(b, n, generator=torch.Generator().manual_seed(b * 131 + n), dtype=torch.float64)
    gx, gy = torch.autograd.grad((out * w.to(dtype)).sum(), (x_leaf, y_leaf))
    rx, ry = torch.autograd.grad((safe_reference(xd, yd, c) * w).sum(), (xd, yd))
    if lx == "expanded":
        rx = rx.sum(0, keepdim=True)
    if ly == "expanded":
        ry = ry.sum(0, keepdim=True)
    assert torch.isfinite(gx).all() and torch.isfinite(gy).all()
    # per pair, the backward's GEMM form a·x − a·y cancels for near pairs: error ≲ eps·|a|·(|x|+|y|)
    eps = torch.finfo(dtype).eps
    xv, yv = xd.detach(), yd.detach()
    alpha = 1 - c * xv.pow(2).sum(1)
    beta = 1 - c * yv.pow(2).sum(1)
    dist = ref.detach()
    sinh_t = torch.sinh(math.sqrt(c) * dist)
    u = torch.cosh(math.sqrt(c) * dist) - 1
    a = torch.where(sinh_t > 0, 4 * math.sqrt(c) / (alpha[:, None] * beta[None, :] * sinh_t.clamp_min(1e-300)), 0.0)
    scale = (w.abs() * a * (1 + u) * (xv.norm(dim=1)[:, None] + yv.norm(dim=1)[None, :] + 1e-300))
    cond = 64 + 1 / alpha[:, None] + 1 / beta[None, :]
    ex = 16 * eps * (scale * cond).sum(1)
    ey = 16 * eps * (scale * cond).sum(0)
    if lx == "expanded":
        ex = ex.sum(0, keepdim=True)
    if ly == "expanded":
        ey = ey.sum(0, keepdim=True)
    dx = (gx.double() - rx).norm(dim=1)
    dy = (gy.double() - ry).norm(dim=1)
    assert bool((dx <= ex + 1e-6 * rx.norm(dim=1)).all()), f"grad x off by {dx.max().item():.3g} > {ex.max().item():.3g}"
    assert bool((dy <= ey + 1e-6 * ry.norm(dim=1)).all()), f"grad y off by {dy.max().item():.3g} > {ey.max().item():.3g}"


test_poincare_cdist_matches_reference, test_poincare_cdist_matches_reference_ci = quick_and_ci(cdist_case(), check_cdist)


@given(st.sampled_from(DTYPES), st.sampled_from(CURVATURES), st.integers(1, 6), st.integers(1, 8))
def test_poincare_cdist_symmetric_and_zero_diagonal(dtype, c, n, d):
    """d(x, x) = 0 exactly, d(x, y) = d(y, x), and the triangle inequality (float64)."""
    pts = ball_points(n, d, c, max_frac=0.99, dtype=dtype, seed=n * 31 + d)
    dist = poincare_cdist(pts, pts, c)
    assert torch.equal(dist.diagonal(), torch.zeros(n, dtype=dtype))
    tol = 1e-4 if dtype == torch.float32 else 1e-10
    torch.testing.assert_close(dist, dist.t(), rtol=tol, atol=tol)
    d64 = poincare_cdist(pts.double(), pts.double(), c)
    assert bool((d64[:, None, :] <= d64[:, :, None] + d64[None, :, :] + 1e-9 * (1 + d64.max())).all())


# -- hyphc_triplet_loss ----------------------------------------------------------------------


@st.composite
def hyphc_case(draw):
    dtype = draw(st.sampled_from(DTYPES))
    c = draw(st.sampled_from(CURVATURES))
    tau = draw(st.sampled_from((0.01, 0.05, 0.3, 1.0, 10.0)))
    p, d = draw(st.integers(1, 7)), draw(st.integers(1, 6))
    t = draw(st.integers(0, 12))
    # depths saturate where 1 − tanh(√c δ) underflows (see docs/reliability.md): stay above 1e-7
    points = draw(ball_rows(p, d, c, dtype, min_gap=max(BALL_EPS[dtype], 1e-7)))
    if draw(st.booleans()) and p >= 2:  # duplicate points
        points[-1] = points[0]
    seed = draw(st.integers(0, 2**31 - 1))
    g = torch.Generator().manual_seed(seed)
    triplets = torch.randint(0, p, (t, 3), generator=g)
    sims = (torch.rand(t, 3, generator=g, dtype=torch.float64) * draw(st.sampled_from((1.0, 5.0)))).to(dtype)
    tl, sl = draw(st.sampled_from(("contiguous", "transposed"))), draw(st.sampled_from(("contiguous", "transposed")))
    pl = draw(st.sampled_from(("contiguous", "transposed", "sliced")))
    return dtype, c, tau, points, triplets, sims, pl, tl, sl


def _pair_terms(points, triplets, c):
    """Per triplet and pair: scaled dots (aa, ae, ee), t = tanh(√c δ) from the reference."""
    pairs = ((0, 1), (0, 2), (1, 2))
    out = []
    for i, j in pairs:
        a = points[triplets[:, i]] * math.sqrt(c)
        b = points[triplets[:, j]] * math.sqrt(c)
        e = b - a
        aa, ae, ee = (a * a).sum(-1), (a * e).sum(-1), (e * e).sum(-1)
        delta = hyp_lca_depth_reference(points[triplets[:, i]], points[triplets[:, j]], c)
        out.append((aa, ae, ee, (b * b).sum(-1), delta))
    return out


def check_hyphc(case):
    dtype, c, tau, points0, triplets0, sims0, pl, tl, sl = case
    leaf = points0.clone().requires_grad_(True)
    sims_leaf = sims0.clone().requires_grad_(True)
    points = layout(leaf, pl, points0.shape[0])
    triplets = layout(triplets0, tl, triplets0.shape[0]) if tl != "contiguous" else triplets0
    sims = layout(sims_leaf, sl, sims0.shape[0])
    out = hyphc_triplet_loss(points, triplets, sims, c, tau)
    assert out.shape == (triplets0.shape[0],) and out.dtype == dtype
    assert torch.isfinite(out).all()
    pd = points0.double().requires_grad_(True)
    sd = sims0.double().requires_grad_(True)
    ref = hyphc_triplet_loss_reference(pd, triplets0, sd, c, tau)
    if triplets0.shape[0] == 0:
        out.sum().backward()
        assert torch.equal(leaf.grad, torch.zeros_like(leaf))
        return
    # error model: sqrt cancellation of num = aa·ee − ae² near collinear pairs, 1/(1 − t) near the
    # boundary, then the softmax's |∂L/∂δ| ≤ Σ|s| / τ; float32 rounds the output.
    terms = _pair_terms(pd.detach(), triplets0, c)
    dd = torch.zeros(triplets0.shape[0], dtype=torch.float64)
    for aa, ae, ee, bb, delta in terms:
        t = torch.tanh(math.sqrt(c) * delta)
        wa = (1 + aa) / 2
        dw = -(2 * ae + ee) / 2
        den = dw * dw * aa + 2 * wa * dw * ae + wa * wa * ee
        dt = torch.sqrt(64 * EPS64 * (aa * ee + ae * ae + 1e-300) / den.clamp_min(1e-300))
        dt = torch.where(den > 0, dt, torch.zeros_like(dt)) + 64 * EPS64
        dd = dd + dt / ((1 - t).clamp_min(1e-300) * math.sqrt(c)) + 64 * EPS64 * delta
    s_abs = sd.detach().abs().sum(1)
    bound = s_abs * (2 / tau) * dd + 16 * EPS64 * s_abs
    if dtype == torch.float32:
        bound = bound + 4 * torch.finfo(torch.float32).eps * (ref.detach().abs() + s_abs)
    err = (out.detach().double() - ref.detach()).abs()
    assert bool((err <= bound).all()), f"loss off by {(err - bound).max().item():.3g} beyond the bound"
    # gradients on the well-conditioned triplets (no nearly-collinear pair: there the depth has
    # a square-root kink and both sides legitimately differ)
    ok = torch.ones(triplets0.shape[0], dtype=torch.bool)
    cond = torch.ones(triplets0.shape[0], dtype=torch.float64)
    for aa, ae, ee, bb, delta in terms:
        num = aa * ee - ae * ae
        # a at the origin or a == b is exact on both sides; b at the origin is not (the compiled
        # num = aa·ee − ae² may be FMA-contracted: rounding noise instead of 0)
        exact = (ee == 0) | (aa == 0)
        ok &= exact | (num > 1e-6 * aa * ee)
        t = torch.tanh(math.sqrt(c) * delta)
        cond = torch.maximum(cond, 1 / (1 - t).clamp_min(1e-300))
    w = torch.rand(triplets0.shape[0], generator=torch.Generator().manual_seed(7), dtype=torch.float64) * ok
    gp, gs = torch.autograd.grad((out * w.to(dtype)).sum(), (leaf, sims_leaf))
    rp, rs = torch.autograd.grad((ref * w).sum(), (pd, sd))
    assert torch.isfinite(gp).all() and torch.isfinite(gs).all()
    eps = torch.finfo(dtype).eps
    rtol = 1e-6 + 1e4 * EPS64 * float(cond[ok].max()) if bool(ok.any()) else 1e-6
    rtol = max(rtol, 64 * eps)
    scale = float(rp.abs().max()) + float(rs.abs().max()) + 1e-300
    torch.testing.assert_close(gp.double(), rp, rtol=rtol, atol=rtol * scale)
    torch.testing.assert_close(gs.double(), rs, rtol=rtol, atol=rtol * (float(rs.abs().max()) + 1e-300))


test_hyphc_triplet_loss_matches_reference, test_hyphc_triplet_loss_matches_reference_ci = quick_and_ci(
    hyphc_case(), check_hyphc
)


@given(st.sampled_from(DTYPES), st.sampled_from(CURVATURES), st.integers(1, 5), st.integers(2, 5))
def test_hyphc_permutation_invariance(dtype, c, p, d):
    """Relabelling the points (and the triplets with them) changes nothing; a triplet's loss is
    invariant under a permutation of (i, j, k) that permutes its sims alike."""
    pts = ball_points(p, d, c, max_frac=0.9, dtype=dtype, seed=p * 17 + d)
    g = torch.Generator().manual_seed(p * 17 + d + 1)
    tri = torch.randint(0, p, (10, 3), generator=g)
    sims = torch.rand(10, 3, generator=g, dtype=torch.float64).to(dtype)
    base = hyphc_triplet_loss(pts, tri, sims, c, 0.3)
    perm = torch.randperm(p, generator=g)
    inv = torch.argsort(perm)
    torch.testing.assert_close(hyphc_triplet_loss(pts[perm], inv[tri], sims, c, 0.3), base)
    # (i, j, k) -> (j, i, k): pairs (ij, ik, jk) -> (ji, jk, ik)
    swapped = hyphc_triplet_loss(pts, tri[:, [1, 0, 2]], sims[:, [0, 2, 1]], c, 0.3)
    # (a, e = b − a) and (b, −e) round differently: ~√eps near collinear pairs
    tol = 1e-4 if dtype == torch.float32 else 1e-6
    torch.testing.assert_close(swapped, base, rtol=tol, atol=tol)


# -- second derivatives (create_graph) ------------------------------------------------------


@st.composite
def second_order_cdist_case(draw):
    c = draw(st.sampled_from(CURVATURES))
    b, n, d = draw(st.integers(1, 5)), draw(st.integers(1, 5)), draw(st.integers(1, 6))
    x = draw(ball_rows(b, d, c, torch.float64, min_gap=1e-4))
    y = draw(ball_rows(n, d, c, torch.float64, min_gap=1e-4))
    # the distance is not twice differentiable at x == y: keep pairs apart
    hypothesis.assume(bool(((x[:, None] - y[None]).norm(dim=-1) > 1e-3 / math.sqrt(c)).all()))
    return c, x, y


def check_cdist_second_order(case):
    """A gradient penalty's gradient, through the op and through the float64 reference."""
    c, x0, y0 = case
    w = torch.randn(x0.shape[0], y0.shape[0], generator=torch.Generator().manual_seed(x0.numel()), dtype=torch.float64)

    def penalty_grads(dist_fn):
        """Per term of the penalty, its gradient wrt (x, y)."""
        x, y = x0.clone().requires_grad_(True), y0.clone().requires_grad_(True)
        gx, gy = torch.autograd.grad((dist_fn(x, y, c) * w).sum(), (x, y), create_graph=True)
        terms = (gx.pow(2).sum(), gy.pow(2).sum(), gx.sum())
        return (gx, gy), [torch.autograd.grad(term, (x, y), retain_graph=True, allow_unused=True) for term in terms]

    got, want = penalty_grads(poincare_cdist), penalty_grads(safe_reference)
    assert_penalties_close(got[1], want[1], c, max(float(g.detach().abs().max()) for g in want[0]))


def assert_penalties_close(got_terms, want_terms, c, first_scale):
    """The summed penalty gradients agree to 1e-6 of the size of their terms (which may cancel),
    above a rounding floor of the second derivatives: 1e-10 · first_scale² · √c, first_scale the
    size of the first derivatives before any cancellation (a Hessian entry is about
    |gradient| / length, the length scale of the ball being 1/√c)."""
    floor = 1e-10 * first_scale**2 * math.sqrt(c)
    for k in range(len(want_terms[0])):
        parts = [(g[k], w[k]) for g, w in zip(got_terms, want_terms) if w[k] is not None]
        got_sum = sum(g for g, _ in parts)
        want_sum = sum(w for _, w in parts)
        scale = sum(float(w.abs().max()) for _, w in parts)
        assert torch.isfinite(got_sum).all()
        torch.testing.assert_close(got_sum, want_sum, rtol=1e-6, atol=1e-6 * scale + floor)


test_poincare_cdist_second_order, test_poincare_cdist_second_order_ci = quick_and_ci(
    second_order_cdist_case(), check_cdist_second_order, max_examples=300
)


@st.composite
def second_order_hyphc_case(draw):
    c = draw(st.sampled_from(CURVATURES))
    tau = draw(st.sampled_from((0.05, 0.3, 1.0)))
    p, d, t = draw(st.integers(1, 6)), draw(st.integers(1, 5)), draw(st.integers(1, 10))
    points = draw(ball_rows(p, d, c, torch.float64, min_gap=1e-4))
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    triplets = torch.randint(0, p, (t, 3), generator=g)
    sims = torch.rand(t, 3, generator=g, dtype=torch.float64)
    return c, tau, points, triplets, sims


def check_hyphc_second_order(case):
    c, tau, points0, triplets, sims0 = case
    # nearly collinear pairs sit next to the depth's square-root kink: weight them out
    ok = torch.ones(triplets.shape[0], dtype=torch.bool)
    for aa, ae, ee, _, _ in _pair_terms(points0, triplets, c):
        ok &= (ee == 0) | (aa == 0) | (aa * ee - ae * ae > 1e-4 * aa * ee)
    w = torch.rand(triplets.shape[0], generator=torch.Generator().manual_seed(3), dtype=torch.float64) * ok

    def penalty_grads(loss_fn):
        points, sims = points0.clone().requires_grad_(True), sims0.clone().requires_grad_(True)
        gp, gs = torch.autograd.grad((loss_fn(points, triplets, sims, c, tau) * w).sum(), (points, sims), create_graph=True)
        terms = (gp.pow(2).sum(), (gs * sims).sum())
        return (gp, gs), [torch.autograd.grad(term, (points, sims), retain_graph=True, allow_unused=True) for term in terms]

    got, want = penalty_grads(hyphc_triplet_loss), penalty_grads(hyphc_triplet_loss_reference)
    # size of the point gradients before the softmax weights cancel them: Σ|s|/τ · |∇ Σ depths|
    z = points0.clone().requires_grad_(True)
    depths = sum(hyp_lca_depth_reference(z[triplets[:, i]], z[triplets[:, j]], c) for i, j in ((0, 1), (0, 2), (1, 2)))
    (depth_grad,) = torch.autograd.grad((depths * w).sum(), z)
    first_scale = float(sims0.abs().sum(1).max()) / tau * float(depth_grad.abs().max()) + float(want[0][1].detach().abs().max())
    assert_penalties_close(got[1], want[1], c, first_scale)


test_hyphc_second_order, test_hyphc_second_order_ci = quick_and_ci(
    second_order_hyphc_case(), check_hyphc_second_order, max_examples=300
)
