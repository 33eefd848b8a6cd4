"""``hyperdml.ops.poincare_cdist``: pairwise geodesic distances in the Poincaré ball.

The op ``hyperdml::poincare_cdist`` has compiled CPU and CUDA kernels (``csrc/poincare_cdist``)
that compute the inner products with one GEMM and fuse everything else, so neither forward nor
backward materialises a ``(B, N, D)`` tensor. Its backward is the op
``hyperdml::poincare_cdist_backward``. Without the extension both fall back to the references in
:mod:`hyperdml.ops.reference`.

On CUDA in float32, when Triton is installed, :func:`poincare_cdist` takes the ops
``hyperdml::poincare_cdist_fused`` and ``hyperdml::poincare_cdist_fused_backward`` instead: Triton
kernels (:mod:`hyperdml.ops._cdist_triton`) that compute the distances in the GEMM's epilogue
(``HYPERDML_DISABLE_TRITON=1`` turns them off; under ``TRITON_INTERPRET=1`` they serve CPU float32
tensors too, through Triton's interpreter, which is how the tests run them without a GPU).
"""

from __future__ import annotations

import os
import warnings

import torch

from hyperdml.ops import _checks, _library
from hyperdml.ops.reference import poincare_cdist_backward_reference, poincare_cdist_reference


def _forward_fallback(x: torch.Tensor, y: torch.Tensor, c: float) -> torch.Tensor:
    _checks.check_cdist_args(x, y, c)
    _checks.check_in_ball(x, c, "x")
    _checks.check_in_ball(y, c, "y")
    return poincare_cdist_reference(x, y, c)


def _check_backward_values(x, y, dist, c):
    _checks.check_in_ball(x, c, "x")
    _checks.check_in_ball(y, c, "y")
    if dist.numel() and not bool((torch.isfinite(dist) & (dist >= 0)).all()):
        raise ValueError("dist contains NaN, Inf or a negative value (pass the output of poincare_cdist)")


def _backward_fallback(grad, x, y, dist, c):
    _checks.check_cdist_backward_args(grad, x, y, dist, c)
    _check_backward_values(x, y, dist, c)
    grad_x, grad_y = poincare_cdist_backward_reference(grad, x, y, dist, c)
    return grad_x.contiguous(), grad_y.contiguous()


_OP = _library.ensure_op("poincare_cdist", "(Tensor x, Tensor y, float c) -> Tensor", _forward_fallback)
_BACKWARD_OP = _library.ensure_op(
    "poincare_cdist_backward",
    "(Tensor grad, Tensor x, Tensor y, Tensor dist, float c) -> (Tensor, Tensor)",
    _backward_fallback,
)


@torch.library.register_fake(_OP)
def _forward_fake(x, y, c):
    _checks.check_cdist_args(x, y, c)
    return x.new_empty((x.shape[0], y.shape[0]))


@torch.library.register_fake(_BACKWARD_OP)
def _backward_fake(grad, x, y, dist, c):
    _checks.check_cdist_backward_args(grad, x, y, dist, c)
    return x.new_empty(x.shape), y.new_empty(y.shape)  # contiguous, as the kernels return them


def _setup_context(ctx, inputs, output):
    x, y, c = inputs
    ctx.save_for_backward(x, y, output)
    ctx.c = c


def _gradients(ctx, grad, backward_op):
    x, y, dist = ctx.saved_tensors
    need_x, need_y = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
    if not (need_x or need_y):
        return None, None, None
    if torch.is_grad_enabled():
        # A graph of the gradient is being built (create_graph=True, torch.func): the closed form
        # in plain PyTorch, whose own derivatives autograd takes exactly. Otherwise the fused kernel.
        grad_x, grad_y = poincare_cdist_backward_reference(grad, x, y, dist, ctx.c)
    else:
        grad_x, grad_y = backward_op(grad.contiguous(), x, y, dist, ctx.c)
    return (grad_x if need_x else None), (grad_y if need_y else None), None


def _backward(ctx, grad):
    return _gradients(ctx, grad, torch.ops.hyperdml.poincare_cdist_backward)


def _backward_setup_context(ctx, inputs, output):
    grad, x, y, dist, c = inputs
    ctx.save_for_backward(grad, x, y, dist)
    ctx.c = c


def _double_backward(ctx, grad_grad_x, grad_grad_y):
    """Derivatives of the backward op itself, by autograd through its closed form."""
    grads = _library.reference_vjp(
        poincare_cdist_backward_reference, ctx.saved_tensors, ctx.needs_input_grad[:4], (grad_grad_x, grad_grad_y),
        ctx.c,
    )
    return (*grads, None)


_library.register_op_rules(_OP, _BACKWARD_OP, _backward, _setup_context, _double_backward, _backward_setup_context)


def _fused_devices() -> tuple[str, ...]:
    """Device types whose float32 calls take the Triton kernels: CUDA when Triton imports, and
    the CPU too under ``TRITON_INTERPRET=1``; none with ``HYPERDML_DISABLE_TRITON=1``."""
    if os.environ.get("HYPERDML_DISABLE_TRITON") == "1":
        return ()
    interpreting = os.environ.get("TRITON_INTERPRET") == "1"
    if not (interpreting or torch.cuda.is_available()):
        return ()  # no GPU: Triton is not even imported
    try:
        from hyperdml.ops import _cdist_triton  # noqa: F401
    except ImportError:
        return ()
    return ("cuda", "cpu") if interpreting else ("cuda",)


FUSED_DEVICES = _fused_devices()


def _triton_or_cpp(triton_call, cpp_call):
    """``triton_call()``; where Triton cannot compile or launch its kernels (no C compiler for its
    launcher, a GPU it does not support), warns once and takes ``cpp_call()``, the C++ op, for
    this call and every later one."""
    global FUSED_DEVICES
    try:
        return triton_call()
    except torch.OutOfMemoryError:
        raise
    except Exception as error:  # noqa: BLE001 (any failure of Triton's toolchain)
        FUSED_DEVICES = ()
        warnings.warn(
            f"hyperdml: the Triton kernels of poincare_cdist failed ({type(error).__name__}: {error}); "
            "float32 poincare_cdist takes the C++ op from now on (HYPERDML_DISABLE_TRITON=1 skips "
            "the Triton kernels)", RuntimeWarning, stacklevel=2,
        )
        return cpp_call()


def _fused_sqnorms(x, y, c, dist=None):
    """The rows' squared norms ``(xx (B,), yy (N,))``, after checking in one host sync that the
    rows are inside the ball (and ``dist``, when given, finite and ≥ 0); the detailed checks name
    the problem when not."""
    xx, yy = (x * x).sum(1), (y * y).sum(1)
    ok = [(xx * c < 1).all(), (yy * c < 1).all()]
    if dist is not None and dist.numel():
        lo, hi = torch.aminmax(dist)  # NaN fails both tests
        ok += [lo >= 0, torch.isfinite(hi)]
    if not bool(torch.stack(ok).all()):
        if dist is None:
            _checks.check_in_ball(x, c, "x")
            _checks.check_in_ball(y, c, "y")
        else:
            _check_backward_values(x, y, dist, c)
    return xx, yy


def _fused_forward(x, y, c):
    from hyperdml.ops import _cdist_triton

    _checks.check_cdist_args(x, y, c)
    _checks.check_float32(x, "x")
    x, y = x.contiguous(), y.contiguous()
    xx, yy = _fused_sqnorms(x, y, c)
    return _triton_or_cpp(lambda: _cdist_triton.distances(x, y, xx, yy, c),
                          lambda: torch.ops.hyperdml.poincare_cdist(x, y, c))


def _fused_backward_kernel(grad, x, y, dist, c):
    from hyperdml.ops import _cdist_triton

    _checks.check_cdist_backward_args(grad, x, y, dist, c)
    _checks.check_float32(x, "x")
    x, y, grad, dist = x.contiguous(), y.contiguous(), grad.contiguous(), dist.contiguous()
    xx, yy = _fused_sqnorms(x, y, c, dist)
    return _triton_or_cpp(lambda: _cdist_triton.gradients(grad, x, y, dist, xx, yy, c),
                          lambda: torch.ops.hyperdml.poincare_cdist_backward(grad, x, y, dist, c))


if FUSED_DEVICES:
    _FUSED_OP = _library.define_op(
        "poincare_cdist_fused", "(Tensor x, Tensor y, float c) -> Tensor", _fused_forward, FUSED_DEVICES
    )
    _FUSED_BACKWARD_OP = _library.define_op(
        "poincare_cdist_fused_backward", "(Tensor grad, Tensor x, Tensor y, Tensor dist, float c) -> (Tensor, Tensor)",
        _fused_backward_kernel, FUSED_DEVICES,
    )

    @torch.library.register_fake(_FUSED_OP, lib=_library._FRAGMENT)
    def _fused_forward_fake(x, y, c):
        out = _forward_fake(x, y, c)
        _checks.check_float32(x, "x")
        return out

    @torch.library.register_fake(_FUSED_BACKWARD_OP, lib=_library._FRAGMENT)
    def _fused_backward_fake(grad, x, y, dist, c):
        out = _backward_fake(grad, x, y, dist, c)
        _checks.check_float32(x, "x")
        return out

    def _fused_backward(ctx, grad):
        return _gradients(ctx, grad, torch.ops.hyperdml.poincare_cdist_fused_backward)

    _library.register_op_rules(_FUSED_OP, _FUSED_BACKWARD_OP, _fused_backward, _setup_context, _double_backward,
                               _backward_setup_context)


def _ops_for(x: torch.Tensor):
    """``(forward op, backward op)`` for points like ``x``: the Triton ones for float32 on a device
    they serve, else the C++ ones."""
    if x.dtype == torch.float32 and x.device.type in FUSED_DEVICES:
        return torch.ops.hyperdml.poincare_cdist_fused, torch.ops.hyperdml.poincare_cdist_fused_backward
    return torch.ops.hyperdml.poincare_cdist, torch.ops.hyperdml.poincare_cdist_backward


class _PoincareCdist(torch.autograd.Function):
    """The op with the same backward, as an ``autograd.Function`` that ``torch.func`` accepts."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x, y, c):
        return _ops_for(x)[0](x, y, c)

    setup_context = staticmethod(_setup_context)

    @staticmethod
    def backward(ctx, grad):
        return _gradients(ctx, grad, _ops_for(ctx.saved_tensors[0])[1])


def poincare_cdist(x: torch.Tensor, y: torch.Tensor, c: float) -> torch.Tensor:
    """Geodesic distances between the rows of ``x`` and ``y`` in the Poincaré ball of curvature −c.

    Args:
        x: ``(B, D)`` points with ``‖x_i‖ < 1/√c``; float32 or float64 (half types are computed
            in float32).
        y: ``(N, D)`` points, same dtype and device as ``x``.
        c: curvature magnitude, a Python number in ``[MIN_CURVATURE, MAX_CURVATURE]``
            (``hyperdml.ops.MIN_CURVATURE`` = 1e-6, ``MAX_CURVATURE`` = 700).

    Returns:
        ``(B, N)`` distances ``d_c(x_i, y_j) = arccosh(1 + 2c‖x_i−y_j‖² / ((1−c‖x_i‖²)(1−c‖y_j‖²))) / √c``.
        Differentiable in ``x`` and ``y``, to any order (``create_graph=True``, ``torch.func``);
        the gradient at ``x_i == y_j`` is 0. First derivatives use the fused kernel; when a graph
        of the gradient is built, the closed-form gradient in plain PyTorch (``(B, N)`` temporaries).
        On CUDA in float32 with Triton installed, one Triton kernel computes the distances in its
        GEMM's epilogue (inner products from TF32 tensor cores in three passes, ``tf32x3``, on
        GPUs that have them: float32 accuracy, see ``docs/ops.md``).

    Raises:
        TypeError / ValueError naming the problem: wrong rank or mismatched D, integer or mixed
        dtypes, different devices, ``c`` out of range or not a number, NaN/Inf, a point on or
        outside the boundary.
    """
    c = _checks.check_curvature(c)
    _checks.check_points(x, "x")
    _checks.check_points(y, "y", dim=x.shape[1])
    x, y = _checks.upcast_half(x, y)
    _checks.check_same({"x": x, "y": y})
    if torch.is_grad_enabled() and (x.requires_grad or y.requires_grad):  # also true under torch.func.grad
        return _PoincareCdist.apply(x, y, c)
    return _ops_for(x)[0](x, y, c)  # no autograd.Function overhead (~35 us)
