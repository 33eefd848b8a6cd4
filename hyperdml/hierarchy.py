"""Hierarchies from Poincaré-ball embeddings: tree decoding and tree quality measures.

- :func:`decode_tree`: points ``(P, D)`` in the ball → binary tree as a SciPy linkage matrix,
  by single linkage on the depth of the hyperbolic lowest common ancestor (HypHC's decoding).
- :func:`dasgupta_cost`: Dasgupta's cost of a tree (linkage matrix) for a similarity matrix.
- :func:`dendrogram_purity`: Heller & Ghahramani's dendrogram purity for leaf labels.
- :func:`dendrogram`: SciPy's ``dendrogram`` for trees of any height (single-linkage trees are
  often chains thousands of merges tall, past SciPy's recursion).

Trees are SciPy linkage matrices ``Z ((P − 1), 4)`` (see ``scipy.cluster.hierarchy.linkage``):
row ``m`` merges clusters ``Z[m, 0]`` and ``Z[m, 1]`` (ids ``< P`` are leaves, id ``P + r`` is
the cluster made at row ``r``) at height ``Z[m, 2]`` into a cluster of ``Z[m, 3]`` leaves, so
every SciPy tool (``dendrogram``, ``fcluster``, ``cophenet``, ``to_tree``) works on them.
"""

from __future__ import annotations

import sys
import threading

import numpy as np
import torch
from scipy.cluster import hierarchy as sch

__all__ = ["decode_tree", "lca_depth_matrix", "dasgupta_cost", "dendrogram_purity", "dendrogram", "tree_height"]


def _as_points(points, c: float) -> np.ndarray:
    """``points`` (tensor or array) → float64 ``(P, D)`` array, checked to lie inside the ball."""
    if isinstance(points, torch.Tensor):
        points = points.detach().cpu().double().numpy()
    x = np.asarray(points, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"points must have shape (P, D), got {x.shape}")
    if not c > 0:
        raise ValueError(f"curvature c must be > 0, got {c}")
    if not np.isfinite(x).all():
        raise ValueError("points contains NaN or Inf")
    if x.shape[0] and c * np.einsum("ij,ij->i", x, x).max() >= 1:
        raise ValueError(f"points must lie strictly inside the Poincaré ball of curvature -{c} (norm < {c**-0.5:.6g})")
    return x


def _tanh2_from_terms(aa, ae, ee) -> np.ndarray:
    """``tanh²(√c·δ(a∨x))`` from ``‖a‖²``, ``⟨e, a⟩`` and ``‖e‖²`` with ``e = x − a`` (pre-scaled by √c).

    Same closed form as :func:`hyperdml.ops.hyp_lca_depth_reference`; ``tanh²`` is increasing in
    the depth, so it orders merges without the square root and artanh. Broadcasts.
    """
    wa = 0.5 * (1 + aa)
    dw = -(ae + 0.5 * ee)  # w_a − w_x
    num = np.maximum(aa * ee - ae * ae, 0.0)
    den = dw * dw * aa + 2 * wa * dw * ae + wa * wa * ee
    same = (2 * np.sqrt(aa) / (1 + aa)) ** 2  # x == a: the LCA is the point itself
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), same)


def _lca_tanh2(a: np.ndarray, xs: np.ndarray, xx: np.ndarray | None = None) -> np.ndarray:
    """``tanh²(√c·δ(a∨x))`` for one point ``a (D,)`` and rows ``xs (N, D)``, both pre-scaled by √c.

    With the squared norms ``xx (N,)`` of the rows given, one matrix-vector product does the work
    (``‖x − a‖² = ‖x‖² − 2⟨x, a⟩ + ‖a‖²``); rows where that difference has cancelled (closer than
    1/8 of the norms) are recomputed from the differences, which keeps nearby points exact.
    Returns ``(N,)``.
    """
    aa = a @ a
    if xx is None:
        e = xs - a
        return _tanh2_from_terms(aa, e @ a, np.einsum("ij,ij->i", e, e))
    xa = xs @ a
    ee = xx - 2 * xa + aa
    ae = xa - aa
    near = ee < (xx + aa) * (1.0 / 64)
    if near.any():
        e = xs[near] - a
        ae[near] = e @ a
        ee[near] = np.einsum("ij,ij->i", e, e)
    return _tanh2_from_terms(aa, ae, ee)


def _depth_from_tanh2(t2: np.ndarray, c: float) -> np.ndarray:
    """``δ = artanh(√t²)/√c``, with ``t`` kept below 1 (points at the float limit of the ball)."""
    return np.arctanh(np.clip(np.sqrt(np.maximum(t2, 0.0)), 0.0, np.nextafter(1.0, 0.0))) / np.sqrt(c)


def _leaf_depth(scaled_norm, c: float) -> np.ndarray:
    """Leaf depth ``d_c(0, x) = 2·artanh(√c‖x‖)/√c`` from ``scaled_norm = √c‖x‖``, kept below 1."""
    return 2 * np.arctanh(np.minimum(scaled_norm, np.nextafter(1.0, 0.0))) / np.sqrt(c)


def lca_depth_matrix(points, c: float = 1.0) -> np.ndarray:
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


def decode_tree(points, c: float = 1.0) -> np.ndarray:
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


def _check_linkage(z) -> np.ndarray:
    z = np.asarray(z, dtype=np.float64)
    sch.is_valid_linkage(z, throw=True, name="Z")
    return z


def dasgupta_cost(z, sims, normalize: bool = False) -> float:
    """Dasgupta's cost of the tree ``Z`` for similarities ``sims``.

    ``cost = Σ_{i<j} s_ij · |leaves(i∨j)|``, the number of leaves under the lowest common
    ancestor of leaves i and j, summed over unordered pairs (Dasgupta's definition; lower is
    better). HazyResearch/HypHC's ``dasgupta_cost`` sums over ordered pairs, i.e. returns twice
    this. With ``normalize=True`` the cost is divided by ``P · Σ_{i<j} s_ij`` (its value if every
    pair met only at the root), which puts it in ``(0, 1]``.

    Computed merge by merge: a merge of clusters A and B adds ``(|A| + |B|)·Σ_{a∈A, b∈B} s_ab``.
    With the leaves in dendrogram order every cluster is a contiguous range, so each block sum is
    a slice of the reordered matrix: ``O(P²)`` time and one ``P × P`` copy.

    Args:
        z: ``(P − 1, 4)`` linkage matrix.
        sims: ``(P, P)`` similarities (tensor or array); only the pairs ``i ≠ j`` are read, each
            unordered pair through ``s_ij + s_ji`` halved (symmetric input is the usual case).
        normalize: divide by ``P · Σ_{i<j} s_ij``.

    Returns:
        The cost as a Python float.
    """
    z = _check_linkage(z)
    p = z.shape[0] + 1
    s = sims.detach().cpu().double().numpy() if isinstance(sims, torch.Tensor) else np.asarray(sims, np.float64)
    if s.shape != (p, p):
        raise ValueError(f"sims must have shape ({p}, {p}) for a tree of {p} leaves, got {s.shape}")
    if not np.isfinite(s).all():
        raise ValueError("sims contains NaN or Inf")
    order = sch.leaves_list(z)
    s = s[np.ix_(order, order)]
    s = 0.5 * (s + s.T)
    start = np.empty(2 * p - 1, dtype=np.int64)
    start[order] = np.arange(p)
    count = np.ones(2 * p - 1, dtype=np.int64)
    cost = 0.0
    for m in range(p - 1):
        a, b = int(z[m, 0]), int(z[m, 1])
        sa, sb = start[a], start[b]
        cost += (count[a] + count[b]) * s[sa : sa + count[a], sb : sb + count[b]].sum()
        start[p + m], count[p + m] = min(sa, sb), count[a] + count[b]
    if normalize:
        total = np.triu(s, 1).sum()
        return float(cost / (p * total)) if total else float("nan")
    return float(cost)


def _merged_label_counts(z: np.ndarray, labels):
    """Label counts of every cluster of the tree ``Z``, merged bottom-up small-into-large.

    ``labels (P,)``: int labels of the leaves. Yields, for each merge (row order), ``(n, counts,
    shared)``: ``n`` the merged cluster's size, ``counts`` its dict label → count (a dict reused
    by later merges: read it before advancing), ``shared`` the ``(n_big(l), n_small(l))`` count
    pairs of the labels found in both merged clusters. ``O(P log P)`` dictionary updates.
    """
    p = z.shape[0] + 1
    counts: list = [{int(l): 1} for l in labels] + [None] * (p - 1)
    size = np.ones(2 * p - 1, dtype=np.int64)
    for m, (a, b) in enumerate(z[:, :2].astype(np.int64)):
        ca, cb = counts[a], counts[b]
        if len(ca) < len(cb):
            ca, cb = cb, ca
        n = size[a] + size[b]
        shared = []
        for l, k in cb.items():
            k_big = ca.get(l, 0)
            if k_big:
                shared.append((k_big, k))
            ca[l] = k_big + k
        counts[p + m], counts[a], counts[b] = ca, None, None
        size[p + m] = n
        yield n, ca, shared


def dendrogram_purity(z, labels) -> float:
    """Dendrogram purity (Heller & Ghahramani, 2005) of the tree ``Z`` for leaf ``labels``.

    The average, over all unordered pairs of distinct leaves with the same label l, of the
    fraction of leaves with label l among the leaves under the pair's lowest common ancestor.
    It is 1 exactly when every class is a subtree (in the sense that no pair's LCA holds another
    class's leaf).

    Computed bottom-up with per-cluster label counts: a merge of A and B is the LCA of
    ``cnt_A[l]·cnt_B[l]`` same-label pairs for each label l, each of purity
    ``(cnt_A[l] + cnt_B[l]) / (|A| + |B|)``. Counts are merged small-into-large, so the cost is
    ``O(P log P)`` dictionary updates.

    Args:
        z: ``(P − 1, 4)`` linkage matrix.
        labels: ``(P,)`` labels of the leaves (any hashable values; tensor or array).

    Returns:
        Purity in ``[0, 1]`` as a Python float. Raises ``ValueError`` when no two leaves share a
        label (the average is then over no pairs).
    """
    z = _check_linkage(z)
    p = z.shape[0] + 1
    if isinstance(labels, torch.Tensor):
        labels = labels.detach().cpu().numpy()
    labels = np.asarray(labels)
    if labels.shape != (p,):
        raise ValueError(f"labels must have shape ({p},) for a tree of {p} leaves, got {labels.shape}")
    _, lab = np.unique(labels, return_inverse=True)
    lab = lab.reshape(-1)
    n_pairs = int((np.bincount(lab).astype(np.int64) * (np.bincount(lab) - 1) // 2).sum())
    if n_pairs == 0:
        raise ValueError("dendrogram purity is undefined: no two leaves share a label")
    total = 0.0
    for n, _, shared in _merged_label_counts(z, lab):
        for k_big, k in shared:
            total += k_big * k * (k_big + k) / n
    return float(total / n_pairs)


def tree_height(z) -> int:
    """Number of merges on the longest root-to-leaf path of the tree ``Z ((P − 1), 4)``."""
    z = _check_linkage(z)
    p = z.shape[0] + 1
    height = np.zeros(2 * p - 1, dtype=np.int64)
    for m, (a, b) in enumerate(z[:, :2].astype(np.int64)):
        height[p + m] = 1 + max(height[a], height[b])
    return int(height[-1])


def dendrogram(z, **kwargs) -> dict:
    """``scipy.cluster.hierarchy.dendrogram(Z, **kwargs)`` that also works on very tall trees.

    SciPy walks the tree recursively, so a tree taller than about the interpreter's recursion
    limit (1000) raises ``RecursionError`` (or overflows the C stack). Single linkage on LCA depth
    gives such trees (P = 3000 points at random radii decode to a tree ~2800 merges tall). For
    those, the call runs in a helper thread with a stack sized to the tree and a recursion limit
    raised for its duration (the limit is process-wide). Drawing (``no_plot=False``) from that
    thread needs a non-GUI Matplotlib backend such as Agg; ``no_plot=True`` always works and
    returns the coordinates to draw. Returns SciPy's dictionary.
    """
    z = _check_linkage(z)
    height = tree_height(z)
    needed = 2 * height + 500
    if needed <= sys.getrecursionlimit() - 200:
        return sch.dendrogram(z, **kwargs)
    result: dict = {}

    def run():
        old = sys.getrecursionlimit()
        sys.setrecursionlimit(max(old, needed))
        try:
            result["out"] = sch.dendrogram(z, **kwargs)
        except BaseException as err:  # re-raised in the caller's thread
            result["err"] = err
        finally:
            sys.setrecursionlimit(old)

    old_size = threading.stack_size()
    threading.stack_size(min(64 * 2**20 + height * 8192, 2**31))
    try:
        worker = threading.Thread(target=run, name="hyperdml-dendrogram")
        worker.start()
    finally:
        threading.stack_size(old_size)
    worker.join()
    if "err" in result:
        raise result["err"]
    return result["out"]
