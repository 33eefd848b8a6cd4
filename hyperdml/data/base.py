"""Dataset classes shared by the readers: a list of image files, and images held in a tensor.

Every dataset has ``.labels`` (1-D int64 tensor, never loads an image), ``.class_names`` and
returns ``(image FloatTensor (C, H, W), int label)`` items. ``build_datasets(label_noise=...)``
replaces ``.labels`` of the training set and keeps the originals in ``.clean_labels``.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch.utils.data import Dataset

from hyperdml.data.folders import check_regular_file
from hyperdml.errors import DatasetError

__all__ = ["ImageListDataset", "TensorImageDataset", "remap_labels"]


def remap_labels(raw: Sequence) -> tuple[torch.Tensor, list]:
    """Raw class ids ``(N,)`` → ``(labels (N,) int64 in 0..C−1, sorted distinct raw ids (C,))``."""
    distinct = sorted(set(raw))
    index = {r: i for i, r in enumerate(distinct)}
    return torch.tensor([index[r] for r in raw], dtype=torch.int64), distinct


class ImageListDataset(Dataset):
    """Images read lazily from files with PIL (converted to RGB), then ``transform``.

    Args:
        paths: ``N`` image file paths.
        labels: ``N`` integer labels in ``0..C−1``.
        class_names: ``C`` names.
        transform: PIL image → tensor ``(3, H, W)``; ``None`` gives ``ToTensor()`` in ``[0, 1]``.
    """

    def __init__(self, paths: Sequence[str], labels, class_names: Sequence[str], transform: Callable | None = None):
        self.paths = [str(p) for p in paths]
        self.labels = torch.as_tensor(labels, dtype=torch.int64).reshape(-1)
        if len(self.paths) != len(self.labels):
            raise ValueError(f"{len(self.paths)} paths but {len(self.labels)} labels")
        self.class_names = list(class_names)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.paths)

    def load_image(self, index: int):
        """The ``index``-th image as an RGB PIL image (DatasetError naming the file if unreadable)."""
        from PIL import Image

        path = self.paths[index]
        check_regular_file(path, "cannot read image")  # a FIFO would block the reader forever
        try:
            with Image.open(path) as img:
                return img.convert("RGB")
        except (OSError, ValueError) as exc:
            raise DatasetError(f"cannot read image {path}: {exc}") from None

    def __getitem__(self, index: int):
        img = self.load_image(index)
        if self.transform is None:
            from torchvision.transforms.functional import to_tensor

            return to_tensor(img), int(self.labels[index])
        return self.transform(img), int(self.labels[index])


class TensorImageDataset(Dataset):
    """Images held in memory: ``images (N, C, H, W)`` float, ``labels (N,)``; optional ``transform``
    (tensor → tensor) applied per item."""

    def __init__(self, images: torch.Tensor, labels, class_names: Sequence[str], transform: Callable | None = None):
        self.images = images
        self.labels = torch.as_tensor(labels, dtype=torch.int64).reshape(-1)
        if images.shape[0] != len(self.labels):
            raise ValueError(f"{images.shape[0]} images but {len(self.labels)} labels")
        self.class_names = list(class_names)
        self.transform = transform

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, index: int):
        img = self.images[index]
        if self.transform is not None:
            img = self.transform(img)
        return img, int(self.labels[index])
