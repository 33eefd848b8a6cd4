"""Data: the benchmark readers, the synthetic hierarchy, digits, samplers and label noise.

``build_datasets(name, root, ...)`` → :class:`DataSplits` (train / test sets with disjoint classes).
Names: ``synthetic`` (default, generated in memory), ``digits`` (scikit-learn's 8×8 digits),
``cub``, ``cars``, ``sop``, ``inshop`` (local folders in their published layouts; nothing
downloads). Every dataset has ``.labels`` (int64 ``(N,)``, no image loading).
"""

from __future__ import annotations

from hyperdml.data.base import ImageListDataset, TensorImageDataset
from hyperdml.data.noise import inject_label_noise
from hyperdml.data.samplers import ClassBalancedSampler, DistributedClassBalancedSampler
from hyperdml.data.splits import DataSplits
from hyperdml.errors import DatasetError

__all__ = [
    "build_datasets", "DataSplits", "DATASETS", "ClassBalancedSampler", "DistributedClassBalancedSampler",
    "inject_label_noise", "ImageListDataset", "TensorImageDataset",
]

#: Names accepted by :func:`build_datasets`; the last four read a folder given as ``root``.
DATASETS = ("synthetic", "digits", "cub", "cars", "sop", "inshop")
_FOLDER_READERS = {
    "cub": ("hyperdml.data.cub", "load_cub"),
    "cars": ("hyperdml.data.cars", "load_cars"),
    "sop": ("hyperdml.data.sop", "load_sop"),
    "inshop": ("hyperdml.data.inshop", "load_inshop"),
}


def build_datasets(name: str, root: str | None = None, *, image_size: int | None = None, seed: int = 0,
                   label_noise: float = 0.0, train_transform=None, test_transform=None) -> DataSplits:
    """Build the train / test splits of data set ``name``.

    Args:
        name: one of :data:`DATASETS`.
        root: the data folder (required for cub, cars, sop, inshop; ignored otherwise).
        image_size: side of the images the model gets (default 224 for the folders, 32 for
            synthetic, 8 for digits).
        seed: seed of the synthetic images and of the label noise.
        label_noise: symmetric noise rate on the *train* labels (:func:`inject_label_noise`);
            the train set then keeps ``.clean_labels`` and ``.noise_mask``.
        train_transform, test_transform: override the default transforms (PIL image → tensor for
            the folders, tensor → tensor for synthetic / digits).

    Returns:
        :class:`DataSplits`; items are ``(image (channels, image_size, image_size), int label)``.
    """
    import importlib

    if image_size is not None and (isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1):
        raise ValueError(f"image_size must be a positive int (pixels per side) or None, got {image_size!r}")
    if name == "synthetic":
        from hyperdml.data.synthetic import make_synthetic

        splits = make_synthetic(image_size=image_size or 32, seed=seed)
        if train_transform is not None:
            splits.train.transform = train_transform
        if test_transform is not None:
            splits.test.transform = test_transform
    elif name == "digits":
        from hyperdml.data.digits import load_digits

        splits = load_digits(image_size, train_transform, test_transform)
    elif name in _FOLDER_READERS:
        from hyperdml.data.transforms import default_test_transform, default_train_transform

        size = image_size or 224
        module, fn = _FOLDER_READERS[name]
        reader = getattr(importlib.import_module(module), fn)
        splits = reader(
            root,
            train_transform if train_transform is not None else default_train_transform(size),
            test_transform if test_transform is not None else default_test_transform(size),
            image_size=size,
        )
    else:
        raise DatasetError(f"unknown data set {name!r}; choose one of {', '.join(DATASETS)}")
    if label_noise:
        clean = splits.train.labels
        noisy, mask = inject_label_noise(clean, label_noise, splits.num_train_classes, seed)
        splits.train.clean_labels, splits.train.noise_mask, splits.train.labels = clean, mask, noisy
    return splits
