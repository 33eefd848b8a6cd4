"""``hyperdml viz`` and ``write_hierarchy_report`` end to end on checkpoints of tiny training runs."""

from __future__ import annotations

import json

import pytest
import torch
from PIL import Image

from hyperdml.cli import main
from hyperdml.errors import CheckpointError


def _train(tmp_path_factory, loss: str) -> str:
    from hyperdml.train import train

    out = tmp_path_factory.mktemp(f"run_{loss}")
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train({"dataset": "synthetic", "loss": loss, "epochs": 1, "max_steps": 2, "eval_every": 0,
               "embedding_size": 16, "batch_size": 32, "out": str(out), "quiet": True, "device": "cpu"},
              progress=False)
    finally:
        torch.set_num_threads(n)
    return str(out / "last.pt")


@pytest.fixture(scope="module")
def chest_ckpt(tmp_path_factory):
    return _train(tmp_path_factory, "chest")


def test_viz_cli_writes_the_report(chest_ckpt, tmp_path, capsys):
    out = tmp_path / "viz"
    assert main(["viz", "--checkpoint", chest_ckpt, "--out", str(out), "--max-points", "300"]) == 0
    printed = capsys.readouterr().out
    assert "hyperbolic:" in printed and "euclidean:" in printed and "dendrogram purity" in printed
    for name in ("dendrogram.png", "poincare_disk.png"):
        with Image.open(out / name) as im:
            im.verify()
    metrics = json.loads((out / "tree_metrics.json").read_text())
    ckpt = torch.load(chest_ckpt, weights_only=True)
    assert metrics["num_classes"] == len(ckpt["class_names"])
    assert metrics["num_super_classes"] == len(set(ckpt["super_labels"]))
    for space in ("hyperbolic", "euclidean"):
        m = metrics["spaces"][space]
        assert 0 <= m["dendrogram_purity"] <= 1
        assert set(m["dasgupta_cost"]) == {"super_class", "euclidean_angles", "hyperbolic_angles"}
    assert metrics["checkpoint"]["loss"] == "chest"
    assert not any("not plotted" in n for n in metrics["notes"])  # synthetic data is always there


def test_viz_cli_svg_and_run_folder(chest_ckpt, tmp_path, capsys):
    import os
    import xml.etree.ElementTree as ET

    out = tmp_path / "svg"
    assert main(["viz", "--checkpoint", os.path.dirname(chest_ckpt), "--out", str(out), "--format", "svg",
                 "--max-points", "0"]) == 0
    for name in ("dendrogram.svg", "poincare_disk.svg"):
        assert ET.parse(out / name).getroot().tag.endswith("svg")
    assert "max_points=0" in capsys.readouterr().out


def test_report_without_data_plots_proxies_only(chest_ckpt, tmp_path):
    from hyperdml.commands.viz import write_hierarchy_report

    ckpt = torch.load(chest_ckpt, weights_only=True)
    ckpt["config"] = dict(ckpt["config"], dataset="cub", data_root=str(tmp_path / "missing"))
    result = write_hierarchy_report(ckpt, tmp_path / "r", max_points=100)
    assert any("data unavailable" in n for n in result["notes"])
    assert (tmp_path / "r" / "poincare_disk.png").exists()


@pytest.mark.parametrize("content", [b"not a checkpoint at all", b""])
def test_viz_cli_bad_checkpoint_is_one_line(tmp_path, capsys, content):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(content)
    assert main(["viz", "--checkpoint", str(bad), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("hyperdml viz: error:") and "\n" not in err


def test_viz_cli_missing_checkpoint(tmp_path, capsys):
    assert main(["viz", "--checkpoint", str(tmp_path / "nope.pt"), "--out", str(tmp_path / "o")]) == 2
    assert "hyperdml viz: error:" in capsys.readouterr().err


def test_report_rejects_dicts_that_are_not_checkpoints(tmp_path):
    from hyperdml.commands.viz import write_hierarchy_report

    with pytest.raises(CheckpointError, match="not a hyperdml checkpoint"):
        write_hierarchy_report({"format": "something else"}, tmp_path)
    with pytest.raises(CheckpointError, match="not a dict"):
        write_hierarchy_report([1, 2], tmp_path)


def test_viz_cli_euclidean_checkpoint_has_no_hyperbolic_proxies(tmp_path_factory, tmp_path, capsys):
    ckpt = _train(tmp_path_factory, "proxy_anchor")
    assert main(["viz", "--checkpoint", ckpt, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "no hyperbolic proxies" in err and "proxy_anchor" in err
