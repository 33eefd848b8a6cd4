"""Euclidean proxy losses against pytorch-metric-learning 2.9 (the oracle), and input checks."""

from __future__ import annotations

import zlib

import pytest
import torch

from hyperdml.losses import ProxyAnchor, ProxyLoss, ProxyNCA, SoftTriple
from hyperdml.spaces import EuclideanSpace, PoincareSpace

pml_losses = pytest.importorskip("pytorch_metric_learning.losses")

C, D = 6, 5
RTOL = 1e-6


def _pair(kind: str, **hp):
    """Our loss and PML's with the same proxies, float64."""
    if kind == "anchor":
        ours, theirs = ProxyAnchor(C, D, **hp), pml_losses.ProxyAnchorLoss(C, D, **hp)
        ours.double()
        theirs.proxies.data = ours.proxies.detach().clone()
        return ours, theirs, lambda: theirs.proxies
    if kind == "nca":
        ours, theirs = ProxyNCA(C, D, **hp), pml_losses.ProxyNCALoss(C, D, **hp)
        ours.double()
        theirs.proxies.data = ours.proxies.detach().clone()
        return ours, theirs, lambda: theirs.proxies
    ours, theirs = SoftTriple(C, D, **hp), pml_losses.SoftTripleLoss(C, D, **hp)
    ours.double()
    theirs.fc.data = ours.proxies.detach().t().clone()  # PML's fc is (D, C·K), class-major columns
    return ours, theirs, lambda: theirs.fc.t()


def _labels(case: str, gen: torch.Generator) -> torch.Tensor:
    if case == "all_classes":
        return torch.cat([torch.arange(C), torch.randint(C, (10,), generator=gen)])
    if case == "some_absent":  # classes 0, 2 and 5 are absent
        return torch.tensor([1, 1, 3, 4, 4, 4, 3, 1])
    if case == "one_class":  # every sample of one class: no negatives in the batch for it
        return torch.tensor([2, 2, 2])
    return torch.tensor([4])  # batch of one


CONFIGS = [
    ("anchor", {}),
    ("anchor", {"margin": 0.25, "alpha": 16}),
    ("nca", {}),
    ("nca", {"softmax_scale": 5}),
    ("soft", {}),
    ("soft", {"centers_per_class": 3, "la": 10, "gamma": 0.5, "margin": 0.2}),
]


@pytest.mark.parametrize("case", ["all_classes", "some_absent", "one_class", "batch_of_one"])
@pytest.mark.parametrize("kind,hp", CONFIGS, ids=[f"{k}-{i}" for i, (k, _) in enumerate(CONFIGS)])
def test_equals_pml(kind, hp, case):
    gen = torch.Generator().manual_seed(zlib.crc32(f"{kind}{hp}{case}".encode()))
    torch.manual_seed(0)
    ours, theirs, their_proxies = _pair(kind, **hp)
    labels = _labels(case, gen)
    x = torch.randn(len(labels), D, generator=gen, dtype=torch.float64) * 3

    x1 = x.clone().requires_grad_(True)
    v_ours = ours(x1, labels)
    v_ours.backward()
    x2 = x.clone().requires_grad_(True)
    v_theirs = theirs(x2, labels)
    v_theirs.backward()

    assert v_ours.dtype == torch.float64
    torch.testing.assert_close(v_ours, v_theirs, rtol=RTOL, atol=0)
    torch.testing.assert_close(x1.grad, x2.grad, rtol=RTOL, atol=1e-12)
    g_theirs = theirs.fc.grad.t() if kind == "soft" else theirs.proxies.grad
    torch.testing.assert_close(ours.proxies.grad, g_theirs, rtol=RTOL, atol=1e-12)
    assert their_proxies().shape == ours.proxies.shape


def test_proxy_layout_and_defaults():
    assert ProxyAnchor(7, 3).proxies.shape == (7, 3)
    assert ProxyAnchor(7, 3, proxies_per_class=4).proxies.shape == (28, 3)
    assert ProxyNCA(7, 3, proxies_per_class=2).proxies.shape == (14, 3)
    st = SoftTriple(7, 3)
    assert st.proxies.shape == (70, 3) and st.centers_per_class == 10
    pa, nca = ProxyAnchor(2, 2), ProxyNCA(2, 2)
    assert (pa.margin, pa.alpha, nca.softmax_scale) == (0.1, 32, 1)
    assert (st.la, st.gamma, st.margin, st.tau) == (20, 0.1, 0.01, 0)
    assert isinstance(pa.space, EuclideanSpace) and isinstance(pa, ProxyLoss)


@pytest.mark.parametrize("cls", [ProxyAnchor, ProxyNCA])
def test_multi_proxy_combination(cls):
    """K proxies per class: class similarity Σ_k softmax_k(s_k)·s_k; K copies of one proxy = K = 1."""
    torch.manual_seed(0)
    k = 3
    multi = cls(C, D, proxies_per_class=k).double()
    x = torch.randn(9, D, dtype=torch.float64)
    s = multi.space.similarity(x, multi.proxies).view(9, C, k)
    expected = (torch.softmax(s, dim=2) * s).sum(2)
    torch.testing.assert_close(multi.class_similarity(x), expected, rtol=1e-12, atol=1e-12)

    single = cls(C, D).double()
    with torch.no_grad():
        multi.proxies.copy_(single.proxies.repeat_interleave(k, dim=0))
    y = torch.randint(C, (9,))
    torch.testing.assert_close(multi(x, y), single(x, y), rtol=1e-12, atol=0)


def test_soft_triple_regulariser_matches_reference_code():
    """tau > 0 adds the SoftTriple paper's center regulariser, as in idstcv/SoftTriple."""
    torch.manual_seed(0)
    k, tau = 4, 0.2
    loss = SoftTriple(C, D, centers_per_class=k, tau=tau).double()
    off = SoftTriple(C, D, centers_per_class=k).double()
    off.load_state_dict(loss.state_dict())
    x, y = torch.randn(8, D, dtype=torch.float64), torch.randint(C, (8,))
    centers = torch.nn.functional.normalize(loss.proxies.detach().t(), p=2, dim=0)  # (D, C·K) as fc
    weight = torch.zeros(C * k, C * k, dtype=torch.bool)
    for i in range(C):
        for j in range(k):
            weight[i * k + j, i * k + j + 1 : (i + 1) * k] = True
    sim_center = centers.t().matmul(centers)
    reg = torch.sum(torch.sqrt(2.0 + 1e-5 - 2.0 * sim_center[weight])) / (C * k * (k - 1.0))
    torch.testing.assert_close(loss(x, y), off(x, y) + tau * reg, rtol=1e-10, atol=0)
    assert SoftTriple(C, D, centers_per_class=1, tau=tau).regularizer() is None


def test_label_dtypes_and_device_follow_embeddings():
    torch.manual_seed(0)
    loss = ProxyAnchor(C, D)
    x = torch.randn(4, D)
    y = torch.tensor([0, 1, 2, 3])
    ref = loss(x, y)
    for dtype in (torch.int32, torch.int16, torch.uint8):
        torch.testing.assert_close(loss(x, y.to(dtype)), ref)


# -- bad input ---------------------------------------------------------------------------------

SPACES = [EuclideanSpace, PoincareSpace]


@pytest.mark.parametrize("space", SPACES, ids=["euclidean", "poincare"])
@pytest.mark.parametrize("cls", [ProxyAnchor, ProxyNCA, SoftTriple])
def test_bad_input(cls, space):
    loss = cls(4, 3, space=space())
    x, y = torch.randn(5, 3), torch.tensor([0, 1, 2, 3, 0])
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 4\)"):
        loss(x, torch.tensor([0, 1, 2, 4, 0]))
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 4\)"):
        loss(x, torch.tensor([0, -1, 2, 3, 0]))
    with pytest.raises(TypeError, match="integer"):
        loss(x, y.float())
    with pytest.raises(TypeError, match="integer"):
        loss(x, y > 0)
    with pytest.raises(ValueError, match=r"labels must have shape \(batch,\)"):
        loss(x, y[:, None])
    with pytest.raises(ValueError, match="5 rows but labels has 4"):
        loss(x, y[:4])
    with pytest.raises(ValueError, match="dimension 4 but the loss was built with embedding_size=3"):
        loss(torch.randn(5, 4), y)
    with pytest.raises(ValueError, match=r"shape \(batch, 3\)"):
        loss(torch.randn(5, 3, 1), y)
    with pytest.raises(TypeError, match="floating"):
        loss(torch.ones(5, 3, dtype=torch.int64), y)
    with pytest.raises(TypeError, match="torch.Tensor"):
        loss(x.tolist(), y)
    for bad in (float("nan"), float("inf")):
        x_bad = x.clone()
        x_bad[2, 1] = bad
        with pytest.raises(ValueError, match="NaN or Inf"):
            loss(x_bad, y)
    with pytest.raises(ValueError, match="empty batch"):
        loss(torch.empty(0, 3), torch.empty(0, dtype=torch.int64))
    loss.check_values = False  # the data-dependent checks can be turned off
    assert torch.isfinite(loss(x, y))


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match="num_classes"):
        ProxyAnchor(0, 3)
    with pytest.raises(ValueError, match="embedding_size"):
        ProxyNCA(3, 2.5)
    with pytest.raises(ValueError, match="proxies_per_class"):
        ProxyAnchor(3, 2, proxies_per_class=0)
    with pytest.raises(TypeError, match="space"):
        SoftTriple(3, 2, space="poincare")
    with pytest.raises(ValueError, match="proxy_param"):
        PoincareSpace(proxy_param="euclid")
    with pytest.raises(ValueError, match="curvature"):
        PoincareSpace(c=0)
