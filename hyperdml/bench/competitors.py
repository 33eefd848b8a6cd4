"""What the two ops are benchmarked against: the same quantity computed other ways.

``poincare_cdist(x (B, D), y (N, D), c) → (B, N)``:

- ``hyperdml``: the op (:func:`hyperdml.ops.poincare_cdist`; on CUDA in float32 its fused
  Triton kernels when Triton is installed).
- ``hyperdml_gemm`` (CUDA only): the compiled op ``torch.ops.hyperdml.poincare_cdist``, a cuBLAS
  GEMM then one elementwise kernel, the path the function takes without Triton or in float64.
- ``matmul``: the bare matmuls of the same shapes, the roofline: ``x @ y.T`` forward; forward
  plus backward adds ``g @ y`` and ``g.T @ x`` (three GEMMs). Not the same quantity, so its
  output is not compared.
- ``torch``: the best plain-PyTorch form, :func:`poincare_cdist_plain` (one matmul plus
  elementwise ops, autograd backward), eager.
- ``compile``: the same function under ``torch.compile`` (compile time reported separately).
- ``geoopt``: ``geoopt.PoincareBall(c).dist`` on broadcast ``(B, 1, D)``/``(1, N, D)`` inputs,
  how geoopt, hyptorch and HIER users compute all pairs; it materialises ``(B, N, D)``
  tensors, so big shapes are skipped by the memory budget.

``hyphc_triplet_loss(points (P, D), triplets (T, 3), sims (T, 3), c, tau) → (T,)``:

- ``hyperdml``: the op; ``eager``: the pure-PyTorch formulation that gathers ``(T, 3, D)``
  copies (:func:`hyperdml.ops.reference.hyphc_triplet_loss_reference`, HypHC's way with the
  closed-form LCA depth); ``compile``: the same under ``torch.compile``.
- ``closed``: the loss written plainly in its closed form from three dot products per triplet
  (:func:`hyphc_triplet_loss_closed`), what a user would write; ``closed_compile``: the same under
  ``torch.compile``, the fastest plain-PyTorch competitor on the CPU.

Each competitor is a :class:`Competitor` whose ``forward`` has the op's signature, plus a
rough memory estimate used to skip cases that would not fit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from hyperdml.ops import hyphc_triplet_loss, poincare_cdist
from hyperdml.ops.reference import hyphc_triplet_loss_reference

__all__ = ["Competitor", "COMPETITORS", "poincare_cdist_plain", "poincare_cdist_geoopt", "hyphc_triplet_loss_closed",
           "compiled", "forward_fn"]


def poincare_cdist_plain(x: torch.Tensor, y: torch.Tensor, c: float) -> torch.Tensor:
    """Poincaré distances ``(B, N)`` from ``x (B, D)``, ``y (N, D)`` with one matmul + elementwise ops.

    ``‖x−y‖² = ‖x‖² + ‖y‖² − 2 x·y`` from one ``addmm`` (clamped at 0), then
    ``arccosh(1 + 2c‖x−y‖² / ((1−c‖x‖²)(1−c‖y‖²))) / √c``; the per-row and per-column factors
    are folded into two ``(B,)``/``(N,)`` vectors so the ``(B, N)`` work is a handful of
    elementwise ops. Autograd gives the backward.
    """
    xx = x.pow(2).sum(1)
    yy = y.pow(2).sum(1)
    sq = torch.addmm(xx[:, None] + yy[None, :], x, y.t(), alpha=-2).clamp_min(0)
    u = sq * ((2 * c) / (1 - c * xx))[:, None] * (1 / (1 - c * yy))[None, :]
    return torch.acosh(1 + u) / c**0.5


def poincare_cdist_geoopt(x: torch.Tensor, y: torch.Tensor, c: float) -> torch.Tensor:
    """``geoopt.PoincareBall(c).dist`` between all rows of ``x (B, D)`` and ``y (N, D)`` → ``(B, N)``.

    Broadcasts to ``(B, N, D)`` (Möbius addition per pair), as geoopt users do.
    """
    import geoopt

    return geoopt.PoincareBall(c=c).dist(x[:, None, :], y[None, :, :])


def hyphc_triplet_loss_closed(points: torch.Tensor, triplets: torch.Tensor, sims: torch.Tensor, c: float,
                              tau: float) -> torch.Tensor:
    """HypHC's per-triplet loss ``(T,)`` written plainly in its closed form.

    After scaling the points by √c, the LCA depth of a pair is
    ``tanh²(√c·δ) = (‖a‖²‖b‖² − (a·b)²) / ‖w_a·b − w_b·a‖²`` with ``w = (1 + ‖·‖²)/2``, where
    ``‖w_a·b − w_b·a‖² = w_a²‖b‖² − 2·w_a·w_b·(a·b) + w_b²‖a‖²``: three dot products per triplet
    from the gathered ``(T, D)`` rows and the points' squared norms; a pair of one point (a
    repeated index, ``den = 0``) has the point itself as LCA, ``tanh² = (2‖a‖/(1 + ‖a‖²))²``. No
    care for nearby points or the boundary (the clamps only keep it finite).
    """
    x = points * c**0.5
    norms = (x * x).sum(1)
    i, j, k = triplets.unbind(1)
    xi, xj, xk = x[i], x[j], x[k]
    ni, nj, nk = norms[i], norms[j], norms[k]

    def depth(na, nb, dot):
        wa, wb = (1 + na) / 2, (1 + nb) / 2
        num = na * nb - dot * dot
        den = wa * wa * nb - 2 * wa * wb * dot + wb * wb * na
        t2 = torch.where(den > 0, num / den.clamp_min(1e-30), 4 * na / (1 + na) ** 2).clamp(1e-30, 1 - 1e-7)
        return torch.atanh(t2.sqrt()) / c**0.5

    delta = torch.stack([depth(ni, nj, (xi * xj).sum(1)), depth(ni, nk, (xi * xk).sum(1)),
                         depth(nj, nk, (xj * xk).sum(1))], dim=1)
    weights = torch.softmax(delta / tau, dim=1)
    return sims.sum(1) - (sims * weights).sum(1)


def _poincare_cdist_gemm(x: torch.Tensor, y: torch.Tensor, c: float) -> torch.Tensor:
    """The compiled C++ op (GEMM + elementwise kernel, its C++ backward), never the Triton kernels."""
    return torch.ops.hyperdml.poincare_cdist(x, y, c)


def matmul_forward(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The forward roofline: ``x (B, D) @ y.T`` → ``(B, N)``."""
    return x @ y.t()


def matmul_forward_backward(x: torch.Tensor, y: torch.Tensor, g: torch.Tensor):
    """The forward+backward roofline: ``x @ y.T``, ``g @ y`` and ``g.T @ x`` (three GEMMs)."""
    return x @ y.t(), g @ y, g.t() @ x


def compiled(fn: Callable, backend: str = "inductor", mode: str | None = None) -> Callable:
    """``torch.compile(fn)`` with static shapes (every case runs one shape)."""
    return torch.compile(fn, dynamic=False, backend=backend, mode=mode)


@dataclass(frozen=True)
class Competitor:
    """One way to compute an op's output.

    ``forward``: same signature as the op (``None`` for the matmul roofline, built specially);
    ``compiled``: wrap ``forward`` in ``torch.compile``; ``comparable``: its output must equal
    the op's; ``memory``: ``(shape dict, mode, itemsize) → estimated peak bytes`` (factors
    measured on the CPU, rounded up; only used to skip cases that would not fit).
    """

    name: str
    label: str
    forward: Callable | None
    memory: Callable[[dict, str, int], float]
    compiled: bool = False
    comparable: bool = True
    needs: str | None = None  # module that must be importable
    devices: tuple[str, ...] = ("cpu", "cuda")  # device types where it differs from the others


def _bn(s):
    return s["B"] * s["N"]


COMPETITORS: dict[str, dict[str, Competitor]] = {
    "cdist": {
        "hyperdml": Competitor("hyperdml", "hyperdml op", poincare_cdist,
                               lambda s, m, k: (3 * _bn(s) + 2 * (s["B"] + s["N"]) * s["D"]) * k),
        "hyperdml_gemm": Competitor("hyperdml_gemm", "hyperdml C++ op (cuBLAS + elementwise)", _poincare_cdist_gemm,
                                    lambda s, m, k: (4 * _bn(s) + 2 * (s["B"] + s["N"]) * s["D"]) * k,
                                    devices=("cuda",)),
        "matmul": Competitor("matmul", "bare matmul(s) (roofline)", None,
                             lambda s, m, k: 2 * _bn(s) * k, comparable=False),
        "torch": Competitor("torch", "plain PyTorch, eager", poincare_cdist_plain,
                            lambda s, m, k: (6 if m == "fwd" else 18) * _bn(s) * k),
        "compile": Competitor("compile", "plain PyTorch, torch.compile", poincare_cdist_plain,
                              lambda s, m, k: (6 if m == "fwd" else 18) * _bn(s) * k, compiled=True),
        "geoopt": Competitor("geoopt", "geoopt PoincareBall.dist, broadcast", poincare_cdist_geoopt,
                             lambda s, m, k: (6 if m == "fwd" else 9) * _bn(s) * s["D"] * k, needs="geoopt"),
    },
    "hyphc": {
        "hyperdml": Competitor("hyperdml", "hyperdml op", hyphc_triplet_loss,
                               lambda s, m, k: 8 * s["T"] * k + 2 * s["P"] * s["D"] * k),
        "eager": Competitor("eager", "pure PyTorch, eager (HypHC's way)", hyphc_triplet_loss_reference,
                            lambda s, m, k: (10 if m == "fwd" else 16) * s["T"] * s["D"] * k),
        "compile": Competitor("compile", "pure PyTorch, torch.compile", hyphc_triplet_loss_reference,
                              lambda s, m, k: (10 if m == "fwd" else 16) * s["T"] * s["D"] * k, compiled=True),
        "closed": Competitor("closed", "closed form, eager", hyphc_triplet_loss_closed,
                             lambda s, m, k: (4 if m == "fwd" else 10) * s["T"] * s["D"] * k),
        "closed_compile": Competitor("closed_compile", "closed form, torch.compile", hyphc_triplet_loss_closed,
                                     lambda s, m, k: (4 if m == "fwd" else 10) * s["T"] * s["D"] * k, compiled=True),
    },
}


def forward_fn(op: str, competitor: str, settings: dict) -> Callable:
    """The competitor's forward with the op's signature (under ``torch.compile`` for a compiled one).

    ``settings``: ``compile_backend`` (default inductor) and ``compile_mode``.
    """
    comp = COMPETITORS[op][competitor]
    if comp.forward is None:
        raise ValueError(f"competitor {competitor!r} does not compute the {op} op")
    if comp.compiled:
        return compiled(comp.forward, settings.get("compile_backend", "inductor"), settings.get("compile_mode"))
    return comp.forward
