"""hyperdml.ops.hyphc_triplet_loss (the compiled op) against its pure-PyTorch reference."""

from __future__ import annotations

import pytest
import torch

from conftest import ball_points, requires_cuda
from hyperdml.ops import hyphc_triplet_loss
from hyperdml.ops.reference import (
    hyp_lca_depth_reference,
    hyphc_triplet_loss_backward_reference,
    hyphc_triplet_loss_reference,
)

CURVATURES = [0.1, 1.0, 2.0]

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")


def problem(p=12, d=5, t=200, c=1.0, seed=0, device="cpu", dtype=torch.float64, max_frac=0.95):
    g = torch.Generator().manual_seed(seed)
    points = ball_points(p, d, c, max_frac=max_frac, seed=seed, dtype=dtype, device=device)
    triplets = torch.randint(0, p, (t, 3), generator=g).to(device)
    sims = torch.rand(t, 3, generator=g, dtype=torch.float64).to(dtype=dtype, device=device)
    return points, triplets, sims


@pytest.mark.parametrize("c", CURVATURES)
@pytest.mark.parametrize("tau", [0.05, 1.0])
def test_values_and_gradients_match_reference(c, tau, device):
    points, triplets, sims = problem(c=c, device=device)
    points.requires_grad_(True)
    sims.requires_grad_(True)
    weights = torch.rand(triplets.shape[0], dtype=torch.float64, device=device)
    out = hyphc_triplet_loss(points, triplets, sims, c, tau)
    ref = hyphc_triplet_loss_reference(points, triplets, sims, c, tau)
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-12)
    gp, gs = torch.autograd.grad((out * weights).sum(), (points, sims))
    rp, rs = torch.autograd.grad((ref * weights).sum(), (points, sims))
    torch.testing.assert_close(gp, rp, rtol=1e-8, atol=1e-10)
    torch.testing.assert_close(gs, rs, rtol=1e-10, atol=1e-12)


def test_float32_close_to_float64(device):
    points, triplets, sims = problem(p=50, d=16, t=1000, device=device)
    out32 = hyphc_triplet_loss(points.float(), triplets, sims.float(), 1.0, 0.1)
    assert out32.dtype == torch.float32
    ref = hyphc_triplet_loss_reference(points.float().double(), triplets, sims.float().double(), 1.0, 0.1)
    torch.testing.assert_close(out32.double(), ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("c", CURVATURES)
def test_gradcheck(c, device):
    points, triplets, sims = problem(p=6, d=3, t=20, c=c, device=device, max_frac=0.9)
    points.requires_grad_(True)
    sims.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda p, s: hyphc_triplet_loss(p, triplets, s, c, 0.3), (points, sims))


def test_opcheck(device):
    points, triplets, sims = problem(p=8, d=4, t=30, device=device)
    op = torch.ops.hyperdml.hyphc_triplet_loss.default
    torch.library.opcheck(op, (points, triplets, sims, 1.0, 0.1))
    torch.library.opcheck(op, (points.clone().requires_grad_(), triplets, sims.clone().requires_grad_(), 0.5, 0.2))
    grad = torch.rand(triplets.shape[0], dtype=torch.float64, device=device)
    torch.library.opcheck(
        torch.ops.hyperdml.hyphc_triplet_loss_backward.default, (grad, points, triplets, sims, 1.0, 0.1)
    )


def test_degenerate_triplets_are_finite(device):
    points = ball_points(4, 3, 1.0, device=device)
    points[0] = 0.0  # a point at the origin
    points[3] = points[2]  # two identical points
    triplets = torch.tensor(
        [[1, 2, 1], [2, 2, 2], [0, 1, 2], [0, 0, 1], [2, 3, 1], [1, 2, 3], [3, 2, 3]], device=device
    )
    sims = torch.rand(triplets.shape[0], 3, dtype=torch.float64, device=device)
    points.requires_grad_(True)
    out = hyphc_triplet_loss(points, triplets, sims, 1.0, 0.05)
    (grad,) = torch.autograd.grad(out.sum(), points)
    assert torch.isfinite(out).all() and torch.isfinite(grad).all()
    ref = hyphc_triplet_loss_reference(points.detach(), triplets, sims, 1.0, 0.05)
    torch.testing.assert_close(out.detach(), ref)


def test_lanes_are_independent(device):
    """The CPU kernel takes triplets W at a time (4 with AVX2, 8 with AVX512), one per vector
    lane, and fills a last, shorter group with copies of its first triplet: a degenerate triplet
    (repeated index, the origin, two equal points) in any lane, beside ordinary ones, gives what
    it gives alone, value and gradients."""
    points = ball_points(6, 3, 1.0, seed=5, device=device)
    points[0] = 0.0
    points[5] = points[4]
    odd = [[1, 2, 1], [0, 1, 2], [4, 5, 3], [2, 2, 2], [0, 0, 3]]
    plain = [[1, 2, 3], [3, 4, 1], [2, 3, 4]]
    g = torch.Generator().manual_seed(6)
    for shift in range(5):
        triplets = torch.tensor((plain * 3)[:shift] + odd + plain, device=device)
        sims = torch.rand(len(triplets), 3, generator=g, dtype=torch.float64).to(device)
        weights = torch.rand(len(triplets), generator=g, dtype=torch.float64).to(device)
        x = points.clone().requires_grad_()
        out = hyphc_triplet_loss(x, triplets, sims, 1.0, 0.1)
        (gx,) = torch.autograd.grad((out * weights).sum(), x)
        alone_out, alone_gx = [], torch.zeros_like(points)
        for t in range(len(triplets)):
            y = points.clone().requires_grad_()
            one = hyphc_triplet_loss(y, triplets[t : t + 1], sims[t : t + 1], 1.0, 0.1)
            alone_gx += torch.autograd.grad(one.sum() * weights[t], y)[0]
            alone_out.append(one.detach())
        torch.testing.assert_close(out.detach(), torch.cat(alone_out), rtol=1e-13, atol=1e-14)
        torch.testing.assert_close(gx, alone_gx, rtol=1e-11, atol=1e-13)


def test_repeated_index_depth_is_distance_to_origin(device):
    """i == k: δ(z_i ∨ z_i) = d(0, z_i), so the softmax sees that depth."""
    points = ball_points(2, 3, 1.0, seed=3, device=device)
    triplets = torch.tensor([[0, 1, 0]], device=device)
    sims = torch.tensor([[0.0, 1.0, 0.0]], dtype=torch.float64, device=device)
    depth_00 = 2 * torch.atanh(points[0].norm())
    from hyperdml.ops.reference import hyp_lca_depth_reference

    depth_01 = hyp_lca_depth_reference(points[0], points[1], 1.0)
    z = torch.stack([depth_01, depth_00, depth_01]) / 0.5
    expected = 1.0 - torch.softmax(z, 0)[1]
    torch.testing.assert_close(hyphc_triplet_loss(points, triplets, sims, 1.0, 0.5), expected[None])


def test_torch_compile_fullgraph(device):
    points, triplets, sims = problem(p=10, d=4, t=40, device=device, dtype=torch.float32)

    def f(p):
        return hyphc_triplet_loss(p, triplets, sims, 1.0, 0.1).mean()

    compiled = torch.compile(f, fullgraph=True, backend="aot_eager")
    a = points.clone().requires_grad_(True)
    b = points.clone().requires_grad_(True)
    torch.testing.assert_close(compiled(a), f(b))
    compiled(a).backward()
    f(b).backward()
    torch.testing.assert_close(a.grad, b.grad)


@pytest.mark.parametrize(
    "change, error, match",
    [
        (lambda p, t, s: (p, t.int(), s, 1.0, 0.1), TypeError, "int64"),
        (lambda p, t, s: (p, t[:, :2], s, 1.0, 0.1), ValueError, r"\(T, 3\)"),
        (lambda p, t, s: (p, t, s[:-1], 1.0, 0.1), ValueError, "shape of triplets"),
        (lambda p, t, s: (p, t.clone().fill_(12), s, 1.0, 0.1), ValueError, "out of range"),
        (lambda p, t, s: (p, t.clone().fill_(-1), s, 1.0, 0.1), ValueError, "out of range"),
        (lambda p, t, s: (p * float("nan"), t, s, 1.0, 0.1), ValueError, "NaN"),
        (lambda p, t, s: (p, t, s * float("nan"), 1.0, 0.1), ValueError, "NaN"),
        (lambda p, t, s: (p * 30, t, s, 1.0, 0.1), ValueError, "boundary"),
        (lambda p, t, s: (p, t, s, 1.0, 0.0), ValueError, "tau"),
        (lambda p, t, s: (p, t, s, 1.0, -1.0), ValueError, "tau"),
        (lambda p, t, s: (p, t, s, 0.0, 0.1), ValueError, "curvature"),
        (lambda p, t, s: (p[0], t, s, 1.0, 0.1), ValueError, "shape"),
        (lambda p, t, s: (p, t, s.float(), 1.0, 0.1), TypeError, "one dtype"),
    ],
)
def test_bad_input_raises(change, error, match):
    args = change(*problem(p=12))
    with pytest.raises(error, match=match):
        hyphc_triplet_loss(*args)


def test_out_of_range_index_checked_by_the_kernel_itself():
    points, triplets, sims = problem(p=12)
    with pytest.raises(ValueError, match="out of range"):
        torch.ops.hyperdml.hyphc_triplet_loss(points, triplets + 100, sims, 1.0, 0.1)
    with pytest.raises(ValueError, match="out of range"):
        torch.ops.hyperdml.hyphc_triplet_loss_backward(
            torch.ones(triplets.shape[0], dtype=torch.float64), points, triplets - 100, sims, 1.0, 0.1
        )


def test_empty_triplets(device):
    points = ball_points(3, 2, device=device).requires_grad_(True)
    out = hyphc_triplet_loss(points, torch.zeros(0, 3, dtype=torch.int64, device=device),
                             torch.zeros(0, 3, dtype=torch.float64, device=device), 1.0)
    assert out.shape == (0,)
    out.sum().backward()
    assert torch.equal(points.grad, torch.zeros_like(points))


@requires_cuda
def test_cuda_large_matches_cpu_and_memory():
    points, triplets, sims = problem(p=2000, d=64, t=200_000, device="cuda", dtype=torch.float32)
    points.requires_grad_(True)
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    hyphc_triplet_loss(points, triplets, sims, 1.0).sum().backward()
    torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated() - base
    assert peak < 3 * 200_000 * 64 * 4 / 4, f"peak {peak / 2**20:.1f} MiB suggests a (T, 3, D) gather"
    cpu_points = points.detach().cpu().requires_grad_(True)
    out = hyphc_triplet_loss(cpu_points, triplets.cpu(), sims.cpu(), 1.0)
    out.sum().backward()
    torch.testing.assert_close(points.grad.cpu(), cpu_points.grad, rtol=1e-3, atol=1e-3)


@requires_cuda
@pytest.mark.parametrize("dim", [2, 3, 8, 9, 17, 32, 33, 100])
def test_cuda_every_row_width_matches_cpu(dim):
    """The CUDA kernels spread each row over a warp's 32 lanes: D below, at and above 32, with
    a ragged last batch of triplets (1003 = 31 × 32 + 11).
    (D = 1 is left out: every pair is collinear with the origin, δ = 0 up to the square root of
    rounding noise, which differs between devices.)"""
    points, triplets, sims = problem(p=40, d=dim, t=1003, device="cpu")
    grad = torch.rand(triplets.shape[0], dtype=torch.float64)
    ref = torch.ops.hyperdml.hyphc_triplet_loss(points, triplets, sims, 0.7, 0.1)
    ref_gp, ref_gs = torch.ops.hyperdml.hyphc_triplet_loss_backward(grad, points, triplets, sims, 0.7, 0.1)
    cuda = [t.cuda() for t in (points, triplets, sims, grad)]
    out = torch.ops.hyperdml.hyphc_triplet_loss(*cuda[:3], 0.7, 0.1)
    gp, gs = torch.ops.hyperdml.hyphc_triplet_loss_backward(cuda[3], *cuda[:3], 0.7, 0.1)
    torch.testing.assert_close(out.cpu(), ref, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(gp.cpu(), ref_gp, rtol=1e-9, atol=1e-11)
    torch.testing.assert_close(gs.cpu(), ref_gs, rtol=1e-10, atol=1e-12)


def hard_max_limit(points, triplets, sims, c):
    """The tau → 0 limit in float64: Σ s minus the mean of the sims of the deepest pairs."""
    zi, zj, zk = (points.double()[triplets[:, m]] for m in range(3))
    depth = torch.stack([hyp_lca_depth_reference(a, b, c) for a, b in ((zi, zj), (zi, zk), (zj, zk))], dim=-1)
    top = depth == depth.amax(-1, keepdim=True)
    weights = top.double() / top.sum(-1, keepdim=True)
    return sims.double().sum(-1) - (sims.double() * weights).sum(-1), depth


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("tau", [1e-12, 1e-20, 1e-30])
def test_tiny_temperature_is_the_hard_max_limit(tau, dtype, device):
    """Tiny tau: the softmax limit (ties share the weight), finite gradients; no NaN."""
    points, triplets, sims = problem(p=8, d=4, t=300, device=device, dtype=dtype, seed=5)
    triplets[:40, 1] = triplets[:40, 0]  # (i, i, k): pairs ik and jk tie exactly
    want, depth = hard_max_limit(points, triplets, sims, 1.0)
    gaps = depth.sort(-1, descending=True).values
    clear = (gaps[:, 0] - gaps[:, 1] > 1e-4) | (torch.arange(300, device=device) < 40)
    leaf = points.clone().requires_grad_(True)
    out = hyphc_triplet_loss(leaf, triplets, sims, 1.0, tau)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out.double()[clear], want[clear], rtol=1e-6, atol=1e-6)
    ref = hyphc_triplet_loss_reference(points, triplets, sims, 1.0, tau)
    torch.testing.assert_close(ref.double()[clear], want[clear], rtol=1e-6, atol=1e-6)
    (grad,) = torch.autograd.grad(out[~(torch.arange(300, device=device) < 40) & clear].sum(), leaf)
    assert torch.equal(grad, torch.zeros_like(grad))  # a strict winner: the weights do not move


def test_temperature_below_the_bound_is_refused():
    points, triplets, sims = problem()
    with pytest.raises(ValueError, match="temperature tau must be a finite number >= 1e-30, got 1e-31"):
        hyphc_triplet_loss(points, triplets, sims, 1.0, 1e-31)
    with pytest.raises(ValueError, match="temperature tau must be a finite number >= 1e-30"):
        torch.ops.hyperdml.hyphc_triplet_loss(points, triplets, sims, 1.0, 1e-31)
    with pytest.raises(TypeError, match="not learnable"):
        hyphc_triplet_loss(points, triplets, sims, 1.0, torch.tensor(0.1, requires_grad=True))


# The CPU kernel derives each pair's e-form dots a.(b-a) and |b-a|^2 from a.b and the squared
# norms, and sums them from the exact differences instead where that cancels:
# |b-a|^2 < (|a|^2 + |b|^2)/64 (nearly equal points) or |a|^2 |e|^2 - (a.e)^2 < |a|^2 |e|^2 / 64
# (a, b and the origin nearly collinear). The tests below put pairs on both sides of both tests.
SWITCH = 1.0 / 64


def switch_pair(kind, side, d, seed=0):
    """(a, b) in float64 with the pair's cancellation ratio at SWITCH * (1 + side * 1e-4):
    kind "near": |b-a|^2 / (|a|^2 + |b|^2); kind "collinear": sin^2 of the angle between a and b - a."""
    g = torch.Generator().manual_seed(seed)
    basis, _ = torch.linalg.qr(torch.randn(d, 2, generator=g, dtype=torch.float64))
    u, v = basis[:, 0], basis[:, 1]  # orthonormal
    r = SWITCH * (1 + side * 1e-4)
    if kind == "near":  # e ⟂ a: |b|^2 = |a|^2 + |e|^2, so r = ee / (2 aa + ee)
        a = 0.5 * u
        return a, a + (2 * r * 0.25 / (1 - r)) ** 0.5 * v
    a, lam = 0.3 * u, 1.6  # b = lam a + h v: sin^2 = h^2 / ((lam - 1)^2 aa + h^2)
    return a, lam * a + (r * (lam - 1) ** 2 * 0.09 / (1 - r)) ** 0.5 * v


def pair_problem(a, b, t, seed=0):
    """Points (a, b, 4 others) and t triplets that hold the pair (a, b) as ij, ik and jk, in both
    orders, at every lane position, among random ones."""
    d = a.shape[0]
    others = ball_points(4, d, 1.0, max_frac=0.9, seed=seed + 1)
    points = torch.cat([a[None], b[None], others])
    g = torch.Generator().manual_seed(seed)
    triplets = torch.randint(0, 6, (t, 3), generator=g)
    k = torch.randint(2, 6, (t,), generator=g)
    zero, one = torch.zeros_like(k), torch.ones_like(k)
    forms = [(zero, one, k), (zero, k, one), (k, zero, one), (one, zero, k), (one, k, zero), (k, one, zero)]
    for m, form in enumerate(forms):
        triplets[m::7] = torch.stack(form, 1)[m::7]
    sims = torch.rand(t, 3, generator=g, dtype=torch.float64)
    return points, triplets, sims


def assert_matches_reference(points, triplets, sims, c=1.0, tau=0.1, seed=0):
    """Values and gradients of the op against the float64 reference, for a weighted sum of the
    losses (the recomputing backward) and for their mean (the gradients summed in the forward),
    with the tolerances of test_values_and_gradients_match_reference (float64) and
    test_float32_close_to_float64 (float32, against the reference of the float32 inputs)."""
    weights = torch.rand(triplets.shape[0], generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    for reduce in (lambda loss: (loss.double() * weights).sum(), torch.mean):
        x, s = points.clone().requires_grad_(True), sims.clone().requires_grad_(True)
        out = hyphc_triplet_loss(x, triplets, s, c, tau)
        gx, gs = torch.autograd.grad(reduce(out), (x, s))
        xr, sr = points.double().requires_grad_(True), sims.double().requires_grad_(True)
        ref = hyphc_triplet_loss_reference(xr, triplets, sr, c, tau)
        rx, rs = torch.autograd.grad(reduce(ref), (xr, sr))
        if points.dtype == torch.float64:
            torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-12)
            torch.testing.assert_close(gx, rx, rtol=1e-8, atol=1e-10)
            torch.testing.assert_close(gs, rs, rtol=1e-10, atol=1e-12)
        else:
            for got, want in ((out, ref), (gx, rx), (gs, rs)):
                torch.testing.assert_close(got.double(), want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("d", [3, 64, 67])
@pytest.mark.parametrize("side", [-1, 1])
@pytest.mark.parametrize("kind", ["near", "collinear"])
def test_pairs_at_the_cancellation_switch_match_reference(kind, side, d, dtype):
    """Pairs just below (exact differences) and just above (dots from the norms) each switch."""
    a, b = switch_pair(kind, side, d)
    points, triplets, sims = pair_problem(a, b, t=37)
    assert_matches_reference(points.to(dtype), triplets, sims.to(dtype))


@pytest.mark.parametrize("gap", [1e-4, 1e-7, 1e-10, 0.0])
def test_near_equal_points_match_reference(gap):
    """|b - a| = gap |a|: a.b - |a|^2 would have lost every digit (relative error eps/gap^2).
    Values to the usual tolerance. The gradients are conditioned by the difference itself: b's
    coordinates round at eps |a|, so both sides see e = b - a only to about eps/gap relative,
    and their sums in different orders differ by that much (4 eps/gap of the largest gradient)."""
    a, b = switch_pair("near", 1, 16)
    b = a + gap * 0.5 * (b - a) / (b - a).norm()
    points, triplets, sims = pair_problem(a, b, t=37)
    weights = torch.rand(37, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    x, xr = points.clone().requires_grad_(True), points.clone().requires_grad_(True)
    out = hyphc_triplet_loss(x, triplets, sims, 1.0, 0.1)
    ref = hyphc_triplet_loss_reference(xr, triplets, sims, 1.0, 0.1)
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-12)
    (gx,) = torch.autograd.grad((out * weights).sum(), x)
    (rx,) = torch.autograd.grad((ref * weights).sum(), xr)
    conditioning = 4 * torch.finfo(torch.float64).eps / gap if gap else 0.0
    torch.testing.assert_close(gx, rx, rtol=1e-8, atol=1e-10 + conditioning * rx.abs().max().item())


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("t", [1, 3, 4, 5, 7, 8, 9, 17])
def test_triplet_counts_around_the_lane_width(t, dtype):
    """T below, at and above the lane width (4 with AVX2, 8 with AVX512): the last group fills its
    spare lanes with copies of its first triplet, which must not leak into any result. Three
    points in D = 9: most triplets repeat an index."""
    points, triplets, sims = problem(p=3, d=9, t=t, seed=t, dtype=dtype)
    assert_matches_reference(points, triplets, sims, seed=t)


@pytest.mark.parametrize("t", [2051, 4099])
def test_thread_chunks_split_lane_groups(t):
    """Two threads: the second chunk starts at no multiple of the lane width."""
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        points, triplets, sims = problem(p=40, d=6, t=t, seed=1)
        assert_matches_reference(points, triplets, sims)
    finally:
        torch.set_num_threads(threads)


def test_backward_reads_the_incoming_gradient_with_its_stride():
    """The backward op reads grad with its stride: an expanded (stride 0, as .mean() gives) and a
    strided grad give what their contiguous copies give, and the reference's gradient."""
    points, triplets, sims = problem(p=10, d=5, t=23, seed=2)
    op = torch.ops.hyperdml.hyphc_triplet_loss_backward
    big = torch.rand(3 * 23, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    for grad in (torch.full((), 1 / 23, dtype=torch.float64).expand(23), big[::3]):
        assert not grad.is_contiguous()
        got = op(grad, points, triplets, sims, 1.0, 0.1)
        want = op(grad.contiguous(), points, triplets, sims, 1.0, 0.1)
        ref = hyphc_triplet_loss_backward_reference(grad.contiguous(), points, triplets, sims, 1.0, 0.1)
        for g, w, r in zip(got, want, ref):
            assert torch.equal(g, w)
            torch.testing.assert_close(g, r, rtol=1e-8, atol=1e-10)
    x = points.clone().requires_grad_(True)
    (gx,) = torch.autograd.grad(hyphc_triplet_loss(x, triplets, sims, 1.0, 0.1).mean(), x)
    xr = points.clone().requires_grad_(True)
    (rx,) = torch.autograd.grad(hyphc_triplet_loss_reference(xr, triplets, sims, 1.0, 0.1).mean(), xr)
    torch.testing.assert_close(gx, rx, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("t", [9, 2051])
@pytest.mark.parametrize("where", ["first", "lane", "last"])
@pytest.mark.parametrize(
    "spoil, match",
    [
        (lambda tri, s, i: tri[i].fill_(12), "out of range"),
        (lambda tri, s, i: tri[i, 2].fill_(-1), "out of range"),
        (lambda tri, s, i: tri[i, 1].fill_(2**62), "out of range"),
        (lambda tri, s, i: s[i, 1].fill_(float("nan")), "sims contains NaN or Inf"),
        (lambda tri, s, i: s[i, 2].fill_(float("-inf")), "sims contains NaN or Inf"),
    ],
)
def test_kernel_finds_a_bad_value_in_any_lane(spoil, match, where, t):
    """The kernels check indices and sims while reading the triplets: one bad value anywhere
    (first triplet, inside a lane group, the last, shorter group) raises the op's error, forward
    and backward, on two threads."""
    points, triplets, sims = problem(p=12, t=t)
    spoil(triplets, sims, {"first": 0, "lane": t // 2 + 2, "last": t - 1}[where])
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with pytest.raises(ValueError, match=match):
            torch.ops.hyperdml.hyphc_triplet_loss(points, triplets, sims, 1.0, 0.1)
        with pytest.raises(ValueError, match=match):
            torch.ops.hyperdml.hyphc_triplet_loss_backward(
                torch.ones(t, dtype=torch.float64), points, triplets, sims, 1.0, 0.1
            )
    finally:
        torch.set_num_threads(threads)


# -- the forward that also sums the gradients (the CPU path when a gradient is taken) --


def sum_grads(points, triplets, sims, c, tau, sims_grad):
    return torch.ops.hyperdml.hyphc_triplet_loss_and_sum_grads(points, triplets, sims, c, tau, sims_grad)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("tau", [0.05, 1.0])
def test_sum_grads_match_reference(tau, dtype, threads):
    """The op's losses equal the plain forward's; its gradients are the reference's gradient of the
    summed loss (points in their dtype, sims in float64), with repeated indices (7 points, 2051
    triplets: on two threads a chunk starts inside a lane group). sims_grad=False gives no sims
    gradient."""
    points, triplets, sims = problem(p=7, d=6, t=2051, seed=7, dtype=dtype)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        loss, grad_points, grad_sims = sum_grads(points, triplets, sims, 0.5, tau, True)
        assert torch.equal(loss, torch.ops.hyperdml.hyphc_triplet_loss(points, triplets, sims, 0.5, tau))
        _, grad_points_only, no_sims = sum_grads(points, triplets, sims, 0.5, tau, False)
    finally:
        torch.set_num_threads(before)
    assert grad_points.dtype == dtype and grad_sims.dtype == torch.float64 and grad_sims.shape == (2051, 3)
    assert no_sims.shape == (0, 3) and torch.equal(grad_points_only, grad_points)
    ones = torch.ones(2051, dtype=torch.float64)
    want_points, want_sims = hyphc_triplet_loss_backward_reference(
        ones, points.double(), triplets, sims.double(), 0.5, tau
    )
    rtol = 1e-10 if dtype == torch.float64 else 1e-6
    scale = want_points.abs().max()
    torch.testing.assert_close(grad_points.double() / scale, want_points / scale, rtol=rtol, atol=rtol)
    torch.testing.assert_close(grad_sims, want_sims, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(
    "grad, expected",
    [
        (torch.full((), 0.25).expand(6), 0.25),  # a mean's or a sum's: one value, expanded
        (torch.full((6,), 0.5), 0.5),  # the same value, stored
        (torch.tensor([0.5, 0.5, 0.5, 0.5, 0.5, 0.25]), None),  # a weighted sum's
        (torch.full((), float("nan")).expand(6), None),  # NaN goes through the kernel
        (torch.full((1,), 2.0), 2.0),
        (torch.zeros(0), None),
    ],
)
def test_one_value_of_the_incoming_gradient(grad, expected):
    from hyperdml.ops.hyphc_triplet import _one_value

    value = _one_value(grad)
    assert (value is None) if expected is None else (value.item() == expected)


@pytest.mark.parametrize(
    "reduce",
    [torch.mean, torch.sum, lambda loss: 3 * loss.sum(), lambda loss: (loss * torch.linspace(0, 1, len(loss))).sum()],
    ids=["mean", "sum", "scaled-sum", "weighted"],
)
def test_reductions_give_the_reference_gradient(reduce):
    """Whatever reduces the losses (one value per triplet or not), points and sims get the
    reference's gradients, also through a second backward of the same graph."""
    points, triplets, sims = problem(p=20, d=5, t=300, seed=11)
    x, s = points.clone().requires_grad_(True), sims.clone().requires_grad_(True)
    xr, sr = points.clone().requires_grad_(True), sims.clone().requires_grad_(True)
    out = reduce(hyphc_triplet_loss(x, triplets, s, 0.8, 0.1))
    ref = reduce(hyphc_triplet_loss_reference(xr, triplets, sr, 0.8, 0.1))
    want = torch.autograd.grad(ref, (xr, sr))
    for _ in range(2):
        got = torch.autograd.grad(out, (x, s), retain_graph=True)
        for g, w in zip(got, want):
            torch.testing.assert_close(g, w, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize(
    "reduce, recomputes",
    [(torch.mean, False), (torch.sum, False), (lambda loss: (loss * torch.linspace(0, 1, len(loss))).sum(), True)],
    ids=["mean", "sum", "weighted"],
)
def test_backward_of_a_mean_only_scales_the_summed_gradient(reduce, recomputes):
    """On the CPU the backward of a mean or a sum calls no kernel that computes the forward again;
    a weighted sum's does."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class Calls(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.ops = []

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            self.ops.append(str(func))
            return func(*args, **(kwargs or {}))

    points, triplets, sims = problem(p=20, d=5, t=300, seed=11)
    x = points.clone().requires_grad_(True)
    loss = reduce(hyphc_triplet_loss(x, triplets, sims, 0.8, 0.1))
    with Calls() as calls:
        torch.autograd.grad(loss, x)
    assert any("hyphc_triplet_loss_backward" in op for op in calls.ops) == recomputes, calls.ops


def test_float32_sums_are_flushed_into_float64():
    """Float32 inputs: each float32 gradient row sums at most max(16 P, 4096) triplets before it
    is added into float64. 3 points and 200 000 copies of one triplet (no pair near the switch to
    exact differences) is the worst case: every term is the same, so one float32 running sum over
    all of them drifts by up to about T 2^-24 (1e-2 here); flushed, the error stays within
    4096 2^-24 = 2.4e-4 (this test fails when the rows are never flushed)."""
    points, triplets, sims = problem(p=3, d=8, t=1, seed=13, dtype=torch.float32)
    triplets = torch.tensor([[0, 1, 2]]).expand(200_000, 3).contiguous()
    sims = sims.expand(200_000, 3).contiguous()
    _, grad_points, _ = sum_grads(points, triplets, sims, 1.0, 0.1, False)
    ones = torch.ones(200_000, dtype=torch.float64)
    want, _ = hyphc_triplet_loss_backward_reference(ones, points.double(), triplets, sims.double(), 1.0, 0.1)
    relative = ((grad_points - want).abs().max() / want.abs().max()).item()
    assert 1e-9 < relative <= 4096 * 2.0**-24, relative  # above 1e-9: summed in float32, not float64


@requires_cuda
def test_cuda_float32_gradients_are_summed_in_float64():
    """The CUDA backward adds every triplet's terms into float64 (atomic adds): 200 000 copies of
    one triplet on 3 points stay within float32 rounding of the float64 sum, where a float32
    running sum would drift by ~1e-2."""
    points, triplets, sims = problem(p=3, d=8, t=1, seed=13, dtype=torch.float32)
    triplets = torch.tensor([[0, 1, 2]]).expand(200_000, 3).contiguous()
    sims = sims.expand(200_000, 3).contiguous()
    ones = torch.ones(200_000, dtype=torch.float32, device="cuda")
    got, _ = torch.ops.hyperdml.hyphc_triplet_loss_backward(ones, points.cuda(), triplets.cuda(), sims.cuda(),
                                                           1.0, 0.1)
    want, _ = hyphc_triplet_loss_backward_reference(ones.double().cpu(), points.double(), triplets, sims.double(),
                                                    1.0, 0.1)
    relative = ((got.cpu().double() - want).abs().max() / want.abs().max()).item()
    assert got.dtype == torch.float32 and relative < 1e-6, relative


def test_opcheck_sum_grads():
    points, triplets, sims = problem(p=8, d=4, t=30)
    op = torch.ops.hyperdml.hyphc_triplet_loss_and_sum_grads.default
    torch.library.opcheck(op, (points, triplets, sims, 1.0, 0.1, False))
    torch.library.opcheck(op, (points, triplets, sims, 1.0, 0.1, True))
    torch.library.opcheck(
        op, (points.clone().requires_grad_(), triplets, sims.clone().requires_grad_(), 0.5, 0.2, True)
    )


def test_sum_grads_checks_indices_in_any_lane():
    """Indices are checked by the kernel while it adds (no write out of bounds)."""
    points, triplets, sims = problem(p=12, t=2051)
    for where in (0, 1030, 2050):
        bad = triplets.clone()
        bad[where, 1] = 12
        with pytest.raises(ValueError, match="out of range"):
            sum_grads(points, bad, sims, 1.0, 0.1, True)


def test_large_outputs_match_reference():
    """Outputs of 2 MB and more (the losses from T = 524 288 in float32, the sims gradient in
    float64 from T = 87 382) are allocated in huge pages on Linux: the same values and
    gradients, and tensors that behave like any other."""
    points, triplets, sims = problem(p=50, d=4, t=90_000, seed=10)
    x, s = points.clone().requires_grad_(True), sims.clone().requires_grad_(True)
    out = hyphc_triplet_loss(x, triplets, s, 1.0, 0.1)
    gx, gs = torch.autograd.grad(out.sum(), (x, s))
    xr, sr = points.clone().requires_grad_(True), sims.clone().requires_grad_(True)
    ref = hyphc_triplet_loss_reference(xr, triplets, sr, 1.0, 0.1)
    rx, rs = torch.autograd.grad(ref.sum(), (xr, sr))
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(gx, rx, rtol=1e-8, atol=1e-9)
    torch.testing.assert_close(gs, rs, rtol=1e-10, atol=1e-12)
    _, _, grad_sims = sum_grads(points, triplets, sims, 1.0, 0.1, True)
    assert grad_sims.is_contiguous() and grad_sims.clone().equal(grad_sims) and torch.isfinite(grad_sims).all()
