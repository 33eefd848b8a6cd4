"""``ViTBackbone``: a timm Vision Transformer (ViT-S/16, ViT-B/16, DeiT) as a feature backbone.

Built with ``timm.create_model(arch, pretrained=False, num_classes=0)``: nothing downloads.
Pretrained weights come from a local file (:func:`load_vit_weights`): a timm or DeiT state dict,
a DINO backbone file (``dino_deitsmall16_pretrain.pth``, ``dino_vitbase16_pretrain.pth``) or a
full DINO training checkpoint (its ``teacher``, as DINO evaluates). timm is an optional
dependency: ``pip install hyperdml[vit]``.
"""

from __future__ import annotations

import argparse
import os

import torch
from torch import nn

from hyperdml.errors import CheckpointError
from hyperdml.models.archs import VIT_ARCHS

__all__ = ["ViTBackbone", "load_vit_weights", "import_timm"]

#: the keys a weights file may hold its state dict under, in the order they are tried
#: (DINO's full checkpoints: ``teacher``/``student``; DeiT: ``model``)
_CONTAINERS = ("teacher", "student", "model", "state_dict", "module")
#: key prefixes of wrappers around the backbone (DDP, DINO's MultiCropWrapper, our ``net.``)
_PREFIXES = ("module.", "backbone.", "net.")
#: classifier and projection heads of the checkpoints (timm's ``head``/``head_dist``, DINO's ``head``)
_HEAD_PREFIXES = ("head.", "head_dist.")


def import_timm():
    """``timm``, or an ``ImportError`` naming the extra that installs it."""
    try:
        import timm
    except ImportError as exc:
        raise ImportError(
            "the ViT backbones need timm, an optional dependency: pip install hyperdml[vit]"
        ) from exc
    return timm


class ViTBackbone(nn.Module):
    """A timm ViT/DeiT without its classifier: images ``(B, C, H, W)`` → features ``(B, F)``.

    The features are timm's pooled output (the class token after the final LayerNorm; DeiT's
    distilled model: the mean of its class and distillation tokens), ``F`` = 192 (DeiT-Ti), 384
    (ViT-S, DeiT-S) or 768 (ViT-B, DeiT-B).

    Args:
        arch: one of :data:`hyperdml.models.archs.VIT_ARCHS`.
        in_channels: image channels (3; another number gets a fresh patch embedding, which then
            takes no pretrained weights).
        img_size: the image side the positional embedding is laid out for (default 224, the
            published weights' grid of 14×14 patches). Other image sizes work too: the
            embedding is resampled to the input's grid on the fly (timm's ``dynamic_img_size``),
            e.g. 32×32 images for a quick test.

    Attributes: :attr:`net` (the timm model; its parameter names are timm's prefixed by
    ``net.``), :attr:`out_features`, :attr:`in_channels`, :attr:`arch`.
    """

    def __init__(self, arch: str = "vit_small_patch16_224", in_channels: int = 3, img_size: int = 224):
        super().__init__()
        if arch not in VIT_ARCHS:
            raise ValueError(f"unknown ViT {arch!r}; expected one of {', '.join(VIT_ARCHS)}")
        for name, value in (("in_channels", in_channels), ("img_size", img_size)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        timm = import_timm()
        self.net = timm.create_model(arch, pretrained=False, num_classes=0, img_size=img_size,
                                     in_chans=in_channels, dynamic_img_size=True)
        self.arch = arch
        self.out_features = int(self.net.num_features)
        self.in_channels = int(in_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, in_channels, H, W)`` → ``(B, out_features)`` (H, W ≥ 16)."""
        if x.dim() != 4 or min(x.shape[-2:]) < self.net.patch_embed.patch_size[0]:
            raise ValueError(f"{self.arch} takes images (batch, {self.in_channels}, H, W) with H, W ≥ "
                             f"{self.net.patch_embed.patch_size[0]}, got {tuple(x.shape)}")
        return self.net(x)


def _read_state(path: str) -> dict:
    if not os.path.isfile(path):
        raise FileNotFoundError(f"weights file not found: {path}")
    try:
        if path.endswith(".safetensors"):
            from safetensors.torch import load_file

            return load_file(path, device="cpu")
        # DINO's full checkpoints also hold their argparse.Namespace of options: plain data
        with torch.serialization.safe_globals([argparse.Namespace]):
            return torch.load(path, map_location="cpu", weights_only=True)
    except ImportError:
        raise ImportError("reading .safetensors weights needs the safetensors package (installed with timm)") from None
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the user's problem to fix
        raise CheckpointError(f"cannot read weights file {path}: {str(exc).splitlines()[0]}") from None


def _strip(key: str) -> str:
    changed = True
    while changed:
        changed = False
        for prefix in _PREFIXES:
            if key.startswith(prefix):
                key, changed = key[len(prefix):], True
    return key


def vit_state_from_file(path: str) -> dict[str, torch.Tensor]:
    """The backbone state dict in a weights file, keys as timm's (classifier / projection heads
    dropped); see :func:`load_vit_weights` for the formats."""
    state = _read_state(path)
    if isinstance(state, dict):
        for key in _CONTAINERS:
            if isinstance(state.get(key), dict):
                state = state[key]
                break
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"weights file {path} does not hold a state dict of tensors")
    given = {_strip(k): v for k, v in state.items()}
    return {k: v for k, v in given.items() if not k.startswith(_HEAD_PREFIXES)}


def load_vit_weights(backbone: ViTBackbone, path: str) -> None:
    """Load pretrained weights for ``backbone`` from the local file ``path``.

    Read with ``torch.load(weights_only=True)`` (no code in the file runs; ``argparse.Namespace``,
    which DINO's checkpoints hold, is the one class allowed besides tensors and plain data), or
    with safetensors for ``.safetensors``. Accepted: a plain state dict (timm's, DINO's backbone files), or one
    under ``teacher`` (DINO's full checkpoints; ``student`` when there is no teacher), ``model``
    (DeiT) or ``state_dict``; prefixes ``module.``, ``backbone.``, ``net.`` are removed, and the
    classifier / DINO projection head (``head.*``, ``head_dist.*``) ignored. A positional
    embedding for another patch grid is resampled (timm's ``resample_abs_pos_embed``). Every
    other parameter must be present with its shape; otherwise
    :class:`~hyperdml.errors.CheckpointError` names the first mismatching keys.
    """
    given = vit_state_from_file(path)
    net = backbone.net
    expected = net.state_dict()
    pos = given.get("pos_embed")
    if pos is not None and "pos_embed" in expected and pos.shape != expected["pos_embed"].shape \
            and pos.dim() == 3 and pos.shape[-1] == expected["pos_embed"].shape[-1]:
        from timm.layers import resample_abs_pos_embed

        prefix = 0 if getattr(net, "no_embed_class", False) else net.num_prefix_tokens
        given["pos_embed"] = resample_abs_pos_embed(pos, list(net.patch_embed.grid_size), num_prefix_tokens=prefix)
    from hyperdml.models.backbones import state_mismatch

    mismatch = state_mismatch(expected, given)
    if mismatch:
        raise CheckpointError(f"weights file {path} does not fit the {backbone.arch} backbone: {mismatch}")
    net.load_state_dict({k: given[k] for k in expected})
