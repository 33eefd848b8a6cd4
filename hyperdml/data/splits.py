"""``DataSplits``: what ``build_datasets`` returns (train / test sets and what the model needs)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from torch.utils.data import Dataset

from hyperdml.data.base import ImageListDataset, remap_labels
from hyperdml.data.folders import check_regular_file
from hyperdml.errors import DatasetError

__all__ = ["DataSplits", "check_images_exist", "check_evaluable", "check_trainable", "split_by_class_id"]


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

    @classmethod
    def from_sets(cls, train: Dataset, test: Dataset, channels: int, image_size: int, **extra) -> DataSplits:
        """DataSplits with the class counts and names taken from ``train`` / ``test.class_names``;
        ``extra``: the optional fields (super-labels, query, gallery)."""
        return cls(
            train=train, test=test, num_train_classes=len(train.class_names), num_test_classes=len(test.class_names),
            channels=channels, image_size=image_size,
            train_class_names=train.class_names, test_class_names=test.class_names, **extra,
        )


def check_images_exist(paths: list, listed_in: Path, dataset: str) -> None:
    """DatasetError if the first or last listed image is missing or not a regular file (cheap check
    of the layout)."""
    for p in (paths[0], paths[-1]):
        if not Path(p).exists():
            raise DatasetError(f"{dataset}: expected image {p} (listed in {listed_in}), not found")
        check_regular_file(p, f"{dataset} (image listed in {listed_in})")


def check_evaluable(splits: DataSplits, dataset: str) -> None:
    """DatasetError unless retrieval on the test split is defined: a class with at least 2 images
    (each image is ranked against the others), or for In-Shop a query whose item is in the gallery."""
    import torch

    if splits.query is not None and splits.gallery is not None:
        if not set(splits.query.labels.tolist()) & set(splits.gallery.labels.tolist()):
            raise DatasetError(f"{dataset}: no query item has an image in the gallery; retrieval is undefined")
        return
    if not bool((torch.bincount(splits.test.labels) >= 2).any()):
        raise DatasetError(f"{dataset}: every class of the test split has one image; retrieval needs a class "
                           "with at least 2 (each image is ranked against the others)")


def check_trainable(splits: DataSplits, dataset: str) -> None:
    """DatasetError unless a model can be trained and evaluated on ``splits``: the training split
    has at least 2 classes (a metric has nothing to separate in one) and the test split passes
    :func:`check_evaluable` (else the run would fail at its first evaluation)."""
    import torch

    train_classes = int(torch.unique(splits.train.labels).numel())
    if train_classes < 2:
        raise DatasetError(f"{dataset}: the training split has {train_classes} class; metric learning needs at least 2")
    check_evaluable(splits, dataset)


def split_by_class_id(paths: Sequence[str], class_ids: Sequence[int], class_name: Callable[[int], str],
                      num_train_classes: int, num_classes: int, listed_in: Path, dataset: str,
                      train_transform, test_transform, image_size: int) -> DataSplits:
    """The DML split of an image list by class id: ids ``1..num_train_classes`` train, the rest
    test (all images of a class on one side), labels renumbered from 0 in each split.

    ``class_name(id)`` names a class; ``listed_in`` (the list file) and ``dataset`` go into the
    DatasetError raised when a split is empty or its first / last image is missing.
    """
    sets = {}
    for split in ("train", "test"):
        ids = [i for i, c in enumerate(class_ids) if (c <= num_train_classes) == (split == "train")]
        if not ids:
            raise DatasetError(
                f"{dataset}: no {split} images in {listed_in} "
                f"(train: classes 1–{num_train_classes}, test: {num_train_classes + 1}–{num_classes})"
            )
        split_paths = [paths[i] for i in ids]
        check_images_exist(split_paths, listed_in, dataset)
        labels, raw = remap_labels([class_ids[i] for i in ids])
        tf = train_transform if split == "train" else test_transform
        sets[split] = ImageListDataset(split_paths, labels, [class_name(c) for c in raw], tf)
    return DataSplits.from_sets(sets["train"], sets["test"], channels=3, image_size=image_size)
