"""``EuclideanSpace``: cosine similarity of L2-normalised vectors (PML's ``CosineSimilarity``)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from hyperdml.spaces.base import Space, _promote, register_space

__all__ = ["EuclideanSpace", "unit_rows"]


def unit_rows(x: torch.Tensor) -> torch.Tensor:
    """Rows ``(..., D)`` scaled to unit L2 norm, without overflow for huge rows (zero rows stay 0).

    ``F.normalize`` squares the entries, so float32 rows of norm ~1e20 overflow to ``inf`` and
    become zero vectors; dividing by the largest entry first keeps their direction.
    """
    scale = x.abs().amax(dim=-1, keepdim=True)
    scaled = x / torch.where(scale > 0, scale, torch.ones_like(scale))
    return F.normalize(scaled, p=2, dim=-1)


@register_space
class EuclideanSpace(Space):
    """Euclidean space with cosine similarity, as PML's ``CosineSimilarity``.

    - ``to_space``: identity (normalisation happens inside :meth:`similarity`, as in PML, so the
      head output's norm is free).
    - ``similarity(x, p) = ⟨x/‖x‖, p/‖p‖⟩`` ∈ ``[−1, 1]``, ``(B, D) × (M, D) → (B, M)``.
    - distance: the chordal distance of the unit vectors, ``‖x̂ − p̂‖² = 2 − 2 cos``.
    - features (k-means, NMI, angle similarities) and class means: unit vectors and the mean of a
      class's unit vectors (the cosine only sees directions).
    - trees: single linkage on the cosine; retrieval: faiss inner product on unit vectors.
    - proxies: a plain ``nn.Parameter`` ``(M, D)``, initialised with Kaiming-normal (fan-out), as
      PML's ``ProxyAnchorLoss``.
    """

    kind = "euclidean"
    metric = "cosine"
    label = "euclidean"
    spherical_features = True

    def to_space(self, h: torch.Tensor, check: bool = True) -> torch.Tensor:
        if check:
            self.check_inputs(h, "head outputs")
        return h

    def similarity(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        x, y = _promote(x, y)
        return unit_rows(x) @ unit_rows(y).transpose(-1, -2)

    def sq_distance_matrix(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        x, y = _promote(x, y)
        return (2 - 2 * unit_rows(x) @ unit_rows(y).transpose(-1, -2)).clamp_min(0)

    # Both set statistics are linear in the unit vectors of a set: mean_m cos(x, q_m) = ⟨x̂, centre⟩
    # and mean_m ‖p̂ − q̂_m‖² = 2 − 2⟨p̂, centre⟩, so a set is summarised by its centre alone.
    def summarize_sets(self, sets: torch.Tensor, counts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(centres (C, D), counts (C,))``: the mean of each set's unit vectors (0 for an empty set)."""
        mask = torch.arange(sets.shape[1], device=sets.device)[None, :] < counts[:, None]
        unit = unit_rows(sets) * mask[..., None]
        return unit.sum(dim=1) / counts.clamp_min(1).to(sets.dtype)[:, None], counts

    def mean_similarity(self, x: torch.Tensor, summary) -> torch.Tensor:
        x, centres = _promote(x, summary[0])
        return unit_rows(x) @ centres.t()

    def mean_sq_distance(self, points: torch.Tensor, summary) -> torch.Tensor:
        points, centres = _promote(points, summary[0])
        out = 2 - 2 * (unit_rows(points) * centres[:, None, :]).sum(-1)
        return torch.where(summary[1][:, None] > 0, out, torch.zeros_like(out))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return unit_rows(x)

    def class_mean(self, points: torch.Tensor) -> torch.Tensor:
        """``(C, K, D)`` → ``(C, D)``: the mean of each class's unit vectors."""
        return unit_rows(points).mean(dim=1)

    def init_proxies(self, num: int, dim: int) -> nn.Parameter:
        weight = torch.empty(num, dim)
        nn.init.kaiming_normal_(weight, mode="fan_out")
        return nn.Parameter(weight)

    def decode_tree(self, points) -> np.ndarray:
        """Single linkage on the cosine (:func:`hyperdml.hierarchy.cosine_tree`); heights ``1 − cos``."""
        from hyperdml.hierarchy import cosine_tree

        return cosine_tree(points)

    def tree_axis(self, points) -> dict:
        return {"kind": "cosine", "depth_max": None, "short": "single linkage on cosine",
                "description": "single linkage on the cosine similarity"}

    def knn(self, query, gallery, k, *, exclude_self=False, chunk_size=4096, progress=False):
        """Cosine kNN: faiss inner product on L2-normalised float32 vectors."""
        from hyperdml.metrics.knn import faiss_knn, l2_normalize

        g = l2_normalize(np.asarray(gallery, np.float64))
        q = g if query is gallery else l2_normalize(np.asarray(query, np.float64))
        return faiss_knn(q, g, k, inner_product=True, exclude_self=exclude_self, chunk_size=chunk_size,
                         progress=progress)
