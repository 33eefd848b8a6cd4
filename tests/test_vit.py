"""ViT backbones (timm, random weights, tiny images): shapes, local weights files, no download, the trainer."""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from hyperdml.errors import CheckpointError, ConfigError
from hyperdml.models import VIT_ARCHS, build_backbone, build_model, load_backbone_weights
from hyperdml.train.config import resolve_config

timm = pytest.importorskip("timm")

ROOT = Path(__file__).resolve().parents[1]
FEATURES = {"vit_small_patch16_224": 384, "vit_base_patch16_224": 768, "deit_tiny_patch16_224": 192,
            "deit_small_patch16_224": 384, "deit_base_patch16_224": 768, "deit_small_distilled_patch16_224": 384}


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a connection fails the test (nothing may download)."""
    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args}")
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.mark.parametrize("arch", VIT_ARCHS)
def test_every_vit_builds_offline_and_embeds_tiny_images(arch, one_thread, no_network):
    assert set(FEATURES) == set(VIT_ARCHS)
    torch.manual_seed(0)
    model = build_model(arch, embedding_size=16, head="dual", hyperbolic_size=8)
    assert model.backbone.out_features == FEATURES[arch] and model.backbone.in_channels == 3
    out = model(torch.randn(2, 3, 32, 32))
    assert out["euclidean"].shape == (2, 16) and out["hyperbolic"].shape == (2, 8)
    assert all(torch.isfinite(v).all() for v in out.values())


def test_vit_features_are_timms_pooled_features_at_any_size(one_thread):
    """The backbone is timm's model without classifier; 32×32 and 48×64 inputs resample the 14×14
    positional grid (the published weights' layout) instead of refusing."""
    torch.manual_seed(1)
    backbone = build_backbone("vit_small_patch16_224").eval()
    torch.manual_seed(1)
    reference = timm.create_model("vit_small_patch16_224", pretrained=False, num_classes=0, dynamic_img_size=True).eval()
    x = torch.randn(2, 3, 48, 64)
    with torch.no_grad():
        torch.testing.assert_close(backbone(x), reference(x))
        assert backbone(torch.randn(1, 3, 32, 32)).shape == (1, 384)
    assert tuple(backbone.net.pos_embed.shape) == (1, 197, 384)
    with pytest.raises(ValueError, match="H, W ≥ 16"):
        backbone(torch.randn(1, 3, 8, 8))


def test_one_channel_images(one_thread):
    model = build_model("deit_tiny_patch16_224", embedding_size=4, in_channels=1)
    assert model.backbone.in_channels == 1
    assert model(torch.randn(2, 1, 16, 16))["euclidean"].shape == (2, 4)


def _source(arch="vit_small_patch16_224", **kw):
    torch.manual_seed(5)
    return timm.create_model(arch, pretrained=False, **kw)


def _assert_loaded(backbone, source_state):
    for key, value in backbone.net.state_dict().items():
        torch.testing.assert_close(value, source_state[key], rtol=0, atol=0, msg=key)


def test_weights_in_timm_deit_and_dino_formats_load(tmp_path, one_thread, no_network):
    src = _source(num_classes=1000)  # a classifier: its head.* keys are ignored
    state = src.state_dict()
    backbone_state = {k: v for k, v in state.items() if not k.startswith("head.")}
    files = {
        "timm.pth": state,
        "deit.pth": {"model": state, "epoch": 300},
        "dino_backbone.pth": backbone_state,
        "dino_full.pth": {
            "teacher": {**{f"backbone.{k}": v for k, v in backbone_state.items()},
                        "head.mlp.0.weight": torch.zeros(8, 384), "head.last_layer.weight_g": torch.ones(8, 1)},
            "student": {f"module.backbone.{k}": torch.zeros_like(v) for k, v in backbone_state.items()},
            "epoch": 100, "args": argparse.Namespace(arch="vit_small", patch_size=16),
        },
    }
    for name, obj in files.items():
        torch.save(obj, tmp_path / name)
        backbone = build_backbone("vit_small_patch16_224")
        load_backbone_weights(backbone, str(tmp_path / name))
        _assert_loaded(backbone, state)  # dino_full: the teacher, not the (zero) student

    from safetensors.torch import save_file

    save_file(state, str(tmp_path / "model.safetensors"))
    backbone = build_backbone("vit_small_patch16_224")
    load_backbone_weights(backbone, str(tmp_path / "model.safetensors"))
    _assert_loaded(backbone, state)


def test_distilled_deit_and_another_patch_grid(tmp_path, one_thread):
    src = _source("deit_small_distilled_patch16_224", num_classes=1000)
    torch.save({"model": src.state_dict()}, tmp_path / "deit_distilled.pth")
    backbone = build_backbone("deit_small_distilled_patch16_224")
    load_backbone_weights(backbone, str(tmp_path / "deit_distilled.pth"))
    _assert_loaded(backbone, src.state_dict())

    small_grid = _source(num_classes=0, img_size=64)  # a 4×4 grid: its positional embedding is resampled
    torch.save(small_grid.state_dict(), tmp_path / "grid4.pth")
    backbone = build_backbone("vit_small_patch16_224")
    load_backbone_weights(backbone, str(tmp_path / "grid4.pth"))
    expected = timm.layers.resample_abs_pos_embed(small_grid.pos_embed.detach(), [14, 14], num_prefix_tokens=1)
    torch.testing.assert_close(backbone.net.pos_embed.detach(), expected)
    torch.testing.assert_close(backbone.net.blocks[0].attn.qkv.weight, small_grid.blocks[0].attn.qkv.weight)


def test_weights_that_do_not_fit_are_named(tmp_path, one_thread):
    torch.save(_source("deit_tiny_patch16_224", num_classes=0).state_dict(), tmp_path / "tiny.pth")
    with pytest.raises(CheckpointError, match="does not fit the vit_small_patch16_224 backbone: .*with another shape"):
        load_backbone_weights(build_backbone("vit_small_patch16_224"), str(tmp_path / "tiny.pth"))
    torch.save({"blocks.0.norm1.weight": torch.ones(384)}, tmp_path / "partial.pth")
    with pytest.raises(CheckpointError, match="missing"):
        load_backbone_weights(build_backbone("vit_small_patch16_224"), str(tmp_path / "partial.pth"))
    torch.save({"weights": torch.ones(3), "code": argparse.ArgumentParser}, tmp_path / "pickle.pth")
    with pytest.raises(CheckpointError, match="cannot read weights file"):  # weights_only refuses the class
        load_backbone_weights(build_backbone("vit_small_patch16_224"), str(tmp_path / "pickle.pth"))
    with pytest.raises(FileNotFoundError):
        load_backbone_weights(build_backbone("vit_small_patch16_224"), str(tmp_path / "absent.pth"))


def test_without_timm_the_error_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "timm", None)
    with pytest.raises(ImportError, match=r"pip install hyperdml\[vit\]"):
        build_backbone("vit_small_patch16_224")
    with pytest.raises(ConfigError, match=r"needs timm.*pip install hyperdml\[vit\]"):
        resolve_config(arch="vit_small_patch16_224")


def test_config_takes_the_vit_archs():
    cfg = resolve_config(arch="deit_small_patch16_224")
    assert cfg["arch"] == "deit_small_patch16_224" and cfg["lr"] == 1e-5
    with pytest.raises(ConfigError, match="--arch must be one of"):
        resolve_config(arch="vit_huge_patch14_224")


def test_one_training_step_through_the_trainer(tmp_path):
    """``hyperdml train --arch vit_small_patch16_224 --image-size 32 --max-steps 1`` (random weights),
    then the checkpoint rebuilds the same ViT model (``hyperdml eval`` gives the trainer's numbers)."""
    out = tmp_path / "vit"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    args = ["train", "--arch", "vit_small_patch16_224", "--image-size", "32", "--max-steps", "1",
            "--batch-size", "8", "--samples-per-class", "2", "--embedding-size", "8", "--epochs", "1",
            "--device", "cpu", "--out", str(out), "--quiet"]
    r = subprocess.run([sys.executable, "-m", "hyperdml", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    config = json.loads((out / "config.json").read_text())
    assert config["arch"] == "vit_small_patch16_224" and config["image_size"] == 32
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["step"] == 1 and 0.0 <= metrics["heads"]["euclidean"]["recall@1"] <= 1.0

    from hyperdml.train import build_from_checkpoint, load_checkpoint

    ckpt = load_checkpoint(str(out / "last.pt"))
    model, _ = build_from_checkpoint(ckpt)
    assert type(model.backbone).__name__ == "ViTBackbone"
    trained = {k: v for k, v in ckpt["model"].items() if k.startswith("backbone.net.blocks.")}
    assert len(trained) > 100
    for key, value in model.state_dict().items():
        if key in trained:
            torch.testing.assert_close(value, trained[key], rtol=0, atol=0)
