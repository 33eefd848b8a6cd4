"""Exact k-nearest-neighbour search through faiss, in chunks of queries: the engine the spaces'
``knn`` methods (and the ``"euclidean"`` L2 shorthand of :mod:`hyperdml.metrics`) run on."""

from __future__ import annotations

from typing import Callable

import numpy as np

__all__ = ["faiss_knn", "l2_normalize"]


def l2_normalize(x: np.ndarray) -> np.ndarray:
    """Rows of ``x (N, D)`` scaled to unit L2 norm (rows of norm below 1e-12 divided by 1e-12)."""
    scale = np.maximum(np.abs(x).max(axis=1, keepdims=True), 1e-300) if x.size else 1.0
    y = x / scale  # no overflow in the squares of huge rows
    return y / np.maximum(np.linalg.norm(y, axis=1, keepdims=True), 1e-12 / scale)


def _index(vectors: np.ndarray, inner_product: bool):
    import faiss

    index = faiss.IndexFlatIP(vectors.shape[1]) if inner_product else faiss.IndexFlatL2(vectors.shape[1])
    index.add(np.ascontiguousarray(vectors, dtype=np.float32))
    return index


def faiss_knn(query: np.ndarray, gallery: np.ndarray, k: int, *, inner_product: bool, exclude_self: bool = False,
              chunk_size: int = 4096, progress: bool = False, search: int | None = None,
              rerank: Callable | None = None) -> np.ndarray:
    """Indices ``(Q, k)`` int64 of the ``k`` best gallery rows of each query row, best first.

    Args:
        query: ``(Q, D)`` vectors; gallery: ``(N, D)`` (for ``exclude_self``, query is the gallery).
        k: neighbours per query (``≤ N − exclude_self``).
        inner_product: rank by largest inner product (``IndexFlatIP``), else by smallest L2 distance.
        exclude_self: drop row i from the neighbours of query i (searching ``k + 1``; if i is not
            among them, because of exact ties, the last one is dropped, as PML does).
        chunk_size: queries per faiss call.
        progress: a tqdm bar over the chunks.
        search: candidates faiss returns per query (default ``k + exclude_self``), re-ranked by
            ``rerank(start, end, scores, idx)`` → idx (the ``(e − s, search)`` candidates of queries
            ``start:end`` in their final order), e.g. by an exact distance.
    """
    n = gallery.shape[0]
    kk = k + int(exclude_self)
    if not 1 <= kk <= n:
        raise ValueError(f"k = {k} neighbours asked but the gallery has {n - int(exclude_self)} candidates")
    search = kk if search is None else min(n, max(search, kk))
    index = _index(gallery, inner_product)
    out = np.empty((query.shape[0], k), dtype=np.int64)
    starts = range(0, query.shape[0], chunk_size)
    if progress:
        from tqdm import tqdm

        starts = tqdm(starts, desc="kNN", unit="chunk")
    for s in starts:
        e = min(s + chunk_size, query.shape[0])
        scores, idx = index.search(np.ascontiguousarray(query[s:e], dtype=np.float32), search)
        if rerank is not None:
            idx = rerank(s, e, scores, idx)
        if exclude_self:
            own = idx[:, :kk] == np.arange(s, e)[:, None]
            own[~own.any(1), kk - 1] = True
            idx = idx[:, :kk][~own].reshape(e - s, k)
        out[s:e] = idx[:, :k]
    return out
