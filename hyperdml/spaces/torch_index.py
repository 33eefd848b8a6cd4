"""Exact flat kNN search in torch, for when faiss is not installed.

:class:`TorchFlatIndex` answers like ``faiss.IndexFlatIP`` / ``faiss.IndexFlatL2`` after
``index.add(vectors)``: ``search(queries, k)`` → ``(scores, indices)``, float32 scores computed
from float32 vectors, largest inner product or smallest squared L2 distance first. Equal scores
are ordered by the lower gallery index; scores within float32 rounding of each other may come in
another order than faiss's (its GEMM sums in another order).
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["TorchFlatIndex"]


class TorchFlatIndex:
    """Exact search over the rows of ``vectors (N, D)``.

    Args:
        vectors: the gallery ``(N, D)``, stored as float32.
        inner_product: rank by inner product, largest first (``IndexFlatIP``); otherwise by
            squared L2 distance, smallest first (``IndexFlatL2``).
        block_elements: the score block computed at once holds at most about this many floats
            (queries × gallery rows); the gallery is searched block by block.
    """

    def __init__(self, vectors: np.ndarray, inner_product: bool, block_elements: int = 1 << 24):
        self.vectors = torch.from_numpy(np.ascontiguousarray(vectors, dtype=np.float32))
        if self.vectors.ndim != 2:
            raise ValueError(f"vectors must be (N, D), got shape {tuple(self.vectors.shape)}")
        self.inner_product = bool(inner_product)
        self.block_elements = int(block_elements)
        self.sqnorms = None if self.inner_product else (self.vectors * self.vectors).sum(1)

    @property
    def ntotal(self) -> int:
        """Number of gallery rows ``N``."""
        return self.vectors.shape[0]

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` best gallery rows of each row of ``queries (Q, D)`` → ``(scores (Q, k)``
        float32, ``indices (Q, k)`` int64), best first (ties: lower index first)."""
        q = torch.from_numpy(np.ascontiguousarray(queries, dtype=np.float32))
        n, d = self.vectors.shape
        if q.ndim != 2 or q.shape[1] != d:
            raise ValueError(f"queries must be (Q, {d}), got shape {tuple(q.shape)}")
        if not 1 <= k <= n:
            raise ValueError(f"k must be in [1, {n}] (the gallery's rows), got {k}")
        q_sqnorms = None if self.inner_product else (q * q).sum(1, keepdim=True)
        block = max(k, self.block_elements // max(1, q.shape[0]))
        best_scores = best_idx = None
        for start in range(0, n, block):
            g = self.vectors[start : start + block]
            scores = q @ g.T
            if not self.inner_product:  # ||q - g||^2 = ||q||^2 + ||g||^2 - 2 <q, g>, as faiss
                scores = (q_sqnorms + self.sqnorms[start : start + block] - 2 * scores).clamp_min_(0)
            idx = torch.arange(start, start + g.shape[0]).expand(q.shape[0], -1)
            if best_scores is not None:
                scores = torch.cat([best_scores, scores], 1)
                idx = torch.cat([best_idx, idx], 1)
            best_scores, best_idx = self._best(scores, idx, k)
        return best_scores.numpy(), best_idx.numpy()

    def _best(self, scores: torch.Tensor, idx: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The ``k`` best columns of each row, best first, equal scores in index order: topk, then
        the k chosen sorted by (score, index); rows where a tie crosses the k-th place are
        redone with a stable sort of all their candidates in index order."""
        top, pos = scores.topk(k, dim=1, largest=self.inner_product)
        chosen = idx.gather(1, pos)
        by_index = chosen.argsort(dim=1)
        top, chosen = top.gather(1, by_index), chosen.gather(1, by_index)
        order = top.sort(dim=1, descending=self.inner_product, stable=True).indices
        top, chosen = top.gather(1, order), chosen.gather(1, order)
        kth = top[:, -1:]
        crossing = ((scores == kth).sum(1) > (top == kth).sum(1)).nonzero().flatten()
        if len(crossing):
            s, i = scores[crossing], idx[crossing]
            by_index = i.argsort(dim=1)
            s, i = s.gather(1, by_index), i.gather(1, by_index)
            order = s.sort(dim=1, descending=self.inner_product, stable=True).indices[:, :k]
            top[crossing], chosen[crossing] = s.gather(1, order), i.gather(1, order)
        return top, chosen
