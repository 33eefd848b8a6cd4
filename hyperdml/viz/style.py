"""Shared plotting helpers: the Agg backend, colour palettes, figure saving.

Importing this module selects Matplotlib's headless ``Agg`` backend unless a backend was already
chosen (a notebook keeps its inline backend); nothing here ever calls ``plt.show``.
"""

from __future__ import annotations

import os
import sys

import matplotlib

if "matplotlib.pyplot" not in sys.modules and not os.environ.get("MPLBACKEND"):
    matplotlib.use("Agg")

import matplotlib.colors  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

__all__ = ["palette", "text_color", "new_figure", "save_figure", "GREY", "FORMATS"]

GREY = "#9a9a9a"
FORMATS = ("png", "svg")


def palette(n: int) -> list:
    """``n`` distinguishable RGBA colours: tab10 (≤ 10), tab20 (≤ 20), else evenly spaced hues."""
    import matplotlib.pyplot as plt

    if n <= 10:
        return [plt.get_cmap("tab10")(i) for i in range(n)]
    if n <= 20:
        return [plt.get_cmap("tab20")(i) for i in range(n)]
    hues = plt.get_cmap("hsv")(np.linspace(0, 1, n, endpoint=False))
    # alternate lightness so neighbouring hues stay apart
    return [tuple(0.75 * h[:3] if i % 2 else h[:3]) + (1.0,) for i, h in enumerate(hues)]


def text_color(color) -> tuple:
    """``color`` darkened until it reads as text on white (relative luminance ≤ 0.45)."""
    r, g, b = matplotlib.colors.to_rgb(color)
    lum = 0.2126 * r + 0.7152 * g + 0.0722 * b
    k = min(1.0, 0.45 / lum) if lum > 0 else 1.0
    return (r * k, g * k, b * k)


def new_figure(width: float, height: float, dpi: int = 100) -> Figure:
    """A Matplotlib Figure not registered with pyplot (no GUI, garbage-collected like any object)."""
    return Figure(figsize=(width, height), dpi=dpi)


def save_figure(fig: Figure, path, fmt: str = "png") -> str:
    """Save ``fig`` to ``path`` as PNG or SVG at the figure's own size and dpi (no tight bbox).

    The PNG is exactly ``figsize × dpi`` pixels. Returns the path as a string.
    """
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {fmt!r}")
    fig.savefig(path, format=fmt, dpi=fig.dpi)
    return str(path)
