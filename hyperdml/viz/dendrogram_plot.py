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

Leaf order: a tree can be drawn with either child of every merge on top; :func:`orient_tree` picks
the sides so that the leaves come as close as the tree allows to a wanted order (by default:
grouped by super-class, then by class index). :func:`plot_dendrograms` draws its first panel in
that order and every other panel as close as possible to the first panel's order, so the same
class sits at the same height wherever the trees agree. Each panel's x axis spans its own merges
(with a margin); leaves far beyond the last merge (a hyperbolic leaf's depth, a cosine of 1) are
reached by stems that run off the axis, and the axis label says where the leaves are.
"""

from __future__ import annotations

import numpy as np
from matplotlib.collections import LineCollection
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter

from hyperdml.hierarchy import dendrogram as _dendrogram
from hyperdml.hierarchy import merged_label_counts, subtree_labels
from hyperdml.viz.style import GREY, new_figure, palette, text_color

__all__ = ["plot_dendrogram", "plot_dendrograms", "dendrogram_size", "orient_tree"]

LEAF_INCH = 0.16


def dendrogram_size(num_leaves: int, max_leaves: int = 250, panels: int = 1,
                    truncate_to: int = 100) -> tuple[float, float]:
    """Figure size ``(width, height)`` in inches for ``panels`` side-by-side dendrograms."""
    shown = num_leaves if num_leaves <= max_leaves else min(truncate_to, max_leaves)
    return 6.5 * panels + 0.5, max(4.5, LEAF_INCH * shown + 1.6)


def orient_tree(z, leaf_order) -> np.ndarray:
    """The same tree with the two children of every merge swapped where that brings the drawing closer
    to ``leaf_order``.

    ``z ((P − 1), 4)`` linkage; ``leaf_order``: the ``P`` leaf ids in the wanted top-to-bottom
    order. At every merge the child whose leaves have the smaller mean position in ``leaf_order``
    goes first (drawn on top). The merges themselves are unchanged (same clusters and heights).
    Returns the new linkage.
    """
    z = np.array(z, dtype=np.float64, copy=True)
    p = z.shape[0] + 1
    order = np.asarray(leaf_order, dtype=np.int64).reshape(-1)
    if sorted(order.tolist()) != list(range(p)):
        raise ValueError(f"leaf_order must be a permutation of the {p} leaves")
    rank = np.empty(p)
    rank[order] = np.arange(p)
    total = np.concatenate([rank, np.zeros(p - 1)])
    size = np.concatenate([np.ones(p), np.zeros(p - 1)])
    for m, (a, b) in enumerate(z[:, :2].astype(np.int64)):
        if total[a] / size[a] > total[b] / size[b]:
            z[m, 0], z[m, 1] = b, a
        total[p + m], size[p + m] = total[a] + total[b], size[a] + size[b]
    return z


def _drawn_order(z: np.ndarray) -> np.ndarray:
    """Leaf ids top to bottom as :func:`plot_dendrogram` draws an oriented tree (first child on top)."""
    p = z.shape[0] + 1
    out, stack = [], [2 * p - 2]
    while stack:
        node = stack.pop()
        if node < p:
            out.append(node)
        else:
            a, b = z[node - p, :2].astype(np.int64)
            stack += [b, a]
    return np.asarray(out, dtype=np.int64)


def _default_order(p: int, groups) -> np.ndarray:
    """Leaves grouped by super-class (when given), then by index."""
    if groups is None:
        return np.arange(p)
    return np.lexsort((np.arange(p), np.asarray(groups).reshape(-1)))


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
    leaf_order=None,
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
        leaf_order: the ``P`` leaf ids in the wanted top-to-bottom order (see :func:`orient_tree`);
            default: grouped by ``groups``, then by index.

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

    z = orient_tree(z, _default_order(p, groups) if leaf_order is None else leaf_order)
    node_group = None if groups is None else subtree_labels(z, groups)
    truncated = p > max_leaves
    kwargs = dict(no_plot=True, labels=None)  # children in the oriented order (no count_sort)
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
    ax.set_ylim(10 * n_shown, 0)  # SciPy's first leaf (the first child of each merge) on top
    # the axis spans the merges; stems to leaves far beyond the last merge run off it
    merge_x = to_x(np.asarray(d["dcoord"])[:, 1]) if segs else np.array([0.0, 1.0])
    leaf_x = float(to_x(0.0))
    lo, hi = float(merge_x.min()), float(merge_x.max())
    span = hi - lo if hi > lo else max(abs(hi), 1.0) * 0.1
    right = min(leaf_x, hi + 0.35 * span) if leaf_x > hi + 0.5 * span else max(leaf_x, hi)
    ax.set_xlim(lo - 0.04 * span, right + 0.02 * span)
    leaves_off_axis = leaf_x > right + 0.02 * span
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
    if leaves_off_axis and not (kind == "lca" and depth_max is None):
        where = f"depth {leaf_x:.3g}" if kind == "lca" else f"cosine {leaf_x:.3g}"
        xlabel += f"\n(axis fitted to the merges; the leaves sit at {where}, off the axis to the right)"
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
    ``max_leaves`` are set here). The first panel's leaves are ordered as :func:`plot_dendrogram`
    orders them, every other panel's as close to the first panel's order as its tree allows
    (unless a panel names its own ``leaf_order``). One legend of the groups (super-classes) goes
    below the panels. Returns the Figure.
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
    order = None  # the first panel's drawn leaf order, which the others follow
    for ax, kw in zip(axes, panels):
        kw = dict(kw)
        kw["legend"] = False
        z = np.asarray(kw.pop("z"), dtype=np.float64)
        wanted = kw.pop("leaf_order", None)
        if wanted is None:
            wanted = order if order is not None and len(order) == z.shape[0] + 1 else \
                _default_order(z.shape[0] + 1, kw.get("groups"))
        plot_dendrogram(z, ax=ax, max_leaves=max_leaves, truncate_to=truncate_to, leaf_order=wanted, **kw)
        if order is None:
            order = _drawn_order(orient_tree(z, wanted))
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
