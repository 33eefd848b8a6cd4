"""hyperdml.viz: proxies, trees, reduction, plots and the hierarchy report of a loss object.

Oracles: planted hierarchies (the super-class of every class is known by construction), SciPy's
single linkage, ``hyperdml.hierarchy.dasgupta_cost`` on explicit similarity matrices, geoopt's
distance, and the image files themselves (PIL, XML parser).
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure
from PIL import Image
from scipy.cluster import hierarchy as sch

from hyperdml import geometry
from hyperdml.errors import HyperdmlError
from hyperdml.hierarchy import dasgupta_cost, decode_tree, dendrogram_purity, lca_depth_matrix
from hyperdml.losses import CHEST, ProxyAnchor, SoftTriple, similarity_from_features
from hyperdml.spaces import EuclideanSpace, PoincareSpace
from hyperdml.viz import (
    TangentPCA,
    analyze_proxies,
    class_means,
    cosine_tree,
    dasgupta_cost_features,
    dasgupta_cost_labels,
    find_proxies,
    geodesic_arc,
    hierarchy_figures,
    plot_dendrogram,
    plot_poincare_disk,
    tree_edges,
    write_loss_report,
)

C_CURV = 0.1
# Planted hierarchy: 4 super-classes × 5 classes; class directions are their super-class's
# direction plus noise of norm ≈ SPREAD, so same-super classes are closer in angle than any two
# super-classes. Decoded trees must put each super-class in its own subtree: purity ≥ 0.95.
N_SUPER, PER_SUPER, SPREAD, PURITY_MIN = 4, 5, 0.25, 0.95


def planted_directions(dim, per_class=1, seed=0, spread=SPREAD):
    """Unit vectors ``(C·K, dim)`` class-major with a planted super-class tree, and ``super (C,)``."""
    g = torch.Generator().manual_seed(seed)
    sup_dir = torch.nn.functional.normalize(torch.randn(N_SUPER, dim, generator=g, dtype=torch.float64), dim=1)
    noise = torch.randn(N_SUPER * PER_SUPER, dim, generator=g, dtype=torch.float64)
    cls = sup_dir.repeat_interleave(PER_SUPER, 0) + spread * noise / noise.norm(dim=1, keepdim=True)
    cls = torch.nn.functional.normalize(cls, dim=1).repeat_interleave(per_class, 0)
    prox = cls + 0.02 * torch.randn(cls.shape, generator=g, dtype=torch.float64)
    return torch.nn.functional.normalize(prox, dim=1), np.repeat(np.arange(N_SUPER), PER_SUPER)


def hyperbolic_loss(dim=8, per_class=1, seed=0, radius=1.6):
    """A hyperbolic SoftTriple whose proxies hold the planted hierarchy (tangent norm ``radius``)."""
    loss = SoftTriple(N_SUPER * PER_SUPER, dim, centers_per_class=per_class, space=PoincareSpace(C_CURV))
    dirs, sup = planted_directions(dim, per_class, seed)
    g = torch.Generator().manual_seed(seed + 7)
    r = radius * (0.95 + 0.1 * torch.rand(len(dirs), 1, generator=g, dtype=torch.float64))
    with torch.no_grad():
        loss.proxies.copy_(geometry.expmap0(dirs * r, C_CURV).float())
    return loss, sup


def chest_loss(per_class=2):
    loss = CHEST(N_SUPER * PER_SUPER, 12, 8, centers_per_class=per_class, c=C_CURV)
    dh, sup = planted_directions(8, per_class, seed=0)
    de, _ = planted_directions(12, per_class, seed=3)
    with torch.no_grad():
        loss.hyperbolic.proxies.copy_(geometry.expmap0(dh * 1.5, C_CURV).float())
        loss.euclidean.proxies.copy_(de.float())
    return loss, sup


# -- proxies -----------------------------------------------------------------------------------


class _DDPLike(torch.nn.Module):
    """Stand-in of DistributedDataParallel: the loss as ``.module``."""

    def __init__(self, module):
        super().__init__()
        self.module = module


def test_find_proxies_per_space():
    hyp = ProxyAnchor(6, 4, space=PoincareSpace(0.3))
    euc = ProxyAnchor(6, 4, space=EuclideanSpace())
    found = find_proxies(hyp)
    assert set(found) == {"hyperbolic"} and found["hyperbolic"].space.c == pytest.approx(0.3)
    assert torch.allclose(found["hyperbolic"].points, hyp.proxy_points().double())
    assert set(find_proxies(euc)) == {"euclidean"}
    chest, _ = chest_loss()
    both = find_proxies(_DDPLike(chest))
    assert set(both) == {"hyperbolic", "euclidean"}
    assert both["hyperbolic"].per_class == 2 and both["hyperbolic"].num_classes == N_SUPER * PER_SUPER
    assert (both["euclidean"].labels == np.repeat(np.arange(20), 2)).all()
    with pytest.raises(HyperdmlError, match="no proxies"):
        find_proxies(torch.nn.Linear(2, 2))


def test_find_proxies_through_the_real_wrappers():
    from hyperdml.losses import CalibrateProxy, HierarchicalProxy

    base = SoftTriple(6, 4, centers_per_class=2, space=PoincareSpace(0.2))
    for wrapped in (CalibrateProxy(base), HierarchicalProxy(base, levels=(2,)), _DDPLike(CalibrateProxy(base))):
        found = find_proxies(wrapped)
        assert set(found) == {"hyperbolic"}  # HPL's group proxies are not class proxies
        assert found["hyperbolic"].points.shape == (12, 4) and found["hyperbolic"].per_class == 2


def test_find_proxies_tangent_parametrisation_gives_ball_points():
    loss = ProxyAnchor(5, 3, space=PoincareSpace(0.1, proxy_param="tangent"))
    with torch.no_grad():
        loss.proxies.mul_(20)  # far outside the ball as raw parameters
    pts = find_proxies(loss)["hyperbolic"].points
    assert (pts.norm(dim=1) < 0.1**-0.5).all()
    assert torch.allclose(pts, loss.proxy_points().double())


def test_class_means_of_identical_proxies_are_the_proxy():
    x = geometry.expmap0(torch.randn(4, 3, dtype=torch.float64), 0.5)
    same = x.repeat_interleave(3, 0)
    assert torch.allclose(class_means(same, 3, PoincareSpace(0.5)), x, atol=1e-12)
    assert torch.allclose(class_means(same, 3, EuclideanSpace()), torch.nn.functional.normalize(x, dim=1), atol=1e-12)


# -- trees -------------------------------------------------------------------------------------


def test_planted_hierarchy_is_recovered_in_both_spaces():
    loss, sup = hyperbolic_loss(dim=8)
    pts = find_proxies(loss)["hyperbolic"].points
    z = decode_tree(pts, C_CURV)
    assert dendrogram_purity(z, sup) >= PURITY_MIN
    dirs, sup_e = planted_directions(12, seed=5)
    assert dendrogram_purity(cosine_tree(dirs), sup_e) >= PURITY_MIN
    # the same data with super-classes shuffled is far from pure: the threshold can fail
    shuffled = np.random.default_rng(0).permutation(sup)
    assert dendrogram_purity(z, shuffled) < 0.7


def test_cosine_tree_matches_scipy_single_linkage():
    x = np.random.default_rng(1).normal(size=(40, 6))
    ours = cosine_tree(x)
    ref = sch.linkage(x, method="single", metric="cosine")
    np.testing.assert_allclose(ours[:, 2], ref[:, 2], atol=1e-10)
    np.testing.assert_allclose(sch.cophenet(ours), sch.cophenet(ref), atol=1e-10)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fast_dasgupta_costs_equal_the_matrix_definition(seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(30, 5))
    z = sch.linkage(x, method=["single", "average", "complete"][seed])
    labels = rng.integers(0, 4, size=30)
    comember = (labels[:, None] == labels[None, :]).astype(float)
    assert dasgupta_cost_labels(z, labels) == pytest.approx(dasgupta_cost(z, comember, normalize=True), rel=1e-12)
    assert dasgupta_cost_labels(z, labels, normalize=False) == pytest.approx(dasgupta_cost(z, comember), rel=1e-12)
    sims = similarity_from_features(torch.as_tensor(x))
    assert dasgupta_cost_features(z, x) == pytest.approx(dasgupta_cost(z, sims, normalize=True), rel=1e-9)
    assert dasgupta_cost_features(z, x, normalize=False) == pytest.approx(dasgupta_cost(z, sims), rel=1e-9)


def test_tree_edges_realise_each_merge():
    loss, _ = hyperbolic_loss(dim=6)
    pts = find_proxies(loss)["hyperbolic"].points
    z = decode_tree(pts, C_CURV)
    edges = tree_edges(z, pts, C_CURV)
    depth = lca_depth_matrix(pts, C_CURV)
    merge_depth = np.diag(depth).max() - z[:, 2]  # decode_tree's height convention
    members = [{i} for i in range(len(pts))]
    for m, (a, b) in enumerate(z[:, :2].astype(int)):
        u, v = edges[m]
        assert (u in members[a] and v in members[b])
        assert depth[u, v] == pytest.approx(merge_depth[m], abs=1e-9)
        members.append(members[a] | members[b])
    # the edges form a spanning tree of the leaves
    assert len({tuple(sorted(e)) for e in edges.tolist()}) == len(pts) - 1


# -- geometry of the plot ----------------------------------------------------------------------


def test_geodesic_arc_is_a_geodesic():
    ball = geometry.ball(1.0)
    p, q = np.array([0.5, 0.2]), np.array([-0.3, 0.6])
    arc = geodesic_arc(p, q, n=20)
    np.testing.assert_allclose(arc[0], p, atol=1e-12)
    np.testing.assert_allclose(arc[-1], q, atol=1e-12)
    tp, tq, ta = (torch.as_tensor(v) for v in (p, q, arc))
    total = ball.dist(tp, tq)
    np.testing.assert_allclose((ball.dist(tp, ta) + ball.dist(ta, tq)).numpy(), total.item(), rtol=1e-9)
    # on a circle orthogonal to the unit circle: |o|² = r² + 1
    a, b, c = arc[0], arc[10], arc[-1]
    A = 2 * np.array([b - a, c - a])
    o = np.linalg.solve(A, np.array([b @ b - a @ a, c @ c - a @ a]))
    assert o @ o == pytest.approx(np.sum((a - o) ** 2) + 1, rel=1e-9)
    line = geodesic_arc(np.array([0.1, 0.1]), np.array([-0.4, -0.4]))  # through the origin: a diameter
    np.testing.assert_allclose(line[:, 0], line[:, 1], atol=1e-12)


def test_tangent_pca_keeps_the_geometry_of_planar_points():
    c = 0.3
    rng = np.random.default_rng(0)
    basis = np.linalg.qr(rng.normal(size=(7, 2)))[0]  # a random 2-plane of R^7
    v = rng.normal(size=(25, 2)) @ basis.T
    x = geometry.expmap0(torch.as_tensor(v), c)
    pca = TangentPCA(c).fit(x)
    y = pca.transform(x)
    assert pca.explained == pytest.approx(1.0)
    assert (np.linalg.norm(y, axis=1) < 1).all()
    d_orig = geometry.ball(c).dist(x[:, None], x[None]).numpy()
    d_disk = geometry.ball(1.0).dist(torch.as_tensor(y)[:, None], torch.as_tensor(y)[None]).numpy() / c**0.5
    np.testing.assert_allclose(d_disk, d_orig, atol=1e-8)
    # general points: the origin stays the centre and distances to it never grow
    x2 = geometry.expmap0(torch.as_tensor(rng.normal(size=(30, 7))), c)
    y2 = TangentPCA(c).fit(x2).transform(torch.cat([x2, torch.zeros(1, 7, dtype=torch.float64)]))
    assert np.allclose(y2[-1], 0)
    r_orig = 2 / c**0.5 * np.arctanh(c**0.5 * x2.norm(dim=1).numpy())
    r_disk = 2 / c**0.5 * np.arctanh(np.linalg.norm(y2[:-1], axis=1))
    assert (r_disk <= r_orig + 1e-9).all()


# -- figures and files -------------------------------------------------------------------------


def test_plot_functions_return_figures_and_accept_an_axes():
    loss, sup = hyperbolic_loss()
    pts = find_proxies(loss)["hyperbolic"].points
    z = decode_tree(pts, C_CURV)
    fig = plot_dendrogram(z, [f"c{i}" for i in range(20)], groups=sup, group_names=list("ABCD"))
    assert isinstance(fig, Figure)
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert sorted(labels) == sorted(f"c{i}" for i in range(20))
    own = Figure()
    ax1, ax2 = own.subplots(1, 2)
    assert plot_dendrogram(z, ax=ax1) is own
    xy = TangentPCA(C_CURV).fit_transform(pts)
    assert plot_poincare_disk(xy, sup, edges=tree_edges(z, pts, C_CURV), ax=ax2) is own
    figs, _ = hierarchy_figures(loss, super_labels=sup)
    assert set(figs) == {"dendrogram", "poincare_disk"}
    assert all(isinstance(f, Figure) for f in figs.values())


def test_truncated_dendrogram_of_many_leaves():
    rng = np.random.default_rng(0)
    x = geometry.expmap0(torch.as_tensor(rng.normal(size=(1200, 4)) * 0.5), 1.0)
    z = decode_tree(x, c=1.0)
    groups = rng.integers(0, 3, size=1200)
    fig = plot_dendrogram(z, groups=groups, group_names=["x", "y", "z"], max_leaves=200, truncate_to=80)
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert len(labels) == 80
    assert any("×" in t for t in labels)  # clusters are labelled "<super> ×n (k%)"
    assert fig.get_figheight() < 20


def test_analyze_proxies_metrics():
    loss, sup = chest_loss(per_class=2)
    an = analyze_proxies(loss, super_labels=sup)
    m = an["metrics"]
    assert m["num_classes"] == 20 and m["proxies_per_class"] == 2 and m["num_super_classes"] == 4
    hyp, euc = m["spaces"]["hyperbolic"], m["spaces"]["euclidean"]
    assert hyp["dendrogram_purity"] >= PURITY_MIN and euc["dendrogram_purity"] >= PURITY_MIN
    assert hyp["dendrogram_purity_shuffled"] < 0.7  # the chance level of the same tree
    assert hyp["proxy_class_purity"] == pytest.approx(1.0)  # each class's 2 proxies are twins
    assert set(hyp["dasgupta_cost"]) == {"super_class", "euclidean_angles", "hyperbolic_angles"}
    # super-classes are subtrees, so every same-super pair meets under ≤ PER_SUPER leaves
    assert hyp["dasgupta_cost"]["super_class"] <= PER_SUPER / 20 + 1e-12
    z = an["trees"]["hyperbolic"]
    shuffled = np.random.default_rng(0).permutation(sup)
    assert hyp["dasgupta_cost"]["super_class"] < dasgupta_cost_labels(z, shuffled)
    assert all(0 < v <= 1 for v in hyp["dasgupta_cost"].values())
    json.dumps(m)  # plain JSON types


def test_analyze_proxies_needs_hyperbolic_proxies():
    with pytest.raises(HyperdmlError, match="no hyperbolic proxies"):
        analyze_proxies(ProxyAnchor(5, 4))


@pytest.mark.parametrize("fmt", ["png", "svg"])
def test_write_loss_report_files(tmp_path, fmt):
    loss, sup = chest_loss()
    emb = geometry.expmap0(torch.randn(500, 8, dtype=torch.float64), C_CURV)
    keys = np.random.default_rng(0).integers(0, 4, size=500)
    out = write_loss_report(loss, tmp_path / "r", fmt=fmt, class_names=[f"class {i}" for i in range(20)],
                            super_labels=sup, super_class_names=["a", "b", "c", "d"], embeddings=emb,
                            embedding_keys=keys, max_points=300)
    files = out["files"]
    assert set(files) == {"dendrogram", "poincare_disk", "tree_metrics"}
    metrics = json.loads((tmp_path / "r" / "tree_metrics.json").read_text())
    assert metrics["spaces"]["hyperbolic"]["dendrogram_purity"] == pytest.approx(
        out["metrics"]["spaces"]["hyperbolic"]["dendrogram_purity"])
    figs, _ = hierarchy_figures(loss, super_labels=sup)  # same figure sizes as written
    for key in ("dendrogram", "poincare_disk"):
        path = files[key]
        assert path.endswith("." + fmt)
        w_in, h_in = figs[key].get_size_inches()
        dpi = figs[key].dpi
        if fmt == "png":
            with Image.open(path) as im:
                im.verify()
            with Image.open(path) as im:
                assert im.size == (round(w_in * dpi), round(h_in * dpi))
        else:
            root = ET.parse(path).getroot()
            assert root.tag.endswith("svg")
            assert float(root.get("width").removesuffix("pt")) == pytest.approx(w_in * 72, rel=1e-3)


def test_write_loss_report_rejects_unknown_format(tmp_path):
    loss, _ = hyperbolic_loss()
    with pytest.raises(HyperdmlError, match="format"):
        write_loss_report(loss, tmp_path, fmt="jpg")


def test_two_hundred_class_names_are_all_drawn_legibly():
    rng = np.random.default_rng(0)
    x = geometry.expmap0(torch.as_tensor(rng.normal(size=(200, 6)) * 0.7), C_CURV)
    names = [f"{i:03d}.Long_bird_name_{i}" for i in range(200)]
    fig = plot_dendrogram(decode_tree(x, C_CURV), names, groups=rng.integers(0, 13, size=200))
    ticks = fig.axes[0].get_yticklabels()
    assert sorted(t.get_text() for t in ticks) == sorted(names)
    assert min(t.get_fontsize() for t in ticks) >= 7
    # one label per 0.16 inch (≥ 11 pt of line pitch for 7 pt text)
    assert fig.get_figheight() >= 0.16 * 200


def test_no_pyplot_figures_and_the_reexported_dendrogram_stays_a_function():
    import matplotlib.pyplot as plt

    import hyperdml.hierarchy
    import hyperdml.viz

    before = plt.get_fignums()
    loss, sup = hyperbolic_loss()
    hierarchy_figures(loss, super_labels=sup)
    assert plt.get_fignums() == before  # Figures are not registered with pyplot (no GUI, no leak)
    assert hyperdml.viz.dendrogram is hyperdml.hierarchy.dendrogram
