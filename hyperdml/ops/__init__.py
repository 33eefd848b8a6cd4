"""The two hot ops, registered as ``torch.ops.hyperdml.*`` (usable under ``torch.compile``).

- :func:`poincare_cdist`: ``(B, D) × (N, D) → (B, N)`` geodesic distances in the Poincaré ball.
- :func:`hyphc_triplet_loss`: HypHC's per-triplet loss from points, triplets and similarities.

Each has a pure-PyTorch reference in :mod:`hyperdml.ops.reference`.
"""

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
]
