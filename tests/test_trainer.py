"""Trainer: the loss factory, configuration checks, the schedule, reproducibility, AMP, logs."""

from __future__ import annotations

import json
import math

import pytest
import torch

from hyperdml.errors import ConfigError
from hyperdml.train import Trainer, build_loss, parse_loss_args, resolve_config
from hyperdml.train.schedule import WarmupSchedule

#: a small, fast run: 8×8 synthetic images, 10 steps per epoch
TINY = dict(dataset="synthetic", image_size=8, embedding_size=8, hyperbolic_size=4, batch_size=128,
            samples_per_class=8, epochs=1, max_steps=3, eval_every=0, quiet=True, device="cpu")

ALL_LOSSES = ["proxy_anchor", "proxy_nca", "soft_triple", "hyp_proxy_anchor", "hyp_proxy_nca", "hyp_soft_triple",
              "chest", "cp+proxy_anchor", "cp+hyp_soft_triple", "hpl+proxy_anchor", "hpl+hyp_proxy_nca"]


@pytest.mark.parametrize("name", ALL_LOSSES)
def test_build_loss_every_name(name, one_thread):
    torch.manual_seed(0)
    args = {"levels": [3]} if "hpl" in name else {}
    cfg = {"loss": name, "embedding_size": 6, "hyperbolic_size": 4, "c": 0.2, "clip_r": 1.5, "loss_args": args}
    loss = build_loss(cfg, num_classes=7)
    labels = torch.arange(14) % 7
    if name == "chest":
        z_e, z_h = torch.randn(14, 6, requires_grad=True), torch.randn(14, 4, requires_grad=True)
        value = loss(z_e, z_h, labels)
        assert loss.hyperbolic.space.c == 0.2 and loss.hyperbolic.space.clip_r == 1.5
    else:
        d = 4 if "hyp_" in name else 6
        z = torch.randn(14, d, requires_grad=True)
        value = loss(z, labels)
        base = loss
        while hasattr(base, "base"):
            base = base.base
        assert base.embedding_size == d and base.num_classes == 7
        assert base.space.kind == ("poincare" if "hyp_" in name else "euclidean")
        if "hyp_" in name:
            assert base.space.c == 0.2 and base.space.clip_r == 1.5
    assert value.dim() == 0 and torch.isfinite(value)
    value.backward()


def test_loss_args_are_typed_and_routed():
    args = parse_loss_args("cp+hyp_soft_triple", ["centers_per_class=3", "la=16", "queue_size=5",
                                                  "start_epoch=0", "proxy_param=tangent"])
    assert args == {"centers_per_class": 3, "la": 16.0, "queue_size": 5, "start_epoch": 0, "proxy_param": "tangent"}
    assert isinstance(args["la"], float) and isinstance(args["queue_size"], int)
    loss = build_loss({"loss": "cp+hyp_soft_triple", "embedding_size": 4, "loss_args": args}, 5)
    assert loss.queue_size == 5 and loss.base.proxies_per_class == 3 and loss.base.la == 16.0
    assert loss.base.space.proxy_param == "tangent"
    hpl = parse_loss_args("hpl+proxy_anchor", ["levels=4,2", "level_weights=1,0.5,0.25", "recluster_every=none"])
    assert hpl == {"levels": [4, 2], "level_weights": [1.0, 0.5, 0.25], "recluster_every": None}
    assert parse_loss_args("hpl+proxy_anchor", ["hpl.seed=3", "base.margin=0.2"]) == {"hpl.seed": 3, "base.margin": 0.2}
    loss = build_loss({"loss": "hpl+proxy_anchor", "embedding_size": 4, "loss_args": {"hpl.seed": 3, "base.margin": 0.2}}, 9)
    assert loss.base.margin == 0.2
    chest = parse_loss_args("chest", {"lambda_hc": "0", "num_triplets": "100"})
    assert chest == {"lambda_hc": 0.0, "num_triplets": 100}


@pytest.mark.parametrize("name, items, match", [
    ("proxy_anchor", ["nope=1"], "has no parameter 'nope'.*alpha, margin"),
    ("proxy_anchor", ["margin"], "key=value"),
    ("proxy_anchor", ["margin=big"], "margin='big'"),
    ("chest", ["c=1"], "--c"),
    ("hyp_proxy_anchor", ["clip_r=1"], "--clip-r"),
    ("cp+proxy_anchor", ["hpl.seed=1"], "no parameter 'hpl.seed'"),
    ("cp+hpl+proxy_anchor", [], "one wrapper at most"),
    ("triplet", [], "unknown loss 'triplet'"),
    ("xx+proxy_anchor", [], "unknown loss wrapper"),
    ("cp+chest", [], "cannot be wrapped"),
])
def test_bad_loss_args(name, items, match):
    with pytest.raises(ConfigError, match=match):
        parse_loss_args(name, items) if items else build_loss({"loss": name}, 3)


@pytest.mark.parametrize("overrides, match", [
    ({"optimiser": "sgd"}, "unknown training option"),
    ({"loss": "chest", "head": "euclidean"}, "needs --head dual"),
    ({"batch_size": 30, "samples_per_class": 4}, "multiple of --samples-per-class"),
    ({"dataset": "cub"}, "--data-root"),
    ({"dataset": "imagenet"}, "--dataset must be one of"),
    ({"epochs": 0}, "--epochs must be a positive integer"),
    ({"amp": "fp8"}, "--amp"),
    ({"c": -1.0}, "curvature"),
    ({"label_noise": 1.5}, "--label-noise"),
    ({"loss_args": ["margin=x"]}, "margin='x'"),
])
def test_config_errors(overrides, match):
    with pytest.raises(ConfigError, match=match):
        resolve_config(overrides)


def test_config_auto_values():
    cfg = resolve_config({"loss": "hpl+hyp_soft_triple"})
    assert cfg["head"] == "hyperbolic" and cfg["arch"] == "small_cnn" and cfg["lr"] == 1e-3
    cfg = resolve_config({"loss": "chest", "dataset": "cub", "data_root": "x"})
    assert cfg["head"] == "dual" and cfg["arch"] == "resnet50" and cfg["lr"] == 1e-4
    assert json.loads(json.dumps(cfg)) == cfg  # JSON-able


def test_fp16_on_cpu_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="fp16 needs a CUDA"):
        Trainer(dict(TINY, out=str(tmp_path), amp="fp16")).fit()


def test_schedule_warmup_then_cosine():
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([{"params": [p], "lr": 1.0}, {"params": [torch.nn.Parameter(torch.zeros(1))], "lr": 10.0}])
    s = WarmupSchedule(opt, total_steps=14, warmup_steps=4, kind="cosine", min_mult=0.1)
    lrs = [s.get_last_lr()]
    for _ in range(14):
        s.step()
        lrs.append(s.get_last_lr())
    assert [round(lr[0], 6) for lr in lrs[:5]] == [0.25, 0.5, 0.75, 1.0, 1.0]
    assert all(math.isclose(b, 10 * a) for a, b in lrs)
    assert math.isclose(lrs[9][0], 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 5 / 10)))
    assert math.isclose(lrs[14][0], 0.1)
    state = s.state_dict()
    s2 = WarmupSchedule(opt, total_steps=14, warmup_steps=4)
    s2.load_state_dict(state)
    assert s2.get_last_lr() == lrs[14]
    st = WarmupSchedule(opt, total_steps=100, warmup_steps=0, kind="step", step_size=3, gamma=0.5)
    for _ in range(7):
        st.step()
    assert math.isclose(st.get_last_lr()[0], 0.25)


def _weights(trainer):
    return {**{f"m.{k}": v.clone() for k, v in trainer.model.state_dict().items()},
            **{f"l.{k}": v.clone() for k, v in trainer.loss.state_dict().items() if isinstance(v, torch.Tensor)}}


def test_same_seed_same_run_other_seed_other_run(tmp_path, one_thread):
    runs = []
    for i, seed in enumerate((5, 5, 6)):
        t = Trainer(dict(TINY, loss="chest", loss_args={"centers_per_class": 2}, seed=seed, out=str(tmp_path / str(i))))
        t.fit()
        runs.append((t.history, _weights(t)))
    assert runs[0][0] == runs[1][0]
    for k, v in runs[0][1].items():
        assert torch.equal(v, runs[1][1][k]), k
    assert runs[0][0] != runs[2][0]
    assert not torch.equal(runs[0][1]["m.heads.euclidean.weight"], runs[2][1]["m.heads.euclidean.weight"])


def test_bf16_autocast_on_cpu(tmp_path, one_thread):
    cfg = dict(TINY, loss="hyp_proxy_anchor", seed=1)
    full = Trainer(dict(cfg, out=str(tmp_path / "fp32")))
    full.fit()
    half = Trainer(dict(cfg, out=str(tmp_path / "bf16"), amp="bf16"))
    half.fit()
    assert all(math.isfinite(v) for v in half.history)
    assert half.history != full.history  # the network ran in bfloat16 ...
    assert math.isclose(half.history[0], full.history[0], rel_tol=0.05)  # ... and the loss is about the same
    seen = {}
    loss_forward = half.loss.forward

    def spy(z, labels):
        seen["dtype"] = z.dtype
        return loss_forward(z, labels)

    half.loss.forward = spy
    x, y = next(iter(torch.utils.data.DataLoader(half.splits.train, batch_size=16)))
    half.train_step(x, y)
    assert seen["dtype"] == torch.float32  # the loss (and its hyperbolic maths) gets float32


def test_grad_clip_and_logs(tmp_path, one_thread):
    out = tmp_path / "run"
    t = Trainer(dict(TINY, loss="soft_triple", loss_args={"centers_per_class": 2}, grad_clip=0.01, weight_decay=0.0, out=str(out),
                     max_steps=12, eval_every=1, log_every=2, epochs=2))
    heads = t.fit()
    grads = [p.grad for g in t.optimizer.param_groups for p in g["params"] if p.grad is not None]
    assert torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads])) <= 0.01 + 1e-6
    records = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    events = [r["event"] for r in records]
    assert events[0] == "start" and events.count("step") == 6 and events.count("eval") == 2  # epoch 1 + the end
    assert [r["step"] for r in records if r["event"] == "step"] == [2, 4, 6, 8, 10, 12]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["step"] == 12 and set(metrics["heads"]) == {"euclidean"}
    assert {"recall@1", "recall@2", "recall@4", "recall@8", "map@r", "r_precision", "nmi"} <= set(metrics["heads"]["euclidean"])
    assert metrics["heads"]["euclidean"] == heads["euclidean"]
    assert json.loads((out / "config.json").read_text())["num_classes"] == 16
    assert t.epoch == 1  # the first epoch (10 steps) finished, the second was cut by max_steps


def test_set_epoch_reaches_the_loss(tmp_path, one_thread):
    t = Trainer(dict(TINY, loss="cp+proxy_anchor", loss_args={"start_epoch": 1, "queue_size": 3},
                     out=str(tmp_path), max_steps=11, label_noise=0.2, epochs=2))
    t.fit()
    assert t.loss.epoch == 1 and t.loss.active
    assert math.isclose(float((t.splits.train.labels != t.splits.train.clean_labels).float().mean()), 0.2, abs_tol=0.05)


def test_readme_training_example_runs(tmp_path, monkeypatch, capsys, one_thread):
    """The README's training example (the ```python block that calls ``hyperdml.train.train``)
    runs in a fresh folder and prints both heads' recall and the rebuilt model's shapes."""
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    blocks = [b for b in re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL) if "from hyperdml.train import" in b]
    assert len(blocks) == 1
    monkeypatch.chdir(tmp_path)
    for code in blocks:
        exec(compile(code, "README.md[training example]", "exec"), {"__name__": "__readme__"})
    out = capsys.readouterr().out
    assert "'hyperbolic'" in out and "torch.Size([2, 4])" in out
