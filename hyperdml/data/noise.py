"""Symmetric label noise for the robustness experiments of the Calibrate-Proxy paper."""

from __future__ import annotations

import torch

__all__ = ["inject_label_noise"]


def inject_label_noise(labels, rate: float, num_classes: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Replace each label, with probability ``rate``, by a uniformly drawn *different* class.

    Args:
        labels: ``(N,)`` integer labels in ``0..num_classes−1``.
        rate: flip probability in ``[0, 1]``.
        num_classes: number of classes (≥ 2 when ``rate > 0``).
        seed: the draw depends only on it (a private ``torch.Generator``).

    Returns:
        ``(noisy_labels (N,) int64, flipped_mask (N,) bool)``; ``noisy != labels`` exactly where
        ``flipped_mask``.
    """
    labels = torch.as_tensor(labels, dtype=torch.int64).reshape(-1)
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"label noise rate must be in [0, 1], got {rate}")
    if labels.numel() and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"labels must lie in 0..{num_classes - 1}")
    if rate > 0 and num_classes < 2:
        raise ValueError("label noise needs at least 2 classes")
    g = torch.Generator().manual_seed(int(seed))
    flipped = torch.rand(labels.shape, generator=g) < rate
    if rate == 0:
        return labels.clone(), flipped
    shift = torch.randint(1, num_classes, labels.shape, generator=g)  # 1..C−1: never the same class
    noisy = torch.where(flipped, (labels + shift) % num_classes, labels)
    return noisy, flipped
