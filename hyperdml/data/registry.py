"""The data sets ``build_datasets`` knows and their default class-balanced batches (no torch here:
the command line reads these names before anything heavy is imported)."""

from __future__ import annotations

__all__ = ["DATASETS", "SMALL_DATASETS", "FOLDER_READERS", "SAMPLER_DEFAULTS", "default_batch"]

#: Names accepted by :func:`hyperdml.data.build_datasets`; the last four read a folder (``root``).
DATASETS = ("synthetic", "digits", "cub", "cars", "sop", "inshop")
#: The data sets that need no files (generated or bundled); trained with the small CNN by default.
SMALL_DATASETS = ("synthetic", "digits")
#: folder data set → (module, function) of its reader
FOLDER_READERS = {
    "cub": ("hyperdml.data.cub", "load_cub"),
    "cars": ("hyperdml.data.cars", "load_cars"),
    "sop": ("hyperdml.data.sop", "load_sop"),
    "inshop": ("hyperdml.data.inshop", "load_inshop"),
}
#: data set → (samples per class, classes per batch) of the batch ``hyperdml train`` uses unless
#: told: 4 × 16 = 64 images, except digits, whose training split has only 5 classes (0–4): 12 × 5.
SAMPLER_DEFAULTS = {
    "synthetic": (4, 16), "digits": (12, 5), "cub": (4, 16), "cars": (4, 16), "sop": (4, 16), "inshop": (4, 16),
}


def default_batch(dataset: str, samples_per_class: int | None = None) -> tuple[int, int]:
    """``(batch_size, samples_per_class)`` of ``dataset``'s default batch; with ``samples_per_class``
    given, the batch keeps the data set's number of classes per batch."""
    m, classes = SAMPLER_DEFAULTS[dataset]
    m = m if samples_per_class is None else samples_per_class
    return m * classes, m
