"""The backbone names (``--arch``) and the head choices (``--head``, ``--hyperbolic-head``), without
importing torch: one definition for the CLI, the configuration and :func:`hyperdml.models.build_model`."""

from __future__ import annotations

__all__ = ["CNN_ARCHS", "VIT_ARCHS", "ARCHS", "HEAD_NAMES", "HEADS", "HYPERBOLIC_HEADS", "HYPERBOLIC_HEAD_ALIASES",
           "is_vit"]

#: the small CNN and torchvision's ResNets
CNN_ARCHS = ("small_cnn", "resnet18", "resnet50")
#: timm's ViTs and DeiTs (16×16 patches, built for 224×224 images; the extra ``hyperdml[vit]``)
VIT_ARCHS = (
    "vit_small_patch16_224",   # ViT-S/16: DINO's ViT-S/16 and timm's ViT-S/16 weights
    "vit_base_patch16_224",    # ViT-B/16: DINO's ViT-B/16 and timm's ViT-B/16 weights
    "deit_tiny_patch16_224",
    "deit_small_patch16_224",
    "deit_base_patch16_224",
    "deit_small_distilled_patch16_224",  # DeiT-S with the distillation token (Hyp-ViT's and HIER's DeiT-S)
)
ARCHS = CNN_ARCHS + VIT_ARCHS

#: the heads of each ``head`` choice, in the order a loss takes their outputs
HEAD_NAMES = {"euclidean": ("euclidean",), "hyperbolic": ("hyperbolic",), "dual": ("euclidean", "hyperbolic")}
#: the embedding head choices (``--head``; ``auto`` there: the one the loss needs)
HEADS = tuple(HEAD_NAMES)
#: the hyperbolic head: ``linear`` (``nn.Linear``: tangent vectors, clipped and mapped by the loss's
#: space), ``batch`` or ``layer`` (:class:`hyperdml.models.HyperbolicHead` with that ``norm``: ball points)
HYPERBOLIC_HEADS = ("linear", "batch", "layer")
#: other names of the hyperbolic heads, read from configs and checkpoints: ``normalized`` is ``layer``
HYPERBOLIC_HEAD_ALIASES = {"normalized": "layer"}


def is_vit(arch: str) -> bool:
    """Whether ``arch`` is one of the timm ViT backbones (:data:`VIT_ARCHS`)."""
    return arch in VIT_ARCHS
