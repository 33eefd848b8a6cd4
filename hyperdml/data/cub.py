"""CUB-200-2011 (``CUB_200_2011/``: images.txt, image_class_labels.txt, classes.txt, images/…).

DML split: classes 1–100 train, 101–200 test (all images of a class on one side).
"""

from __future__ import annotations

from hyperdml.data.folders import entry_path, read_rows, resolve_root, to_int, unique_ids
from hyperdml.data.splits import DataSplits, split_by_class_id
from hyperdml.errors import DatasetError

__all__ = ["load_cub"]

NAME = "CUB-200-2011"
NUM_TRAIN_CLASSES, NUM_CLASSES = 100, 200  # class ids 1..100 train, 101..200 test


def load_cub(root, train_transform=None, test_transform=None, image_size: int = 224) -> DataSplits:
    """Read CUB-200-2011 from ``root`` (the ``CUB_200_2011`` folder or its parent) → DataSplits."""
    d = resolve_root(root, "images.txt", NAME, ("CUB_200_2011",))
    image_file, class_file, names_file = d / "images.txt", d / "image_class_labels.txt", d / "classes.txt"
    images = unique_ids(((to_int(r[0], image_file, NAME), r[1]) for r in read_rows(image_file, NAME, 2)),
                        image_file, NAME, "image id")
    classes = unique_ids(((to_int(r[0], class_file, NAME), to_int(r[1], class_file, NAME))
                          for r in read_rows(class_file, NAME, 2)), class_file, NAME, "image id")
    names = unique_ids(((to_int(r[0], names_file, NAME), r[1]) for r in read_rows(names_file, NAME, 2)),
                       names_file, NAME, "class id")
    missing = sorted(set(images) - set(classes))
    if missing:
        raise DatasetError(f"{NAME}: image id {missing[0]} of images.txt has no class in {class_file}")
    unknown = sorted(set(classes.values()) - set(names))
    if unknown:
        raise DatasetError(f"{NAME}: class id {unknown[0]} of {class_file} is not in {d / 'classes.txt'}")
    ids = sorted(images)
    return split_by_class_id(
        [entry_path(d / "images", images[i], image_file, NAME) for i in ids], [classes[i] for i in ids], names.__getitem__,
        NUM_TRAIN_CLASSES, NUM_CLASSES, d / "images.txt", NAME, train_transform, test_transform, image_size,
    )
