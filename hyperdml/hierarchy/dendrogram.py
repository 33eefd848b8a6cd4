"""Linkage matrices: validation, height, the leaves under each node, and SciPy's ``dendrogram``
for trees of any height (single-linkage trees are often chains thousands of merges tall, past
SciPy's recursion)."""

from __future__ import annotations

import sys
import threading

import numpy as np
from scipy.cluster import hierarchy as sch

__all__ = ["check_linkage", "tree_height", "leaf_members", "subtree_labels", "dendrogram"]


def check_linkage(z) -> np.ndarray:
    """``z`` as a float64 array, ``ValueError`` unless it is a valid SciPy linkage matrix."""
    z = np.asarray(z, dtype=np.float64)
    sch.is_valid_linkage(z, throw=True, name="Z")
    return z


def tree_height(z) -> int:
    """Number of merges on the longest root-to-leaf path of the tree ``Z ((P − 1), 4)``."""
    z = check_linkage(z)
    p = z.shape[0] + 1
    height = np.zeros(2 * p - 1, dtype=np.int64)
    for m, (a, b) in enumerate(z[:, :2].astype(np.int64)):
        height[p + m] = 1 + max(height[a], height[b])
    return int(height[-1])


def leaf_members(z) -> list[np.ndarray]:
    """Leaves under every node: list of ``2P − 1`` int arrays (node ``P + m`` is made by row ``m``)."""
    z = check_linkage(z)
    p = z.shape[0] + 1
    members: list = [np.array([i]) for i in range(p)] + [None] * (p - 1)
    for m, (a, b) in enumerate(z[:, :2].astype(np.int64)):
        members[p + m] = np.concatenate([members[a], members[b]])
    return members


def subtree_labels(z, labels) -> np.ndarray:
    """Label of every node ``(2P − 1,)`` of linkage ``z``: the common label of its leaves, or −1
    where they differ. ``labels``: ``(P,)`` int label of each leaf."""
    z = check_linkage(z)
    p = z.shape[0] + 1
    out = np.full(2 * p - 1, -1, dtype=np.int64)
    out[:p] = labels
    for m, (a, b) in enumerate(z[:, :2].astype(np.int64)):
        out[p + m] = out[a] if out[a] == out[b] else -1
    return out


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
    z = check_linkage(z)
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
