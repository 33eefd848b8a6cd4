"""``EmbeddingModel``: a backbone and one or two linear embedding heads, and ``build_model``."""

from __future__ import annotations

import torch
from torch import nn

from hyperdml.models.backbones import ARCHS, build_backbone, load_backbone_weights

__all__ = ["EmbeddingModel", "build_model", "HEADS"]

HEADS = ("euclidean", "hyperbolic", "dual")


class EmbeddingModel(nn.Module):
    """Backbone + linear heads; ``model(images (B, C, H, W))`` → ``{head name: (B, D_head)}``.

    - ``"euclidean"``: ``z_E = W_E·f + b_E`` (the losses' ``EuclideanSpace`` normalises it).
    - ``"hyperbolic"``: ``z_H = W_H·f + b_H``, a tangent vector at the origin of the ball. The
      model does not clip or map it: the loss's ``PoincareSpace(c, clip_r).to_space`` does
      (clip to ``clip_r``, then ``expmap0``), so the same head output feeds the loss and, through
      ``to_space``, evaluation and plots.
    - dual (CHEST): both heads on the same features.

    Attributes: :attr:`backbone` (features ``(B, F)``), :attr:`heads` (``nn.ModuleDict`` of
    ``nn.Linear``), :attr:`c`, :attr:`clip_r` (the ball the hyperbolic output is meant for),
    :attr:`head_sizes` (``{name: D}``).
    """

    def __init__(self, backbone: nn.Module, head_sizes: dict[str, int], c: float = 0.1, clip_r: float | None = 2.3):
        super().__init__()
        if not head_sizes:
            raise ValueError("an EmbeddingModel needs at least one head")
        self.backbone = backbone
        self.heads = nn.ModuleDict(
            {name: nn.Linear(backbone.out_features, int(size)) for name, size in head_sizes.items()}
        )
        self.head_sizes = {name: int(size) for name, size in head_sizes.items()}
        self.c, self.clip_r = float(c), clip_r

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """``images (B, C, H, W)`` → ``{"euclidean": (B, D_E)}``, ``{"hyperbolic": (B, D_H)}`` or both."""
        features = self.backbone(images)
        return {name: head(features) for name, head in self.heads.items()}


def build_model(
    arch: str,
    *,
    embedding_size: int = 128,
    head: str = "euclidean",
    hyperbolic_size: int | None = None,
    c: float = 0.1,
    clip_r: float | None = 2.3,
    in_channels: int = 3,
    weights: str | None = None,
) -> EmbeddingModel:
    """Build an embedding model.

    Args:
        arch: ``"small_cnn"`` (for the synthetic 3×32×32 and digits 1×8×8 sets, any size works),
            ``"resnet18"`` or ``"resnet50"`` (torchvision, ``weights=None``).
        embedding_size: ``D_E``, size of the Euclidean head (and of a hyperbolic-only head when
            ``hyperbolic_size`` is None).
        head: ``"euclidean"``, ``"hyperbolic"`` or ``"dual"`` (both; CHEST).
        hyperbolic_size: ``D_H`` (default: ``embedding_size``).
        c, clip_r: the ball the hyperbolic head output is meant for (kept on the model for
            reference; the clipping and ``expmap0`` happen in the loss's ``PoincareSpace``).
        in_channels: image channels (3 RGB, 1 for digits).
        weights: optional local file of pretrained backbone weights (read with
            ``weights_only=True``; see :func:`~hyperdml.models.backbones.load_backbone_weights`).

    Returns:
        An :class:`EmbeddingModel`; ``model(images (B, in_channels, H, W))`` → dict of
        ``(B, D)`` head outputs.
    """
    if arch not in ARCHS:
        raise ValueError(f"unknown arch {arch!r}; expected one of {', '.join(ARCHS)}")
    if head not in HEADS:
        raise ValueError(f"unknown head {head!r}; expected one of {', '.join(HEADS)}")
    for name, value in (("embedding_size", embedding_size), ("hyperbolic_size", hyperbolic_size)):
        if value is not None and (isinstance(value, bool) or int(value) != value or value < 1):
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    d_h = embedding_size if hyperbolic_size is None else hyperbolic_size
    sizes = {"euclidean": {"euclidean": embedding_size}, "hyperbolic": {"hyperbolic": d_h},
             "dual": {"euclidean": embedding_size, "hyperbolic": d_h}}[head]
    backbone = build_backbone(arch, in_channels)
    if weights:
        load_backbone_weights(backbone, weights)
    return EmbeddingModel(backbone, sizes, c=c, clip_r=clip_r)
