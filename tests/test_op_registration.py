"""What the op registrations promise beyond values: fake kernels that refuse what the kernels
refuse (same error, same message), autocast rules, the curvature and temperature ranges shared by
the Python and C++ checks, and when ``torch.ops.hyperdml`` exists."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
from torch._subclasses.fake_tensor import FakeTensorMode

from conftest import ball_points
from hyperdml.ops import MAX_CURVATURE, MIN_CURVATURE, MIN_TEMPERATURE, hyphc_triplet_loss, poincare_cdist
from hyperdml.ops.reference import hyphc_triplet_loss_reference, poincare_cdist_reference

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")

ops = torch.ops.hyperdml
X = ball_points(4, 3, 1.0, max_frac=0.5, seed=40)
Y = ball_points(5, 3, 1.0, max_frac=0.5, seed=41)
D = poincare_cdist(X, Y, 1.0)
P = ball_points(6, 3, 1.0, max_frac=0.5, seed=42)
T = torch.randint(0, 6, (8, 3), generator=torch.Generator().manual_seed(43))
S = torch.rand(8, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(44))
G = torch.rand(8, dtype=torch.float64, generator=torch.Generator().manual_seed(45))

#: metadata errors (no data needed): the fake kernels must raise exactly what the kernels raise
METADATA_CASES = {
    "cdist D": lambda: ops.poincare_cdist(X, Y[:, :2], 1.0),
    "cdist rank": lambda: ops.poincare_cdist(X[0], Y, 1.0),
    "cdist int": lambda: ops.poincare_cdist(X.long(), Y.long(), 1.0),
    "cdist half": lambda: ops.poincare_cdist(X.half(), Y.half(), 1.0),
    "cdist dtypes": lambda: ops.poincare_cdist(X, Y.float(), 1.0),
    "cdist c 0": lambda: ops.poincare_cdist(X, Y, 0.0),
    "cdist c above max": lambda: ops.poincare_cdist(X * 0.01, Y * 0.01, MAX_CURVATURE * 1.01),
    "cdist backward grad": lambda: ops.poincare_cdist_backward(D[:3], X, Y, D, 1.0),
    "cdist backward dist": lambda: ops.poincare_cdist_backward(D, X, Y, D.t(), 1.0),
    "cdist backward dtype": lambda: ops.poincare_cdist_backward(D.float(), X, Y, D, 1.0),
    "hyphc triplets dtype": lambda: ops.hyphc_triplet_loss(P, T.int(), S, 1.0, 0.1),
    "hyphc triplets shape": lambda: ops.hyphc_triplet_loss(P, T[:, :2], S[:, :2], 1.0, 0.1),
    "hyphc sims shape": lambda: ops.hyphc_triplet_loss(P, T, S[:5], 1.0, 0.1),
    "hyphc sims dtype": lambda: ops.hyphc_triplet_loss(P, T, S.float(), 1.0, 0.1),
    "hyphc points rank": lambda: ops.hyphc_triplet_loss(P[0], T, S, 1.0, 0.1),
    "hyphc tau small": lambda: ops.hyphc_triplet_loss(P, T, S, 1.0, MIN_TEMPERATURE / 10),
    "hyphc tau nan": lambda: ops.hyphc_triplet_loss(P, T, S, 1.0, float("nan")),
    "hyphc c below min": lambda: ops.hyphc_triplet_loss(P, T, S, MIN_CURVATURE / 10, 0.1),
    "hyphc backward grad": lambda: ops.hyphc_triplet_loss_backward(G[:3], P, T, S, 1.0, 0.1),
    "hyphc backward grad dtype": lambda: ops.hyphc_triplet_loss_backward(G.float(), P, T, S, 1.0, 0.1),
    "hyphc sum grads sims shape": lambda: ops.hyphc_triplet_loss_and_sum_grads(P, T, S[:5], 1.0, 0.1, True),
    "hyphc sum grads sims dtype": lambda: ops.hyphc_triplet_loss_and_sum_grads(P, T, S.float(), 1.0, 0.1, False),
    "hyphc sum grads tau": lambda: ops.hyphc_triplet_loss_and_sum_grads(P, T, S, 1.0, MIN_TEMPERATURE / 10, True),
}


def error_of(fn):
    try:
        fn()
    except Exception as error:  # noqa: BLE001
        return type(error), str(error).splitlines()[0]
    return None


@pytest.mark.parametrize("case", METADATA_CASES)
def test_fake_kernels_raise_what_the_kernels_raise(case):
    real = error_of(METADATA_CASES[case])
    assert real is not None and real[0] in (TypeError, ValueError), real
    with FakeTensorMode(allow_non_fake_inputs=True):
        fake = error_of(METADATA_CASES[case])
    assert fake == real


def test_compile_tracing_fails_with_the_kernel_message():
    compiled = torch.compile(lambda a, b: ops.poincare_cdist(a, b, 1.0), fullgraph=True, backend="aot_eager")
    with pytest.raises(Exception, match="x has D=3 but y has D=2"):
        compiled(X, Y[:, :2])


def test_fake_kernels_return_contiguous_gradients():
    """The kernels return contiguous gradients whatever the input strides; so do the fake kernels."""
    args = (torch.ones_like(D), X.t().contiguous().t(), Y, D)  # x column-major
    real = ops.poincare_cdist_backward(*args, 1.0)
    with FakeTensorMode() as mode:
        fake = ops.poincare_cdist_backward(*(mode.from_tensor(t) for t in args), 1.0)
    assert [t.stride() for t in fake] == [t.stride() for t in real] == [(3, 1), (3, 1)]
    torch.library.opcheck(ops.poincare_cdist_backward.default, (*args, 1.0))


# -- autocast --------------------------------------------------------------------------------


@pytest.mark.parametrize("op", ["poincare_cdist", "hyphc_triplet_loss"])
def test_raw_ops_compute_in_float32_under_autocast(op):
    with torch.autocast("cpu", dtype=torch.bfloat16):
        if op == "poincare_cdist":
            out = ops.poincare_cdist(X.bfloat16(), Y.bfloat16(), 1.0)
            want = poincare_cdist_reference(X.bfloat16().double(), Y.bfloat16().double(), 1.0)
        else:
            out = ops.hyphc_triplet_loss(P.bfloat16(), T, S.bfloat16(), 1.0, 0.1)
            want = hyphc_triplet_loss_reference(P.bfloat16().double(), T, S.bfloat16().double(), 1.0, 0.1)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out.double(), want, rtol=1e-5, atol=1e-5)


def test_hyphc_face_under_autocast_is_float32_and_differentiable():
    points = P.float().clone().requires_grad_(True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = hyphc_triplet_loss(points @ torch.eye(3), T, S.float(), 1.0, 0.1)  # matmul output is bf16
    assert out.dtype == torch.float32
    out.sum().backward()
    assert torch.isfinite(points.grad).all()


# -- curvature and temperature ranges ------------------------------------------------------------


@pytest.mark.parametrize("c", [MIN_CURVATURE, 1.0, MAX_CURVATURE])
def test_curvature_range_ends_are_accepted_and_exact(c):
    x, y = ball_points(4, 3, c, max_frac=0.99, seed=46), ball_points(5, 3, c, max_frac=0.99, seed=47)
    torch.testing.assert_close(poincare_cdist(x, y, c), poincare_cdist_reference(x, y, c), rtol=1e-10, atol=0)
    torch.testing.assert_close(ops.poincare_cdist(x, y, c), poincare_cdist_reference(x, y, c), rtol=1e-10, atol=0)


@pytest.mark.parametrize("c", [MIN_CURVATURE * 0.99, MAX_CURVATURE * 1.01, 710.0, 1e300])
def test_python_and_kernel_refuse_the_same_curvatures_with_one_message(c):
    x, y = X * 1e-3, Y * 1e-3
    face, kernel = error_of(lambda: poincare_cdist(x, y, c)), error_of(lambda: ops.poincare_cdist(x, y, c))
    assert face is not None and face == kernel
    assert face[0] is ValueError and f"within [{MIN_CURVATURE:g}, {MAX_CURVATURE:g}]" in face[1]
    face = error_of(lambda: hyphc_triplet_loss(P * 1e-3, T, S, c, 0.1))
    assert face == error_of(lambda: ops.hyphc_triplet_loss(P * 1e-3, T, S, c, 0.1)) == kernel


def test_max_curvature_keeps_geoopt_finite():
    """geoopt stores log(exp(c) − 1): finite and exact at MAX_CURVATURE (inf from c ≈ 709.8)."""
    from hyperdml import geometry

    ball = geometry.ball(MAX_CURVATURE)
    assert ball.c.item() == pytest.approx(MAX_CURVATURE, rel=1e-12)
    v = torch.randn(5, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(48))
    x = geometry.expmap0(v, MAX_CURVATURE)
    assert bool((x.norm(dim=1) * MAX_CURVATURE**0.5 > 0.5).all())  # not collapsed to the origin
    assert geometry.ball(MIN_CURVATURE).c.item() == pytest.approx(MIN_CURVATURE, rel=1e-8)


# -- torch.ops.hyperdml availability ---------------------------------------------------------


def test_ops_exist_after_importing_hyperdml_ops_only():
    """``import hyperdml`` stays light (no torch); ``import hyperdml.ops`` registers every op with
    its fake kernel, autograd and autocast rules (documented in hyperdml.ops)."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    code = (
        "import sys, warnings; warnings.simplefilter('ignore')\n"
        "import hyperdml\n"
        "assert 'torch' not in sys.modules\n"
        "import torch\n"
        "assert not hasattr(torch.ops.hyperdml, 'poincare_cdist')  # the documented rule\n"
        "import hyperdml.ops\n"
        "for name in ('poincare_cdist', 'poincare_cdist_backward', 'hyphc_triplet_loss', "
        "'hyphc_triplet_loss_backward'):\n"
        "    op = getattr(torch.ops.hyperdml, name).default\n"
        "    for key in ('CPU', 'Meta', 'Autograd', 'AutocastCPU'):\n"
        "        has = torch._C._dispatch_has_kernel_for_dispatch_key(op.name(), key) or key in op.py_kernels\n"
        "        assert has or (key == 'AutocastCPU' and name.endswith('_backward')), (name, key)\n"
        "print('ok')\n"
    )
    env = dict(os.environ, PYTHONPATH=root)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0 and "ok" in proc.stdout, proc.stderr[-2000:]
