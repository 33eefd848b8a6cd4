"""Default image transforms of the real benchmarks (the usual DML protocol, ImageNet statistics).

- train: ``RandomResizedCrop(image_size, scale=(0.16, 1))`` + horizontal flip + normalise;
- test: ``Resize(round(image_size · 256 / 224))`` + ``CenterCrop(image_size)`` + normalise.

Both take a PIL image and return a float tensor ``(3, image_size, image_size)``.
"""

from __future__ import annotations

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "default_train_transform", "default_test_transform", "Standardize"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def default_train_transform(image_size: int = 224):
    """PIL image → augmented, normalised ``(3, image_size, image_size)`` tensor."""
    from torchvision import transforms as T

    return T.Compose([
        T.RandomResizedCrop(image_size, scale=(0.16, 1.0)),
        T.RandomHorizontalFlip(),
        T.ToTensor(),
        T.Normalize(IMAGENET_MEAN, IMAGENET_STD),
    ])


def default_test_transform(image_size: int = 224):
    """PIL image → resized, centre-cropped, normalised ``(3, image_size, image_size)`` tensor."""
    from torchvision import transforms as T

    return T.Compose([
        T.Resize(round(image_size * 256 / 224)),
        T.CenterCrop(image_size),
        T.ToTensor(),
        T.Normalize(IMAGENET_MEAN, IMAGENET_STD),
    ])


class Standardize:
    """Tensor transform ``x ↦ (x − mean) / std`` (picklable, for in-memory data sets)."""

    def __init__(self, mean: float = 0.5, std: float = 0.25):
        self.mean, self.std = float(mean), float(std)

    def __call__(self, x):
        return (x - self.mean) / self.std

    def __repr__(self) -> str:
        return f"Standardize(mean={self.mean}, std={self.std})"
