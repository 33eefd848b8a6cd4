"""Ball points reduced to the 2-D unit disk: :class:`~hyperdml.spaces.tangent_pca.TangentPCA`.

``TangentPCA(c)``: PCA in the tangent space at the origin (``logmap0``), then ``expmap0`` and a
scaling by ``√c`` onto the unit disk; see :mod:`hyperdml.spaces.tangent_pca` for the choices.
"""

from __future__ import annotations

import numpy as np

from hyperdml.spaces.tangent_pca import TangentPCA

__all__ = ["TangentPCA", "to_disk"]


def to_disk(points, c: float, fit_on=None) -> tuple[np.ndarray, float]:
    """Ball points ``(N, D)`` of curvature −c → unit-disk coordinates ``(N, 2)`` and the explained fraction.

    The tangent PCA is fitted on ``fit_on`` (``(M, D)``, e.g. the proxies) or on ``points``.
    """
    pca = TangentPCA(c).fit(points if fit_on is None else fit_on)
    return pca.transform(points), pca.explained
