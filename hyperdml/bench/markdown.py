"""Markdown of benchmark results: one run's timing and memory tables, a results file, a folder.

``hyperdml bench`` writes :func:`render_run` of each run next to its JSON; the repository's
``benchmarks/report.py`` puts :func:`render_results` of the whole results folder, with its own
targets, into ``benchmarks/README.md``.
"""

from __future__ import annotations

import glob
import os
from typing import Callable

from hyperdml.bench.results import MODE_LABEL, case_key, index_cases, load_results, ok

__all__ = ["render_run", "render_device", "render_results", "markdown_table", "shape_text", "format_ms"]


def shape_text(shape: dict, keys: list[str]) -> str:
    """``256 × 2,000 × 128`` for cdist shapes, ``P=2,000, D=64, T=1,000,000`` otherwise."""
    if keys == ["B", "N", "D"]:
        return " × ".join(f"{shape[k]:,}" for k in keys)
    return ", ".join(f"{k}={shape[k]:,}" for k in keys)


def format_ms(v: float) -> str:
    """Milliseconds as text with about 3 significant digits (``1.23 s``, ``45.6 ms``, ``120 µs``)."""
    if v >= 1000:
        return f"{v / 1000:.2f} s"
    if v >= 100:
        return f"{v:.0f} ms"
    if v >= 10:
        return f"{v:.1f} ms"
    if v >= 1:
        return f"{v:.2f} ms"
    return f"{v * 1000:.0f} µs" if v < 0.1 else f"{v:.3f} ms"


def _mib(b: int) -> str:
    m = b / 2**20
    return f"{m / 1024:.2f} GiB" if m >= 1024 else f"{m:.1f} MiB"


def _cell_status(case: dict | None) -> str:
    if case is None:
        return "–"
    if case.get("status") == "skipped":
        return f"skipped: {case.get('reason', '')}"
    return f"error: {case.get('error', '')}"[:80].replace("|", "/")


def render_run(run: dict, link_prefix: str = "", extra: Callable[[dict], list[str]] | None = None) -> list[str]:
    """Markdown for one op's run: timing table, memory table, agreement, the plot.

    ``link_prefix``: the results folder relative to the Markdown file (for the plot's link);
    ``extra(run)``: more lines before the plot (the repository's targets, for instance).
    """
    from hyperdml.bench.competitors import COMPETITORS

    keys = run["shape_keys"]
    comps = [c for c in COMPETITORS[run["op"]] if any(x["competitor"] == c for x in run["cases"])]
    s = run["settings"]
    params = ", ".join(f"{k} = {s[k]}" for k in ("c", "tau") if k in s)
    lines = [f"#### `{run['op_name']}`{' (quick mode)' if run.get('quick') else ''}", "",
             f"{run['date']}, torch {run['torch']}, {s['dtype']}, {s['threads']} threads, {params}; "
             f"median of ≥ {s['min_repeats']} samples (≥ {s['min_run_time']} s in all) with the "
             "interquartile range; each case in its own process"
             + ("" if s.get("isolate", "case") == "case" else f" (isolation: {s.get('isolate')})") + "."
             + _load_text(run), ""]
    labels = {c: COMPETITORS[run["op"]][c].label for c in comps}
    header = [" × ".join(keys) if keys == ["B", "N", "D"] else "shape", "pass"]
    header += [labels[c] + (" (op ÷ this)" if c == "matmul" else (" (this ÷ op)" if c != "hyperdml" else ""))
               for c in comps]
    table = index_cases(run["cases"])
    sweep_key = (run.get("sweep") or {}).get("key")
    order = run["shapes"] + sorted((c["shape"] for c in run["cases"] if c.get("sweep")),
                                   key=lambda sh: sh.get(sweep_key, 0))
    seen, rows_t, rows_m = set(), [], []
    for shape in order:
        for mode in ("fwd", "fwdbwd"):
            k = case_key(shape, mode)
            if k in seen or k not in table:
                continue
            seen.add(k)
            by_comp = table[k]
            op = by_comp.get("hyperdml")
            row_t = [shape_text(shape, keys), MODE_LABEL[mode]]
            row_m = list(row_t)
            for c in comps:
                case = by_comp.get(c)
                if not ok(case):
                    row_t.append(_cell_status(case))
                    row_m.append("–")
                    continue
                cell = f"{format_ms(case['median_ms'])} ±{format_ms(case['iqr_ms'])}"
                if c != "hyperdml" and ok(op):
                    ratio = case["median_ms"] / op["median_ms"]
                    ratio = 1 / ratio if c == "matmul" else ratio
                    cell += f" · **{ratio:.2f}×**"
                if case.get("compile_s") is not None:
                    cell += f" (compile {case['compile_s']:.0f} s)"
                row_t.append(cell)
                row_m.append(_mib(case["peak_bytes"]))
            rows_t.append(row_t)
            rows_m.append(row_m)
    lines += markdown_table(header, rows_t)
    lines += ["", "Peak extra memory per call (" + _memory_note(run) + "):", ""]
    lines += markdown_table(header[:2] + [labels[c] for c in comps], rows_m)
    diffs = []
    for c in comps:
        vals = [x["max_rel_diff"] for x in run["cases"] if x["competitor"] == c and "max_rel_diff" in x]
        if vals:
            diffs.append(f"{labels[c]} {max(vals):.1e}")
    if diffs:
        lines += ["", "Same inputs, same results: largest relative difference from the op's output "
                  "(forward) or gradients (forward+backward): " + "; ".join(diffs) + "."]
    if extra is not None:
        lines += extra(run)
    if run.get("plot"):
        lines += ["", f"![time vs {run['sweep']['key']}]({link_prefix}{run['plot']})"]
    return lines


def _load_text(run: dict) -> str:
    load = run.get("load_average") or {}
    if load.get("before") is None:
        return ""
    return f" Machine load average {load['before']:.1f} before, {load['after']:.1f} after."


def _memory_note(run: dict) -> str:
    methods = {c.get("memory_method") for c in run["cases"] if c.get("memory_method")}
    if any(m.startswith("cuda") for m in methods):
        return "CUDA caching allocator, max_memory_allocated above the memory in use before the call"
    return "process resident-set high-water mark above the resident set before the call, after malloc_trim"


def markdown_table(header: list[str], rows: list[list[str]]) -> list[str]:
    """A Markdown table's lines."""
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(v) for v in row) + " |" for row in rows]
    return out


def render_device(data: dict, file_name: str, link_prefix: str = "",
                  extra: Callable[[dict], list[str]] | None = None) -> list[str]:
    """Markdown for one results file: machine line, then each op's run."""
    m = data["machine"]
    ext = m.get("extension") or {}
    on_cuda = m.get("cuda") is not None
    if not ext.get("extension"):
        build = f"**no compiled extension ({ext.get('error')}): the op ran its pure-PyTorch fallback**"
    elif on_cuda and not ext.get("cuda"):
        build = "**compiled extension without CUDA kernels: on the GPU the op ran its pure-PyTorch fallback**"
    else:
        build = "compiled extension" + (" with CUDA kernels" if ext.get("cuda") else "")
        if ext.get("cpu_capability"):
            build += f", CPU kernels: {ext['cpu_capability']}"
        if on_cuda:
            build += (f"; float32 cdist by the fused Triton kernels (Triton {m['triton']})" if m.get("triton")
                      else "; no Triton: float32 cdist by the C++ op")
    lines = [f"### {m['device_name']} (`{file_name}`)", "",
             f"{m['cpu']}, {m['cores']} cores; {m['platform']}; Python {m['python']}, torch {m['torch']}"
             + (f", CUDA {m['cuda']}" if m.get("cuda") else "") + f"; hyperdml {build}.", ""]
    for op in ("cdist", "hyphc"):
        if op in data["runs"]:
            lines += render_run(data["runs"][op], link_prefix, extra) + [""]
    return lines


def result_files(results_dir: str, include_quick: bool = False) -> list[str]:
    """The ``<device>.json`` files in ``results_dir`` and in its subfolders (one level)."""
    paths = glob.glob(os.path.join(results_dir, "*.json")) + glob.glob(os.path.join(results_dir, "*", "*.json"))
    return sorted(p for p in paths if include_quick or not p.endswith("-quick.json"))


def render_results(results_dir: str, include_quick: bool = False, link_prefix: str = "",
                   extra: Callable[[dict], list[str]] | None = None) -> str:
    """The Markdown of every results file in ``results_dir`` and its subfolders (one level: runs of
    other settings, e.g. ``threads-2/``), CPU files first, the folder's own before its subfolders'.

    ``link_prefix``: ``results_dir`` relative to the Markdown file; ``extra``: see :func:`render_run`.
    """
    paths = result_files(results_dir, include_quick)
    paths.sort(key=lambda p: (not os.path.basename(p).startswith("cpu"), os.path.dirname(p) != results_dir, p))
    lines = []
    for path in paths:
        rel = os.path.relpath(path, results_dir).replace(os.sep, "/")
        folder = rel.rpartition("/")[0]
        lines += render_device(load_results(path), link_prefix + rel, link_prefix + (folder + "/" if folder else ""),
                               extra)
    if not lines:
        lines = ["No results yet: run `hyperdml bench cdist` and `hyperdml bench hyphc`."]
    return "\n".join(lines).rstrip() + "\n"
