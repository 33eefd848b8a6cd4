"""Stanford Online Products (``Stanford_Online_Products/``: Ebay_train.txt, Ebay_test.txt, <super>_final/…).

Each list has a header and rows ``image_id class_id super_class_id path``; the train/test split
is the published one (11 318 / 11 316 classes). The 12 super-classes (bicycle, …, toaster) give
``*_super_labels``; their names come from the image folders (``bicycle_final`` → ``bicycle``).
"""

from __future__ import annotations

from hyperdml.data.base import ImageListDataset, remap_labels
from hyperdml.data.folders import entry_path, read_rows, resolve_root, to_int
from hyperdml.data.splits import DataSplits, check_images_exist
from hyperdml.errors import DatasetError

__all__ = ["load_sop"]

NAME = "Stanford Online Products"


def load_sop(root, train_transform=None, test_transform=None, image_size: int = 224) -> DataSplits:
    """Read SOP from ``root`` (the ``Stanford_Online_Products`` folder or its parent) → DataSplits."""
    d = resolve_root(root, "Ebay_train.txt", NAME, ("Stanford_Online_Products",))
    super_names: dict[int, str] = {}
    splits, supers = {}, {}
    for split in ("train", "test"):
        f = d / f"Ebay_{split}.txt"
        rows = read_rows(f, NAME, 4, skip=1)
        cls = [to_int(r[1], f, NAME) for r in rows]
        sup = [to_int(r[2], f, NAME) for r in rows]
        for s, r in zip(sup, rows):
            super_names.setdefault(s, r[3].split("/")[0].removesuffix("_final"))
        class_super = {}
        for c, s in zip(cls, sup):
            if class_super.setdefault(c, s) != s:
                raise DatasetError(f"{NAME}: class {c} has two super-classes in {f}")
        paths = [entry_path(d, r[3], f, NAME) for r in rows]
        check_images_exist(paths, f, NAME)
        labels, raw = remap_labels(cls)
        tf = train_transform if split == "train" else test_transform
        splits[split] = ImageListDataset(paths, labels, [str(c) for c in raw], tf)
        supers[split] = [class_super[c] for c in raw]
    ids = sorted(super_names)
    pos = {s: i for i, s in enumerate(ids)}
    return DataSplits.from_sets(
        splits["train"], splits["test"], channels=3, image_size=image_size,
        train_super_labels=[pos[s] for s in supers["train"]], test_super_labels=[pos[s] for s in supers["test"]],
        super_class_names=[super_names[s] for s in ids],
    )
