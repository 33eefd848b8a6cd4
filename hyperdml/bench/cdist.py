"""Benchmark cases of ``poincare_cdist(x (B, D), y (N, D), c) → (B, N)``.

Inputs: ``x`` and ``y`` with i.i.d. normal entries scaled by ``0.5/√D`` (norms near 0.5, well
inside the ball for the default ``c = 0.1``), and for forward+backward a random ``(B, N)``
upstream gradient ``g``; all from a fixed seed, so every competitor sees the same numbers.
Forward+backward returns the gradients of ``Σ g ⊙ d(x, y)`` with respect to ``x`` and ``y``.
"""

from __future__ import annotations

from typing import Any, Callable

import torch

from hyperdml.bench.competitors import forward_fn, matmul_forward, matmul_forward_backward

OP = "cdist"
OP_NAME = "poincare_cdist"
SHAPE_KEYS = ("B", "N", "D")
SWEEP_KEY = "N"
#: The default shapes (B = 256; N = 2 000: CUB with 10 proxies per class, 113 180: SOP) and the sweep.
FULL = {"B": [256], "N": [2000, 113180], "D": [128, 512], "sweep": [500, 2000, 8000, 32000, 113180]}
QUICK = {"B": [16], "N": [64], "D": [8], "sweep": [32, 64]}


def make_inputs(shape: dict, device: str, dtype: torch.dtype, seed: int = 0) -> dict[str, torch.Tensor]:
    """``{"x": (B, D), "y": (N, D), "g": (B, N)}`` on ``device`` in ``dtype``, from ``seed``."""
    b, n, d = shape["B"], shape["N"], shape["D"]
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(b, d, generator=gen) * (0.5 / d**0.5)
    y = torch.randn(n, d, generator=gen) * (0.5 / d**0.5)
    g = torch.randn(b, n, generator=gen)
    return {k: v.to(device=device, dtype=dtype) for k, v in {"x": x, "y": y, "g": g}.items()}


def build(competitor: str, inputs: dict, mode: str, settings: dict) -> Callable[[], Any]:
    """A no-argument callable running one forward (``mode="fwd"``) or forward+backward pass."""
    x, y, g, c = inputs["x"], inputs["y"], inputs["g"], float(settings["c"])
    if competitor == "matmul":
        if mode == "fwd":
            return lambda: matmul_forward(x, y)
        return lambda: matmul_forward_backward(x, y, g)
    f = forward_fn(OP, competitor, settings)
    if mode == "fwd":
        def run_fwd():
            with torch.no_grad():
                return f(x, y, c)
        return run_fwd
    xg, yg = x.clone().requires_grad_(True), y.clone().requires_grad_(True)
    return lambda: torch.autograd.grad(f(xg, yg, c), (xg, yg), g)


def outputs(competitor: str, inputs: dict, settings: dict, grad: bool = False) -> list[torch.Tensor]:
    """The competitor's output on ``inputs`` (and with ``grad``, its gradients wrt x and y)."""
    f = forward_fn(OP, competitor, settings)
    c = float(settings["c"])
    if not grad:
        with torch.no_grad():
            return [f(inputs["x"], inputs["y"], c)]
    xg, yg = inputs["x"].clone().requires_grad_(True), inputs["y"].clone().requires_grad_(True)
    out = f(xg, yg, c)
    return [out.detach(), *torch.autograd.grad(out, (xg, yg), inputs["g"])]
