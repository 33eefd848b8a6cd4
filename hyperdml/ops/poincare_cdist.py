"""``hyperdml.ops.poincare_cdist``: pairwise geodesic distances in the Poincaré ball.

The op ``hyperdml::poincare_cdist`` has compiled CPU and CUDA kernels (``csrc/poincare_cdist``)
that compute the inner products with one GEMM and fuse everything else, so neither forward nor
backward materialises a ``(B, N, D)`` tensor. Its backward is the op
``hyperdml::poincare_cdist_backward``. Without the extension both fall back to the references in
:mod:`hyperdml.ops.reference`.
"""

from __future__ import annotations

import torch

from hyperdml.ops import _checks, _library
from hyperdml.ops.reference import poincare_cdist_backward_reference, poincare_cdist_reference


def _forward_fallback(x: torch.Tensor, y: torch.Tensor, c: float) -> torch.Tensor:
    _checks.check_in_ball(x, c, "x")
    _checks.check_in_ball(y, c, "y")
    return poincare_cdist_reference(x, y, c)


def _backward_fallback(grad, x, y, dist, c):
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
    return x.new_empty((x.shape[0], y.shape[0]))


@torch.library.register_fake(_BACKWARD_OP)
def _backward_fake(grad, x, y, dist, c):
    return torch.empty_like(x), torch.empty_like(y)


def _setup_context(ctx, inputs, output):
    x, y, c = inputs
    ctx.save_for_backward(x, y, output)
    ctx.c = c


def _backward(ctx, grad):
    x, y, dist = ctx.saved_tensors
    need_x, need_y = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
    if not (need_x or need_y):
        return None, None, None
    grad_x, grad_y = torch.ops.hyperdml.poincare_cdist_backward(grad.contiguous(), x, y, dist, ctx.c)
    return (grad_x if need_x else None), (grad_y if need_y else None), None


torch.library.register_autograd(_OP, _backward, setup_context=_setup_context)
_library.float32_under_autocast(_OP)


def poincare_cdist(x: torch.Tensor, y: torch.Tensor, c: float = 1.0) -> torch.Tensor:
    """Geodesic distances between the rows of ``x`` and ``y`` in the Poincaré ball of curvature −c.

    Args:
        x: ``(B, D)`` points with ``‖x_i‖ < 1/√c``; float32 or float64 (half types are computed
            in float32).
        y: ``(N, D)`` points, same dtype and device as ``x``.
        c: curvature magnitude, ``c > 0``.

    Returns:
        ``(B, N)`` distances ``d_c(x_i, y_j) = arccosh(1 + 2c‖x_i−y_j‖² / ((1−c‖x_i‖²)(1−c‖y_j‖²))) / √c``.
        Differentiable in ``x`` and ``y``; the gradient at ``x_i == y_j`` is 0.

    Raises:
        TypeError / ValueError naming the problem: wrong rank or mismatched D, integer or mixed
        dtypes, different devices, ``c <= 0``, NaN/Inf, a point on or outside the boundary.
    """
    c = _checks.check_curvature(c)
    _checks.check_points(x, "x")
    _checks.check_points(y, "y", dim=x.shape[1])
    x, y = _checks.upcast_half(x, y)
    _checks.check_same({"x": x, "y": y})
    return torch.ops.hyperdml.poincare_cdist(x, y, c)
