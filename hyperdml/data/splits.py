"""``DataSplits``: what ``build_datasets`` returns (train / test sets and what the model needs)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from torch.utils.data import Dataset

from hyperdml.errors import DatasetError

__all__ = ["DataSplits", "check_images_exist"]


@dataclass
class DataSplits:
    """Train and test sets with disjoint classes (the DML protocol) and their class tree.

    ``train`` / ``test`` items are ``(image (channels, image_size, image_size) float, int label)``;
    train labels are ``0..num_train_classes−1``, test labels ``0..num_test_classes−1``.
    ``*_super_labels[i]`` is the super-class (index into ``super_class_names``) of class ``i`` when
    the data set has a known hierarchy, else ``None``. In-Shop: ``query`` and ``gallery`` are the
    two test lists (labels shared) and ``test`` is query followed by gallery.
    """

    train: Dataset
    test: Dataset
    num_train_classes: int
    num_test_classes: int
    channels: int
    image_size: int
    train_class_names: list
    test_class_names: list
    train_super_labels: list | None = None
    test_super_labels: list | None = None
    super_class_names: list | None = None
    query: Dataset | None = None
    gallery: Dataset | None = None


def check_images_exist(paths: list, listed_in: Path, dataset: str) -> None:
    """DatasetError if the first or last listed image is missing (cheap check of the layout)."""
    for p in (paths[0], paths[-1]):
        if not Path(p).is_file():
            raise DatasetError(f"{dataset}: expected image {p} (listed in {listed_in}), not found")
