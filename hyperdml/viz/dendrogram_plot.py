"""Dendrogram plots of decoded trees, readable from 5 to 11 318 leaves.

:func:`plot_dendrogram` draws one tree (linkage matrix) horizontally: leaves on the right,
labelled with class names and coloured by super-class (a link is drawn in a super-class's colour
when every leaf under it belongs to that super-class, grey otherwise), the root on the left. The
x axis is the merge value: the hyperbolic LCA depth ``d_c(0, z_i∨z_j)`` for trees from
:func:`hyperdml.hierarchy.decode_tree` (pass ``depth_max``), the cosine similarity for
:func:`hyperdml.hierarchy.cosine_tree` (``kind="cosine"``). Both grow to the right, so two panels
read the same way. Trees with more than ``max_leaves`` (250) leaves are truncated to their last
``truncate_to`` (100) clusters (SciPy's ``truncate_mode="lastp"``); a cluster is labelled with its
size and its majority super-class (or first class). The figure height grows with the leaf count
(0.16 inch per leaf), so 200 class names are legible at 7 pt.
"""

from __future__ import annotations

import numpy as np
from matplotlib.collections import LineCollection
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter

from hyperdml.hierarchy import dendrogram as _dendrogram
from hyperdml.hierarchy import merged_label_counts
from hyperdml.viz.style import GREY, new_figure, palette, text_color

__all__ = ["plot_dendrogram", "plot_dendrograms", "dendrogram_size"]

LEAF_INCH = 0.16


def dendrogram_size(num_leaves: int, max_leaves: int = 250, panels: int = 1,
                    truncate_to: int = 100) -> tuple[float, float]:
    """Figure size ``(width, height)`` in inches for ``panels`` side-by-side dendrograms."""
    shown = num_leaves if num_leaves <= max_leaves else min(truncate_to, max_leaves)
    return 6.5 * panels + 0.5, max(4.5, LEAF_INCH * shown + 1.6)


def _leaf_groups(z: np.ndarray, groups: np.ndarray | None) -> np.ndarray | None:
    """Group of every node ``(2P − 1,)``: the common group of its leaves, or −1 when mixed."""
    if groups is None:
        return None
    p = z.shape[0] + 1
    g = np.full(2 * p - 1, -1, dtype=np.int64)
    g[:p] = groups
    for m, (a, b) in enumerate(z[:, :2].astype(np.int64)):
        g[p + m] = g[a] if g[a] == g[b] else -1
    return g


def plot_dendrogram(
    z,
    leaf_names=None,
    *,
    groups=None,
    group_names=None,
    kind: str = "lca",
    depth_max: float | None = None,
    max_leaves: int = 250,
    truncate_to: int = 100,
    ax=None,
    title: str | None = None,
    legend: bool = True,
    dpi: int = 100,
):
    """Draw the tree ``z ((P − 1), 4)`` as a horizontal dendrogram; returns the Figure.

    Args:
        z: SciPy linkage matrix (from ``decode_tree`` or ``cosine_tree``).
        leaf_names: ``P`` leaf labels (class names); default ``"0" … "P−1"``.
        groups: ``(P,)`` int super-class of each leaf (colours labels and pure subtrees), or None.
        group_names: names of the groups (legend); default ``"group g"``.
        kind: ``"lca"``: heights are ``δ_max − δ`` (``decode_tree``), the axis shows the LCA depth
            ``δ`` when ``depth_max`` (= ``δ_max``) is given; ``"cosine"``: heights are ``1 − cos``
            and the axis shows the cosine.
        max_leaves: trees with at most this many leaves are drawn whole (labels at 7 pt).
        truncate_to: larger trees are truncated to their last ``truncate_to`` clusters, each
            labelled ``"<majority super-class> ×n (k%)"`` (or ``"<first class> +n"``).
        ax: draw into this Axes (its figure is returned); default: a new figure sized by
            :func:`dendrogram_size`.
        title: axes title.
        legend: add a legend of the groups (when ``groups`` is given).

    Returns:
        The ``matplotlib.figure.Figure``.
    """
    z = np.asarray(z, dtype=np.float64)
    p = z.shape[0] + 1
    names = [str(i) for i in range(p)] if leaf_names is None else [str(n) for n in leaf_names]
    if len(names) != p:
        raise ValueError(f"leaf_names has {len(names)} names for a tree of {p} leaves")
    if groups is not None:
        groups = np.asarray(groups, dtype=np.int64).reshape(-1)
        if groups.shape != (p,):
            raise ValueError(f"groups must have shape ({p},), got {groups.shape}")
        n_groups = int(groups.max()) + 1
        if group_names is None:
            group_names = [f"group {g}" for g in range(n_groups)]
        group_names = [str(g) for g in group_names]
        if len(group_names) < n_groups:
            raise ValueError(f"group_names has {len(group_names)} names, groups uses {n_groups}")
        colors = palette(len(group_names))
    if kind not in ("lca", "cosine"):
        raise ValueError(f"kind must be 'lca' or 'cosine', got {kind!r}")

    node_group = _leaf_groups(z, groups)
    truncated = p > max_leaves
    kwargs = dict(no_plot=True, labels=None, count_sort="descending")
    if node_group is not None:
        kwargs["link_color_func"] = lambda k: "C%d" % node_group[k] if node_group[k] >= 0 else "grey"
    else:
        kwargs["link_color_func"] = lambda k: "grey"
    if truncated:
        label_of = _truncated_labels(z, groups, names, group_names)
        kwargs.update(truncate_mode="lastp", p=min(truncate_to, max_leaves), leaf_label_func=label_of, show_contracted=False)
    else:
        kwargs["leaf_label_func"] = lambda k: names[k]
    d = _dendrogram(z, **kwargs)

    if ax is None:
        fig = new_figure(*dendrogram_size(p, max_leaves, truncate_to=truncate_to), dpi=dpi)
        ax = fig.add_subplot(1, 1, 1)
        own = True
    else:
        fig, own = ax.figure, False

    def to_x(h):
        h = np.asarray(h, dtype=np.float64)
        if kind == "cosine":
            return 1.0 - h
        return (depth_max - h) if depth_max is not None else -h

    segs, seg_colors = [], []
    for xs, ys, col in zip(d["icoord"], d["dcoord"], d["color_list"]):
        pts = np.column_stack([to_x(ys), np.asarray(xs)])
        segs.append(pts)
        seg_colors.append(colors[int(col[1:])] if (groups is not None and col.startswith("C")) else GREY)
    ax.add_collection(LineCollection(segs, colors=seg_colors, linewidths=1.0 if len(segs) < 400 else 0.6))
    n_shown = len(d["ivl"])
    ax.set_ylim(0, 10 * n_shown)
    all_x = np.concatenate([s[:, 0] for s in segs]) if segs else np.array([0.0, 1.0])
    lo, hi = float(all_x.min()), float(all_x.max())
    pad = 0.03 * (hi - lo if hi > lo else 1.0)
    ax.set_xlim(lo - pad, hi + pad)
    fs = 8 if n_shown <= 80 else 7
    ax.yaxis.tick_right()
    ax.set_yticks(5 + 10 * np.arange(n_shown))
    ax.set_yticklabels(d["ivl"], fontsize=fs)
    ax.tick_params(axis="y", length=0, pad=2)
    if groups is not None:
        # group (or −1) of each shown leaf: the leaf's group, or the cluster's group when pure
        for tick, k in zip(ax.get_yticklabels(), d["leaves"]):
            g = int(node_group[k])
            if g >= 0:
                tick.set_color(text_color(colors[g]))
    if kind == "cosine":
        xlabel = "cosine similarity at the merge (single linkage)"
    elif depth_max is not None:
        xlabel = "hyperbolic LCA depth $d_c(0, z_i \\vee z_j)$ at the merge"
    else:
        xlabel = "merge height (negated)"
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{-v:g}"))
    if truncated:
        xlabel += f"\n(truncated: the last {n_shown} clusters of {p} leaves)"
    ax.set_xlabel(xlabel)
    for side in ("top", "left", "right"):
        ax.spines[side].set_visible(False)
    if title:
        ax.set_title(title, fontsize=10)
    if legend and groups is not None:
        handles = _legend_handles(group_names, colors)
        if own:
            bottom = _figure_legend(fig, handles, fig.get_figheight())
            fig.tight_layout(rect=(0, bottom, 1, 1))
            return fig
        ax.legend(handles=handles, title="super-class", fontsize=7, title_fontsize=8, loc="best")
    if own:
        fig.tight_layout()
    return fig


def _truncated_labels(z, groups, names, group_names):
    """``leaf_label_func`` for a truncated tree: class name, or ``"<majority super> ×n (k%)"``."""
    p = z.shape[0] + 1
    first = np.arange(2 * p - 1)
    size = np.ones(2 * p - 1, dtype=np.int64)
    for m, (a, b) in enumerate(z[:, :2].astype(np.int64)):
        first[p + m] = first[a]
        size[p + m] = size[a] + size[b]
    top: dict = {}
    if groups is not None:  # majority group of every cluster
        for m, (_, counts, _) in enumerate(merged_label_counts(z, groups)):
            top[p + m] = max(counts.items(), key=lambda kv: kv[1])

    def label(node):
        node = int(node)
        if node < p:
            return names[node]
        n = int(size[node])
        if groups is not None:
            g, k = top[node]
            return f"{group_names[g]} ×{n} ({100 * k / n:.0f}%)"
        return f"{names[first[node]]} +{n - 1}"

    return label


def _legend_handles(group_names, colors, max_entries: int = 24) -> list:
    handles = [Patch(color=colors[g], label=n) for g, n in enumerate(group_names[:max_entries])]
    if len(group_names) > max_entries:
        handles.append(Patch(color=GREY, label=f"… {len(group_names) - max_entries} more"))
    handles.append(Patch(color=GREY, label="mixed super-classes"))
    return handles


def _figure_legend(fig, handles, height: float) -> float:
    """Legend of the groups centred below the axes; returns the bottom fraction it takes."""
    ncol = min(len(handles), 7)
    rows = -(-len(handles) // ncol)
    frac = (0.25 + 0.2 * rows) / height
    fig.legend(handles=handles, loc="lower center", ncol=ncol, fontsize=8, title="super-class (label and subtree colour)",
               title_fontsize=8, frameon=False, bbox_to_anchor=(0.5, 0.0))
    return frac


def plot_dendrograms(panels: list[dict], *, suptitle: str | None = None, max_leaves: int = 250,
                     truncate_to: int = 100, dpi: int = 100):
    """Several dendrograms side by side (e.g. hyperbolic | Euclidean): one Figure, one panel each.

    ``panels``: list of keyword dicts for :func:`plot_dendrogram` (``z`` included; ``ax`` and
    ``max_leaves`` are set here). One legend of the groups (super-classes) goes below the panels.
    Returns the Figure.
    """
    if not panels:
        raise ValueError("plot_dendrograms needs at least one panel")
    p = max(np.asarray(kw["z"]).shape[0] + 1 for kw in panels)
    w, h = dendrogram_size(p, max_leaves, panels=len(panels), truncate_to=truncate_to)
    if suptitle:
        h += 0.3
    groups = next((kw.get("groups") for kw in panels if kw.get("groups") is not None), None)
    legend_names = next((kw.get("group_names") for kw in panels if kw.get("group_names") is not None), None)
    if groups is not None:
        h += 0.6
    fig = new_figure(w, h, dpi=dpi)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, kw in zip(axes, panels):
        kw = dict(kw)
        kw["legend"] = False
        plot_dendrogram(kw.pop("z"), ax=ax, max_leaves=max_leaves, truncate_to=truncate_to, **kw)
    bottom = 0.0
    if groups is not None:
        n_groups = int(np.max(groups)) + 1
        names = [str(g) for g in legend_names] if legend_names is not None else [f"group {g}" for g in range(n_groups)]
        bottom = _figure_legend(fig, _legend_handles(names, palette(len(names))), h)
    top = 1.0
    if suptitle:
        fig.suptitle(suptitle, fontsize=11, y=1 - 0.12 / h, va="top")
        top = 1 - 0.22 / h
    fig.tight_layout(rect=(0, bottom, 1, top))
    return fig
