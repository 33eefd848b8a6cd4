"""The fused Triton kernels of poincare_cdist (float32): against the float64 closed form, the C++
op, opcheck; compiled for real GPUs (sm_75, sm_80, sm_90) without one.

The kernel tests run wherever the Triton kernels serve float32: on a CUDA GPU, and on the CPU
under ``TRITON_INTERPRET=1``, Triton's interpreter. Without a GPU, ``test_under_the_interpreter``
reruns this file in a subprocess under the interpreter, so every test here runs in every CI.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import re
import subprocess
import sys

import pytest
import torch

from conftest import ball_points
from hyperdml.ops import poincare_cdist
from hyperdml.ops.reference import poincare_cdist_reference

cdist_impl = importlib.import_module("hyperdml.ops.poincare_cdist")  # the module (the package exports the function)
HAS_TRITON = importlib.util.find_spec("triton") is not None
INTERPRETING = os.environ.get("TRITON_INTERPRET") == "1"
FUSED = [d for d in cdist_impl.FUSED_DEVICES if d == "cpu" or torch.cuda.is_available()]
# A Triton failure falls back to the C++ op with a warning: here that warning fails the test.
pytestmark = pytest.mark.filterwarnings("error:hyperdml. the Triton kernels")
needs_fused = pytest.mark.skipif(not FUSED, reason="the Triton kernels serve no device here "
                                 "(no GPU, not under TRITON_INTERPRET=1; test_under_the_interpreter runs them)")


@pytest.fixture
def dev():
    return FUSED[0]


def exact(x, y, c):
    return poincare_cdist_reference(x.double(), y.double(), c)


@needs_fused
@pytest.mark.parametrize("c", [0.1, 1.0, 2.5])
@pytest.mark.parametrize("shape", [(1, 1, 1), (70, 45, 33), (6, 100, 3), (64, 64, 16), (33, 17, 100), (130, 9, 64)])
def test_forward_matches_float64(shape, c, dev):
    b, n, d = shape
    x = ball_points(b, d, c, max_frac=0.99, seed=1, dtype=torch.float32, device=dev)
    y = ball_points(n, d, c, max_frac=0.99, seed=2, dtype=torch.float32, device=dev)
    out = poincare_cdist(x, y, c)
    assert out.dtype == torch.float32 and out.shape == (b, n)
    torch.testing.assert_close(out.double(), exact(x, y, c), rtol=5e-5, atol=5e-6)


@needs_fused
def test_the_fused_op_serves_float32_only(dev, monkeypatch):
    from hyperdml.ops import _cdist_triton

    calls = []
    real = _cdist_triton.distances
    monkeypatch.setattr(_cdist_triton, "distances", lambda *a: calls.append(1) or real(*a))
    x = ball_points(5, 4, device=dev, dtype=torch.float32)
    poincare_cdist(x, x, 1.0)
    assert calls == [1]
    poincare_cdist(x.double(), x.double(), 1.0)  # float64: the C++ op
    assert calls == [1]
    with pytest.raises(TypeError, match="float32"):
        torch.ops.hyperdml.poincare_cdist_fused(x.double(), x.double(), 1.0)


@needs_fused
def test_a_triton_failure_falls_back_to_the_cpp_op(dev, monkeypatch):
    from hyperdml.ops import _cdist_triton

    def broken(*args):
        raise RuntimeError("Failed to find C compiler")

    monkeypatch.setattr(_cdist_triton, "distances", broken)
    monkeypatch.setattr(cdist_impl, "FUSED_DEVICES", cdist_impl.FUSED_DEVICES)  # restored afterwards
    x = ball_points(6, 5, 1.0, seed=16, dtype=torch.float32, device=dev)
    with pytest.warns(RuntimeWarning, match="C compiler.*takes the C..? op"):
        out = torch.ops.hyperdml.poincare_cdist_fused(x, x, 1.0)
    torch.testing.assert_close(out, torch.ops.hyperdml.poincare_cdist(x, x, 1.0))
    assert cdist_impl.FUSED_DEVICES == ()
    assert cdist_impl._ops_for(x)[0] is torch.ops.hyperdml.poincare_cdist  # the C++ op from now on


@needs_fused
@pytest.mark.parametrize("c", [0.1, 1.0, 2.5])
def test_near_pairs_are_recomputed_exactly(c, dev):
    """y_i = x_i + offsets from 1e-7 to 1e-2 of the radius: the GEMM form has cancelled for most."""
    x = ball_points(40, 24, c, max_frac=0.9, seed=7, dtype=torch.float32, device=dev)
    g = torch.Generator().manual_seed(8)
    scale = torch.logspace(-7, -2, 40)[:, None] / c**0.5
    y = x + (torch.randn(40, 24, generator=g) * scale).to(dev)
    y[0] = x[0]  # equal points: distance 0
    out = poincare_cdist(x, y, c)
    want = exact(x, y, c)
    assert out[0, 0].item() == 0.0
    torch.testing.assert_close(out.diagonal().double(), want.diagonal(), rtol=1e-5, atol=0)
    torch.testing.assert_close(out.double(), want, rtol=5e-5, atol=5e-6)


@needs_fused
@pytest.mark.parametrize("c", [0.5, 2.0])
def test_gradients_match_float64(c, dev):
    """Far pairs through the weights and the GEMMs, near pairs through their exact terms."""
    x = ball_points(50, 20, c, max_frac=0.95, seed=3, dtype=torch.float32, device=dev)
    y = ball_points(70, 20, c, max_frac=0.95, seed=4, dtype=torch.float32, device=dev)
    y[10] = x[3] + 1e-5
    x, y = x.clone().requires_grad_(True), y.clone().requires_grad_(True)
    weight = torch.randn(50, 70, generator=torch.Generator().manual_seed(5)).to(dev)
    got = torch.autograd.grad((poincare_cdist(x, y, c) * weight).sum(), (x, y))
    xd, yd = x.detach().double().requires_grad_(True), y.detach().double().requires_grad_(True)
    want = torch.autograd.grad((exact(xd, yd, c) * weight.double()).sum(), (xd, yd))
    for a, b in zip(got, want):
        assert a.dtype == torch.float32
        torch.testing.assert_close(a.double(), b, rtol=1e-4, atol=1e-4 * b.abs().max().item())


@needs_fused
def test_self_distances_and_odd_layouts(dev):
    x = ball_points(75, 30, 1.0, seed=9, dtype=torch.float32, device=dev)
    leaf = x.clone().requires_grad_(True)
    out = poincare_cdist(leaf, leaf, 1.0)
    assert (out.diagonal() == 0).all()
    out.sum().backward()  # equal points: gradient 0 there, nothing NaN
    other = x.clone().requires_grad_(True)
    torch.ops.hyperdml.poincare_cdist(other, other, 1.0).sum().backward()  # the C++ op
    cpp = other.grad
    torch.testing.assert_close(leaf.grad, cpp, rtol=1e-4, atol=1e-4 * cpp.abs().max().item())
    out = out.detach()
    torch.testing.assert_close(out, out.t(), rtol=1e-5, atol=1e-6)
    strided = x[::2, :29]
    col_major = x[:20, :29].t().contiguous().t()
    torch.testing.assert_close(poincare_cdist(strided, col_major, 1.0).double(), exact(strided, col_major, 1.0),
                               rtol=5e-5, atol=5e-6)
    assert poincare_cdist(x[:0], x, 1.0).shape == (0, 75)
    assert poincare_cdist(x, x[:0], 1.0).shape == (75, 0)
    a = x[:0].clone().requires_grad_(True)
    poincare_cdist(a, x, 1.0).sum().backward()
    assert a.grad.shape == (0, 30)


@needs_fused
def test_matches_the_cpp_op(dev):
    x = ball_points(90, 40, 0.7, seed=11, dtype=torch.float32, device=dev)
    y = ball_points(66, 40, 0.7, seed=12, dtype=torch.float32, device=dev)
    g = torch.randn(90, 66, generator=torch.Generator().manual_seed(13)).to(dev)
    fused = torch.ops.hyperdml.poincare_cdist_fused(x, y, 0.7)
    cpp = torch.ops.hyperdml.poincare_cdist(x, y, 0.7)
    torch.testing.assert_close(fused, cpp, rtol=5e-5, atol=5e-6)
    for a, b in zip(torch.ops.hyperdml.poincare_cdist_fused_backward(g, x, y, cpp, 0.7),
                    torch.ops.hyperdml.poincare_cdist_backward(g, x, y, cpp, 0.7)):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4 * b.abs().max().item())


@needs_fused
def test_bad_inputs_raise(dev):
    inside = torch.zeros(2, 2, device=dev)
    outside = torch.tensor([[1.5, 0.0]], device=dev)
    for op_args in [(outside, inside), (inside, outside)]:
        with pytest.raises(ValueError, match="boundary"):
            torch.ops.hyperdml.poincare_cdist_fused(*op_args, 1.0)
    with pytest.raises(ValueError, match="NaN"):
        torch.ops.hyperdml.poincare_cdist_fused(torch.tensor([[float("nan"), 0.0]], device=dev), inside, 1.0)
    with pytest.raises(ValueError, match="D=3"):
        torch.ops.hyperdml.poincare_cdist_fused(inside, torch.zeros(2, 3, device=dev), 1.0)
    grad = torch.ones(2, 2, device=dev)
    with pytest.raises(ValueError, match="dist contains"):
        torch.ops.hyperdml.poincare_cdist_fused_backward(grad, inside, inside, -grad, 1.0)
    with pytest.raises(ValueError, match="must have shape"):
        torch.ops.hyperdml.poincare_cdist_fused_backward(torch.ones(3, 2, device=dev), inside, inside, grad, 1.0)


@needs_fused
def test_opcheck(dev):
    x = ball_points(20, 8, 1.0, seed=14, dtype=torch.float32, device=dev).requires_grad_(True)
    y = ball_points(30, 8, 1.0, seed=15, dtype=torch.float32, device=dev).requires_grad_(True)
    torch.library.opcheck(torch.ops.hyperdml.poincare_cdist_fused.default, (x, y, 1.0))
    dist = poincare_cdist(x, y, 1.0).detach()
    torch.library.opcheck(torch.ops.hyperdml.poincare_cdist_fused_backward.default,
                          (torch.randn(20, 30, device=dev), x.detach(), y.detach(), dist, 1.0),
                          test_utils=("test_schema", "test_faketensor", "test_aot_dispatch_dynamic"))


@needs_fused
def test_compile_vmap_and_double_backward(dev):
    x = ball_points(12, 6, 1.0, seed=17, dtype=torch.float32, device=dev)
    y = ball_points(9, 6, 1.0, seed=18, dtype=torch.float32, device=dev)
    want = poincare_cdist(x, y, 1.0)
    compiled = torch.compile(lambda a, b: poincare_cdist(a, b, 1.0), fullgraph=True, backend="aot_eager")
    torch.testing.assert_close(compiled(x, y), want)
    a = x.clone().requires_grad_(True)
    compiled(a, y).sum().backward()
    b = x.clone().requires_grad_(True)
    poincare_cdist(b, y, 1.0).sum().backward()
    torch.testing.assert_close(a.grad, b.grad)
    batched = torch.vmap(lambda p: poincare_cdist(p, y, 1.0))(torch.stack([x, x.flip(0)]))
    torch.testing.assert_close(batched[1], want.flip(0))
    # second derivatives through the closed form: finite and equal to float64 autograd
    c = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(poincare_cdist(c, y, 1.0).sum(), c, create_graph=True)
    (h,) = torch.autograd.grad(g.pow(2).sum(), c)
    cd = x.double().requires_grad_(True)
    (gd,) = torch.autograd.grad(exact(cd, y, 1.0).sum(), cd, create_graph=True)
    (hd,) = torch.autograd.grad(gd.pow(2).sum(), cd)
    torch.testing.assert_close(h.double(), hd, rtol=1e-3, atol=1e-3 * hd.abs().max().item())


@needs_fused
def test_random_problems_match_float64(dev):
    """Random shapes (across tile edges), curvatures, radii and planted near or equal pairs: values
    and gradients of the Triton kernels against float64 autograd through the closed form."""
    hypothesis = pytest.importorskip("hypothesis")
    st = hypothesis.strategies

    @hypothesis.settings(max_examples=40, deadline=None, database=None)
    @hypothesis.given(st.integers(1, 70), st.integers(1, 70), st.integers(1, 40), st.floats(0.05, 4.0),
                      st.floats(0.1, 0.99), st.integers(0, 2**31 - 1), st.integers(0, 3))
    def check(b, n, d, c, frac, seed, planted):
        x = ball_points(b, d, c, max_frac=frac, seed=seed, dtype=torch.float32, device=dev)
        y = ball_points(n, d, c, max_frac=frac, seed=seed + 1, dtype=torch.float32, device=dev)
        g = torch.Generator().manual_seed(seed)
        for _ in range(planted):  # a near or an equal pair
            i, j = int(torch.randint(b, (1,), generator=g)), int(torch.randint(n, (1,), generator=g))
            y[j] = x[i] * (1 + float(torch.rand((), generator=g)) * 1e-4)
        xg, yg = x.clone().requires_grad_(True), y.clone().requires_grad_(True)
        out = poincare_cdist(xg, yg, c)
        want = exact(x, y, c)
        torch.testing.assert_close(out.double(), want, rtol=1e-4, atol=1e-5)
        weight = torch.randn(b, n, generator=g).to(dev)
        got = torch.autograd.grad((out * weight).sum(), (xg, yg), retain_graph=True)
        assert all(torch.isfinite(t).all() for t in got)  # equal points included
        keep = want > 0  # autograd through arccosh is NaN at equal points; the op gives 0 there
        xd, yd = x.double().requires_grad_(True), y.double().requires_grad_(True)
        wants = torch.autograd.grad((torch.where(keep, exact(xd, yd, c), 0) * weight.double()).sum(), (xd, yd))
        gots = torch.autograd.grad((torch.where(keep, out, 0) * weight).sum(), (xg, yg))
        for a, want_grad in zip(gots, wants):
            scale = want_grad.abs().max().item()
            torch.testing.assert_close(a.double(), want_grad, rtol=1e-3, atol=1e-3 * scale + 1e-6)

    check()


@pytest.mark.skipif(not HAS_TRITON or INTERPRETING, reason="needs Triton's GPU compiler")
@pytest.mark.parametrize("capability", [75, 80, 90])
def test_kernels_compile_for_gpus(capability):
    """Both kernels through Triton's whole GPU compiler (ptxas included) for Turing, Ampere and
    Hopper; on Ampere and Hopper the forward's inner products run on tensor cores."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    from hyperdml.ops import _cdist_triton as kernels

    target = GPUTarget("cuda", capability, 32)
    config = kernels.forward_config(4096, 8192, 128, torch.device("cpu"))
    config["PRECISION"] = kernels.TENSOR_CORE_PRECISION if capability >= 80 else "ieee"
    options = {"num_warps": config.pop("num_warps"), "num_stages": config.pop("num_stages")}
    types = ["*fp32"] * 5 + ["*i32"] + ["i32"] * 3 + ["fp32"] * 3
    signature = dict(zip(kernels._distance_kernel.arg_names, types)) | {k: "constexpr" for k in config}
    compiled = triton.compile(ASTSource(fn=kernels._distance_kernel, signature=signature, constexprs=config),
                              target=target, options=options)
    mma = [line for line in compiled.asm["ptx"].splitlines() if "mma" in line and "tf32" in line]
    assert bool(mma) == (capability >= 80), "the forward's inner products should use TF32 tensor cores"
    exact = {"BLOCK_M": config["BLOCK_M"], "BLOCK_N": config["BLOCK_N"], "SUB_M": 32}
    types = ["*fp32"] * 5 + ["*i32"] + ["i32"] * 3 + ["fp32"] * 2
    signature = dict(zip(kernels._exact_tiles_kernel.arg_names, types)) | {k: "constexpr" for k in exact}
    assert triton.compile(ASTSource(fn=kernels._exact_tiles_kernel, signature=signature, constexprs=exact),
                          target=target, options={"num_warps": 4}).asm["cubin"]
    config = kernels.weights_config()
    options = {"num_warps": config.pop("num_warps")}
    types = ["*fp32"] * 5 + ["*i8"] + ["*fp32"] * 2 + ["i32"] * 2 + ["fp32"] * 2
    signature = dict(zip(kernels._weights_kernel.arg_names, types)) | {k: "constexpr" for k in config}
    assert triton.compile(ASTSource(fn=kernels._weights_kernel, signature=signature, constexprs=config),
                          target=target, options=options).asm["cubin"]


@pytest.mark.skipif(not HAS_TRITON or INTERPRETING or torch.cuda.is_available(),
                    reason="needs Triton; a GPU runs this file's tests directly")
def test_under_the_interpreter():
    """This file's kernel tests on the CPU through Triton's interpreter, in a fresh process."""
    env = dict(os.environ, TRITON_INTERPRET="1")
    env.pop("HYPERDML_DISABLE_TRITON", None)
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", __file__],
                         env=env, capture_output=True, text=True, timeout=900)
    tail = run.stdout[-3000:] + run.stderr[-2000:]
    assert run.returncode == 0, tail
    passed = re.search(r"(\d+) passed", run.stdout)
    assert passed and int(passed.group(1)) >= 25, tail  # the kernel tests ran, not skipped


def test_disable_switch():
    code = "import importlib; print(importlib.import_module('hyperdml.ops.poincare_cdist').FUSED_DEVICES)"
    env = dict(os.environ, TRITON_INTERPRET="1", HYPERDML_DISABLE_TRITON="1")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "()"

