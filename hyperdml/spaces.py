"""Spaces: the one thing a proxy loss asks of its geometry.

A space maps a head's output into the space (:meth:`Space.to_space`), measures the similarity
between embeddings and proxies (:meth:`Space.similarity`), and creates and reads the proxies
(:meth:`Space.init_proxies`, :meth:`Space.proxy_points`). Losses never branch on the space, so
"hyperbolic SoftTriple" is ``SoftTriple(..., space=PoincareSpace())``.

- :class:`EuclideanSpace`: cosine similarity of L2-normalised vectors (PML's ``CosineSimilarity``).
- :class:`PoincareSpace`: the Poincaré ball of curvature −c. Head outputs are clipped to norm
  ``clip_r`` and mapped by ``expmap0``; the similarity is the negative geodesic distance, affinely
  rescaled so that it spans the cosine's range ``[−1, 1]`` (see the class docstring) and the
  Euclidean default hyperparameters of every loss keep their meaning.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from hyperdml import geometry
from hyperdml.geometry import geoopt
from hyperdml.ops import poincare_cdist

__all__ = ["Space", "EuclideanSpace", "PoincareSpace"]

_HALF = (torch.float16, torch.bfloat16)


def _common_dtype(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Cast ``a`` and ``b`` to their promoted dtype (so float32 proxies meet float64 embeddings)."""
    dtype = torch.promote_types(a.dtype, b.dtype)
    return a.to(dtype), b.to(dtype)


class Space:
    """Base class of the spaces. ``kind`` names the space (``"euclidean"``, ``"poincare"``)."""

    kind: str = "space"

    def to_space(self, h: torch.Tensor) -> torch.Tensor:
        """Head output ``(B, D)`` → embedding in the space ``(B, D)``."""
        raise NotImplementedError

    def similarity(self, emb: torch.Tensor, proxies: torch.Tensor) -> torch.Tensor:
        """Similarity of embeddings ``(B, D)`` (already in the space) to points ``(M, D)`` → ``(B, M)``.

        Larger is more similar; values lie in ``[−1, 1]`` for both built-in spaces (with their
        default parameters).
        """
        raise NotImplementedError

    def init_proxies(self, num: int, dim: int) -> nn.Parameter:
        """A fresh proxy parameter for ``num`` proxies of dimension ``dim``."""
        raise NotImplementedError

    def proxy_points(self, param: torch.Tensor) -> torch.Tensor:
        """The proxies as points of the space ``(M, D)`` from the parameter made by :meth:`init_proxies`."""
        return param

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class EuclideanSpace(Space):
    """Euclidean space with cosine similarity, as PML's ``CosineSimilarity``.

    - ``to_space``: identity (normalisation happens inside :meth:`similarity`, as in PML, so the
      head output's norm is free).
    - ``similarity(x, p) = ⟨x/‖x‖, p/‖p‖⟩`` ∈ ``[−1, 1]``, ``(B, D) × (M, D) → (B, M)``.
    - proxies: a plain ``nn.Parameter`` ``(M, D)``, initialised with Kaiming-normal (fan-out), as
      PML's ``ProxyAnchorLoss``.
    """

    kind = "euclidean"

    def to_space(self, h: torch.Tensor) -> torch.Tensor:
        return h

    def similarity(self, emb: torch.Tensor, proxies: torch.Tensor) -> torch.Tensor:
        emb, proxies = _common_dtype(emb, proxies)
        return F.normalize(emb, p=2, dim=1) @ F.normalize(proxies, p=2, dim=1).t()

    def init_proxies(self, num: int, dim: int) -> nn.Parameter:
        weight = torch.empty(num, dim)
        nn.init.kaiming_normal_(weight, mode="fan_out")
        return nn.Parameter(weight)


class PoincareSpace(Space):
    """The Poincaré ball of curvature −c, with similarity ``sim_offset − sim_scale · d_c(x, p)``.

    Args:
        c: curvature magnitude (``c > 0``). Default 0.1, as Hyp-ViT / HIER and the CHEST paper.
        clip_r: feature-clipping radius applied to head outputs (and tangent proxies) before
            ``expmap0``; ``None`` disables clipping. Default 2.3 (Hyp-ViT / HIER).
        proxy_param: ``"manifold"`` (default): proxies are a ``geoopt.ManifoldParameter`` on
            ``geoopt.PoincareBall(c)``, stepped by ``geoopt.optim.RiemannianAdam`` (whose
            retraction projects them back inside the ball). ``"tangent"``: proxies are a plain
            Euclidean parameter ``v`` and the points are ``expmap0(clip(v))`` (the CHEST paper's
            formulation); any optimiser works.
        sim_scale: factor on the distance. Default ``1 / (2·clip_r)`` (``1/4.6``), or ``1/4.6``
            when ``clip_r`` is ``None``.
        sim_offset: added to the scaled negative distance. Default 1.

    Similarity scale (the hyperbolic default). The geodesic distance is unbounded, while every
    loss's default hyperparameters (PML's ``margin``, ``alpha``, ``la``, ``gamma``) are calibrated
    for cosines in ``[−1, 1]``. Since ``d_c(0, expmap0(v)) = 2‖v‖`` for every c, clipped
    embeddings lie within distance ``2·clip_r`` of the origin and two of them at most
    ``4·clip_r`` apart. With the defaults, ``similarity = 1 − d / (2·clip_r)`` maps that range
    ``[0, 4·clip_r]`` onto ``[1, −1]``: identical points score 1 like parallel vectors, points
    ``2·clip_r`` apart (the origin and the clipping sphere) score 0 like orthogonal ones. So the
    losses keep the same defaults in both spaces; ``alpha = 32`` on this scale is ≈ 7 per unit
    of distance (Hyp-ViT uses 5 = 1/0.2 on −d). Set ``sim_scale=1, sim_offset=0`` for the raw −d
    (then retune the loss's scales and margins).

    Numerics: :meth:`to_space` and :meth:`similarity` run with autocast disabled and in float32
    at least (half inputs are upcast), distances come from :func:`hyperdml.ops.poincare_cdist`,
    and points are kept strictly inside the ball (``geometry.project``).
    """

    kind = "poincare"
    #: Typical Euclidean norm of the initial tangent vectors of the proxies (points at distance
    #: ≈ 2 × this from the origin): near the origin but not degenerate.
    proxy_init_norm = 0.5

    def __init__(
        self,
        c: float = 0.1,
        clip_r: float | None = 2.3,
        proxy_param: str = "manifold",
        sim_scale: float | None = None,
        sim_offset: float = 1.0,
    ):
        c = float(c)
        if not (c > 0 and math.isfinite(c)):
            raise ValueError(f"curvature c must be a finite number > 0, got {c}")
        if clip_r is not None and not (clip_r > 0 and math.isfinite(clip_r)):
            raise ValueError(f"clip_r must be a finite number > 0 or None, got {clip_r}")
        if proxy_param not in ("manifold", "tangent"):
            raise ValueError(f"proxy_param must be 'manifold' or 'tangent', got {proxy_param!r}")
        if sim_scale is None:
            sim_scale = 1.0 / (2.0 * (clip_r if clip_r is not None else 2.3))
        if not (sim_scale > 0 and math.isfinite(sim_scale)):
            raise ValueError(f"sim_scale must be a finite number > 0, got {sim_scale}")
        if not math.isfinite(sim_offset):
            raise ValueError(f"sim_offset must be a finite number, got {sim_offset}")
        self.c, self.clip_r, self.proxy_param = c, (None if clip_r is None else float(clip_r)), proxy_param
        self.sim_scale, self.sim_offset = float(sim_scale), float(sim_offset)
        self.manifold = geometry.ball(c)

    def __repr__(self) -> str:
        return (
            f"PoincareSpace(c={self.c}, clip_r={self.clip_r}, proxy_param={self.proxy_param!r}, "
            f"sim_scale={self.sim_scale:.4g}, sim_offset={self.sim_offset})"
        )

    def to_space(self, h: torch.Tensor) -> torch.Tensor:
        """Head output ``(B, D)`` → ball point ``expmap0(clip(h))`` ``(B, D)``, float32 at least."""
        with torch.autocast(h.device.type, enabled=False):
            h = h.float() if h.dtype in _HALF else h
            return geometry.to_ball(h, self.c, self.clip_r)

    def distance(self, emb: torch.Tensor, proxies: torch.Tensor) -> torch.Tensor:
        """Geodesic distances ``(B, D) × (M, D) → (B, M)`` (``hyperdml.ops.poincare_cdist``)."""
        with torch.autocast(emb.device.type, enabled=False):
            emb = emb.float() if emb.dtype in _HALF else emb
            proxies = proxies.float() if proxies.dtype in _HALF else proxies
            emb, proxies = _common_dtype(emb, proxies)
            return poincare_cdist(emb, proxies, self.c)

    def similarity(self, emb: torch.Tensor, proxies: torch.Tensor) -> torch.Tensor:
        """``sim_offset − sim_scale · d_c(x, p)``, ``(B, D) × (M, D) → (B, M)``."""
        return self.sim_offset - self.sim_scale * self.distance(emb, proxies)

    def init_proxies(self, num: int, dim: int) -> nn.Parameter:
        """Proxies near the origin: tangent vectors ``N(0, (proxy_init_norm²/D)·I)``.

        ``"manifold"``: a ``geoopt.ManifoldParameter`` holding ``expmap0`` of them on
        ``geoopt.PoincareBall(c)``; ``"tangent"``: an ``nn.Parameter`` holding the vectors.
        """
        v = torch.randn(num, dim) * (self.proxy_init_norm / math.sqrt(dim))
        if self.proxy_param == "tangent":
            return nn.Parameter(v)
        return geoopt.ManifoldParameter(geometry.to_ball(v, self.c, self.clip_r), manifold=self.manifold)

    def proxy_points(self, param: torch.Tensor) -> torch.Tensor:
        """Ball points ``(M, D)``: the projected manifold parameter, or ``expmap0(clip(v))``."""
        if self.proxy_param == "tangent":
            return self.to_space(param)
        with torch.autocast(param.device.type, enabled=False):
            return geometry.project(param, self.c)
