"""Retrieval metrics: Recall@K, MAP@R, R-Precision, NMI with exact kNN through faiss.

``evaluate_retrieval(embeddings, labels, ks, metric, c, query, query_labels)`` → dict; the
hyperbolic metric ranks by true geodesic distance through the Lorentz-model inner product.
"""

from hyperdml.metrics.clustering import kmeans_assign, nmi
from hyperdml.metrics.knn import knn_search, poincare_distance_rows
from hyperdml.metrics.retrieval import evaluate_retrieval
from hyperdml.metrics.scores import map_at_r, r_precision, recall_at_k

__all__ = [
    "evaluate_retrieval", "knn_search", "poincare_distance_rows", "kmeans_assign", "nmi",
    "recall_at_k", "map_at_r", "r_precision",
]
