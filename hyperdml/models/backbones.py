"""Backbones: a small CNN for the small embedded data sets, torchvision ResNets and timm ViTs.

Every backbone is an ``nn.Module`` mapping images ``(B, C_in, H, W)`` to features ``(B, F)`` and
has ``out_features`` (``F``) and ``in_channels`` attributes. None of them downloads anything:
torchvision models are built with ``weights=None``, timm models with ``pretrained=False``;
pretrained weights come only from a local file (:func:`load_backbone_weights`). The names are
:data:`hyperdml.models.archs.ARCHS`.
"""

from __future__ import annotations

import torch
from torch import nn

from hyperdml.errors import CheckpointError
from hyperdml.models.archs import ARCHS, is_vit

__all__ = ["SmallCNN", "ResNetBackbone", "build_backbone", "load_backbone_weights", "ARCHS"]


def state_mismatch(expected: dict, given: dict) -> str | None:
    """What keeps ``given`` from loading into a module whose state dict is ``expected``.

    Returns ``None`` when every key is there with the same shape, else a short description of
    the missing, unexpected and differently shaped entries (three examples of each).
    """
    missing = [k for k in expected if k not in given]
    unexpected = [k for k in given if k not in expected]
    wrong = [f"{k} {tuple(given[k].shape)} (model: {tuple(v.shape)})" for k, v in expected.items()
             if k in given and isinstance(v, torch.Tensor) and isinstance(given[k], torch.Tensor)
             and given[k].shape != v.shape]
    parts = [f"{len(keys)} {what} (e.g. {'; '.join(keys[:3])})"
             for what, keys in (("missing", missing), ("unexpected", unexpected), ("with another shape", wrong))
             if keys]
    return ", ".join(parts) or None


def _block(cin: int, cout: int, groups: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.GroupNorm(groups, cout), nn.ReLU(inplace=True)
    )


class SmallCNN(nn.Module):
    """A four-block CNN for small images (the synthetic 3×32×32 and digits 1×8×8 sets).

    ``(B, in_channels, H, W)`` → ``(B, width·4)`` features. 3×3 convolutions with GroupNorm (no
    batch statistics: a sample's features do not depend on the rest of its batch, so one process
    and several DDP processes compute the same thing, and ``train()``/``eval()`` agree), a 2×2
    max-pool after each of the first three blocks (skipped once the map is smaller than 4×4) and a
    global average pool, so any image size ≥ 1×1 works. On 32×32 images the blocks run at 32, 16,
    8 and 4 pixels (about 13 M multiply-adds per image).
    """

    def __init__(self, in_channels: int = 3, width: int = 32):
        super().__init__()
        self.in_channels = int(in_channels)
        w = int(width)
        self.block1 = _block(in_channels, w, 8)
        self.block2 = _block(w, 2 * w, 8)
        self.block3 = _block(2 * w, 4 * w, 8)
        self.block4 = _block(4 * w, 4 * w, 8)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.out_features = 4 * w

    @staticmethod
    def _down(x: torch.Tensor) -> torch.Tensor:
        return nn.functional.max_pool2d(x, 2) if min(x.shape[-2:]) >= 4 else x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, in_channels, H, W)`` → ``(B, out_features)``."""
        x = self._down(self.block1(x))
        x = self._down(self.block2(x))
        x = self._down(self.block3(x))
        x = self.block4(x)
        return self.pool(x).flatten(1)


class ResNetBackbone(nn.Module):
    """A torchvision ResNet (``weights=None``) without its classifier: ``(B, C, H, W)`` → ``(B, F)``.

    ``F`` = 512 (resnet18) or 2048 (resnet50). ``in_channels != 3`` replaces the first convolution.
    The torchvision module is :attr:`net` (its ``fc`` is ``nn.Identity``), so its parameter names
    are torchvision's prefixed by ``net.``.
    """

    def __init__(self, arch: str = "resnet50", in_channels: int = 3):
        super().__init__()
        import torchvision

        if arch not in ("resnet18", "resnet50"):
            raise ValueError(f"unknown ResNet {arch!r}; expected 'resnet18' or 'resnet50'")
        net = getattr(torchvision.models, arch)(weights=None)
        if in_channels != 3:
            net.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.out_features = net.fc.in_features
        net.fc = nn.Identity()
        self.net = net
        self.in_channels = int(in_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, in_channels, H, W)`` → ``(B, out_features)``."""
        return self.net(x)


def build_backbone(arch: str, in_channels: int = 3) -> nn.Module:
    """The backbone named ``arch`` (one of :data:`ARCHS`) for ``in_channels``-channel images.

    The ViTs (:class:`~hyperdml.models.vit.ViTBackbone`) need timm (``pip install
    hyperdml[vit]``; ``ImportError`` saying so otherwise); their positional embedding is laid out
    for 224×224 images (the published weights) and resampled for other sizes.
    """
    if arch == "small_cnn":
        return SmallCNN(in_channels)
    if arch in ("resnet18", "resnet50"):
        return ResNetBackbone(arch, in_channels)
    if is_vit(arch):
        from hyperdml.models.vit import ViTBackbone

        return ViTBackbone(arch, in_channels)
    raise ValueError(f"unknown arch {arch!r}; expected one of {', '.join(ARCHS)}")


def _strip(key: str) -> str:
    for prefix in ("module.", "backbone.", "net."):
        if key.startswith(prefix):
            key = key[len(prefix):]
    return key


def load_backbone_weights(backbone: nn.Module, path: str) -> None:
    """Load pretrained weights for ``backbone`` from the local file ``path`` (``weights_only=True``).

    Accepts a plain state dict (e.g. torchvision's ``resnet50-*.pth``), or a dict holding one
    under ``"state_dict"`` or ``"model"``. Prefixes ``module.``, ``backbone.``, ``net.`` are
    ignored, and so are a classifier's ``fc.*`` keys. Every backbone parameter must be present
    with its shape; otherwise :class:`~hyperdml.errors.CheckpointError` names the first
    mismatching keys. A missing file raises ``FileNotFoundError``. A ViT backbone takes timm,
    DeiT and DINO files (:func:`hyperdml.models.vit.load_vit_weights`).
    """
    import os

    from hyperdml.models.vit import ViTBackbone, load_vit_weights

    if isinstance(backbone, ViTBackbone):
        return load_vit_weights(backbone, path)

    if not os.path.isfile(path):
        raise FileNotFoundError(f"weights file not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the user's problem to fix
        raise CheckpointError(f"cannot read weights file {path}: {str(exc).splitlines()[0]}") from None
    if isinstance(state, dict):
        for key in ("state_dict", "model"):
            if isinstance(state.get(key), dict):
                state = state[key]
                break
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"weights file {path} does not hold a state dict of tensors")
    given = {_strip(k): v for k, v in state.items() if not _strip(k).startswith("fc.")}
    target = backbone.net if isinstance(backbone, ResNetBackbone) else backbone
    expected = target.state_dict()
    mismatch = state_mismatch(expected, given)
    if mismatch:
        raise CheckpointError(f"weights file {path} does not fit the {type(backbone).__name__} backbone: {mismatch}")
    target.load_state_dict({k: given[k] for k in expected})
