"""What a training run is made of, built from a resolved config: :func:`build_run`."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from hyperdml.errors import ConfigError
from hyperdml.train.schedule import WarmupSchedule

__all__ = ["RunParts", "build_run", "class_balanced_sampler"]


@dataclass
class RunParts:
    """The parts of a run: data, batches, model, loss and their optimisation."""

    splits: object             #: :class:`hyperdml.data.DataSplits`
    sampler: object            #: class-balanced batch sampler of this process
    steps_per_epoch: int
    total_steps: int           #: ``epochs · steps_per_epoch``, or ``max_steps`` when smaller
    model: torch.nn.Module     #: :class:`hyperdml.models.EmbeddingModel` on the device
    loss: torch.nn.Module
    optimizer: torch.optim.Optimizer
    schedule: WarmupSchedule
    scaler: object             #: ``GradScaler`` with fp16, else None


def class_balanced_sampler(cfg: dict, labels: torch.Tensor, world: int = 1, rank: int = 0):
    """The class-balanced batch sampler of ``cfg`` for this process; ConfigError (naming the
    options) when the training split has too few classes or images for one batch."""
    from hyperdml.data import ClassBalancedSampler, DistributedClassBalancedSampler

    classes = int(torch.unique(labels).numel())
    needed = cfg["batch_size"] // cfg["samples_per_class"]
    if needed > classes:
        raise ConfigError(f"a batch of {cfg['batch_size']} with {cfg['samples_per_class']} images per class needs "
                          f"{needed} classes, but the training split of {cfg['dataset']} has {classes}: lower "
                          "--batch-size or raise --samples-per-class")
    if len(labels) < cfg["batch_size"]:
        raise ConfigError(f"the training split ({len(labels)} images) gives no full batch of {cfg['batch_size']}: "
                          "lower --batch-size")
    if world == 1:
        return ClassBalancedSampler(labels, cfg["batch_size"], cfg["samples_per_class"], seed=cfg["seed"],
                                    drop_last=True)
    return DistributedClassBalancedSampler(labels, cfg["batch_size"] // world, cfg["samples_per_class"],
                                           num_replicas=world, rank=rank, seed=cfg["seed"])


def build_run(cfg: dict, *, device: torch.device, spaces: dict | None = None, world: int = 1, rank: int = 0) -> RunParts:
    """Build a run's parts from a resolved config (global RNG seeded before, for the model's and the
    proxies' initialisation).

    Loads the data set (:class:`~hyperdml.errors.DatasetError` when it cannot be trained on) and
    fills ``cfg["in_channels"]``, ``cfg["num_classes"]`` and a missing ``cfg["image_size"]`` from
    it. ``spaces``: the heads' spaces (a resumed checkpoint's), default those of the config.
    """
    from hyperdml.data import build_datasets
    from hyperdml.data.splits import check_trainable
    from hyperdml.models import build_model
    from hyperdml.optim import make_optimizer
    from hyperdml.train.loss_factory import build_loss, head_spaces, hyperbolic_head_norm

    splits = build_datasets(cfg["dataset"], cfg["data_root"], image_size=cfg["image_size"], seed=cfg["data_seed"],
                            label_noise=cfg["label_noise"])
    check_trainable(splits, cfg["dataset"])
    cfg["in_channels"], cfg["num_classes"] = int(splits.channels), int(splits.num_train_classes)
    if cfg["image_size"] is None:
        cfg["image_size"] = int(splits.image_size)
    sampler = class_balanced_sampler(cfg, splits.train.labels, world, rank)
    steps = len(sampler)
    spaces = spaces if spaces is not None else head_spaces(cfg)
    model = build_model(cfg["arch"], embedding_size=cfg["embedding_size"], head=cfg["head"],
                        hyperbolic_size=cfg["hyperbolic_size"], spaces=spaces, in_channels=cfg["in_channels"],
                        weights=cfg["weights"], head_norm=hyperbolic_head_norm(cfg)).to(device)
    loss = build_loss(cfg, cfg["num_classes"], spaces=spaces).to(device)
    optimizer = make_optimizer(model.backbone, loss, model.heads, lr=cfg["lr"], head_lr_mult=cfg["head_lr_mult"],
                               proxy_lr_mult=cfg["proxy_lr_mult"], weight_decay=cfg["weight_decay"],
                               eps=cfg["adam_eps"])
    schedule = WarmupSchedule(optimizer, total_steps=cfg["epochs"] * steps,
                              warmup_steps=round(cfg["warmup_epochs"] * steps), kind=cfg["schedule"],
                              min_mult=cfg["min_lr_mult"], step_size=cfg["step_every"] * steps)
    total = cfg["epochs"] * steps if cfg["max_steps"] is None else min(cfg["epochs"] * steps, cfg["max_steps"])
    return RunParts(splits=splits, sampler=sampler, steps_per_epoch=steps, total_steps=total, model=model, loss=loss,
                    optimizer=optimizer, schedule=schedule,
                    scaler=torch.amp.GradScaler("cuda") if cfg["amp"] == "fp16" else None)
