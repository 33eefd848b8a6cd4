"""Timing, memory and results-file helpers shared by the benchmark scripts."""

from __future__ import annotations

import datetime
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

import torch

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def time_ms(fn, device: str, repeat: int = 10, warmup: int = 2) -> float:
    """Median wall time of ``fn()`` in milliseconds (CUDA-synchronised)."""
    for _ in range(warmup):
        fn()
    sync(device)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        sync(device)
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def peak_mib(fn, device: str) -> float:
    """Peak memory of ``fn()`` above what was allocated before, in MiB (CUDA: allocator; CPU: RSS high-water)."""
    if device.startswith("cuda"):
        sync(device)
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        fn()
        sync(device)
        return (torch.cuda.max_memory_allocated() - base) / 2**20
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    fn()
    return (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024


def run_isolated(script: str, args: list[str]) -> dict:
    """Run ``script --one ... args`` in a fresh Python process and return the JSON it prints last.

    A fresh process per case makes the CPU's RSS high-water mark measure that case alone.
    """
    out = subprocess.run([sys.executable, script, *args], check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def device_name(device: str) -> str:
    if device.startswith("cuda"):
        return torch.cuda.get_device_name()
    return f"{platform.processor() or platform.machine()} CPU, {torch.get_num_threads()} threads"


def write_results(name: str, device: str, header: list[str], rows: list[list], note: str = "") -> str:
    """Print a markdown table and append it, with device and date, to ``results/<name>.md`` and ``.jsonl``."""
    os.makedirs(RESULTS, exist_ok=True)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    title = f"## {name} on {device_name(device)} ({stamp}, torch {torch.__version__})"
    lines = [title, "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in rows]
    if note:
        lines += ["", note]
    text = "\n".join(lines) + "\n"
    print(text)
    with open(os.path.join(RESULTS, f"{name}_{device.split(':')[0]}.md"), "a") as f:
        f.write(text + "\n")
    with open(os.path.join(RESULTS, f"{name}_{device.split(':')[0]}.jsonl"), "a") as f:
        f.write(json.dumps({"date": stamp, "device": device_name(device), "torch": torch.__version__,
                            "header": header, "rows": rows}) + "\n")
    return text
