"""Cars196 (``cars_annos.mat`` + ``car_ims/`` as published by Krause et al.).

``cars_annos.mat`` holds ``annotations`` (a 1×N struct array with fields ``relative_im_path``
(``car_ims/000001.jpg``), ``bbox_x1..bbox_y2``, ``class`` (1..196), ``test``) and
``class_names`` (1×196 cell). DML split: classes 1–98 train, 99–196 test (the ``test`` flag of the
classification split is ignored, as in the DML literature).
"""

from __future__ import annotations

import numpy as np

from hyperdml.data.folders import entry_path, resolve_root
from hyperdml.data.splits import DataSplits, split_by_class_id
from hyperdml.errors import DatasetError

__all__ = ["load_cars"]

NAME = "Cars196"
NUM_TRAIN_CLASSES, NUM_CLASSES = 98, 196  # class ids 1..98 train, 99..196 test


def _text(x) -> str:
    """A MATLAB string as loaded by scipy (``array(['…'])``, possibly nested) → ``str``."""
    x = np.asarray(x)
    while x.dtype == object and x.size == 1:
        x = np.asarray(x.item())
    return str(x.item() if x.size == 1 else "".join(x.ravel().tolist()))


def read_annotations(path) -> tuple[list[str], list[int], list[str] | None]:
    """``cars_annos.mat`` → (relative image paths, class ids 1..C, class names or None)."""
    from scipy.io import loadmat

    try:
        mat = loadmat(str(path))
    except Exception as exc:  # scipy raises several types for a corrupt file
        raise DatasetError(f"{NAME}: cannot read {path} as a MATLAB file: {exc}") from None
    ann = mat.get("annotations")
    if ann is None or ann.dtype.names is None or not {"relative_im_path", "class"} <= set(ann.dtype.names):
        raise DatasetError(
            f"{NAME}: {path} lacks the 'annotations' struct with fields relative_im_path and class"
        )
    ann = ann.ravel()
    paths = [_text(a) for a in ann["relative_im_path"]]
    classes = [int(np.asarray(a).ravel()[0]) for a in ann["class"]]
    names = None
    if "class_names" in mat:
        names = [_text(n) for n in np.asarray(mat["class_names"]).ravel()]
    return paths, classes, names


def load_cars(root, train_transform=None, test_transform=None, image_size: int = 224) -> DataSplits:
    """Read Cars196 from ``root`` (the folder with ``cars_annos.mat``, or its parent) → DataSplits."""
    d = resolve_root(root, "cars_annos.mat", NAME, ("cars196", "CARS196", "Cars196", "cars"))
    rel, classes, names = read_annotations(d / "cars_annos.mat")
    if names is None:
        names = [f"class {i}" for i in range(1, max(classes) + 1)]
    if max(classes) > len(names) or min(classes) < 1:
        raise DatasetError(f"{NAME}: class ids of {d / 'cars_annos.mat'} outside 1..{len(names)}")
    return split_by_class_id(
        [entry_path(d, r, d / "cars_annos.mat", NAME) for r in rel], classes, lambda c: names[c - 1], NUM_TRAIN_CLASSES, NUM_CLASSES,
        d / "cars_annos.mat", NAME, train_transform, test_transform, image_size,
    )
