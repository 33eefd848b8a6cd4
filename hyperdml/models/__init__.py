"""Embedding models: backbones (small CNN, torchvision ResNet-18/50, timm ViT/DeiT) and embedding heads.

- :func:`build_model` → :class:`EmbeddingModel`, ``model(images)`` →
  ``{"euclidean": (B, D_E)}``, ``{"hyperbolic": (B, D_H)}`` or both (dual head, CHEST).
- :class:`HyperbolicHead`: Linear → BatchNorm1d (or LayerNorm → Linear) → clip → ``expmap0``; outputs points of the ball,
  for a hyperbolic loss with ``space=head.space`` (``PoincareSpace(inputs="ball")``). A plain
  ``nn.Linear`` head outputs tangent vectors that ``PoincareSpace(inputs="tangent")`` maps.
- :class:`ViTBackbone`: a timm ViT/DeiT (``--arch vit_small_patch16_224``, ...; needs timm,
  ``pip install hyperdml[vit]``).
- Pretrained weights only from a local file (:func:`load_backbone_weights`); nothing downloads.

Names load on first use, so :mod:`hyperdml.models.archs` (the ``--arch`` and ``--head`` names) imports no torch.
"""

from hyperdml._lazy import lazy_exports

_EXPORTS = {
    "ARCHS": "archs", "CNN_ARCHS": "archs", "VIT_ARCHS": "archs", "HEADS": "archs", "HEAD_NAMES": "archs",
    "HYPERBOLIC_HEADS": "archs",
    "ResNetBackbone": "backbones", "SmallCNN": "backbones", "build_backbone": "backbones",
    "load_backbone_weights": "backbones",
    "ViTBackbone": "vit",
    "EmbeddingModel": "embedding", "build_model": "embedding",
    "default_head_spaces": "embedding",
    "HEAD_NORMS": "heads", "HyperbolicHead": "heads", "build_head": "heads",
    "archs": "", "backbones": "", "vit": "", "embedding": "", "heads": "",
}

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())

__all__ = sorted(k for k, v in _EXPORTS.items() if v)
