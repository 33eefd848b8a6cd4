"""PCA in the tangent space at the origin of the ball, then ``expmap0``: ball points → the unit disk.

1. ``v = logmap0(x)``: ball points → tangent vectors at the origin. ``‖v‖`` is proportional to
   the geodesic distance from the origin (``d_c(0, x) = 2‖v‖``), and the direction of ``v`` is
   the direction of ``x``, so depth in the hierarchy (distance from the origin) and angles are
   kept exactly by this step.
2. PCA *about the origin* (uncentred): the two directions of largest ``Σ ⟨v, u⟩²``. It is not
   centred on the mean, so the origin (the root of a HypHC tree) stays at the centre of the disk
   and a point's distance from the origin can only shrink (projection is a contraction).
3. ``expmap0`` of the 2-D coordinates in the same ball, then scaled by ``√c``, so the disk of
   curvature −c becomes the unit disk. Geodesics there are arcs orthogonal to the unit circle.

The basis is fitted on the proxies and applied to test embeddings, so both share coordinates.
``explained`` is the fraction of ``Σ‖v‖²`` kept by the 2-D projection. For ``D = 2`` the map is
the identity (up to a rotation onto the principal axes). Hyperbolic MDS (e.g. Sala et al. 2018,
h-MDS) would keep pairwise distances better but has no out-of-sample map for the embeddings; the
tangent PCA is exact on the radial structure, which is what HypHC's decoding reads.
"""

from __future__ import annotations

import numpy as np
import torch

from hyperdml import geometry
from hyperdml.ops._checks import check_curvature

__all__ = ["TangentPCA"]


def _points(x) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        x = torch.as_tensor(np.asarray(x))
    x = x.detach().to("cpu", torch.float64)
    if x.dim() != 2:
        raise ValueError(f"points must have shape (N, D), got {tuple(x.shape)}")
    return x


class TangentPCA:
    """PCA in the tangent space at the origin of the ball of curvature −c, then ``expmap0``.

    Args:
        c: curvature magnitude of the ball the points live in.
        dim: output dimension (2 for the disk plot).

    Attributes (after :meth:`fit`): ``components (D, dim)`` orthonormal columns,
    ``explained`` (float in ``[0, 1]``).
    """

    def __init__(self, c: float, dim: int = 2):
        self.c, self.dim = check_curvature(c), int(dim)
        self.components: torch.Tensor | None = None
        self.explained = float("nan")

    def fit(self, points) -> "TangentPCA":
        """Fit the principal directions on ball points ``(N, D)`` (``N ≥ 1``)."""
        v = geometry.logmap0(_points(points), self.c)
        d = v.shape[1]
        if d <= self.dim:  # pad with zero directions: identity embedding of the coordinates
            self.components = torch.eye(d, self.dim, dtype=torch.float64)
            self.explained = 1.0
            return self
        _, s, vh = torch.linalg.svd(v, full_matrices=False)
        self.components = vh[: self.dim].T.contiguous()
        total = float((s**2).sum())
        self.explained = float((s[: self.dim] ** 2).sum() / total) if total > 0 else 1.0
        return self

    def transform(self, points) -> np.ndarray:
        """Ball points ``(N, D)`` → unit-disk coordinates ``(N, dim)`` (float64 array, norms < 1)."""
        if self.components is None:
            raise RuntimeError("call fit() first")
        x = _points(points)
        if x.shape[1] != self.components.shape[0]:
            raise ValueError(f"points have dimension {x.shape[1]}, the fit had {self.components.shape[0]}")
        y = geometry.expmap0(geometry.logmap0(x, self.c) @ self.components, self.c)
        return (y * self.c**0.5).numpy()

    def fit_transform(self, points) -> np.ndarray:
        """:meth:`fit` then :meth:`transform` on the same points."""
        return self.fit(points).transform(points)
