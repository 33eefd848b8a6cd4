"""``hyperdml train`` / ``hyperdml eval`` / ``hyperdml demo`` end to end, as a user runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--dataset", "synthetic", "--image-size", "8", "--embedding-size", "8", "--hyperbolic-size", "4",
        "--batch-size", "128", "--samples-per-class", "8", "--epochs", "1", "--device", "cpu"]


def hyperdml(*args, timeout=120):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    env.pop("HYPERDML_DEBUG", None)
    return subprocess.run([sys.executable, "-m", "hyperdml", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


def test_train_then_eval(tmp_path):
    out = tmp_path / "run"
    r = hyperdml("train", *TINY, "--loss", "chest", "--loss-arg", "centers_per_class=2", "--loss-arg", "lambda_hc=0.5",
                 "--max-steps", "3", "--out", str(out), "--quiet")
    assert r.returncode == 0, r.stderr
    assert {"last.pt", "log.jsonl", "metrics.json", "config.json"} <= {p.name for p in out.iterdir()}
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["heads"]) == {"euclidean", "hyperbolic"}
    for head in metrics["heads"].values():
        assert {"recall@1", "recall@2", "recall@4", "recall@8", "map@r", "r_precision", "nmi"} <= set(head)
        assert all(0.0 <= v <= 1.0 for v in head.values())
    config = json.loads((out / "config.json").read_text())
    assert config["loss_args"] == {"centers_per_class": 2, "lambda_hc": 0.5} and config["head"] == "dual"

    r = hyperdml("eval", "--checkpoint", str(out), "--out", str(tmp_path / "ev"), "--device", "cpu")
    assert r.returncode == 0, r.stderr
    assert "euclidean" in r.stdout and "hyperbolic" in r.stdout and "recall@1" in r.stdout
    ev = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert ev["step"] == 3
    for head in ("euclidean", "hyperbolic"):  # the checkpoint's model gives the trainer's numbers
        for k, v in metrics["heads"][head].items():
            assert abs(ev["heads"][head][k] - v) < 1e-6, (head, k)

    r = hyperdml("train", "--resume", str(out), "--max-steps", "5", "--quiet")
    assert r.returncode == 0, r.stderr
    assert json.loads((out / "metrics.json").read_text())["step"] == 5
    steps = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [s["step"] for s in steps if s["event"] == "step"] == [1, 2, 3, 4, 5]


def _one_line_error(r, command):
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"hyperdml {command}: error: "), r.stderr
    assert "Traceback" not in r.stderr
    return lines[0]


def test_bad_checkpoints_give_one_line(tmp_path, capsys, monkeypatch):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"this is not a checkpoint" * 100)
    assert "not a readable hyperdml checkpoint" in _one_line_error(hyperdml("eval", "--checkpoint", str(bad)), "eval")
    from hyperdml.cli import main

    monkeypatch.delenv("HYPERDML_DEBUG", raising=False)
    for argv, command, match in ((["eval", "--checkpoint", str(tmp_path / "missing.pt")], "eval", "missing.pt"),
                                 (["train", *TINY, "--resume", str(bad), "--quiet"], "train", "bad.pt")):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith(f"hyperdml {command}: error: ") and match in err[0], err


@pytest.mark.parametrize("args, match", [
    (["--loss", "proxy_anchor", "--loss-arg", "margn=0.1"], "no parameter 'margn'"),
    (["--loss", "no_such_loss"], "unknown loss"),
    (["--dataset", "cub"], "--data-root"),
    (["--dataset", "cub", "--data-root", "{tmp}/nowhere"], "nowhere"),
    (["--loss", "chest", "--head", "euclidean"], "needs --head dual"),
    (["--weights", "{tmp}/none.pth"], "none.pth"),
    (["--batch-size", "20"], "multiple of --samples-per-class"),
])
def test_user_mistakes_give_one_line(tmp_path, args, match, capsys, monkeypatch):
    """In-process (the same path as the console script; the subprocess test above covers the exit)."""
    from hyperdml.cli import main

    monkeypatch.delenv("HYPERDML_DEBUG", raising=False)
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    assert main(["train", *TINY, *args, "--out", str(tmp_path / "o"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("hyperdml train: error: ") and match in err[0], err


def test_help_is_fast_and_lists_commands():
    start = time.perf_counter()
    r = hyperdml("--help")
    assert r.returncode == 0 and time.perf_counter() - start < 5.0  # a subprocess; in-process below
    for cmd in ("train", "eval", "demo"):
        assert cmd in r.stdout
    code = ("import sys, time; t = time.perf_counter(); from hyperdml.cli import build_parser; build_parser(); "
            "assert 'torch' not in sys.modules, 'a command imports torch at module level'; "
            "print(time.perf_counter() - t)")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert float(r.stdout) < 1.0
    r = hyperdml("train", "--help")
    assert "--loss-arg" in r.stdout and "--resume" in r.stdout and "(default: synthetic)" in r.stdout


def test_demo_command_one_epoch(tmp_path, capsys, monkeypatch):
    """``hyperdml demo`` end to end (1 epoch instead of the demo's 30): run files, both heads, the
    hierarchy report and the table."""
    from hyperdml.cli import main

    monkeypatch.delenv("HYPERDML_DEBUG", raising=False)
    out = tmp_path / "demo"
    assert main(["demo", "--epochs", "1", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "CHEST on the synthetic hierarchy: 1 epoch in" in text and "hyperbolic" in text and "recall@1" in text
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["heads"]) == {"euclidean", "hyperbolic"} and metrics["loss"] == "chest"
    assert (out / "last.pt").is_file() and (out / "log.jsonl").is_file()
    assert (out / "viz" / "tree_metrics.json").is_file()
    assert "purity" in text
