"""HypHCLoss as a module: triplet sampling, temperature annealing, state, input checks."""

import math

import numpy as np
import pytest
import torch

from hyperdml.losses.hyphc import HypHCLoss, similarity_from_features
from hyperdml.ops import hyphc_triplet_loss

DT = torch.float64


pytestmark = pytest.mark.usefixtures("one_thread")


def points_and_sims(p, d=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(p, d, generator=g, dtype=DT)
    x = x / x.norm(dim=1, keepdim=True) * (0.1 + 0.8 * torch.rand(p, 1, generator=g, dtype=DT))
    f = torch.randn(p, 5, generator=g, dtype=DT)
    return x, similarity_from_features(f)


def test_all_triplets_for_small_p_cached():
    loss = HypHCLoss(max_all_triplets=math.comb(10, 3), c=1.0)
    t = loss.sample_triplets(10)
    assert t.dtype == torch.int64 and t.shape == (120, 3)
    assert bool((t[:, 0] < t[:, 1]).all() and (t[:, 1] < t[:, 2]).all())
    assert len({tuple(r) for r in t.tolist()}) == 120
    assert loss.sample_triplets(10) is t  # cached
    assert not loss.uses_all_triplets(11)
    # The value is the mean of the op over exactly those triplets.
    x, s = points_and_sims(10)
    i, j, k = t.unbind(1)
    want = hyphc_triplet_loss(x, t, torch.stack([s[i, j], s[i, k], s[j, k]], 1), c=1.0, tau=0.05).mean()
    torch.testing.assert_close(loss(x, s), want, rtol=1e-12, atol=0)


def test_sampling_is_seeded_and_follows_hyphc():
    """Pairs i < j uniform among C(P, 2), k uniform over P (repeats of i or j allowed)."""
    p, n = 6, 60_000
    a = HypHCLoss(max_all_triplets=0, num_triplets=n, seed=1, c=1.0)
    t = a.sample_triplets(p)
    assert t.shape == (n, 3)
    torch.testing.assert_close(HypHCLoss(max_all_triplets=0, num_triplets=n, seed=1, c=1.0).sample_triplets(p), t)
    assert not torch.equal(HypHCLoss(max_all_triplets=0, num_triplets=n, seed=2, c=1.0).sample_triplets(p), t)
    assert not torch.equal(a.sample_triplets(p), t)  # the generator advances
    assert bool((t[:, 0] < t[:, 1]).all())
    pair_counts = np.bincount((t[:, 0] * p + t[:, 1]).numpy(), minlength=p * p).reshape(p, p)
    iu = np.triu_indices(p, 1)
    expected = n / math.comb(p, 2)
    assert np.abs(pair_counts[iu] - expected).max() < 5 * math.sqrt(expected)
    assert pair_counts.sum() == pair_counts[iu].sum()
    k_counts = np.bincount(t[:, 2].numpy(), minlength=p)
    assert np.abs(k_counts - n / p).max() < 5 * math.sqrt(n / p)
    repeats = ((t[:, 2] == t[:, 0]) | (t[:, 2] == t[:, 1])).float().mean().item()
    assert abs(repeats - 2 / p) < 0.01
    # Sampling does not touch the global RNG.
    torch.manual_seed(0)
    r0 = torch.rand(1)
    torch.manual_seed(0)
    a.sample_triplets(p)
    assert torch.equal(torch.rand(1), r0)


def test_sampled_loss_reproducible_and_state_dict_roundtrip():
    x, s = points_and_sims(30)
    a = HypHCLoss(max_all_triplets=100, num_triplets=256, seed=5, tau=0.1, anneal_factor=0.5, c=1.0)
    b = HypHCLoss(max_all_triplets=100, num_triplets=256, seed=5, tau=0.1, anneal_factor=0.5, c=1.0)
    torch.testing.assert_close(a(x, s), b(x, s))
    a.anneal()
    state = a.state_dict()
    c = HypHCLoss(max_all_triplets=100, num_triplets=256, seed=99, tau=0.1, c=1.0)
    c.load_state_dict(state)
    assert c.tau == pytest.approx(0.05)
    torch.testing.assert_close(c(x, s), a(x, s))  # same generator state → same triplets


def test_temperature_annealing():
    loss = HypHCLoss(tau=0.1, anneal_factor=0.5, anneal_every=2, min_tau=0.02, c=1.0)
    assert loss.anneal() == pytest.approx(0.05)
    assert loss.anneal(0.5) == pytest.approx(0.025)
    assert loss.anneal() == pytest.approx(0.02)  # floor
    for epoch, tau in [(0, 0.1), (1, 0.1), (2, 0.05), (3, 0.05), (4, 0.025), (6, 0.02), (100, 0.02)]:
        loss.set_epoch(epoch)
        assert loss.tau == pytest.approx(tau), epoch
    sched = HypHCLoss(tau=0.1, tau_schedule=lambda e: 0.1 / (1 + e), c=1.0)
    sched.set_epoch(4)
    assert sched.tau == pytest.approx(0.02)
    # The temperature in use is the annealed one.
    x, s = points_and_sims(8)
    t = loss.sample_triplets(8)
    i, j, k = t.unbind(1)
    ts = torch.stack([s[i, j], s[i, k], s[j, k]], 1)
    loss.set_epoch(2)
    torch.testing.assert_close(loss(x, s), hyphc_triplet_loss(x, t, ts, loss.c, tau=0.05).mean())
    assert not torch.allclose(loss(x, s), hyphc_triplet_loss(x, t, ts, loss.c, tau=0.1).mean())


def test_similarity_from_features_matches_hyphc_load_data():
    f = torch.randn(9, 4, dtype=DT)
    x = f.numpy() / np.linalg.norm(f.numpy(), axis=1, keepdims=True)
    sims = 0.5 * (1 + x @ x.T)
    sims = np.triu(sims) + np.triu(sims).T
    sims[np.diag_indices_from(sims)] = 1.0
    sims[sims > 1.0] = 1.0
    torch.testing.assert_close(similarity_from_features(f), torch.from_numpy(sims), rtol=1e-12, atol=1e-12)
    g = f.clone().requires_grad_()
    similarity_from_features(g).sum().backward()
    assert g.grad is not None and bool(torch.isfinite(g.grad).all())


def test_gradients_flow_and_dtypes():
    x, s = points_and_sims(12)
    x32 = x.float().requires_grad_()
    out = HypHCLoss(c=1.0)(x32, s)  # float64 sims are cast to the points' dtype
    assert out.dtype == torch.float32 and out.dim() == 0
    out.backward()
    assert x32.grad.abs().sum() > 0


def test_input_validation():
    loss = HypHCLoss(c=1.0)
    x, s = points_and_sims(5)
    with pytest.raises(ValueError, match="at least 3"):
        loss(x[:2], s[:2, :2])
    with pytest.raises(ValueError, match="shape"):
        loss(x, s[:4])
    with pytest.raises(ValueError, match="shape"):
        loss(x[0], s)
    bad = s.clone()
    bad[0, 1] = bad[1, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        loss(x, bad)
    asym = s.clone()
    asym[0, 1] += 0.5
    with pytest.raises(ValueError, match="symmetric"):
        loss(x, asym)
    with pytest.raises(ValueError):
        loss(x * 10, s)  # outside the ball
    with pytest.raises(ValueError):
        HypHCLoss(tau=0, c=1.0)
    with pytest.raises(ValueError):
        HypHCLoss(c=-1)


# -- sphere=True: HypHC's normalize_embeddings -------------------------------------------------


@pytest.mark.parametrize("c", [0.1, 1.0])
def test_sphere_equals_the_plain_loss_on_points_already_on_it(c):
    x, s = points_and_sims(9)
    sphere = HypHCLoss(c=c, sphere=True, init_radius=0.7).double()
    r = 0.7 / math.sqrt(c)
    on_sphere = x / x.norm(dim=1, keepdim=True) * r
    # (the radius parameter holds 0.7 as float32, hence 1e-9)
    torch.testing.assert_close(sphere(on_sphere, s), HypHCLoss(c=c)(on_sphere, s), rtol=1e-9, atol=0)
    # only the directions count: any positive rescaling of the rows gives the same loss
    scales = torch.linspace(0.05, 0.9, 9, dtype=DT).unsqueeze(1) / math.sqrt(c)
    torch.testing.assert_close(sphere(x / x.norm(dim=1, keepdim=True) * scales, s), sphere(on_sphere, s),
                               rtol=1e-12, atol=0)
    torch.testing.assert_close(sphere.place(x).norm(dim=1).detach(), torch.full((9,), r, dtype=DT), rtol=1e-7, atol=0)


def test_sphere_gradients_reach_the_radius_and_the_directions():
    x, s = points_and_sims(8)
    loss = HypHCLoss(c=0.1, sphere=True).double()
    x = x.clone().requires_grad_()
    loss(x, s).backward()
    assert loss.radius.grad is not None and float(loss.radius.grad.abs()) > 0
    assert x.grad.abs().sum() > 0
    # the gradient on the points is tangential (a change of norm does not change the loss)
    torch.testing.assert_close((x.grad * x).sum(1), torch.zeros(8, dtype=DT), atol=1e-12, rtol=0)
    # the radius parameter (a fraction of the cap 1 − 1e-3) against a central difference
    rho = torch.tensor(0.4, dtype=DT, requires_grad=True)

    def f(rho):
        pts = x.detach() / x.detach().norm(dim=1, keepdim=True) * rho * (1 - 1e-3) / math.sqrt(0.1)
        return HypHCLoss(c=0.1)(pts, s)

    eps = 1e-6
    numeric = (f(rho + eps) - f(rho - eps)) / (2 * eps)
    loss.zero_grad()
    with torch.no_grad():
        loss.radius.copy_(rho)
    loss(x.detach(), s).backward()
    torch.testing.assert_close(loss.radius.grad, numeric, rtol=1e-5, atol=1e-9)


def test_sphere_radius_is_capped_inside_the_ball():
    x, s = points_and_sims(6)
    loss = HypHCLoss(c=0.1, sphere=True, max_radius=0.99).double()
    assert float(loss.radius) == pytest.approx(0.5 / 0.99)  # ρ: a fraction of the cap
    with torch.no_grad():
        loss.radius.fill_(5.0)  # far past the cap (an optimiser step can overshoot)
    assert float(loss.sphere_radius().detach()) == pytest.approx(0.99 / math.sqrt(0.1))
    placed = loss.place(x)
    assert bool((math.sqrt(0.1) * placed.norm(dim=1) < 1).all())
    loss(x, s).backward()
    assert float(loss.radius.grad) == 0.0  # HypHC's clamp: no gradient outside the range
    with torch.no_grad():
        loss.radius.fill_(-3.0)
    assert float(loss.sphere_radius().detach()) == pytest.approx(1e-2 / math.sqrt(0.1))


def test_sphere_state_dict_and_arguments():
    loss = HypHCLoss(sphere=True, init_radius=0.3)
    assert "radius" in loss.state_dict() and float(loss.radius) == pytest.approx(0.3 / (1 - 1e-3))
    assert "radius" not in HypHCLoss().state_dict() and not HypHCLoss().sphere
    other = HypHCLoss(sphere=True)
    other.load_state_dict(loss.state_dict())
    assert float(other.radius) == pytest.approx(0.3 / (1 - 1e-3))
    with pytest.raises(RuntimeError, match="sphere=False"):
        HypHCLoss().sphere_radius()
    for kw in ({"max_radius": 1.0}, {"min_radius": 0.0}, {"min_radius": 0.5, "max_radius": 0.4},
               {"init_radius": 0.9995}):
        with pytest.raises(ValueError):
            HypHCLoss(sphere=True, **kw)
