"""Trees and tree metrics of a loss's proxies, per space: what the hierarchy report shows.

- :func:`analyze_proxies`: the trees, their metrics (``tree_metrics.json``) and the points behind them.
- :func:`report_proxy_sets`: a loss's proxy sets, the one drawn in the Poincaré disk first.

Choices (see ``docs/viz.md``):

- One leaf per class. With ``K`` proxies per class the leaf is the class mean (tangent-space mean
  ``expmap0(mean_k logmap0(p_ck))`` in the ball, mean of unit vectors in Euclidean space), so the
  dendrogram has ``C`` leaves named by class. When ``C·K ≤ max_proxy_leaves`` all ``C·K`` proxies
  are decoded as well and ``proxy_class_purity`` (dendrogram purity of the proxies against their
  class) says whether each class's proxies form a subtree.
- Hyperbolic tree: :func:`hyperdml.hierarchy.decode_tree` (HypHC single linkage on LCA depth).
  Euclidean tree (dual/CHEST models): single linkage on the cosine of the Euclidean proxies
  (:func:`hyperdml.hierarchy.cosine_tree`).
- Dasgupta cost (normalised to ``(0, 1]``, lower is better) of each tree for every similarity
  available: ``super_class`` (``s_ij = 1`` when classes i and j share a super-class; the known
  hierarchy), ``euclidean_angles`` / ``hyperbolic_angles`` (``0.5·(1 + cos)`` of the class
  proxies' features: unit vectors, ``logmap0(p)`` in the ball, i.e. directions from the origin).
- Dendrogram purity of each tree against the super-classes, when known, and its chance level
  ``dendrogram_purity_shuffled``: the mean purity of the same tree for the super-class labels
  permuted over the classes (20 seeded permutations).
"""

from __future__ import annotations

import time

import numpy as np

from hyperdml.errors import HyperdmlError
from hyperdml.hierarchy import dasgupta_cost_features, dasgupta_cost_labels, dendrogram_purity, tree_height
from hyperdml.viz.proxies import find_proxies

__all__ = ["analyze_proxies", "report_proxy_sets"]

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
    found = report_proxy_sets(loss)
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


def report_proxy_sets(loss) -> dict:
    """``{name: ProxySet}`` of ``loss`` (:func:`~hyperdml.viz.proxies.find_proxies`) with the set drawn
    in the Poincaré disk first; :class:`~hyperdml.errors.HyperdmlError` when no set can be drawn."""
    found, what = find_proxies(loss), type(loss).__name__
    drawn = [name for name, ps in found.items() if ps.space.has_disk]
    if not drawn:
        raise HyperdmlError(
            f"no hyperbolic proxies: the loss {what} has only {', '.join(found)} proxies; "
            "the hierarchy report needs a hyperbolic or dual (CHEST) model"
        )
    return {name: found[name] for name in [drawn[0], *(n for n in found if n != drawn[0])]}
