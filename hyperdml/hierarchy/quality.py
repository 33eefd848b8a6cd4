"""How good a tree is: Dasgupta's cost and dendrogram purity, for any number of leaves.

- :func:`dasgupta_cost`: Dasgupta's cost of a tree (linkage matrix) for a similarity matrix.
- :func:`dasgupta_cost_labels`, :func:`dasgupta_cost_features`: the same for co-membership
  similarities (``s_ij = 1`` when two leaves share a label) and for HypHC's feature similarities
  ``s_ij = 0.5·(1 + cos(f_i, f_j))``, in ``O(P log P)`` and ``O(P·D)`` memory, so they run on
  11 318 leaves where a ``P × P`` matrix would take gigabytes. They equal :func:`dasgupta_cost` on
  the same similarities (tested).
- :func:`dendrogram_purity`: Heller & Ghahramani's dendrogram purity for leaf labels.
- :func:`merged_label_counts`: the label counts of every cluster, bottom-up (what the last three
  and the plots' cluster labels are built on).
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.cluster import hierarchy as sch

from hyperdml.hierarchy._arrays import unit_rows
from hyperdml.hierarchy.dendrogram import check_linkage

__all__ = ["dasgupta_cost", "dasgupta_cost_labels", "dasgupta_cost_features", "dendrogram_purity",
           "merged_label_counts"]


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
    z = check_linkage(z)
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


def merged_label_counts(z: np.ndarray, labels):
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
    z = check_linkage(z)
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
    for n, _, shared in merged_label_counts(z, lab):
        for k_big, k in shared:
            total += k_big * k * (k_big + k) / n
    return float(total / n_pairs)


def dasgupta_cost_labels(z, labels, normalize: bool = True) -> float:
    """Dasgupta's cost for co-membership similarities ``s_ij = [label_i == label_j]``.

    ``Σ_{i<j} s_ij·|leaves(i∨j)|``; a merge of A and B adds ``(|A| + |B|)·Σ_l n_A(l)·n_B(l)``,
    computed with per-cluster label counts merged small-into-large (no ``P × P`` matrix). With
    ``normalize`` (default) divided by ``P·Σ_{i<j} s_ij`` (every pair meeting at the root), as
    ``hyperdml.hierarchy.dasgupta_cost(normalize=True)``: in ``(0, 1]``, lower is better; the
    best tree (every label a subtree) scores ``Σ_l n_l·C(n_l, 2)`` over the normaliser. Returns
    NaN when no two leaves share a label.
    """
    z = check_linkage(z)
    p = z.shape[0] + 1
    labels = np.asarray(labels.cpu() if isinstance(labels, torch.Tensor) else labels).reshape(-1)
    if labels.shape != (p,):
        raise ValueError(f"labels must have shape ({p},), got {labels.shape}")
    _, lab = np.unique(labels, return_inverse=True)
    cost = 0.0
    for n, _, shared in merged_label_counts(z, lab.reshape(-1)):
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
    z = check_linkage(z)
    p = z.shape[0] + 1
    x = unit_rows(features)
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
