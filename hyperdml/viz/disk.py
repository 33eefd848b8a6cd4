"""Poincaré-disk plots: proxies, test embeddings and the decoded tree's geodesics.

Coordinates are unit-disk points (norm < 1), e.g. from :class:`hyperdml.viz.reduce.TangentPCA`
(which scales the ball of curvature −c by √c). Tree edges are drawn as geodesics of the disk:
arcs of circles orthogonal to the unit circle, or diameters through the origin
(:func:`geodesic_arc`).
"""

from __future__ import annotations

import numpy as np
from matplotlib.collections import LineCollection
from matplotlib.lines import Line2D
from matplotlib.patches import Circle, Rectangle

from hyperdml.viz.style import GREY, new_figure, palette

__all__ = ["geodesic_arc", "plot_poincare_disk"]


def geodesic_arc(p, q, n: int = 48) -> np.ndarray:
    """Points along the geodesic of the unit Poincaré disk from ``p`` to ``q``: ``(n, 2)``.

    ``γ(t) = p ⊕ (t ⊗ ((−p) ⊕ q))`` with Möbius addition and scalar multiplication at c = 1,
    ``t`` in ``[0, 1]`` (evenly spaced in hyperbolic arc length). The result lies on the circle
    through p and q orthogonal to the unit circle (or on the diameter when p, q and the origin
    are collinear).
    """
    p = np.asarray(p, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)

    def mobius_add(x, y):
        xy, xx, yy = x @ y, x @ x, y @ y
        return ((1 + 2 * xy + yy) * x + (1 - xx) * y) / (1 + 2 * xy + xx * yy)

    w = mobius_add(-p, q)
    r = np.linalg.norm(w)
    if r < 1e-15:
        return np.repeat(p[None], n, axis=0)
    t = np.linspace(0.0, 1.0, n)
    # t ⊗ w = tanh(t·artanh‖w‖)·w/‖w‖
    tw = np.tanh(t[:, None] * np.arctanh(min(r, 1 - 1e-15))) * (w / r)
    return np.stack([mobius_add(p, v) for v in tw])


def plot_poincare_disk(
    proxies,
    proxy_keys,
    *,
    key_names=None,
    edges=None,
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
    """Plot proxies (and embeddings) in the unit Poincaré disk with geodesic tree edges.

    Args:
        proxies: ``(P, 2)`` unit-disk coordinates of the proxies (e.g. one per class).
        proxy_keys: ``(P,)`` int colour key of each proxy (class, or super-class when known).
        key_names: names of the colour keys, for the legend (legend drawn when ≤ 24 keys).
        edges: ``(E, 2)`` int pairs of proxy rows drawn as geodesic arcs (the decoded tree).
        embeddings: ``(N, 2)`` unit-disk coordinates of test embeddings, or None.
        embedding_keys: ``(N,)`` int colour keys of the embeddings (same key space as the
            proxies), or None (grey: e.g. test classes unseen in training).
        proxy_text: ``P`` strings written next to the proxies (class names), or None.
        clip_radius: disk radius of the feature-clipping sphere (``tanh(√c·clip_r)``), drawn
            dashed, or None.
        legend_title: title of the colour legend.
        ax: draw into this Axes; default: a new 9.5 × 8 inch figure.
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
    n_keys = int(max(keys.max(initial=-1), -1 if embedding_keys is None else np.max(embedding_keys, initial=-1))) + 1
    if key_names is not None:
        n_keys = max(n_keys, len(key_names))
    colors = palette(max(n_keys, 1))
    if ax is None:
        fig = new_figure(9.5, 8.0, dpi=dpi)
        ax = fig.add_axes([0.02, 0.03, 0.70, 0.88])
        own = True
    else:
        fig, own = ax.figure, False

    ax.add_patch(Circle((0, 0), 1.0, fill=False, lw=1.4, color="black"))
    if clip_radius is not None and 0 < clip_radius < 1:
        ax.add_patch(Circle((0, 0), clip_radius, fill=False, lw=0.8, ls="--", color=GREY))
        ax.text(0, -clip_radius - 0.015, "clipping radius", ha="center", va="top", fontsize=7, color="dimgray")
    ax.plot([0], [0], marker="+", color="black", ms=8, mew=1.0, zorder=1)

    if embeddings is not None and len(embeddings):
        emb = np.asarray(embeddings, dtype=np.float64).reshape(-1, 2)
        if embedding_keys is None:
            ecol = [GREY] * len(emb)
        else:
            ek = np.asarray(embedding_keys, dtype=np.int64).reshape(-1)
            ecol = [colors[k] if k >= 0 else GREY for k in ek]
        size = 6 if len(emb) > 3000 else 9
        ax.scatter(emb[:, 0], emb[:, 1], s=size, c=ecol, alpha=0.35, linewidths=0, zorder=2, rasterized=len(emb) > 5000)

    if edges is not None and len(edges):
        edges = np.asarray(edges, dtype=np.int64).reshape(-1, 2)
        arcs = [geodesic_arc(proxies[a], proxies[b]) for a, b in edges]
        many = len(edges) > 60
        ax.add_collection(LineCollection(arcs, colors="0.25", linewidths=0.45 if many else 0.7,
                                         alpha=0.45 if many else 0.8, zorder=3))

    ms = 70 if len(proxies) <= 60 else 40 if len(proxies) <= 300 else 14
    ax.scatter(proxies[:, 0], proxies[:, 1], s=ms, c=[colors[k] for k in keys], marker="o",
               edgecolors="black", linewidths=0.7, zorder=4)
    if proxy_text is not None:
        for (x, y), txt in zip(proxies, proxy_text):
            r = np.hypot(x, y)
            ux, uy = (x / r, y / r) if r > 1e-9 else (0.0, 1.0)
            ax.annotate(str(txt), (x, y), xytext=(5 * ux, 5 * uy), textcoords="offset points",
                        ha="left" if ux >= 0 else "right", va="bottom" if uy >= 0 else "top",
                        fontsize=6.5, zorder=5, color="0.15")

    ax.set_aspect("equal")
    ax.axis("off")
    extent = float(np.linalg.norm(proxies, axis=1).max(initial=0.0))
    if embeddings is not None and len(embeddings):
        extent = max(extent, float(np.quantile(np.linalg.norm(emb, axis=1), 0.99)))
    view = 1.04
    if zoom and 0 < extent < zoom_below:
        view = 1.12 * extent
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
    ax.set_xlim(-view, view)
    ax.set_ylim(-view, view)
    if title:
        ax.set_title(title, fontsize=10)

    handles = [
        Line2D([], [], ls="", marker="o", ms=7, mfc="white", mec="black", label="proxy"),
        Line2D([], [], ls="", marker="o", ms=4, mfc=GREY, mec="none", alpha=0.6, label="test embedding"),
        Line2D([], [], color="0.25", lw=0.9, label="decoded tree (geodesics)"),
    ]
    if key_names is not None and len(key_names) <= 24:
        handles += [Line2D([], [], ls="", marker="s", ms=7, mfc=colors[k], mec="none", label=str(n))
                    for k, n in enumerate(key_names)]
    elif key_names is not None:
        handles.append(Line2D([], [], ls="", marker="", label=f"colour: {len(key_names)} {legend_title}es"))
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=7.5, title=legend_title,
              title_fontsize=8, frameon=False)
    return fig
