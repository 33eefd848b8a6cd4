"""``build_datasets``: a data set's train / test splits by name (see :mod:`hyperdml.data`)."""

from __future__ import annotations

import importlib

from hyperdml.data.noise import inject_label_noise
from hyperdml.data.registry import DATASETS, FOLDER_READERS
from hyperdml.data.splits import DataSplits
from hyperdml.errors import DatasetError

__all__ = ["build_datasets"]


def build_datasets(name: str, root: str | None = None, *, image_size: int | None = None, seed: int = 0,
                   label_noise: float = 0.0, train_transform=None, test_transform=None) -> DataSplits:
    """Build the train / test splits of data set ``name``.

    Args:
        name: one of :data:`~hyperdml.data.registry.DATASETS`.
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
    elif name in FOLDER_READERS:
        from hyperdml.data.transforms import default_test_transform, default_train_transform

        size = image_size or 224
        module, fn = FOLDER_READERS[name]
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
