"""hyperdml: deep metric learning with proxy-based losses in Euclidean and hyperbolic space.

Public API:

- ``hyperdml.losses``: ``ProxyAnchor``, ``ProxyNCA``, ``SoftTriple`` (any space), ``CHEST``,
  ``HypHCLoss``, and the wrappers ``CalibrateProxy`` / ``HierarchicalProxy`` around any proxy
  loss; one call convention, ``loss(embeddings, labels)`` → scalar.
- ``hyperdml.spaces``: ``EuclideanSpace`` (cosine) and ``PoincareSpace(c, clip_r)``.
- ``hyperdml.ops``: the compiled hot ops ``poincare_cdist`` and ``hyphc_triplet_loss``.
- ``hyperdml.geometry``: the Poincaré ball (over geoopt): expmap0, clipping, projection, Lorentz map.
- ``hyperdml.hierarchy``: tree decoding, Dasgupta cost, dendrogram purity; ``hyperdml.viz``: the
  same plus dendrogram / Poincaré-disk plots and ``write_loss_report`` (what ``hyperdml viz`` writes).
- ``hyperdml.data``: benchmark readers, the synthetic hierarchy, samplers, label noise.
- ``hyperdml.metrics.evaluate_retrieval``: Recall@K, MAP@R, R-Precision, NMI through faiss.
- ``hyperdml.models``, ``hyperdml.train``: backbones and heads, the trainer and checkpoints.
- ``hyperdml.optim.make_optimizer``: Riemannian Adam with per-part learning rates.
- ``hyperdml.collectives``: all-gather helpers (the identity outside ``torch.distributed``).
"""

__version__ = "0.1.0"

from hyperdml._lazy import lazy_exports

# Submodules load on first use, so `hyperdml --help` does not pay for importing torch.
_SUBMODULES = {
    "geometry", "ops", "losses", "spaces", "optim", "hierarchy", "viz", "data", "metrics", "models",
    "train", "collectives", "errors", "bench", "pml",
}
_ATTRIBUTES = {
    "poincare_cdist": "ops",
    "hyphc_triplet_loss": "ops",
    "HAS_EXTENSION": "_extension",
    "extension_info": "_extension",
}
__getattr__, __dir__ = lazy_exports(__name__, {**dict.fromkeys(_SUBMODULES, ""), **_ATTRIBUTES}, globals())

__all__ = ["__version__", *sorted(_SUBMODULES), *_ATTRIBUTES]
