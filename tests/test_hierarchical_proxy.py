"""HierarchicalProxy (HPL): clustering, group proxies, loss, schedule, state, errors.

Planted hierarchies are written straight into the class proxies (3 levels: 2 roots × 2
super-classes × 4 classes); the clustering must recover them exactly (adjusted Rand index 1). The
loss is checked against separately built base losses whose proxies are the group proxies.
"""

from __future__ import annotations

import io

import pytest
import torch
import torch.nn.functional as F
from sklearn.metrics import adjusted_rand_score

from conftest import requires_cuda
from hyperdml import geometry
from hyperdml.geometry import geoopt
from hyperdml.losses import CHEST, HierarchicalProxy, ProxyAnchor, ProxyNCA, SoftTriple
from hyperdml.optim import make_optimizer
from hyperdml.spaces import EuclideanSpace, PoincareSpace

D = 12
SPACES = {
    "euclidean": EuclideanSpace,
    "poincare": PoincareSpace,
    "tangent": lambda: PoincareSpace(proxy_param="tangent"),
}
ROOT_OF_SUPER = torch.tensor([0, 0, 1, 1])
SUPER = torch.arange(4).repeat_interleave(4)  # 16 classes, 4 per super-class
ROOT = ROOT_OF_SUPER[SUPER]


def planted_vectors(k=1, seed=0):
    """``(16·k, D)`` vectors: root ± super offset ± class offset ± proxy jitter (class-major)."""
    g = torch.Generator().manual_seed(seed)
    roots = F.normalize(torch.randn(2, D, generator=g), dim=1) * 1.6
    supers = roots[ROOT_OF_SUPER] + F.normalize(torch.randn(4, D, generator=g), dim=1) * 0.7
    classes = supers[SUPER] + torch.randn(16, D, generator=g) * 0.06
    return classes.repeat_interleave(k, 0) + torch.randn(16 * k, D, generator=g) * 0.01


def set_proxies(loss, tangent_vectors):
    """Write the proxies so that ``proxy_points()`` are the vectors (cosine) or their ``expmap0`` (ball)."""
    space = loss.space
    with torch.no_grad():
        if isinstance(space, PoincareSpace) and space.proxy_param == "manifold":
            loss.proxies.copy_(geometry.to_ball(tangent_vectors, space.c, space.clip_r))
        else:
            loss.proxies.copy_(tangent_vectors)


def make(space_name="euclidean", k=1, base_cls=ProxyAnchor, levels=(4, 2), weights=(1.0, 0.5, 0.25), **kw):
    torch.manual_seed(0)
    if base_cls is SoftTriple:
        base = SoftTriple(16, D, centers_per_class=k, space=SPACES[space_name]())
    else:
        base = base_cls(16, D, proxies_per_class=k, space=SPACES[space_name]())
    return HierarchicalProxy(base, levels=levels, level_weights=weights, **kw)


def batch(n=24, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, D, generator=g), torch.randint(16, (n,), generator=g)


@pytest.mark.parametrize("space_name", list(SPACES))
@pytest.mark.parametrize("k", [1, 3])
def test_clustering_recovers_a_planted_hierarchy(space_name, k):
    hpl = make(space_name, k=k)
    set_proxies(hpl.base, planted_vectors(k))
    hpl.recluster()
    ari_1 = adjusted_rand_score(SUPER.numpy(), hpl.class_super_labels(1).numpy())
    ari_2 = adjusted_rand_score(ROOT.numpy(), hpl.class_super_labels(2).numpy())
    assert ari_1 == 1.0 and ari_2 == 1.0
    # level 2 clusters level 1's groups: a group's classes all share its level-2 group
    assert torch.equal(hpl.class_super_labels(2), hpl.assignment_2[hpl.assignment_1])


@pytest.mark.parametrize("space_name", list(SPACES))
def test_group_proxies_start_at_the_centroids(space_name):
    hpl = make(space_name, k=2)
    set_proxies(hpl.base, planted_vectors(2))
    hpl.recluster()
    points = hpl.base.proxy_points().detach()
    ball = isinstance(hpl.space, PoincareSpace)
    feats = geometry.logmap0(points, hpl.space.c) if ball else F.normalize(points, dim=1)
    per_class = feats.view(16, 2, D).mean(1)  # the mean of a class's K proxies
    for g in range(4):
        members = per_class[hpl.assignment_1 == g]
        got = hpl.group_points(1)[g].detach()
        if ball:
            torch.testing.assert_close(geometry.logmap0(got, hpl.space.c), members.mean(0), rtol=1e-4, atol=1e-4)
        else:
            assert F.cosine_similarity(got, members.mean(0), dim=0) > 1 - 1e-5


@pytest.mark.parametrize("space_name", list(SPACES))
@pytest.mark.parametrize("base_cls", [ProxyAnchor, ProxyNCA, SoftTriple])
def test_loss_is_the_weighted_sum_of_base_losses_per_level(space_name, base_cls):
    hpl = make(space_name, k=2, base_cls=base_cls)
    x, y = batch()
    value = hpl(x, y)  # clusters lazily
    assert hpl.clustered and hpl.num_clusterings == 1
    want = 1.0 * hpl.base(x, y)
    for level, w in zip((1, 2), (0.5, 0.25)):
        torch.manual_seed(0)
        kwargs = {"centers_per_class": 1} if base_cls is SoftTriple else {}
        other = base_cls(hpl.levels[level - 1], D, space=SPACES[space_name](), **kwargs)
        with torch.no_grad():
            other.proxies.copy_(hpl.group_proxies[level - 1])
        labels = hpl.class_super_labels(level)[y]
        want = want + w * other(x, labels)
        reg = other.regularizer()
        assert reg is None
    torch.testing.assert_close(value, want, rtol=1e-5, atol=1e-5)
    assert set(hpl.parts) == {"level0", "level1", "level2"}
    value.backward()
    assert hpl.base.proxies.grad.abs().sum() > 0
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in hpl.group_proxies)


def test_zero_weight_level_is_skipped():
    hpl = make(weights=(1.0, 0.0, 0.5))
    hpl(*batch()).backward()
    assert hpl.group_proxies[0].grad is None and hpl.group_proxies[1].grad is not None
    assert "level1" not in hpl.parts


def test_recluster_schedule_and_in_place_parameters():
    hpl = make("poincare", recluster_every=3)
    params = list(hpl.group_proxies)
    ptrs = [p.data_ptr() for p in params]
    opt = make_optimizer(None, hpl, lr=1e-2)
    counts = []
    for epoch in range(7):
        hpl.set_epoch(epoch)
        hpl.set_epoch(epoch)  # a repeated call does not re-cluster
        for step in range(2):
            loss = hpl(*batch(seed=10 * epoch + step))
            opt.zero_grad()
            loss.backward()
            opt.step()
        counts.append(hpl.num_clusterings)
    assert counts == [1, 1, 1, 2, 2, 2, 3]
    assert all(a is b for a, b in zip(params, hpl.group_proxies))
    assert [p.data_ptr() for p in params] == ptrs
    assert isinstance(hpl.group_proxies[0], geoopt.ManifoldParameter)
    assert all(p in opt.state for p in params)
    hpl.reset_optimizer_state(opt)
    assert not any(p in opt.state for p in params)
    opt.step()  # the optimiser starts their state afresh


def test_lazy_clustering_and_cluster_once():
    hpl = make(recluster_every=None)
    assert not hpl.clustered
    hpl(*batch())
    assert hpl.clustered and hpl.num_clusterings == 1
    for epoch in range(6):
        hpl.set_epoch(epoch)
    assert hpl.num_clusterings == 1


def test_reclustering_unchanged_proxies_keeps_groups_and_indices():
    """Another k-means seed may number the clusters differently; the matching keeps the indices."""
    hpl = make("euclidean", k=1)
    set_proxies(hpl.base, planted_vectors(1, seed=4))
    hpl.recluster()
    first = [a.clone() for a in hpl.assignments()]
    points = hpl.group_points(1).detach().clone()
    for _ in range(3):
        hpl.recluster()
        assert all(torch.equal(a, b) for a, b in zip(first, hpl.assignments()))
        torch.testing.assert_close(hpl.group_points(1).detach(), points, rtol=1e-4, atol=1e-4)


def test_state_dict_round_trip():
    hpl = make("poincare", k=2, recluster_every=2)
    for epoch in range(3):
        hpl.set_epoch(epoch)
        hpl(*batch(seed=epoch))
    buf = io.BytesIO()
    torch.save(hpl.state_dict(), buf)
    buf.seek(0)
    state = torch.load(buf, weights_only=True)
    assert {"assignment_1", "assignment_2", "group_proxies.0", "group_proxies.1", "_extra_state"} <= set(state)

    torch.manual_seed(5)
    other = HierarchicalProxy(ProxyAnchor(16, D, proxies_per_class=2, space=PoincareSpace()), levels=(4, 2),
                              level_weights=(1.0, 0.5, 0.25), recluster_every=2)  # fmt: skip
    other.load_state_dict(state)
    assert other.clustered_epoch == 2 and other.epoch == 2 and other.num_clusterings == hpl.num_clusterings
    assert all(torch.equal(a, b) for a, b in zip(other.assignments(), hpl.assignments()))
    x, y = batch(seed=9)
    assert torch.equal(other(x, y), hpl(x, y))
    other.set_epoch(2)  # resuming the same epoch does not re-cluster
    assert other.num_clusterings == hpl.num_clusterings


@pytest.mark.parametrize(
    "kw,match",
    [
        ({"levels": (4, 6)}, "decreasing"),
        ({"levels": (16,)}, "below num_classes"),
        ({"levels": (1,), "level_weights": (1, 1)}, ">= 2"),
        ({"levels": (4, 2), "level_weights": (1.0, 0.5)}, "len\\(levels\\) \\+ 1"),
        ({"levels": (4,), "level_weights": (1.0, -0.5)}, "level_weights"),
        ({"levels": (4,), "level_weights": (1.0, float("inf"))}, "level_weights"),
        ({"levels": (4,), "level_weights": (1.0, 0.5), "recluster_every": 0}, "recluster_every"),
    ],
)
def test_bad_arguments(kw, match):
    with pytest.raises(ValueError, match=match):
        HierarchicalProxy(ProxyAnchor(16, D), **kw)


@pytest.mark.parametrize("num_classes", [3, 4, 5, 8, 9, 16, 17, 100])
@pytest.mark.parametrize("levels", [(), None])
def test_default_levels_fit_any_number_of_classes(num_classes, levels):
    """The default level has 2..8 groups, fewer than the classes, and the loss trains one step."""
    torch.manual_seed(0)
    hpl = HierarchicalProxy(ProxyAnchor(num_classes, D), levels=levels, recluster_every=None)
    (n,) = hpl.levels
    assert 2 <= n < num_classes and n == min(8, num_classes // 2 if num_classes >= 4 else 2)
    x, y = torch.randn(2 * num_classes, D, requires_grad=True), torch.arange(num_classes).repeat(2)
    loss = hpl(x, y)
    loss.backward()
    assert torch.isfinite(loss) and x.grad.abs().sum() > 0
    assert hpl.assignment_1.unique().numel() <= n


def test_default_levels_name_the_lower_bound():
    with pytest.raises(ValueError, match="at least 3 classes"):
        HierarchicalProxy(ProxyAnchor(2, D))


def test_default_levels_from_the_command_line():
    from hyperdml.train.loss_factory import build_loss

    cfg = {"loss": "hpl+proxy_anchor", "embedding_size": D}
    assert build_loss(cfg, 5).levels == (2,)
    assert build_loss(dict(cfg, loss_args={"levels": "4,2", "level_weights": "1,0.5,0.25"}), 10).levels == (4, 2)


@pytest.mark.parametrize("base", [torch.nn.Linear(2, 2), CHEST(20, 6, 5, centers_per_class=2)], ids=["module", "chest"])
def test_base_without_proxies_is_a_type_error(base):
    with pytest.raises(TypeError, match="proxy loss"):
        HierarchicalProxy(base, levels=(4,), level_weights=(1, 1))


def test_bad_labels():
    hpl = make()
    x, _ = batch(4)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 16\)"):
        hpl(x, torch.tensor([0, 1, 16, 2]))
    with pytest.raises(ValueError, match="level must be"):
        hpl.group_points(3)


def test_base_regulariser_is_added_once():
    torch.manual_seed(0)
    base = SoftTriple(16, D, centers_per_class=3, tau=0.3)
    hpl = HierarchicalProxy(base, levels=(4,), level_weights=(0.0, 0.0))
    reg = base.regularizer()
    assert reg is not None and reg > 0
    torch.testing.assert_close(hpl(*batch()), reg)
    hpl = HierarchicalProxy(base, levels=(4,), level_weights=(1.0, 0.0))
    x, y = batch()
    torch.testing.assert_close(hpl(x, y), base(x, y))  # base(x, y) = its loss + its regulariser


@pytest.mark.cuda
@requires_cuda
@pytest.mark.parametrize("space_name", ["euclidean", "poincare"])
def test_cuda_move(space_name):
    hpl = make(space_name, k=2).to("cuda")
    assert hpl.assignment_1.is_cuda and hpl.group_proxies[0].is_cuda
    x, y = batch()
    x = x.cuda().requires_grad_()
    hpl(x, y).backward()  # clusters lazily (faiss on the CPU), labels may stay on the CPU
    assert hpl.clustered and torch.isfinite(x.grad).all()
    hpl.set_epoch(5)
    assert hpl.num_clusterings == 2 and hpl.assignment_1.is_cuda
