"""Poincaré-disk plots: proxies, test embeddings and the decoded tree's geodesics.

Coordinates are unit-disk points (norm < 1), e.g. from :class:`hyperdml.viz.reduce.TangentPCA`
(which scales the ball of curvature −c by √c). Tree edges are drawn as geodesics of the disk:
arcs of circles orthogonal to the unit circle, or diameters through the origin
(:func:`geodesic_arc`).
"""

from __future__ import annotations

import numpy as np
import torch
from matplotlib.collections import LineCollection
from matplotlib.lines import Line2D
from matplotlib.patches import Circle, Rectangle

from hyperdml import geometry
from hyperdml.hierarchy import subtree_labels
from hyperdml.viz.style import GREY, new_figure, palette

__all__ = ["geodesic_arc", "plot_poincare_disk"]


def geodesic_arc(p, q, n: int = 48) -> np.ndarray:
    """Points along the geodesic of the unit Poincaré disk from ``p`` to ``q``: ``(n, 2)``.

    :func:`hyperdml.geometry.geodesic_points` at c = 1 (evenly spaced in hyperbolic arc length):
    an arc of the circle through p and q orthogonal to the unit circle, or the diameter when p, q
    and the origin are collinear.
    """
    p = torch.as_tensor(np.asarray(p, dtype=np.float64))
    q = torch.as_tensor(np.asarray(q, dtype=np.float64))
    return geometry.geodesic_points(p, q, 1.0, n).numpy()


def _spread_angles(theta: np.ndarray, half_gap, rounds: int = 5) -> np.ndarray:
    """Angles of labels moved apart so that neighbours around the circle do not overlap.

    ``theta (N,)``: the wanted angles; ``half_gap(angles) → (N,)``: the half-width (radians) each
    label takes along the circle at those angles. The circle is cut at the widest gap between
    wanted angles; then, as in 1-D label placement, overlapping neighbours are merged into blocks
    laid out edge to edge and centred on their members' wanted angles, until no blocks overlap
    (the circular order is kept). The widths are re-evaluated at the new angles a few times.
    Returns ``(N,)`` angles.
    """
    theta = np.asarray(theta, dtype=np.float64)
    n = len(theta)
    if n < 2:
        return theta.copy()
    order = np.argsort(theta)
    t = theta[order]
    gaps = np.diff(np.concatenate([t, t[:1] + 2 * np.pi]))
    start = (int(np.argmax(gaps)) + 1) % n  # the first label after the widest gap
    order = np.roll(order, -start)
    wanted = np.unwrap(theta[order])  # increasing, within one turn
    placed = wanted.copy()
    for _ in range(rounds):
        g = half_gap(_unsort_to(placed, order, n))[order]
        if 2 * g.sum() >= 2 * np.pi:  # no room for all of them: shrink to fit
            g = g * (0.98 * np.pi / g.sum())
        offset = np.concatenate([[0.0], np.cumsum(g[:-1] + g[1:])])  # edge-to-edge layout
        blocks = [[i] for i in range(n)]  # consecutive runs of labels

        def position(block):
            return float(np.mean(wanted[block] - offset[block]))  # where the block's first label sits

        merged = True
        while merged and len(blocks) > 1:
            merged = False
            for k in range(len(blocks) - 1):
                a, b = blocks[k], blocks[k + 1]
                end_a = position(a) + offset[a[-1]]
                start_b = position(b) + offset[b[0]]
                if start_b - end_a < g[a[-1]] + g[b[0]] - 1e-12:
                    blocks[k:k + 2] = [a + b]
                    merged = True
                    break
        for block in blocks:
            placed[block] = position(block) + offset[block]
    return _unsort_to(placed, order, n)


def _unsort_to(values: np.ndarray, order: np.ndarray, n: int) -> np.ndarray:
    out = np.empty(n)
    out[order] = values
    return out


def _place_labels(ax, points: np.ndarray, texts, radius: float, fontsize: float, view: float) -> None:
    """Write ``texts`` around a ring of ``radius`` outside the points, spread so that they do not
    overlap, each joined to its point by a thin leader line.

    Every label's box is centred on its ray, just outside the ring; its extent along the ring is
    its width where the ring runs horizontally and its height where it runs vertically.
    """
    theta = np.arctan2(points[:, 1], points[:, 0])
    pt = 2 * view / (ax.get_position().height * ax.figure.get_figheight() * 72)  # data units per point
    widths = np.array([0.62 * fontsize * pt * len(str(t)) for t in texts]) + 2 * pt
    height = 1.3 * fontsize * pt

    def half_gap(a):
        return 0.5 * (np.abs(np.sin(a)) * widths + np.abs(np.cos(a)) * height) / radius + 0.003

    spread = _spread_angles(theta, half_gap)
    for (x, y), a, w, txt in zip(points, spread, widths, texts):
        out = radius + 0.5 * (np.abs(np.cos(a)) * w + np.abs(np.sin(a)) * height)  # box centre on the ray
        ax.plot([x, radius * np.cos(a)], [y, radius * np.sin(a)], lw=0.4, color="0.55", zorder=3.5)
        ax.text(out * np.cos(a), out * np.sin(a), str(txt), fontsize=fontsize, color="0.15", zorder=5,
                ha="center", va="center")


def plot_poincare_disk(
    proxies,
    proxy_keys,
    *,
    key_names=None,
    edges=None,
    tree=None,
    tree_nodes=None,
    embeddings=None,
    embedding_keys=None,
    proxy_text=None,
    clip_radius: float | None = None,
    legend_title: str = "class",
    ax=None,
    title: str | None = None,
    zoom: bool = True,
    zoom_below: float = 0.45,
    dpi: int = 100,
):
    """Plot proxies (and embeddings) in the unit Poincaré disk with the decoded tree as geodesics.

    Args:
        proxies: ``(P, 2)`` unit-disk coordinates of the proxies (e.g. one per class).
        proxy_keys: ``(P,)`` int colour key of each proxy (class, or super-class when known).
        key_names: names of the colour keys, for the legend (legend drawn when ≤ 24 keys).
        edges: ``(E, 2)`` int pairs of proxy rows drawn as geodesic arcs (leaf-to-leaf edges), used
            when ``tree`` is not given.
        tree: ``((P − 1), 4)`` linkage of the proxies' tree; with ``tree_nodes``, the tree is drawn
            through its internal nodes: a geodesic from every merge's node to each of its two
            children (a leaf, or the child merge's node), coloured by key where the child's subtree
            has a single key.
        tree_nodes: ``(P − 1, 2)`` unit-disk coordinates of the merges' nodes (row ``m`` for
            merge ``m``; e.g. the LCA points of the leaf pairs realising the merges).
        embeddings: ``(N, 2)`` unit-disk coordinates of test embeddings, or None.
        embedding_keys: ``(N,)`` int colour keys of the embeddings (same key space as the
            proxies), or None (grey: e.g. test classes unseen in training).
        proxy_text: ``P`` strings (class names), written on a ring outside the proxies, spread so
            that they do not overlap, each with a leader line to its proxy; or None.
        clip_radius: disk radius of the feature-clipping sphere (``tanh(√c·clip_r)``), drawn
            dashed, or None.
        legend_title: title of the colour legend.
        ax: draw into this Axes; default: a new 9 × 9 inch figure.
        title: axes title.
        zoom: when every proxy and 99% of the embeddings lie within ``zoom_below`` of the centre
            (early in training, or small clipping radii), zoom onto them; an inset shows the
            zoomed square in the whole disk.

    Returns:
        The ``matplotlib.figure.Figure``.
    """
    proxies = np.asarray(proxies, dtype=np.float64).reshape(-1, 2)
    keys = np.asarray(proxy_keys, dtype=np.int64).reshape(-1)
    if keys.shape[0] != proxies.shape[0]:
        raise ValueError(f"proxy_keys has {keys.shape[0]} entries for {proxies.shape[0]} proxies")
    if (np.linalg.norm(proxies, axis=1) >= 1).any():
        raise ValueError("proxies must lie inside the unit disk (norm < 1)")
    if (tree is None) != (tree_nodes is None):
        raise ValueError("tree and tree_nodes go together (the linkage and its merges' coordinates)")
    if tree is not None:
        tree = np.asarray(tree, dtype=np.float64)
        tree_nodes = np.asarray(tree_nodes, dtype=np.float64).reshape(-1, 2)
        if tree.shape != (len(proxies) - 1, 4) or tree_nodes.shape[0] != len(proxies) - 1:
            raise ValueError(f"tree must be a ({len(proxies) - 1}, 4) linkage with one node per merge, got "
                             f"{tree.shape} and {tree_nodes.shape[0]} nodes")
        if (np.linalg.norm(tree_nodes, axis=1) >= 1).any():
            raise ValueError("tree_nodes must lie inside the unit disk (norm < 1)")
    if proxy_text is not None and len(proxy_text) != len(proxies):
        raise ValueError(f"proxy_text has {len(proxy_text)} entries for {len(proxies)} proxies")
    n_keys = int(max(keys.max(initial=-1), -1 if embedding_keys is None else np.max(embedding_keys, initial=-1))) + 1
    if key_names is not None:
        n_keys = max(n_keys, len(key_names))
    colors = palette(max(n_keys, 1))
    own_figure = ax is None
    if own_figure:  # the disk, the title above it, the legends in a strip below it
        fig = new_figure(9.0, 10.0, dpi=dpi)
        ax = fig.add_axes([0.01, 0.12, 0.98, 0.80])
    else:
        fig = ax.figure

    ax.add_patch(Circle((0, 0), 1.0, fill=False, lw=1.4, color="black"))
    if clip_radius is not None and 0 < clip_radius < 1:
        ax.add_patch(Circle((0, 0), clip_radius, fill=False, lw=0.8, ls="--", color=GREY))
    ax.plot([0], [0], marker="+", color="black", ms=8, mew=1.0, zorder=1)

    emb = None
    if embeddings is not None and len(embeddings):
        emb = np.asarray(embeddings, dtype=np.float64).reshape(-1, 2)
        if embedding_keys is None:
            ecol = [GREY] * len(emb)
        else:
            ek = np.asarray(embedding_keys, dtype=np.int64).reshape(-1)
            ecol = [colors[k] if k >= 0 else GREY for k in ek]
        size = 6 if len(emb) > 3000 else 9
        ax.scatter(emb[:, 0], emb[:, 1], s=size, c=ecol, alpha=0.35, linewidths=0, zorder=2, rasterized=len(emb) > 5000)

    many = len(proxies) > 60
    if tree is not None:
        where = np.concatenate([proxies, tree_nodes])  # node id → coordinates
        node_keys = subtree_labels(tree, keys)
        arcs, arc_colors = [], []
        for m, children in enumerate(tree[:, :2].astype(np.int64)):
            for child in children:
                arcs.append(geodesic_arc(tree_nodes[m], where[child]))
                arc_colors.append(colors[node_keys[child]] if node_keys[child] >= 0 else "0.3")
        ax.add_collection(LineCollection(arcs, colors=arc_colors, linewidths=0.5 if many else 1.0,
                                         alpha=0.6 if many else 0.85, zorder=3))
        ax.scatter(tree_nodes[:, 0], tree_nodes[:, 1], s=8 if many else 16, c="0.25", marker="o", linewidths=0,
                   zorder=3.6)
        ax.scatter(tree_nodes[-1:, 0], tree_nodes[-1:, 1], s=40, c="white", edgecolors="black", marker="D",
                   linewidths=0.9, zorder=3.7)
    elif edges is not None and len(edges):
        edges = np.asarray(edges, dtype=np.int64).reshape(-1, 2)
        arcs = [geodesic_arc(proxies[a], proxies[b]) for a, b in edges]
        ax.add_collection(LineCollection(arcs, colors="0.25", linewidths=0.45 if many else 0.7,
                                         alpha=0.45 if many else 0.8, zorder=3))

    ms = 70 if len(proxies) <= 60 else 40 if len(proxies) <= 300 else 14
    ax.scatter(proxies[:, 0], proxies[:, 1], s=ms, c=[colors[k] for k in keys], marker="o",
               edgecolors="black", linewidths=0.7, zorder=4)

    ax.set_aspect("equal")
    ax.axis("off")
    extent = float(np.linalg.norm(proxies, axis=1).max(initial=0.0))
    if emb is not None:
        extent = max(extent, float(np.quantile(np.linalg.norm(emb, axis=1), 0.99)))
    view, zoomed = 1.04, False
    if zoom and 0 < extent < zoom_below:
        view, zoomed = 1.12 * extent, True
    label_ring = None
    if proxy_text is not None:
        label_ring = 1.07 * float(np.linalg.norm(proxies, axis=1).max(initial=0.0)) + 0.03 * view
        label_ring = max(label_ring, 1.05) if not zoomed else label_ring
        longest = max(len(str(t)) for t in proxy_text) if len(proxy_text) else 0
        view = max(view, label_ring + 0.008 * longest + 0.04)
    ax.set_xlim(-view, view)
    ax.set_ylim(-view, view)
    if zoomed:
        ax.text(0.0, 0.0, f"zoomed: view radius {view:.2f} of the unit disk", transform=ax.transAxes, fontsize=7.5,
                color="dimgray", ha="left", va="bottom")
        inset = ax.inset_axes([0.80, 0.0, 0.2, 0.2])
        inset.add_patch(Circle((0, 0), 1.0, fill=False, lw=0.8, color="black"))
        # the zoomed region, the square [−view, view]²
        inset.add_patch(Rectangle((-view, -view), 2 * view, 2 * view, fill=False, lw=0.8, color="tab:red"))
        inset.set_xlim(-1.05, 1.05)
        inset.set_ylim(-1.05, 1.05)
        inset.set_aspect("equal")
        inset.axis("off")
    if proxy_text is not None:
        _place_labels(ax, proxies, proxy_text, label_ring, 7.0 if len(proxies) <= 24 else 6.0, view)
    if title:
        ax.set_title(title, fontsize=10)

    handles = [Line2D([], [], ls="", marker="o", ms=7, mfc="white", mec="black", label="class proxy")]
    if tree is not None:
        handles += [
            Line2D([], [], ls="", marker="o", ms=4, mfc="0.25", mec="none", label="merge of the tree (LCA point)"),
            Line2D([], [], ls="", marker="D", ms=5, mfc="white", mec="black", label="root (last merge)"),
            Line2D([], [], color="0.3", lw=1.0, label="tree edge (geodesic; coloured: one key below)"),
        ]
    elif edges is not None and len(edges):
        handles.append(Line2D([], [], color="0.25", lw=0.9, label="decoded tree (geodesics)"))
    if emb is not None:
        handles.append(Line2D([], [], ls="", marker="o", ms=4, mfc=GREY, mec="none", alpha=0.6, label="test embedding"))
    if clip_radius is not None and 0 < clip_radius < 1:
        handles.append(Line2D([], [], color=GREY, lw=0.8, ls="--", label="clipping radius of the embeddings"))
    handles.append(Line2D([], [], ls="", marker="+", ms=7, color="black", label="origin"))
    key_handles = []
    if key_names is not None and len(key_names) <= 24:
        key_handles = [Line2D([], [], ls="", marker="s", ms=7, mfc=colors[k], mec="none", label=str(n))
                       for k, n in enumerate(key_names)]
    elif key_names is not None:
        key_handles = [Line2D([], [], ls="", marker="", label=f"{len(key_names)} colours, one per {legend_title}")]
    if own_figure:  # below the disk, where no proxy label reaches
        fig.legend(handles=handles, loc="lower left", bbox_to_anchor=(0.02, 0.005), ncol=2, fontsize=7.5,
                   frameon=False)
        if key_handles:
            fig.legend(handles=key_handles, loc="lower right", bbox_to_anchor=(0.98, 0.005), fontsize=7.5,
                       title=legend_title, title_fontsize=8, frameon=False, ncol=-(-len(key_handles) // 5))
        return fig
    # on a caller's axes: in the corners the disk leaves free
    first = ax.legend(handles=handles, loc="upper left", fontsize=7.5, frameon=False, borderaxespad=0.2)
    if key_handles:
        ax.add_artist(first)
        ax.legend(handles=key_handles, loc="upper right", fontsize=7.5, title=legend_title, title_fontsize=8,
                  frameon=False, borderaxespad=0.2, ncol=1 if len(key_handles) <= 8 else 2)
    return fig
