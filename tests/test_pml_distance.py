"""``hyperdml.pml.PoincareDistance``: PML's distance-based losses and miners in the Poincaré ball.

Oracle: the same PML loss and miner with a float64 reference distance written here on geoopt's
``PoincareBall.dist`` (no hyperdml code); values, mined tuples and gradients must agree.
"""

from __future__ import annotations

import importlib
import sys

import pytest
import torch

pytest.importorskip("pytorch_metric_learning")
import geoopt  # noqa: E402
from pytorch_metric_learning import distances, losses, miners  # noqa: E402

from hyperdml.pml import PoincareDistance  # noqa: E402
from hyperdml.spaces import PoincareSpace  # noqa: E402


class GeooptDistance(distances.BaseDistance):
    """Reference: geodesic distances by geoopt in float64."""

    def __init__(self, c):
        super().__init__(normalize_embeddings=False, is_inverted=False)
        self.ball = geoopt.PoincareBall(c=torch.tensor(c, dtype=torch.float64))

    def compute_mat(self, q, r):
        return self.ball.dist(q.double()[:, None, :], r.double()[None, :, :])

    def pairwise_distance(self, q, r):
        return self.ball.dist(q.double(), r.double())


def _ball_batch(c, n=32, d=6, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    tangent = torch.randn(n, d, generator=g, dtype=torch.float64) * 0.8
    labels = torch.arange(n) % 4
    return PoincareSpace(c=c).to_space(tangent).to(dtype), labels


CASES = {
    "triplet_margin+miner": (lambda dist: losses.TripletMarginLoss(margin=0.5, distance=dist),
                             lambda dist: miners.TripletMarginMiner(margin=0.5, type_of_triplets="all", distance=dist)),
    "triplet_margin+semihard": (lambda dist: losses.TripletMarginLoss(margin=0.5, distance=dist),
                                lambda dist: miners.TripletMarginMiner(margin=0.5, type_of_triplets="semihard",
                                                                       distance=dist)),
    "multi_similarity": (lambda dist: losses.MultiSimilarityLoss(alpha=2, beta=10, base=1.5, distance=dist), None),
    "multi_similarity+miner": (lambda dist: losses.MultiSimilarityLoss(alpha=2, beta=10, base=1.5, distance=dist),
                               lambda dist: miners.MultiSimilarityMiner(epsilon=0.3, distance=dist)),
    "contrastive": (lambda dist: losses.ContrastiveLoss(pos_margin=0.5, neg_margin=2.0, distance=dist), None),
    "contrastive+pair_miner": (lambda dist: losses.ContrastiveLoss(pos_margin=0.5, neg_margin=2.0, distance=dist),
                               lambda dist: miners.PairMarginMiner(pos_margin=0.5, neg_margin=2.0, distance=dist)),
}


def _run(make_loss, make_miner, dist, x, labels):
    x = x.clone().requires_grad_(True)
    miner = None if make_miner is None else make_miner(dist)
    indices = None if miner is None else miner(x, labels)
    loss = make_loss(dist)(x, labels, indices)
    loss.backward()
    return loss.detach(), x.grad, indices


@pytest.mark.parametrize("c", [0.1, 1.0])
@pytest.mark.parametrize("case", sorted(CASES))
def test_pml_losses_and_miners_in_the_ball_equal_a_float64_reference(case, c):
    x, labels = _ball_batch(c)
    make_loss, make_miner = CASES[case]
    value, grad, indices = _run(make_loss, make_miner, PoincareDistance(c), x, labels)
    ref_value, ref_grad, ref_indices = _run(make_loss, make_miner, GeooptDistance(c), x, labels)
    assert value > 0
    if indices is not None:
        assert sum(len(t) for t in indices) > 0
        for a, b in zip(indices, ref_indices):
            assert torch.equal(a, b)
    torch.testing.assert_close(value, ref_value, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(grad, ref_grad, rtol=1e-8, atol=1e-10)


def test_float32_embeddings_match_the_float64_reference():
    x, labels = _ball_batch(0.1, dtype=torch.float32)
    make_loss = CASES["contrastive"][0]
    value, grad, _ = _run(make_loss, None, PoincareDistance(0.1), x, labels)
    ref_value, ref_grad, _ = _run(make_loss, None, GeooptDistance(0.1), x.double(), labels)
    assert value.dtype == torch.float32
    torch.testing.assert_close(value.double(), ref_value, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(grad.double(), ref_grad, rtol=1e-3, atol=1e-4)


def test_distance_matrix_power_and_pairwise_distance():
    x, _ = _ball_batch(0.5, n=10)
    y, _ = _ball_batch(0.5, n=7, seed=1)
    ref = GeooptDistance(0.5)
    torch.testing.assert_close(PoincareDistance(0.5)(x, y), ref(x, y), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(PoincareDistance(0.5)(x), ref(x), rtol=1e-12, atol=1e-6)
    torch.testing.assert_close(PoincareDistance(0.5, power=2)(x, y), ref(x, y) ** 2, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(PoincareDistance(0.5).pairwise_distance(x[:7], y), ref.pairwise_distance(x[:7], y),
                               rtol=1e-12, atol=1e-12)
    assert not PoincareDistance(0.5).is_inverted and not PoincareDistance(0.5).normalize_embeddings


def test_tangent_inputs_are_mapped_into_the_ball_first():
    g = torch.Generator().manual_seed(3)
    h = torch.randn(16, 5, generator=g, dtype=torch.float64) * 2.0  # some rows beyond clip_r: clipped
    labels = torch.arange(16) % 4
    make_loss = CASES["contrastive"][0]
    value, grad, _ = _run(make_loss, None, PoincareDistance(0.3, inputs="tangent", clip_r=2.3), h, labels)
    ball = PoincareSpace(c=0.3, clip_r=2.3)

    h_ref = h.clone().requires_grad_(True)
    ref = make_loss(GeooptDistance(0.3))(ball.to_space(h_ref), labels)
    ref.backward()
    torch.testing.assert_close(value, ref.detach(), rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(grad, h_ref.grad, rtol=1e-8, atol=1e-10)


def test_bad_inputs_are_named():
    outside = torch.tensor([[4.0, 0.0], [0.0, 0.1]], dtype=torch.float64)  # 1/√0.1 ≈ 3.16
    with pytest.raises(ValueError, match="outside the Poincaré ball"):
        PoincareDistance(0.1)(outside)
    with pytest.raises(TypeError, match="floating"):
        PoincareDistance(0.1)(torch.ones(3, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="curvature"):
        PoincareDistance(-1.0)
    with pytest.raises(ValueError, match="is_inverted=True has no meaning"):
        PoincareDistance(0.1, is_inverted=True)
    with pytest.raises(ValueError, match="normalize_embeddings=True has no meaning"):
        PoincareDistance(0.1, normalize_embeddings=True)
    with pytest.raises(ValueError, match="inputs must be"):
        PoincareDistance(0.1, inputs="lorentz")
    with pytest.raises(TypeError):
        PoincareDistance()  # the curvature is required


def test_import_without_pml_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "pytorch_metric_learning", None)
    monkeypatch.setitem(sys.modules, "pytorch_metric_learning.distances", None)
    monkeypatch.delitem(sys.modules, "hyperdml.pml", raising=False)
    with pytest.raises(ImportError, match=r"pip install hyperdml\[pml\]"):
        importlib.import_module("hyperdml.pml")
    monkeypatch.delitem(sys.modules, "hyperdml.pml", raising=False)
