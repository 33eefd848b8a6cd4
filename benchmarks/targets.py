"""This repository's performance targets for the two ops, evaluated on the results of ``hyperdml bench``.

:data:`TARGETS` lists them; :func:`evaluate_targets` says, for one run, which are met, measured
how; :func:`target_lines` is the Markdown that ``benchmarks/report.py`` puts under each run in
``benchmarks/README.md``. Targets are stated for float32 and for the benchmark's full shapes
(quick runs get none).
"""

from __future__ import annotations

from hyperdml.bench.markdown import markdown_table, shape_text
from hyperdml.bench.results import MODE_LABEL, case_key, index_cases, ok

__all__ = ["TARGETS", "evaluate_targets", "target_lines"]


def _t(values):
    return lambda s: s["T"] in values


#: (op, device kind, passes, kind, competitor, limit, text, shape filter). ``kind``: ``op_over``
#: (op time ÷ competitor time ≤ limit), ``speedup`` (competitor time ÷ op time ≥ limit),
#: ``memory`` (peak extra bytes of the op ≤ limit · B·N floats).
TARGETS = [
    ("cdist", "cpu", ("fwdbwd",), "op_over", "matmul", 1.5,
     "forward+backward within 1.5× the three bare matmuls", None),
    ("cdist", "cpu", ("fwd", "fwdbwd"), "speedup", "compile", 3.0,
     "≥ 3× faster than the compiled plain-PyTorch form (where its matmuls leave room)", None),
    ("cdist", "cpu", ("fwdbwd",), "memory", None, 3.0,
     "extra memory of forward+backward ≤ 3·B·N floats", None),
    ("cdist", "cuda", ("fwd",), "op_over", "matmul", 1.3,
     "forward within 1.3× the cuBLAS matmul of the same shape", None),
    ("cdist", "cuda", ("fwdbwd",), "op_over", "matmul", 1.5,
     "forward+backward within 1.5× its three matmuls", None),
    ("cdist", "cuda", ("fwd", "fwdbwd"), "speedup", "compile", 2.0,
     "≥ 2× faster than the compiled plain-PyTorch form", None),
    ("hyphc", "cpu", ("fwd",), "op_over", "closed_compile", 1.0,
     "forward no slower than the compiled closed form", _t((10**5, 10**6))),
    ("hyphc", "cpu", ("fwdbwd",), "speedup", "closed_compile", 3.0,
     "forward+backward ≥ 3× faster than the compiled closed form", _t((10**5, 10**6))),
    ("hyphc", "cpu", ("fwdbwd",), "speedup", "eager", 20.0,
     "≥ 20× faster than the eager formulation, forward+backward", _t((10**6,))),
    ("hyphc", "cuda", ("fwdbwd",), "speedup", "eager", 50.0,
     "≥ 50× faster than the eager formulation, forward+backward", _t((10**6, 10**7))),
    ("hyphc", "cuda", ("fwdbwd",), "speedup", "compile", 3.0,
     "≥ 3× faster than torch.compile, forward+backward", _t((10**6, 10**7))),
]


def _row(how: str, limit: float, shape: dict, by_comp: dict, op_case: dict, other: dict | None) -> dict:
    row = {"measured": None, "met": None}
    if how == "op_over":
        row["measured"] = op_case["median_ms"] / other["median_ms"]
        row["met"] = row["measured"] <= limit
    elif how == "speedup":
        row["measured"] = other["median_ms"] / op_case["median_ms"]
        row["met"] = row["measured"] >= limit
        roofline = by_comp.get("matmul")
        if not row["met"] and ok(roofline):  # an op is no faster than its own matmuls
            row["note"] = f"at most {other['median_ms'] / roofline['median_ms']:.1f}× for an op as fast as its matmuls"
    else:  # memory, in units of B·N float32 elements
        b, n, d = shape["B"], shape["N"], shape["D"]
        row["measured"] = op_case["peak_bytes"] / (b * n * 4)
        row["met"] = row["measured"] <= limit
        row["note"] = f"the (B, N) output and the returned gradients alone are {1 + (b + n) * d / (b * n):.2f}·B·N"
    return row


def evaluate_targets(run: dict) -> list[dict]:
    """One row per target of the run's op and device kind × main shape × pass.

    ``{"target", "shape", "mode", "kind", "limit", "measured", "met", "note"?}``; ``met`` is None
    where the needed cases did not run. No rows for quick runs or dtypes other than float32.
    """
    s = run["settings"]
    if run.get("quick") or s["dtype"] != "float32":
        return []
    kind = "cuda" if str(s["device"]).startswith("cuda") else "cpu"
    table = index_cases(run["cases"])
    rows = []
    for t_op, t_dev, modes, how, comp, limit, text, shape_ok in TARGETS:
        if t_op != run["op"] or t_dev != kind:
            continue
        for shape in [sh for sh in run["shapes"] if shape_ok is None or shape_ok(sh)]:
            for mode in modes:
                by_comp = table.get(case_key(shape, mode), {})
                op_case, other = by_comp.get("hyperdml"), by_comp.get(comp) if comp else None
                row = {"target": text, "shape": shape, "mode": mode, "kind": how, "limit": limit}
                if not ok(op_case) or (comp and not ok(other)):
                    missing = "hyperdml" if not ok(op_case) else comp
                    row.update(measured=None, met=None,
                               note=f"{missing} did not run ({(by_comp.get(missing) or {}).get('status', 'not selected')})")
                else:
                    row.update(_row(how, limit, shape, by_comp, op_case, other))
                rows.append(row)
    return rows


def _measured_text(row: dict) -> str:
    if row["measured"] is None:
        return "–"
    if row["kind"] == "memory":
        return f"{row['measured']:.2f}·B·N floats"
    if row["kind"] == "op_over":
        return f"{row['measured']:.2f}× the competitor's time"
    return f"{row['measured']:.1f}×"


def target_lines(run: dict) -> list[str]:
    """Markdown: the run's targets, met or missed, computed from its cases."""
    rows = []
    for t in evaluate_targets(run):
        met = "–" if t["met"] is None else ("**met**" if t["met"] else "**missed**")
        rows.append([t["target"], shape_text(t["shape"], run["shape_keys"]), MODE_LABEL[t["mode"]], _measured_text(t),
                     met + (f" ({t['note']})" if t.get("note") else "")])
    if not rows:
        return []
    n = run["settings"]["threads"]
    return ["", f"Targets, computed from the cases above ({n} thread{'s' if n != 1 else ''}):", "",
            *markdown_table(["target", "shape", "pass", "measured", "met?"], rows)]
