"""Timing and peak memory of one benchmark case.

Timing uses :class:`torch.utils.benchmark.Timer` (it synchronises CUDA around each sample and
runs with the thread count we give it, not its default of one thread). A case runs

1. one call, timed on its own: ``first_call_s`` (for ``torch.compile`` this is compilation plus
   one run; lazy initialisation such as cuBLAS handles also lands here);
2. one call whose peak memory is measured (:func:`peak_memory`);
3. warm-up calls until the call time has settled (:func:`warm_up`: the last three calls within
   10 % of each other, or :data:`WARMUP_MAX_S` spent); their median sizes the samples, so a slow
   first call (lazy initialisation, caches, page faults on fresh buffers) neither sizes nor
   lands in the timed samples;
4. ``repeats`` samples of ``number`` calls each, ``number`` chosen so that a sample lasts at
   least :data:`MIN_SAMPLE_S` and ``repeats`` so that all samples together last at least
   ``min_run_time`` (never fewer than ``min_repeats``). Reported: the median and the
   interquartile range of the per-call time over the samples.

Peak memory is the extra memory a call needs above what was live before it:

- CUDA: ``torch.cuda.max_memory_allocated()`` after ``reset_peak_memory_stats()``, minus
  ``memory_allocated()`` before the call (the caching allocator's view of live tensors;
  cuBLAS workspaces were created by the first call and are not counted).
- CPU: the process's resident-set high-water mark. Before the call, freed heap memory is handed
  back to the OS (``malloc_trim(0)``) and the kernel's high-water mark ``VmHWM`` is reset
  (``echo 5 > /proc/self/clear_refs``, Linux ≥ 4.0); the result is ``VmHWM`` after the call
  minus ``VmRSS`` before it. This counts everything the call touches: tensors, scratch buffers
  that a kernel allocates with ``malloc``/``new``, allocator fragmentation, rounded to pages.
  Where the reset is not available (not Linux) it falls back to ``ru_maxrss`` growth, which only
  means something in a fresh process; the method used is recorded with each result.

On the CPU, glibc's malloc gets fixed thresholds first (:func:`fix_malloc_thresholds`), so that a
case's time does not depend on what the process allocated before.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import math
import os
import resource
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable

import torch
import torch.utils.benchmark as tbench

#: Shortest sample (seconds): fast calls are repeated ``number`` times per sample so that the
#: timer's own overhead stays negligible.
MIN_SAMPLE_S = 0.01
#: Longest warm-up (seconds) before the samples, whatever the call times do.
WARMUP_MAX_S = 2.0


@dataclass
class Timing:
    """Result of :func:`measure`: per-call median and IQR (ms), sampling and first-call facts."""

    median_ms: float
    iqr_ms: float
    repeats: int
    number: int
    first_call_s: float
    peak_bytes: int
    memory_method: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def synchronize(device: str) -> None:
    """Wait for the device's queued work (no-op on the CPU)."""
    if str(device).startswith("cuda"):
        torch.cuda.synchronize(device)


def _timed_call(fn: Callable[[], Any], device: str) -> float:
    """Seconds one ``fn()`` takes, the device's queued work included."""
    start = time.perf_counter()
    fn()
    synchronize(device)
    return time.perf_counter() - start


def _status_bytes(key: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


_LIBC = None


def _libc():
    global _LIBC
    if _LIBC is None:
        name = ctypes.util.find_library("c")
        _LIBC = ctypes.CDLL(name) if name else False
    return _LIBC


def _malloc_trim() -> None:
    libc = _libc()
    if libc and hasattr(libc, "malloc_trim"):
        libc.malloc_trim(0)


#: glibc mallopt parameters: M_TRIM_THRESHOLD, M_MMAP_THRESHOLD.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3


def fix_malloc_thresholds() -> bool:
    """Give glibc's malloc fixed thresholds: blocks up to 32 MiB from the heap, the heap never
    trimmed by itself (explicit ``malloc_trim`` still works). With glibc's default, dynamic
    thresholds, whether a freed block of a few MiB returns to the OS depends on the allocation
    history, and the same case ran in 4.2 ms in one process and 5.5 ms in the next, the extra
    being page faults on recycled buffers. Returns whether the settings took (glibc only)."""
    libc = _libc()
    if not libc or not hasattr(libc, "mallopt"):
        return False
    return bool(libc.mallopt(_M_MMAP_THRESHOLD, 32 << 20)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, 1 << 30))


def _reset_rss_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return _status_bytes("VmHWM") is not None
    except OSError:
        return False


def peak_memory(fn: Callable[[], Any], device: str) -> tuple[int, str, float]:
    """Run ``fn()`` once; return ``(extra peak bytes, method name, seconds the call took)``.

    See the module docstring for what is counted on each device.
    """
    if str(device).startswith("cuda"):
        synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        elapsed = _timed_call(fn, device)
        return int(torch.cuda.max_memory_allocated(device) - base), "cuda max_memory_allocated", elapsed
    _malloc_trim()
    if _reset_rss_peak():
        base = _status_bytes("VmRSS") or 0
        elapsed = _timed_call(fn, device)
        return max(0, (_status_bytes("VmHWM") or 0) - base), "rss high-water (reset)", elapsed
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    elapsed = _timed_call(fn, device)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    scale = 1 if os.uname().sysname == "Darwin" else 1024  # bytes on macOS, KiB on Linux
    return max(0, (after - before) * scale), "ru_maxrss growth", elapsed


def warm_up(fn: Callable[[], Any], device: str, first: float, max_s: float = WARMUP_MAX_S) -> float:
    """Call ``fn`` until three consecutive call times agree within 10 % (or ``max_s`` has passed,
    at least three calls); returns the median of the last three, seconds per call. ``first``: the
    time of the call before."""
    times = [first]
    spent = 0.0
    while True:
        t = _timed_call(fn, device)
        times.append(t)
        spent += t
        last = sorted(times[-3:])
        if len(times) >= 4 and (last[-1] <= 1.1 * last[0] or spent >= max_s):
            return last[1]


def measure(
    fn: Callable[[], Any],
    device: str,
    *,
    threads: int | None = None,
    min_run_time: float = 1.0,
    min_repeats: int = 5,
    max_repeats: int = 1000,
) -> Timing:
    """Time ``fn()`` (no arguments) on ``device``: median and IQR per call, peak memory.

    ``threads``: intra-op threads while timing (default: ``torch.get_num_threads()``).
    ``min_run_time``: seconds all samples together should last at least.
    """
    if min_repeats < 1 or min_run_time < 0:
        raise ValueError(f"min_repeats must be >= 1 and min_run_time >= 0, got {min_repeats}, {min_run_time}")
    threads = threads or torch.get_num_threads()
    fix_malloc_thresholds()
    first_call_s = _timed_call(fn, device)
    peak, method, elapsed = peak_memory(fn, device)
    per_call = max(warm_up(fn, device, elapsed, max_s=max(WARMUP_MAX_S * min(1.0, min_run_time), 0.2)), 1e-7)
    number = max(1, math.ceil(MIN_SAMPLE_S / per_call))
    repeats = min(max_repeats, max(min_repeats, math.ceil(min_run_time / (per_call * number))))
    timer = tbench.Timer(stmt="fn()", globals={"fn": fn}, num_threads=threads)
    samples = [timer.timeit(number) for _ in range(repeats)]
    merged = tbench.Measurement.merge(samples)[0]
    return Timing(
        median_ms=merged.median * 1e3,
        iqr_ms=merged.iqr * 1e3,
        repeats=repeats,
        number=number,
        first_call_s=first_call_s,
        peak_bytes=int(peak),
        memory_method=method,
    )
