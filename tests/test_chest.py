"""CHEST: parts, the λ_hc = 0 case, gradients to both heads' proxies, HypHC wiring, bad input."""

from __future__ import annotations

import math

import pytest
import torch

from hyperdml.geometry import geoopt
from hyperdml.losses import CHEST, HypHCLoss, SoftTriple, similarity_from_features
from hyperdml.spaces import EuclideanSpace, PoincareSpace

C, DE, DH = 5, 6, 4  # the two heads' dimensions differ


pytestmark = pytest.mark.usefixtures("one_thread")


def _batch(b=10, seed=0, dtype=torch.float32):
    gen = torch.Generator().manual_seed(seed)
    z_e = torch.randn(b, DE, generator=gen, dtype=dtype).requires_grad_(True)
    z_h = (torch.randn(b, DH, generator=gen, dtype=dtype) * 2).requires_grad_(True)
    return z_e, z_h, torch.randint(C, (b,), generator=gen)


def test_defaults_and_structure():
    loss = CHEST(C, DE, DH)
    assert isinstance(loss.euclidean, SoftTriple) and isinstance(loss.euclidean.space, EuclideanSpace)
    assert isinstance(loss.hyperbolic, SoftTriple) and isinstance(loss.hyperbolic.space, PoincareSpace)
    sp = loss.hyperbolic.space
    assert (sp.c, sp.clip_r, loss.lambda_hc, loss.w_e, loss.w_h) == (0.1, 2.3, 1.0, 1.0, 1.0)
    for st in (loss.euclidean, loss.hyperbolic):
        assert (st.centers_per_class, st.la, st.gamma, st.margin, st.tau) == (10, 20, 0.1, 0.01, 0)
    assert loss.euclidean.proxies.shape == (C * 10, DE)
    assert loss.hyperbolic.proxies.shape == (C * 10, DH)
    assert isinstance(loss.hyperbolic.proxies, geoopt.ManifoldParameter)
    assert isinstance(loss.hyphc, HypHCLoss) and loss.hyphc.c == 0.1 and loss.hyphc.tau == 0.01
    assert loss.hc_target == "class_means" and loss.hyphc.sphere and loss.hyphc.max_radius == 0.02


def _hc_oracle(loss, z_e, y):
    """HypHC term of a fresh CHEST after one batch, computed independently: the classes of the batch,
    their mean unit z_E as the target, the hyperbolic centers placed on the sphere by hand."""
    k = loss.hyperbolic.centers_per_class
    classes = sorted(set(y.tolist()))
    f = torch.nn.functional.normalize(z_e.detach(), dim=1)
    means = torch.stack([f[y == c].mean(0) for c in classes]).repeat_interleave(k, 0)
    rows = [c * k + j for c in classes for j in range(k)]
    pts = loss.hyperbolic.proxy_points()[rows]
    cap = loss.hyphc.max_radius
    radius = cap * min(max(float(loss.hyphc.radius.detach()), 1e-2 / cap), 1.0) / math.sqrt(0.1)
    pts = pts / pts.norm(dim=1, keepdim=True) * radius
    return HypHCLoss(c=0.1, tau=loss.hyphc.tau)(pts, similarity_from_features(means))


def test_parts_sum_to_total():
    torch.manual_seed(0)
    loss = CHEST(C, DE, DH, centers_per_class=3, lambda_hc=0.5, w_e=0.7, w_h=1.3).double()
    z_e, z_h, y = _batch(dtype=torch.float64)
    total = loss(z_e, z_h, y)
    parts = loss.parts
    assert set(parts) == {"euclidean", "hyperbolic", "hyphc"}
    assert all(not p.requires_grad for p in parts.values())
    summed = parts["euclidean"] + parts["hyperbolic"] + parts["hyphc"]
    torch.testing.assert_close(summed, total.detach(), rtol=1e-12, atol=0)
    # each part is the weighted term it names
    torch.testing.assert_close(parts["euclidean"], 0.7 * loss.euclidean(z_e, y).detach())
    torch.testing.assert_close(parts["hyperbolic"], 1.3 * loss.hyperbolic(z_h, y).detach())
    torch.testing.assert_close(parts["hyphc"], 0.5 * _hc_oracle(loss, z_e, y).detach())
    assert float(parts["hyphc"]) > 0
    with_graph = loss.forward_parts(z_e, z_h, y)
    torch.testing.assert_close(with_graph["total"], total)


def test_proxies_target_without_sphere_is_the_euclidean_centers():
    """hc_target="proxies", hc_sphere=False: HypHC on the hyperbolic centers as they are, with the
    similarities of the Euclidean centers."""
    torch.manual_seed(0)
    loss = CHEST(C, DE, DH, centers_per_class=3, lambda_hc=0.5, hc_target="proxies", hc_sphere=False,
                 hc_tau=0.05).double()
    assert not hasattr(loss, "hc_means") and not loss.hyphc.sphere
    z_e, z_h, y = _batch(dtype=torch.float64)
    loss(z_e, z_h, y)
    sims = similarity_from_features(loss.euclidean.proxies.detach())
    expected_hc = HypHCLoss(c=0.1, tau=0.05)(loss.hyperbolic.proxy_points(), sims)
    torch.testing.assert_close(loss.parts["hyphc"], 0.5 * expected_hc.detach())


def test_class_means_are_a_running_mean_of_unit_z_e():
    torch.manual_seed(0)
    loss = CHEST(C, DE, DH, centers_per_class=2, hc_momentum=0.75).double()
    assert loss.hc_means.shape == (C, DE) and not bool(loss.hc_seen.any())
    z1, h1, _ = _batch(dtype=torch.float64)
    y1 = torch.tensor([0, 0, 1, 1, 1, 2, 2, 2, 2, 0])  # class 3 and 4 absent
    loss(z1, h1, y1)
    f1 = torch.nn.functional.normalize(z1.detach(), dim=1)
    want = torch.zeros(C, DE, dtype=torch.float64)
    for c in range(3):
        want[c] = f1[y1 == c].mean(0)
    torch.testing.assert_close(loss.hc_means, want)
    assert loss.hc_seen.tolist() == [True, True, True, False, False]
    z2, h2, _ = _batch(seed=1, dtype=torch.float64)
    y2 = torch.tensor([3, 3, 1, 1, 1, 1, 3, 3, 3, 1])
    loss(z2, h2, y2)
    f2 = torch.nn.functional.normalize(z2.detach(), dim=1)
    want[1] = 0.75 * want[1] + 0.25 * f2[y2 == 1].mean(0)
    want[3] = f2[y2 == 3].mean(0)  # first sighting: the batch mean
    torch.testing.assert_close(loss.hc_means, want)
    # eval mode leaves the running means alone; they travel in the state dict
    loss.eval()
    loss(z1, h1, y1)
    torch.testing.assert_close(loss.hc_means, want)
    other = CHEST(C, DE, DH, centers_per_class=2).double()
    other.load_state_dict(loss.state_dict())
    torch.testing.assert_close(other.hc_means, want)
    assert other.hc_seen.tolist() == [True, True, True, True, False]
    assert float(other.hyphc.radius.detach()) == float(loss.hyphc.radius.detach())


def test_hyphc_term_waits_for_three_centers():
    torch.manual_seed(0)
    loss = CHEST(C, DE, DH, centers_per_class=1)
    z_e, z_h, _ = _batch()
    y = torch.tensor([0, 1] * 5)  # two classes seen: two centers, no triplet yet
    total = loss(z_e, z_h, y)
    assert float(loss.parts["hyphc"]) == 0.0 and math.isfinite(total.item())
    total.backward()
    loss(z_e, z_h, torch.tensor([0, 1, 2, 2, 1, 0, 0, 1, 2, 2]))
    assert float(loss.parts["hyphc"]) > 0


def test_lambda_zero_drops_hyphc_exactly(monkeypatch):
    torch.manual_seed(0)
    loss = CHEST(C, DE, DH, centers_per_class=3, lambda_hc=0.0, w_e=0.3, w_h=2.0)
    z_e, z_h, y = _batch()

    def boom(*args, **kwargs):
        raise AssertionError("HypHC must not be computed when lambda_hc == 0")

    monkeypatch.setattr(loss.hyphc, "forward", boom)
    total = loss(z_e, z_h, y)
    expected = 0.3 * loss.euclidean(z_e, y) + 2.0 * loss.hyperbolic(z_h, y)
    assert torch.equal(total, expected)  # bitwise
    assert float(loss.parts["hyphc"]) == 0.0


@pytest.mark.parametrize("proxy_param", ["manifold", "tangent"])
def test_gradients_reach_both_heads_proxies(proxy_param):
    torch.manual_seed(0)
    loss = CHEST(C, DE, DH, centers_per_class=2, proxy_param=proxy_param)
    z_e, z_h, y = _batch()
    loss(z_e, z_h, y).backward()
    for g in (z_e.grad, z_h.grad, loss.euclidean.proxies.grad, loss.hyperbolic.proxies.grad, loss.hyphc.radius.grad):
        assert g is not None and bool(torch.isfinite(g).all()) and float(g.abs().sum()) > 0
    # the HypHC term alone moves the hyperbolic proxies only: its targets are detached
    loss.zero_grad()
    loss.hyphc_term().backward()
    assert float(loss.hyperbolic.proxies.grad.abs().sum()) > 0
    assert loss.euclidean.proxies.grad is None or float(loss.euclidean.proxies.grad.abs().sum()) == 0


def test_autocast_no_nan():
    torch.manual_seed(0)
    loss = CHEST(C, DE, DH, centers_per_class=3)
    head_e, head_h = torch.nn.Linear(8, DE), torch.nn.Linear(8, DH)
    x, y = torch.randn(12, 8) * 4, torch.randint(C, (12,))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        total = loss(head_e(x), head_h(x), y)
    total.backward()
    assert math.isfinite(total.item())
    assert all(math.isfinite(float(v)) for v in loss.parts.values())
    for p in (*head_e.parameters(), *head_h.parameters(), loss.euclidean.proxies, loss.hyperbolic.proxies):
        assert bool(torch.isfinite(p.grad).all())


def test_many_proxies_sample_triplets():
    """C·K = 60 proxies: C(60, 3) = 34 220 triplets, all used; with num_triplets set and more
    proxies than max_all_triplets allows, HypHCLoss samples."""
    loss = CHEST(6, DE, DH)
    assert loss.hyphc.uses_all_triplets(60)
    big = CHEST(10, DE, DH, num_triplets=1000)
    assert not big.hyphc.uses_all_triplets(100)
    z_e, z_h, _ = _batch()
    assert math.isfinite(big(z_e, z_h, torch.randint(10, (10,))).item())


def test_bad_input():
    loss = CHEST(C, DE, DH, centers_per_class=2)
    z_e, z_h, y = _batch()
    with pytest.raises(ValueError, match="z_e has 10 rows but z_h has 9"):
        loss(z_e, z_h[:9], y)
    with pytest.raises(ValueError, match="z_h has dimension 6"):
        loss(z_e, z_e, y)
    with pytest.raises(ValueError, match="z_e has dimension 4"):
        loss(z_h, z_h, y)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 5\)"):
        loss(z_e, z_h, y + 5)
    bad = z_h.detach().clone()
    bad[3, 0] = float("nan")
    with pytest.raises(ValueError, match="z_h contains NaN"):
        loss(z_e, bad, y)
    with pytest.raises(ValueError, match="empty batch"):
        loss(z_e[:0], z_h[:0], y[:0])
    with pytest.raises(TypeError, match="integer"):
        loss(z_e, z_h, y.float())
    with pytest.raises(ValueError, match="lambda_hc"):
        CHEST(C, DE, DH, lambda_hc=-1)
    with pytest.raises(ValueError, match="at least 3 proxies"):
        CHEST(2, DE, DH, centers_per_class=1)
    assert math.isfinite(CHEST(2, DE, DH, centers_per_class=1, lambda_hc=0)(z_e, z_h, y % 2).item())
    with pytest.raises(ValueError, match="hc_target"):
        CHEST(C, DE, DH, hc_target="means")
    with pytest.raises(ValueError, match="hc_momentum"):
        CHEST(C, DE, DH, hc_momentum=1.0)
    with pytest.raises(ValueError, match="max_radius"):
        CHEST(C, DE, DH, hc_max_radius=1.0)
