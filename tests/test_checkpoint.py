"""Checkpoints: atomic writes, round trips with geoopt parameters, and refusal of bad files."""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from hyperdml.errors import CheckpointError
from hyperdml.losses import CHEST
from hyperdml.models import build_model
from hyperdml.optim import make_optimizer
from hyperdml.train.checkpoint import FORMAT, load_checkpoint, save_checkpoint
from hyperdml.train.checkpoint import build_from_checkpoint

ROOT = Path(__file__).resolve().parents[1]

CONFIG = {"arch": "small_cnn", "head": "dual", "embedding_size": 8, "hyperbolic_size": 4, "c": 0.1, "clip_r": 2.3,
          "loss": "chest", "loss_args": {"centers_per_class": 2}, "in_channels": 3, "num_classes": 5}


def _trained_state():
    torch.manual_seed(0)
    model = build_model("small_cnn", embedding_size=8, head="dual", hyperbolic_size=4)
    loss = CHEST(5, 8, 4, centers_per_class=2)
    opt = make_optimizer(model.backbone, loss, model.heads, lr=1e-3)
    out = model(torch.randn(10, 3, 8, 8))
    loss(out["euclidean"], out["hyperbolic"], torch.arange(10) % 5).backward()
    opt.step()
    state = {"format": FORMAT, "version": 1, "config": dict(CONFIG), "epoch": 1, "step": 7,
             "model": model.state_dict(), "loss": loss.state_dict(), "optimizer": opt.state_dict(),
             "scheduler": {"last_step": 7}, "rng": {"torch": torch.get_rng_state()}, "metrics": None,
             "class_names": [str(i) for i in range(5)], "super_labels": [0, 0, 1, 1, 1], "super_class_names": ["a", "b"]}
    return model, loss, opt, state


def test_round_trip_with_manifold_parameters(tmp_path, one_thread):
    model, loss, opt, state = _trained_state()
    path = tmp_path / "ck.pt"
    save_checkpoint(path, state)
    loaded = load_checkpoint(path)
    assert loaded["step"] == 7 and loaded["class_names"] == state["class_names"]
    # weights_only: only plain tensors went in (the ManifoldParameter proxies included)
    assert type(loaded["loss"]["hyperbolic.proxies"]) is torch.Tensor
    model2, loss2 = build_from_checkpoint(loaded)
    for a, b in zip(model.state_dict().values(), model2.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    torch.testing.assert_close(loss2.hyperbolic.proxies.data, loss.hyperbolic.proxies.data, rtol=0, atol=0)
    assert type(loss2.hyperbolic.proxies).__name__ == "ManifoldParameter"
    assert loss2.hyphc.generator.get_state().equal(loss.hyphc.generator.get_state())
    opt2 = make_optimizer(model2.backbone, loss2, model2.heads, lr=1e-3)
    opt2.load_state_dict(loaded["optimizer"])
    assert [g["name"] for g in opt2.param_groups] == [g["name"] for g in opt.param_groups]
    assert not list(tmp_path.glob(".*tmp"))  # no temporary file left behind


def test_failed_write_leaves_the_previous_checkpoint(tmp_path, monkeypatch):
    _, _, _, state = _trained_state()
    path = tmp_path / "last.pt"
    save_checkpoint(path, state)
    before = path.read_bytes()

    def broken_fsync(fd):
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, dict(state, step=8))
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert load_checkpoint(path)["step"] == 7
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]
    with pytest.raises(Exception):
        save_checkpoint(path, dict(state, step=9, config={"fn": lambda: 0}))  # unpicklable
    assert load_checkpoint(path)["step"] == 7 and sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]


def test_killed_writer_leaves_a_valid_checkpoint(tmp_path):
    """A process killed (SIGKILL) while writing checkpoints in a loop never leaves a broken last.pt."""
    path = tmp_path / "last.pt"
    save_checkpoint(path, {"config": {}, "epoch": 0, "step": 0, "model": {"w": torch.zeros(4)}, "loss": {}})
    script = textwrap.dedent(f"""
        import torch, sys
        from hyperdml.train.checkpoint import save_checkpoint
        w = torch.zeros(3_000_000)
        i = 0
        while True:
            i += 1
            w.fill_(i)
            save_checkpoint({str(path)!r}, {{"config": {{}}, "epoch": 0, "step": i, "model": {{"w": w}}, "loss": {{}}}})
            if i == 2:
                print("writing", flush=True)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.PIPE,
                            env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"})
    try:
        assert proc.stdout.readline().strip() == b"writing"
        time.sleep(0.3)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    ck = load_checkpoint(path)
    assert ck["step"] >= 2
    w = ck["model"]["w"]
    assert w.shape == (3_000_000,) and bool((w == ck["step"]).all())


def _write(path: Path, obj) -> Path:
    torch.save(obj, path)
    return path


class Foreign:
    def __init__(self):
        self.x = 1


@pytest.mark.parametrize("case, match", [
    ("truncated", "truncated or corrupt"),
    ("bitflip", "CRC-32|truncated or corrupt"),
    ("garbage", "truncated or corrupt"),
    ("empty", "empty"),
    ("foreign_object", "weights_only"),
    ("plain_pickle", "truncated or corrupt"),
    ("state_dict", "not a hyperdml checkpoint"),
    ("tensor", "not a dict"),
    ("missing_keys", "missing model, loss"),
    ("newer_version", "version 99"),
])
@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_bad_files_are_refused(tmp_path, case, match):
    _, _, _, state = _trained_state()
    path = tmp_path / f"{case}.pt"
    if case in ("truncated", "bitflip"):
        save_checkpoint(path, state)
        data = bytearray(path.read_bytes())
        if case == "truncated":
            data = data[: len(data) // 2]
        else:
            for i in range(len(data) // 3, len(data) // 3 + 64):
                data[i] ^= 0xFF
        path.write_bytes(bytes(data))
    elif case == "garbage":
        path.write_bytes(os.urandom(4096))
    elif case == "empty":
        path.write_bytes(b"")
    elif case == "foreign_object":
        _write(path, {"format": FORMAT, "obj": Foreign()})
    elif case == "plain_pickle":
        path.write_bytes(pickle.dumps({"a": 1}))
    elif case == "state_dict":
        _write(path, state["model"])
    elif case == "tensor":
        _write(path, torch.zeros(3))
    elif case == "missing_keys":
        _write(path, {"format": FORMAT, "version": 1, "config": {}, "epoch": 0, "step": 0})
    elif case == "newer_version":
        _write(path, dict(state, version=99))
    with pytest.raises(CheckpointError, match=match) as info:
        load_checkpoint(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "none.pt")
    with pytest.raises(CheckpointError, match="folder"):
        load_checkpoint(tmp_path)


def test_shape_mismatch_on_rebuild(tmp_path):
    _, _, _, state = _trained_state()
    bad = dict(state, config=dict(CONFIG, embedding_size=16))  # the stored heads are 8 wide
    with pytest.raises(CheckpointError, match=r"model does not fit.*another shape.*heads\.euclidean"):
        build_from_checkpoint(bad)
    bad = dict(state, config=dict(CONFIG, num_classes=7))  # 5 classes of proxies stored
    with pytest.raises(CheckpointError, match=r"loss does not fit.*proxies"):
        build_from_checkpoint(bad)
    bad = dict(state, config=dict(CONFIG, arch="transformer"))
    with pytest.raises(CheckpointError, match="config does not build"):
        build_from_checkpoint(bad)


# -- spaces --------------------------------------------------------------------------------------


def test_version_1_checkpoint_gets_its_spaces_from_its_config(one_thread):
    from hyperdml.spaces import EuclideanSpace, PoincareSpace
    from hyperdml.train.checkpoint import checkpoint_spaces

    model, loss, _, state = _trained_state()  # a version-1 checkpoint: no "spaces"
    assert "spaces" not in state and state["version"] == 1
    want = {"euclidean": EuclideanSpace(), "hyperbolic": PoincareSpace(c=0.1, clip_r=2.3, inputs="tangent")}
    assert checkpoint_spaces(state) == want
    model2, loss2 = build_from_checkpoint(state)
    assert model2.spaces == want and loss2.hyperbolic.space == want["hyperbolic"]
    x = torch.randn(4, 3, 8, 8)
    torch.testing.assert_close(model2(x)["hyperbolic"], model(x)["hyperbolic"])


def _train_tiny(out, **overrides):
    from hyperdml.train import Trainer

    cfg = dict(dataset="synthetic", image_size=8, embedding_size=8, hyperbolic_size=4, batch_size=32,
               samples_per_class=8, epochs=1, max_steps=1, eval_every=0, quiet=True, device="cpu", out=str(out))
    cfg.update(overrides)
    Trainer(cfg).run()
    return load_checkpoint(out / "last.pt")


def test_checkpoints_record_each_heads_space_and_are_rebuilt_from_it(tmp_path, one_thread):
    from hyperdml.spaces import EuclideanSpace, PoincareSpace

    ckpt = _train_tiny(tmp_path / "run", loss="chest", c=0.3, clip_r=1.5, loss_args={"centers_per_class": 2})
    assert ckpt["version"] == 2
    assert ckpt["spaces"] == {"euclidean": EuclideanSpace().config(),
                              "hyperbolic": PoincareSpace(c=0.3, clip_r=1.5).config()}
    model, loss = build_from_checkpoint(ckpt)
    assert model.spaces["hyperbolic"] == PoincareSpace(c=0.3, clip_r=1.5) == loss.hyperbolic.space
    # the record, not the loose config keys, decides: a checkpoint whose config says c=0.1 keeps c=0.3
    model, loss = build_from_checkpoint(dict(ckpt, config=dict(ckpt["config"], c=0.1, clip_r=2.3)))
    assert loss.hyperbolic.space.c == 0.3 and loss.hyphc.c == 0.3 and model.spaces["hyperbolic"].clip_r == 1.5


@pytest.mark.parametrize("option, norm", [("batch", "batch"), ("layer", "layer"), ("normalized", "layer")])
def test_hyperbolic_head_checkpoints(option, norm, tmp_path, one_thread):
    from hyperdml.models import HyperbolicHead
    from hyperdml.spaces import PoincareSpace

    ckpt = _train_tiny(tmp_path / "run", loss="hyp_proxy_anchor", hyperbolic_head=option)
    assert ckpt["config"]["hyperbolic_head"] == norm  # the alias is stored as the head it names
    assert ckpt["spaces"] == {"hyperbolic": PoincareSpace(inputs="ball").config()}
    model, loss = build_from_checkpoint(ckpt)
    head = model.heads["hyperbolic"]
    assert isinstance(head, HyperbolicHead) and head.norm_kind == norm and loss.space.inputs == "ball"
    for k, v in ckpt["model"].items():
        torch.testing.assert_close(model.state_dict()[k], v, rtol=0, atol=0)
    if norm == "layer":  # checkpoints that name the LayerNorm head "normalized" still load
        model, _ = build_from_checkpoint(dict(ckpt, config=dict(ckpt["config"], hyperbolic_head="normalized")))
        assert model.heads["hyperbolic"].norm_kind == "layer"


@pytest.mark.parametrize("spaces, match", [
    ({"hyperbolic": {"kind": "sphere"}}, "unknown space kind"),
    ({"hyperbolic": {"kind": "poincare", "c": -1.0}}, "curvature"),
    ("poincare", "not a dict of head spaces"),
])
def test_bad_space_records_are_refused(spaces, match, one_thread):
    _, _, _, state = _trained_state()
    with pytest.raises(CheckpointError, match=match):
        build_from_checkpoint(dict(state, version=2, spaces=spaces))


def test_chest_checkpoint_of_the_older_layout_loads_and_resumes_as_it_trained(tmp_path, one_thread):
    """A CHEST state without ``hc_seen`` / ``hyphc.radius`` (written before the HypHC sphere and the
    class-mean target were the defaults) is rebuilt with the settings it trained with."""
    from hyperdml.train import Trainer

    ckpt = _train_tiny(tmp_path / "run", loss="chest", loss_args={"centers_per_class": 2,
                                                                  "hc_target": "proxies", "hc_sphere": False,
                                                                  "hc_tau": 0.05})
    older = dict(ckpt, config=dict(ckpt["config"], loss_args={"centers_per_class": 2}))
    assert not {"hc_seen", "hc_means", "hyphc.radius"} & set(older["loss"])
    model, loss = build_from_checkpoint(older)
    assert (loss.hc_target, loss.hyphc.sphere, loss.hyphc.tau) == ("proxies", False, 0.05)
    torch.testing.assert_close(loss.hyperbolic.proxies.data, ckpt["loss"]["hyperbolic.proxies"], rtol=0, atol=0)
    # the current layout is not touched: a checkpoint of today's defaults builds today's CHEST
    current = _train_tiny(tmp_path / "now", loss="chest", loss_args={"centers_per_class": 2})
    assert build_from_checkpoint(current)[1].hc_target == "class_means"
    # and a resumed run of the older checkpoint trains on with the older settings
    save_checkpoint(tmp_path / "older.pt", older)
    trainer = Trainer({"epochs": 2, "max_steps": 2, "quiet": True, "out": str(tmp_path / "resumed")},
                      resume=str(tmp_path / "older.pt"))
    trainer.run()
    resumed = load_checkpoint(tmp_path / "resumed" / "last.pt")
    assert resumed["config"]["loss_args"]["hc_target"] == "proxies" and "hc_seen" not in resumed["loss"]
