"""Checkpoint safety beyond tests/test_checkpoint.py: malicious pickles are refused without
running them, random byte corruption is refused (never loaded as different data, never a
crash), a writer killed at random moments never leaves a broken or older checkpoint, and the CLI
reports a bad checkpoint as one line on stderr.
"""

from __future__ import annotations

import os
import pickle
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from hyperdml.errors import CheckpointError
from hyperdml.train.checkpoint import FORMAT, load_checkpoint, save_checkpoint

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")


class Payload:
    """A pickle that, when unpickled by an unsafe loader, creates the file ``marker``."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


class SystemPayload:
    """The classic: ``os.system`` at unpickling time."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def small_state(step: int = 3) -> dict:
    return {"format": FORMAT, "version": 1, "config": {"arch": "small_cnn", "lr": 0.1}, "epoch": 1, "step": step,
            "model": {"w": torch.arange(50, dtype=torch.float32), "b": torch.ones(3, 2)},
            "loss": {"proxies": torch.linspace(-1, 1, 24).view(4, 6)}, "metrics": {"recall@1": 0.5},
            "class_names": ["a", "b", "c", "d"]}


@pytest.mark.parametrize("kind", ["torch_save", "raw_pickle", "inside_checkpoint", "system"])
def test_malicious_pickle_is_refused_without_running_it(tmp_path, kind):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    if kind == "torch_save":
        torch.save({"format": FORMAT, "model": Payload(str(marker))}, path)
    elif kind == "raw_pickle":
        path.write_bytes(pickle.dumps(Payload(str(marker)), protocol=2))
    elif kind == "inside_checkpoint":  # a complete checkpoint with one poisoned entry
        torch.save(dict(small_state(), metrics={"recall@1": Payload(str(marker))}), path)
    else:
        torch.save(SystemPayload(str(marker)), path)
    assert not marker.exists()
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    assert not marker.exists(), "loading the checkpoint ran code from the pickle"
    message = str(info.value)
    assert str(path) in message and "\n" not in message
    if kind != "raw_pickle":
        assert "weights_only" in message, message


FUZZ = r"""
import random, sys, warnings
warnings.simplefilter("ignore")
import torch
from hyperdml.errors import CheckpointError
from hyperdml.train.checkpoint import load_checkpoint
path, out, n, seed = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
data = open(path, "rb").read()
good = load_checkpoint(path)

def same(a, b):
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b

rng = random.Random(seed)
silent = []
for trial in range(n):
    bad = bytearray(data)
    pos = rng.randrange(len(bad))
    bad[pos] ^= 1 << rng.randrange(8)
    open(out, "wb").write(bad)
    print("TRY", pos, flush=True)
    try:
        state = load_checkpoint(out)
    except CheckpointError:
        continue
    if not same(good, state):
        silent.append(pos)
print("SILENT", " ".join(map(str, silent)), flush=True)
"""


def test_random_bit_flips_are_refused_or_harmless(tmp_path):
    """Flip one random bit of a checkpoint, many times: load_checkpoint raises CheckpointError or
    returns exactly the original content (a flip in unused bytes), never different data, never a
    crash (run in a subprocess)."""
    path = tmp_path / "good.pt"
    save_checkpoint(path, small_state())
    proc = subprocess.run([sys.executable, "-c", FUZZ, str(path), str(tmp_path / "bad.pt"), "400", "0"],
                          capture_output=True, text=True, timeout=300, cwd=ROOT, env=ENV)
    tries = [line for line in proc.stdout.splitlines() if line.startswith("TRY")]
    assert proc.returncode >= 0, f"killed by signal {-proc.returncode} at {tries[-1] if tries else '?'}"
    assert proc.returncode == 0, proc.stderr[-3000:]
    silent = [line for line in proc.stdout.splitlines() if line.startswith("SILENT")][0].split()[1:]
    size = path.stat().st_size
    assert not silent, (
        f"{len(silent)} of 400 single-bit flips loaded as DIFFERENT data without an error "
        f"(byte offsets {silent[:10]} of {size})"
    )


WRITER = r"""
import sys, torch
from hyperdml.train.checkpoint import load_checkpoint, save_checkpoint
path, start = sys.argv[1], int(sys.argv[2])
w = torch.zeros(2_000_000)
print("ready", flush=True)
step = start
while True:
    step += 1
    w.fill_(step)
    save_checkpoint(path, {"config": {"note": "x" * 1000}, "epoch": step // 10, "step": step,
                           "model": {"w": w}, "loss": {"p": w[:100].clone()}})
"""


def test_writer_killed_at_random_moments_never_loses_the_checkpoint(tmp_path):
    """Several writers, each SIGKILLed at a random moment while saving 8 MB checkpoints in a loop:
    after every kill the checkpoint loads, is internally consistent, and is not older than the one
    seen after the previous kill."""
    path = tmp_path / "last.pt"
    save_checkpoint(path, {"config": {}, "epoch": 0, "step": 0, "model": {"w": torch.zeros(2_000_000)}, "loss": {}})
    rng = random.Random(1)
    last = 0
    for _ in range(4):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(last)], stdout=subprocess.PIPE,
                                cwd=ROOT, env=ENV)
        try:
            assert proc.stdout.readline().strip() == b"ready"
            time.sleep(rng.uniform(0.05, 1.0))
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
        assert proc.returncode == -signal.SIGKILL
        ck = load_checkpoint(path)
        step = ck["step"]
        assert step >= last, f"the checkpoint went back from step {last} to {step}"
        w = ck["model"]["w"]
        assert w.shape == (2_000_000,) and bool((w == step).all()) and bool((ck["loss"]["p"] == step).all())
        last = step
    # a killed writer may leave its temporary file (never read); the checkpoint itself is fine
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != "last.pt"]
    assert all(name.startswith(".last.pt.") and name.endswith(".tmp") for name in leftovers), leftovers


# -- the CLI ----------------------------------------------------------------------------------


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hyperdml", *args], capture_output=True, text=True, timeout=120,
                          cwd=ROOT, env={**ENV, "HYPERDML_DEBUG": ""})


def _bad_checkpoints(tmp_path: Path) -> dict[str, Path]:
    good = tmp_path / "good.pt"
    save_checkpoint(good, small_state())
    data = good.read_bytes()
    files = {}
    files["truncated"] = tmp_path / "truncated.pt"
    files["truncated"].write_bytes(data[: len(data) // 3])
    files["garbage"] = tmp_path / "garbage.pt"
    files["garbage"].write_bytes(os.urandom(2048))
    files["malicious"] = tmp_path / "malicious.pt"
    torch.save({"format": FORMAT, "x": Payload(str(tmp_path / "pwned"))}, files["malicious"])
    files["state_dict"] = tmp_path / "state_dict.pt"
    torch.save({"w": torch.zeros(3)}, files["state_dict"])
    files["missing"] = tmp_path / "does-not-exist.pt"
    files["empty_folder"] = tmp_path / "run"
    files["empty_folder"].mkdir()
    return files


@pytest.mark.parametrize("case", ["truncated", "garbage", "malicious", "state_dict", "missing", "empty_folder"])
def test_cli_eval_bad_checkpoint_is_one_line(tmp_path, case):
    path = _bad_checkpoints(tmp_path)[case]
    proc = run_cli("eval", "--checkpoint", str(path))
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("hyperdml eval: error:"), proc.stderr
    assert not (tmp_path / "pwned").exists()


def test_cli_eval_checkpoint_of_another_model_shape_is_one_line(tmp_path):
    """A checkpoint whose stored weights do not fit the model its config builds."""
    from hyperdml.models import build_model

    model = build_model("small_cnn", embedding_size=8, head="euclidean", in_channels=3)
    config = {"arch": "small_cnn", "head": "euclidean", "embedding_size": 16, "c": 0.1, "clip_r": 2.3,
              "loss": "proxy_anchor", "in_channels": 3, "num_classes": 4, "dataset": "synthetic"}
    path = tmp_path / "other.pt"
    save_checkpoint(path, {"config": config, "epoch": 1, "step": 1, "model": model.state_dict(), "loss": {},
                           "class_names": ["a", "b", "c", "d"]})
    proc = run_cli("eval", "--checkpoint", str(path))
    assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "does not fit" in lines[0], proc.stderr
