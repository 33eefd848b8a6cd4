"""Trees from proxies and their quality, for any number of leaves.

- :func:`cosine_tree`: single linkage on cosine similarity (the Euclidean proxies' tree), the
  Euclidean counterpart of :func:`hyperdml.hierarchy.decode_tree` (single linkage on LCA depth).
- :func:`tree_edges`: the pair of leaves that realises each single-linkage merge (the edges of the
  maximum spanning tree), drawn as geodesics in the Poincaré-disk plot.
- :func:`dasgupta_cost_labels`, :func:`dasgupta_cost_features`: Dasgupta's cost for
  co-membership similarities (``s_ij = 1`` when two leaves share a label) and for HypHC's feature
  similarities ``s_ij = 0.5·(1 + cos(f_i, f_j))``, in ``O(P log P)`` and ``O(P·D)`` memory, so
  they run on 11 318 leaves where a ``P × P`` matrix would take gigabytes. They equal
  :func:`hyperdml.hierarchy.dasgupta_cost` on the same similarities (tested).

All trees are SciPy linkage matrices ``Z ((P − 1), 4)``.
"""

from __future__ import annotations

import numpy as np
import torch

from hyperdml.hierarchy import (
    _check_linkage,
    _linkage_from_edges,
    _merged_label_counts,
    _prim_max_spanning_tree,
    lca_depth_matrix,
)

__all__ = ["cosine_tree", "tree_edges", "dasgupta_cost_labels", "dasgupta_cost_features", "leaf_members"]


def _array(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().double().numpy()
    return np.asarray(x, dtype=np.float64)


def _unit_rows(x) -> np.ndarray:
    x = _array(x)
    if x.ndim != 2:
        raise ValueError(f"features must have shape (P, D), got {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError("features contain NaN or Inf")
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def cosine_tree(features) -> np.ndarray:
    """Single-linkage tree on cosine similarity: ``features (P, D)`` → linkage ``Z ((P − 1), 4)``.

    Pairs merge in order of decreasing cosine; the height of a merge is the cosine distance
    ``1 − cos`` (in ``[0, 2]``), so ``Z`` matches
    ``scipy.cluster.hierarchy.linkage(features, "single", metric="cosine")`` up to ties. Built as a
    maximum spanning tree by Prim's algorithm one row at a time: ``O(P²·D)`` time, ``O(P·D)``
    memory (SciPy's ``pdist`` would hold ``P²/2`` float64, 0.5 GB at 11 318 leaves).
    """
    x = _unit_rows(features)
    p = x.shape[0]
    if p < 2:
        raise ValueError(f"a tree needs at least 2 leaves, got {p}")
    eu, ev, ew = _prim_max_spanning_tree(x, lambda a, rest, _: rest @ a)
    order = np.argsort(-ew, kind="stable")
    heights = np.maximum.accumulate(np.clip(1.0 - ew[order], 0.0, 2.0))
    return _linkage_from_edges(p, eu[order], ev[order], heights)


def leaf_members(z) -> list[np.ndarray]:
    """Leaves under every node: list of ``2P − 1`` int arrays (node ``P + m`` is made by row ``m``)."""
    z = _check_linkage(z)
    p = z.shape[0] + 1
    members: list = [np.array([i]) for i in range(p)] + [None] * (p - 1)
    for m, (a, b) in enumerate(z[:, :2].astype(np.int64)):
        members[p + m] = np.concatenate([members[a], members[b]])
    return members


def tree_edges(z, points, c: float = 1.0, max_leaves: int = 3000) -> np.ndarray:
    """The leaf pair realising each merge of a single-linkage tree decoded from ball points.

    For merge ``m`` of clusters A and B, the edge is the pair ``(a ∈ A, b ∈ B)`` of largest LCA
    depth ``δ(z_a∨z_b)``: the maximum-spanning-tree edge of HypHC's decoding. Drawn as geodesics,
    these ``P − 1`` edges connect the leaves exactly as the tree merges them (internal nodes of the
    tree are not points of the ball, so the edges are the tree's visible skeleton).

    Args:
        z: ``((P − 1), 4)`` linkage from :func:`hyperdml.hierarchy.decode_tree` on ``points``.
        points: ``(P, D)`` ball points of curvature −c.
        max_leaves: guard, the LCA-depth matrix is ``P × P``.

    Returns:
        ``(P − 1, 2)`` int64 leaf indices, row ``m`` for merge ``m``.
    """
    z = _check_linkage(z)
    p = z.shape[0] + 1
    if p > max_leaves:
        raise ValueError(f"tree_edges forms a {p}x{p} matrix; sample at most {max_leaves} leaves")
    depth = lca_depth_matrix(points, c)
    if depth.shape[0] != p:
        raise ValueError(f"points has {depth.shape[0]} rows but the tree has {p} leaves")
    members = leaf_members(z)
    out = np.empty((p - 1, 2), dtype=np.int64)
    for m, (a, b) in enumerate(z[:, :2].astype(np.int64)):
        block = depth[np.ix_(members[a], members[b])]
        i, j = np.unravel_index(int(np.argmax(block)), block.shape)
        out[m] = (members[a][i], members[b][j])
    return out


def dasgupta_cost_labels(z, labels, normalize: bool = True) -> float:
    """Dasgupta's cost for co-membership similarities ``s_ij = [label_i == label_j]``.

    ``Σ_{i<j} s_ij·|leaves(i∨j)|``; a merge of A and B adds ``(|A| + |B|)·Σ_l n_A(l)·n_B(l)``,
    computed with per-cluster label counts merged small-into-large (no ``P × P`` matrix). With
    ``normalize`` (default) divided by ``P·Σ_{i<j} s_ij`` (every pair meeting at the root), as
    ``hyperdml.hierarchy.dasgupta_cost(normalize=True)``: in ``(0, 1]``, lower is better; the
    best tree (every label a subtree) scores ``Σ_l n_l·C(n_l, 2)`` over the normaliser. Returns
    NaN when no two leaves share a label.
    """
    z = _check_linkage(z)
    p = z.shape[0] + 1
    labels = np.asarray(labels.cpu() if isinstance(labels, torch.Tensor) else labels).reshape(-1)
    if labels.shape != (p,):
        raise ValueError(f"labels must have shape ({p},), got {labels.shape}")
    _, lab = np.unique(labels, return_inverse=True)
    cost = 0.0
    for n, _, shared in _merged_label_counts(z, lab.reshape(-1)):
        cost += n * sum(k_big * k for k_big, k in shared)
    if not normalize:
        return float(cost)
    nl = np.bincount(lab.reshape(-1)).astype(np.float64)
    total = float((nl * (nl - 1) / 2).sum())
    return float(cost / (p * total)) if total else float("nan")


def dasgupta_cost_features(z, features, normalize: bool = True) -> float:
    """Dasgupta's cost for HypHC's feature similarities ``s_ij = 0.5·(1 + cos(f_i, f_j))``.

    The similarity of HypHC's ``load_data`` and of CHEST's cross-space target
    (:func:`hyperdml.losses.similarity_from_features`). Since ``s`` is affine in the unit
    vectors, the block sum of a merge of A and B is ``0.5·(|A|·|B| + u_A·u_B)`` with ``u_X`` the
    sum of X's unit vectors: ``O(P·D)`` time and memory. ``normalize`` as
    :func:`dasgupta_cost_labels`.
    """
    z = _check_linkage(z)
    p = z.shape[0] + 1
    x = _unit_rows(features)
    if x.shape[0] != p:
        raise ValueError(f"features has {x.shape[0]} rows but the tree has {p} leaves")
    sums = np.empty((2 * p - 1, x.shape[1]))
    sums[:p] = x
    size = np.ones(2 * p - 1)
    cost = 0.0
    for m, (a, b) in enumerate(z[:, :2].astype(np.int64)):
        block = 0.5 * (size[a] * size[b] + sums[a] @ sums[b])
        cost += (size[a] + size[b]) * block
        sums[p + m] = sums[a] + sums[b]
        size[p + m] = size[a] + size[b]
    if not normalize:
        return float(cost)
    u = x.sum(0)
    total = 0.5 * (p * (p - 1) / 2 + (u @ u - p) / 2)
    return float(cost / (p * total)) if total else float("nan")
