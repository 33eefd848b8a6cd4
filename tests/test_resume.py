"""Resume: a run stopped after k steps and resumed ends exactly where the uninterrupted run ends."""

from __future__ import annotations

import json

import pytest
import torch

from hyperdml.errors import ConfigError
from hyperdml.train import Trainer, load_checkpoint

#: 10 steps per epoch (1280 synthetic training images, batches of 128), 8×8 images
BASE = dict(dataset="synthetic", image_size=8, embedding_size=8, hyperbolic_size=4, batch_size=128,
            samples_per_class=8, epochs=2, eval_every=1, quiet=True, device="cpu", seed=3, warmup_epochs=0.5)

CASES = {
    # CHEST: HypHC's sampled triplets (128 proxies: C(128, 3) > 50 000, so 64 drawn per step from
    # its generator, whose state the checkpoint keeps) and the dual head
    "chest": (dict(loss="chest", loss_args={"centers_per_class": 8, "num_triplets": 64}),
              [4]),
    # CP: the queues (buffers) and the start epoch crossed after the resume
    "cp+proxy_anchor": (dict(loss="cp+proxy_anchor", loss_args={"queue_size": 4, "start_epoch": 1}), [7, 10]),
    # HPL in the ball: k-means groups recomputed at the epoch boundary after the resume
    "hpl+hyp_soft_triple": (dict(loss="hpl+hyp_soft_triple",
                                 loss_args={"centers_per_class": 2, "levels": [4], "recluster_every": 1}), [10]),
}


def _step_losses(out):
    records = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    steps = [(r["step"], r["loss"]) for r in records if r["event"] == "step"]
    assert [s for s, _ in steps] == list(range(1, len(steps) + 1))  # no step twice, none missing
    return [v for _, v in steps]


def _same(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return a == b


def _states(out):
    ck = load_checkpoint(out / "last.pt")
    return ck, {**{f"model.{k}": v for k, v in ck["model"].items()}, **{f"loss.{k}": v for k, v in ck["loss"].items()}}


@pytest.mark.parametrize("case", list(CASES))
def test_resume_equals_uninterrupted(case, tmp_path, one_thread):
    extra, stops = CASES[case]
    total = 13
    whole = tmp_path / "whole"
    Trainer(dict(BASE, **extra, out=str(whole), max_steps=total)).fit()
    parts = tmp_path / "parts"
    Trainer(dict(BASE, **extra, out=str(parts), max_steps=stops[0])).fit()
    for stop in stops[1:] + [total]:
        assert load_checkpoint(parts / "last.pt")["step"] < stop
        Trainer({"max_steps": stop}, resume=str(parts)).fit()  # a folder: its last.pt; out defaults to it
    assert _step_losses(parts) == _step_losses(whole)
    ck_a, a = _states(whole)
    ck_b, b = _states(parts)
    assert (ck_a["epoch"], ck_a["step"]) == (ck_b["epoch"], ck_b["step"]) == (1, total)
    assert a.keys() == b.keys()
    for k in a:
        assert _same(a[k], b[k]), k
    for key in ("state",):
        for pid, sa in ck_a["optimizer"][key].items():
            for name, va in sa.items():
                vb = ck_b["optimizer"][key][pid][name]
                assert torch.equal(torch.as_tensor(va), torch.as_tensor(vb)), (pid, name)
    assert ck_a["scheduler"] == ck_b["scheduler"]
    assert ck_a["metrics"]["heads"] == ck_b["metrics"]["heads"]


def test_resume_refuses_a_changed_model(tmp_path, one_thread):
    out = tmp_path / "run"
    Trainer(dict(BASE, loss="proxy_anchor", out=str(out), max_steps=2)).fit()
    with pytest.raises(ConfigError, match="embedding_size is 8, not 16"):
        Trainer({"embedding_size": 16}, resume=str(out / "last.pt"))
    t = Trainer({"epochs": 3, "quiet": True, "loss": "proxy_anchor"}, resume=str(out / "last.pt"))
    assert t.cfg["epochs"] == 3 and t.cfg["out"] == str(out.resolve())


def test_resume_a_checkpoint_that_names_the_layer_head_normalized(tmp_path, one_thread):
    out = tmp_path / "run"
    Trainer(dict(BASE, loss="hyp_proxy_anchor", hyperbolic_head="layer", out=str(out), max_steps=2)).fit()
    ckpt = torch.load(out / "last.pt", weights_only=True)
    ckpt["config"]["hyperbolic_head"] = "normalized"  # the name older checkpoints hold
    torch.save(ckpt, out / "old.pt")
    for given in ({}, {"hyperbolic_head": "layer"}, {"hyperbolic_head": "normalized"}):
        t = Trainer({"max_steps": 3, **given}, resume=str(out / "old.pt"))
        assert t.cfg["hyperbolic_head"] == "layer"
    t.fit()  # the LayerNorm head is rebuilt and its state loads
    assert t.model.heads["hyperbolic"].norm_kind == "layer" and load_checkpoint(out / "last.pt")["step"] == 3
    with pytest.raises(ConfigError, match="hyperbolic_head is 'layer', not 'batch'"):
        Trainer({"hyperbolic_head": "batch"}, resume=str(out / "old.pt"))
