"""LCA depth and HypHC loss against an independent port of HazyResearch/HypHC (float64).

The port below is written from HypHC's ``utils/lca.py`` (circle inversion + reflection, c = 1)
and ``model/hyphc.py`` (``HypHC.loss``); curvature c is handled by scaling the points by √c and
dividing the depth by √c. It shares no code with ``hyperdml.ops.reference``'s closed form.
"""

import math

import numpy as np
import pytest
import torch
from scipy.optimize import minimize_scalar

import geoopt
from hyperdml.losses.hyphc import HypHCLoss
from hyperdml.ops import hyp_lca_depth_reference, hyphc_triplet_loss, hyphc_triplet_loss_reference

DT = torch.float64


pytestmark = pytest.mark.usefixtures("one_thread")


def ball(c):
    # geoopt keeps the curvature in the default dtype (float32) unless given a float64 tensor;
    # that alone is a ~1e-8 relative error at c = 0.1 (hyperdml.geometry.ball(c) has it).
    return geoopt.PoincareBall(c=torch.tensor(c, dtype=DT))

# ---------------------------------------------------------------- port of HypHC (c = 1) -------

MIN_NORM = 1e-15


def isometric_transform(a, x):
    """Circle inversion of x through the circle centred at a orthogonal to the unit circle."""
    r2 = torch.sum(a**2, dim=-1, keepdim=True) - 1.0
    u = x - a
    return r2 / torch.sum(u**2, dim=-1, keepdim=True) * u + a


def reflection_center(mu):
    return mu / torch.sum(mu**2, dim=-1, keepdim=True)


def euc_reflection(x, a):
    """Reflection of x through the line through the origin and a."""
    xTa = torch.sum(x * a, dim=-1, keepdim=True)
    norm_a_sq = torch.sum(a**2, dim=-1, keepdim=True).clamp_min(MIN_NORM)
    return 2 * xTa * a / norm_a_sq - x


def _halve(x):
    """Point of the segment o–x at half the hyperbolic distance."""
    return x / (1.0 + torch.sqrt(1 - torch.sum(x**2, dim=-1, keepdim=True)))


def hyp_dist_o(x):
    return 2 * torch.atanh(x.norm(dim=-1, p=2, keepdim=True))


def hyp_lca(a, b, return_coord=True):
    """HypHC's projection of the origin on the geodesic through a and b (unit ball)."""
    r = reflection_center(a)
    b_inv = isometric_transform(r, b)
    o_inv = a
    o_inv_ref = euc_reflection(o_inv, b_inv)
    o_ref = isometric_transform(r, o_inv_ref)
    proj = _halve(o_ref)
    return proj if return_coord else hyp_dist_o(proj)


def port_depth(a, b, c):
    """LCA depth in the ball of curvature −c: ``(..., D) × (..., D) → (...)``."""
    s = math.sqrt(c)
    return hyp_lca(a * s, b * s, return_coord=False)[..., 0] / s


def port_lca_point(a, b, c):
    s = math.sqrt(c)
    return hyp_lca(a * s, b * s) / s


def port_hyphc_loss(emb, triple_ids, similarities, temperature, c=1.0, reduce=True):
    """``HypHC.loss`` (model/hyphc.py) on given leaf embeddings, without its leaf normalisation."""
    e1, e2, e3 = emb[triple_ids[:, 0]], emb[triple_ids[:, 1]], emb[triple_ids[:, 2]]
    s = math.sqrt(c)
    d_12 = hyp_lca(e1 * s, e2 * s, return_coord=False) / s
    d_13 = hyp_lca(e1 * s, e3 * s, return_coord=False) / s
    d_23 = hyp_lca(e2 * s, e3 * s, return_coord=False) / s
    lca_norm = torch.cat([d_12, d_13, d_23], dim=-1)
    weights = torch.softmax(lca_norm / temperature, dim=-1)
    w_ord = torch.sum(similarities * weights, dim=-1, keepdim=True)
    total = torch.sum(similarities, dim=-1, keepdim=True) - w_ord
    return torch.mean(total) if reduce else total[:, 0]


def generate_all_triples(n_nodes):
    return np.array([(a, b, d) for a in range(n_nodes) for b in range(a + 1, n_nodes) for d in range(b + 1, n_nodes)])


# ---------------------------------------------------------------- helpers ---------------------


def random_points(n, d, c, seed, r_min=0.05, r_max=0.95):
    """Points spread in the ball of curvature −c: random directions, Euclidean radius in
    [r_min, r_max]·(1/√c)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=DT)
    r = r_min + (r_max - r_min) * torch.rand(n, 1, generator=g, dtype=DT)
    return x / x.norm(dim=1, keepdim=True) * r / math.sqrt(c)


def distinct_triplets(p, t, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.stack([torch.randperm(p, generator=g)[:3] for _ in range(t)])


CS = [0.1, 1.0, 2.0]

# ---------------------------------------------------------------- depth values ----------------


@pytest.mark.parametrize("c", CS)
@pytest.mark.parametrize("d", [2, 5])
def test_reference_depth_matches_port(c, d):
    a, b = random_points(400, d, c, seed=1), random_points(400, d, c, seed=2)
    ours = hyp_lca_depth_reference(a, b, c)
    port = port_depth(a, b, c)
    torch.testing.assert_close(ours, port, rtol=1e-9, atol=1e-11)
    # The depth is symmetric and never deeper than either point.
    torch.testing.assert_close(hyp_lca_depth_reference(b, a, c), ours, rtol=1e-10, atol=1e-12)
    bl = ball(c)
    assert bool((ours <= torch.minimum(bl.dist0(a), bl.dist0(b)) + 1e-9).all())


@pytest.mark.parametrize("c", CS)
def test_lca_is_the_closest_point_of_the_complete_geodesic(c):
    """δ(a∨b) = min over the whole geodesic t ↦ a ⊕ t⊗((−a) ⊕ b), t ∈ ℝ, of d(0, γ(t)), and the
    port's LCA point is that minimiser (checked by sampling the geodesic with geoopt)."""
    bl = ball(c)
    a_all, b_all = random_points(6, 3, c, seed=3, r_min=0.3, r_max=0.9), random_points(6, 3, c, seed=4, r_min=0.3, r_max=0.9)
    for a, b in zip(a_all, b_all):
        d_ab = float(bl.dist(a, b))
        span = 2 * float(bl.dist0(a)) / d_ab + 1.0  # |t*|·d(a, b) = d(a, lca) ≤ 2·d(0, a)

        def depth_at(t):
            return bl.dist0(bl.geodesic(torch.as_tensor(t, dtype=DT)[..., None], a, b))

        grid = torch.linspace(-span, span, 20001, dtype=DT)
        g_depth = depth_at(grid)
        i = int(torch.argmin(g_depth))
        assert 0 < i < len(grid) - 1, "minimum on the edge of the sampled range"
        step = float(grid[1] - grid[0])
        res = minimize_scalar(lambda t: float(depth_at(t)), bounds=(float(grid[i]) - step, float(grid[i]) + step),
                              method="bounded", options={"xatol": 1e-12})
        ours = float(hyp_lca_depth_reference(a, b, c))
        assert abs(res.fun - ours) < 1e-9 * max(1.0, ours)
        assert abs(float(port_depth(a, b, c)) - ours) < 1e-9 * max(1.0, ours)
        # The port's LCA point is γ(t*) (the argmin is only √eps-accurate, hence the tolerance).
        lca = port_lca_point(a, b, c)
        assert float(bl.dist(lca, bl.geodesic(torch.tensor([res.x], dtype=DT)[:, None], a, b)[0])) < 1e-5
        assert abs(float(bl.dist0(lca)) - ours) < 1e-9 * max(1.0, ours)
        # Points of the geodesic segment itself (t ∈ [0, 1]) are never shallower than the LCA.
        assert float(depth_at(torch.linspace(0, 1, 101, dtype=DT)).min()) >= ours - 1e-9


# ---------------------------------------------------------------- triplet loss: values + grads


@pytest.mark.parametrize("impl", ["op", "reference"])
@pytest.mark.parametrize("c", CS)
@pytest.mark.parametrize("tau", [0.05, 0.5])
def test_op_matches_port_values_and_gradients(c, tau, impl):
    """The op (compiled kernel when built, else the fallback) and the pure-PyTorch reference."""
    fn = hyphc_triplet_loss if impl == "op" else hyphc_triplet_loss_reference
    p, t = 40, 300
    pts = random_points(p, 4, c, seed=5, r_min=0.1, r_max=0.9)
    trip = distinct_triplets(p, t, seed=6)
    sims = torch.rand(t, 3, dtype=DT, generator=torch.Generator().manual_seed(7))
    w = torch.randn(t, dtype=DT, generator=torch.Generator().manual_seed(8))

    x1, s1 = pts.clone().requires_grad_(), sims.clone().requires_grad_()
    ours = fn(x1, trip, s1, c=c, tau=tau)
    (ours * w).sum().backward()
    x2, s2 = pts.clone().requires_grad_(), sims.clone().requires_grad_()
    port = port_hyphc_loss(x2, trip, s2, tau, c=c, reduce=False)
    (port * w).sum().backward()

    torch.testing.assert_close(ours, port, rtol=1e-9, atol=1e-11)
    torch.testing.assert_close(x1.grad, x2.grad, rtol=1e-7, atol=1e-9)
    torch.testing.assert_close(s1.grad, s2.grad, rtol=1e-9, atol=1e-11)
    assert x1.grad.abs().max() > 1e-3  # the comparison is not between two zeros


def test_hyphc_loss_module_equals_port_hyphc_loss_c1():
    """HypHCLoss at c = 1 is HypHC.loss: all triplets (P small) and sampled triplets."""
    p, tau = 12, 0.05
    pts = random_points(p, 2, 1.0, seed=9, r_min=0.2, r_max=0.9)
    feats = torch.randn(p, 6, dtype=DT, generator=torch.Generator().manual_seed(10))
    cos = torch.nn.functional.normalize(feats, dim=1) @ torch.nn.functional.normalize(feats, dim=1).t()
    sims = 0.5 * (1 + cos)

    triples = torch.from_numpy(generate_all_triples(p))
    tsims = torch.stack([sims[triples[:, 0], triples[:, 1]], sims[triples[:, 0], triples[:, 2]],
                         sims[triples[:, 1], triples[:, 2]]], dim=1)
    x1, x2 = pts.clone().requires_grad_(), pts.clone().requires_grad_()
    ours = HypHCLoss(c=1.0, tau=tau)(x1, sims)
    port = port_hyphc_loss(x2, triples, tsims, tau)
    ours.backward()
    port.backward()
    torch.testing.assert_close(ours, port, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(x1.grad, x2.grad, rtol=1e-7, atol=1e-10)

    # Sampled regime: the triplets the module draws, fed to the port, give the same loss.
    sampled = HypHCLoss(c=1.0, tau=tau, max_all_triplets=10, num_triplets=500, seed=3)
    twin = HypHCLoss(c=1.0, tau=tau, max_all_triplets=10, num_triplets=500, seed=3)
    trip = twin.sample_triplets(p)
    tsims = torch.stack([sims[trip[:, 0], trip[:, 1]], sims[trip[:, 0], trip[:, 2]], sims[trip[:, 1], trip[:, 2]]], dim=1)
    torch.testing.assert_close(sampled(pts, sims), port_hyphc_loss(pts, trip, tsims, tau), rtol=1e-10, atol=1e-12)


# ---------------------------------------------------------------- degenerate triplets ---------


@pytest.mark.parametrize("c", CS)
def test_degenerate_triplets_are_finite_and_exact(c):
    """Repeated index (i == k), a point at the origin, two identical points: finite values with
    the exact depths (δ(z∨z) = d(0, z), δ(0∨z) = 0) and finite gradients."""
    bl = ball(c)
    z = random_points(4, 3, c, seed=11, r_min=0.3, r_max=0.8)
    pts = torch.cat([z, torch.zeros(1, 3, dtype=DT), z[:1]])  # 4: origin, 5: copy of 0
    trip = torch.tensor([[0, 1, 0], [1, 1, 2], [4, 1, 2], [0, 5, 2], [4, 4, 4], [0, 0, 0], [0, 5, 1]])
    sims = torch.rand(len(trip), 3, dtype=DT, generator=torch.Generator().manual_seed(12))
    tau = 0.1
    x = pts.clone().requires_grad_()
    out = hyphc_triplet_loss(x, trip, sims, c=c, tau=tau)
    out.sum().backward()
    assert bool(torch.isfinite(out).all()) and bool(torch.isfinite(x.grad).all())
    xr = pts.clone().requires_grad_()
    ref = hyphc_triplet_loss_reference(xr, trip, sims, c=c, tau=tau)
    ref.sum().backward()
    assert bool(torch.isfinite(xr.grad).all())
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(x.grad, xr.grad, rtol=1e-9, atol=1e-12)  # same subgradient convention

    d0 = bl.dist0(pts)

    def depth(i, j):
        if i == j or (pts[i] == pts[j]).all():
            return d0[i]
        if i == 4 or j == 4:
            return torch.zeros((), dtype=DT)
        return port_depth(pts[i], pts[j], c)

    expected = []
    for (i, j, k), s in zip(trip.tolist(), sims):
        dd = torch.stack([depth(i, j), depth(i, k), depth(j, k)])
        expected.append(s.sum() - (s * torch.softmax(dd / tau, 0)).sum())
    torch.testing.assert_close(out, torch.stack(expected), rtol=1e-9, atol=1e-11)
