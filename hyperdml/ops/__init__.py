"""The two hot ops, registered as ``torch.ops.hyperdml.*`` (usable under ``torch.compile``).

- :func:`poincare_cdist`: ``(B, D) × (N, D) → (B, N)`` geodesic distances in the Poincaré ball.
- :func:`hyphc_triplet_loss`: HypHC's per-triplet loss from points, triplets and similarities.

Each has a pure-PyTorch reference in :mod:`hyperdml.ops.reference`. Both take the curvature
magnitude ``c`` as a required Python number in ``[MIN_CURVATURE, MAX_CURVATURE]``.

``torch.ops.hyperdml.*`` (the raw ops, their backward ops, fake kernels, autograd and autocast
rules) exist once this module has been imported, directly or through a module that uses it
(``hyperdml.spaces``, ``hyperdml.losses``, ...). ``import hyperdml`` alone does not import it, so
that the package and its command line start without torch; a process that runs a saved
``torch.export`` program or calls the raw ops must ``import hyperdml.ops`` first. The functions
here, not the raw ops, also work under ``torch.func`` transforms (``grad``, ``vmap``, ``jacrev``).
"""

from hyperdml.ops._checks import MAX_CURVATURE, MIN_CURVATURE, MIN_TEMPERATURE
from hyperdml.ops.hyphc_triplet import hyphc_triplet_loss
from hyperdml.ops.poincare_cdist import poincare_cdist
from hyperdml.ops.reference import (
    hyp_lca_depth_reference,
    hyphc_triplet_loss_reference,
    poincare_cdist_reference,
)

__all__ = [
    "poincare_cdist",
    "hyphc_triplet_loss",
    "poincare_cdist_reference",
    "hyphc_triplet_loss_reference",
    "hyp_lca_depth_reference",
    "MIN_CURVATURE",
    "MAX_CURVATURE",
    "MIN_TEMPERATURE",
]
