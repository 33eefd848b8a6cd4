"""hyperdml: deep metric learning with proxy-based losses in Euclidean and hyperbolic space.

Public API:

- ``hyperdml.ops``: the compiled hot ops ``poincare_cdist`` and ``hyphc_triplet_loss``.
- ``hyperdml.geometry``: the Poincaré ball (over geoopt): expmap0, clipping, projection, Lorentz map.
"""

__version__ = "0.1.0"

from hyperdml import geometry, ops  # noqa: E402
from hyperdml._extension import HAS_EXTENSION, extension_info  # noqa: E402
from hyperdml.ops import hyphc_triplet_loss, poincare_cdist  # noqa: E402

__all__ = [
    "__version__",
    "geometry",
    "ops",
    "poincare_cdist",
    "hyphc_triplet_loss",
    "HAS_EXTENSION",
    "extension_info",
]
