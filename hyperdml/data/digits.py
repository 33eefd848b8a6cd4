"""scikit-learn's bundled 8×8 digits (offline) with the DML protocol: train on 0–4, test on 5–9."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from hyperdml.data.base import TensorImageDataset
from hyperdml.data.splits import DataSplits

__all__ = ["load_digits"]


def load_digits(image_size: int | None = None, train_transform=None, test_transform=None) -> DataSplits:
    """Digits as ``(1, S, S)`` images in ``[−1, 1]`` (``S = image_size``, default 8: upsampled
    bilinearly when larger). Train labels 0–4 are digits 0–4, test labels 0–4 digits 5–9."""
    from sklearn.datasets import load_digits as sk_load

    data = sk_load()
    images = torch.as_tensor(data.images, dtype=torch.float32).unsqueeze(1) / 8.0 - 1.0  # 0..16 → −1..1
    size = image_size or 8
    if size != 8:
        images = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False)
    target = torch.as_tensor(data.target, dtype=torch.int64)
    train_mask = target < 5
    train = TensorImageDataset(images[train_mask], target[train_mask], [str(d) for d in range(5)], train_transform)
    test = TensorImageDataset(
        images[~train_mask], target[~train_mask] - 5, [str(d) for d in range(5, 10)], test_transform
    )
    return DataSplits.from_sets(train, test, channels=1, image_size=size)
