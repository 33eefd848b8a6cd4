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


# -- HypHC's sphere, leaf order, axis ranges, the disk's tree and labels -----------------------


def test_find_proxies_places_chest_proxies_on_the_hyphc_sphere():
    loss, _ = chest_loss()
    with torch.no_grad():
        loss.hyphc.radius.fill_(0.75)  # 3/4 of CHEST's default cap, 0.02 of the ball's radius
    radius = 0.015 / C_CURV**0.5
    hyp = find_proxies(loss)["hyperbolic"]
    assert hyp.sphere_radius == pytest.approx(radius)
    raw = loss.hyperbolic.proxy_points().detach().double()
    torch.testing.assert_close(hyp.points, raw / raw.norm(dim=1, keepdim=True) * radius)
    torch.testing.assert_close(hyp.class_points().norm(dim=1), torch.full((20,), radius, dtype=torch.float64))
    plain = CHEST(20, 12, 8, centers_per_class=2, c=C_CURV, hc_sphere=False)
    found = find_proxies(plain)["hyperbolic"]
    assert found.sphere_radius is None
    torch.testing.assert_close(found.points, plain.hyperbolic.proxy_points().detach().double())
    an = analyze_proxies(loss, super_labels=np.repeat(np.arange(4), 5))
    assert an["metrics"]["spaces"]["hyperbolic"]["sphere_radius"] == pytest.approx(radius)
    assert "sphere" in an["metrics"]["spaces"]["hyperbolic"]["tree"]


def _merges(z):
    """The clusters a linkage builds, as a set of frozensets of leaves (independent of child order)."""
    p = z.shape[0] + 1
    members = [frozenset([i]) for i in range(p)]
    for a, b in z[:, :2].astype(int):
        members.append(members[a] | members[b])
    return set(members[p:])


def test_orient_tree_keeps_the_tree_and_follows_the_wanted_order():
    from hyperdml.viz.dendrogram_plot import _drawn_order, orient_tree

    loss, sup = hyperbolic_loss()
    z = decode_tree(find_proxies(loss)["hyperbolic"].points, C_CURV)
    wanted = np.random.default_rng(0).permutation(20)
    oriented = orient_tree(z, wanted)
    assert _merges(oriented) == _merges(z)
    np.testing.assert_array_equal(oriented[:, 2:], z[:, 2:])
    # a tree whose clusters are runs of the wanted order is drawn exactly in that order
    order = np.lexsort((np.arange(20), sup))
    z_sup = sch.linkage(np.repeat(sup, 1)[:, None] + 0.01 * np.arange(20)[:, None], "single")
    np.testing.assert_array_equal(_drawn_order(orient_tree(z_sup, order)), order)
    np.testing.assert_array_equal(_drawn_order(orient_tree(z_sup, order[::-1])), order[::-1])
    with pytest.raises(ValueError, match="permutation"):
        orient_tree(z, np.arange(19))


def test_two_panels_of_the_same_tree_share_the_leaf_order():
    from hyperdml.viz import plot_dendrograms

    loss, sup = hyperbolic_loss()
    z = decode_tree(find_proxies(loss)["hyperbolic"].points, C_CURV)
    swapped = z.copy()
    swapped[:, [0, 1]] = swapped[:, [1, 0]]  # the same tree, every merge's children the other way
    names = [f"c{i}" for i in range(20)]
    fig = plot_dendrograms([dict(z=z, leaf_names=names, groups=sup), dict(z=swapped, leaf_names=names, groups=sup)])
    left, right = ([t.get_text() for t in ax.get_yticklabels()] for ax in fig.axes[:2])
    assert left == right
    # grouped by super-class from top to bottom (the y axis runs downward)
    assert [sup[int(n[1:])] for n in left] == sorted(sup[int(n[1:])] for n in left)
    assert fig.axes[0].get_ylim()[0] > fig.axes[0].get_ylim()[1]


def test_dendrogram_axis_spans_the_merges():
    loss, sup = hyperbolic_loss(radius=6.0)  # leaves deep in the ball, merges near the root
    pts = find_proxies(loss)["hyperbolic"].points
    z = decode_tree(pts, C_CURV)
    depth_max = float(geometry.ball(C_CURV).dist0(pts).max())
    fig = plot_dendrogram(z, groups=sup, depth_max=depth_max)
    ax = fig.axes[0]
    merges = depth_max - z[:, 2]
    lo, hi = ax.get_xlim()
    assert lo <= merges.min() and hi >= merges.max()
    assert hi < depth_max  # the leaves' depth is off the axis and the label says so
    assert f"depth {depth_max:.3g}" in ax.get_xlabel()
    close = plot_dendrogram(decode_tree(geometry.expmap0(torch.randn(6, 3, dtype=torch.float64) * 0.2, 1.0), 1.0),
                            kind="lca", depth_max=None)
    assert "off the axis" not in close.axes[0].get_xlabel()


def _texts_overlap(fig, texts):
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    boxes = [t.get_window_extent(renderer) for t in texts]
    return [(a.get_text(), b.get_text()) for i, (a, ba) in enumerate(zip(texts, boxes))
            for b, bb in zip(texts[i + 1:], boxes[i + 1:]) if ba.overlaps(bb)]


def test_disk_draws_the_tree_through_its_merges_with_separate_labels_and_a_full_legend():
    loss, sup = chest_loss()
    with torch.no_grad():
        loss.hyphc.radius.fill_(2.0)  # a trained sphere: at the cap, 1 − 1e-3 of the ball's radius
    names = [f"s{s}/class{i}" for i, s in enumerate(sup)]
    emb = geometry.expmap0(torch.randn(300, 8, dtype=torch.float64), C_CURV)
    figs, an = hierarchy_figures(loss, class_names=names, super_labels=sup, super_class_names=list("ABCD"),
                                 embeddings=emb, embedding_keys=np.arange(300) % 4)
    ax = figs["poincare_disk"].axes[0]
    # 2(C − 1) parent-child geodesics (two per merge), and C − 1 merge markers
    from matplotlib.collections import LineCollection, PathCollection

    arcs = [c for c in ax.collections if isinstance(c, LineCollection)]
    assert sum(len(c.get_segments()) for c in arcs) == 2 * 19
    sizes = [len(c.get_offsets()) for c in ax.collections if isinstance(c, PathCollection)]
    assert 19 in sizes and 20 in sizes and 300 in sizes
    # class names on a ring outside the proxies, none overlapping another
    labels = [t for t in ax.texts if t.get_text() in names]
    assert len(labels) == 20
    assert not _texts_overlap(figs["poincare_disk"], labels)
    # the proxies spread toward the boundary (HypHC's sphere near the ball's edge) and fill the view
    proxies = [c for c in ax.collections if isinstance(c, PathCollection) and len(c.get_offsets()) == 20][0]
    r = np.linalg.norm(proxies.get_offsets(), axis=1)
    assert r.max() > 0.9 and ax.get_xlim()[1] < 1.35
    # every drawn element is in a legend, and no legend covers a label
    fig = figs["poincare_disk"]
    legends = [leg for leg in [*ax.artists, ax.get_legend(), *fig.legends] if hasattr(leg, "get_texts")]
    renderer = fig.canvas.get_renderer()
    for leg in legends:
        box = leg.get_window_extent(renderer)
        assert not [t.get_text() for t in ax.texts if t.get_window_extent(renderer).overlaps(box)], leg
    entries = {t.get_text() for leg in legends for t in leg.get_texts()}
    for want in ("class proxy", "merge of the tree (LCA point)", "root (last merge)", "test embedding",
                 "clipping radius of the embeddings", "origin", "A", "B", "C", "D"):
        assert want in entries, want
    assert any(e.startswith("tree edge") for e in entries)


def test_disk_tree_arguments_are_checked():
    xy = np.array([[0.1, 0.2], [0.3, -0.1], [-0.2, 0.0]])
    z = sch.linkage(xy, "single")
    with pytest.raises(ValueError, match="go together"):
        plot_poincare_disk(xy, [0, 0, 1], tree=z)
    with pytest.raises(ValueError, match="linkage"):
        plot_poincare_disk(xy, [0, 0, 1], tree=z[:1], tree_nodes=np.zeros((1, 2)))
    with pytest.raises(ValueError, match="inside the unit disk"):
        plot_poincare_disk(xy, [0, 0, 1], tree=z, tree_nodes=np.ones((2, 2)))
    with pytest.raises(ValueError, match="proxy_text"):
        plot_poincare_disk(xy, [0, 0, 1], proxy_text=["a"])
    fig = plot_poincare_disk(xy, [0, 0, 1], tree=z, tree_nodes=np.zeros((2, 2)), proxy_text=list("abc"))
    assert isinstance(fig, Figure)
