"""Models: shapes of every head, any image size, local weights files and their errors."""

from __future__ import annotations

import pytest
import torch

from hyperdml.errors import CheckpointError
from hyperdml.models import SmallCNN, build_model
from hyperdml.spaces import PoincareSpace


@pytest.mark.parametrize("head, sizes", [
    ("euclidean", {"euclidean": 24}),
    ("hyperbolic", {"hyperbolic": 24}),
    ("dual", {"euclidean": 24, "hyperbolic": 6}),
])
def test_heads_and_shapes(head, sizes, one_thread):
    torch.manual_seed(0)
    model = build_model("small_cnn", embedding_size=24, head=head, hyperbolic_size=6 if head == "dual" else None)
    out = model(torch.randn(5, 3, 32, 32))
    assert set(out) == set(sizes)
    for name, d in sizes.items():
        assert out[name].shape == (5, d) and out[name].dtype == torch.float32
        assert torch.isfinite(out[name]).all()


@pytest.mark.parametrize("channels, size", [(1, 8), (3, 32), (3, 5), (1, 1)])
def test_small_cnn_any_image_size(channels, size, one_thread):
    model = build_model("small_cnn", embedding_size=8, in_channels=channels)
    assert model(torch.randn(2, channels, size, size))["euclidean"].shape == (2, 8)


def test_small_cnn_is_batch_independent(one_thread):
    """GroupNorm, no batch statistics: one sample's output does not depend on its batch (so DDP
    over processes computes what one process does)."""
    torch.manual_seed(0)
    model = build_model("small_cnn", embedding_size=8, head="dual").train()
    x = torch.randn(6, 3, 16, 16)
    full = model(x)
    part = model(x[:2])
    for k in full:
        torch.testing.assert_close(full[k][:2], part[k], rtol=1e-5, atol=1e-6)


def test_hyperbolic_head_is_a_tangent_vector_mapped_by_the_space(one_thread):
    """The model does not clip: large outputs stay large; PoincareSpace.to_space puts them in the ball."""
    torch.manual_seed(0)
    model = build_model("small_cnn", embedding_size=4, head="hyperbolic", spaces={"hyperbolic": PoincareSpace(0.5, 1.0)})
    with torch.no_grad():
        model.heads["hyperbolic"].weight.mul_(1000.0)
    z = model(torch.randn(4, 3, 8, 8))["hyperbolic"]
    assert z.norm(dim=1).max() > 1.0 / 0.5**0.5  # outside the ball of c = 0.5 as a raw vector
    x = PoincareSpace(c=0.5, clip_r=1.0).to_space(z)
    assert (x.norm(dim=1) < 1.0 / 0.5**0.5).all()
    assert model.spaces["hyperbolic"] == PoincareSpace(c=0.5, clip_r=1.0)


@pytest.mark.parametrize("norm", ["batch", "layer"])
def test_hyperbolic_head_standalone(norm, one_thread):
    from hyperdml.losses import ProxyAnchor
    from hyperdml.models import HyperbolicHead
    from hyperdml.spaces import DEFAULT_CURVATURE

    torch.manual_seed(0)
    head = HyperbolicHead(16, 4, norm=norm)
    assert head.space == PoincareSpace(c=DEFAULT_CURVATURE, clip_r=2.3, inputs="ball")
    assert isinstance(head.norm, torch.nn.BatchNorm1d if norm == "batch" else torch.nn.LayerNorm)
    assert head.norm.normalized_shape == (16,) if norm == "layer" else head.norm.num_features == 4
    features = 20 + torch.rand(8, 16)  # large, positive, one common direction
    x = head(features)
    assert x.shape == (8, 4) and x.dtype == torch.float32
    shell = float(torch.tanh(torch.tensor(DEFAULT_CURVATURE**0.5 * 2.3))) / DEFAULT_CURVATURE**0.5
    assert (x.norm(dim=1) <= shell * (1 + 1e-6)).all()
    torch.testing.assert_close(x, head.space.expmap0(torch.nn.functional.normalize(head.tangent(features), dim=1)
                                                    * head.tangent(features).norm(dim=1, keepdim=True).clamp_max(2.3)))
    # the normalisation spreads the outputs over directions (a plain Linear keeps them together)
    assert float(PoincareSpace().collapse_stats(head.tangent(features))[1]) < 0.9
    assert float(PoincareSpace().collapse_stats(torch.nn.Linear(16, 4)(features))[1]) > 0.99
    loss = ProxyAnchor(2, 4, space=head.space)
    loss(x, torch.arange(8) % 2).backward()
    assert head.linear.weight.grad is not None and torch.isfinite(head.linear.weight.grad).all()
    head.eval()
    assert head(features[:1]).shape == (1, 4)  # eval: running statistics, any batch size


def test_hyperbolic_head_bad_norm():
    from hyperdml.models import HyperbolicHead

    with pytest.raises(ValueError, match=r"norm must be one of 'batch', 'layer'.*'group'"):
        HyperbolicHead(8, 4, norm="group")


@pytest.mark.parametrize("arch, features", [("resnet18", 512), ("resnet50", 2048)])
def test_resnets(arch, features, one_thread):
    model = build_model(arch, embedding_size=16, head="dual", hyperbolic_size=4, in_channels=1).eval()
    assert model.backbone.out_features == features
    with torch.no_grad():
        out = model(torch.randn(1, 1, 32, 32))
    assert out["euclidean"].shape == (1, 16) and out["hyperbolic"].shape == (1, 4)


def test_bad_names():
    with pytest.raises(ValueError, match="arch"):
        build_model("vgg", embedding_size=8)
    with pytest.raises(ValueError, match="head"):
        build_model("small_cnn", embedding_size=8, head="spherical")
    with pytest.raises(ValueError, match="embedding_size"):
        build_model("small_cnn", embedding_size=0)


def test_weights_file_roundtrip(tmp_path):
    torch.manual_seed(1)
    source = SmallCNN(3)
    path = tmp_path / "w.pth"
    # as a training script would save it: with a "module." prefix and a classifier to ignore
    state = {f"module.{k}": v for k, v in source.state_dict().items()}
    state["module.fc.weight"] = torch.randn(10, source.out_features)
    torch.save({"state_dict": state}, path)
    torch.manual_seed(2)
    model = build_model("small_cnn", embedding_size=8, weights=str(path))
    for k, v in source.state_dict().items():
        torch.testing.assert_close(model.backbone.state_dict()[k], v, rtol=0, atol=0)


def test_torchvision_style_resnet_weights(tmp_path):
    import torchvision

    torch.manual_seed(3)
    reference = torchvision.models.resnet18(weights=None)
    path = tmp_path / "resnet18.pth"
    torch.save(reference.state_dict(), path)  # torchvision's layout, fc.* included
    model = build_model("resnet18", embedding_size=8, weights=str(path))
    torch.testing.assert_close(model.backbone.net.conv1.weight, reference.conv1.weight, rtol=0, atol=0)
    torch.testing.assert_close(model.backbone.net.layer4[1].bn2.running_var, reference.layer4[1].bn2.running_var)


def test_weights_that_do_not_fit(tmp_path):
    path = tmp_path / "gray.pth"
    torch.save(SmallCNN(1).state_dict(), path)  # 1-channel stem
    with pytest.raises(CheckpointError, match=r"does not fit.*another shape.*block1\.0\.weight"):
        build_model("small_cnn", embedding_size=8, in_channels=3, weights=str(path))
    path2 = tmp_path / "other.pth"
    torch.save({"layer9.weight": torch.zeros(3)}, path2)
    with pytest.raises(CheckpointError, match="missing.*unexpected.*layer9"):
        build_model("small_cnn", embedding_size=8, weights=str(path2))


def test_weights_file_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="weights file not found"):
        build_model("small_cnn", embedding_size=8, weights=str(tmp_path / "nope.pth"))
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"\x00not a torch file" * 10)
    with pytest.raises(CheckpointError, match="cannot read weights file"):
        build_model("small_cnn", embedding_size=8, weights=str(garbage))
    lst = tmp_path / "list.pth"
    torch.save([torch.zeros(2)], lst)
    with pytest.raises(CheckpointError, match="state dict"):
        build_model("small_cnn", embedding_size=8, weights=str(lst))
