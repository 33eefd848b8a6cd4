"""``hyperdml.ops.hyphc_triplet_loss``: HypHC's triplet loss, fused.

The op ``hyperdml::hyphc_triplet_loss`` has compiled CPU and CUDA kernels
(``csrc/hyphc_triplet``) that compute the three LCA depths of each triplet in closed form, the
softmax and the loss in one pass, and scatter the gradient into the points without any
``(T, 3, D)`` gather. Its backward is ``hyperdml::hyphc_triplet_loss_backward``. Without the
extension both fall back to the references in :mod:`hyperdml.ops.reference`.
"""

from __future__ import annotations

import torch

from hyperdml.ops import _checks, _library
from hyperdml.ops.reference import hyphc_triplet_loss_backward_reference, hyphc_triplet_loss_reference


def _check_values(points, triplets, c):
    _checks.check_in_ball(points, c, "points")
    if triplets.numel() and (bool((triplets < 0).any()) or bool((triplets >= points.shape[0]).any())):
        raise ValueError(
            f"triplets has an index out of range [0, {points.shape[0]}): "
            f"min {int(triplets.min())}, max {int(triplets.max())}"
        )


def _forward_fallback(points, triplets, sims, c, tau):
    _check_values(points, triplets, c)
    if not bool(torch.isfinite(sims).all()):
        raise ValueError("sims contains NaN or Inf")
    return hyphc_triplet_loss_reference(points, triplets, sims, c, tau)


def _backward_fallback(grad, points, triplets, sims, c, tau):
    return hyphc_triplet_loss_backward_reference(grad, points, triplets, sims, c, tau)


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


@torch.library.register_fake(_OP)
def _forward_fake(points, triplets, sims, c, tau):
    return points.new_empty((triplets.shape[0],))


@torch.library.register_fake(_BACKWARD_OP)
def _backward_fake(grad, points, triplets, sims, c, tau):
    return torch.empty_like(points), torch.empty_like(sims)


def _setup_context(ctx, inputs, output):
    points, triplets, sims, c, tau = inputs
    ctx.save_for_backward(points, triplets, sims)
    ctx.c, ctx.tau = c, tau


def _backward(ctx, grad):
    points, triplets, sims = ctx.saved_tensors
    if not (ctx.needs_input_grad[0] or ctx.needs_input_grad[2]):
        return None, None, None, None, None
    grad_points, grad_sims = torch.ops.hyperdml.hyphc_triplet_loss_backward(
        grad.contiguous(), points, triplets, sims, ctx.c, ctx.tau
    )
    return (
        grad_points if ctx.needs_input_grad[0] else None,
        None,
        grad_sims if ctx.needs_input_grad[2] else None,
        None,
        None,
    )


torch.library.register_autograd(_OP, _backward, setup_context=_setup_context)


def hyphc_triplet_loss(
    points: torch.Tensor,
    triplets: torch.Tensor,
    sims: torch.Tensor,
    c: float = 1.0,
    tau: float = 0.05,
) -> torch.Tensor:
    """Per-triplet HypHC loss (Chami et al., NeurIPS 2020).

    Args:
        points: ``(P, D)`` points in the ball of curvature −c (``‖z‖ < 1/√c``), float32/float64.
        triplets: ``(T, 3)`` int64 indices ``(i, j, k)`` into ``points``; repeated indices are legal.
        sims: ``(T, 3)`` similarities of the pairs ``(ij, ik, jk)``, same dtype as ``points``.
        c: curvature magnitude, ``c > 0``.
        tau: softmax temperature, ``tau > 0``.

    Returns:
        ``(T,)`` losses ``Σ s − s · softmax(δ / τ)`` with ``δ = (δ(z_i∨z_j), δ(z_i∨z_k), δ(z_j∨z_k))``,
        ``δ(a∨b)`` the distance from the origin to the geodesic through a and b. At ``c = 1`` this
        is HypHC's ``HypHC.loss`` per triplet, before its mean. Differentiable in ``points`` and
        ``sims``.
    """
    c = _checks.check_curvature(c)
    tau = float(tau)
    if not (tau > 0 and tau < float("inf")):
        raise ValueError(f"temperature tau must be a finite number > 0, got {tau}")
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
    return torch.ops.hyperdml.hyphc_triplet_loss(points, triplets, sims, c, tau)
