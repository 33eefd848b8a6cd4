"""Input checks shared by the ops: clear Python errors instead of NaNs or crashes.

Metadata checks (rank, shape, dtype, device) run in the Python face of each op and are free
under ``torch.compile``. Value checks (NaN, points outside the ball) need the data; the compiled
kernels make them in C++ and the reference fallback makes them here.
"""

from __future__ import annotations

import torch

FLOAT_TYPES = (torch.float32, torch.float64)
HALF_TYPES = (torch.float16, torch.bfloat16)


def check_curvature(c: float) -> float:
    """``c`` as a Python float; raises ``ValueError`` unless it is finite and > 0."""
    if isinstance(c, torch.Tensor):
        raise TypeError("c must be a Python float, not a tensor")
    c = float(c)
    if not (c > 0 and c < float("inf")):
        raise ValueError(f"curvature c must be a finite number > 0, got {c}")
    return c


def check_points(t: torch.Tensor, name: str, dim: int | None = None) -> None:
    """``t`` is a floating ``(rows, D)`` tensor (``D == dim`` when given)."""
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if t.dim() != 2:
        raise ValueError(f"{name} must have shape (rows, D), got shape {tuple(t.shape)}")
    if not (t.dtype in FLOAT_TYPES or t.dtype in HALF_TYPES):
        raise TypeError(f"{name} must be float32 or float64, got {t.dtype}")
    if dim is not None and t.shape[1] != dim:
        raise ValueError(f"{name} has D={t.shape[1]}, expected D={dim}")


def upcast_half(*tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Half and bfloat16 become float32: hyperbolic math never runs in half precision."""
    return tuple(t.float() if t.dtype in HALF_TYPES else t for t in tensors)


def check_same(tensors: dict[str, torch.Tensor]) -> None:
    """All tensors share one dtype and one device."""
    names = list(tensors)
    first = tensors[names[0]]
    for name in names[1:]:
        t = tensors[name]
        if t.device != first.device:
            raise ValueError(f"{names[0]} is on {first.device} but {name} is on {t.device}")
        if t.dtype != first.dtype:
            raise TypeError(f"{names[0]} is {first.dtype} but {name} is {t.dtype}; pass one dtype")


def check_in_ball(t: torch.Tensor, c: float, name: str) -> None:
    """Every row of ``t`` is finite and strictly inside the ball ``‖·‖ < 1/√c`` (data-dependent)."""
    if t.numel() == 0:
        return
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name} contains NaN or Inf")
    sq = t.pow(2).sum(-1)
    if bool((c * sq >= 1).any()):
        raise ValueError(
            f"{name} has a point on or outside the boundary of the Poincaré ball of curvature "
            f"-{c}: max norm {sq.max().sqrt().item():.6g} >= 1/sqrt(c) = {c ** -0.5:.6g} "
            "(project or clip it first, e.g. hyperdml.geometry.project)"
        )
