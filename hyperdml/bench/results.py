"""Results of ``hyperdml bench``: the JSON file per device, the machine it ran on, and the ratios.

``<out>/<device>.json`` (``<device>-quick.json`` for ``--quick`` runs)::

    {"format": "hyperdml-bench", "version": 1, "device": "cpu-intel-xeon",
     "machine": {"device_name", "cpu", "cores", "platform", "python", "torch", "cuda", "extension"},
     "runs": {"cdist": RUN, "hyphc": RUN}}        # the latest run of each op

    RUN = {"op", "op_name", "date", "quick", "options" (the command's), "settings": {device, dtype, threads, ...},
           "torch", "shape_keys", "shapes": [main shapes], "sweep": {"key", "values", "mode", "fixed"},
           "cases": [{"competitor", "shape", "mode", "sweep", "status", "median_ms", "iqr_ms",
                      "peak_bytes", ...}],
           "ratios": [{"shape", "mode", "competitor", "speedup", "op_over_competitor", "memory_ratio"}]}

``speedup`` = competitor time ÷ op time; ``op_over_competitor`` its inverse (for the matmul
roofline: how many times the bare matmuls the op takes). :mod:`hyperdml.bench.markdown` turns a
run (or every results file of a folder) into Markdown tables, :mod:`hyperdml.bench.plot` draws
the sweep.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import re

from hyperdml._atomic import atomic_write_json
from hyperdml.errors import ConfigError

FORMAT = "hyperdml-bench"
VERSION = 1
MODE_LABEL = {"fwd": "fwd", "fwdbwd": "fwd+bwd"}


# ---------------------------------------------------------------------------------------- machine
def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``; ``platform.processor()`` elsewhere)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def device_key(device: str) -> str:
    """File stem for a device: ``"cpu-<short cpu model>"`` or the CUDA device name as a slug."""
    import torch

    if str(device).startswith("cuda"):
        return _slug(torch.cuda.get_device_name(torch.device(device)))
    model = re.sub(r"\((r|tm)\)|\bcpu\b|\bprocessor\b|@.*$|\d+(th|nd|rd|st) gen\b|\bwith\b.*$", " ",
                   cpu_model(), flags=re.IGNORECASE)
    return "cpu-" + (_slug(model) or _slug(platform.machine()))


def machine_info(device: str) -> dict:
    """What the numbers were measured on: device name, CPU, cores, versions, extension build."""
    import torch

    import hyperdml

    cuda = str(device).startswith("cuda")
    cpu = cpu_model()
    return {
        "device_name": torch.cuda.get_device_name(torch.device(device)) if cuda else f"CPU: {cpu}",
        "cpu": cpu,
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda if cuda else None,
        "extension": hyperdml.extension_info(),
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
        "triton": _triton_version() if cuda else None,
    }


def _triton_version() -> str | None:
    """Triton's version where poincare_cdist's fused Triton kernels serve CUDA, else None."""
    import importlib

    module = importlib.import_module("hyperdml.ops.poincare_cdist")
    if "cuda" not in module.FUSED_DEVICES:
        return None
    import triton

    return triton.__version__


def now_utc() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


# ---------------------------------------------------------------------------------------- files
def results_path(out_dir: str, key: str, quick: bool) -> str:
    return os.path.join(out_dir, f"{key}{'-quick' if quick else ''}.json")


def load_results(path: str) -> dict:
    """Read one results file; :class:`ConfigError` if it is not one."""
    try:
        with open(path) as f:
            data = json.load(f)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path} is not valid JSON ({exc})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ConfigError(f"{path} is not a hyperdml bench results file (no \"format\": \"{FORMAT}\")")
    return data


def save_run(out_dir: str, key: str, machine: dict, run: dict) -> str:
    """Store ``run`` as ``runs[run["op"]]`` of ``<out_dir>/<key>[-quick].json`` (atomic write)."""
    os.makedirs(out_dir, exist_ok=True)
    path = results_path(out_dir, key, run["quick"])
    data = load_results(path) if os.path.exists(path) else {"format": FORMAT, "version": VERSION, "runs": {}}
    data.update(device=key, machine=machine)
    data["runs"][run["op"]] = run
    atomic_write_json(path, data, indent=1)
    return path


# ---------------------------------------------------------------------------------------- ratios
def case_key(shape: dict, mode: str) -> tuple:
    return tuple(sorted(shape.items())), mode


def index_cases(cases: list[dict]) -> dict:
    """``{(shape items, mode): {competitor: case}}`` (later duplicates win)."""
    table: dict = {}
    for case in cases:
        table.setdefault(case_key(case["shape"], case["mode"]), {})[case["competitor"]] = case
    return table


def ok(case) -> bool:
    """Whether ``case`` ran and has timings."""
    return case is not None and case.get("status") == "ok"


def compute_ratios(cases: list[dict]) -> list[dict]:
    """Op-versus-competitor ratios for every shape and pass where both ran."""
    ratios = []
    for (_, mode), by_comp in index_cases(cases).items():
        op = by_comp.get("hyperdml")
        if not ok(op):
            continue
        for name, case in by_comp.items():
            if name == "hyperdml" or not ok(case):
                continue
            mem = case["peak_bytes"] / op["peak_bytes"] if op.get("peak_bytes") else None
            ratios.append({"shape": op["shape"], "mode": mode, "competitor": name,
                           "speedup": case["median_ms"] / op["median_ms"],
                           "op_over_competitor": op["median_ms"] / case["median_ms"], "memory_ratio": mem})
    return ratios
