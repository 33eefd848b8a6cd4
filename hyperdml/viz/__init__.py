"""Hierarchy visualisation: tree decoding from ball points and tree quality measures.

Re-exports :mod:`hyperdml.hierarchy` (:func:`decode_tree`, :func:`dasgupta_cost`,
:func:`dendrogram_purity`, :func:`dendrogram`); the trees are SciPy linkage matrices, so
``dendrogram(decode_tree(points))`` draws one (SciPy's own ``dendrogram`` works too on trees less
than ~1000 merges tall).
"""

from hyperdml.hierarchy import dasgupta_cost, decode_tree, dendrogram, dendrogram_purity, lca_depth_matrix, tree_height

__all__ = ["decode_tree", "dasgupta_cost", "dendrogram_purity", "dendrogram", "lca_depth_matrix", "tree_height"]
