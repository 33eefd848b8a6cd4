"""Hierarchies: trees decoded from embeddings and proxies, and how good they are.

- :mod:`~hyperdml.hierarchy.decode`: :func:`decode_tree` (points in the Poincaré ball → binary
  tree by single linkage on the depth of the hyperbolic lowest common ancestor, HypHC's
  decoding), :func:`cosine_tree` (single linkage on the cosine), :func:`lca_depth_matrix`,
  :func:`tree_edges`. A space decodes its own points: ``space.decode_tree(points)``.
- :mod:`~hyperdml.hierarchy.quality`: :func:`dasgupta_cost` (and its ``O(P log P)`` forms for
  label and feature similarities), :func:`dendrogram_purity`.
- :mod:`~hyperdml.hierarchy.dendrogram`: :func:`dendrogram` (SciPy's, for trees of any height),
  :func:`tree_height`, :func:`leaf_members`, :func:`subtree_labels`, :func:`check_linkage`.

Trees are SciPy linkage matrices ``Z ((P − 1), 4)`` (see ``scipy.cluster.hierarchy.linkage``):
row ``m`` merges clusters ``Z[m, 0]`` and ``Z[m, 1]`` (ids ``< P`` are leaves, id ``P + r`` is
the cluster made at row ``r``) at height ``Z[m, 2]`` into a cluster of ``Z[m, 3]`` leaves, so
every SciPy tool (``dendrogram``, ``fcluster``, ``cophenet``, ``to_tree``) works on them.
"""

from hyperdml.hierarchy.decode import cosine_tree, decode_tree, lca_depth_matrix, tree_edges
from hyperdml.hierarchy.dendrogram import check_linkage, dendrogram, leaf_members, subtree_labels, tree_height
from hyperdml.hierarchy.quality import (
    dasgupta_cost,
    dasgupta_cost_features,
    dasgupta_cost_labels,
    dendrogram_purity,
    merged_label_counts,
)

__all__ = [
    "decode_tree", "cosine_tree", "lca_depth_matrix", "tree_edges", "dasgupta_cost", "dasgupta_cost_labels",
    "dasgupta_cost_features", "dendrogram_purity", "merged_label_counts", "dendrogram", "tree_height",
    "leaf_members", "subtree_labels", "check_linkage",
]
