"""Input checks shared by the ops: clear Python errors instead of NaNs or crashes.

Metadata checks (rank, shape, dtype, device) run in the Python face of each op and are free
under ``torch.compile``. Value checks (NaN, points outside the ball) need the data; the compiled
kernels make them in C++ and the reference fallback makes them here.

The ``check_*_args`` functions repeat the compiled kernels' own checks (``csrc/common.cpp``),
with the same messages, for the fake kernels (``torch.compile`` tracing) and the fallback kernels.
"""

from __future__ import annotations

import math
import numbers

import torch

FLOAT_TYPES = (torch.float32, torch.float64)
HALF_TYPES = (torch.float16, torch.bfloat16)

#: Smallest accepted curvature magnitude. geoopt stores c as ``log(exp(c) − 1)``: its relative
#: error is about 2e-16 / c (2e-10 here) and reaches 100 % below c ≈ 1e-16.
MIN_CURVATURE = 1e-6
#: Largest accepted curvature magnitude. geoopt's stored ``log(exp(c) − 1)`` overflows to ``inf``
#: from c ≈ 709.78 in float64 (``exp`` overflows), which maps every point to the origin.
MAX_CURVATURE = 700.0
#: Smallest accepted softmax temperature of ``hyphc_triplet_loss``: ``1/τ`` stays finite in
#: float32 (and ``τ`` a normal float32), so every code path computes the softmax limit exactly.
MIN_TEMPERATURE = 1e-30

_CURVATURE_RULE = (
    f"curvature c must be a finite number > 0, within [{MIN_CURVATURE:g}, {MAX_CURVATURE:g}] "
    "(outside it geoopt's stored curvature loses its precision or overflows)"
)
_TEMPERATURE_RULE = f"temperature tau must be a finite number >= {MIN_TEMPERATURE:g}"



def _number(value, name: str, what: str) -> float:
    """``value`` as a float if it is a real number (a tensor or a bool is not), else ``TypeError``."""
    if isinstance(value, torch.Tensor):
        raise TypeError(
            f"{what} {name} must be a Python number, not a tensor: it is a fixed hyperparameter, "
            f"not learnable (pass float({name}))"
        )
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{what} {name} must be a Python number, got {type(value).__name__}")
    return float(value)


def check_curvature(c) -> float:
    """``c`` as a Python float; raises unless it is a real number in
    ``[MIN_CURVATURE, MAX_CURVATURE]`` (``TypeError`` for a tensor, a bool or a non-number)."""
    value = _number(c, "c", "curvature")
    if not MIN_CURVATURE <= value <= MAX_CURVATURE:
        raise ValueError(f"{_CURVATURE_RULE}, got {value:.8g}")
    return value


def check_temperature(tau) -> float:
    """``tau`` as a Python float; raises unless it is a real number in ``[MIN_TEMPERATURE, inf)``."""
    value = _number(tau, "tau", "temperature")
    if not (value >= MIN_TEMPERATURE and math.isfinite(value)):
        raise ValueError(f"{_TEMPERATURE_RULE}, got {value:.8g}")
    return value


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
            f"-{c:.8g}: max norm {sq.max().sqrt().item():.8g} >= 1/sqrt(c) = {c ** -0.5:.8g} "
            "(project or clip it first, e.g. hyperdml.geometry.project)"
        )


def check_finite(t: torch.Tensor, name: str) -> None:
    """No NaN or Inf in ``t`` (data-dependent)."""
    if t.numel() and not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name} contains NaN or Inf")


# -- the kernels' own checks, repeated (metadata only) ------------------------------------------


def _dtype(t: torch.Tensor) -> str:
    return str(t.dtype)


def _shape(t: torch.Tensor) -> str:
    return str(tuple(t.shape))


def _op_points(t: torch.Tensor, name: str) -> None:
    if t.dim() != 2:
        raise ValueError(f"{name} must have shape (rows, D), got shape {_shape(t)}")
    if t.dtype not in FLOAT_TYPES:
        raise TypeError(f"{name} must be float32 or float64, got {_dtype(t)}")


def _op_same(a: torch.Tensor, a_name: str, b: torch.Tensor, b_name: str) -> None:
    if a.device != b.device:
        raise ValueError(f"{a_name} is on {a.device} but {b_name} is on {b.device}")
    if a.dtype != b.dtype:
        raise TypeError(f"{a_name} is {_dtype(a)} but {b_name} is {_dtype(b)}; pass one dtype")


def check_float32(t: torch.Tensor, name: str) -> None:
    """``t`` is float32 (the Triton kernels' one dtype)."""
    if t.dtype != torch.float32:
        raise TypeError(f"{name} must be float32 for the fused Triton kernels, got {_dtype(t)}")


def check_cdist_args(x: torch.Tensor, y: torch.Tensor, c: float) -> None:
    """Arguments of ``hyperdml::poincare_cdist``: two float ``(rows, D)`` tensors, one dtype."""
    check_curvature(c)
    _op_points(x, "x")
    _op_points(y, "y")
    _op_same(x, "x", y, "y")
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"x has D={x.shape[1]} but y has D={y.shape[1]}")


def check_cdist_backward_args(grad, x, y, dist, c: float) -> None:
    """Arguments of ``hyperdml::poincare_cdist_backward``: the forward's, and grad, dist ``(B, N)``."""
    check_cdist_args(x, y, c)
    shape = (x.shape[0], y.shape[0])
    if tuple(grad.shape) != shape or tuple(dist.shape) != shape:
        raise ValueError(
            f"grad and dist must have shape {shape}, got {_shape(grad)} and {_shape(dist)}"
        )
    _op_same(x, "x", grad, "grad")
    _op_same(x, "x", dist, "dist")


def check_hyphc_args(points, triplets, sims, c: float, tau: float) -> None:
    """Arguments of ``hyperdml::hyphc_triplet_loss``: shapes, dtypes and devices."""
    check_curvature(c)
    check_temperature(tau)
    _op_points(points, "points")
    if triplets.dtype != torch.int64:
        raise TypeError(f"triplets must be int64, got {_dtype(triplets)}")
    if triplets.dim() != 2 or triplets.shape[1] != 3:
        raise ValueError(f"triplets must have shape (T, 3), got {_shape(triplets)}")
    if sims.shape != triplets.shape:
        raise ValueError(f"sims must have the shape of triplets {_shape(triplets)}, got {_shape(sims)}")
    _op_same(points, "points", sims, "sims")
    if triplets.device != points.device:
        raise ValueError(f"points is on {points.device} but triplets is on {triplets.device}")


def check_hyphc_grad(grad, points, triplets) -> None:
    """``grad`` of ``hyperdml::hyphc_triplet_loss_backward``: ``(T,)``, the dtype of the points."""
    if grad.dim() != 1 or grad.shape[0] != triplets.shape[0]:
        raise ValueError(f"grad must have shape ({triplets.shape[0]},), got {_shape(grad)}")
    _op_same(points, "points", grad, "grad")


def check_hyphc_values(points, triplets, sims, c: float) -> None:
    """Points in the ball, finite sims, indices in ``[0, P)`` (data-dependent)."""
    check_in_ball(points, c, "points")
    check_finite(sims, "sims")
    if triplets.numel():
        lo, hi = int(triplets.min()), int(triplets.max())
        if lo < 0 or hi >= points.shape[0]:
            raise ValueError(f"triplets has an index out of range [0, {points.shape[0]}): min {lo}, max {hi}")
