"""The spaces own the geometry: inputs as tangent vectors or ball points, serialisation, one
curvature default, retrieval through the space, and the set statistics Calibrate Proxy uses.

Oracles: geoopt's ``PoincareBall`` (maps and distances), brute-force float64 kNN by geoopt's
distance, explicit loops for the set statistics.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import warnings

import numpy as np
import pytest
import torch

import hyperdml
from hyperdml.geometry import geoopt
from hyperdml.losses import CHEST, ProxyAnchor, ProxyNCA, SoftTriple
from hyperdml.losses.collapse import CollapseMonitor
from hyperdml.metrics import evaluate_retrieval, knn_search
from hyperdml.spaces import DEFAULT_CURVATURE, EuclideanSpace, PoincareSpace, Space, space_from_config

LOSSES = {
    "anchor": lambda sp: ProxyAnchor(5, 6, space=sp),
    "nca_k2": lambda sp: ProxyNCA(5, 6, proxies_per_class=2, space=sp),
    "soft": lambda sp: SoftTriple(5, 6, centers_per_class=3, tau=0.2, space=sp),
}


def _tangent_and_ball(c, clip_r, seed=0):
    g = torch.Generator().manual_seed(seed)
    h = torch.randn(12, 6, generator=g, dtype=torch.float64) * 1.5
    ball = geoopt.PoincareBall(c=torch.tensor(c, dtype=torch.float64))  # c in float64: exact float64 maps
    return h, ball.expmap0(h * torch.clamp(clip_r / h.norm(dim=1, keepdim=True), max=1.0))


@pytest.mark.parametrize("name", sorted(LOSSES))
@pytest.mark.parametrize("c", [0.1, 1.7])
def test_ball_inputs_give_the_loss_of_tangent_inputs_mapped_by_expmap0(name, c):
    labels = torch.tensor([0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 0, 1])
    h, x = _tangent_and_ball(c, clip_r=2.3)
    losses, grads = [], []
    for inputs, emb in (("tangent", h), ("ball", x)):
        torch.manual_seed(3)
        loss = LOSSES[name](PoincareSpace(c=c, inputs=inputs)).double()
        value = loss(emb, labels)
        value.backward()
        losses.append(value.detach())
        grads.append(loss.proxies.grad)
    torch.testing.assert_close(losses[0], losses[1], rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-8, atol=1e-10)


def test_ball_inputs_are_used_as_they_are_and_checked():
    sp = PoincareSpace(c=0.5, inputs="ball")
    x = geoopt.PoincareBall(c=0.5).expmap0(torch.randn(7, 3, dtype=torch.float64) * 3)  # deep: no clipping
    assert torch.equal(sp.to_space(x), x)
    outside = x.clone()
    outside[2] = outside[2] / outside[2].norm() * (0.5**-0.5 + 1e-3)
    with pytest.raises(ValueError, match="outside the Poincaré ball"):
        sp.to_space(outside)
    loss = ProxyAnchor(3, 3, space=sp)
    with pytest.raises(ValueError, match="inputs='ball'"):
        loss(outside, torch.tensor([0, 1, 2, 0, 1, 2, 0]))
    with pytest.raises(ValueError, match="NaN"):
        sp.to_space(torch.full((2, 3), float("nan")))
    with pytest.raises(ValueError, match="inputs"):
        PoincareSpace(inputs="points")
    # a geoopt ManifoldTensor (hyptorch / geoopt models) goes in as it is
    mt = geoopt.ManifoldTensor(x, manifold=geoopt.PoincareBall(c=0.5))
    assert torch.allclose(loss(mt, torch.tensor([0, 1, 2, 0, 1, 2, 0])), loss(x, torch.tensor([0, 1, 2, 0, 1, 2, 0])))


def test_tangent_inputs_are_clipped_not_checked_against_the_ball():
    sp = PoincareSpace(c=1.0, clip_r=2.3)
    h = torch.tensor([[30.0, 40.0], [0.3, 0.4]], dtype=torch.float64)  # far "outside" as raw vectors
    x = sp.to_space(h)
    d0 = geoopt.PoincareBall(c=1.0).dist0(x)
    torch.testing.assert_close(d0, torch.tensor([4.6, 1.0], dtype=torch.float64))


@pytest.mark.parametrize("space", [EuclideanSpace(), PoincareSpace(), PoincareSpace(0.3, None, "tangent", 0.5, 0.2),
                                   PoincareSpace(2.0, 1.1, inputs="ball")], ids=repr)
def test_space_config_round_trip(space):
    conf = space.config()
    assert isinstance(conf, dict) and conf["kind"] == space.kind
    again = space_from_config(conf)
    assert type(again) is type(space) and again == space and again.config() == conf
    import json

    assert space_from_config(json.loads(json.dumps(conf))) == space  # plain data, JSON-able


def test_space_config_errors():
    with pytest.raises(ValueError, match="unknown space kind"):
        space_from_config({"kind": "sphere"})
    with pytest.raises(ValueError, match="does not fit"):
        space_from_config({"kind": "poincare", "radius": 3})
    with pytest.raises(ValueError, match="kind"):
        space_from_config({"c": 0.1})
    assert PoincareSpace(0.1) != PoincareSpace(0.2) and PoincareSpace() != EuclideanSpace()


def _public_callables():
    """Every public function, class and method of the installed package (``hyperdml.*``)."""
    seen = set()
    for info in pkgutil.walk_packages(hyperdml.__path__, "hyperdml."):
        if info.name.split(".")[-1].startswith("_") or ".commands" in info.name or ".bench" in info.name:
            continue
        try:
            module = importlib.import_module(info.name)
        except ImportError as exc:  # a module of an optional extra ([pml], [vit]) without it installed
            if getattr(exc, "name", "") in ("pytorch_metric_learning", "timm"):
                continue
            raise
        for name, obj in vars(module).items():
            if name.startswith("_") or getattr(obj, "__module__", "").split(".")[0] != "hyperdml" or id(obj) in seen:
                continue
            seen.add(id(obj))
            if inspect.isclass(obj):
                yield f"{obj.__module__}.{name}", obj
                for mname, meth in vars(obj).items():
                    if callable(meth) and (not mname.startswith("_") or mname == "__init__"):
                        yield f"{obj.__module__}.{name}.{mname}", meth
            elif inspect.isfunction(obj):
                yield f"{obj.__module__}.{name}", obj


def test_one_curvature_default_in_the_whole_package():
    """Every public callable that takes ``c`` requires it or defaults to PoincareSpace's (``None`` is
    "not given": those functions need no curvature unless told to work in a ball, and then raise,
    see test_poincare_metric_needs_the_curvature)."""
    assert inspect.signature(PoincareSpace).parameters["c"].default == DEFAULT_CURVATURE == 0.1
    checked, wrong = 0, []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for qualname, obj in _public_callables():
            try:
                params = inspect.signature(obj).parameters
            except (TypeError, ValueError):
                continue
            if "c" in params:
                checked += 1
                default = params["c"].default
                if default not in (inspect.Parameter.empty, None) and default != DEFAULT_CURVATURE:
                    wrong.append(f"{qualname}(c={default!r})")
    assert checked >= 15, checked  # the walk reached the geometry, ops, hierarchy, losses, metrics
    assert not wrong, f"a second curvature default: {wrong}"


def _brute_force_knn(x: torch.Tensor, k: int, c: float) -> np.ndarray:
    d = geoopt.PoincareBall(c=c).dist(x[:, None], x[None])
    d.fill_diagonal_(float("inf"))
    return torch.sort(d, dim=1, stable=True).indices[:, :k].numpy()


@pytest.mark.parametrize("c", [0.1, 2.0])
def test_retrieval_with_a_space_equals_brute_force_hyperbolic_knn(c):
    g = torch.Generator().manual_seed(4)
    sp = PoincareSpace(c=c, clip_r=2.3)
    x = sp.to_space(torch.randn(300, 5, generator=g, dtype=torch.float64) * 1.2)
    y = torch.randint(0, 7, (300,), generator=g)
    nn = _brute_force_knn(x, 299, c)
    assert np.array_equal(knn_search(x.numpy(), x.numpy(), 12, space=sp, exclude_self=True), nn[:, :12])
    out = evaluate_retrieval(x, y, ks=(1, 4), space=sp, nmi=False)
    hit = y.numpy()[nn] == y.numpy()[:, None]
    assert out["recall@1"] == pytest.approx(hit[:, 0].mean())
    assert out["recall@4"] == pytest.approx(hit[:, :4].any(1).mean())
    r = np.bincount(y.numpy())[y.numpy()] - 1
    assert out["r_precision"] == pytest.approx(np.mean([hit[i, : r[i]].mean() for i in range(300)]))
    # the same points ranked in a ball of another curvature give other neighbours
    other = knn_search(x.numpy(), x.numpy(), 12, metric="cosine", exclude_self=True)
    assert not np.array_equal(other, nn[:, :12])


def test_poincare_metric_needs_the_curvature():
    x = PoincareSpace().to_space(torch.randn(20, 3))
    y = torch.arange(20) % 4
    with pytest.raises(ValueError, match="needs the ball's curvature"):
        evaluate_retrieval(x, y, metric="poincare")
    with pytest.raises(ValueError, match="needs the ball's curvature"):
        knn_search(x.numpy(), x.numpy(), 3, metric="poincare")
    with pytest.raises(ValueError, match="not both"):
        evaluate_retrieval(x, y, space=PoincareSpace(), c=0.1)
    with pytest.raises(ValueError, match="does not fit"):
        evaluate_retrieval(x, y, metric="cosine", space=PoincareSpace())
    with pytest.raises(ValueError, match="outside the Poincaré ball"):
        evaluate_retrieval(x * 10, y, space=PoincareSpace())
    a = evaluate_retrieval(x, y, space=PoincareSpace(c=0.1), nmi=False)
    b = evaluate_retrieval(x, y, metric="poincare", c=0.1, nmi=False)
    assert a == b


def _set_statistics_oracle(space, x, sets, counts, points):
    """Loops over the valid members of each set with the space's own similarity / distance."""
    c_sets = sets.shape[0]
    sim = torch.zeros(x.shape[0], c_sets, dtype=torch.float64)
    msd = torch.zeros(points.shape[0], points.shape[1], dtype=torch.float64)
    for c in range(c_sets):
        n = int(counts[c])
        if n == 0:
            continue
        members = sets[c, :n]
        sim[:, c] = space.similarity(x, members).mean(dim=1)
        for k in range(points.shape[1]):
            msd[c, k] = (space.distance(points[c, k : k + 1], members) ** 2).mean()
    return sim, msd


@pytest.mark.parametrize("space", [EuclideanSpace(), PoincareSpace(c=0.3)], ids=lambda s: s.kind)
def test_set_statistics_match_loops(space):
    g = torch.Generator().manual_seed(5)
    sets = space.to_space(torch.randn(4, 6, 3, generator=g, dtype=torch.float64).view(24, 3)).view(4, 6, 3)
    counts = torch.tensor([6, 2, 0, 5])
    x = space.to_space(torch.randn(9, 3, generator=g, dtype=torch.float64))
    points = space.to_space(torch.randn(8, 3, generator=g, dtype=torch.float64)).view(4, 2, 3)
    summary = space.summarize_sets(sets, counts)
    want_sim, want_msd = _set_statistics_oracle(space, x, sets, counts, points)
    torch.testing.assert_close(space.mean_similarity(x, summary), want_sim, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(space.mean_sq_distance(points, summary), want_msd, rtol=1e-9, atol=1e-9)


def test_class_mean_and_features():
    sp = PoincareSpace(c=0.4)
    x = sp.to_space(torch.randn(3, 4, dtype=torch.float64))
    same = x[:, None].expand(3, 5, 4)
    torch.testing.assert_close(sp.class_mean(same), x)  # the mean of identical points is the point
    torch.testing.assert_close(sp.features(x), geoopt.PoincareBall(c=0.4).logmap0(x))
    e = EuclideanSpace()
    v = torch.randn(3, 5, 4, dtype=torch.float64)
    torch.testing.assert_close(e.class_mean(v), torch.nn.functional.normalize(v, dim=2).mean(1))
    assert isinstance(sp, Space) and sp.label == "hyperbolic" and e.label == "euclidean"


def test_huge_embeddings_keep_their_direction():
    """float32 rows of norm ~1e20 overflow when squared: the spaces scale them first."""
    big = torch.tensor([[3e19, 4e19], [-4e19, 3e19]], dtype=torch.float32)
    unit = torch.tensor([[0.6, 0.8], [-0.8, 0.6]])
    torch.testing.assert_close(EuclideanSpace().features(big), unit)
    x = PoincareSpace(c=0.1, clip_r=2.3).to_space(big)
    torch.testing.assert_close(x / x.norm(dim=1, keepdim=True), unit)
    assert torch.allclose(x.norm(dim=1), torch.full((2,), float(np.tanh(0.1**0.5 * 2.3) / 0.1**0.5)))
    loss = ProxyAnchor(2, 2)
    labels = torch.tensor([0, 1])
    torch.testing.assert_close(loss(big, labels), loss(unit, labels))


def _collapsed(b=16, d=8, seed=0):
    """Head outputs far past clip_r, all pointing nearly one way (a stalled linear head)."""
    g = torch.Generator().manual_seed(seed)
    return 30 * torch.ones(b, d) + 0.1 * torch.randn(b, d, generator=g)


def test_collapse_stats():
    sp = PoincareSpace(c=0.1, clip_r=2.3)
    healthy = torch.randn(64, 8) * 30  # on the clipping sphere, many directions
    f, r = sp.collapse_stats(healthy).tolist()
    assert f == 1.0 and r < 0.5
    f, r = sp.collapse_stats(_collapsed()).tolist()
    assert f == 1.0 and r > 0.999
    assert sp.saturation(healthy) == 1.0 and sp.saturation(torch.randn(16, 8) * 0.3) == 0.0
    ball = PoincareSpace(c=0.1, clip_r=2.3, inputs="ball")  # ball points keep the directions
    torch.testing.assert_close(ball.collapse_stats(sp.to_space(_collapsed())), sp.collapse_stats(_collapsed()))
    assert EuclideanSpace().collapse_stats(healthy) is None and EuclideanSpace().saturation(healthy) is None


def _calls(loss, batch, n, labels):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(n):
            loss(batch, labels)
    return [w for w in caught if "clipping sphere" in str(w.message)]


def test_collapse_monitor_reads_its_count_every_check_every_calls():
    sp = PoincareSpace(c=0.1, clip_r=2.3)
    monitor = CollapseMonitor()
    monitor.calls, monitor.check_every = 45, 10  # 45 in a row are seen at the read of call 50
    found = [monitor.update(sp, _collapsed()) for _ in range(60)]
    assert [i + 1 for i, f in enumerate(found) if f is not None] == [50] and monitor.reported
    f, r = found[49]
    assert f == 1.0 and r > 0.999
    assert CollapseMonitor().update(EuclideanSpace(), _collapsed()) is None


def test_healthy_saturated_batches_never_warn():
    loss = ProxyAnchor(4, 8, space=PoincareSpace(c=0.1, clip_r=2.3))
    labels = torch.arange(16) % 4
    assert _calls(loss, torch.randn(16, 8) * 30, 120, labels) == []  # all on the sphere, many directions
    assert _calls(loss, torch.randn(16, 8) * 0.3, 60, labels) == []  # inside the clipping radius


def test_collapsed_batches_warn_once_after_the_threshold():
    calls = CollapseMonitor.calls
    labels = torch.arange(16) % 4
    loss = ProxyAnchor(4, 8, space=PoincareSpace(c=0.1, clip_r=2.3))
    assert _calls(loss, _collapsed(), calls - 1, labels) == []  # fewer calls in a row: no warning
    assert _calls(loss, torch.randn(16, 8) * 30, 1, labels) == []  # a healthy batch restarts the count
    assert _calls(loss, _collapsed(), calls - 1, labels) == []
    (w,) = _calls(loss, _collapsed(), 2 * calls, labels)  # exactly once per loss
    assert "HyperbolicHead" in str(w.message) and "stalled" in str(w.message)
    fresh = ProxyAnchor(4, 8, space=PoincareSpace(c=0.1, clip_r=2.3))
    assert len(_calls(fresh, _collapsed(), calls, labels)) == 1  # at the threshold count
    evaluating = ProxyAnchor(4, 8, space=PoincareSpace(c=0.1, clip_r=2.3)).eval()
    assert _calls(evaluating, _collapsed(), 2 * calls, labels) == []  # not in eval mode
    with torch.no_grad():
        assert _calls(ProxyAnchor(4, 8, space=PoincareSpace(c=0.1, clip_r=2.3)), _collapsed(), 2 * calls, labels) == []
    assert _calls(ProxyAnchor(4, 8), _collapsed(), 2 * calls, labels) == []  # the cosine has no clipping sphere
    chest = CHEST(4, 8, 8, centers_per_class=2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(calls):
            chest(torch.randn(16, 8), _collapsed(), labels)
    assert [str(w.message) for w in caught if "clipping sphere" in str(w.message) and "z_h" in str(w.message)]


