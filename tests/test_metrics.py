"""Retrieval metrics: equal to PML 2.9's AccuracyCalculator, hand-checked cases, exact hyperbolic
kNN against brute-force geoopt distances, and clear errors on bad inputs."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from conftest import ball_points
from hyperdml.geometry import ball
from hyperdml.metrics import evaluate_retrieval, kmeans_assign, knn_search, nmi

AccuracyCalculator = pytest.importorskip("pytorch_metric_learning.utils.accuracy_calculator").AccuracyCalculator
PML_KEYS = {"recall@1": "precision_at_1", "r_precision": "r_precision", "map@r": "mean_average_precision_at_r"}


def clustered(n, d, classes, spread=1.0, seed=0, singletons=0):
    """``(n, d)`` float32 points around ``classes`` random centres, labels ``(n,)``; the last
    ``singletons`` rows get classes of their own."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, classes, (n,), generator=g)
    labels[n - singletons:] = torch.arange(classes, classes + singletons)
    centres = torch.randn(classes + singletons, d, generator=g) * spread
    return (centres[labels] + torch.randn(n, d, generator=g)).float(), labels


def pml(query, query_labels, reference=None, reference_labels=None, nmi=False):
    include = ("precision_at_1", "r_precision", "mean_average_precision_at_r") + (("NMI",) if nmi else ())
    calc = AccuracyCalculator(include=include, k="max_bin_count", device=torch.device("cpu"))
    logging.getLogger("PML").setLevel(logging.ERROR)
    if reference is None:
        return calc.get_accuracy(query, query_labels)
    return calc.get_accuracy(query, query_labels, reference, reference_labels, ref_includes_query=False)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_equals_pml_self_retrieval(metric, seed):
    x, y = clustered(400 + 50 * seed, 12, 15 + seed, spread=0.6, seed=seed)
    ours = evaluate_retrieval(x, y, metric=metric, nmi=False)
    ref = pml(torch.nn.functional.normalize(x) if metric == "cosine" else x, y)
    for key, pml_key in PML_KEYS.items():
        assert ours[key] == pytest.approx(ref[pml_key], abs=1e-12), key
    assert 0.05 < ours["recall@1"] < 0.999  # a non-trivial case


def test_equals_pml_query_gallery():
    x, y = clustered(600, 10, 30, spread=0.5, seed=4)
    q, ql, gal, gl = x[:200], y[:200], x[200:], y[200:]
    ours = evaluate_retrieval(gal, gl, metric="euclidean", query=q, query_labels=ql, nmi=False)
    ref = pml(q, ql, gal, gl)
    for key, pml_key in PML_KEYS.items():
        assert ours[key] == pytest.approx(ref[pml_key], abs=1e-12), key


def test_lone_queries_left_out_like_pml():
    x, y = clustered(300, 8, 10, spread=0.5, seed=5, singletons=4)
    with pytest.warns(UserWarning, match="4 queries have no other item"):
        ours = evaluate_retrieval(x, y, metric="euclidean", nmi=False)
    ref = pml(x, y)
    for key, pml_key in PML_KEYS.items():
        assert ours[key] == pytest.approx(ref[pml_key], abs=1e-12), key


def test_nmi_equals_pml_on_well_separated_clusters():
    x, y = clustered(500, 16, 5, spread=15.0, seed=6)
    ours = evaluate_retrieval(x, y, metric="euclidean")["nmi"]
    assert ours == pytest.approx(pml(x, y, nmi=True)["NMI"], abs=1e-12)
    assert ours > 0.8  # mostly recovered (Lloyd from random points can still merge two clusters)


def test_nmi_same_clustering_as_pml_on_overlapping_clusters():
    """Same faiss k-means settings as PML → the very same assignment even where it is ambiguous."""
    from pytorch_metric_learning.utils.inference import FaissKMeans
    from sklearn.metrics import normalized_mutual_info_score

    x, y = clustered(400, 6, 12, spread=0.7, seed=7)
    theirs = FaissKMeans(niter=20)(x, 12).numpy()
    assert np.array_equal(kmeans_assign(x.numpy(), 12), theirs)
    assert nmi(x.numpy(), y.numpy()) == pytest.approx(normalized_mutual_info_score(y.numpy(), theirs), abs=1e-12)


def test_hand_checked_tiny_case():
    # 1-D points; labels a a a b b. Nearest (self excluded), ties none:
    #  0.0(a): 1.0 a, 2.5 a, 4.0 b, 9.0 b      R=2: a a → P@1=1, RP=1, AP=1
    #  1.0(a): 0.0 a, 2.5 a, 4.0 b, 9.0 b      R=2: a a → 1, 1, 1
    #  2.5(a): 1.0 a, 4.0 b, 0.0 a, ...        R=2: a b → 1, 1/2, AP=(1/1)/2=1/2
    #  4.0(b): 2.5 a, 1.0 a, 0.0 a, 9.0 b      R=1: a   → 0, 0, 0; hit only at k=4
    #  9.0(b): 4.0 b, ...                      R=1: b   → 1, 1, 1
    x = torch.tensor([[0.0], [1.0], [2.5], [4.0], [9.0]])
    y = torch.tensor([0, 0, 0, 1, 1])
    out = evaluate_retrieval(x, y, ks=(1, 2, 4), metric="euclidean", nmi=False)
    assert out["recall@1"] == pytest.approx(4 / 5)
    assert out["recall@2"] == pytest.approx(4 / 5)
    assert out["recall@4"] == pytest.approx(1.0)
    assert out["r_precision"] == pytest.approx((1 + 1 + 0.5 + 0 + 1) / 5)
    assert out["map@r"] == pytest.approx((1 + 1 + 0.5 + 0 + 1) / 5)


def test_hand_checked_map_differs_from_r_precision():
    # query 0 (a): neighbours b a a (R = 3 with a a a a) → RP = 2/3, AP = (1/2 + 2/3) / 3
    x = torch.tensor([[0.0], [0.5], [-0.9], [1.0], [10.0], [20.0]])
    y = torch.tensor([0, 1, 0, 0, 0, 1])
    gallery_x, gallery_y = x[1:], y[1:]
    out = evaluate_retrieval(gallery_x, gallery_y, ks=(1,), metric="euclidean", query=x[:1],
                             query_labels=y[:1], nmi=False)
    assert out["recall@1"] == 0.0
    assert out["r_precision"] == pytest.approx(2 / 3)
    assert out["map@r"] == pytest.approx((1 / 2 + 2 / 3) / 3)


def brute_force_hyperbolic_knn(x, k, c):
    """geoopt's float64 distances (accurate away from the boundary), self excluded → ``(N, k)``."""
    d = ball(c).dist(x[:, None, :], x[None, :, :])
    d.fill_diagonal_(float("inf"))
    return torch.argsort(d, dim=1)[:, :k].numpy()


def long_double_hyperbolic_knn(x, k, c):
    """Exact-enough oracle near the boundary: arccosh form in 80-bit long double (geoopt's artanh
    form in float64 is off by whole units of distance at ‖x‖ = 1 − 1e-6)."""
    xl, cl = x.numpy().astype(np.longdouble), np.longdouble(c)
    sq = ((xl[:, None] - xl[None]) ** 2).sum(-1)
    n = 1 - cl * (xl**2).sum(-1)
    d = np.arccosh(1 + 2 * cl * sq / (n[:, None] * n[None])) / np.sqrt(cl)
    np.fill_diagonal(d, np.inf)
    return np.argsort(d, axis=1, kind="stable")[:, :k]


@pytest.mark.parametrize("c", [0.1, 1.0])
def test_poincare_neighbours_are_the_geoopt_neighbours(c):
    x = ball_points(400, 6, c=c, max_frac=0.999, seed=11)
    ours = knn_search(x.numpy(), x.numpy(), 10, metric="poincare", c=c, exclude_self=True, chunk_size=97)
    assert np.array_equal(ours, brute_force_hyperbolic_knn(x, 10, c))


def tight_clusters_near_boundary(radius, offset, c=1.0, clusters=5, size=80, seed=0):
    """``clusters × size`` points in tiny clusters at ``radius/√c``: float32 Lorentz products
    cannot order them, and a cluster is bigger than the candidate list."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.nn.functional.normalize(torch.randn(clusters, 6, generator=g, dtype=torch.float64), dim=1)
    x = centres.repeat_interleave(size, 0) * radius + offset * torch.randn(clusters * size, 6, generator=g,
                                                                          dtype=torch.float64)
    norm = x.norm(dim=1, keepdim=True)
    return torch.where(norm > 1 - 1e-7, x / norm * (1 - 1e-7), x) / c**0.5


@pytest.mark.parametrize("radius, offset", [(0.9, 1e-5), (0.999, 1e-5), (0.99999, 1e-7), (0.5, 1e-2)])
def test_poincare_neighbours_exact_near_the_boundary(radius, offset, monkeypatch):
    import hyperdml.spaces.poincare_search as knn_module

    calls = []
    fallback = knn_module._exact_search
    def spy(q, *args, **kwargs):
        calls.append(len(q))
        return fallback(q, *args, **kwargs)

    monkeypatch.setattr(knn_module, "_exact_search", spy)
    x = tight_clusters_near_boundary(radius, offset)
    ours = knn_search(x.numpy(), x.numpy(), 10, metric="poincare", c=1.0, exclude_self=True)
    assert np.array_equal(ours, long_double_hyperbolic_knn(x, 10, 1.0))
    if offset < 1e-3:
        assert sum(calls) > 0  # float32 could not certify these: the float64 path answered
    else:
        assert sum(calls) == 0  # well-separated points: faiss + re-ranking suffice


def test_clipped_embeddings_never_need_the_fallback(monkeypatch):
    import hyperdml.spaces.poincare_search as knn_module
    from hyperdml.spaces import PoincareSpace

    monkeypatch.setattr(knn_module, "_exact_search", lambda *a, **kw: pytest.fail("fallback used"))
    z = PoincareSpace(c=0.1, clip_r=2.3).to_space(torch.randn(500, 16, generator=torch.Generator().manual_seed(1)) * 3)
    ours = knn_search(z.double().numpy(), z.double().numpy(), 8, metric="poincare", c=0.1, exclude_self=True)
    assert np.array_equal(ours, brute_force_hyperbolic_knn(z.double(), 8, 0.1))


def test_poincare_ranking_differs_from_euclidean():
    x = ball_points(300, 4, c=1.0, max_frac=0.99, seed=12)
    hyp = knn_search(x.numpy(), x.numpy(), 5, metric="poincare", c=1.0, exclude_self=True)
    euc = knn_search(x.numpy(), x.numpy(), 5, metric="euclidean", exclude_self=True)
    assert not np.array_equal(hyp, euc)


def test_poincare_metrics_match_a_brute_force_evaluation():
    c = 0.1
    x = ball_points(300, 5, c=c, max_frac=0.95, seed=13)
    # labels unrelated to position: scores near chance, but exactly defined
    y = torch.randint(0, 6, (300,), generator=torch.Generator().manual_seed(0))
    out = evaluate_retrieval(x, y, ks=(1, 3), metric="poincare", c=c, nmi=False)
    nn = brute_force_hyperbolic_knn(x, 299, c)
    lab = y.numpy()[nn]
    hit = lab == y.numpy()[:, None]
    assert out["recall@1"] == pytest.approx(hit[:, 0].mean())
    assert out["recall@3"] == pytest.approx(hit[:, :3].any(1).mean())
    r = np.bincount(y.numpy())[y.numpy()] - 1
    rp = np.mean([hit[i, : r[i]].mean() for i in range(300)])
    assert out["r_precision"] == pytest.approx(rp)


def test_chunking_does_not_change_results():
    x, y = clustered(333, 8, 9, spread=0.5, seed=8)
    a = evaluate_retrieval(x, y, metric="cosine", chunk_size=4096)
    b = evaluate_retrieval(x, y, metric="cosine", chunk_size=10)
    assert a == b


def test_accepts_numpy_and_float64_and_values_in_unit_interval():
    x, y = clustered(200, 4, 5, seed=9)
    out = evaluate_retrieval(x.double().numpy(), y.numpy(), ks=(1, 2, 4, 8))
    assert set(out) == {"recall@1", "recall@2", "recall@4", "recall@8", "map@r", "r_precision", "nmi"}
    assert all(isinstance(v, float) and 0.0 <= v <= 1.0 for v in out.values())
    assert out["recall@1"] <= out["recall@2"] <= out["recall@4"] <= out["recall@8"]


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda x, y: (x, y[:-1]), r"labels must have shape \(50,\)"),
        (lambda x, y: (x[:, 0], y), "2-D"),
        (lambda x, y: (x.index_put((torch.tensor([3]),), torch.tensor(float("nan"))), y), "NaN or inf"),
    ],
    ids=["label-count", "1-D", "nan"],
)
def test_bad_inputs_raise_clear_errors(make, match):
    x, y = clustered(50, 4, 3, seed=10)
    x, y = make(x, y)
    with pytest.raises(ValueError, match=match):
        evaluate_retrieval(x, y)


def test_points_outside_the_ball_are_refused():
    x = ball_points(20, 3, c=1.0, max_frac=0.9)
    x[5] = torch.tensor([0.9, 0.5, 0.0])
    with pytest.raises(ValueError, match="outside the Poincaré ball"):
        evaluate_retrieval(x, torch.arange(20) % 2, metric="poincare", c=1.0)


def test_other_errors():
    x, y = clustered(30, 4, 3, seed=10)
    with pytest.raises(ValueError, match="metric must be one of"):
        evaluate_retrieval(x, y, metric="manhattan")
    with pytest.raises(ValueError, match="no query has another item"):
        evaluate_retrieval(x, torch.arange(30))
    with pytest.raises(ValueError, match="dimension"):
        evaluate_retrieval(x, y, query=x[:, :2], query_labels=y)
    with pytest.raises(ValueError, match="without query_labels"):
        evaluate_retrieval(x, y, query=x)
