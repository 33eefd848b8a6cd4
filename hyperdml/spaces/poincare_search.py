"""Exact hyperbolic kNN: faiss on the hyperboloid, re-ranked by the exact float64 distance.

Ball points (curvature −c) are mapped to the hyperboloid in float64
(:func:`hyperdml.geometry.to_lorentz`), the query's time coordinate negated, so that faiss's
inner-product index scores ``⟨X, Y⟩_L = −X0·Y0 + Σ Xi·Yi = −cosh(√c·d)/c``, a decreasing
function of the geodesic distance d. float32 loses precision there near the boundary (X0 grows
like 1/(1 − c‖x‖²)), so faiss returns ``k + extra`` candidates which are re-ranked by the exact
float64 distance (:func:`hyperdml.geometry.dist`). The result is certified: with the float32
error bound ``(D + 3)·2⁻²³·X0·max Y0`` on faiss's scores, a query whose k-th re-ranked neighbour
might be beaten by a non-candidate is searched again with float64 Lorentz products over the whole
gallery (then re-ranked exactly). Clipped embeddings (``PoincareSpace.to_space``) never need that
fallback.
"""

from __future__ import annotations

import numpy as np
import torch

from hyperdml import geometry
from hyperdml.spaces.search import faiss_knn

__all__ = ["poincare_knn", "poincare_distance_rows"]


def poincare_distance_rows(x: np.ndarray, y: np.ndarray, c: float) -> np.ndarray:
    """Exact float64 distances between ``x (Q, D)`` and each of its rows ``y (Q, K, D)`` → ``(Q, K)``."""
    xt = torch.from_numpy(np.asarray(x, np.float64))[:, None, :]
    return geometry.dist(xt, torch.from_numpy(np.asarray(y, np.float64)), c).numpy()


def _exact_search(query: np.ndarray, query_lorentz: np.ndarray, gallery: np.ndarray, gal_lorentz: np.ndarray,
                  search: int, c: float, rows: int = 256) -> np.ndarray:
    """Fallback: the ``search`` best gallery rows of each query by float64 Lorentz products, re-ranked
    exactly → indices ``(Q, search)``, nearest first."""
    q = torch.from_numpy(query_lorentz)
    g = torch.from_numpy(gal_lorentz)
    idx = np.concatenate([torch.topk(q[s : s + rows] @ g.T, search, dim=1).indices.numpy()
                          for s in range(0, len(q), rows)])
    d = poincare_distance_rows(query, gallery[idx], c)
    return np.take_along_axis(idx, np.argsort(d, axis=1, kind="stable"), axis=1)


def poincare_knn(query, gallery, k: int, c: float, *, exclude_self: bool = False, chunk_size: int = 4096,
                 extra: int | None = None, progress: bool = False) -> np.ndarray:
    """Indices ``(Q, k)`` of the ``k`` nearest gallery rows (geodesic distance) of each query row.

    ``query (Q, D)``, ``gallery (N, D)``: points of the ball of curvature −c (``query is gallery``
    for ``exclude_self``). ``extra``: candidates re-ranked beyond ``k`` (default ``max(k, 32)``).
    """
    same = query is gallery
    gallery = np.asarray(gallery, np.float64)
    query = gallery if same else np.asarray(query, np.float64)
    g_l = geometry.to_lorentz(torch.from_numpy(gallery), c).numpy()
    q_l = g_l.copy() if same else geometry.to_lorentz(torch.from_numpy(query), c).numpy()
    q_l[:, 0] = -q_l[:, 0]
    n, kk = gallery.shape[0], k + int(exclude_self)
    search = min(n, kk + (extra if extra is not None else max(k, 32)))
    max_time = float(g_l[:, 0].max()) if n else 0.0
    # the re-ranking holds (chunk, search, D) float64 arrays: ~128 MB each at most
    chunk_size = max(1, min(chunk_size, 2**24 // max(1, search * query.shape[1])))

    def rerank(s: int, e: int, scores: np.ndarray, idx: np.ndarray) -> np.ndarray:
        idx = np.where(idx < 0, 0, idx)
        d = poincare_distance_rows(query[s:e], gallery[idx], c)
        order = np.argsort(d, axis=1, kind="stable")
        idx, d = np.take_along_axis(idx, order, axis=1), np.take_along_axis(d, order, axis=1)
        if search < n:  # certify: could a non-candidate beat the kk-th neighbour?
            tol = (q_l.shape[1] + 3) * 2.0**-23 * -q_l[s:e, 0] * max_time
            with np.errstate(over="ignore"):
                kth = -np.cosh(np.sqrt(c) * d[:, kk - 1]) / c
            bad = np.flatnonzero(~(kth > scores[:, -1].astype(np.float64) + tol))
            if len(bad):
                idx[bad] = _exact_search(query[s:e][bad], q_l[s:e][bad], gallery, g_l, search, c)
        return idx

    return faiss_knn(q_l, g_l, k, inner_product=True, exclude_self=exclude_self, chunk_size=chunk_size,
                     progress=progress, search=search, rerank=rerank)
