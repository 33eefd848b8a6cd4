"""The proxy losses as drop-ins for pytorch-metric-learning's: PML's call, keywords, miners, trainer.

The oracle is PML 2.9 itself, on the inputs of its own loss tests (180 unit vectors at 1° steps,
random labels): our loss and PML's with the same proxies must agree to float64 rounding, with and
without a miner's ``indices_tuple`` (triplets and pairs), with PML's regularisers and reducers.
"""

from __future__ import annotations

import logging
import math

import pytest
import torch
from torch import nn

pml = pytest.importorskip("pytorch_metric_learning")
from pytorch_metric_learning import distances as pml_distances  # noqa: E402
from pytorch_metric_learning import losses as pml_losses  # noqa: E402
from pytorch_metric_learning import miners as pml_miners  # noqa: E402
from pytorch_metric_learning import reducers as pml_reducers  # noqa: E402
from pytorch_metric_learning import regularizers as pml_regularizers  # noqa: E402
from pytorch_metric_learning.utils import common_functions as c_f  # noqa: E402
from pytorch_metric_learning.utils import loss_and_miner_utils as lmu  # noqa: E402

from hyperdml.losses import CalibrateProxy, HierarchicalProxy, ProxyAnchor, ProxyNCA, SoftTriple  # noqa: E402
from hyperdml.losses.pml_compat import miner_weights  # noqa: E402
from hyperdml.spaces import PoincareSpace  # noqa: E402

C, D = 10, 2
PAIRS = {  # name → (PML loss, our loss) factories with the same settings (PML's test settings)
    "proxy_anchor": (lambda **kw: pml_losses.ProxyAnchorLoss(C, D, margin=0.5, alpha=32, **kw),
                     lambda **kw: ProxyAnchor(C, D, margin=0.5, alpha=32, **kw)),
    "proxy_nca": (lambda **kw: pml_losses.ProxyNCALoss(C, D, softmax_scale=10, **kw),
                  lambda **kw: ProxyNCA(C, D, softmax_scale=10, **kw)),
    "soft_triple": (lambda **kw: pml_losses.SoftTripleLoss(C, D, centers_per_class=3, la=20, gamma=0.1, margin=0.01, **kw),
                    lambda **kw: SoftTriple(C, D, centers_per_class=3, la=20, gamma=0.1, margin=0.01, **kw)),
}
MINERS = {
    "none": lambda: None,
    "multi_similarity": lambda: pml_miners.MultiSimilarityMiner(epsilon=0.1),
    "triplet_semihard": lambda: pml_miners.TripletMarginMiner(margin=0.2, type_of_triplets="semihard"),
    "triplet_all": lambda: pml_miners.TripletMarginMiner(margin=0.2, type_of_triplets="all"),
    "pair_margin": lambda: pml_miners.PairMarginMiner(pos_margin=0.2, neg_margin=0.5),
}


def _pml_test_inputs(seed: int = 0, num_labels: int = C):
    """PML's loss-test inputs: 180 unit vectors at angles 0°..179°, random labels."""
    angles = torch.arange(180, dtype=torch.float64) * math.pi / 180
    g = torch.Generator().manual_seed(seed)
    return torch.stack([angles.cos(), angles.sin()], dim=1), torch.randint(0, num_labels, (180,), generator=g)


def _pml_weight(loss) -> torch.Tensor:
    """PML's proxies as our ``(C·K, D)`` layout (SoftTriple keeps ``fc (D, C·K)``)."""
    return loss.fc.t() if isinstance(loss, pml_losses.SoftTripleLoss) else loss.proxies


def _twins(name: str, **kw):
    make_pml, make_ours = PAIRS[name]
    theirs, ours = make_pml(**kw).double(), make_ours(**kw).double()
    with torch.no_grad():
        ours.proxies.copy_(_pml_weight(theirs))
    return theirs, ours


def _value_and_grads(loss, emb, labels, *args):
    x = emb.clone().requires_grad_(True)
    value = loss(x, labels, *args)
    value.backward()
    weight = loss.fc.t() if isinstance(loss, pml_losses.SoftTripleLoss) else loss.proxies
    grad_w = loss.fc.grad.t() if isinstance(loss, pml_losses.SoftTripleLoss) else weight.grad
    return value.detach(), x.grad, grad_w


def _assert_same(theirs, ours, emb, labels, *args):
    a = _value_and_grads(theirs, emb, labels, *args)
    b = _value_and_grads(ours, emb, labels, *args)
    torch.testing.assert_close(b[0], a[0], rtol=1e-13, atol=1e-13)
    torch.testing.assert_close(b[1], a[1], rtol=1e-11, atol=1e-13)
    torch.testing.assert_close(b[2], a[2], rtol=1e-11, atol=1e-13)
    return a[0]


@pytest.mark.parametrize("miner", sorted(MINERS))
@pytest.mark.parametrize("name", sorted(PAIRS))
def test_loss_with_a_miner_equals_pml(name, miner):
    emb, labels = _pml_test_inputs()
    torch.manual_seed(0)
    theirs, ours = _twins(name)
    m = MINERS[miner]()
    indices = None if m is None else m(emb, labels)
    if m is not None:
        assert sum(len(t) for t in indices) > 0
    value = _assert_same(theirs, ours, emb, labels, indices)
    if m is not None:  # the miner changed the loss: the weights are not ignored
        _, plain = _twins(name)
        with torch.no_grad():
            plain.proxies.copy_(ours.proxies)
        assert abs(float(plain(emb, labels).detach()) - float(value)) > 1e-6


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name", sorted(PAIRS))
def test_pml_loss_test_inputs_and_keyword_call(name, dtype):
    """PML's own tests call ``loss(embeddings, labels)``; as keywords too (``indices_tuple=``)."""
    emb, labels = _pml_test_inputs(seed=3)
    torch.manual_seed(1)
    theirs, ours = _twins(name)
    theirs, ours = theirs.to(dtype), ours.to(dtype)
    a = theirs(emb.to(dtype), labels, indices_tuple=None)
    b = ours(emb.to(dtype), labels, indices_tuple=None)
    tol = 1e-13 if dtype == torch.float64 else 1e-5
    torch.testing.assert_close(b, a, rtol=tol, atol=tol)


def test_proxy_anchor_mean_reducer_equals_pml():
    emb, labels = _pml_test_inputs(seed=1, num_labels=5)  # absent classes: |C+| < C
    torch.manual_seed(2)
    theirs, ours = _twins("proxy_anchor", reducer=pml_reducers.MeanReducer())
    indices = pml_miners.MultiSimilarityMiner(0.1)(emb, labels)
    _assert_same(theirs, ours, emb, labels, indices)
    _, default = _twins("proxy_anchor")
    with torch.no_grad():
        default.proxies.copy_(ours.proxies)
    assert float(default(emb, labels).detach()) != pytest.approx(float(ours(emb, labels).detach()), rel=1e-3)


@pytest.mark.parametrize("name", sorted(PAIRS))
def test_pml_regularizers_equal_pml(name):
    emb, labels = _pml_test_inputs(seed=2)
    kw = {"embedding_regularizer": pml_regularizers.LpRegularizer(), "embedding_reg_weight": 0.3,
          "weight_regularizer": (pml_regularizers.SparseCentersRegularizer(C, 3) if name == "soft_triple"
                                 else pml_regularizers.LpRegularizer(power=2)),
          "weight_reg_weight": 0.2}
    torch.manual_seed(3)
    theirs, ours = _twins(name, **kw)
    value = _assert_same(theirs, ours, emb, labels, pml_miners.TripletMarginMiner(0.2)(emb, labels))
    assert set(ours.parts) == {"loss", "regularizer", "embedding_regularizer"}
    torch.testing.assert_close(sum(ours.parts.values()), value, rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("name", sorted(PAIRS))
def test_get_logits_equals_pml(name):
    emb, _ = _pml_test_inputs()
    torch.manual_seed(4)
    theirs, ours = _twins(name)
    torch.testing.assert_close(ours.get_logits(emb), theirs.get_logits(emb), rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="embedding_size=2"):
        ours.get_logits(torch.randn(4, 3, dtype=torch.float64))


@pytest.mark.parametrize("anchors_only", [False, True])
@pytest.mark.parametrize("miner", ["multi_similarity", "triplet_all", "pair_margin"])
def test_miner_weights_equal_pml_convert_to_weights(miner, anchors_only):
    emb, labels = _pml_test_inputs(seed=5)
    indices = MINERS[miner]()(emb, labels)
    ours = miner_weights(indices, len(labels), torch.float64, emb.device, anchors_only=anchors_only)
    theirs = lmu.convert_to_weights(indices, labels, dtype=torch.float64, using_ref=anchors_only)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=0)
    assert miner_weights(None, 5, torch.float64, emb.device) is None
    empty = (torch.empty(0, dtype=torch.long),) * 3
    assert miner_weights(empty, 5, torch.float64, emb.device) is None  # PML: all weights 1


class _Pairs(torch.utils.data.Dataset):
    def __init__(self):
        g = torch.Generator().manual_seed(0)
        self.x, self.y = torch.randn(64, 8, generator=g, dtype=torch.float64), torch.arange(64) % 4

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return self.x[i], self.y[i]


def _train_with_pml_trainer(make_loss, miner):
    """PML's MetricLossOnly trainer, as its examples use it; returns every parameter after training."""
    from pytorch_metric_learning import trainers

    torch.manual_seed(1)
    trunk, embedder = nn.Sequential(nn.Linear(8, 16), nn.ReLU()).double(), nn.Linear(16, 6).double()
    loss = make_loss().double()
    with torch.no_grad():
        torch.manual_seed(2)
        weight = _pml_weight(loss)
        weight.copy_(torch.randn(weight.shape[0], 6))
    optimizers = {"trunk_optimizer": torch.optim.SGD(trunk.parameters(), lr=0.1),
                  "embedder_optimizer": torch.optim.SGD(embedder.parameters(), lr=0.1),
                  "metric_loss_optimizer": torch.optim.SGD(loss.parameters(), lr=0.1)}
    torch.manual_seed(3)
    trainer = trainers.MetricLossOnly({"trunk": trunk, "embedder": embedder}, optimizers, 16, {"metric_loss": loss},
                                      _Pairs(), mining_funcs={"tuple_miner": miner}, dataloader_num_workers=0,
                                      data_device=torch.device("cpu"), dtype=torch.float64)
    trainer.train(num_epochs=2)
    return torch.cat([p.detach().flatten() for p in (*trunk.parameters(), *embedder.parameters(), _pml_weight(loss))])


@pytest.mark.filterwarnings("ignore:Converting a tensor with requires_grad")  # PML's progress bar, either loss
@pytest.mark.parametrize("name", ["proxy_anchor", "proxy_nca", "soft_triple"])
def test_pml_trainer_runs_our_loss_unchanged(name, caplog):
    """A PML 2.9 training script (its MetricLossOnly trainer with a miner) takes our class in place of
    PML's and follows the same trajectory: every weight equal after 8 steps."""
    caplog.set_level(logging.WARNING)
    cls = {"proxy_anchor": (pml_losses.ProxyAnchorLoss, ProxyAnchor), "proxy_nca": (pml_losses.ProxyNCALoss, ProxyNCA),
           "soft_triple": (pml_losses.SoftTripleLoss, SoftTriple)}[name]
    kw = {"centers_per_class": 2} if name == "soft_triple" else {}
    theirs = _train_with_pml_trainer(lambda: cls[0](4, 6, **kw), pml_miners.MultiSimilarityMiner(0.1))
    ours = _train_with_pml_trainer(lambda: cls[1](4, 6, **kw), pml_miners.MultiSimilarityMiner(0.1))
    torch.testing.assert_close(ours, theirs, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name, init", [
    ("proxy_nca", c_f.TorchInitWrapper(torch.nn.init.normal_)),
    ("soft_triple", c_f.TorchInitWrapper(torch.nn.init.kaiming_uniform_, a=math.sqrt(5))),
    ("proxy_anchor", c_f.TorchInitWrapper(torch.nn.init.xavier_uniform_)),
])
def test_weight_init_func_initialises_as_pml(name, init):
    make_pml, make_ours = PAIRS[name]
    torch.manual_seed(7)
    theirs = make_pml(weight_init_func=init)
    torch.manual_seed(7)
    ours = make_ours(weight_init_func=init)
    torch.testing.assert_close(ours.proxies.detach(), _pml_weight(theirs).detach(), rtol=0, atol=0)


def test_pml_default_distances_mean_the_euclidean_space():
    emb, labels = _pml_test_inputs()
    for name, dist in (("proxy_anchor", pml_distances.CosineSimilarity()),
                       ("soft_triple", pml_distances.CosineSimilarity()),
                       ("proxy_nca", pml_distances.LpDistance(power=2))):
        torch.manual_seed(8)
        theirs, ours = _twins(name, distance=dist)
        _assert_same(theirs, ours, emb, labels)


REFUSED = [
    (lambda: ProxyAnchor(C, D, distance=pml_distances.LpDistance()), ValueError, "distance=LpDistance.*no meaning here"),
    (lambda: ProxyNCA(C, D, distance=pml_distances.CosineSimilarity()), ValueError, "no meaning here"),
    (lambda: SoftTriple(C, D, distance=pml_distances.CosineSimilarity(power=2)), ValueError, "no meaning here"),
    (lambda: ProxyAnchor(C, D, distance=pml_distances.CosineSimilarity(), space=PoincareSpace()), ValueError,
     "contradicts space"),
    (lambda: ProxyAnchor(C, D, reducer=pml_reducers.SumReducer()), ValueError, "reducer=SumReducer.*no meaning here"),
    (lambda: ProxyNCA(C, D, reducer=pml_reducers.DivisorReducer()), ValueError, "MeanReducer"),
    (lambda: SoftTriple(C, D, reducer=pml_reducers.AvgNonZeroReducer()), ValueError, "no meaning here"),
    (lambda: ProxyAnchor(C, D, collect_stats=True), ValueError, "collect_stats=True has no meaning here"),
    (lambda: ProxyAnchor(C, D, space=PoincareSpace(), weight_init_func=torch.nn.init.normal_), ValueError,
     "weight_init_func has no meaning"),
    (lambda: ProxyAnchor(C, D, weight_regularizer=3), TypeError, "weight_regularizer must be callable"),
    (lambda: ProxyAnchor(C, D, weight_reg_weight=float("nan")), ValueError, "weight_reg_weight"),
    (lambda: ProxyAnchor(C, D, not_a_pml_keyword=1), TypeError, "not_a_pml_keyword"),
]


@pytest.mark.parametrize("i", range(len(REFUSED)))
def test_keywords_without_a_meaning_here_are_refused_in_one_line(i):
    make, exc, pattern = REFUSED[i]
    with pytest.raises(exc, match=pattern) as info:
        make()
    assert "\n" not in str(info.value)


def test_forward_refuses_ref_emb_and_bad_indices_tuples():
    emb, labels = _pml_test_inputs()
    loss = ProxyAnchor(C, D).double()
    with pytest.raises(ValueError, match="ref_emb/ref_labels have no meaning"):
        loss(emb, labels, None, emb)
    with pytest.raises(ValueError, match="ref_emb/ref_labels have no meaning"):
        loss(emb, labels, ref_labels=labels)
    with pytest.raises(ValueError, match="labels are required"):
        loss(emb, None)
    idx = torch.arange(3)
    for bad, pattern in (((idx, idx), "tuple of 3"), ((idx, idx, idx.float()), r"indices_tuple\[2\]"),
                         ((idx, idx, torch.arange(4)), "mismatched lengths"),
                         ((idx, idx, idx + 178), "outside \\[0, 180\\)"), (idx, "tuple of 3")):
        with pytest.raises(ValueError, match=pattern):
            loss(emb, labels, bad)


class _BallSimilarity(pml_distances.BaseDistance):
    """A PML similarity computing a PoincareSpace's similarity of ball points (float64 geoopt)."""

    def __init__(self, space):
        super().__init__(normalize_embeddings=False, is_inverted=True)
        self.space = space

    def compute_mat(self, q, r):
        d = self.space.manifold.dist(q[:, None, :], r[None, :, :])
        return self.space.sim_offset - self.space.sim_scale * d


def test_hyperbolic_proxy_anchor_weights_miners_as_pml_would():
    """In the ball the miner weights enter as in PML's ProxyAnchorLoss fed with the ball similarity
    (an independent PML computation over geoopt's distance)."""
    space = PoincareSpace(c=0.3, inputs="ball")
    g = torch.Generator().manual_seed(9)
    emb = space.to_space(PoincareSpace(c=0.3).to_space(torch.randn(60, 4, generator=g, dtype=torch.float64)))
    labels = torch.randint(0, 6, (60,), generator=g)
    ours = ProxyAnchor(6, 4, space=space).double()
    theirs = pml_losses.ProxyAnchorLoss(6, 4, distance=_BallSimilarity(space)).double()
    with torch.no_grad():
        theirs.proxies.copy_(ours.proxy_points())
    indices = pml_miners.TripletMarginMiner(0.2, distance=_BallSimilarity(space))(emb, labels)
    torch.testing.assert_close(ours(emb, labels, indices), theirs(emb, labels, indices), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("wrapper", ["cp", "hpl"])
def test_wrappers_add_the_base_embedding_regularizer(wrapper):
    emb, labels = _pml_test_inputs()
    reg = pml_regularizers.LpRegularizer()
    torch.manual_seed(5)
    with_reg = ProxyAnchor(C, D, embedding_regularizer=reg, embedding_reg_weight=0.5).double()
    torch.manual_seed(5)
    plain = ProxyAnchor(C, D).double()
    wrap = {"cp": lambda b: CalibrateProxy(b, queue_size=4, start_epoch=0),
            "hpl": lambda b: HierarchicalProxy(b, levels=[3])}[wrapper]
    a, b = wrap(with_reg), wrap(plain)
    torch.manual_seed(6)
    va = a(emb, labels)
    torch.manual_seed(6)
    vb = b(emb, labels)
    torch.testing.assert_close(va, vb + 0.5 * reg(emb), rtol=1e-12, atol=1e-12)


def _doc_blocks() -> list[str]:
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "docs" / "losses.md").read_text(encoding="utf-8")
    sections = re.findall(r"<!-- pml-example -->(.*?)<!-- /pml-example -->", text, flags=re.DOTALL)
    return [block for section in sections for block in re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)]


@pytest.mark.parametrize("index", range(2))
def test_docs_pml_examples_run(index, capsys):
    blocks = _doc_blocks()
    assert len(blocks) == 2
    exec(compile(blocks[index], f"docs/losses.md[pml block {index}]", "exec"), {"__name__": "__docs__"})
    out = capsys.readouterr().out
    assert "loss" in out and "nan" not in out.lower()
