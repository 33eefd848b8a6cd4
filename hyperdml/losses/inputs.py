"""The input checks every loss makes: numbers, embeddings ``(B, D)`` and labels ``(B,)``."""

from __future__ import annotations

import math

import torch

from hyperdml.spaces import EuclideanSpace, Space

__all__ = ["check_number", "check_embeddings", "check_inputs"]


def check_number(name: str, value, *, positive: bool = False, nonnegative: bool = False) -> float:
    """``value`` as a finite float (``> 0`` with ``positive``, ``>= 0`` with ``nonnegative``); raises
    ``ValueError`` naming ``name`` otherwise (NaN and Inf hyperparameters would silently make every
    loss NaN)."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    bound = " > 0" if positive else " >= 0" if nonnegative else ""
    if not math.isfinite(value) or (positive and not value > 0) or (nonnegative and not value >= 0):
        raise ValueError(f"{name} must be a finite number{bound}, got {value}")
    return value


def check_embeddings(embeddings, embedding_size: int, check_values: bool = True, name: str = "embeddings",
                     space: Space | None = None) -> None:
    """Validate ``embeddings (B, embedding_size)``: a floating, non-empty 2-D tensor and, with
    ``check_values``, finite and accepted by ``space`` (:meth:`~hyperdml.spaces.Space.check_inputs`).

    Raises ``TypeError`` or ``ValueError`` with a message naming the problem.
    """
    if not isinstance(embeddings, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(embeddings).__name__}")
    if embeddings.dim() != 2:
        raise ValueError(f"{name} must have shape (batch, {embedding_size}), got {tuple(embeddings.shape)}")
    if not embeddings.is_floating_point():
        raise TypeError(f"{name} must be a floating tensor, got {embeddings.dtype}")
    if embeddings.shape[0] == 0:
        raise ValueError(f"empty batch: {name} has shape {tuple(embeddings.shape)}; a loss needs at least one sample")
    if embeddings.shape[1] != embedding_size:
        raise ValueError(
            f"{name} has dimension {embeddings.shape[1]} but the loss was built with embedding_size={embedding_size}"
        )
    if check_values:
        (space or EuclideanSpace()).check_inputs(embeddings, name)


def check_inputs(
    embeddings, labels, embedding_size: int, num_classes: int, check_values: bool = True, name: str = "embeddings",
    space: Space | None = None,
) -> torch.Tensor:
    """Validate ``embeddings (B, embedding_size)`` and ``labels (B,)``; return the labels as int64.

    Raises ``TypeError`` (not a tensor, non-floating embeddings, non-integer labels) or
    ``ValueError`` (shapes, empty batch, and with ``check_values``: NaN/Inf embeddings,
    embeddings the ``space`` cannot take (:meth:`~hyperdml.spaces.Space.check_inputs`, e.g. points
    outside the ball for ``PoincareSpace(inputs="ball")``), labels outside ``[0, num_classes)``)
    with a message naming the problem.
    """
    check_embeddings(embeddings, embedding_size, False, name)
    if labels is None:
        raise ValueError("labels are required: a proxy loss compares each embedding with its class's proxies")
    if not isinstance(labels, torch.Tensor):
        raise TypeError(f"labels must be a torch.Tensor, got {type(labels).__name__}")
    if labels.dtype == torch.bool or labels.is_floating_point() or labels.is_complex():
        raise TypeError(f"labels must be an integer tensor (class indices), got {labels.dtype}")
    if labels.dim() != 1:
        raise ValueError(f"labels must have shape (batch,), got {tuple(labels.shape)}")
    if labels.shape[0] != embeddings.shape[0]:
        raise ValueError(f"{name} has {embeddings.shape[0]} rows but labels has {labels.shape[0]}")
    labels = labels.to(embeddings.device)  # as PML: labels may come straight from a CPU loader
    if check_values:
        (space or EuclideanSpace()).check_inputs(embeddings, name)
        lo, hi = int(labels.min()), int(labels.max())
        if lo < 0 or hi >= num_classes:
            raise ValueError(f"labels must lie in [0, {num_classes}), got min {lo}, max {hi}")
    return labels.long()
