"""``EmbeddingModel``: a backbone and one or two embedding heads, and ``build_model``."""

from __future__ import annotations

import torch
from torch import nn

from hyperdml.models.archs import HEAD_NAMES, HEADS
from hyperdml.models.backbones import ARCHS, build_backbone, load_backbone_weights
from hyperdml.models.heads import HEAD_NORMS, build_head
from hyperdml.spaces import EuclideanSpace, PoincareSpace, Space

__all__ = ["EmbeddingModel", "build_model", "default_head_spaces"]


def default_head_spaces() -> dict[str, Space]:
    """``{"euclidean": EuclideanSpace(), "hyperbolic": PoincareSpace()}``: the spaces with their defaults."""
    return {"euclidean": EuclideanSpace(), "hyperbolic": PoincareSpace()}


class EmbeddingModel(nn.Module):
    """Backbone + embedding heads; ``model(images (B, C, H, W))`` → ``{head name: (B, D_head)}``.

    Each head feeds one space (:attr:`spaces`) and is the head that space asks for
    (:func:`hyperdml.models.heads.build_head`): ``nn.Linear`` for the cosine space and for a ball
    that takes tangent vectors (``PoincareSpace(inputs="tangent")`` clips and maps them: the loss
    and evaluation call ``space.to_space``), :class:`~hyperdml.models.HyperbolicHead` for a ball
    that takes points (``inputs="ball"``), normalised as ``head_norm`` says (``"batch"`` or
    ``"layer"``). Dual (CHEST): both heads on the same features.

    Attributes: :attr:`backbone` (features ``(B, F)``), :attr:`heads` (``nn.ModuleDict``),
    :attr:`spaces` (``{name: Space}``, the space each head's output lives in or is mapped into),
    :attr:`head_sizes` (``{name: D}``).
    """

    def __init__(self, backbone: nn.Module, head_sizes: dict[str, int], spaces: dict[str, Space] | None = None,
                 head_norm: str | None = None):
        super().__init__()
        if not head_sizes:
            raise ValueError("an EmbeddingModel needs at least one head")
        spaces = {**default_head_spaces(), **(spaces or {})}
        missing = [name for name in head_sizes if name not in spaces]
        if missing:
            raise ValueError(f"no space for the head(s) {', '.join(missing)}")
        self.backbone = backbone
        self.spaces = {name: spaces[name] for name in head_sizes}
        self.heads = nn.ModuleDict(
            {name: build_head(backbone.out_features, int(size), self.spaces[name], head_norm or HEAD_NORMS[0])
             for name, size in head_sizes.items()}
        )
        self.head_sizes = {name: int(size) for name, size in head_sizes.items()}

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
    spaces: dict[str, Space] | None = None,
    in_channels: int = 3,
    weights: str | None = None,
    head_norm: str | None = None,
) -> EmbeddingModel:
    """Build an embedding model.

    Args:
        arch: ``"small_cnn"`` (for the synthetic 3×32×32 and digits 1×8×8 sets, any size works),
            ``"resnet18"`` or ``"resnet50"`` (torchvision, ``weights=None``), or a timm ViT/DeiT
            (``"vit_small_patch16_224"``, ``"vit_base_patch16_224"``, ``"deit_small_patch16_224"``,
            ...: :data:`hyperdml.models.archs.VIT_ARCHS`; ``pip install hyperdml[vit]``).
        embedding_size: ``D_E``, size of the Euclidean head (and of a hyperbolic-only head when
            ``hyperbolic_size`` is None).
        head: ``"euclidean"``, ``"hyperbolic"`` or ``"dual"`` (both; CHEST).
        hyperbolic_size: ``D_H`` (default: ``embedding_size``).
        spaces: the space of each head (``{"euclidean": ..., "hyperbolic": ...}``; defaults:
            ``EuclideanSpace()``, ``PoincareSpace()``); it decides the head module (see
            :class:`EmbeddingModel`).
        in_channels: image channels (3 RGB, 1 for digits).
        weights: optional local file of pretrained backbone weights (read with
            ``weights_only=True``; see :func:`~hyperdml.models.backbones.load_backbone_weights`;
            timm, DeiT and DINO files for the ViTs).
        head_norm: normalisation of a :class:`~hyperdml.models.HyperbolicHead` (a head whose
            space takes ball points): ``"batch"`` or ``"layer"`` (None: ``"batch"``).

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
    sizes = {"euclidean": embedding_size, "hyperbolic": d_h}
    backbone = build_backbone(arch, in_channels)
    if weights:
        load_backbone_weights(backbone, weights)
    return EmbeddingModel(backbone, {name: sizes[name] for name in HEAD_NAMES[head]}, spaces, head_norm)
