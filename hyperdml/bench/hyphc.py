"""Benchmark cases of ``hyphc_triplet_loss(points (P, D), triplets (T, 3), sims (T, 3), c, tau) → (T,)``.

Inputs: ``points`` with normal entries scaled by ``0.5/√D`` (inside the unit ball for the default
``c = 1``), ``T`` random index triplets and similarities uniform in [0, 1), from a fixed seed.
Forward+backward returns the gradient of the mean loss with respect to ``points`` (HypHC learns
the points; the similarities are data).
"""

from __future__ import annotations

from typing import Any, Callable

import torch

from hyperdml.bench.competitors import forward_fn

OP = "hyphc"
OP_NAME = "hyphc_triplet_loss"
SHAPE_KEYS = ("P", "D", "T")
SWEEP_KEY = "T"
#: The default shapes (P = 2 000, D = 64, T = 10⁵ and 10⁶) and the sweep over T.
FULL = {"P": [2000], "D": [64], "T": [100_000, 1_000_000], "sweep": [10_000, 30_000, 100_000, 300_000, 1_000_000]}
QUICK = {"P": [50], "D": [8], "T": [1000], "sweep": [300, 1000]}


def make_inputs(shape: dict, device: str, dtype: torch.dtype, seed: int = 0) -> dict[str, torch.Tensor]:
    """``{"points": (P, D), "triplets": (T, 3) int64, "sims": (T, 3)}`` on ``device``, from ``seed``."""
    p, d, t = shape["P"], shape["D"], shape["T"]
    gen = torch.Generator().manual_seed(seed)
    points = torch.randn(p, d, generator=gen) * (0.5 / d**0.5)
    triplets = torch.randint(0, p, (t, 3), generator=gen)
    sims = torch.rand(t, 3, generator=gen)
    return {
        "points": points.to(device=device, dtype=dtype),
        "triplets": triplets.to(device),
        "sims": sims.to(device=device, dtype=dtype),
    }


def build(competitor: str, inputs: dict, mode: str, settings: dict) -> Callable[[], Any]:
    """A no-argument callable: the loss (``mode="fwd"``) or the gradient of its mean wrt the points."""
    f = forward_fn(OP, competitor, settings)
    c, tau = float(settings["c"]), float(settings["tau"])
    points, triplets, sims = inputs["points"], inputs["triplets"], inputs["sims"]
    if mode == "fwd":
        def run_fwd():
            with torch.no_grad():
                return f(points, triplets, sims, c, tau)
        return run_fwd
    pg = points.clone().requires_grad_(True)
    return lambda: torch.autograd.grad(f(pg, triplets, sims, c, tau).mean(), pg)


def outputs(competitor: str, inputs: dict, settings: dict, grad: bool = False) -> list[torch.Tensor]:
    """The competitor's losses ``(T,)`` (and with ``grad``, the gradient of their mean wrt the points)."""
    f = forward_fn(OP, competitor, settings)
    c, tau = float(settings["c"]), float(settings["tau"])
    if not grad:
        with torch.no_grad():
            return [f(inputs["points"], inputs["triplets"], inputs["sims"], c, tau)]
    pg = inputs["points"].clone().requires_grad_(True)
    out = f(pg, inputs["triplets"], inputs["sims"], c, tau)
    return [out.detach(), *torch.autograd.grad(out.mean(), pg)]
