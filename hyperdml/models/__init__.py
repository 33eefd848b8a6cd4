"""Embedding models: backbones (small CNN, torchvision ResNet-18/50) and embedding heads.

- :func:`build_model` → :class:`EmbeddingModel`, ``model(images)`` →
  ``{"euclidean": (B, D_E)}``, ``{"hyperbolic": (B, D_H)}`` or both (dual head, CHEST).
- The hyperbolic output is a tangent vector; map it with
  ``hyperdml.spaces.PoincareSpace(c, clip_r).to_space(z)`` to get ball points.
- Pretrained weights only from a local file (:func:`load_backbone_weights`); nothing downloads.
"""

from hyperdml.models.backbones import ARCHS, ResNetBackbone, SmallCNN, build_backbone, load_backbone_weights
from hyperdml.models.embedding import HEADS, EmbeddingModel, build_model

__all__ = [
    "ARCHS", "HEADS", "EmbeddingModel", "ResNetBackbone", "SmallCNN", "build_backbone", "build_model",
    "load_backbone_weights",
]
