"""Tree decoding (single linkage on LCA depth), Dasgupta cost and dendrogram purity vs brute force."""

import math
import sys

import numpy as np
import pytest
import torch
from scipy.cluster import hierarchy as sch
from scipy.spatial.distance import squareform

from hyperdml.hierarchy import dasgupta_cost, decode_tree, dendrogram, dendrogram_purity, lca_depth_matrix, tree_height
from hyperdml.ops import hyp_lca_depth_reference


def ball_points(n, d, c=1.0, seed=0, r_min=0.05, r_max=0.95):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    return x / np.linalg.norm(x, axis=1, keepdims=True) * rng.uniform(r_min, r_max, size=(n, 1)) / math.sqrt(c)


def reference_depths(x, c):
    """LCA depths from the op's reference (itself checked against the HypHC port)."""
    t = torch.from_numpy(x)
    return hyp_lca_depth_reference(t[:, None, :], t[None, :, :], c).numpy()


def cluster_sets(z):
    """Leaf set of every internal node of a linkage matrix, in merge order."""
    p = len(z) + 1
    members = [frozenset([i]) for i in range(p)]
    for a, b, _, _ in z:
        members.append(members[int(a)] | members[int(b)])
    return members[p:]


def brute_force_single_linkage(depth):
    """O(P³) single linkage: repeatedly merge the two clusters whose closest pair has the
    deepest LCA. Returns [(leaf set, merge depth)] in merge order."""
    clusters = [{i} for i in range(len(depth))]
    out = []
    while len(clusters) > 1:
        best = None
        for u in range(len(clusters)):
            for v in range(u + 1, len(clusters)):
                d = max(depth[i, j] for i in clusters[u] for j in clusters[v])
                if best is None or d > best[0]:
                    best = (d, u, v)
        d, u, v = best
        merged = clusters[u] | clusters[v]
        clusters = [cl for w, cl in enumerate(clusters) if w not in (u, v)] + [merged]
        out.append((frozenset(merged), d))
    return out


def brute_lca_sizes(z):
    """(P, P) number of leaves under the LCA of i and j, from the cluster sets."""
    p = len(z) + 1
    size = np.zeros((p, p), dtype=int)
    for members in cluster_sets(z):  # merge order = increasing size along any root path
        idx = np.array(sorted(members))
        sub = size[np.ix_(idx, idx)]
        sub[sub == 0] = len(members)
        size[np.ix_(idx, idx)] = sub
    return size


# ------------------------------------------------------------------- decoding ------------------


@pytest.mark.parametrize("c", [0.5, 1.0, 2.0])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_decode_tree_matches_brute_force_single_linkage(c, seed):
    x = ball_points(12, 3, c, seed)
    depth = reference_depths(x, c)
    z = decode_tree(x, c)
    sch.is_valid_linkage(z, throw=True)
    brute = brute_force_single_linkage(depth)
    assert cluster_sets(z) == [m for m, _ in brute]
    dmax = np.diag(depth).max()
    np.testing.assert_allclose(z[:, 2], [dmax - d for _, d in brute], rtol=0, atol=1e-12)
    np.testing.assert_array_equal(z[:, 3], [len(m) for m, _ in brute])
    np.testing.assert_allclose(lca_depth_matrix(x, c), depth, rtol=1e-10, atol=1e-12)


def test_decode_tree_with_equal_radii_is_cosine_single_linkage():
    """HypHC's own decoding: leaves on one sphere, where LCA depth orders pairs as the cosine."""
    x = ball_points(40, 4, seed=3)
    x = x / np.linalg.norm(x, axis=1, keepdims=True) * 0.7
    want = sch.linkage(x, method="single", metric="cosine")
    assert cluster_sets(decode_tree(x, c=1.0)) == cluster_sets(want)


def test_decode_tree_recovers_planted_clusters():
    """Three tight clusters near the boundary in different directions split at the top."""
    rng = np.random.default_rng(4)
    dirs = np.array([[1.0, 0.0], [-0.5, 0.8], [-0.5, -0.8]])
    x = np.concatenate([0.9 * (d + 0.03 * rng.normal(size=(10, 2))) for d in dirs])
    x = x / np.linalg.norm(x, axis=1, keepdims=True) * 0.9
    z = decode_tree(torch.from_numpy(x).float().requires_grad_(), c=1.0)  # a float32 leaf tensor works
    labels = np.repeat([0, 1, 2], 10)
    fc = sch.fcluster(z, 3, criterion="maxclust")
    assert len(set(fc)) == 3 and len(set(zip(fc, labels))) == 3
    assert dendrogram_purity(z, labels) == 1.0


def test_decode_tree_dendrogram_and_height_convention():
    x = ball_points(50, 2, seed=5)
    z = decode_tree(x, c=1.0)
    assert z.shape == (49, 4) and z.dtype == np.float64
    assert (z[:, 2] >= 0).all() and (np.diff(z[:, 2]) >= 0).all()
    assert z[-1, 3] == 50
    dendro = sch.dendrogram(z, no_plot=True)
    assert sorted(dendro["leaves"]) == list(range(50))
    # Heights are δ_max − merge depth: the cophenetic "distance" of i, j is δ_max − δ(z_i∨z_j)
    # for the pair's single-linkage merge; the root merge is the shallowest MST edge.
    depth = reference_depths(x, 1.0)
    dmax = np.diag(depth).max()
    coph = squareform(sch.cophenet(z))
    assert (coph[~np.eye(50, dtype=bool)] <= (dmax - depth)[~np.eye(50, dtype=bool)] + 1e-12).all()


def test_decode_tree_matches_scipy_single_linkage_at_p1500():
    x = ball_points(1500, 5, seed=6)
    depth = lca_depth_matrix(x, c=1.0)
    dist = np.diag(depth).max() - depth
    np.fill_diagonal(dist, 0)
    want = sch.linkage(squareform(dist, checks=False), method="single")
    z = decode_tree(x, c=1.0)
    np.testing.assert_allclose(z[:, 2], want[:, 2], rtol=0, atol=1e-12)
    np.testing.assert_allclose(sch.cophenet(z), sch.cophenet(want), rtol=0, atol=1e-12)


def test_decode_tree_large_and_tall_dendrogram():
    """P = 3000 decodes with O(P·D) memory (measured 0.4–0.7 s; P = 20000: 7–12 s, P = 50000:
    ~45 s at D = 2, a few MB). Points at random radii give a chain-like tree ~2800 merges tall,
    past SciPy's recursive dendrogram; hyperdml's dendrogram draws it."""
    z = decode_tree(ball_points(3000, 2, seed=7), c=1.0)
    sch.is_valid_linkage(z, throw=True)
    assert z[-1, 3] == 3000
    height = tree_height(z)
    assert height > 2 * sys.getrecursionlimit()  # the case SciPy alone cannot walk
    limit = sys.getrecursionlimit()
    d = dendrogram(z, no_plot=True)
    assert sys.getrecursionlimit() == limit
    assert sorted(d["leaves"]) == list(range(3000)) and len(d["icoord"]) == 2999
    np.testing.assert_array_equal(d["leaves"], sch.leaves_list(z))
    small = sch.linkage(np.arange(10.0)[:, None])
    assert dendrogram(small, no_plot=True)["leaves"] == sch.dendrogram(small, no_plot=True)["leaves"]
    assert tree_height(small) == 9 and tree_height(sch.linkage([[0.0], [1.0], [10.0], [11.0]])) == 2


def test_decode_tree_edge_cases():
    z = decode_tree(np.array([[0.1, 0.0], [0.0, 0.2]]), c=1.0)
    assert z.shape == (1, 4) and z[0, 3] == 2
    same = decode_tree(np.array([[0.3, 0.1]] * 4 + [[0.0, 0.0]]), c=1.0)  # duplicates and the origin
    sch.is_valid_linkage(same, throw=True)
    assert np.isfinite(same).all()
    assert same[-1, 2] == pytest.approx(2 * np.arctanh(np.hypot(0.3, 0.1)))  # root merge at the origin
    with pytest.raises(ValueError, match="outside the boundary"):
        decode_tree(np.array([[0.5, 0.0], [1.0, 0.0]]), c=1.0)
    with pytest.raises(ValueError, match="outside the boundary"):
        decode_tree(np.array([[0.5, 0.0], [0.8, 0.0]]), c=2.0)
    with pytest.raises(ValueError, match="NaN"):
        decode_tree(np.array([[0.5, 0.0], [np.nan, 0.0]]), c=1.0)
    with pytest.raises(ValueError, match="at least 2"):
        decode_tree(np.zeros((1, 2)), c=1.0)
    with pytest.raises(ValueError, match="shape"):
        decode_tree(np.zeros(3), c=1.0)


# ------------------------------------------------------------------- Dasgupta cost ------------


def brute_dasgupta(z, sims):
    sizes = brute_lca_sizes(z)
    s = 0.5 * (sims + sims.T)
    iu = np.triu_indices(len(s), 1)
    return float((s[iu] * sizes[iu]).sum())


def hyphc_dasgupta_iterative(z, similarities):
    """Port of HypHC's ``dasgupta_cost_iterative`` (utils/metrics.py) with children from Z.
    It sums over ordered pairs, i.e. returns twice Dasgupta's cost."""
    p = len(z) + 1
    n = 2 * p - 1
    children_of = [[] for _ in range(n)]
    for m, (a, b, _, _) in enumerate(z):
        children_of[p + m] = [int(a), int(b)]
    cost, desc = [0] * n, [None] * n
    children = [list(ch) for ch in children_of]
    stack = [n - 1]
    while stack:
        node = stack[-1]
        if children[node]:
            stack.append(children[node].pop())
        else:
            ch = children_of[node]
            if not ch:
                desc[node] = [node]
            else:
                desc[node] = [d for c in ch for d in desc[c]]
                cost_ = sum(similarities[desc[c0]].T[desc[c1]].sum() for i, c0 in enumerate(ch) for c1 in ch[i + 1:])
                cost[node] = cost_ * len(desc[node]) + sum(cost[c] for c in ch)
            stack.pop()
    return 2 * cost[n - 1]


@pytest.mark.parametrize("p", [2, 3, 7, 25])
def test_dasgupta_cost_matches_brute_force(p):
    rng = np.random.default_rng(p)
    for method in ["single", "average", "ward"]:
        z = sch.linkage(rng.normal(size=(p, 2)), method=method)
        f = rng.normal(size=(p, 3))
        sims = 0.5 * (1 + (f / np.linalg.norm(f, axis=1, keepdims=True)) @ (f / np.linalg.norm(f, axis=1, keepdims=True)).T)
        want = brute_dasgupta(z, sims)
        assert dasgupta_cost(z, sims) == pytest.approx(want, rel=1e-12)
        assert dasgupta_cost(z, torch.from_numpy(sims)) == pytest.approx(want, rel=1e-12)
        assert 2 * dasgupta_cost(z, sims) == pytest.approx(hyphc_dasgupta_iterative(z, sims), rel=1e-12)
        norm = dasgupta_cost(z, sims, normalize=True)
        assert norm == pytest.approx(want / (p * np.triu(sims, 1).sum()), rel=1e-12) and 0 < norm <= 1
        asym = rng.uniform(size=(p, p))
        assert dasgupta_cost(z, asym) == pytest.approx(brute_dasgupta(z, asym), rel=1e-12)


def test_dasgupta_cost_hand_example():
    # ((0, 1), 2): s01 meets at a 2-leaf node, s02 and s12 at the root.
    z = np.array([[0, 1, 1.0, 2], [2, 3, 2.0, 3]])
    s = np.array([[1, 0.9, 0.2], [0.9, 1, 0.3], [0.2, 0.3, 1]])
    assert dasgupta_cost(z, s) == pytest.approx(2 * 0.9 + 3 * 0.2 + 3 * 0.3)
    with pytest.raises(ValueError, match="shape"):
        dasgupta_cost(z, s[:2, :2])


def test_dasgupta_cost_p2000_and_prefers_the_right_tree():
    """P = 2000 in well under a second, equal to HypHC's (halved); the tree decoded from points
    placed by the similarity structure costs less than a random tree."""
    rng = np.random.default_rng(8)
    labels = rng.integers(0, 10, size=2000)
    sims = np.where(labels[:, None] == labels[None, :], 1.0, 0.1)
    angles = labels * 2 * np.pi / 10 + 0.05 * rng.normal(size=2000)
    x = 0.9 * np.stack([np.cos(angles), np.sin(angles)], 1)
    z = decode_tree(x, c=1.0)
    good = dasgupta_cost(z, sims)
    assert 2 * good == pytest.approx(hyphc_dasgupta_iterative(z, sims), rel=1e-10)
    rand = dasgupta_cost(sch.linkage(rng.normal(size=(2000, 2)), method="average"), sims)
    assert good < 0.7 * rand  # measured 0.57


# ------------------------------------------------------------------- dendrogram purity --------


def brute_purity(z, labels):
    sizes = brute_lca_sizes(z)
    sets = cluster_sets(z)
    total, n = 0.0, 0
    p = len(labels)
    for i in range(p):
        for j in range(i + 1, p):
            if labels[i] != labels[j]:
                continue
            lca = next(m for m in sets if i in m and j in m and len(m) == sizes[i, j])
            total += sum(labels[k] == labels[i] for k in lca) / len(lca)
            n += 1
    return total / n


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_dendrogram_purity_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 4, size=30)
    feats = rng.normal(size=(30, 2)) + labels[:, None] * 0.8
    for method in ["single", "average"]:
        z = sch.linkage(feats, method=method)
        want = brute_purity(z, labels)
        assert dendrogram_purity(z, labels) == pytest.approx(want, rel=1e-12)
        assert dendrogram_purity(z, torch.from_numpy(labels)) == pytest.approx(want, rel=1e-12)
        assert dendrogram_purity(z, np.array(["abcd"[l] for l in labels])) == pytest.approx(want, rel=1e-12)


def test_dendrogram_purity_extremes():
    labels = np.repeat([0, 1, 2], 5)
    x = labels[:, None] * 10.0 + np.random.default_rng(0).normal(size=(15, 1))
    assert dendrogram_purity(sch.linkage(x, "single"), labels) == 1.0
    # Caterpillar tree adding leaves 0, 1, 2, 0, 1, 2, ...: pair (a, b) of one label meets
    # at the node holding leaves 0..max(a, b).
    lab = np.array([0, 1, 2] * 3)
    z = np.array([[0, 1, 1, 2]] + [[i + 1, 9 + i - 1, i, i + 2] for i in range(1, 8)], dtype=float)
    assert dendrogram_purity(z, lab) == pytest.approx(brute_purity(z, lab))
    assert dendrogram_purity(z, lab) < 0.7
    with pytest.raises(ValueError, match="no two leaves"):
        dendrogram_purity(sch.linkage(x[:3], "single"), [0, 1, 2])
    with pytest.raises(ValueError, match="shape"):
        dendrogram_purity(sch.linkage(x, "single"), labels[:3])
