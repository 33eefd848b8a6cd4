"""The torch flat index (used when faiss is absent) against faiss's flat indexes and float64 numpy."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hyperdml.spaces.torch_index import TorchFlatIndex


def _data(q, n, d, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((q, d)).astype(np.float32), rng.standard_normal((n, d)).astype(np.float32)


@pytest.mark.parametrize("inner_product", [True, False])
@pytest.mark.parametrize("block_elements", [1 << 24, 300])  # one block; many blocks merged
def test_matches_faiss_flat_index(inner_product, block_elements):
    faiss = pytest.importorskip("faiss")
    queries, gallery = _data(50, 700, 24)
    k = 10
    ref = faiss.IndexFlatIP(24) if inner_product else faiss.IndexFlatL2(24)
    ref.add(gallery)
    ref_scores, ref_idx = ref.search(queries, k)
    scores, idx = TorchFlatIndex(gallery, inner_product, block_elements=block_elements).search(queries, k)
    assert scores.dtype == np.float32 and idx.dtype == np.int64 and idx.shape == (50, k)
    np.testing.assert_array_equal(idx, ref_idx)
    np.testing.assert_allclose(scores, ref_scores, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("inner_product", [True, False])
def test_matches_float64_brute_force(inner_product):
    queries, gallery = _data(40, 500, 16, seed=1)
    q64, g64 = queries.astype(np.float64), gallery.astype(np.float64)
    if inner_product:
        full = q64 @ g64.T
        want = np.argsort(-full, axis=1, kind="stable")[:, :7]
    else:
        full = ((q64[:, None, :] - g64[None]) ** 2).sum(-1)
        want = np.argsort(full, axis=1, kind="stable")[:, :7]
    scores, idx = TorchFlatIndex(gallery, inner_product, block_elements=2000).search(queries, 7)
    np.testing.assert_array_equal(idx, want)
    np.testing.assert_allclose(scores, np.take_along_axis(full, want, 1), rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("inner_product", [True, False])
def test_ties_go_to_the_lower_index_across_blocks(inner_product):
    base = np.eye(4, dtype=np.float32)
    gallery = np.concatenate([base[[1, 2]], base[[0]], base[[3]], base[[0]], base[[0]]])  # e0 at rows 2, 4, 5
    index = TorchFlatIndex(gallery, inner_product, block_elements=2)  # blocks of k = 3 rows
    _, idx = index.search(base[[0]], 3)
    np.testing.assert_array_equal(idx, [[2, 4, 5]])


@pytest.mark.parametrize("inner_product", [True, False])
@pytest.mark.parametrize("block_elements", [1 << 24, 3])
def test_ties_across_the_kth_place_keep_the_lowest_indices(inner_product, block_elements):
    rng = np.random.default_rng(2)
    gallery = rng.standard_normal((12, 5)).astype(np.float32) * 0.1
    copies = [1, 4, 6, 7, 9, 11]
    gallery[copies] = 1.0  # six equal best rows for the query, three places
    _, idx = TorchFlatIndex(gallery, inner_product, block_elements=block_elements).search(gallery[[1]], 3)
    np.testing.assert_array_equal(idx, [[1, 4, 6]])


def test_all_rows_and_bad_arguments():
    queries, gallery = _data(3, 5, 4)
    _, idx = TorchFlatIndex(gallery, False).search(queries, 5)
    assert sorted(idx[0].tolist()) == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError, match=r"k must be in \[1, 5\]"):
        TorchFlatIndex(gallery, False).search(queries, 6)
    with pytest.raises(ValueError, match=r"queries must be \(Q, 4\)"):
        TorchFlatIndex(gallery, True).search(queries[:, :3], 2)
    with pytest.raises(ValueError, match=r"vectors must be \(N, D\)"):
        TorchFlatIndex(gallery[0], True)


def test_without_faiss_the_search_runs_in_torch_and_kmeans_says_what_to_install(monkeypatch):
    """``sys.modules["faiss"] = None`` makes ``import faiss`` fail as on a machine without it."""
    import sys

    from hyperdml.metrics import evaluate_retrieval, knn_search
    from hyperdml.metrics.clustering import kmeans_assign
    from hyperdml.spaces import PoincareSpace

    g = torch.Generator().manual_seed(3)
    x = PoincareSpace(c=0.5).to_space(torch.randn(120, 6, generator=g, dtype=torch.float64)).numpy()
    y = torch.randint(0, 5, (120,), generator=g)
    with_faiss = knn_search(x, x, 7, space=PoincareSpace(c=0.5), exclude_self=True)
    cos_with = knn_search(x, x, 7, metric="cosine", exclude_self=True)
    monkeypatch.setitem(sys.modules, "faiss", None)
    assert np.array_equal(knn_search(x, x, 7, space=PoincareSpace(c=0.5), exclude_self=True), with_faiss)
    assert np.array_equal(knn_search(x, x, 7, metric="cosine", exclude_self=True), cos_with)
    assert evaluate_retrieval(x, y, space=PoincareSpace(c=0.5), nmi=False)["recall@1"] >= 0
    with pytest.raises(ImportError, match=r"hyperdml\[faiss\]"):
        kmeans_assign(x, 5)
