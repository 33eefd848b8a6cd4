"""Retrieval scores from neighbour labels, with PML's ``AccuracyCalculator`` definitions.

``knn_labels (Q, K)`` are the labels of each query's neighbours (nearest first),
``query_labels (Q,)``, ``r (Q,)`` the number of relevant gallery items of each query (same class,
self excluded), with ``K ≥ max(r)``. Each function returns the mean over queries.
"""

from __future__ import annotations

import numpy as np

__all__ = ["recall_at_k", "r_precision", "map_at_r"]


def recall_at_k(knn_labels: np.ndarray, query_labels: np.ndarray, k: int) -> float:
    """Fraction of queries with a same-class item among their ``k`` nearest (k = 1: PML precision_at_1)."""
    return float((knn_labels[:, :k] == query_labels[:, None]).any(1).mean())


def _relevant(knn_labels, query_labels, r):
    """``(Q, K)`` bool: neighbour j is same-class and within the first ``r`` ranks."""
    within_r = np.arange(knn_labels.shape[1])[None, :] < r[:, None]
    return (knn_labels == query_labels[:, None]) & within_r


def r_precision(knn_labels: np.ndarray, query_labels: np.ndarray, r: np.ndarray) -> float:
    """Mean over queries of (same-class items among the first R) / R."""
    return float((_relevant(knn_labels, query_labels, r).sum(1) / r).mean())


def map_at_r(knn_labels: np.ndarray, query_labels: np.ndarray, r: np.ndarray) -> float:
    """MAP@R (Musgrave et al. 2020): mean over queries of ``(1/R) Σ_{i≤R} P@i · rel(i)``."""
    rel = _relevant(knn_labels, query_labels, r)
    precision = np.cumsum(rel, axis=1) / np.arange(1, rel.shape[1] + 1)[None, :]
    return float(((precision * rel).sum(1) / r).mean())
