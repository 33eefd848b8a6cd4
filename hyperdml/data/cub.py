"""CUB-200-2011 (``CUB_200_2011/``: images.txt, image_class_labels.txt, classes.txt, images/…).

DML split: classes 1–100 train, 101–200 test (all images of a class on one side).
"""

from __future__ import annotations

from hyperdml.data.folders import read_rows, resolve_root, to_int
from hyperdml.data.splits import DataSplits, split_by_class_id
from hyperdml.errors import DatasetError

__all__ = ["load_cub"]

NAME = "CUB-200-2011"
NUM_TRAIN_CLASSES, NUM_CLASSES = 100, 200  # class ids 1..100 train, 101..200 test


def load_cub(root, train_transform=None, test_transform=None, image_size: int = 224) -> DataSplits:
    """Read CUB-200-2011 from ``root`` (the ``CUB_200_2011`` folder or its parent) → DataSplits."""
    d = resolve_root(root, "images.txt", NAME, ("CUB_200_2011",))
    images = {to_int(r[0], d / "images.txt", NAME): r[1] for r in read_rows(d / "images.txt", NAME, 2)}
    class_file = d / "image_class_labels.txt"
    classes = {to_int(r[0], class_file, NAME): to_int(r[1], class_file, NAME) for r in read_rows(class_file, NAME, 2)}
    names = {to_int(r[0], d / "classes.txt", NAME): r[1] for r in read_rows(d / "classes.txt", NAME, 2)}
    missing = sorted(set(images) - set(classes))
    if missing:
        raise DatasetError(f"{NAME}: image id {missing[0]} of images.txt has no class in {class_file}")
    unknown = sorted(set(classes.values()) - set(names))
    if unknown:
        raise DatasetError(f"{NAME}: class id {unknown[0]} of {class_file} is not in {d / 'classes.txt'}")
    ids = sorted(images)
    return split_by_class_id(
        [str(d / "images" / images[i]) for i in ids], [classes[i] for i in ids], names.__getitem__,
        NUM_TRAIN_CLASSES, NUM_CLASSES, d / "images.txt", NAME, train_transform, test_transform, image_size,
    )
