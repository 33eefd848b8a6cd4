"""Hierarchy visualisation: tree decoding from ball points, tree quality, plots and reports.

Re-exports :mod:`hyperdml.hierarchy` (:func:`decode_tree`, :func:`cosine_tree`,
:func:`dasgupta_cost` and its label/feature forms, :func:`dendrogram_purity`, :func:`dendrogram`,
:func:`tree_edges`); the trees are SciPy linkage matrices, so ``dendrogram(decode_tree(points, c))``
draws one (SciPy's own ``dendrogram`` works too on trees less than ~1000 merges tall).

Plots and reports (Matplotlib, headless ``Agg`` backend unless one is already chosen; every plot
function returns a ``matplotlib.figure.Figure``), loaded on first use; a checkpoint's report is
``hyperdml viz`` (:func:`hyperdml.commands.viz.write_hierarchy_report`):

- :func:`write_loss_report` (loss, optional test embeddings → ``dendrogram``, ``poincare_disk``,
  ``tree_metrics.json``), :func:`hierarchy_figures` (:mod:`hyperdml.viz.report`);
- :func:`analyze_proxies`, :func:`report_proxy_sets` (:mod:`hyperdml.viz.analysis`);
- :func:`plot_dendrogram`, :func:`plot_dendrograms`, :func:`orient_tree` (:mod:`hyperdml.viz.dendrogram_plot`; the
  name ``hyperdml.viz.dendrogram`` stays the re-exported function);
- :func:`plot_poincare_disk`, :func:`geodesic_arc` (:mod:`hyperdml.viz.disk`);
- :class:`TangentPCA`, :func:`to_disk` (:mod:`hyperdml.viz.reduce`);
- :func:`find_proxies`, :class:`ProxySet`, :func:`class_means` (:mod:`hyperdml.viz.proxies`).
"""

from hyperdml._lazy import lazy_exports
from hyperdml.hierarchy import (
    cosine_tree,
    dasgupta_cost,
    dasgupta_cost_features,
    dasgupta_cost_labels,
    decode_tree,
    dendrogram,
    dendrogram_purity,
    lca_depth_matrix,
    leaf_members,
    tree_edges,
    tree_height,
)

_LAZY = {
    "write_loss_report": "report", "hierarchy_figures": "report",
    "analyze_proxies": "analysis", "report_proxy_sets": "analysis",
    "plot_dendrogram": "dendrogram_plot", "plot_dendrograms": "dendrogram_plot", "orient_tree": "dendrogram_plot",
    "plot_poincare_disk": "disk", "geodesic_arc": "disk",
    "TangentPCA": "reduce", "to_disk": "reduce",
    "find_proxies": "proxies", "ProxySet": "proxies", "class_means": "proxies",
}


__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals())

__all__ = ["decode_tree", "cosine_tree", "dasgupta_cost", "dasgupta_cost_labels", "dasgupta_cost_features",
           "dendrogram_purity", "dendrogram", "lca_depth_matrix", "leaf_members", "tree_edges", "tree_height", *_LAZY]
