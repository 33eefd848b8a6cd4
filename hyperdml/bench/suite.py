"""One benchmark run of an op: build the cases, run them, write JSON, Markdown and the plot."""

from __future__ import annotations

import itertools
import os
from typing import Callable

import torch

from hyperdml._atomic import atomic_write_text
from hyperdml.bench import results
from hyperdml.bench.markdown import render_run
from hyperdml.bench.plot import plot_sweep
from hyperdml.bench.competitors import COMPETITORS
from hyperdml.bench.runner import MODES, OPS, run_cases, shape_label
from hyperdml.errors import ConfigError


def build_cases(op: str, shapes: list[dict], sweep: dict | None, modes: list[str],
                competitors: list[str]) -> list[dict]:
    """Every competitor × main shape × pass, then the sweep's shapes (one pass), without duplicates.

    ``sweep``: ``{"key", "values", "mode", "fixed"}`` or ``None``.
    """
    cases, seen = [], set()

    def add(shape, mode, is_sweep):
        for comp in competitors:
            key = (comp, tuple(sorted(shape.items())), mode)
            if key not in seen:
                seen.add(key)
                cases.append({"op": op, "competitor": comp, "shape": dict(shape), "mode": mode, "sweep": is_sweep})

    for shape in shapes:
        for mode in modes:
            add(shape, mode, False)
    if sweep:
        for value in sweep["values"]:
            add({**sweep["fixed"], sweep["key"]: value}, sweep["mode"], True)
    return cases


def default_budget_bytes(device: str) -> int:
    """Memory a case may use: half the available RAM on the CPU, 80 % of the free GPU memory."""
    if str(device).startswith("cuda"):
        free, _ = torch.cuda.mem_get_info(torch.device(device))
        return int(0.8 * free)
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024 // 2
    except OSError:
        pass
    return 8 * 2**30


def check_device(device: str) -> None:
    """:class:`ConfigError` unless ``device`` is ``cpu`` or an existing CUDA device."""
    if device == "cpu":
        return
    if not device.startswith("cuda"):
        raise ConfigError(f"--device must be 'cpu' or 'cuda[:index]', got {device!r}")
    if not torch.cuda.is_available():
        raise ConfigError(f"--device {device}: no CUDA device is available (torch {torch.__version__})")
    try:
        index = torch.device(device).index or 0
    except RuntimeError as exc:
        raise ConfigError(f"--device {device!r}: {exc}") from None
    if index >= torch.cuda.device_count():
        raise ConfigError(f"--device {device}: only {torch.cuda.device_count()} CUDA device(s)")


def _progress(op_keys) -> Callable[[dict], None]:
    def report(r):
        what = f"{r['competitor']:>9} {shape_label(r['shape'], op_keys):>22} {results.MODE_LABEL[r['mode']]:>7}"
        if r["status"] == "ok":
            extra = f", compile {r['compile_s']:.1f} s" if r.get("compile_s") is not None else ""
            print(f"  {what}: {r['median_ms']:10.3f} ms ±{r['iqr_ms']:.3f} (n={r['repeats']}×{r['number']}), "
                  f"peak {r['peak_bytes'] / 2**20:.1f} MiB{extra}", flush=True)
        else:
            print(f"  {what}: {r['status']}: {r.get('reason') or r.get('error')}", flush=True)
    return report


def run_benchmark(op: str, *, shapes: list[dict], sweep: dict | None, modes: list[str], competitors: list[str],
                  settings: dict, out_dir: str, quick: bool, isolate: str, case_timeout_s: float,
                  plot: bool = True, options: dict | None = None, dry_run: bool = False) -> tuple[dict | None, str | None]:
    """Run the benchmark of ``op`` (``"cdist"`` or ``"hyphc"``) and write its results.

    Returns ``(run dict, path of the JSON file)``; also writes ``<key>[-quick]-<op>.md`` (the run's
    Markdown) and, with a sweep, ``<key>[-quick]-<op>-sweep.png`` into ``out_dir``. With
    ``dry_run``, prints the cases and their memory estimates, runs nothing, returns ``(None, None)``.
    """
    mod = OPS[op]
    unknown = [c for c in competitors if c not in COMPETITORS[op]]
    if unknown:
        raise ConfigError(f"unknown competitor(s) {', '.join(unknown)} for {op}; "
                          f"choose from {', '.join(COMPETITORS[op])} or 'all'")
    bad_modes = [m for m in modes if m not in MODES]
    if bad_modes:
        raise ConfigError(f"unknown pass(es) {', '.join(bad_modes)}; choose from fwd, fwdbwd")
    check_device(settings["device"])
    if "hyperdml" not in competitors:
        competitors = ["hyperdml", *competitors]  # ratios need the op itself
    settings = dict(settings)
    if settings.get("memory_budget_bytes") is None:
        settings["memory_budget_bytes"] = default_budget_bytes(settings["device"])
    settings["threads"] = settings.get("threads") or torch.get_num_threads()
    settings["isolate"] = isolate
    cases = build_cases(op, shapes, sweep, modes, competitors)
    if dry_run:
        _print_plan(op, cases, settings)
        return None, None
    key = results.device_key(settings["device"])
    machine = results.machine_info(settings["device"])
    started = results.now_utc()
    load_before = _load()
    if load_before is not None and load_before > 0.5 * (os.cpu_count() or 1):
        print(f"warning: the machine is busy (load average {load_before:.1f} on {os.cpu_count()} cores); "
              "CPU timings will be noisy", flush=True)
    print(f"hyperdml bench {op}: {len(cases)} cases on {machine['device_name']} "
          f"({settings['threads']} threads, {settings['dtype']}) -> {out_dir}", flush=True)
    case_results = run_cases(cases, settings, isolate=isolate, case_timeout_s=case_timeout_s,
                             report=_progress(mod.SHAPE_KEYS))
    run = {
        "op": op, "op_name": mod.OP_NAME, "started": started, "date": results.now_utc(), "quick": quick, "options": options or {},
        "torch": torch.__version__, "device_name": machine["device_name"], "settings": settings,
        "load_average": {"before": load_before, "after": _load()},
        "shape_keys": list(mod.SHAPE_KEYS), "shapes": shapes, "sweep": sweep, "cases": case_results,
        "ratios": results.compute_ratios(case_results),
    }
    stem = f"{key}{'-quick' if quick else ''}-{op}"
    os.makedirs(out_dir, exist_ok=True)
    if sweep and plot:
        png = plot_sweep(run, os.path.join(out_dir, stem + "-sweep.png"))
        run["plot"] = os.path.basename(png) if png else None
    path = results.save_run(out_dir, key, machine, run)
    atomic_write_text(os.path.join(out_dir, stem + ".md"), "\n".join(render_run(run)) + "\n")
    return run, path


def _print_plan(op: str, cases: list[dict], settings: dict) -> None:
    itemsize = torch.empty((), dtype=getattr(torch, settings["dtype"])).element_size()
    budget = settings["memory_budget_bytes"]
    skipped = 0
    print(f"hyperdml bench {op}: {len(cases)} cases (dry run; memory budget {budget / 2**30:.1f} GiB)")
    for case in cases:
        est = COMPETITORS[op][case["competitor"]].memory(case["shape"], case["mode"], itemsize)
        skip = est > budget
        skipped += skip
        print(f"  {case['competitor']:>9} {shape_label(case['shape'], OPS[op].SHAPE_KEYS):>22} "
              f"{results.MODE_LABEL[case['mode']]:>7}{' (sweep)' if case['sweep'] else '        '} "
              f"~{est / 2**30:7.2f} GiB{'  -> skipped' if skip else ''}")
    print(f"{len(cases) - skipped} to run, {skipped} skipped by the memory budget")


def _load() -> float | None:
    """The 1-minute load average (``None`` where the OS has none)."""
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def shapes_from_lists(keys: tuple[str, ...], lists: dict[str, list[int]]) -> list[dict]:
    """Cartesian product of per-dimension lists, in ``keys`` order."""
    return [dict(zip(keys, combo)) for combo in itertools.product(*(lists[k] for k in keys))]
