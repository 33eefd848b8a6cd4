"""In-Shop Clothes Retrieval (``list_eval_partition.txt`` in ``Eval/`` or the root, images in ``img/…``).

``list_eval_partition.txt``: a count line, a header line, then rows
``img/WOMEN/Dresses/id_00000002/02_1_front.jpg id_00000002 train|query|gallery``. Item ids are the
classes: train items → train labels; query and gallery share the test labels. The clothing
category (``WOMEN/Dresses``) of each item gives the super-classes.
"""

from __future__ import annotations

from pathlib import Path

import torch

from hyperdml.data.base import ImageListDataset
from hyperdml.data.folders import entry_path, read_rows, resolve_root
from hyperdml.data.splits import DataSplits, check_images_exist
from hyperdml.errors import DatasetError

__all__ = ["load_inshop"]

NAME = "In-Shop"
LIST = "list_eval_partition.txt"


def _find_list(root):
    """(data folder, path of list_eval_partition.txt): ``<d>/Eval/`` or ``<d>/``."""
    names = ("In-shop Clothes Retrieval Benchmark", "inshop", "InShop")
    if root is None or not Path(root).expanduser().is_dir():
        resolve_root(root, f"Eval/{LIST}", NAME, names)  # raises the message for a missing root
    for marker in (f"Eval/{LIST}", LIST):
        try:
            d = resolve_root(root, marker, NAME, names)
            return d, d / marker
        except DatasetError as exc:
            if "several folders" in str(exc):
                raise
    root = Path(root).expanduser()
    raise DatasetError(f"{NAME}: expected {root / 'Eval' / LIST} (or {root / LIST}), not found")


def load_inshop(root, train_transform=None, test_transform=None, image_size: int = 224) -> DataSplits:
    """Read In-Shop from ``root`` → DataSplits with ``query`` and ``gallery`` (``test`` = query + gallery)."""
    d, f = _find_list(root)
    rows = read_rows(f, NAME, 3, skip=2)
    by_status: dict[str, list] = {"train": [], "query": [], "gallery": []}
    for r in rows:
        if r[-1] not in by_status:
            raise DatasetError(f"{NAME}: unknown evaluation_status {r[-1]!r} in {f} (train, query or gallery)")
        by_status[r[-1]].append(r)
    for status, rs in by_status.items():
        if not rs:
            raise DatasetError(f"{NAME}: {f} lists no {status} images")
    category = {r[-2]: "/".join(r[0].split("/")[1:3]) for r in rows}
    super_names = sorted(set(category.values()))
    sup = {s: i for i, s in enumerate(super_names)}

    def make(rs, items, tf):
        paths = [entry_path(d, r[0], f, NAME) for r in rs]
        check_images_exist(paths, f, NAME)
        index = {it: i for i, it in enumerate(items)}
        return ImageListDataset(paths, [index[r[-2]] for r in rs], items, tf)

    train_items = sorted({r[-2] for r in by_status["train"]})
    test_items = sorted({r[-2] for r in by_status["query"] + by_status["gallery"]})
    train = make(by_status["train"], train_items, train_transform)
    query = make(by_status["query"], test_items, test_transform)
    gallery = make(by_status["gallery"], test_items, test_transform)
    test = ImageListDataset(
        query.paths + gallery.paths, torch.cat([query.labels, gallery.labels]), test_items, test_transform
    )
    return DataSplits.from_sets(
        train, test, channels=3, image_size=image_size,
        train_super_labels=[sup[category[i]] for i in train_items],
        test_super_labels=[sup[category[i]] for i in test_items],
        super_class_names=super_names, query=query, gallery=gallery,
    )
