"""Spaces: the one owner of every geometric decision, as geoopt's manifold objects are.

A space maps a head's output into the space (:meth:`Space.to_space`), measures distances and
similarities between embeddings and proxies, creates and reads the proxies, averages points,
decodes trees, searches nearest neighbours and serialises itself. Losses, wrappers, metrics,
the hierarchy tools, plots, the trainer and checkpoints ask the space and never branch on the
geometry, so "hyperbolic SoftTriple" is ``SoftTriple(..., space=PoincareSpace())``.

- :class:`EuclideanSpace`: cosine similarity of L2-normalised vectors (PML's ``CosineSimilarity``).
- :class:`PoincareSpace`: the Poincaré ball of curvature −c. Head outputs are tangent vectors
  (``inputs="tangent"``: clipped to ``clip_r`` and mapped by ``expmap0``) or points already in the
  ball (``inputs="ball"``); the similarity is the negative geodesic distance, affinely rescaled so
  that it spans the cosine's range ``[−1, 1]`` and the Euclidean default hyperparameters of every
  loss keep their meaning.
- :func:`space_from_config` rebuilds a space from :meth:`Space.config` (checkpoints store it).
"""

from hyperdml.spaces.base import Space, space_from_config
from hyperdml.spaces.euclidean import EuclideanSpace
from hyperdml.spaces.poincare import DEFAULT_CLIP_R, DEFAULT_CURVATURE, PoincareSpace
from hyperdml.spaces.tangent_pca import TangentPCA

__all__ = ["Space", "EuclideanSpace", "PoincareSpace", "space_from_config", "TangentPCA", "DEFAULT_CURVATURE",
           "DEFAULT_CLIP_R"]
