"""hyperdml.ops.poincare_cdist against geoopt, an exact float64 closed form, gradcheck and opcheck."""

from __future__ import annotations

import warnings

import pytest
import torch

from conftest import ball_points, requires_cuda
from hyperdml.ops import poincare_cdist
from hyperdml.ops.reference import poincare_cdist_backward_reference, poincare_cdist_reference

with warnings.catch_warnings():
    warnings.simplefilter("ignore", FutureWarning)
    import geoopt

CURVATURES = [0.1, 1.0, 2.5]


def exact_distance(x, y, c):
    """float64 closed form through the exact difference (arccosh via log1p)."""
    return poincare_cdist_reference(x.double(), y.double(), c)


def mpmath_distance(x, y, c):
    """50-digit distance of two float64 points, as a float."""
    import mpmath

    mpmath.mp.dps = 50
    xs, ys, cm = [mpmath.mpf(float(v)) for v in x], [mpmath.mpf(float(v)) for v in y], mpmath.mpf(c)
    sq = sum((a - b) ** 2 for a, b in zip(xs, ys))
    xx, yy = sum(a * a for a in xs), sum(b * b for b in ys)
    return float(mpmath.acosh(1 + 2 * cm * sq / ((1 - cm * xx) * (1 - cm * yy))) / mpmath.sqrt(cm))


@pytest.mark.parametrize("c", CURVATURES)
@pytest.mark.parametrize("shape", [(1, 1, 3), (7, 300, 16), (256, 5, 64)])
def test_matches_geoopt_and_closed_form(c, shape, device):
    b, n, d = shape
    x = ball_points(b, d, c, max_frac=0.999, seed=1, device=device)
    y = ball_points(n, d, c, max_frac=0.999, seed=2, device=device)
    out = poincare_cdist(x, y, c)
    assert out.shape == (b, n) and out.dtype == torch.float64
    torch.testing.assert_close(out, exact_distance(x, y, c), rtol=1e-12, atol=1e-12)
    # geoopt goes through artanh(‖(−x)⊕y‖), ill-conditioned for far points near the boundary,
    # so compare with it up to 0.9/√c (its curvature in float64: a Python float becomes float32).
    x, y = x * 0.9, y * 0.9
    oracle = geoopt.PoincareBall(c=torch.tensor(c, dtype=torch.float64)).dist(x[:, None, :], y[None, :, :])
    torch.testing.assert_close(poincare_cdist(x, y, c), oracle.to(device), rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("c", CURVATURES)
def test_float32_close_to_float64(c, device):
    x = ball_points(64, 32, c, max_frac=0.99, seed=3, device=device)
    y = ball_points(50, 32, c, max_frac=0.99, seed=4, device=device)
    out = poincare_cdist(x.float(), y.float(), c)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out.double(), exact_distance(x.float(), y.float(), c), rtol=2e-4, atol=2e-4)


def test_non_contiguous_inputs(device):
    x = ball_points(20, 16, 1.0, seed=5, device=device)[::2, :15]  # strided rows and columns
    y = ball_points(12, 15, 1.0, seed=6, device=device).t().contiguous().t()  # column-major
    assert not x.is_contiguous() and not y.is_contiguous()
    torch.testing.assert_close(poincare_cdist(x, y, 1.0), exact_distance(x, y, 1.0), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("c", CURVATURES)
def test_near_pairs_are_exact(c, device):
    """Nearly equal points: the GEMM form cancels, the kernel recomputes these pairs exactly."""
    x = ball_points(30, 24, c, max_frac=0.9, seed=7, device=device)
    g = torch.Generator().manual_seed(8)
    offsets = torch.randn(30, 24, generator=g, dtype=torch.float64).to(device) * torch.logspace(
        -12, -2, 30, dtype=torch.float64
    ).to(device)[:, None]
    y = x + offsets
    out = poincare_cdist(x, y, c).diagonal()
    ref = exact_distance(x, y, c).diagonal()
    torch.testing.assert_close(out, ref, rtol=1e-9, atol=0)


@pytest.mark.parametrize("c", CURVATURES)
def test_near_pairs_gradients_are_exact(c, device):
    """The backward's GEMM form cancels for nearly equal points too (error ~ eps‖x‖/‖x−y‖, with
    weights ~ 1/‖x−y‖); those pairs take the exact differences. Oracle: autograd through the
    explicit-difference formula in float64. The far pairs of the same call go through the GEMM."""
    x = ball_points(30, 24, c, max_frac=0.9, seed=7, device=device)
    g = torch.Generator().manual_seed(8)
    offsets = torch.randn(30, 24, generator=g, dtype=torch.float64).to(device) * torch.logspace(
        -10, -2, 30, dtype=torch.float64
    ).to(device)[:, None]
    y = (x + offsets).requires_grad_(True)
    x = x.clone().requires_grad_(True)
    weight = torch.randn(30, 30, generator=g, dtype=torch.float64).to(device)
    got = torch.autograd.grad((poincare_cdist(x, y, c) * weight).sum(), (x, y))
    want = torch.autograd.grad((exact_distance(x, y, c) * weight).sum(), (x, y))
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-8 * b.abs().max().item())


def test_many_column_blocks(device):
    """Large B makes the CPU backward walk N in several column blocks (64 columns at B = 2048), the
    last one partial; values and gradients, near pairs included, must not notice."""
    c = 0.5
    x = ball_points(2048, 6, c, max_frac=0.9, seed=21, device=device)
    y = ball_points(150, 6, c, max_frac=0.9, seed=22, device=device)
    y[70] = x[5] + 1e-7  # a near pair in the second block
    x, y = x.clone().requires_grad_(True), y.clone().requires_grad_(True)
    weight = torch.randn(2048, 150, generator=torch.Generator().manual_seed(23), dtype=torch.float64).to(device)
    out = poincare_cdist(x, y, c)
    torch.testing.assert_close(out, exact_distance(x, y, c), rtol=1e-10, atol=1e-12)
    got = torch.autograd.grad((out * weight).sum(), (x, y))
    want = torch.autograd.grad((exact_distance(x, y, c) * weight).sum(), (x, y))
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-8 * b.abs().max().item())


def test_near_pair_gradient_against_mpmath(device):
    """A 1-D pair 1e-10 apart near the boundary: the GEMM form alone was 1e-3 off here."""
    import mpmath

    mpmath.mp.dps = 60
    xv, yv, c = 9.999899999999554, 9.9999, 0.01
    x = torch.tensor([[xv]], dtype=torch.float64, device=device)
    y = torch.tensor([[yv]], dtype=torch.float64, device=device, requires_grad=True)
    (grad,) = torch.autograd.grad(poincare_cdist(x, y, c).sum(), y)
    xm, ym, cm = mpmath.mpf(xv), mpmath.mpf(yv), mpmath.mpf(c)
    dist = lambda t: mpmath.acosh(1 + 2 * cm * (xm - t) ** 2 / ((1 - cm * xm**2) * (1 - cm * t**2))) / mpmath.sqrt(cm)
    exact = float(mpmath.diff(dist, ym))
    assert abs(grad.item() - exact) <= 1e-9 * abs(exact)


@pytest.mark.parametrize("c", CURVATURES)
def test_edge_of_ball_float64(c, device):
    """Norms up to (1 - 1e-6)/√c: finite values and gradients, exact to the closed form."""
    x = ball_points(8, 5, c, seed=9, device=device)
    x = x / x.norm(dim=1, keepdim=True) * (1 - 1e-6) / c**0.5
    y = ball_points(6, 5, c, max_frac=0.9, seed=10, device=device)
    x.requires_grad_(True)
    out = poincare_cdist(x, y, c)
    (grad,) = torch.autograd.grad(out.sum(), x)
    assert torch.isfinite(out).all() and torch.isfinite(grad).all()
    exact = torch.tensor([[mpmath_distance(a, b, c) for b in y.cpu()] for a in x.detach().cpu()], dtype=torch.float64)
    # float64 holds ‖x‖ only to ~1e-16 relative, so 1 - c‖x‖² = 2e-6 is known to ~1e-10 relative.
    torch.testing.assert_close(out.cpu(), exact, rtol=1e-9, atol=1e-9)


def test_identical_points_zero_distance_zero_gradient(device):
    x = ball_points(5, 8, 1.0, seed=11, device=device).requires_grad_(True)
    out = poincare_cdist(x, x, 1.0)
    assert torch.equal(out.diagonal(), torch.zeros(5, dtype=torch.float64, device=device))
    seed = torch.zeros_like(out)
    seed.fill_diagonal_(1.0)
    (grad,) = torch.autograd.grad(out, x, seed)
    assert torch.equal(grad, torch.zeros_like(grad))


@pytest.mark.parametrize("c", CURVATURES)
def test_gradients_match_reference(c, device):
    x = ball_points(9, 6, c, max_frac=0.99, seed=12, device=device).requires_grad_(True)
    y = ball_points(11, 6, c, max_frac=0.99, seed=13, device=device).requires_grad_(True)
    w = torch.randn(9, 11, dtype=torch.float64, generator=torch.Generator().manual_seed(0)).to(device)
    gx, gy = torch.autograd.grad((poincare_cdist(x, y, c) * w).sum(), (x, y))
    rx, ry = torch.autograd.grad((poincare_cdist_reference(x, y, c) * w).sum(), (x, y))
    torch.testing.assert_close(gx, rx, rtol=1e-9, atol=1e-10)
    torch.testing.assert_close(gy, ry, rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("c", CURVATURES)
def test_float32_every_distance(c, device):
    """float32 distances and backward weights, pair by pair (each y_j meets one x), for
    sqrt(c) d / 2 from 1e-3 to ~3: both sides of the CPU kernels' log1p and expm1 switches at 1/2
    and pairs near the origin that are not "near" pairs (those take the exact path)."""
    g = torch.Generator().manual_seed(21)
    n, d = 400, 16
    x = torch.zeros(1, d, dtype=torch.float64)
    x[0, 0] = 1e-3 / c**0.5
    radius = torch.logspace(-3, 0, n, dtype=torch.float64) * 0.95 / c**0.5
    direction = torch.nn.functional.normalize(torch.randn(n, d, generator=g, dtype=torch.float64), dim=1)
    y = (radius[:, None] * direction).float().double().to(device)
    x = x.float().double().to(device)
    w = torch.rand(1, n, generator=g, dtype=torch.float64).to(device)
    x32, y32 = x.float().requires_grad_(True), y.float().requires_grad_(True)
    out = poincare_cdist(x32, y32, c)
    gx, gy = torch.autograd.grad((out * w.float()).sum(), (x32, y32))
    x64, y64 = x.clone().requires_grad_(True), y.clone().requires_grad_(True)
    ref = poincare_cdist_reference(x64, y64, c)
    rx, ry = torch.autograd.grad((ref * w).sum(), (x64, y64))
    torch.testing.assert_close(out.double(), ref.detach(), rtol=4e-6, atol=0)
    half_z = (c**0.5 * poincare_cdist_reference(x, y, c) / 2).flatten()
    assert half_z.min() < 0.01 and half_z.max() > 1.5
    scale = ry.norm(dim=1, keepdim=True)
    torch.testing.assert_close(gy.double() / scale, ry / scale, rtol=0, atol=2e-5)
    torch.testing.assert_close(gx.double(), rx, rtol=1e-4, atol=1e-4 * rx.abs().max().item())


@pytest.mark.parametrize("c", [1e-6, 1.0, 700.0])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_backward_op_far_and_near_pairs(c, dtype, device):
    """The backward op pair by pair (each y_j meets one x) against the float64 closed form on the
    same inputs, for sqrt(c) d from ~1e-7 to ~14 (float32) or ~26 (float64), where the CPU
    kernel's expm1 scales by 2^k up to k = 20 or 37, and pairs close enough to take the exact
    path: each gradient row within 16 eps / beta of its norm."""
    g = torch.Generator().manual_seed(22)
    n, d = 300, 8
    radius = (1 - torch.logspace(-0.0, -11 if dtype == torch.float64 else -6, n, dtype=torch.float64)) / c**0.5
    radius[:20] = torch.logspace(-7, -5, 20, dtype=torch.float64) / c**0.5
    direction = torch.nn.functional.normalize(torch.randn(n, d, generator=g, dtype=torch.float64), dim=1)
    y = (radius[:, None] * direction).to(dtype)
    x = torch.zeros(1, d, dtype=dtype)
    x[0, 1] = 1e-8 / c**0.5
    w = torch.rand(1, n, generator=g, dtype=torch.float64)
    dist = torch.ops.hyperdml.poincare_cdist(x.to(device), y.to(device), c)
    assert (c**0.5 * dist.max()).item() > 12 and (c**0.5 * dist.min()).item() < 1e-5
    gx, gy = torch.ops.hyperdml.poincare_cdist_backward(w.to(dtype).to(device), x.to(device), y.to(device), dist, c)
    rx, ry = poincare_cdist_backward_reference(w, x.double(), y.double(), dist.double().cpu(), c)
    # The dtype's own rounding of beta = 1 - c |y|^2 (relative eps / beta) bounds any kernel.
    eps = torch.finfo(dtype).eps
    beta = 1 - c * (y.double() ** 2).sum(1)
    row_error = ((gy.double().cpu() - ry).norm(dim=1) / ry.norm(dim=1)) * beta
    assert row_error.max().item() < 16 * eps, row_error.max().item()
    assert ((gx.double().cpu() - rx).norm() / (ry.norm(dim=1) / beta).sum()).item() < 16 * eps


@pytest.mark.parametrize("c", CURVATURES)
def test_gradcheck(c, device):
    x = ball_points(4, 3, c, max_frac=0.9, seed=14, device=device).requires_grad_(True)
    y = ball_points(5, 3, c, max_frac=0.9, seed=15, device=device).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a, b: poincare_cdist(a, b, c), (x, y))
    assert torch.autograd.gradcheck(lambda a: poincare_cdist(a, y.detach(), c), (x,))


def test_opcheck(device):
    x = ball_points(6, 4, 0.5, max_frac=0.9, seed=16, device=device)
    y = ball_points(7, 4, 0.5, max_frac=0.9, seed=17, device=device)
    torch.library.opcheck(torch.ops.hyperdml.poincare_cdist.default, (x, y, 0.5))
    torch.library.opcheck(torch.ops.hyperdml.poincare_cdist.default, (x.requires_grad_(), y, 0.5))
    dist = poincare_cdist(x.detach(), y, 0.5)
    grad = torch.randn_like(dist)
    torch.library.opcheck(torch.ops.hyperdml.poincare_cdist_backward.default, (grad, x.detach(), y, dist, 0.5))


def test_torch_compile_fullgraph(device):
    x = ball_points(16, 8, 0.3, seed=18, device=device, dtype=torch.float32)
    y = ball_points(12, 8, 0.3, seed=19, device=device, dtype=torch.float32)

    def f(a, b):
        return poincare_cdist(a, b, 0.3).softmax(-1).sum(0)

    compiled = torch.compile(f, fullgraph=True, backend="aot_eager")
    torch.testing.assert_close(compiled(x, y), f(x, y))
    xg = x.clone().requires_grad_(True)
    compiled(xg, y).pow(2).sum().backward()
    xe = x.clone().requires_grad_(True)
    f(xe, y).pow(2).sum().backward()
    torch.testing.assert_close(xg.grad, xe.grad)


def test_autocast_computes_in_float32(device):
    x = ball_points(10, 8, 1.0, seed=20, device=device, dtype=torch.float32)
    y = ball_points(9, 8, 1.0, seed=21, device=device, dtype=torch.float32)
    half = torch.bfloat16 if device == "cpu" else torch.float16
    with torch.autocast(device_type=device, dtype=half):
        out = poincare_cdist(x @ torch.eye(8, device=device), y, 1.0)  # matmul output is half
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, poincare_cdist(x, y, 1.0), rtol=2e-2, atol=2e-2)
    out_half = poincare_cdist(x.to(half), y.to(half), 1.0)
    assert out_half.dtype == torch.float32 and torch.isfinite(out_half).all()


@pytest.mark.parametrize(
    "make, error, match",
    [
        (lambda: (torch.zeros(3), torch.zeros(2, 3), 1.0), ValueError, "shape"),
        (lambda: (torch.zeros(2, 3), torch.zeros(2, 4), 1.0), ValueError, "D=4"),
        (lambda: (torch.zeros(2, 3, dtype=torch.int64), torch.zeros(2, 3), 1.0), TypeError, "float32 or float64"),
        (lambda: (torch.zeros(2, 3), torch.zeros(2, 3, dtype=torch.float64), 1.0), TypeError, "one dtype"),
        (lambda: (torch.zeros(2, 3), torch.zeros(2, 3), 0.0), ValueError, "curvature"),
        (lambda: (torch.zeros(2, 3), torch.zeros(2, 3), -1.0), ValueError, "curvature"),
        (lambda: (torch.full((2, 3), float("nan")), torch.zeros(2, 3), 1.0), ValueError, "NaN"),
        (lambda: (torch.zeros(2, 3), torch.full((2, 3), float("inf")), 1.0), ValueError, "NaN or Inf"),
        (lambda: (torch.tensor([[1.0, 0.0]]), torch.zeros(1, 2), 1.0), ValueError, "boundary"),
        (lambda: (torch.zeros(1, 2), torch.tensor([[0.0, 0.5]]), 4.0), ValueError, "boundary"),
    ],
)
def test_bad_input_raises(make, error, match):
    x, y, c = make()
    with pytest.raises(error, match=match):
        poincare_cdist(x, y, c)


@pytest.mark.parametrize("call", ["op", "backward_op"])
def test_bad_input_raises_at_the_op_boundary(call):
    """Calling torch.ops directly skips the Python checks: the kernels check for themselves."""
    x, y = torch.tensor([[1.5, 0.0]]), torch.zeros(1, 2)
    if call == "op":
        with pytest.raises(ValueError, match="boundary"):
            torch.ops.hyperdml.poincare_cdist(x, y, 1.0)
    else:  # a grad of the wrong shape would make the kernel read past the end
        with pytest.raises(ValueError, match="must have shape"):
            torch.ops.hyperdml.poincare_cdist_backward(torch.ones(2, 1), x * 0.5, y, torch.ones(1, 1), 1.0)


@requires_cuda
def test_different_devices_raise():
    with pytest.raises(ValueError, match="cuda"):
        poincare_cdist(torch.zeros(2, 3), torch.zeros(2, 3, device="cuda"), 1.0)


@requires_cuda
def test_cuda_matches_cpu_and_uses_no_bnd_memory():
    x = ball_points(2048, 256, 1.0, seed=22, dtype=torch.float32, device="cuda").requires_grad_(True)
    y = ball_points(2048, 256, 1.0, seed=23, dtype=torch.float32, device="cuda").requires_grad_(True)
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    out = poincare_cdist(x, y, 1.0)
    out.sum().backward()
    torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated() - base
    bn = 2048 * 2048 * 4
    assert peak < 8 * bn, f"peak {peak / 2**20:.1f} MiB suggests a (B, N, D) intermediate"
    cpu = poincare_cdist(x.detach().cpu(), y.detach().cpu(), 1.0)
    torch.testing.assert_close(out.detach().cpu(), cpu, rtol=1e-4, atol=1e-4)


@requires_cuda
def test_cuda_cpp_op_ignores_tf32():
    """With TF32 allowed (as many training scripts set it), the C++ op's GEMMs would round float32
    products to 2^-11: it takes float64 GEMMs for float32 then, so pairs just outside the near-pair
    guard keep float32 accuracy, in the distances and in the gradients."""
    x = ball_points(64, 128, 1.0, max_frac=0.9, seed=30, device="cuda")
    g = torch.Generator().manual_seed(31)
    y = x + (torch.randn(64, 128, generator=g, dtype=torch.float64) * 0.02).cuda()  # ||x-y||^2 ~ norms / 20
    y = y * 0.9
    xf, yf = x.float().requires_grad_(True), y.float().requires_grad_(True)
    previous = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = True
    try:
        out = torch.ops.hyperdml.poincare_cdist(xf, yf, 1.0)
        got = torch.autograd.grad(out.sum(), (xf, yf))
    finally:
        torch.backends.cuda.matmul.allow_tf32 = previous
    xd, yd = xf.detach().double().requires_grad_(True), yf.detach().double().requires_grad_(True)
    ref = exact_distance(xd, yd, 1.0)
    want = torch.autograd.grad(ref.sum(), (xd, yd))
    torch.testing.assert_close(out.detach().double(), ref.detach(), rtol=1e-5, atol=1e-6)
    for a, b in zip(got, want):
        torch.testing.assert_close(a.double(), b, rtol=1e-4, atol=1e-4 * b.abs().max().item())


def test_empty_inputs(device):
    x = torch.zeros(0, 4, dtype=torch.float64, device=device)
    y = ball_points(3, 4, device=device)
    assert poincare_cdist(x, y, 1.0).shape == (0, 3)


pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")
