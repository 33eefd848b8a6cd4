"""k-means through faiss (seeded): the clusters behind NMI and behind HPL's groups of proxies."""

from __future__ import annotations

import numpy as np

__all__ = ["kmeans", "kmeans_assign", "nmi"]


def _faiss():
    try:
        import faiss
    except ImportError as exc:
        raise ImportError("k-means (NMI, HierarchicalProxy) needs faiss: pip install 'hyperdml[faiss]' "
                          "(or faiss-gpu)", name=exc.name) from exc
    return faiss


def kmeans(
    x: np.ndarray, k: int, *, seed: int = 0, niter: int = 25, nredo: int = 10, spherical: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """faiss k-means: ``x (n, d)`` → (``assignment (n,)`` int64, ``centroids (k, d)`` float32).

    ``nredo`` runs of ``faiss.Kmeans`` seeded ``seed, seed + 1, …``; the run with the smallest sum
    of squared distances from the points to their nearest centroid is kept (done here rather than
    by faiss's own ``nredo``, so the criterion is explicit). Every point may form a cluster (no
    "too few points" warning); the assignment is each point's nearest final centroid.
    ``spherical`` normalises the centroids (cosine k-means on unit vectors).
    """
    faiss = _faiss()

    x = np.ascontiguousarray(x, dtype=np.float32)
    n, d = x.shape
    if not 1 <= k <= n:
        raise ValueError(f"k-means needs 1 <= k <= number of points, got k={k} for {n} points")
    best = None
    for run in range(max(1, int(nredo))):
        km = faiss.Kmeans(
            d, int(k), niter=int(niter), nredo=1, seed=int(seed) + run, spherical=bool(spherical),
            min_points_per_centroid=1, max_points_per_centroid=max(n, 256), verbose=False,
        )  # fmt: skip
        km.train(x)
        cent = np.asarray(km.centroids, dtype=np.float32).reshape(k, d)
        sq = (x * x).sum(1)[:, None] + (cent * cent).sum(1)[None, :] - 2.0 * (x @ cent.T)  # (n, k)
        assign = sq.argmin(1)
        obj = float(sq[np.arange(n), assign].sum())
        if best is None or obj < best[0] - 1e-9:
            best = (obj, assign.astype(np.int64), cent)
    return best[1], best[2]


def kmeans_assign(x: np.ndarray, num_clusters: int, seed: int = 1234, niter: int = 20) -> np.ndarray:
    """faiss k-means on ``x (N, D)`` (float32) → cluster of each row ``(N,)`` int64.

    Same settings as PML's ``FaissKMeans(niter=20)`` (faiss's default seed 1234), so the same
    inputs give the same clustering.
    """
    faiss = _faiss()
    x = np.ascontiguousarray(x, dtype=np.float32)
    # min_points_per_centroid only silences faiss's "please provide at least ..." warning on stderr.
    kmeans = faiss.Kmeans(x.shape[1], int(num_clusters), niter=niter, seed=int(seed), verbose=False,
                          min_points_per_centroid=1)
    kmeans.train(x)
    _, assign = kmeans.index.search(x, 1)
    return assign[:, 0].astype(np.int64)


def nmi(x: np.ndarray, labels: np.ndarray, seed: int = 1234) -> float:
    """Normalised mutual information between ``labels (N,)`` and k-means (one cluster per class)
    of ``x (N, D)`` (sklearn ``normalized_mutual_info_score``, arithmetic mean)."""
    from sklearn.metrics import normalized_mutual_info_score

    clusters = kmeans_assign(x, len(np.unique(labels)), seed)
    return float(normalized_mutual_info_score(labels, clusters))
