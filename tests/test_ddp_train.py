"""Two processes (torchrun, gloo on the CPU) train exactly as one process on the same global batch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

from hyperdml.train import Trainer, load_checkpoint

ROOT = Path(__file__).resolve().parents[1]
ARGS = {"dataset": "synthetic", "image_size": 8, "embedding_size": 8, "hyperbolic_size": 4, "batch_size": 128,
        "samples_per_class": 8, "epochs": 1, "device": "cpu", "seed": 2, "max_steps": 4, "eval_every": 0,
        "warmup_epochs": 0.2,
        # Adam with a huge eps steps like SGD with momentum (lr/eps · m): the updates are linear in the
        # gradients, so a wrong gradient scale across processes shows (plain Adam is scale-invariant)
        "lr": 100.0, "adam_eps": 1e4, "proxy_lr_mult": 1.0}
CASES = {
    # the CP queues are filled from the global batch on every rank (start_epoch=0: used from step 2)
    "cp+proxy_anchor": {"queue_size": 24, "start_epoch": 0},
    # CHEST: two gathered heads, Euclidean and Poincaré proxies, the HypHC term
    "chest": {"centers_per_class": 2},
}

pytestmark = pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(), reason="needs gloo")


def _cli(config: dict) -> list[str]:
    argv = []
    for key, value in config.items():
        flag = "--" + key.replace("_", "-")
        if key == "loss_args":
            for k, v in value.items():
                argv += ["--loss-arg", f"{k}={v}"]
        else:
            argv += [flag, str(value)]
    return argv


def _losses(out: Path) -> list[float]:
    records = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    return [r["loss"] for r in records if r["event"] == "step"]


@pytest.mark.parametrize("loss", list(CASES))
def test_two_processes_equal_one(loss, tmp_path, one_thread):
    config = dict(ARGS, loss=loss, loss_args=CASES[loss])
    two = tmp_path / "two"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes", "1", "--nproc_per_node", "2",
           "-m", "hyperdml", "train", *_cli(config), "--out", str(two), "--quiet"]
    r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]

    one = tmp_path / "one"
    Trainer(dict(config, out=str(one), quiet=True)).fit()

    ck1, ck2 = load_checkpoint(one / "last.pt"), load_checkpoint(two / "last.pt")
    assert ck2["step"] == ck1["step"] == 4
    assert json.loads((two / "config.json").read_text())["batch_size"] == 128  # the global batch
    l1, l2 = _losses(one), _losses(two)
    assert len(l1) == len(l2) == 4
    for a, b in zip(l1, l2):
        assert abs(a - b) <= 1e-5 * max(1.0, abs(a)), (l1, l2)
    for part in ("model", "loss"):
        for k, v in ck1[part].items():
            if isinstance(v, torch.Tensor) and v.is_floating_point():
                torch.testing.assert_close(ck2[part][k], v, rtol=1e-5, atol=1e-5, msg=f"{part}.{k}")
    if loss.startswith("cp+"):
        assert torch.equal(ck1["loss"]["queue_count"], ck2["loss"]["queue_count"])
        assert int(ck1["loss"]["queue_count"].sum()) == 16 * 24  # 8 per class and step, 24 kept
