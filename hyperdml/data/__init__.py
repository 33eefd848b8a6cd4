"""Data: the benchmark readers, the synthetic hierarchy, digits, samplers and label noise.

``build_datasets(name, root, ...)`` → :class:`DataSplits` (train / test sets with disjoint classes).
Names (:data:`DATASETS`): ``synthetic`` (default, generated in memory), ``digits``
(scikit-learn's 8×8 digits), ``cub``, ``cars``, ``sop``, ``inshop`` (local folders in their
published layouts; nothing downloads). Every dataset has ``.labels`` (int64 ``(N,)``, no image
loading). Names load on first use, so reading :data:`DATASETS` does not import torch.
"""

from hyperdml._lazy import lazy_exports

_EXPORTS = {
    "build_datasets": "build", "DataSplits": "splits", "DATASETS": "registry", "SMALL_DATASETS": "registry",
    "ClassBalancedSampler": "samplers", "DistributedClassBalancedSampler": "samplers",
    "inject_label_noise": "noise", "ImageListDataset": "base", "TensorImageDataset": "base",
}

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())

__all__ = sorted(_EXPORTS)
