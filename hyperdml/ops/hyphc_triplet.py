"""``hyperdml.ops.hyphc_triplet_loss``: HypHC's triplet loss, fused.

The op ``hyperdml::hyphc_triplet_loss`` has compiled CPU and CUDA kernels
(``csrc/hyphc_triplet``) that compute the three LCA depths of each triplet in closed form, the
softmax and the loss in one pass, and scatter the gradient into the points without any
``(T, 3, D)`` gather. Its backward is ``hyperdml::hyphc_triplet_loss_backward``, which computes
the forward again.

When a gradient will be taken on the CPU, :func:`hyphc_triplet_loss` calls
``hyperdml::hyphc_triplet_loss_and_coeffs`` instead, which also returns nine float64 backward
coefficients per triplet (72 bytes: 72 MB at T = 10⁶), and its backward
``hyperdml::hyphc_triplet_loss_backward_from_coeffs`` only scales them by the incoming gradient
and adds them into the points. Without the extension every op falls back to the references in
:mod:`hyperdml.ops.reference`.
"""

from __future__ import annotations

import torch

from hyperdml._extension import HAS_EXTENSION, has_kernel
from hyperdml.ops import _checks, _library
from hyperdml.ops.reference import (
    hyphc_triplet_coeffs_reference,
    hyphc_triplet_loss_backward_from_coeffs_reference,
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


def _with_coeffs_fallback(points, triplets, sims, c, tau):
    _checks.check_hyphc_args(points, triplets, sims, c, tau)
    _checks.check_hyphc_values(points, triplets, sims, c)
    return (
        hyphc_triplet_loss_reference(points, triplets, sims, c, tau),
        hyphc_triplet_coeffs_reference(points, triplets, sims, c, tau),
    )


def _from_coeffs_fallback(grad, points, triplets, sims, coeffs, c, tau):
    _checks.check_hyphc_args(points, triplets, sims, c, tau)
    _checks.check_hyphc_grad(grad, points, triplets)
    _checks.check_hyphc_coeffs(coeffs, triplets)
    _checks.check_hyphc_values(points, triplets, sims, c)
    return hyphc_triplet_loss_backward_from_coeffs_reference(grad, points, triplets, coeffs)


_WITH_COEFFS_NAME = "hyperdml::hyphc_triplet_loss_and_coeffs"
#: Devices with a compiled kernel of the coefficient-saving forward (looked up before the
#: fallbacks fill the others in).
_SAVING_DEVICES = {key.lower() for key in ("CPU", "CUDA") if HAS_EXTENSION and has_kernel(_WITH_COEFFS_NAME, key)}

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


_WITH_COEFFS_OP = _library.ensure_op(
    "hyphc_triplet_loss_and_coeffs",
    "(Tensor points, Tensor triplets, Tensor sims, float c, float tau) -> (Tensor, Tensor)",
    _with_coeffs_fallback,
)
_FROM_COEFFS_OP = _library.ensure_op(
    "hyphc_triplet_loss_backward_from_coeffs",
    "(Tensor grad, Tensor points, Tensor triplets, Tensor sims, Tensor coeffs, float c, float tau) -> (Tensor, Tensor)",
    _from_coeffs_fallback,
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


@torch.library.register_fake(_WITH_COEFFS_OP)
def _with_coeffs_fake(points, triplets, sims, c, tau):
    _checks.check_hyphc_args(points, triplets, sims, c, tau)
    return points.new_empty((triplets.shape[0],)), points.new_empty((triplets.shape[0], 9), dtype=torch.float64)


@torch.library.register_fake(_FROM_COEFFS_OP)
def _from_coeffs_fake(grad, points, triplets, sims, coeffs, c, tau):
    _checks.check_hyphc_args(points, triplets, sims, c, tau)
    _checks.check_hyphc_grad(grad, points, triplets)
    _checks.check_hyphc_coeffs(coeffs, triplets)
    return points.new_empty(points.shape), sims.new_empty(sims.shape)


def _setup_context(ctx, inputs, output):
    points, triplets, sims, c, tau = inputs
    ctx.save_for_backward(points, triplets, sims)
    ctx.c, ctx.tau = c, tau


def _backward(ctx, grad):
    points, triplets, sims = ctx.saved_tensors
    need_points, need_sims = ctx.needs_input_grad[0], ctx.needs_input_grad[2]
    if not (need_points or need_sims):
        return None, None, None, None, None
    if torch.is_grad_enabled():
        # A graph of the gradient is being built (create_graph=True, torch.func): the closed-form
        # gradient in plain PyTorch, whose own derivatives autograd takes exactly. Otherwise the
        # fused kernel.
        grad_points, grad_sims = hyphc_triplet_loss_backward_reference(grad, points, triplets, sims, ctx.c, ctx.tau)
    else:
        # The kernels take the incoming gradient with its stride (the mean's is one value, expanded).
        grad_points, grad_sims = torch.ops.hyperdml.hyphc_triplet_loss_backward(
            grad, points, triplets, sims, ctx.c, ctx.tau
        )
    return (grad_points if need_points else None), None, (grad_sims if need_sims else None), None, None


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


def _with_coeffs_setup_context(ctx, inputs, output):
    points, triplets, sims, c, tau = inputs
    ctx.mark_non_differentiable(output[1])
    ctx.set_materialize_grads(False)  # no (T, 9) zeros for the coefficients' gradient
    ctx.save_for_backward(points, triplets, sims, output[1])
    ctx.c, ctx.tau = c, tau


def _with_coeffs_backward(ctx, grad, grad_coeffs):
    """As :func:`_backward`, from the saved coefficients (the coefficients get no gradient)."""
    points, triplets, sims, coeffs = ctx.saved_tensors
    need_points, need_sims = ctx.needs_input_grad[0], ctx.needs_input_grad[2]
    if grad is None or not (need_points or need_sims):
        return None, None, None, None, None
    if torch.is_grad_enabled():  # a graph of the gradient: see _backward
        grad_points, grad_sims = hyphc_triplet_loss_backward_reference(grad, points, triplets, sims, ctx.c, ctx.tau)
    else:
        grad_points, grad_sims = torch.ops.hyperdml.hyphc_triplet_loss_backward_from_coeffs(
            grad, points, triplets, sims, coeffs, ctx.c, ctx.tau
        )
    return (grad_points if need_points else None), None, (grad_sims if need_sims else None), None, None


def _from_coeffs_setup_context(ctx, inputs, output):
    grad, points, triplets, sims, coeffs, c, tau = inputs
    ctx.save_for_backward(grad, points, triplets, sims)
    ctx.c, ctx.tau = c, tau


def _from_coeffs_double_backward(ctx, grad_grad_points, grad_grad_sims):
    """Derivatives of the backward from coefficients: those of the backward it equals (the
    coefficients are a function of the other inputs, and get no gradient of their own)."""
    return (*_double_backward(ctx, grad_grad_points, grad_grad_sims)[:4], None, None, None)


_library.register_op_rules(
    _WITH_COEFFS_OP, _FROM_COEFFS_OP, _with_coeffs_backward, _with_coeffs_setup_context,
    _from_coeffs_double_backward, _from_coeffs_setup_context,
)


class _HypHCTripletLoss(torch.autograd.Function):
    """The op with the same backward, as an ``autograd.Function`` that ``torch.func`` accepts."""

    generate_vmap_rule = True

    @staticmethod
    def forward(points, triplets, sims, c, tau):
        return torch.ops.hyperdml.hyphc_triplet_loss(points, triplets, sims, c, tau)

    setup_context = staticmethod(_setup_context)
    backward = staticmethod(_backward)


class _HypHCTripletLossSaving(torch.autograd.Function):
    """The same, through the forward that saves the backward coefficients; returns (loss, coeffs)."""

    generate_vmap_rule = True

    @staticmethod
    def forward(points, triplets, sims, c, tau):
        return torch.ops.hyperdml.hyphc_triplet_loss_and_coeffs(points, triplets, sims, c, tau)

    setup_context = staticmethod(_with_coeffs_setup_context)
    backward = staticmethod(_with_coeffs_backward)


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
        fused kernel (on the CPU, the forward then also keeps nine float64 coefficients per
        triplet, ``72·T`` bytes, so the backward need not compute it again); when a graph of the
        gradient is built, the closed-form gradient in plain PyTorch (``(T, 3, D)`` temporaries).

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
        if points.device.type in _SAVING_DEVICES:
            return _HypHCTripletLossSaving.apply(points, triplets, sims, c, tau)[0]
        return _HypHCTripletLoss.apply(points, triplets, sims, c, tau)
    return torch.ops.hyperdml.hyphc_triplet_loss(points, triplets, sims, c, tau)  # no autograd.Function overhead
