"""Proxy-based DML losses on one interface, ``loss(embeddings, labels)`` → scalar.

- :class:`ProxyAnchor`, :class:`ProxyNCA`, :class:`SoftTriple`: in any space
  (``space=EuclideanSpace()`` by default, or ``PoincareSpace(c, clip_r)``); in Euclidean space
  they equal pytorch-metric-learning's losses of the same name, and take PML's call
  (``loss(embeddings, labels, indices_tuple)`` with a miner's output), keywords and
  ``get_logits`` (:mod:`hyperdml.losses.pml_compat`). PML's distance-based losses and miners
  compute in the ball with :class:`hyperdml.pml.PoincareDistance`.
- :class:`CHEST`: Euclidean + hyperbolic SoftTriple + HypHC on the hyperbolic proxies.
- :class:`HypHCLoss`: HypHC's triplet loss (the regulariser CHEST uses).
- :class:`ProxyLoss`: the two-stage base class (class similarity, then loss) wrappers plug into.
- The loss protocol, shared by every loss here: ``input_spaces`` (the space of each embedding
  argument), ``proxy_sets()`` (the class proxies held, as :class:`ProxySet` by name),
  ``set_epoch(e)``, ``set_gathered_inputs(gathered)`` (the inputs are the batch all-gathered over
  processes) and ``parts`` (named terms of the last call, for logging).
- :class:`CalibrateProxy` (CP): wraps any ProxyLoss; per-class FIFO queues of past embeddings
  (global centers), composite similarity (proxy term + centred queue term) and proxy calibration
  from ``start_epoch`` on.
- :class:`HierarchicalProxy` (HPL): wraps any ProxyLoss; k-means groups of the class proxies with
  learnable group proxies, the base loss applied again at every level on pseudo-labels.
"""

from hyperdml.losses.base import ProxyLoss
from hyperdml.losses.calibrate_proxy import CalibrateProxy
from hyperdml.losses.chest import CHEST
from hyperdml.losses.hierarchical_proxy import HierarchicalProxy
from hyperdml.losses.hyphc import HypHCLoss, similarity_from_features
from hyperdml.losses.proxy_anchor import ProxyAnchor
from hyperdml.losses.proxy_nca import ProxyNCA
from hyperdml.losses.proxy_set import ProxySet
from hyperdml.losses.wrappers import ProxyLossWrapper
from hyperdml.losses.soft_triple import SoftTriple
from hyperdml.spaces import EuclideanSpace, PoincareSpace

__all__ = [
    "ProxyLoss",
    "ProxyLossWrapper",
    "ProxySet",
    "ProxyAnchor",
    "ProxyNCA",
    "SoftTriple",
    "CHEST",
    "CalibrateProxy",
    "HierarchicalProxy",
    "HypHCLoss",
    "similarity_from_features",
    "EuclideanSpace",
    "PoincareSpace",
]
