"""Embedding models: backbones (small CNN, torchvision ResNet-18/50) and embedding heads.

- :func:`build_model` → :class:`EmbeddingModel`, ``model(images)`` →
  ``{"euclidean": (B, D_E)}``, ``{"hyperbolic": (B, D_H)}`` or both (dual head, CHEST).
- :class:`HyperbolicHead`: LayerNorm → Linear → clip → ``expmap0``; outputs points of the ball,
  for a hyperbolic loss with ``space=head.space`` (``PoincareSpace(inputs="ball")``). A plain
  ``nn.Linear`` head outputs tangent vectors that ``PoincareSpace(inputs="tangent")`` maps.
- Pretrained weights only from a local file (:func:`load_backbone_weights`); nothing downloads.
"""

from hyperdml.models.backbones import ARCHS, ResNetBackbone, SmallCNN, build_backbone, load_backbone_weights
from hyperdml.models.embedding import HEAD_NAMES, HEADS, EmbeddingModel, build_model, default_head_spaces
from hyperdml.models.heads import HyperbolicHead, build_head

__all__ = [
    "ARCHS", "HEADS", "HEAD_NAMES", "EmbeddingModel", "HyperbolicHead", "ResNetBackbone", "SmallCNN", "build_backbone",
    "build_head", "build_model", "default_head_spaces", "load_backbone_weights",
]
