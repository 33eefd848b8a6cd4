"""The hierarchy report of a loss's proxies: dendrograms, Poincaré disk, ``tree_metrics.json``.

- :func:`hierarchy_figures`: the two figures (for notebooks), from a loss object and optional
  test embeddings (points of the loss's space).
- :func:`write_loss_report`: those figures and the metrics written to a folder.

The trees and metrics come from :func:`hyperdml.viz.analysis.analyze_proxies`. The disk shows the
classes (all, or a seeded sample of ``max_disk_classes``) reduced by the space's disk projection
(:class:`~hyperdml.viz.reduce.TangentPCA` fitted on the class proxies in the ball); the tree edges
are the leaf pairs realising each single-linkage merge (:func:`~hyperdml.hierarchy.tree_edges`),
drawn as geodesics between the 2-D points; test embeddings are sampled to ``max_points``. A
checkpoint's report (model, data, embeddings) is ``hyperdml viz``
(:func:`hyperdml.commands.viz.write_hierarchy_report`).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import torch

from hyperdml import geometry
from hyperdml.errors import HyperdmlError
from hyperdml.viz.analysis import analyze_proxies
from hyperdml.viz.proxies import ProxySet

__all__ = ["check_format", "hierarchy_figures", "write_loss_report"]


def check_format(fmt: str) -> None:
    """:class:`~hyperdml.errors.HyperdmlError` unless ``fmt`` is an image format the report writes."""
    from hyperdml.viz.style import FORMATS  # Matplotlib is loaded only to plot

    if fmt not in FORMATS:
        raise HyperdmlError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")


def _fmt(v, spec=".3f") -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, spec)


def _panel_title(name: str, m: dict, axis: dict) -> str:
    cost = m["dasgupta_cost"]
    key = "super_class" if "super_class" in cost else next(iter(cost))
    what = f"{name} proxies (D={m['dim']}): {axis['short']}"
    chance = f" (chance {_fmt(m['dendrogram_purity_shuffled'], '.2f')})" if m.get("dendrogram_purity_shuffled") else ""
    name = "super-class" if key == "super_class" else key.replace("_", " ")
    return f"{what}\npurity {_fmt(m['dendrogram_purity'])}{chance}, Dasgupta cost ({name}) {_fmt(cost[key])}"


def hierarchy_figures(
    loss,
    *,
    class_names=None,
    super_labels=None,
    super_class_names=None,
    embeddings=None,
    embedding_keys=None,
    max_points: int = 2000,
    max_disk_classes: int = 200,
    max_leaves: int = 250,
    seed: int = 0,
    analysis: dict | None = None,
    name: str = "",
) -> tuple[dict, dict]:
    """The report's figures from a loss object: ``({"dendrogram": Figure, "poincare_disk": Figure}, analysis)``.

    Args:
        loss: loss module with hyperbolic proxies (see :func:`analyze_proxies`).
        class_names: ``C`` class names (default ``"0"…``).
        super_labels: ``(C,)`` super-class of each class, or None.
        super_class_names: names of the super-classes.
        embeddings: ``(N, D_H)`` test embeddings as ball points (not head outputs), or None.
        embedding_keys: ``(N,)`` colour key of each embedding (super-class when ``super_labels``
            is given, else class; ``-1`` or None: grey).
        max_points: embeddings plotted at most (seeded sample).
        max_disk_classes: classes plotted in the disk at most (seeded sample above it).
        max_leaves: dendrograms with more leaves are truncated to their last 100 clusters.
        analysis: a result of :func:`analyze_proxies` to reuse.
        name: shown in the titles (e.g. the data set).
    """
    from hyperdml.viz.dendrogram_plot import plot_dendrograms
    from hyperdml.viz.disk import plot_poincare_disk

    an = analysis if analysis is not None else analyze_proxies(loss, super_labels=super_labels)
    disk_name = next(iter(an["proxies"]))  # analyze_proxies puts the set drawn in the disk first
    hyp: ProxySet = an["proxies"][disk_name]
    space, C = hyp.space, hyp.num_classes
    sup = an["super_labels"]
    names = [str(n) for n in class_names] if class_names is not None and len(class_names) == C else [str(i) for i in range(C)]
    snames = None
    if sup is not None:
        n_sup = int(sup.max()) + 1
        snames = ([str(s) for s in super_class_names] if super_class_names is not None
                  and len(super_class_names) >= n_sup else [f"super {s}" for s in range(n_sup)])
    label = f"{name}: " if name else ""

    panels = []
    for set_name, z in an["trees"].items():
        axis = an["axes"][set_name]
        panels.append(dict(z=z, leaf_names=names, groups=sup, group_names=snames, kind=axis["kind"],
                           depth_max=axis["depth_max"],
                           title=_panel_title(set_name, an["metrics"]["spaces"][set_name], axis)))
    sides = " vs ".join(an["trees"])
    k_txt = f", {hyp.per_class} proxies/class averaged" if hyp.per_class > 1 else ""
    dendro = plot_dendrograms(panels, max_leaves=max_leaves,
                              suptitle=f"{label}trees of {C} class proxies ({sides}{k_txt})")

    rng = np.random.default_rng(seed)
    pts = an["class_points"][disk_name]
    if hyp.sphere_radius is not None:
        # HypHC's tree depends only on the directions of points on one sphere: draw it on the
        # sphere at HypHC's max_scale, 1 − 1e-3 of the ball's radius, whatever the loss's radius
        pts = torch.nn.functional.normalize(pts, dim=1) * ((1 - 1e-3) / math.sqrt(space.c))
    if C > max_disk_classes:
        shown = np.sort(rng.choice(C, max_disk_classes, replace=False))
        z_shown = space.decode_tree(pts[shown])
        sample_txt = f"a sample of {max_disk_classes} of {C} classes"
    else:
        shown, z_shown, sample_txt = np.arange(C), an["trees"][disk_name], f"{C} classes"
    edges = space.tree_edges(z_shown, pts[shown])
    pca = space.disk_projection(pts[shown])
    xy = pca.transform(pts[shown])
    # the tree's internal nodes: the LCA point of the leaf pair realising each merge (ball points only)
    nodes_xy = None
    if getattr(space, "c", None) is not None:
        a, b = pts[shown][torch.as_tensor(edges[:, 0])], pts[shown][torch.as_tensor(edges[:, 1])]
        nodes_xy = pca.transform(geometry.lca_point(a, b, space.c))
    emb_xy = emb_keys = None
    n_emb = 0
    if embeddings is not None and len(embeddings):
        emb = embeddings if isinstance(embeddings, torch.Tensor) else torch.as_tensor(np.asarray(embeddings))
        idx = np.arange(len(emb))
        if len(emb) > max_points:
            idx = np.sort(rng.choice(len(emb), max_points, replace=False))
        emb_xy = pca.transform(emb[torch.as_tensor(idx)])
        n_emb = len(idx)
        if embedding_keys is not None:
            emb_keys = np.asarray(embedding_keys, dtype=np.int64).reshape(-1)[idx]
    sphere_txt = ""
    if hyp.sphere_radius is not None:
        sphere_txt = (f"\nproxies drawn on HypHC's sphere at 0.999 of the ball's radius (the loss's sphere: "
                      f"{math.sqrt(space.c) * hyp.sphere_radius:.3g}; the tree depends on directions only)")
    keys = sup[shown] if sup is not None else shown
    key_names = snames if sup is not None else names if C <= 24 else None
    mh = an["metrics"]["spaces"][disk_name]
    emb_txt = f", {n_emb} test embeddings" if n_emb else ", no test embeddings"
    disk = plot_poincare_disk(
        xy, keys, key_names=key_names, tree=z_shown if nodes_xy is not None else None, tree_nodes=nodes_xy,
        edges=edges, embeddings=emb_xy, embedding_keys=emb_keys,
        proxy_text=[names[i] for i in shown] if len(shown) <= 40 else None, clip_radius=space.clip_disk_radius(),
        legend_title="super-class" if sup is not None else "class",
        title=(f"{label}Poincaré disk ({an['axes'][disk_name]['short']}): {sample_txt}{emb_txt}\n"
               f"tangent PCA {hyp.points.shape[1]}→2 at the origin keeps {pca.explained:.0%}; "
               f"tree purity {_fmt(mh['dendrogram_purity'])}"
               + (f" (chance {_fmt(mh['dendrogram_purity_shuffled'], '.2f')})" if mh.get("dendrogram_purity_shuffled") else "")
               + sphere_txt),
    )
    return {"dendrogram": dendro, "poincare_disk": disk}, an


def write_loss_report(loss, out_dir, *, fmt: str = "png", notes=None, extra: dict | None = None, **kwargs) -> dict:
    """Write ``dendrogram.<fmt>``, ``poincare_disk.<fmt>`` and ``tree_metrics.json`` for a loss object.

    ``kwargs`` go to :func:`hierarchy_figures`. Returns ``{"files": {name: path}, "metrics": dict,
    "notes": [str]}``.
    """
    from hyperdml.viz.style import save_figure

    check_format(fmt)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    figs, an = hierarchy_figures(loss, **kwargs)
    files = {}
    for key, fig in figs.items():
        files[key] = save_figure(fig, out / f"{key}.{fmt}", fmt)
    metrics = dict(an["metrics"])
    notes = list(notes or [])
    metrics["notes"] = notes
    if extra:
        metrics.update(extra)
    path = out / "tree_metrics.json"
    tmp = out / ".tree_metrics.json.tmp"
    tmp.write_text(json.dumps(metrics, indent=2, default=float) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    files["tree_metrics"] = str(path)
    return {"files": files, "metrics": metrics, "notes": notes}
