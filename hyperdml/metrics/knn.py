"""Exact k-nearest-neighbour search through faiss: by a space, or by a metric name.

The space decides how it searches (:meth:`hyperdml.spaces.Space.knn`): cosine on unit vectors
for :class:`~hyperdml.spaces.EuclideanSpace`, geodesic distance through the hyperboloid for
:class:`~hyperdml.spaces.PoincareSpace` (:mod:`hyperdml.spaces.poincare_search`). Metric names
are shorthands: ``"cosine"`` is ``EuclideanSpace()``, ``"poincare"`` is ``PoincareSpace(c)`` with
an explicit ``c``, ``"euclidean"`` ranks by plain L2 distance.
"""

from __future__ import annotations

import numpy as np

from hyperdml.spaces.poincare_search import poincare_distance_rows
from hyperdml.spaces.search import faiss_knn, l2_normalize

__all__ = ["knn_search", "resolve_space", "poincare_distance_rows", "l2_normalize", "METRICS"]

METRICS = ("cosine", "euclidean", "poincare")


def resolve_space(metric: str | None, c=None, space=None):
    """The space a search or evaluation runs in, from ``space`` or a ``metric`` shorthand.

    Returns a :class:`~hyperdml.spaces.Space`, or None for ``metric="euclidean"`` (plain L2).
    ``metric="poincare"`` needs ``c`` (there is no default curvature here: the embeddings were
    made in some ball, and ranking them in another gives wrong neighbours); with ``space`` the
    metric must be None or agree with it.
    """
    from hyperdml.spaces import EuclideanSpace, PoincareSpace, Space

    if space is not None:
        if not isinstance(space, Space):
            raise TypeError(f"space must be a hyperdml.spaces.Space, got {type(space).__name__}")
        if c is not None:
            raise ValueError("give the curvature through the space, not both space= and c=")
        if metric is not None and metric != space.metric:
            raise ValueError(f"metric={metric!r} does not fit space={space!r}; pass one of them")
        return space
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS} (or pass space=...), got {metric!r}")
    if metric == "poincare":
        if c is None:
            raise ValueError("metric='poincare' needs the ball's curvature: pass space=PoincareSpace(c=...) "
                             "(the space that made the embeddings) or c=...")
        return PoincareSpace(c=c, clip_r=None, inputs="ball")
    if c is not None:
        raise ValueError(f"c is the curvature of the Poincaré ball; metric={metric!r} has none")
    return EuclideanSpace() if metric == "cosine" else None


def knn_search(query: np.ndarray, gallery: np.ndarray, k: int, metric: str | None = None, c: float | None = None,
               exclude_self: bool = False, chunk_size: int = 4096, progress: bool = False, *,
               space=None) -> np.ndarray:
    """Indices ``(Q, k)`` int64 of the ``k`` nearest gallery rows of each query row, nearest first.

    Args:
        query: ``(Q, D)``; gallery: ``(N, D)`` (for ``exclude_self``, query is the gallery, Q = N).
        k: neighbours per query (``≤ N − exclude_self``).
        metric: ``"cosine"`` (the default when neither metric nor space is given), ``"euclidean"``
            (L2) or ``"poincare"`` (with ``c``); or None with ``space``.
        c: curvature of the ball for ``metric="poincare"``.
        exclude_self: drop row i from the neighbours of query i (searching ``k + 1``; if i is not
            among them, because of exact ties, the last one is dropped, as PML does).
        chunk_size: queries per faiss call (bounds the temporary memory inside faiss).
        progress: show a tqdm bar over the chunks.
        space: a :class:`~hyperdml.spaces.Space` whose geometry ranks the points.
    """
    if metric is None and space is None:
        metric = "cosine"
    space = resolve_space(metric, c, space)
    if space is None:
        return faiss_knn(query, gallery, k, inner_product=False, exclude_self=exclude_self, chunk_size=chunk_size,
                         progress=progress)
    return space.knn(query, gallery, k, exclude_self=exclude_self, chunk_size=chunk_size, progress=progress)
