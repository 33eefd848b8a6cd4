"""NMI of a k-means clustering (faiss, seeded) against the labels."""

from __future__ import annotations

import numpy as np

__all__ = ["kmeans_assign", "nmi"]


def kmeans_assign(x: np.ndarray, num_clusters: int, seed: int = 1234, niter: int = 20) -> np.ndarray:
    """faiss k-means on ``x (N, D)`` (float32) → cluster of each row ``(N,)`` int64.

    Same settings as PML's ``FaissKMeans(niter=20)`` (faiss's default seed 1234), so the same
    inputs give the same clustering.
    """
    import faiss

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
