"""The time-vs-size plot of a benchmark run's sweep."""

from __future__ import annotations

from hyperdml.bench.results import MODE_LABEL, ok

__all__ = ["plot_sweep"]


def plot_sweep(run: dict, path: str) -> str | None:
    """Log-log PNG of time vs the sweep variable, one line per competitor; ``None`` without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    from hyperdml.bench.competitors import COMPETITORS

    sweep = run["sweep"]
    key, mode, fixed = sweep["key"], sweep["mode"], sweep["fixed"]
    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=120)
    for name, comp in COMPETITORS[run["op"]].items():
        pts = sorted((c["shape"][key], c["median_ms"]) for c in run["cases"]
                     if c["competitor"] == name and c["mode"] == mode and ok(c)
                     and c["shape"][key] in sweep["values"] and all(c["shape"][k] == v for k, v in fixed.items()))
        if pts:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=comp.label,
                    linestyle="--" if name == "matmul" else "-")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(key)
    ax.set_ylabel(f"{MODE_LABEL[mode]} time per call (ms)")
    fixed_text = ", ".join(f"{k}={v}" for k, v in fixed.items())
    ax.set_title(f"{run['op_name']}, {fixed_text}, {run['settings']['dtype']}\n{run.get('device_name', '')}, "
                 f"{run['settings']['threads']} threads, {run['date']}",
                 fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
