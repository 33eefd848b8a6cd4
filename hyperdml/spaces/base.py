"""``Space``: every question a loss, a wrapper, a metric or a plot asks of a geometry.

A space maps head outputs into the space (:meth:`Space.to_space`), measures distances and
similarities, makes and reads proxies, averages points, gives the vectors that k-means and
angle-based similarities run on, decodes trees, searches nearest neighbours and serialises itself
(:meth:`Space.config`, :func:`space_from_config`). Code outside the spaces never branches on the
geometry: it calls these methods, so a new space needs no change elsewhere.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

__all__ = ["Space", "space_from_config", "register_space", "HALF"]

HALF = (torch.float16, torch.bfloat16)

_KINDS: dict[str, type["Space"]] = {}


def register_space(cls: type["Space"]) -> type["Space"]:
    """Class decorator: make ``cls`` rebuildable from its :meth:`Space.config` (by ``cls.kind``)."""
    _KINDS[cls.kind] = cls
    return cls


def space_from_config(config: dict) -> "Space":
    """Rebuild a space from :meth:`Space.config`'s dict (``{"kind": ..., parameters...}``).

    Raises ``ValueError`` for an unknown kind or parameters the space does not take.
    """
    if not isinstance(config, dict) or "kind" not in config:
        raise ValueError(f"a space config is a dict with a 'kind', got {config!r}")
    params = dict(config)
    kind = params.pop("kind")
    if kind not in _KINDS:
        raise ValueError(f"unknown space kind {kind!r}; known: {', '.join(sorted(_KINDS))}")
    try:
        return _KINDS[kind](**params)
    except TypeError as exc:
        raise ValueError(f"space config {config!r} does not fit {_KINDS[kind].__name__}: {exc}") from None


def _promote(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``a`` and ``b`` in their promoted dtype (float32 proxies meet float64 embeddings)."""
    dtype = torch.promote_types(a.dtype, b.dtype)
    return a.to(dtype), b.to(dtype)


class Space:
    """Base class of the spaces.

    Attributes:
        kind: the serialised name (``"euclidean"``, ``"poincare"``).
        label: how reports, model heads and proxy sets name this space (``"euclidean"``,
            ``"hyperbolic"``).
        metric: the :func:`hyperdml.metrics.evaluate_retrieval` shorthand for this space
            (``"cosine"``, ``"poincare"``).
        spherical_features: whether :meth:`features` are unit vectors (k-means then runs as
            spherical k-means).
        has_disk: whether :meth:`disk_projection` draws the space's points in a disk.
    """

    kind: ClassVar[str] = "space"
    label: ClassVar[str] = "space"
    metric: ClassVar[str] = "space"
    spherical_features: ClassVar[bool] = False
    has_disk: ClassVar[bool] = False

    @property
    def takes_points(self) -> bool:
        """Whether head outputs must already be points of the space (then :meth:`to_space` only checks them)."""
        return False

    # -- identity ------------------------------------------------------------------------------

    def config(self) -> dict[str, Any]:
        """The space as plain data, ``{"kind": ..., parameters...}`` (:func:`space_from_config` inverts it)."""
        return {"kind": self.kind}

    def __eq__(self, other) -> bool:
        return isinstance(other, Space) and self.config() == other.config()

    def __hash__(self) -> int:
        return hash(tuple(sorted(self.config().items())))

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items() if k != "kind")
        return f"{type(self).__name__}({args})"

    # -- points --------------------------------------------------------------------------------

    def to_space(self, h: torch.Tensor, check: bool = True) -> torch.Tensor:
        """Head outputs ``(B, D)`` → points of the space ``(B, D)``; ``check=False`` skips the
        data-dependent checks of :meth:`check_inputs` (host syncs)."""
        raise NotImplementedError

    def check_points(self, x: torch.Tensor, name: str = "points") -> None:
        """``ValueError`` naming ``name`` unless every row of ``x (N, D)`` is a finite point of the space."""
        if x.numel() and not bool(torch.isfinite(x).all()):
            raise ValueError(f"{name} contains NaN or Inf")

    def check_inputs(self, h: torch.Tensor, name: str = "embeddings") -> None:
        """``ValueError`` naming ``name`` unless the head outputs ``h (B, D)`` can be mapped by
        :meth:`to_space` (finite; for a space that takes points as they are, points of the space)."""
        if h.numel() and not bool(torch.isfinite(h).all()):
            raise ValueError(f"{name} contains NaN or Inf")

    def saturation(self, h: torch.Tensor) -> float | None:
        """Fraction of head outputs ``(B, D)`` that the map into the space squashes onto one shell
        (and so cannot tell apart by norm), or None when the space has no such limit."""
        return None

    def collapse_stats(self, h: torch.Tensor) -> torch.Tensor | None:
        """``(2,)`` tensor on ``h``'s device, no host sync: the :meth:`saturation` fraction of the
        head outputs ``h (B, D)`` and their mean resultant length ``‖mean_i h_i/‖h_i‖‖`` (1: all
        point one way); None when the space has no saturation shell."""
        return None

    def expmap0(self, v: torch.Tensor) -> torch.Tensor:
        """Tangent vectors at the origin ``(..., D)`` → points (the identity in flat space)."""
        return v

    def logmap0(self, x: torch.Tensor) -> torch.Tensor:
        """Points ``(..., D)`` → tangent vectors at the origin (the identity in flat space)."""
        return x

    # -- metric --------------------------------------------------------------------------------

    def distance(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Distances of all pairs: ``x (B, D)``, ``y (N, D)`` → ``(B, N)``."""
        return self.sq_distance_matrix(x, y).clamp_min(0).sqrt()

    def similarity(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Similarity of points ``x (B, D)`` to points ``y (M, D)`` → ``(B, M)``, larger is more similar;
        in ``[−1, 1]`` for the built-in spaces with their defaults."""
        raise NotImplementedError

    def sq_distance_matrix(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Squared distances of all pairs, batched: ``x (..., K, D)``, ``y (..., M, D)`` → ``(..., K, M)``."""
        raise NotImplementedError

    # -- sets of points (Calibrate Proxy's queues) ---------------------------------------------

    def summarize_sets(self, sets: torch.Tensor, counts: torch.Tensor) -> Any:
        """What :meth:`mean_similarity` and :meth:`mean_sq_distance` need of ``C`` sets of points.

        ``sets (C, M, D)``: slot ``m < counts[c]`` of set c holds a point (the rest is ignored);
        ``counts (C,)``. The default keeps a copy of the sets (autograd may keep it for the
        backward while the caller overwrites its buffer) and their ``(C, M)`` mask.
        """
        mask = torch.arange(sets.shape[1], device=sets.device)[None, :] < counts[:, None]
        return sets.clone(), mask, counts

    def mean_similarity(self, x: torch.Tensor, summary) -> torch.Tensor:
        """``x (B, D)`` → ``(B, C)``: mean similarity of each row to each set's points (0 for an empty set)."""
        sets, mask, counts = summary
        c, m, d = sets.shape
        sim = self.similarity(x, sets.reshape(c * m, d)).view(x.shape[0], c, m)
        sim = torch.where(mask, sim, torch.zeros((), dtype=sim.dtype, device=sim.device))
        return sim.sum(dim=2) / counts.clamp_min(1).to(sim.dtype)

    def mean_sq_distance(self, points: torch.Tensor, summary) -> torch.Tensor:
        """``points (C, K, D)`` → ``(C, K)``: mean squared distance of each to the points of its set c
        (0 for an empty set)."""
        sets, mask, counts = summary
        sq = self.sq_distance_matrix(points, sets)  # (C, K, M)
        sq = torch.where(mask[:, None, :], sq, torch.zeros((), dtype=sq.dtype, device=sq.device))
        return sq.sum(dim=2) / counts.clamp_min(1).to(sq.dtype)[:, None]

    # -- features, means, proxies --------------------------------------------------------------

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Points ``(..., D)`` → the vectors that k-means, NMI and angle similarities run on."""
        return x

    def class_mean(self, points: torch.Tensor) -> torch.Tensor:
        """``points (C, K, D)`` → ``(C, D)``: one point per group of ``K``."""
        return points.mean(dim=1)

    def init_proxies(self, num: int, dim: int) -> nn.Parameter:
        """A fresh proxy parameter for ``num`` proxies of dimension ``dim``."""
        raise NotImplementedError

    def proxy_points(self, param: torch.Tensor) -> torch.Tensor:
        """The proxies as points ``(M, D)`` from the parameter made by :meth:`init_proxies`."""
        return param

    def proxies_from_features(self, v: torch.Tensor) -> torch.Tensor:
        """Feature vectors ``(M, D)`` (see :meth:`features`) → a value for a proxy parameter."""
        return v

    # -- trees ---------------------------------------------------------------------------------

    def decode_tree(self, points) -> np.ndarray:
        """Points ``(P, D)`` → a binary tree as a SciPy linkage matrix ``((P − 1), 4)``."""
        raise NotImplementedError

    def tree_axis(self, points) -> dict:
        """How to read the heights of :meth:`decode_tree`'s tree: ``{"kind", "depth_max", "short",
        "description"}`` (the keyword arguments of :func:`hyperdml.viz.plot_dendrogram`, a title and
        a sentence)."""
        raise NotImplementedError

    def tree_edges(self, z: np.ndarray, points) -> np.ndarray:
        """``(P − 1, 2)``: the leaf pair realising each merge of :meth:`decode_tree`'s tree ``z`` of ``points``."""
        raise NotImplementedError

    def disk_projection(self, fit_points):
        """A fitted map of points to the unit disk (``.transform(points)`` → ``(N, 2)``), or None when
        the space has no disk picture."""
        return None

    def clip_disk_radius(self) -> float | None:
        """Radius in that unit disk of the sphere head outputs are clipped to, or None."""
        return None

    # -- retrieval -----------------------------------------------------------------------------

    def knn(self, query: np.ndarray, gallery: np.ndarray, k: int, *, exclude_self: bool = False,
            chunk_size: int = 4096, progress: bool = False) -> np.ndarray:
        """Exact k nearest gallery rows of each query row: ``(Q, D)``, ``(N, D)`` → int64 ``(Q, k)``."""
        raise NotImplementedError
