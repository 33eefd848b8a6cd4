"""Trees from points: HypHC's decoding from ball points, and single linkage on the cosine.

- :func:`decode_tree`: points ``(P, D)`` in the ball → binary tree as a SciPy linkage matrix,
  by single linkage on the depth of the hyperbolic lowest common ancestor (HypHC's decoding).
- :func:`cosine_tree`: single linkage on cosine similarity (the Euclidean counterpart).
- :func:`lca_depth_matrix`: all pairwise LCA depths; :func:`tree_edges`: the leaf pair behind each
  merge (the decoded tree's edges, drawn as geodesics).

Both decoders build a maximum spanning tree by Prim's algorithm one row at a time: ``O(P²·D)``
time, ``O(P·D)`` memory, no ``P × P`` matrix.
"""

from __future__ import annotations

import numpy as np
import torch

from hyperdml.geometry import lca_tanh2
from hyperdml.hierarchy._arrays import as_float_array, unit_rows
from hyperdml.hierarchy.dendrogram import check_linkage, leaf_members
from hyperdml.ops._checks import check_curvature, check_in_ball

__all__ = ["decode_tree", "cosine_tree", "lca_depth_matrix", "tree_edges"]


def _as_points(points, c: float) -> np.ndarray:
    """``points`` (tensor or array) → float64 ``(P, D)`` array, checked to lie inside the ball."""
    x = as_float_array(points, "points")
    check_in_ball(torch.from_numpy(x), check_curvature(c), "points")
    return x


def _lca_tanh2(a: np.ndarray, xs: np.ndarray, xx: np.ndarray | None = None) -> np.ndarray:
    """``tanh²(√c·δ(a∨x))`` for one point ``a (D,)`` and rows ``xs (N, D)``, both pre-scaled by √c.

    With the squared norms ``xx (N,)`` of the rows given, one matrix-vector product does the work
    (``‖x − a‖² = ‖x‖² − 2⟨x, a⟩ + ‖a‖²``); rows where that difference has cancelled (closer than
    1/8 of the norms) are recomputed from the differences, which keeps nearby points exact.
    Returns ``(N,)`` (:func:`hyperdml.geometry.lca_tanh2`).
    """
    aa = a @ a
    if xx is None:
        e = xs - a
        return lca_tanh2(aa, e @ a, np.einsum("ij,ij->i", e, e))
    xa = xs @ a
    ee = xx - 2 * xa + aa
    ae = xa - aa
    near = ee < (xx + aa) * (1.0 / 64)
    if near.any():
        e = xs[near] - a
        ae[near] = e @ a
        ee[near] = np.einsum("ij,ij->i", e, e)
    return lca_tanh2(aa, ae, ee)


def _depth_from_tanh2(t2: np.ndarray, c: float) -> np.ndarray:
    """``δ = artanh(√t²)/√c``, with ``t`` kept below 1 (points at the float limit of the ball)."""
    return np.arctanh(np.clip(np.sqrt(np.maximum(t2, 0.0)), 0.0, np.nextafter(1.0, 0.0))) / np.sqrt(c)


def _leaf_depth(scaled_norm, c: float) -> np.ndarray:
    """Leaf depth ``d_c(0, x) = 2·artanh(√c‖x‖)/√c`` from ``scaled_norm = √c‖x‖``, kept below 1."""
    return 2 * np.arctanh(np.minimum(scaled_norm, np.nextafter(1.0, 0.0))) / np.sqrt(c)


def lca_depth_matrix(points, c: float) -> np.ndarray:
    """All pairwise LCA depths ``δ(z_i∨z_j)``: ``points (P, D)`` → float64 ``(P, P)``.

    Computed one row at a time (memory ``O(P² + P·D)``); the diagonal holds
    ``δ(z_i∨z_i) = d_c(0, z_i)``. Meant for inspection and small ``P``; :func:`decode_tree`
    does not need it.
    """
    x = _as_points(points, c) * np.sqrt(c)
    out = np.empty((x.shape[0], x.shape[0]))
    for i in range(x.shape[0]):
        out[i] = _lca_tanh2(x[i], x)
    return _depth_from_tanh2(out, c)


def _prim_max_spanning_tree(x: np.ndarray, weight, row_data=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Prim's algorithm on the complete graph over the rows of ``x (P, D)``, largest weights first.

    Never stores the ``P × P`` weights: each step calls ``weight(a, rest, aux)`` for the vertex
    ``a (D,)`` just added and the ``N`` rows ``rest (N, D)`` still outside the tree (``aux``: their
    per-row data, or None), which returns the ``(N,)`` edge weights, so the whole is ``P − 1``
    calls and ``O(P·D)`` memory. ``row_data(rest)``, if given, computes that per-row data once
    from the rows outside the tree at the start (e.g. their squared norms); it is moved with its
    rows as they leave. Returns the ``P − 1`` edges as ``(u, v, weight)`` arrays.
    """
    p = x.shape[0]
    rest = x[1:].copy()  # rows outside the tree, compacted by swap-remove
    aux = None if row_data is None else row_data(rest)
    ids = np.arange(1, p)
    key = weight(x[0], rest, aux)  # best weight from each outside vertex to the tree
    via = np.zeros(p - 1, dtype=np.int64)  # the tree vertex giving that best
    eu, ev, ew = (np.empty(p - 1, dtype=np.int64), np.empty(p - 1, dtype=np.int64), np.empty(p - 1))
    for step in range(p - 1):
        m = int(np.argmax(key))
        v = int(ids[m])
        eu[step], ev[step], ew[step] = via[m], v, key[m]
        last = rest.shape[0] - 1
        rest[m], ids[m], key[m], via[m] = rest[last], ids[last], key[last], via[last]
        rest, ids, key, via = rest[:last], ids[:last], key[:last], via[:last]
        if aux is not None:
            aux[m] = aux[last]
            aux = aux[:last]
        if last:
            w = weight(x[v], rest, aux)
            better = w > key
            key[better] = w[better]
            via[better] = v
    return eu, ev, ew


def _max_spanning_tree(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Prim's algorithm on the complete graph weighted by LCA depth (largest first).

    ``x (P, D)`` pre-scaled by √c. Each step computes the depths from the vertex just added to the
    ``N`` vertices still outside the tree (one matrix-vector product, ``O(N·D)`` time), so the
    whole is ``O(P²·D)`` time and ``O(P·D)`` memory. Returns the ``P − 1`` edges as
    ``(u, v, tanh²)`` arrays. A maximum spanning tree holds every merge of single linkage (the
    classic MST ↔ single-linkage equivalence).
    """
    return _prim_max_spanning_tree(x, _lca_tanh2, row_data=lambda rest: np.einsum("ij,ij->i", rest, rest))


def _linkage_from_edges(p: int, u: np.ndarray, v: np.ndarray, heights: np.ndarray) -> np.ndarray:
    """Spanning-tree edges sorted by non-decreasing ``heights`` → SciPy linkage matrix (union-find)."""
    parent = np.arange(p)
    cluster = np.arange(p)  # root leaf → id of the cluster it stands for
    size = np.ones(p, dtype=np.int64)

    def find(i):
        root = i
        while parent[root] != root:
            root = parent[root]
        while parent[i] != root:  # path compression
            parent[i], i = root, parent[i]
        return root

    z = np.empty((p - 1, 4))
    for m in range(p - 1):
        ra, rb = find(u[m]), find(v[m])
        if size[ra] < size[rb]:
            ra, rb = rb, ra
        ca, cb = cluster[ra], cluster[rb]
        parent[rb] = ra
        size[ra] += size[rb]
        cluster[ra] = p + m
        z[m] = (min(ca, cb), max(ca, cb), heights[m], size[ra])
    return z


def decode_tree(points, c: float) -> np.ndarray:
    """Decode a binary tree from Poincaré-ball points by single linkage on LCA depth (HypHC).

    Pairs are merged in order of decreasing depth ``δ(z_i∨z_j) = d_c(0, z_i∨z_j)`` of their
    hyperbolic lowest common ancestor (the point of the geodesic through ``z_i`` and ``z_j``
    closest to the origin), i.e. single linkage with "similarity" = LCA depth, as
    HazyResearch/HypHC's ``sl_from_embeddings``. (HypHC itself links on the dot product, which
    orders pairs the same way for its leaves, all normalised to one radius; the LCA depth is right
    for points at any radii.) Ties are broken by the order Prim's algorithm meets the pairs.

    Cost: ``O(P²·D)`` time, ``O(P·D)`` memory (a maximum spanning tree by Prim's algorithm, the
    depths computed one row at a time, then union-find); no ``P × P`` matrix is formed, so tens of
    thousands of points decode in seconds to minutes.

    Height convention: ``Z[m, 2] = δ_max − δ_m ≥ 0``, where ``δ_m`` is the LCA depth at which
    merge ``m`` happens and ``δ_max = max_i d_c(0, z_i)`` is the depth of the deepest leaf (every
    LCA depth is at most that of both its points). Heights are non-decreasing down the rows (as
    ``dendrogram`` and ``cophenet`` need), a merge at the origin sits at height ``δ_max`` and the
    merge depths are ``δ_max − Z[:, 2]``.

    Args:
        points: ``(P, D)`` tensor or array of points inside the ball of curvature −c, ``P ≥ 2``.
        c: curvature magnitude, ``c > 0``.

    Returns:
        ``Z``: float64 ``(P − 1, 4)`` SciPy linkage matrix.
    """
    x = _as_points(points, c)
    p = x.shape[0]
    if p < 2:
        raise ValueError(f"decode_tree needs at least 2 points, got {p}")
    xs = x * np.sqrt(c)
    u, v, t2 = _max_spanning_tree(xs)
    order = np.argsort(-t2, kind="stable")
    depth = _depth_from_tanh2(t2[order], c)
    leaf_depth = _leaf_depth(np.sqrt(np.einsum("ij,ij->i", xs, xs)), c)
    heights = np.maximum.accumulate(np.maximum(leaf_depth.max() - depth, 0.0))
    return _linkage_from_edges(p, u[order], v[order], heights)


def cosine_tree(features) -> np.ndarray:
    """Single-linkage tree on cosine similarity: ``features (P, D)`` → linkage ``Z ((P − 1), 4)``.

    Pairs merge in order of decreasing cosine; the height of a merge is the cosine distance
    ``1 − cos`` (in ``[0, 2]``), so ``Z`` matches
    ``scipy.cluster.hierarchy.linkage(features, "single", metric="cosine")`` up to ties. Built as a
    maximum spanning tree by Prim's algorithm one row at a time: ``O(P²·D)`` time, ``O(P·D)``
    memory (SciPy's ``pdist`` would hold ``P²/2`` float64, 0.5 GB at 11 318 leaves).
    """
    x = unit_rows(features)
    p = x.shape[0]
    if p < 2:
        raise ValueError(f"a tree needs at least 2 leaves, got {p}")
    eu, ev, ew = _prim_max_spanning_tree(x, lambda a, rest, _: rest @ a)
    order = np.argsort(-ew, kind="stable")
    heights = np.maximum.accumulate(np.clip(1.0 - ew[order], 0.0, 2.0))
    return _linkage_from_edges(p, eu[order], ev[order], heights)


def tree_edges(z, points, c: float, max_leaves: int = 3000) -> np.ndarray:
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
    z = check_linkage(z)
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
