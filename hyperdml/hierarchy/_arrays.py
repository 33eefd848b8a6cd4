"""Array helpers of the hierarchy tools: float64 NumPy views of tensors or arrays, unit rows."""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["as_float_array", "unit_rows"]


def as_float_array(x, name: str = "features") -> np.ndarray:
    """Tensor or array → float64 ``(P, D)`` NumPy array; ``ValueError`` for another rank or NaN/Inf."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().double().numpy()
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"{name} must have shape (P, D), got {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or Inf")
    return x


def unit_rows(x) -> np.ndarray:
    """Rows of ``x (P, D)`` scaled to unit norm (zero rows stay 0), as float64."""
    x = as_float_array(x)
    scale = np.maximum(np.abs(x).max(axis=1, keepdims=True), 1e-300) if x.size else 1.0
    y = x / scale
    return y / np.maximum(np.linalg.norm(y, axis=1, keepdims=True), 1e-300)
