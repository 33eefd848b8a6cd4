"""A rank that fails does not leave the others hanging: ``setup_distributed(timeout_s)`` bounds
the rendezvous and every collective (2 CPU processes, gloo, launched like torchrun would)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT_S = 4.0
#: a rank waiting on a dead or stuck peer must give up within this many seconds
BOUND_S = 60.0

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="gloo over TCP on POSIX")

RANK_SCRIPT = r"""
import os, sys, time, warnings
warnings.simplefilter("ignore")
import torch
import torch.distributed as dist
from hyperdml.train.distributed import cleanup_distributed, setup_distributed
role = sys.argv[1]
timeout_s = float(sys.argv[2])
start = time.monotonic()
try:
    rank, world, device = setup_distributed(timeout_s=timeout_s, device="cpu")
    print("SETUP", rank, world, device, flush=True)
    if role == "raise":
        raise RuntimeError("rank failed before the collective (on purpose)")
    if role == "stuck":
        time.sleep(120)  # alive, but never joins the collective
    t = torch.ones(3) * (rank + 1)
    dist.all_reduce(t)
    print("REDUCED", t.tolist(), flush=True)
    cleanup_distributed()
except Exception as exc:  # noqa: BLE001
    print(f"ERROR after {time.monotonic() - start:.1f}s: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}",
          flush=True)
    os._exit(3)  # do not wait for the process group's threads
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(rank: int, role: str, port: int, world: int = 2) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "RANK": str(rank),
           "LOCAL_RANK": str(rank), "WORLD_SIZE": str(world), "LOCAL_WORLD_SIZE": str(world),
           "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "CUDA_VISIBLE_DEVICES": ""}
    return subprocess.Popen([sys.executable, "-c", RANK_SCRIPT, role, str(TIMEOUT_S)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen, bound: float) -> tuple[int, str, float]:
    """Wait up to ``bound`` s; a process still running then is killed and the test fails."""
    start = time.monotonic()
    try:
        out, err = proc.communicate(timeout=bound)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"a rank still hung after {bound:.0f} s (timeout_s={TIMEOUT_S}):\n{out}\n{err[-2000:]}")
    return proc.returncode, out + err, time.monotonic() - start


def test_healthy_ranks_reduce():
    """The harness itself works: two healthy ranks finish their all_reduce."""
    port = free_port()
    procs = [launch(r, "ok", port) for r in range(2)]
    for proc in procs:
        code, text, _ = finish(proc, BOUND_S)
        assert code == 0 and "REDUCED [3.0, 3.0, 3.0]" in text, text[-2000:]


@pytest.mark.parametrize("role", ["raise", "stuck"])
def test_a_failing_rank_does_not_hang_the_other(role):
    """Rank 1 raises (and exits), or stays alive without joining: rank 0, blocked in all_reduce,
    exits with an error within a bounded time instead of waiting forever."""
    port = free_port()
    waiting = launch(0, "ok", port)
    failing = launch(1, role, port)
    code, text, elapsed = finish(waiting, BOUND_S)
    failing.kill()
    failing.communicate()
    assert code != 0 and "ERROR" in text and "REDUCED" not in text, text[-2000:]
    if role == "stuck":  # only the timeout can end this wait
        assert elapsed >= TIMEOUT_S * 0.5, f"gave up after {elapsed:.1f} s, before timeout_s={TIMEOUT_S}"


def test_a_missing_rank_does_not_hang_the_rendezvous():
    """Rank 1 never starts: rank 0's setup_distributed gives up within a bounded time."""
    code, text, _ = finish(launch(0, "ok", free_port()), BOUND_S)
    assert code != 0 and "ERROR" in text and "SETUP" not in text, text[-2000:]
