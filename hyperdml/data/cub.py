"""CUB-200-2011 (``CUB_200_2011/``: images.txt, image_class_labels.txt, classes.txt, images/…).

DML split: classes 1–100 train, 101–200 test (all images of a class on one side).
"""

from __future__ import annotations

from hyperdml.data.base import ImageListDataset, remap_labels
from hyperdml.data.folders import read_rows, resolve_root, to_int
from hyperdml.data.splits import DataSplits, check_images_exist
from hyperdml.errors import DatasetError

__all__ = ["load_cub"]

NAME = "CUB-200-2011"
NUM_TRAIN_CLASSES = 100  # class ids 1..100 train, 101..200 test


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
    splits = {}
    for split, keep in (("train", lambda c: c <= NUM_TRAIN_CLASSES), ("test", lambda c: c > NUM_TRAIN_CLASSES)):
        ids = [i for i in sorted(images) if keep(classes[i])]
        if not ids:
            raise DatasetError(f"{NAME}: no {split} images in {d / 'images.txt'} (train: classes 1–100, test: 101–200)")
        paths = [str(d / "images" / images[i]) for i in ids]
        check_images_exist(paths, d / "images.txt", NAME)
        labels, raw = remap_labels([classes[i] for i in ids])
        tf = train_transform if split == "train" else test_transform
        splits[split] = ImageListDataset(paths, labels, [names[c] for c in raw], tf)
    return DataSplits(
        train=splits["train"], test=splits["test"],
        num_train_classes=len(splits["train"].class_names), num_test_classes=len(splits["test"].class_names),
        channels=3, image_size=image_size,
        train_class_names=splits["train"].class_names, test_class_names=splits["test"].class_names,
    )
