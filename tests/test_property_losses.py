"""Property tests (hypothesis) of every loss against independent pure-PyTorch oracles.

ProxyAnchor, ProxyNCA, SoftTriple (Euclidean and Poincaré spaces), CHEST and HypHCLoss: random
batch sizes (1 included), class counts, proxies per class, dimensions (1 included), float32 /
float64, curvatures, non-contiguous and expanded embeddings, zero embeddings (the origin),
repeated labels, proxies near the boundary of the ball, no clipping (head outputs mapped next to
the boundary). Each oracle below is written from the loss's docstring formula, in float64, with
the ops' references (:mod:`hyperdml.ops.reference`) for the hyperbolic distances and LCA depths;
values and the gradients in embeddings and proxies are compared.
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch
import torch.nn.functional as F

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from hyperdml.geometry import BALL_EPS  # noqa: E402
from hyperdml.losses import CHEST, HypHCLoss, ProxyAnchor, ProxyNCA, SoftTriple  # noqa: E402
from hyperdml.ops.reference import hyphc_triplet_loss_reference  # noqa: E402
from hyperdml.spaces import EuclideanSpace, PoincareSpace  # noqa: E402
from test_property_ops import quick_and_ci, safe_reference  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")

DTYPES = (torch.float32, torch.float64)


# -- oracles (float64) -----------------------------------------------------------------------


def cosine(x, p):
    return (x / x.norm(dim=1, keepdim=True).clamp_min(1e-12)) @ (p / p.norm(dim=1, keepdim=True).clamp_min(1e-12)).t()


#: geoopt's expmap0 projects to (1 − eps)/√c with its own eps per dtype (larger than BALL_EPS)
GEOOPT_EPS = {torch.float32: 4e-3, torch.float64: 1e-5}


def project(x, c, dtype, eps=None):
    """Rows beyond (1 − eps)/√c rescaled onto that sphere (eps: ``BALL_EPS[dtype]``)."""
    max_norm = (1 - (BALL_EPS[dtype] if eps is None else eps)) / math.sqrt(c)
    norm = x.norm(dim=1, keepdim=True)
    return torch.where(norm > max_norm, x / norm.clamp_min(1e-300) * max_norm, x)


def to_ball(v, c, clip_r, dtype):
    """clip to clip_r, expmap0 = tanh(√c‖v‖)·v/(√c‖v‖), projected as geoopt does for ``dtype``."""
    norm = v.norm(dim=1, keepdim=True)
    if clip_r is not None:
        v = torch.where(norm > clip_r, v * (clip_r / norm.clamp_min(1e-300)), v)
        norm = v.norm(dim=1, keepdim=True)
    safe = norm.clamp_min(1e-300)
    sc = math.sqrt(c)
    x = torch.where(norm > 0, torch.tanh(sc * safe) * v / (sc * safe), v)
    return project(project(x, c, dtype, GEOOPT_EPS[dtype]), c, dtype)


def oracle_similarity(space, emb, proxies, dtype):
    """(B, D) head outputs × proxy parameter (M, D) → (B, M); ``dtype``: the tested loss's."""
    if space.kind == "euclidean":
        return cosine(emb, proxies)
    x = to_ball(emb, space.c, space.clip_r, dtype)
    p = proxy_points(space, proxies, dtype)
    return space.sim_offset - space.sim_scale * safe_reference(x, p, space.c)


def proxy_points(space, proxies, dtype):
    if space.proxy_param == "tangent":
        return to_ball(proxies, space.c, space.clip_r, dtype)
    return project(proxies, space.c, dtype)


def combine(sim, k, temperature):
    if k == 1:
        return sim
    s = sim.view(sim.shape[0], -1, k)
    return (torch.softmax(s / temperature, dim=2) * s).sum(2)


def oracle_proxy_anchor(sim, labels, margin, alpha):
    b, n = sim.shape
    pos_classes = sorted(set(labels.tolist()))
    def log1p_sum_exp(v):  # log(1 + Σ exp(v)), overflow-free
        return torch.logsumexp(torch.cat([v, v.new_zeros(1)]), 0)

    pos = sim.new_zeros(())
    for cl in pos_classes:
        pos = pos + log1p_sum_exp(-alpha * (sim[labels == cl, cl] - margin))
    neg = sim.new_zeros(())
    for cl in range(n):
        neg = neg + log1p_sum_exp(alpha * (sim[labels != cl, cl] + margin))
    return pos / len(pos_classes) + neg / n


def oracle_proxy_nca(sim, labels, scale):
    logits = scale * (2 * sim - 2)
    return -(logits.gather(1, labels[:, None]).squeeze(1) - torch.logsumexp(logits, 1)).mean()


def oracle_soft_triple(sim, labels, la, margin):
    logits = la * (sim - margin * F.one_hot(labels, sim.shape[1]).double())
    return -(logits.gather(1, labels[:, None]).squeeze(1) - torch.logsumexp(logits, 1)).mean()


def oracle_hyphc(points, sims, c, tau):
    triplets = torch.tensor(list(itertools.combinations(range(points.shape[0]), 3)), dtype=torch.int64)
    i, j, k = triplets.unbind(1)
    s = torch.stack([sims[i, j], sims[i, k], sims[j, k]], 1)
    return hyphc_triplet_loss_reference(points, triplets, s, c, tau).mean()


# -- inputs ----------------------------------------------------------------------------------


def spaces():
    poincare = st.builds(
        PoincareSpace,
        c=st.sampled_from((0.01, 0.1, 1.0, 3.0)),
        clip_r=st.sampled_from((2.3, 1.0, None)),
        proxy_param=st.sampled_from(("manifold", "tangent")),
    )
    return st.one_of(st.just(EuclideanSpace()), poincare)


@st.composite
def embeddings(draw, b, d, dtype):
    """Head outputs ``(b, d)``: random scales over 8 orders of magnitude, zero rows, and a
    memory layout (contiguous, transposed, sliced, expanded)."""
    seed = draw(st.integers(0, 2**31 - 1))
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, d, generator=g, dtype=torch.float64)
    scale = 10.0 ** torch.empty(b, 1, dtype=torch.float64).uniform_(-4, 3, generator=g)
    x = x * scale
    zero = draw(st.lists(st.booleans(), min_size=b, max_size=b))
    x[torch.tensor(zero, dtype=torch.bool)] = 0
    kind = draw(st.sampled_from(("contiguous", "transposed", "sliced", "expanded")))
    return x.to(dtype), kind


def view(leaf, kind, rows):
    if kind == "transposed":
        return leaf.t().contiguous().t()
    if kind == "sliced":
        return torch.cat([leaf, torch.zeros_like(leaf)], 1)[:, : leaf.shape[1]]
    if kind == "expanded":
        return leaf[:1].expand(rows, leaf.shape[1])
    return leaf


def set_proxies(loss, draw, dtype):
    """Random proxies: Euclidean/tangent ones of random scale, manifold ones spread through the
    ball up to (1 − 1e-6)/√c (float64) or (1 − 1e-3)/√c (float32)."""
    # a stream apart from the embeddings' (equal seeds would put an embedding exactly on a proxy
    # direction: after clipping the same point, d = 0, whose gradient is a chosen subgradient)
    seed = draw(st.integers(0, 2**31 - 1))
    g = torch.Generator().manual_seed(seed + 7919)
    w = torch.randn(loss.proxies.shape, generator=g, dtype=torch.float64)
    space = loss.space
    if space.kind == "poincare" and space.proxy_param == "manifold":
        # not exactly geoopt's projection radius (1 − 1e-5)/√c, where a clipped embedding may land
        # on the same point in D = 1: a kink of the distance (x == p), not a test of the maths
        gap = 10.0 ** -draw(st.floats(3, 6 if dtype == torch.float64 else 3).filter(lambda e: abs(e - 5) > 0.05))
        w = w / w.norm(dim=1, keepdim=True).clamp_min(1e-300)
        r = torch.rand(w.shape[0], 1, generator=g, dtype=torch.float64) * (1 - gap)
        r[0] = 1 - gap
        w = w * r / math.sqrt(space.c)
    with torch.no_grad():
        loss.proxies.copy_(w.to(loss.proxies.dtype))


def tolerances(dtype):
    return (5e-3, 5e-3) if dtype == torch.float32 else (1e-6, 1e-8)


def compare(out, ref, dtype, what):
    if ref.numel() == 0:
        return
    rtol, atol = tolerances(dtype)
    torch.testing.assert_close(out.double(), ref, rtol=rtol, atol=atol * (1 + ref.abs().max().item()), msg=what)


# -- the proxy losses ------------------------------------------------------------------------


@st.composite
def proxy_case(draw):
    name = draw(st.sampled_from(("proxy_anchor", "proxy_nca", "soft_triple")))
    dtype = draw(st.sampled_from(DTYPES))
    space = draw(spaces())
    b, c, k, d = draw(st.integers(1, 6)), draw(st.integers(1, 4)), draw(st.integers(1, 3)), draw(st.integers(1, 5))
    if name == "proxy_anchor":
        loss = ProxyAnchor(c, d, margin=draw(st.sampled_from((0.1, 0.0))), alpha=draw(st.sampled_from((32, 4))),
                           proxies_per_class=k, space=space)
    elif name == "proxy_nca":
        loss = ProxyNCA(c, d, softmax_scale=draw(st.sampled_from((1, 10))), proxies_per_class=k, space=space)
    else:
        loss = SoftTriple(c, d, centers_per_class=k, la=draw(st.sampled_from((20, 5))), gamma=0.1, space=space)
    loss = loss.to(dtype)
    set_proxies(loss, draw, dtype)
    emb, layout = draw(embeddings(b, d, dtype))
    labels = torch.tensor(draw(st.lists(st.integers(0, c - 1), min_size=b, max_size=b)), dtype=torch.int64)
    return name, loss, emb, layout, labels


def oracle_proxy_loss(name, loss, emb, proxies, labels, dtype):
    sim = oracle_similarity(loss.space, emb, proxies, dtype)
    sim = combine(sim, loss.proxies_per_class, loss.proxy_temperature)
    if name == "proxy_anchor":
        return oracle_proxy_anchor(sim, labels, loss.margin, loss.alpha)
    if name == "proxy_nca":
        return oracle_proxy_nca(sim, labels, loss.softmax_scale)
    return oracle_soft_triple(sim, labels, loss.la, loss.margin)


def check_proxy_loss(case):
    name, loss, emb0, layout, labels = case
    dtype = emb0.dtype
    leaf = emb0.clone().requires_grad_(True)
    emb = view(leaf, layout, emb0.shape[0])
    out = loss(emb, labels)
    assert out.shape == () and torch.isfinite(out), f"{name}: non-finite loss {out}"
    ge, gp = torch.autograd.grad(out, (leaf, loss.proxies))
    assert torch.isfinite(ge).all() and torch.isfinite(gp).all(), f"{name}: non-finite gradient"
    e64 = emb0.double().requires_grad_(True)
    p64 = loss.proxies.detach().double().requires_grad_(True)
    ref = oracle_proxy_loss(name, loss, view(e64, layout, emb0.shape[0]), p64, labels, dtype)
    compare(out.detach(), ref.detach(), dtype, f"{name} value")
    re, rp = torch.autograd.grad(ref, (e64, p64))
    compare(gp, rp, dtype, f"{name} proxy gradient")
    if loss.space.kind != "euclidean":
        compare(ge, re, dtype, f"{name} embedding gradient")
        return
    compare_cosine_gradient(ge, re, emb0, layout, dtype, f"{name} embedding gradient")


def compare_cosine_gradient(g, ref, emb, layout, dtype, what):
    """Gradient in Euclidean (cosine) embeddings: x/max(‖x‖, 1e-12) at x = 0 multiplies rounding
    noise by 1e12 (finite, checked by the caller): no gradient to compare there; elsewhere
    d(x/‖x‖)/dx is of size 1/‖x‖ and so is the rounding, row by row."""
    norms = emb.double().norm(dim=1)
    rows = norms > 0
    if layout == "expanded":
        rows = rows & (norms[0] > 0)
    rtol, atol = tolerances(dtype)
    err = (g.double() - ref).abs().amax(1)[rows]
    scale = ref.abs().amax(1)[rows]  # row by row: a zero row's 1e12-sized oracle must not widen the others
    allowed = (atol * (1 + scale) + rtol * scale) / norms[rows].clamp(max=1.0)
    assert bool((err <= allowed).all()), f"{what} off by {err.max().item():.3g}"


test_proxy_losses_match_oracle, test_proxy_losses_match_oracle_ci = quick_and_ci(
    proxy_case(), check_proxy_loss, max_examples=300
)


# -- HypHCLoss and CHEST ---------------------------------------------------------------------


@st.composite
def hyphc_case(draw):
    dtype = draw(st.sampled_from(DTYPES))
    c = draw(st.sampled_from((0.1, 1.0, 2.0)))
    tau = draw(st.sampled_from((0.05, 0.5)))
    p, d = draw(st.integers(3, 7)), draw(st.integers(2, 5))
    seed = draw(st.integers(0, 2**31 - 1))
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(p, d, generator=g, dtype=torch.float64)
    x = x / x.norm(dim=1, keepdim=True)
    r = torch.rand(p, 1, generator=g, dtype=torch.float64) * 0.99
    if draw(st.booleans()):
        r[0] = 1 - 10.0 ** -draw(st.floats(3, 5 if dtype == torch.float64 else 3))
    if draw(st.booleans()):
        r[-1] = 0  # the origin
    points = (x * r / math.sqrt(c)).to(dtype)
    # no pair nearly collinear with the origin (the LCA depth's kink: gradients are rounding noise
    # there; tests/test_property_ops.py covers those pairs with an error model)
    cos = (x @ x.t()).abs().clamp(max=1)
    hypothesis.assume(bool((torch.sqrt(1 - cos**2) + torch.eye(p, dtype=torch.float64) > 1e-3).all()))
    f = torch.randn(p, 3, generator=g, dtype=torch.float64)
    sims = (0.5 * (1 + cosine(f, f))).clamp(0, 1).to(dtype)
    return dtype, c, tau, points, sims


@given(hyphc_case())
def test_hyphc_loss_matches_oracle(case):
    dtype, c, tau, points0, sims = case
    loss = HypHCLoss(c=c, tau=tau)
    leaf = points0.clone().requires_grad_(True)
    out = loss(leaf, sims)
    assert torch.isfinite(out)
    (g,) = torch.autograd.grad(out, leaf)
    p64 = points0.double().requires_grad_(True)
    ref = oracle_hyphc(p64, sims.double(), c, tau)
    compare(out.detach(), ref.detach(), dtype, "HypHCLoss value")
    (rg,) = torch.autograd.grad(ref, p64)
    # a point at the origin is a kink of the LCA depth: compare the other rows' gradients there
    rows = points0.abs().sum(1) > 0
    rtol = 1e-2 if dtype == torch.float32 else 1e-5
    torch.testing.assert_close(g.double()[rows], rg[rows], rtol=rtol, atol=rtol * (1 + rg.abs().max().item()))


@st.composite
def chest_case(draw):
    dtype = draw(st.sampled_from(DTYPES))
    classes, k = draw(st.integers(1, 4)), draw(st.integers(1, 3))
    if classes * k < 3:
        k = 3
    de, dh, b = draw(st.integers(1, 5)), draw(st.integers(2, 5)), draw(st.integers(1, 5))
    loss = CHEST(classes, de, dh, centers_per_class=k, c=draw(st.sampled_from((0.1, 1.0))),
                 clip_r=draw(st.sampled_from((2.3, None))), lambda_hc=draw(st.sampled_from((1.0, 0.0))),
                 proxy_param=draw(st.sampled_from(("manifold", "tangent"))),
                 hc_target=draw(st.sampled_from(("class_means", "proxies"))),
                 hc_sphere=draw(st.booleans())).to(dtype)
    set_proxies(loss.euclidean, draw, dtype)
    set_proxies(loss.hyperbolic, draw, dtype)
    ze, le = draw(embeddings(b, de, dtype))
    zh, lh = draw(embeddings(b, dh, dtype))
    labels = torch.tensor(draw(st.lists(st.integers(0, classes - 1), min_size=b, max_size=b)), dtype=torch.int64)
    return loss, ze, le, zh, lh, labels


@given(chest_case())
def test_chest_matches_oracle(case):
    loss, ze0, le, zh0, lh, labels = case
    dtype = ze0.dtype
    a, b = ze0.clone().requires_grad_(True), zh0.clone().requires_grad_(True)
    out = loss(view(a, le, ze0.shape[0]), view(b, lh, zh0.shape[0]), labels)
    assert torch.isfinite(out)
    ga, gb = torch.autograd.grad(out, (a, b))
    e_st, h_st = loss.euclidean, loss.hyperbolic
    a64 = ze0.double().requires_grad_(True)
    b64 = zh0.double().requires_grad_(True)
    pe, ph = e_st.proxies.detach().double(), h_st.proxies.detach().double()
    ref = loss.w_e * oracle_proxy_loss("soft_triple", e_st, view(a64, le, ze0.shape[0]), pe, labels, dtype)
    ref = ref + loss.w_h * oracle_proxy_loss("soft_triple", h_st, view(b64, lh, zh0.shape[0]), ph, labels, dtype)
    if loss.lambda_hc:
        hp = proxy_points(h_st.space, ph, dtype)
        k = h_st.centers_per_class
        if loss.hc_target == "proxies":
            feats = pe
        else:  # a fresh loss: the running class means are this batch's means of the unit z_e rows
            present = sorted(set(labels.tolist()))
            seen = view(ze0.detach().double(), le, ze0.shape[0])  # the rows the loss saw (no gradient)
            unit = seen / seen.norm(dim=1, keepdim=True).clamp_min(1e-12)
            feats = torch.stack([unit[labels == c].mean(0) for c in present]).repeat_interleave(k, 0)
            hp = hp[[c * k + j for c in present for j in range(k)]]
        if loss.hyphc.sphere:  # HypHC's sphere
            cap = loss.hyphc.max_radius  # the parameter ρ is a fraction of the cap
            rho = cap * min(max(float(loss.hyphc.radius.detach()), loss.hyphc.min_radius / cap), 1.0)
            hp = hp / hp.norm(dim=1, keepdim=True).clamp_min(1e-15) * (rho / math.sqrt(loss.hyphc.c))
        if len(hp) >= 3:
            sims = (0.5 * (1 + cosine(feats, feats))).clamp(0, 1)
            sims.fill_diagonal_(1.0)
            ref = ref + loss.lambda_hc * oracle_hyphc(hp, sims, loss.hyphc.c, loss.hyphc.tau)
    compare(out.detach(), ref.detach(), dtype, "CHEST value")
    ra, rb = torch.autograd.grad(ref, (a64, b64))
    assert torch.isfinite(ga).all() and torch.isfinite(gb).all()
    compare_cosine_gradient(ga, ra, ze0, le, dtype, "CHEST z_e gradient")
    compare(gb, rb, dtype, "CHEST z_h gradient")
