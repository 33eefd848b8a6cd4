"""The hierarchy report of a trained model: dendrograms, Poincaré disk, ``tree_metrics.json``.

- :func:`analyze_proxies`: trees and tree metrics of a loss's proxies, per space.
- :func:`hierarchy_figures`: the two figures (for notebooks), from a loss object.
- :func:`write_loss_report`: figures and metrics of a loss object written to a folder.
- :func:`write_hierarchy_report`: the same from a checkpoint (dict or path), with test embeddings
  computed by the checkpoint's model; ``hyperdml viz`` and the demo call it.

Choices (see ``docs/viz.md``):

- One leaf per class. With ``K`` proxies per class the leaf is the class mean (tangent-space mean
  ``expmap0(mean_k logmap0(p_ck))`` in the ball, mean of unit vectors in Euclidean space), so the
  dendrogram has ``C`` leaves named by class. When ``C·K ≤ max_proxy_leaves`` all ``C·K`` proxies
  are decoded as well and ``proxy_class_purity`` (dendrogram purity of the proxies against their
  class) says whether each class's proxies form a subtree.
- Hyperbolic tree: :func:`hyperdml.hierarchy.decode_tree` (HypHC single linkage on LCA depth).
  Euclidean tree (dual/CHEST models): single linkage on the cosine of the Euclidean proxies
  (:func:`hyperdml.hierarchy.cosine_tree`). Both are drawn side by side in one figure.
- Dasgupta cost (normalised to ``(0, 1]``, lower is better) of each tree for every similarity
  available: ``super_class`` (``s_ij = 1`` when classes i and j share a super-class; the known
  hierarchy), ``euclidean_proxies`` (``0.5·(1 + cos)`` of the Euclidean class proxies, CHEST's
  cross-space target) and ``hyperbolic_angles`` (``0.5·(1 + cos)`` of the hyperbolic class
  proxies' tangent vectors ``logmap0(p)``, i.e. their directions from the origin).
- Dendrogram purity of each tree against the super-classes, when known, and its chance level
  ``dendrogram_purity_shuffled``: the mean purity of the same tree for the super-class labels
  permuted over the classes (20 seeded permutations).
- Disk: classes (all, or a seeded sample of ``max_disk_classes``) reduced by
  :class:`~hyperdml.viz.reduce.TangentPCA` fitted on the class proxies; the tree edges are the
  leaf pairs realising each single-linkage merge (:func:`~hyperdml.hierarchy.tree_edges`), drawn as
  geodesics between the 2-D points; test embeddings sampled to ``max_points``.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

import numpy as np
import torch

from hyperdml import geometry
from hyperdml.errors import CheckpointError, HyperdmlError
from hyperdml.hierarchy import dasgupta_cost_features, dasgupta_cost_labels, dendrogram_purity, tree_height
from hyperdml.viz.proxies import ProxySet, find_proxies

__all__ = ["analyze_proxies", "hierarchy_figures", "write_loss_report", "write_hierarchy_report"]

MAX_PROXY_LEAVES = 3000
#: label permutations behind ``dendrogram_purity_shuffled`` (the chance level of the same tree)
SHUFFLES = 20


def _super_ok(super_labels, num_classes: int):
    """Validated ``(C,)`` int array of super-classes, or None (unknown / does not fit)."""
    if super_labels is None:
        return None
    s = np.asarray(super_labels, dtype=np.int64).reshape(-1)
    if s.shape[0] != num_classes or (s < 0).any():
        return None
    return s


def _space_metrics(z, leaves_super, sims: dict, seconds: float, tree: str) -> dict:
    out = {"tree": tree, "leaves": int(z.shape[0] + 1), "tree_height": tree_height(z), "seconds": round(seconds, 3)}
    # purity and the super-class cost need two leaves sharing a super-class
    grouped = leaves_super is not None and np.bincount(leaves_super).max() > 1
    if grouped:
        out["dendrogram_purity"] = dendrogram_purity(z, leaves_super)
        rng = np.random.default_rng(0)
        out["dendrogram_purity_shuffled"] = float(np.mean(
            [dendrogram_purity(z, rng.permutation(leaves_super)) for _ in range(SHUFFLES)]))
    else:
        out["dendrogram_purity"] = out["dendrogram_purity_shuffled"] = None
    costs = {}
    if grouped:
        costs["super_class"] = dasgupta_cost_labels(z, leaves_super)
    for name, feats in sims.items():
        costs[name] = dasgupta_cost_features(z, feats)
    out["dasgupta_cost"] = costs
    return out


def analyze_proxies(loss, *, super_labels=None, max_proxy_leaves: int = MAX_PROXY_LEAVES) -> dict:
    """Trees and metrics of the proxies of ``loss`` (any proxy loss, CHEST, or a wrapper).

    Args:
        loss: the loss module holding the proxies (see :func:`hyperdml.viz.proxies.find_proxies`).
        super_labels: ``(C,)`` super-class of each class (the known hierarchy), or None.
        max_proxy_leaves: decode all ``C·K`` proxies (``proxy_class_purity``) only up to this many.

    Returns:
        ``{"proxies": {space: ProxySet}, "class_points": {space: (C, D) tensor},
        "trees": {space: Z ((C − 1), 4)}, "depth_max": float, "metrics": {...}}`` where
        ``metrics`` is what ``tree_metrics.json`` holds (plain JSON types). Raises
        :class:`~hyperdml.errors.HyperdmlError` when the loss has no hyperbolic proxies.
    """
    found = _ordered(find_proxies(loss), type(loss).__name__)
    main = next(iter(found.values()))
    if main.num_classes < 2:
        raise HyperdmlError(f"a tree needs at least 2 classes, the loss has {main.num_classes}")
    sup = _super_ok(super_labels, main.num_classes)
    points = {name: ps.class_points() for name, ps in found.items()}
    sims = {f"{name}_angles": ps.space.features(points[name]) for name, ps in found.items()}

    trees, axes, metrics = {}, {}, {}
    for name, ps in found.items():
        t = time.perf_counter()
        trees[name] = ps.space.decode_tree(points[name])
        axes[name] = ps.space.tree_axis(points[name])
        m = metrics[name] = _space_metrics(trees[name], sup, sims, time.perf_counter() - t,
                                           f"{axes[name]['description']} of the class proxies")
        m["space"] = ps.space.config()
        if ps.sphere_radius is not None:  # the proxies as HypHC saw them (CHEST's hc_sphere)
            m.update(tree=m["tree"] + ", placed on HypHC's sphere", sphere_radius=ps.sphere_radius)
        m["dim"] = int(ps.points.shape[1])
        purity = None
        if ps.per_class > 1 and ps.num_classes * ps.per_class <= max_proxy_leaves:
            purity = dendrogram_purity(ps.space.decode_tree(ps.points), ps.labels)
        m["proxy_class_purity"] = purity

    summary = {
        "num_classes": main.num_classes,
        "proxies_per_class": main.per_class,
        "leaves": "one per class: the space's mean of the class's proxies (tangent-space mean in the ball, "
                  "mean of unit vectors for the cosine)",
        "num_super_classes": None if sup is None else int(sup.max()) + 1,
        "similarities": {
            "super_class": "s_ij = 1 if classes i and j share a super-class, else 0 (known hierarchy)",
            **{f"{name}_angles": f"s_ij = 0.5 (1 + cos) of the {name} class proxies' features "
                                 "(unit vectors; logmap0 in the ball: directions from the origin)" for name in found},
        },
        "dasgupta_cost_normalization": "cost / (P * sum_{i<j} s_ij): 1 = every pair meets at the root, lower is better",
        "spaces": metrics,
    }
    return {"proxies": found, "class_points": points, "trees": trees, "axes": axes, "super_labels": sup,
            "metrics": summary}


def _ordered(found: dict, what: str) -> dict:
    """The proxy sets with the one drawn in the disk first; ``HyperdmlError`` when none can be."""
    drawn = [name for name, ps in found.items() if ps.space.has_disk]
    if not drawn:
        raise HyperdmlError(
            f"no hyperbolic proxies: the loss {what} has only {', '.join(found)} proxies; "
            "the hierarchy report needs a hyperbolic or dual (CHEST) model"
        )
    return {name: found[name] for name in [drawn[0], *(n for n in found if n != drawn[0])]}


def _check_format(fmt: str) -> None:
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

    _check_format(fmt)
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


def _test_embeddings(model, hyp: ProxySet, cfg: dict, ckpt: dict, splits, max_points: int, device: str, notes: list):
    """Points of ``hyp``'s space and colour keys of up to ``max_points`` test items (from the head of
    the same name), or ``(None, None)`` with a note."""
    if splits is None:
        try:
            from hyperdml.data import build_datasets

            seed = cfg.get("data_seed", cfg.get("seed", 0))
            splits = build_datasets(cfg["dataset"], cfg.get("data_root"), image_size=cfg.get("image_size"),
                                    seed=int(seed or 0))
        except (HyperdmlError, OSError, ImportError, KeyError, TypeError, ValueError) as exc:
            notes.append(f"test embeddings not plotted: data unavailable ({type(exc).__name__}: {exc})")
            return None, None
    test = splits.test if getattr(splits, "test", None) is not None else getattr(splits, "gallery", None)
    if test is None or len(test) == 0:
        notes.append("test embeddings not plotted: the test split is empty")
        return None, None
    rng = np.random.default_rng(0)
    idx = np.sort(rng.choice(len(test), min(max_points, len(test)), replace=False))
    from hyperdml.train import compute_embeddings

    outputs, labels = compute_embeddings(model, torch.utils.data.Subset(test, idx.tolist()), device=device)
    if hyp.name not in outputs:
        notes.append(f"test embeddings not plotted: the model has no {hyp.name} head")
        return None, None
    with torch.no_grad():
        emb = hyp.space.to_space(outputs[hyp.name].detach().to("cpu", torch.float64))
    labels = np.asarray(torch.as_tensor(labels).cpu(), dtype=np.int64)
    keys = None
    train_super = ckpt.get("super_labels")
    test_super = getattr(splits, "test_super_labels", None)
    same_classes = list(getattr(splits, "test_class_names", []) or []) == list(ckpt.get("class_names") or [None])
    if train_super is not None and test_super is not None:
        keys = np.asarray(test_super, dtype=np.int64)[labels]
    elif train_super is None and same_classes:
        keys = labels
    else:
        notes.append("test embeddings drawn grey: their classes are not the proxies' classes")
    return emb, keys


def write_hierarchy_report(checkpoint, out_dir, *, fmt: str = "png", max_points: int = 2000, splits=None,
                           device: str = "cpu", data_root: str | None = None) -> dict:
    """Hierarchy report of a checkpoint: figures and ``tree_metrics.json`` in ``out_dir``.

    Args:
        checkpoint: checkpoint dict (the trainer's format) or a path to one
            (:func:`hyperdml.train.checkpoint.load_checkpoint`), or a run folder (its ``last.pt``).
        out_dir: folder to write into (created).
        fmt: ``"png"`` or ``"svg"``.
        max_points: test embeddings plotted at most (sampled with seed 0).
        splits: a :class:`hyperdml.data.DataSplits` to take the test split from; default: built
            from the checkpoint's config; when the data is unavailable the proxies are plotted
            alone and ``notes`` says so.
        device: where the model computes the embeddings.
        data_root: read the checkpoint's data set from this folder instead of its config's.

    Returns:
        ``{"files": {"dendrogram", "poincare_disk", "tree_metrics": path}, "metrics": dict,
        "notes": [str]}``. Raises :class:`~hyperdml.errors.CheckpointError` for a file that is not
        a hyperdml checkpoint or a checkpoint without hyperbolic proxies.
    """
    _check_format(fmt)
    if isinstance(checkpoint, (str, os.PathLike)):
        if os.path.isdir(checkpoint):
            checkpoint = os.path.join(checkpoint, "last.pt")
        try:
            from hyperdml.train.checkpoint import load_checkpoint
        except ImportError as exc:  # pragma: no cover - the trainer ships with the package
            raise HyperdmlError(f"cannot load checkpoints: hyperdml.train is unavailable ({exc})") from exc
        ckpt = load_checkpoint(checkpoint)  # validates the format, version and keys itself
        source = str(checkpoint)
    else:
        from hyperdml.train.checkpoint import check_checkpoint

        ckpt, source = check_checkpoint(checkpoint), "checkpoint"
    from hyperdml.train import build_from_checkpoint

    model, loss = build_from_checkpoint(ckpt, device=device)
    if loss is None:
        raise CheckpointError(f"{source} holds no loss state (no proxies to plot)")
    cfg = dict(ckpt["config"])
    try:
        found = _ordered(find_proxies(loss), type(loss).__name__)
    except HyperdmlError as exc:
        raise CheckpointError(
            f"{source} (loss {cfg.get('loss')!r}, head {cfg.get('head')!r}): {exc}; hyperdml viz needs a "
            "hyperbolic or dual (CHEST) model") from None
    if data_root is not None:
        cfg["data_root"] = data_root
    notes: list = []
    model.eval()
    if max_points > 0:
        emb, keys = _test_embeddings(model, next(iter(found.values())), cfg, ckpt, splits, max_points, device, notes)
    else:
        emb = keys = None
        notes.append("test embeddings not plotted (max_points=0)")
    return write_loss_report(
        loss, out_dir, fmt=fmt, notes=notes,
        extra={"checkpoint": {"source": source, "epoch": ckpt.get("epoch"), "step": ckpt.get("step"),
                              "dataset": cfg.get("dataset"), "loss": cfg.get("loss"), "head": cfg.get("head")}},
        class_names=ckpt.get("class_names"), super_labels=ckpt.get("super_labels"),
        super_class_names=ckpt.get("super_class_names"), embeddings=emb, embedding_keys=keys,
        max_points=max_points, name=str(cfg.get("dataset") or ""),
    )
