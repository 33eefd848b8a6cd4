"""Runs benchmark cases, each group in a fresh Python process.

A *case* is one competitor × one shape × one pass (``"fwd"`` or ``"fwdbwd"``). Cases are sent
to a child process (``python -m hyperdml.bench.runner``, the spec as JSON on stdin) which prints
one result line per case; the parent collects them. Isolation (``isolate``):

- ``"case"`` (default): one process per case, so nothing a case leaves behind (allocator
  caches, compiled graphs, heap growth) affects the next one, and a crash or out-of-memory
  kill costs only that case;
- ``"competitor"``: one process per competitor running its cases in turn (faster start-up; the
  peak-memory measurement resets the high-water mark before each case, see
  :mod:`hyperdml.bench.timing`);
- ``"none"``: in this process (debugging).

Every case also checks that the competitor computes what the op computes, on the same inputs:
forward cases compare outputs, forward+backward cases the gradients; the largest absolute and
relative differences are recorded (``max_abs_diff``, ``max_rel_diff``).
"""

from __future__ import annotations

import gc
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import threading
import traceback
import warnings
from typing import Callable, Iterable

import torch

from hyperdml.bench import cdist, hyphc
from hyperdml.bench.competitors import COMPETITORS
from hyperdml.bench.timing import measure

OPS = {"cdist": cdist, "hyphc": hyphc}
MODES = ("fwd", "fwdbwd")
RESULT_PREFIX = "HYPERDML_BENCH_RESULT "


def shape_label(shape: dict, keys: Iterable[str]) -> str:
    """``{"B": 256, "N": 2000, "D": 128}`` → ``"B=256 N=2000 D=128"`` (keys in the given order)."""
    return " ".join(f"{k}={shape[k]}" for k in keys)


def _differences(got: list[torch.Tensor], want: list[torch.Tensor]) -> tuple[float, float]:
    abs_diff = rel_diff = 0.0
    for a, b in zip(got, want):
        a, b = a.detach().double(), b.detach().double()
        d = float((a - b).abs().max()) if a.numel() else 0.0
        abs_diff = max(abs_diff, d)
        rel_diff = max(rel_diff, d / max(float(b.abs().max()) if b.numel() else 0.0, 1e-30))
    return abs_diff, rel_diff


def run_case(case: dict, settings: dict) -> dict:
    """Run one case in this process and return its result dict (never raises for a failing case).

    ``case``: ``{"op", "competitor", "shape": {...}, "mode", "sweep"}``; ``settings``: device,
    dtype, threads, min_run_time, min_repeats, memory_budget_bytes, op parameters (c, tau),
    compile_backend, compile_mode.
    """
    mod = OPS[case["op"]]
    comp = COMPETITORS[case["op"]][case["competitor"]]
    device, dtype = settings["device"], getattr(torch, settings["dtype"])
    result = dict(case)
    itemsize = torch.empty((), dtype=dtype).element_size()
    estimate = comp.memory(case["shape"], case["mode"], itemsize)
    budget = settings.get("memory_budget_bytes")
    if budget is not None and estimate > budget:
        result.update(status="skipped", reason=f"would need ~{estimate / 2**30:.1f} GiB "
                      f"(memory budget {budget / 2**30:.1f} GiB)")
        return result
    if device.split(":")[0] not in comp.devices:
        result.update(status="skipped", reason=f"runs on {', '.join(comp.devices)} only")
        return result
    if comp.needs and importlib.util.find_spec(comp.needs) is None:
        result.update(status="skipped", reason=f"needs the {comp.needs} package")
        return result
    try:
        if comp.compiled:
            torch._dynamo.reset()
        inputs = mod.make_inputs(case["shape"], device, dtype)
        fn = mod.build(case["competitor"], inputs, case["mode"], settings)
        timing = measure(fn, device, threads=settings.get("threads"), min_run_time=settings["min_run_time"],
                         min_repeats=settings["min_repeats"])
        del fn
        result.update(status="ok", **timing.as_dict())
        if comp.compiled:
            result["compile_s"] = max(0.0, timing.first_call_s - timing.median_ms / 1e3)
        if comp.comparable and case["competitor"] != "hyperdml":
            grad = case["mode"] == "fwdbwd"
            want = mod.outputs("hyperdml", inputs, settings, grad=grad)
            got = mod.outputs(case["competitor"], inputs, settings, grad=grad)
            result["max_abs_diff"], result["max_rel_diff"] = _differences(got, want)
        del inputs
    except Exception as exc:  # a failing case (out of memory, a missing kernel) must not end the run
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        result.update(status="error", error=f"{type(exc).__name__}: {message}"[:300])
        if os.environ.get("HYPERDML_DEBUG"):
            traceback.print_exc()
    finally:
        gc.collect()
        if str(device).startswith("cuda") and torch.cuda.is_available():
            torch.cuda.empty_cache()
    return result


def _groups(cases: list[dict], isolate: str) -> list[list[dict]]:
    if isolate == "case":
        return [[c] for c in cases]
    if isolate == "competitor":
        groups: dict[str, list[dict]] = {}
        for c in cases:
            groups.setdefault(c["competitor"], []).append(c)
        return list(groups.values())
    if isolate == "none":
        return [cases]
    raise ValueError(f"isolate must be 'case', 'competitor' or 'none', got {isolate!r}")


def _child_env() -> dict:
    env = dict(os.environ)
    package_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    env["PYTHONWARNINGS"] = "ignore"
    return env


def _run_group(group: list[dict], settings: dict, timeout_s: float, report: Callable[[dict], None]) -> list[dict]:
    spec = json.dumps({"settings": settings, "cases": group})
    with tempfile.TemporaryFile(mode="w+") as err:
        proc = subprocess.Popen([sys.executable, "-m", "hyperdml.bench.runner"], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=err, text=True, env=_child_env())
        fired = threading.Event()

        def kill():
            fired.set()
            proc.kill()

        killer = threading.Timer(timeout_s, kill)
        killer.start()
        results = []
        try:
            proc.stdin.write(spec)
            proc.stdin.close()
            for line in proc.stdout:
                if line.startswith(RESULT_PREFIX):
                    results.append(json.loads(line[len(RESULT_PREFIX):]))
                    report(results[-1])
            proc.wait()
        finally:
            killer.cancel()
        err.seek(0)
        tail = err.read()[-400:].strip().replace("\n", " | ")
    for case in group[len(results):]:
        why = f"timed out after {timeout_s:.0f} s" if fired.is_set() else (
            f"worker process exited with status {proc.returncode}: {tail}")
        res = dict(case, status="error", error=why)
        results.append(res)
        report(res)
    return results


def run_cases(cases: list[dict], settings: dict, *, isolate: str = "case", case_timeout_s: float = 3600.0,
              report: Callable[[dict], None] = lambda r: None) -> list[dict]:
    """Run ``cases`` (see :func:`run_case`) grouped by ``isolate``; return their results in order.

    ``report`` is called with each result as it arrives (progress output).
    """
    results = []
    for group in _groups(cases, isolate):
        if isolate == "none":
            for case in group:
                results.append(run_case(case, settings))
                report(results[-1])
        else:
            results.extend(_run_group(group, settings, case_timeout_s * len(group), report))
    return results


def _child_main() -> int:
    spec = json.loads(sys.stdin.read())
    settings = spec["settings"]
    warnings.simplefilter("ignore")
    if settings.get("threads"):
        torch.set_num_threads(int(settings["threads"]))
    for case in spec["cases"]:
        result = run_case(case, settings)
        print(RESULT_PREFIX + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(_child_main())
