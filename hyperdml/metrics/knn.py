"""Exact k-nearest-neighbour search through faiss, in chunks of queries.

- ``cosine``: L2-normalised float32 vectors in ``faiss.IndexFlatIP``;
- ``euclidean``: ``faiss.IndexFlatL2``;
- ``poincare``: ball points (curvature −c) mapped to the hyperboloid in float64
  (:func:`hyperdml.geometry.to_lorentz`), the query's time coordinate negated so that the inner
  product index scores ``⟨X, Y⟩_L = −X0·Y0 + Σ Xi·Yi = −cosh(√c·d)/c``, a decreasing function of
  the geodesic distance d. float32 loses precision there near the boundary (X0 grows like
  1/(1 − c‖x‖²)), so faiss returns ``k + extra`` candidates which are re-ranked by the exact
  float64 distance ``arccosh(1 + 2c‖x−y‖² / ((1 − c‖x‖²)(1 − c‖y‖²))) / √c``. The result is
  certified: with the float32 error bound ``(D + 3)·2⁻²³·X0·max Y0`` on faiss's scores, a query
  whose k-th re-ranked neighbour might be beaten by a non-candidate is searched again with float64
  Lorentz products over the whole gallery (then re-ranked exactly). Embeddings made by
  ``PoincareSpace.to_space`` (clipped) never need that fallback.
"""

from __future__ import annotations

import numpy as np

__all__ = ["knn_search", "poincare_distance_rows", "l2_normalize", "METRICS"]

METRICS = ("cosine", "euclidean", "poincare")


def l2_normalize(x: np.ndarray) -> np.ndarray:
    """Rows of ``x (N, D)`` scaled to unit L2 norm (rows of norm below 1e-12 divided by 1e-12)."""
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def poincare_distance_rows(x: np.ndarray, y: np.ndarray, c: float) -> np.ndarray:
    """Exact float64 distances between ``x (Q, D)`` and each of its rows ``y (Q, K, D)`` → ``(Q, K)``."""
    x, y = x.astype(np.float64), y.astype(np.float64)
    diff = ((x[:, None, :] - y) ** 2).sum(-1)
    den = (1 - c * (x**2).sum(-1))[:, None] * (1 - c * (y**2).sum(-1))
    return np.arccosh(1 + 2 * c * diff / den) / np.sqrt(c)


def _exact_poincare(query: np.ndarray, query_lorentz: np.ndarray, gallery: np.ndarray, gal_lorentz: np.ndarray,
                    search: int, c: float, rows: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Fallback: the ``search`` best gallery rows of each query by float64 Lorentz products, re-ranked
    exactly → (indices, distances) ``(Q, search)``, nearest first. ``query_lorentz`` holds the queries
    on the hyperboloid with the time coordinate negated (as :func:`knn_search` builds them)."""
    import torch

    q = torch.from_numpy(query_lorentz)
    g = torch.from_numpy(gal_lorentz)
    out = []
    for s in range(0, len(q), rows):
        out.append(torch.topk(q[s : s + rows] @ g.T, search, dim=1).indices.numpy())
    idx = np.concatenate(out)
    d = poincare_distance_rows(query, gallery[idx], c)
    order = np.argsort(d, axis=1, kind="stable")
    return np.take_along_axis(idx, order, axis=1), np.take_along_axis(d, order, axis=1)


def _index(vectors: np.ndarray, inner_product: bool):
    import faiss

    index = faiss.IndexFlatIP(vectors.shape[1]) if inner_product else faiss.IndexFlatL2(vectors.shape[1])
    index.add(np.ascontiguousarray(vectors, dtype=np.float32))
    return index


def knn_search(query: np.ndarray, gallery: np.ndarray, k: int, metric: str = "cosine", c: float = 1.0,
               exclude_self: bool = False, chunk_size: int = 4096, extra: int | None = None,
               progress: bool = False) -> np.ndarray:
    """Indices ``(Q, k)`` int64 of the ``k`` nearest gallery rows of each query row, nearest first.

    Args:
        query: ``(Q, D)``; gallery: ``(N, D)`` (for ``exclude_self``, query is the gallery, Q = N).
        k: neighbours per query (``≤ N − exclude_self``).
        metric: ``"cosine"``, ``"euclidean"`` or ``"poincare"`` (points in the ball of curvature −c).
        exclude_self: drop row i from the neighbours of query i (searching ``k + 1``; if i is not
            among them, because of exact ties, the last one is dropped, as PML does).
        chunk_size: queries per faiss call (bounds the temporary memory to ~``chunk_size · N``
            floats inside faiss plus the candidate re-ranking of poincare).
        extra: poincare candidates re-ranked beyond ``k`` (default ``max(k, 32)``).
        progress: show a tqdm bar over the chunks.
    """
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    n = gallery.shape[0]
    kk = k + int(exclude_self)
    if not 1 <= kk <= n:
        raise ValueError(f"k = {k} neighbours asked but the gallery has {n - int(exclude_self)} candidates")
    if metric == "cosine":
        g = l2_normalize(gallery)
        q = g if query is gallery else l2_normalize(query)
        index, search = _index(g, True), kk
    elif metric == "euclidean":
        q, index, search = query, _index(gallery, False), kk
    else:
        import torch

        from hyperdml.geometry import to_lorentz

        same = query is gallery
        query, gallery = np.asarray(query, np.float64), np.asarray(gallery, np.float64)
        g_l = to_lorentz(torch.from_numpy(gallery), c).numpy()
        q = g_l.copy() if same else to_lorentz(torch.from_numpy(query), c).numpy()
        q[:, 0] = -q[:, 0]
        index, max_time = _index(g_l, True), float(g_l[:, 0].max())
        search = min(n, kk + (extra if extra is not None else max(k, 32)))
    if metric == "poincare":  # the re-ranking holds (chunk, search, D) float64 arrays: ~128 MB each
        chunk_size = max(1, min(chunk_size, 2**24 // (search * query.shape[1])))
    out = np.empty((query.shape[0], k), dtype=np.int64)
    starts = range(0, query.shape[0], chunk_size)
    if progress:
        from tqdm import tqdm

        starts = tqdm(starts, desc="kNN", unit="chunk")
    for s in starts:
        e = min(s + chunk_size, query.shape[0])
        scores, idx = index.search(np.ascontiguousarray(q[s:e], dtype=np.float32), search)
        if metric == "poincare":  # exact float64 re-ranking of the candidates
            idx = np.where(idx < 0, 0, idx)
            d = poincare_distance_rows(query[s:e], gallery[idx], c)
            order = np.argsort(d, axis=1, kind="stable")
            idx, d = np.take_along_axis(idx, order, axis=1), np.take_along_axis(d, order, axis=1)
            if search < n:  # certify: could a non-candidate beat the kk-th neighbour?
                tol = (q.shape[1] + 3) * 2.0**-23 * -q[s:e, 0] * max_time
                with np.errstate(over="ignore"):
                    kth = -np.cosh(np.sqrt(c) * d[:, kk - 1]) / c
                bad = np.flatnonzero(~(kth > scores[:, -1].astype(np.float64) + tol))
                if len(bad):
                    idx[bad] = _exact_poincare(query[s:e][bad], q[s:e][bad], gallery, g_l, search, c)[0]
        if exclude_self:
            own = idx[:, :kk] == np.arange(s, e)[:, None]
            own[~own.any(1), kk - 1] = True
            idx = idx[:, :kk][~own].reshape(e - s, k)
        out[s:e] = idx[:, :k]
    return out
