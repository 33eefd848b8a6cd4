"""CalibrateProxy (CP): queues, composite similarity, calibration, state, errors.

The oracles are independent of the implementation: a ``collections.deque(maxlen=M)`` per class
for the FIFO queues, per-pair loops with geoopt's ``PoincareBall.dist`` (or the cosine of two
vectors) for the composite similarity and the calibration term.
"""

from __future__ import annotations

import io
from collections import deque

import pytest
import torch
import torch.nn.functional as F

from conftest import requires_cuda
from hyperdml import geometry
from hyperdml.losses import CHEST, CalibrateProxy, HypHCLoss, ProxyAnchor, ProxyNCA, SoftTriple
from hyperdml.ops import poincare_cdist
from hyperdml.spaces import EuclideanSpace, PoincareSpace

C, D = 5, 6

BASES = {
    "pa": lambda sp: ProxyAnchor(C, D, space=sp),
    "pa-k3": lambda sp: ProxyAnchor(C, D, proxies_per_class=3, space=sp),
    "nca": lambda sp: ProxyNCA(C, D, space=sp),
    "soft": lambda sp: SoftTriple(C, D, centers_per_class=4, space=sp),
    "soft-tau": lambda sp: SoftTriple(C, D, centers_per_class=3, tau=0.2, space=sp),  # with a regulariser
}
SPACES = {
    "euclidean": EuclideanSpace,
    "poincare": PoincareSpace,
    "tangent": lambda: PoincareSpace(proxy_param="tangent"),
}
COMBOS = [(b, s) for b in BASES for s in SPACES]
IDS = [f"{b}-{s}" for b, s in COMBOS]


def make(base_name="pa", space_name="euclidean", dtype=torch.float64, **kw):
    torch.manual_seed(0)
    base = BASES[base_name](SPACES[space_name]()).to(dtype)
    return CalibrateProxy(base, **kw).to(dtype)


def batch(n, seed, dtype=torch.float64, classes=C):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, D, generator=g, dtype=dtype), torch.randint(classes, (n,), generator=g)


# -- FIFO queues --------------------------------------------------------------------------------


@pytest.mark.parametrize("m", [1, 3, 7])
def test_fifo_matches_deque(m):
    """Random batches (some with more than M samples of one class, some classes absent)."""
    cp = make(queue_size=m)
    oracle = [deque(maxlen=m) for _ in range(C)]
    g = torch.Generator().manual_seed(1)
    for step in range(25):
        n = int(torch.randint(1, 20, (1,), generator=g))
        labels = torch.randint(0, 3 if step % 4 == 0 else C, (n,), generator=g)  # crowded batches too
        points = torch.randn(n, D, generator=g, dtype=torch.float64)
        cp.enqueue(points, labels)
        for p, y in zip(points, labels.tolist()):
            oracle[y].append(p)
        for c in range(C):
            want = torch.stack(list(oracle[c])) if oracle[c] else torch.empty(0, D, dtype=torch.float64)
            got = cp.class_queue(c)
            assert got.shape == want.shape
            assert torch.equal(got, want), (step, c)
            assert int(cp.queue_count[c]) == len(oracle[c]) <= m


def test_capacity_and_no_reallocation():
    cp = make(queue_size=4)
    ptr = cp.queue.data_ptr()
    shape = cp.queue.shape
    for s in range(10):
        cp.enqueue(*batch(30, s))
    assert cp.queue.shape == shape == (C, 4, D)
    assert cp.queue.data_ptr() == ptr
    assert cp.queue_count.tolist() == [4] * C


def test_class_with_more_than_m_in_one_batch_keeps_last_m():
    cp = make(queue_size=3)
    cp.enqueue(torch.full((2, D), -1.0, dtype=torch.float64), torch.tensor([2, 2]))
    points = torch.arange(8, dtype=torch.float64)[:, None].repeat(1, D)
    cp.enqueue(points, torch.full((8,), 2))
    assert cp.class_queue(2)[:, 0].tolist() == [5.0, 6.0, 7.0]
    assert cp.class_queue(0).shape == (0, D)


@pytest.mark.parametrize("space_name", ["euclidean", "poincare"])
def test_forward_enqueues_space_points_in_training_mode_only(space_name):
    cp = make(space_name=space_name, start_epoch=0)
    x, y = batch(16, 0)
    cp.eval()
    cp(x, y)
    assert int(cp.queue_count.sum()) == 0
    cp.train()
    cp(x, y)
    assert int(cp.queue_count.sum()) == 16
    points = cp.base.embed(x)
    for c in range(C):
        assert torch.equal(cp.class_queue(c), points[y == c])
    if space_name == "poincare":
        assert cp.queue.norm(dim=-1).max() < 1 / cp.space.c**0.5


# -- state ----------------------------------------------------------------------------------------


def test_state_dict_round_trip():
    cp = make("soft", "poincare", start_epoch=2, queue_size=4)
    for s in range(5):
        cp(*batch(12, s))
    cp.set_epoch(3)
    buf = io.BytesIO()
    torch.save(cp.state_dict(), buf)
    buf.seek(0)
    state = torch.load(buf, weights_only=True)
    assert {"queue", "queue_ptr", "queue_count", "_extra_state"} <= set(state)

    torch.manual_seed(123)  # different proxies before loading
    other = CalibrateProxy(SoftTriple(C, D, centers_per_class=4, space=PoincareSpace()), queue_size=4, start_epoch=2)
    other = other.double()
    other.load_state_dict(state)
    assert other.epoch == 3 and other.active
    for c in range(C):
        assert torch.equal(other.class_queue(c), cp.class_queue(c))
    x, y = batch(8, 99)
    cp.eval(), other.eval()
    assert torch.equal(cp(x, y), other(x, y))


def test_dtype_move():
    cp = make(queue_size=3, dtype=torch.float32)
    cp.enqueue(*batch(10, 0, dtype=torch.float32))
    before = [cp.class_queue(c) for c in range(C)]
    cp = cp.to(torch.float64)
    assert cp.queue.dtype == torch.float64 and cp.queue_ptr.dtype == torch.long
    for c in range(C):
        assert torch.equal(cp.class_queue(c), before[c].double())


@pytest.mark.cuda
@requires_cuda
@pytest.mark.parametrize("space_name", ["euclidean", "poincare"])
def test_cuda_move(space_name):
    cp = make("pa", space_name, queue_size=3, start_epoch=1, dtype=torch.float32)
    cp.enqueue(*batch(10, 0, dtype=torch.float32))
    cp = cp.to("cuda")
    assert cp.queue.is_cuda and cp.queue_ptr.is_cuda and cp.queue_count.is_cuda
    cp.set_epoch(1)
    x, y = batch(10, 1, dtype=torch.float32)
    x = x.cuda().requires_grad_()
    loss = cp(x, y)  # CPU labels are moved like the base losses do
    loss.backward()
    assert torch.isfinite(x.grad).all()
    assert int(cp.queue_count.sum()) == 20


# -- equality with the base before start_epoch ------------------------------------------------------


@pytest.mark.parametrize("base_name,space_name", COMBOS, ids=IDS)
def test_equals_base_before_start_epoch(base_name, space_name):
    cp = make(base_name, space_name, start_epoch=3, queue_size=5)
    for epoch in range(3):
        cp.set_epoch(epoch)
        x, y = batch(20, epoch)
        x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
        ours = cp(x1, y)
        (g_ours,) = torch.autograd.grad(ours, x1)
        ref = cp.base(x2, y)
        (g_ref,) = torch.autograd.grad(ref, x2)
        assert torch.equal(ours, ref) and torch.equal(g_ours, g_ref)
    seen = sum(torch.bincount(batch(20, e)[1], minlength=C) for e in range(3))
    assert torch.equal(cp.queue_count, seen.clamp_max(5))  # queues fill before start_epoch
    cp.set_epoch(3)
    x, y = batch(20, 7)
    assert not torch.equal(cp(x, y), cp.base(x, y))


# -- composite similarity and calibration: loop oracles ---------------------------------------------


def pair_similarity(space, a, b):
    """Similarity of two points, from first principles (cosine, or geoopt's geodesic distance)."""
    if isinstance(space, PoincareSpace):
        d = geometry.ball(space.c).dist(a, b)
        return space.sim_offset - space.sim_scale * d
    return torch.dot(a, b) / (a.norm() * b.norm())


def pair_sq_distance(space, p, q):
    if isinstance(space, PoincareSpace):
        return geometry.ball(space.c).dist(p, q) ** 2
    return ((p / p.norm() - q / q.norm()) ** 2).sum()


def class_similarity_by_hand(loss, x):
    """``(B, C)``: Σ_k softmax_k(s_k / T)·s_k over each class's K proxies, pair by pair."""
    space, k = loss.space, loss.proxies_per_class
    points, proxies = loss.embed(x), loss.proxy_points()
    t = getattr(loss, "gamma", 1.0) if isinstance(loss, SoftTriple) else 1.0
    out = torch.empty(x.shape[0], loss.num_classes, dtype=x.dtype)
    for i in range(x.shape[0]):
        for c in range(loss.num_classes):
            s = torch.stack([pair_similarity(space, points[i], proxies[c * k + j]) for j in range(k)])
            out[i, c] = (torch.softmax(s / t, 0) * s).sum() if k > 1 else s[0]
    return out


@pytest.mark.parametrize("base_name,space_name", COMBOS, ids=IDS)
def test_composite_similarity_and_loss_match_loops(base_name, space_name):
    w = 0.8  # not the default 0.5: the weight must be applied
    cp = make(base_name, space_name, start_epoch=1, queue_size=3, calibration_weight=0.7, center_weight=w)
    cp.enqueue(*batch(9, 0, classes=C - 1))  # class C-1 stays empty: proxy term only
    cp.set_epoch(1)
    x, y = batch(6, 1)
    x.requires_grad_()
    space, base = cp.space, cp.base
    points = base.embed(x)
    want = class_similarity_by_hand(base, x)
    filled = [c for c in range(C) if len(cp.class_queue(c))]
    assert filled == list(range(C - 1))
    for i in range(x.shape[0]):
        g = {c: torch.stack([pair_similarity(space, points[i], q) for q in cp.class_queue(c)]).mean() for c in filled}
        g_mean = sum(g.values()) / len(g)
        for c in filled:  # s = s_proxy + w·(g − mean over the filled classes of g); empty class: s_proxy
            want[i, c] = want[i, c] + w * (g[c] - g_mean)
    got = cp.composite_similarity(x)
    torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-9)

    k = base.proxies_per_class
    proxies = base.proxy_points()
    pairs = [(proxies[c * k + j], q) for c in range(C) for j in range(k) for q in cp.class_queue(c)]
    cal = 0.7 * torch.stack([pair_sq_distance(space, p, q) for p, q in pairs]).mean()
    torch.testing.assert_close(cp.calibration(), cal, rtol=1e-9, atol=1e-9)

    reg = base.regularizer()
    total = base.loss_from_similarity(want, y) + cal + (0 if reg is None else reg)
    cp.eval()  # no enqueue: the value uses the current queues either way
    ours = cp(x, y)
    torch.testing.assert_close(ours, total, rtol=1e-9, atol=1e-9)
    params = [x, base.proxies]
    for g_ours, g_want in zip(torch.autograd.grad(ours, params), torch.autograd.grad(total, params)):
        torch.testing.assert_close(g_ours, g_want, rtol=1e-7, atol=1e-9)
    assert set(cp.parts) == {"base", "calibration"}


@pytest.mark.parametrize("space_name", ["euclidean", "poincare"])
def test_loss_of_a_step_uses_the_queues_before_that_step(space_name):
    """The batch is enqueued after its loss is computed; backward works after the enqueue."""
    cp = make("pa", space_name, start_epoch=0, queue_size=4)
    h0, y0 = batch(15, 0)
    cp.enqueue(cp.base.embed(h0), y0)
    x, y = batch(10, 1)
    cp.eval()
    want = cp(x, y)
    cp.train()
    xg = x.clone().requires_grad_()
    got = cp(xg, y)
    seen = torch.bincount(batch(15, 0)[1], minlength=C) + torch.bincount(y, minlength=C)
    assert torch.equal(cp.queue_count, seen.clamp_max(4))  # the batch was enqueued
    torch.testing.assert_close(got, want, rtol=0, atol=0)
    got.backward()  # the queue copy kept by autograd is not the buffer the enqueue wrote into
    assert torch.isfinite(xg.grad).all() and torch.isfinite(cp.base.proxies.grad).all()


def test_composite_similarity_hand_computed_example():
    """2-d cosine example worked out by hand (center_weight 0.5, three classes, class 2 empty)."""
    base = ProxyAnchor(3, 2).double()
    with torch.no_grad():
        base.proxies.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]]))
    cp = CalibrateProxy(base, queue_size=2, start_epoch=0, center_weight=0.5).double()
    # class 0's queue: (1, 0), (0, 2) → mean cosine with x = (1, 1)/√2 is (1/√2 + 1/√2)/2 = 1/√2
    # class 1's queue: (0, -3)        → cosine −1/√2;  class 2: empty
    cp.enqueue(torch.tensor([[1.0, 0.0], [0.0, 2.0], [0.0, -3.0]], dtype=torch.float64), torch.tensor([0, 0, 1]))
    x = torch.tensor([[1.0, 1.0]], dtype=torch.float64)
    r = 2**-0.5
    # proxy term: cos(x, p) = (r, r, −r); global: (r, −r), their mean 0 → centred (r, −r), class 2: 0
    want = torch.tensor([[r + 0.5 * r, r - 0.5 * r, -r]], dtype=torch.float64)
    torch.testing.assert_close(cp.composite_similarity(x), want, rtol=0, atol=1e-12)
    cp.center_weight = 0.0
    torch.testing.assert_close(cp.composite_similarity(x), torch.tensor([[r, r, -r]], dtype=torch.float64),
                               rtol=0, atol=1e-12)


def test_common_offset_of_the_queues_does_not_shift_the_similarities():
    """The cause of CP+PA's collapse: queued embeddings in a narrow cone give every class a
    global similarity ≈ +0.9; the centred term removes that shared offset (rows have mean 0 over
    the classes with a queue), so the composite stays within ``center_weight·2`` of the proxy term."""
    torch.manual_seed(0)
    cp = make("pa", "euclidean", start_epoch=0, queue_size=8, center_weight=0.5)
    axis = torch.randn(D, dtype=torch.float64)
    queued = axis * 5 + 0.5 * torch.randn(8 * C, D, dtype=torch.float64)  # all classes near one axis
    cp.enqueue(queued, torch.arange(C).repeat(8))
    x = axis * 5 + 0.5 * torch.randn(10, D, dtype=torch.float64)
    g = cp.global_similarity(x)
    assert g.min() > 0.8  # the shared offset the old plain sum added to every class
    centred = cp.centred_global_similarity(x)
    torch.testing.assert_close(centred.mean(dim=1), torch.zeros(10, dtype=torch.float64), rtol=0, atol=1e-12)
    torch.testing.assert_close(centred, g - g.mean(dim=1, keepdim=True), rtol=0, atol=1e-12)
    diff = cp.composite_similarity(x) - cp.base.class_similarity(x)
    assert diff.abs().max() < 0.1 and diff.abs().max() <= 2 * 0.5


def test_empty_queues_give_proxy_term_and_zero_calibration():
    cp = make("nca", "poincare", start_epoch=0)
    x, y = batch(5, 0)
    torch.testing.assert_close(cp.composite_similarity(x), cp.base.class_similarity(x), rtol=0, atol=0)
    assert cp.calibration().item() == 0.0


@pytest.mark.parametrize("space_name", ["euclidean", "poincare", "tangent"])
def test_calibration_gradient_moves_proxy_toward_class_mean(space_name):
    cp = make("pa-k3", space_name, start_epoch=0, queue_size=6, calibration_weight=1.0)
    g = torch.Generator().manual_seed(3)
    # class 2's queue: tight cloud around a centre (a point of the space)
    centre_tangent = torch.randn(D, generator=g, dtype=torch.float64)
    head = centre_tangent + 0.05 * torch.randn(6, D, generator=g, dtype=torch.float64)
    cp.enqueue(cp.base.embed(head), torch.full((6,), 2))
    centre = cp.base.embed(centre_tangent[None])[0]
    cal = cp.calibration()
    cal.backward()
    grad = cp.base.proxies.grad
    assert grad[:6].abs().max() == 0 and grad[9:].abs().max() == 0  # only class 2's proxies (rows 6-8)

    def closeness(points):
        if cp.space.kind == "poincare":
            return -poincare_cdist(points, centre[None], cp.space.c)[:, 0]
        return F.normalize(points, dim=1) @ F.normalize(centre, dim=0)

    before = closeness(cp.proxy_points()[6:9]).detach()
    with torch.no_grad():
        cp.base.proxies[6:9] -= 1e-3 * grad[6:9]
    after = closeness(cp.proxy_points()[6:9])
    assert (after > before).all(), (before, after)


def test_poincare_sq_distance_matrix_matches_cdist():
    """The batched squared distances CP's calibration takes from the space (geometry.sq_dist_matrix)."""
    c = 0.1
    space = PoincareSpace(c=c)
    g = torch.Generator().manual_seed(0)
    x = space.to_space(torch.randn(3, 4, D, generator=g, dtype=torch.float64) * 2)
    y = space.to_space(torch.randn(3, 5, D, generator=g, dtype=torch.float64) * 2)
    want = torch.stack([poincare_cdist(x[i], y[i], c) ** 2 for i in range(3)])
    torch.testing.assert_close(space.sq_distance_matrix(x, y), want, rtol=1e-10, atol=1e-10)
    # gradient of d² at coincident points is finite (zero)
    xg = x[:, :1].clone().requires_grad_()
    space.sq_distance_matrix(xg, x[:, :1]).sum().backward()
    assert torch.isfinite(xg.grad).all() and xg.grad.abs().max() < 1e-6


# -- errors ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "base",
    [torch.nn.Linear(3, 3), CHEST(4, 6, 5, centers_per_class=2), HypHCLoss(), "ProxyAnchor"],
    ids=["module", "chest", "hyphc", "string"],
)
def test_base_without_proxies_is_a_type_error(base):
    with pytest.raises(TypeError, match="proxy loss"):
        CalibrateProxy(base)


@pytest.mark.parametrize("kw", [{"queue_size": 0}, {"queue_size": -3}, {"queue_size": 2.5}, {"queue_size": True}])
def test_bad_queue_size(kw):
    with pytest.raises(ValueError, match="queue_size"):
        CalibrateProxy(ProxyAnchor(C, D), **kw)


@pytest.mark.parametrize(
    "kw,match",
    [({"start_epoch": -1}, "start_epoch"), ({"calibration_weight": -1.0}, "calibration_weight"),
     ({"calibration_weight": float("nan")}, "calibration_weight"), ({"center_weight": -0.5}, "center_weight"),
     ({"center_weight": float("inf")}, "center_weight"), ({"center_weight": True}, "center_weight")],
)  # fmt: skip
def test_bad_hyperparameters(kw, match):
    with pytest.raises(ValueError, match=match):
        CalibrateProxy(ProxyAnchor(C, D), **kw)


def test_bad_labels_and_epoch_and_class_index():
    cp = make()
    x, _ = batch(4, 0)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 5\)"):
        cp(x, torch.tensor([0, 1, 5, 2]))
    with pytest.raises(ValueError, match=r"labels must lie"):
        cp(x, torch.tensor([0, -1, 2, 2]))
    assert int(cp.queue_count.sum()) == 0  # a rejected batch enqueues nothing
    with pytest.raises(TypeError, match="integer"):
        cp(x, torch.zeros(4))
    with pytest.raises(ValueError, match="epoch"):
        cp.set_epoch(-1)
    with pytest.raises(ValueError, match="class index"):
        cp.class_queue(C)
    with pytest.raises(ValueError, match="enqueue needs"):
        cp.enqueue(torch.zeros(3, D + 1), torch.zeros(3, dtype=torch.long))


def test_wrapper_exposes_the_base():
    base = SoftTriple(C, D, centers_per_class=2, space=PoincareSpace())
    cp = CalibrateProxy(base)
    assert cp.base is base and cp.num_classes == C and cp.embedding_size == D and cp.proxies_per_class == 2
    assert cp.space is base.space and cp.base.proxies is base.proxies
    assert [n for n, _ in cp.named_parameters()] == ["base.proxies"]
    cp.check_values = False
    assert base.check_values is False
    assert "queue_size=30" in repr(cp) and "start_epoch=12" in repr(cp) and "center_weight=0.5" in repr(cp)
