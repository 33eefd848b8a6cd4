"""HyperbolicHead trains where a plain linear head collapses, and only the collapse warns.

Digits (train on 0-4, retrieve 5-9, classes never seen in training), a plain Conv-ReLU CNN with no
normalisation, hyperbolic Proxy-Anchor in ``PoincareSpace(c=0.1, clip_r=2.3)``, two schedules:

- short (lr 1e-4, 4 epochs): ``HyperbolicHead`` (Linear → BatchNorm1d → clip → expmap0) ends above
  the untrained network's recall on the unseen digits. (With five training classes the unseen-digit
  recall peaks within a few epochs; longer training fits the training classes at its expense.)
- long (lr 3e-4, 10 epochs): the pooled ReLU features share one large positive component, so a
  linear head's outputs all point one way, grow past ``clip_r`` and collapse to about one point of
  the ball: its loss stops falling, recall on the unseen digits drops far below the untrained
  network's, and the loss's collapse warning fires. ``HyperbolicHead`` fits the training classes,
  keeps the unseen digits' recall near the untrained network's and never warns.
"""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

from hyperdml.data import ClassBalancedSampler, build_datasets
from hyperdml.losses import ProxyAnchor
from hyperdml.metrics import evaluate_retrieval
from hyperdml.models import HyperbolicHead
from hyperdml.optim import make_optimizer
from hyperdml.spaces import PoincareSpace

C, CLIP_R, DIM = 0.1, 2.3, 32
SCHEDULES = {"short": (1e-4, 4), "long": (3e-4, 10)}  # name: (lr, epochs)
SEEDS = (0, 1, 2)


def _plain_cnn() -> nn.Module:
    """Conv-ReLU features (B, 128), no normalisation layer."""
    return nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(),
                         nn.MaxPool2d(2), nn.Conv2d(64, 128, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten())


def _tensors(split):
    x = torch.stack([split[i][0] for i in range(len(split))])
    return x, torch.as_tensor(split.labels, dtype=torch.int64)


def _recall_at_1(model, space, x, y) -> float:
    model.eval()
    with torch.no_grad():
        points = space.to_space(model(x))
    model.train()
    return evaluate_retrieval(points, y, ks=(1,), space=space, nmi=False)["recall@1"]


def _train(head: str, seed: int, schedule: str = "long") -> dict:
    """Train with a ``"hyperbolic"`` (norm="batch"), ``"hyperbolic-layer"`` or ``"linear"`` head on
    a schedule of :data:`SCHEDULES`: unseen-digit recall@1 before and after, mean loss of the first
    and last 10 steps, and whether the collapse warning fired."""
    lr, epochs = SCHEDULES[schedule]
    torch.manual_seed(seed)
    splits = build_datasets("digits", None, seed=seed)
    assert list(splits.test.class_names) == ["5", "6", "7", "8", "9"]
    (x_tr, y_tr), (x_te, y_te) = _tensors(splits.train), _tensors(splits.test)
    backbone = _plain_cnn()
    if head in ("hyperbolic", "hyperbolic-layer"):
        module = HyperbolicHead(128, DIM, c=C, clip_r=CLIP_R, norm="layer" if head.endswith("layer") else "batch")
        space = module.space
    else:
        module, space = nn.Linear(128, DIM), PoincareSpace(c=C, clip_r=CLIP_R)
    model = nn.Sequential(backbone, module)
    loss = ProxyAnchor(5, DIM, space=space)
    optimizer = make_optimizer(model, loss, lr=lr)
    before = _recall_at_1(model, space, x_te, y_te)
    sampler = ClassBalancedSampler(y_tr, 50, 10, seed=seed)
    losses = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for epoch in range(epochs):
            sampler.set_epoch(epoch)
            for idx in sampler:
                idx = torch.as_tensor(idx)
                optimizer.zero_grad()
                value = loss(model(x_tr[idx]), y_tr[idx])
                value.backward()
                optimizer.step()
                losses.append(float(value))
    return {"before": before, "after": _recall_at_1(model, space, x_te, y_te),
            "first_loss": sum(losses[:10]) / 10, "last_loss": sum(losses[-10:]) / 10,
            "warned": any("clipping sphere" in str(w.message) for w in caught)}


@pytest.fixture(scope="module")
def runs():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        runs = {(head, seed, "long"): _train(head, seed, "long") for head in ("hyperbolic", "linear") for seed in SEEDS}
        runs.update({("hyperbolic", seed, "short"): _train("hyperbolic", seed, "short") for seed in SEEDS})
        return runs
    finally:
        torch.set_num_threads(n)


@pytest.mark.slow
@pytest.mark.parametrize("seed", SEEDS)
def test_hyperbolic_head_ends_above_the_untrained_network(runs, seed):
    run = runs["hyperbolic", seed, "short"]
    assert run["after"] > run["before"], run
    assert run["last_loss"] < 0.5 * run["first_loss"], run
    assert not run["warned"], run


@pytest.mark.slow
@pytest.mark.parametrize("seed", SEEDS)
def test_hyperbolic_head_fits_and_does_not_warn_on_the_long_schedule(runs, seed):
    run = runs["hyperbolic", seed, "long"]
    assert run["last_loss"] < 0.1 * run["first_loss"], run  # fits the training classes
    assert run["after"] > run["before"] - 0.05, run  # the unseen digits stay apart
    assert not run["warned"], run


@pytest.mark.slow
@pytest.mark.parametrize("seed", SEEDS)
def test_linear_head_collapses_below_the_hyperbolic_head_and_warns(runs, seed):
    linear, hyperbolic = runs["linear", seed, "long"], runs["hyperbolic", seed, "long"]
    assert linear["last_loss"] > 10 * hyperbolic["last_loss"], (linear, hyperbolic)  # its loss stalls
    assert linear["after"] < linear["before"] - 0.1, linear
    assert linear["after"] < hyperbolic["after"] - 0.1, (linear, hyperbolic)
    assert linear["warned"], linear


if __name__ == "__main__":  # the table of docs/training.md: python tests/test_heads_learning.py
    torch.set_num_threads(1)
    print("schedule         head              seed  R@1 untrained -> trained   loss first -> last   warned")
    for schedule, (lr, epochs) in SCHEDULES.items():
        for head in ("hyperbolic", "hyperbolic-layer", "linear"):
            for seed in SEEDS:
                r = _train(head, seed, schedule)
                print(f"{schedule} ({lr:g}, {epochs:>2}) {head:<17} {seed:>4}  {r['before']:.3f} -> {r['after']:.3f}"
                      f"{r['first_loss']:>17.2f} -> {r['last_loss']:<8.2f}{r['warned']}")
