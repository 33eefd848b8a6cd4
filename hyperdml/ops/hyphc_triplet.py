"""``hyperdml.ops.hyphc_triplet_loss``: HypHC's triplet loss, fused.

The op ``hyperdml::hyphc_triplet_loss`` has compiled CPU and CUDA kernels
(``csrc/hyphc_triplet``) that compute the three LCA depths of each triplet in closed form, the
softmax and the loss in one pass, and scatter the gradient into the points without any
``(T, 3, D)`` gather. Its backward is ``hyperdml::hyphc_triplet_loss_backward``, which computes
the forward again.

When a gradient will be taken on the CPU, :func:`hyphc_triplet_loss` calls
``hyperdml::hyphc_triplet_loss_and_sum_grads`` instead, which also returns the gradients of the
summed loss from the same pass: points ``(P, D)`` in their dtype (float32 sums flushed into
float64, docs/reliability.md) and, when the similarities need one, sims ``(T, 3)`` in float64.
The gradient of a loss whose incoming gradient is one value (a mean's or a sum's, the usual case)
is that times them; any other incoming gradient goes through
``hyperdml::hyphc_triplet_loss_backward``. Without the extension every op falls back to the
references in :mod:`hyperdml.ops.reference`.
"""

from __future__ import annotations

import torch

from hyperdml._extension import HAS_EXTENSION, has_kernel
from hyperdml.ops import _checks, _library
from hyperdml.ops.reference import (
    hyphc_triplet_loss_backward_reference,
    hyphc_triplet_loss_reference,
)


def _forward_fallback(points, triplets, sims, c, tau):
    _checks.check_hyphc_args(points, triplets, sims, c, tau)
    _checks.check_hyphc_values(points, triplets, sims, c)
    return hyphc_triplet_loss_reference(points, triplets, sims, c, tau)


def _backward_fallback(grad, points, triplets, sims, c, tau):
    _checks.check_hyphc_args(points, triplets, sims, c, tau)
    _checks.check_hyphc_grad(grad, points, triplets)
    _checks.check_hyphc_values(points, triplets, sims, c)
    return hyphc_triplet_loss_backward_reference(grad, points, triplets, sims, c, tau)


def _sum_grads_fallback(points, triplets, sims, c, tau, sims_grad):
    _checks.check_hyphc_args(points, triplets, sims, c, tau)
    _checks.check_hyphc_values(points, triplets, sims, c)
    ones = torch.ones(triplets.shape[0], dtype=points.dtype, device=points.device)
    grad_points, grad_sims = hyphc_triplet_loss_backward_reference(ones, points, triplets, sims, c, tau)
    grad_sims = grad_sims.double() if sims_grad else sims.new_empty((0, 3), dtype=torch.float64)
    return hyphc_triplet_loss_reference(points, triplets, sims, c, tau), grad_points, grad_sims


_SUM_GRADS_NAME = "hyperdml::hyphc_triplet_loss_and_sum_grads"
#: Devices with a compiled kernel of the forward that also sums the gradients (looked up before
#: the fallbacks fill the others in).
_SUM_GRADS_DEVICES = {key.lower() for key in ("CPU", "CUDA") if HAS_EXTENSION and has_kernel(_SUM_GRADS_NAME, key)}

_OP = _library.ensure_op(
    "hyphc_triplet_loss",
    "(Tensor points, Tensor triplets, Tensor sims, float c, float tau) -> Tensor",
    _forward_fallback,
)
_BACKWARD_OP = _library.ensure_op(
    "hyphc_triplet_loss_backward",
    "(Tensor grad, Tensor points, Tensor triplets, Tensor sims, float c, float tau) -> (Tensor, Tensor)",
    _backward_fallback,
)


_SUM_GRADS_OP = _library.ensure_op(
    "hyphc_triplet_loss_and_sum_grads",
    "(Tensor points, Tensor triplets, Tensor sims, float c, float tau, bool sims_grad) -> (Tensor, Tensor, Tensor)",
    _sum_grads_fallback,
)


@torch.library.register_fake(_OP)
def _forward_fake(points, triplets, sims, c, tau):
    _checks.check_hyphc_args(points, triplets, sims, c, tau)
    return points.new_empty((triplets.shape[0],))


@torch.library.register_fake(_BACKWARD_OP)
def _backward_fake(grad, points, triplets, sims, c, tau):
    _checks.check_hyphc_args(points, triplets, sims, c, tau)
    _checks.check_hyphc_grad(grad, points, triplets)
    return points.new_empty(points.shape), sims.new_empty(sims.shape)  # contiguous, as the kernels'


@torch.library.register_fake(_SUM_GRADS_OP)
def _sum_grads_fake(points, triplets, sims, c, tau, sims_grad):
    _checks.check_hyphc_args(points, triplets, sims, c, tau)
    return (
        points.new_empty((triplets.shape[0],)),
        points.new_empty(points.shape),
        points.new_empty((triplets.shape[0] if sims_grad else 0, 3), dtype=torch.float64),
    )


def _setup_context(ctx, inputs, output):
    points, triplets, sims, c, tau = inputs
    ctx.save_for_backward(points, triplets, sims)
    ctx.c, ctx.tau = c, tau


def _gradients(grad, points, triplets, sims, c, tau, need_points, need_sims):
    """``(grad_points, grad_sims)`` (``None`` where not needed) for the incoming gradient ``grad``."""
    if torch.is_grad_enabled():
        # A graph of the gradient is being built (create_graph=True, torch.func): the closed-form
        # gradient in plain PyTorch, whose own derivatives autograd takes exactly. Otherwise the
        # fused kernel.
        grad_points, grad_sims = hyphc_triplet_loss_backward_reference(grad, points, triplets, sims, c, tau)
    else:
        # The kernels take the incoming gradient with its stride (the mean's is one value, expanded).
        grad_points, grad_sims = torch.ops.hyperdml.hyphc_triplet_loss_backward(grad, points, triplets, sims, c, tau)
    return (grad_points if need_points else None), (grad_sims if need_sims else None)


def _backward(ctx, grad):
    points, triplets, sims = ctx.saved_tensors
    need_points, need_sims = ctx.needs_input_grad[0], ctx.needs_input_grad[2]
    if not (need_points or need_sims):
        return None, None, None, None, None
    grad_points, grad_sims = _gradients(grad, points, triplets, sims, ctx.c, ctx.tau, need_points, need_sims)
    return grad_points, None, grad_sims, None, None


def _backward_setup_context(ctx, inputs, output):
    grad, points, triplets, sims, c, tau = inputs
    ctx.save_for_backward(grad, points, triplets, sims)
    ctx.c, ctx.tau = c, tau


def _double_backward(ctx, grad_grad_points, grad_grad_sims):
    """Derivatives of the backward op itself, by autograd through its closed form."""
    grads = _library.reference_vjp(
        hyphc_triplet_loss_backward_reference, ctx.saved_tensors, ctx.needs_input_grad[:4],
        (grad_grad_points, grad_grad_sims), ctx.c, ctx.tau,
    )
    return (*grads, None, None)


_library.register_op_rules(_OP, _BACKWARD_OP, _backward, _setup_context, _double_backward, _backward_setup_context)


def _sum_grads_setup_context(ctx, inputs, output):
    points, triplets, sims, c, tau, sims_grad = inputs
    ctx.mark_non_differentiable(output[1], output[2])
    ctx.set_materialize_grads(False)  # no zeros for the gradients' gradients
    ctx.save_for_backward(points, triplets, sims, output[1], output[2])
    ctx.c, ctx.tau = c, tau


def _traced(t: torch.Tensor) -> bool:
    """Whether ``t`` is being traced or transformed (compile, export, AOT, fake, functional,
    ``torch.func``), where a branch on its values is not allowed."""
    from torch.fx.experimental.proxy_tensor import get_proxy_mode

    return (
        torch.compiler.is_compiling()
        or type(t) is not torch.Tensor
        or torch._C._functorch.is_functionaltensor(t)
        or torch._C._functorch.is_functorch_wrapped_tensor(t)
        or get_proxy_mode() is not None
    )


def _one_value(grad: torch.Tensor) -> torch.Tensor | None:
    """The value of an incoming gradient ``(T,)`` whose entries are all one finite number (a mean's
    or a sum's), else ``None``. Never while traced (``torch.compile``) or transformed
    (``torch.func``): that test depends on the data."""
    if grad.numel() == 0 or _traced(grad):
        return None
    if grad.stride(0) == 0 or grad.numel() == 1:
        value = grad[0]
    else:
        value, largest = torch.aminmax(grad)  # one pass; NaN makes both NaN, and NaN != NaN
        if not bool(value == largest):
            return None
    return value if bool(torch.isfinite(value)) else None


def _sum_grads_backward(ctx, grad, grad_grad_points, grad_grad_sims):
    """The gradients from those of the summed loss when the incoming gradient is one value, else
    from :func:`_backward`'s kernel (the summed gradients get no gradient of their own)."""
    points, triplets, sims, sum_grad_points, sum_grad_sims = ctx.saved_tensors
    need_points, need_sims = ctx.needs_input_grad[0], ctx.needs_input_grad[2]
    if grad is None or not (need_points or need_sims):
        return None, None, None, None, None, None
    value = None if torch.is_grad_enabled() else _one_value(grad)
    if value is None:
        grad_points, grad_sims = _gradients(grad, points, triplets, sims, ctx.c, ctx.tau, need_points, need_sims)
        return grad_points, None, grad_sims, None, None, None
    grad_points = sum_grad_points * value if need_points else None
    grad_sims = (sum_grad_sims * grad.double()[:, None]).to(sims.dtype) if need_sims else None
    return grad_points, None, grad_sims, None, None, None


torch.library.register_autograd(_SUM_GRADS_OP, _sum_grads_backward, setup_context=_sum_grads_setup_context)
_library.float32_under_autocast(_SUM_GRADS_OP)
_library.vmap_by_loop(_SUM_GRADS_OP)


class _HypHCTripletLoss(torch.autograd.Function):
    """The op with the same backward, as an ``autograd.Function`` that ``torch.func`` accepts."""

    generate_vmap_rule = True

    @staticmethod
    def forward(points, triplets, sims, c, tau):
        return torch.ops.hyperdml.hyphc_triplet_loss(points, triplets, sims, c, tau)

    setup_context = staticmethod(_setup_context)
    backward = staticmethod(_backward)


class _HypHCTripletLossSumGrads(torch.autograd.Function):
    """The same, through the forward that also sums the gradients; returns (loss, their gradients)."""

    generate_vmap_rule = True

    @staticmethod
    def forward(points, triplets, sims, c, tau, sims_grad):
        return torch.ops.hyperdml.hyphc_triplet_loss_and_sum_grads(points, triplets, sims, c, tau, sims_grad)

    setup_context = staticmethod(_sum_grads_setup_context)
    backward = staticmethod(_sum_grads_backward)


def hyphc_triplet_loss(
    points: torch.Tensor,
    triplets: torch.Tensor,
    sims: torch.Tensor,
    c: float,
    tau: float = 0.05,
) -> torch.Tensor:
    """Per-triplet HypHC loss (Chami et al., NeurIPS 2020).

    Args:
        points: ``(P, D)`` points in the ball of curvature −c (``‖z‖ < 1/√c``), float32/float64.
        triplets: ``(T, 3)`` int64 indices ``(i, j, k)`` into ``points``; repeated indices are legal.
        sims: ``(T, 3)`` similarities of the pairs ``(ij, ik, jk)``, same dtype as ``points``.
        c: curvature magnitude, a Python number in ``[MIN_CURVATURE, MAX_CURVATURE]``
            (``hyperdml.ops.MIN_CURVATURE`` = 1e-6, ``MAX_CURVATURE`` = 700).
        tau: softmax temperature, a Python number ``>= MIN_TEMPERATURE`` (1e-30); as ``tau → 0``
            the loss tends to its hard-max limit, which tiny values compute exactly (tied depths
            share the weight).

    Returns:
        ``(T,)`` losses ``Σ s − s · softmax(δ / τ)`` with ``δ = (δ(z_i∨z_j), δ(z_i∨z_k), δ(z_j∨z_k))``,
        ``δ(a∨b)`` the distance from the origin to the geodesic through a and b. At ``c = 1`` this
        is HypHC's ``HypHC.loss`` per triplet, before its mean. Differentiable in ``points`` and
        ``sims``, to any order (``create_graph=True``, ``torch.func``). First derivatives use the
        fused kernel (on the CPU, the forward then also sums the gradient for an incoming gradient
        of ones in the same pass, so the backward of a mean or a sum of the losses only scales
        it); when a graph of the gradient is built, the closed-form gradient in plain PyTorch
        (``(T, 3, D)`` temporaries).

    Raises:
        TypeError / ValueError naming the problem: shapes, dtypes, devices, ``c`` or ``tau`` out
        of range or not a number, NaN/Inf, points outside the ball, indices out of range.
    """
    c = _checks.check_curvature(c)
    tau = _checks.check_temperature(tau)
    _checks.check_points(points, "points")
    if not isinstance(triplets, torch.Tensor) or triplets.dtype != torch.int64:
        raise TypeError(f"triplets must be an int64 tensor, got {getattr(triplets, 'dtype', type(triplets))}")
    if triplets.dim() != 2 or triplets.shape[1] != 3:
        raise ValueError(f"triplets must have shape (T, 3), got {tuple(triplets.shape)}")
    if not isinstance(sims, torch.Tensor) or sims.shape != triplets.shape:
        raise ValueError(
            f"sims must have the shape of triplets {tuple(triplets.shape)}, got {tuple(getattr(sims, 'shape', ()))}"
        )
    points, sims = _checks.upcast_half(points, sims)
    _checks.check_same({"points": points, "sims": sims})
    if triplets.device != points.device:
        raise ValueError(f"points is on {points.device} but triplets is on {triplets.device}")
    if torch.is_grad_enabled() and (points.requires_grad or sims.requires_grad):  # also under torch.func.grad
        # Compiled graphs take the plain op: their backward cannot branch on the incoming gradient.
        if points.device.type in _SUM_GRADS_DEVICES and not torch.compiler.is_compiling():
            return _HypHCTripletLossSumGrads.apply(points, triplets, sims, c, tau, sims.requires_grad)[0]
        return _HypHCTripletLoss.apply(points, triplets, sims, c, tau)
    return torch.ops.hyperdml.hyphc_triplet_loss(points, triplets, sims, c, tau)  # no autograd.Function overhead
