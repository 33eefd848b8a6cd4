"""``evaluate_retrieval``: Recall@K, MAP@R, R-Precision and NMI of embeddings."""

from __future__ import annotations

import warnings

import numpy as np
import torch

from hyperdml.metrics.clustering import nmi as nmi_score
from hyperdml.metrics.knn import knn_search, resolve_space
from hyperdml.metrics.scores import map_at_r, r_precision, recall_at_k

__all__ = ["evaluate_retrieval"]


def _as_array(x, name: str) -> np.ndarray:
    """Tensor / array ``(N, D)`` → float64 numpy, checked."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().double().numpy()
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"{name} must be a non-empty 2-D (N, D) array, got shape {x.shape}")
    bad = ~np.isfinite(x).all(1)
    if bad.any():
        raise ValueError(f"{name} has {int(bad.sum())} rows with NaN or inf (first: row {int(np.argmax(bad))})")
    return x


def _as_labels(y, n: int, name: str) -> np.ndarray:
    """Labels ``(N,)`` → int64 numpy, checked against ``n`` rows."""
    if hasattr(y, "detach"):
        y = y.detach().cpu().numpy()
    y = np.asarray(y)
    if y.ndim != 1 or y.shape[0] != n:
        raise ValueError(f"{name} must have shape ({n},) to match the embeddings, got {y.shape}")
    if not np.issubdtype(y.dtype, np.integer) and not np.all(np.mod(y, 1) == 0):
        raise ValueError(f"{name} must be integers")
    return y.astype(np.int64)


def evaluate_retrieval(embeddings, labels, ks=(1, 2, 4, 8), metric: str | None = None, c: float | None = None,
                       query=None, query_labels=None, *, space=None, nmi: bool = True, seed: int = 1234,
                       chunk_size: int = 4096, progress: bool = False) -> dict:
    """Retrieval metrics of embeddings with exact kNN (faiss), ranked in a space.

    Args:
        embeddings: ``(N, D)`` tensor or array of points of the space (e.g.
            ``space.to_space(head_output)``): the gallery, and the queries when ``query`` is None.
        labels: ``(N,)`` integer class labels.
        ks: the K of ``recall@K`` (a query is a hit if any of its K nearest is same-class).
        metric: shorthand for the space: ``"cosine"`` (``EuclideanSpace()``, the default when
            neither is given), ``"poincare"`` (needs ``c``: there is no default curvature, since
            ranking points of one ball in another gives wrong neighbours) or ``"euclidean"``
            (plain L2 distance).
        c: curvature magnitude of the ball, with ``metric="poincare"`` only.
        query, query_labels: ``(Q, D)``, ``(Q,)``: query-vs-gallery retrieval (In-Shop), no
            self-exclusion. Without them every row queries all the others (itself excluded).
        space: the :class:`~hyperdml.spaces.Space` the embeddings live in (e.g. the loss's
            ``loss.space``, ``PoincareSpace(c=0.1)``); it checks the points (a point outside the
            ball is an error), ranks them and gives the features NMI clusters.
        nmi: compute NMI (k-means with one cluster per class on the queries' features: unit
            vectors for the cosine, ``logmap0`` for the ball, the raw vectors for L2).
        seed: k-means seed (faiss's default 1234, as PML).
        chunk_size, progress: queries per faiss call; tqdm bar over the chunks.

    Returns:
        ``{"recall@k" for k in ks, "map@r", "r_precision", "nmi"}``, floats in ``[0, 1]``
        (``nmi`` absent if ``nmi=False``). As PML's ``AccuracyCalculator``, queries whose class
        has no other item in the gallery are left out of the retrieval scores (with a warning);
        if no query is left, ValueError.
    """
    if metric is None and space is None:
        metric = "cosine"
    space = resolve_space(metric, c, space)
    ks = _check_ks(ks)
    gallery = _as_array(embeddings, "embeddings")
    g_labels = _as_labels(labels, gallery.shape[0], "labels")
    self_mode = query is None
    if self_mode:
        if query_labels is not None:
            raise ValueError("query_labels given without query")
        q, q_labels = gallery, g_labels
    else:
        q = _as_array(query, "query")
        if query_labels is None:
            raise ValueError("query given without query_labels")
        q_labels = _as_labels(query_labels, q.shape[0], "query_labels")
        if q.shape[1] != gallery.shape[1]:
            raise ValueError(f"query has dimension {q.shape[1]} but the embeddings {gallery.shape[1]}")
    if space is not None:
        space.check_points(torch.from_numpy(gallery), "embeddings")
        if not self_mode:
            space.check_points(torch.from_numpy(q), "query")

    classes, counts = np.unique(g_labels, return_counts=True)
    count_of = dict(zip(classes.tolist(), counts.tolist()))
    r = np.array([count_of.get(int(y), 0) for y in q_labels]) - int(self_mode)
    keep = r > 0
    if not keep.any():
        raise ValueError("no query has another item of its class in the gallery: retrieval is undefined")
    if not keep.all():
        warnings.warn(f"{int((~keep).sum())} queries have no other item of their class in the gallery "
                      "and are left out of the retrieval scores (as PML)", stacklevel=2)
    k_max = min(max(ks[-1], int(r.max())), gallery.shape[0] - int(self_mode))
    idx = knn_search(q, gallery, k_max, None if space is not None else metric, exclude_self=self_mode,
                     chunk_size=chunk_size, progress=progress, space=space)
    knn_labels, ql, rk = g_labels[idx][keep], q_labels[keep], r[keep]
    out = {f"recall@{k}": recall_at_k(knn_labels, ql, k) for k in ks}
    out["map@r"] = map_at_r(knn_labels, ql, rk)
    out["r_precision"] = r_precision(knn_labels, ql, rk)
    if nmi:
        feats = q if space is None else space.features(torch.from_numpy(q)).numpy()
        out["nmi"] = nmi_score(feats, q_labels, seed)
    return out


def _check_ks(ks) -> list[int]:
    """``ks`` as a sorted list of distinct positive ints; ``ValueError`` for anything else (1.5, 0, True)."""
    try:
        items = list(ks)
    except TypeError:
        items = [ks]
    if not items:
        raise ValueError("ks must name at least one K")
    out = set()
    for k in items:
        if isinstance(k, (bool, np.bool_)) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"ks must be positive integers, got {k!r}")
        out.add(int(k))
    return sorted(out)
