"""Training configuration: a plain JSON-able dict, its defaults and its validation.

:data:`DEFAULTS` lists every key ``hyperdml train`` knows (the CLI flags, ``-`` → ``_``).
:func:`resolve_config` fills the defaults, resolves the ``"auto"`` values (architecture, head,
learning rate, device) and checks that the values fit together, raising
:class:`~hyperdml.errors.ConfigError` with a message naming the option. The resolved dict is
what a checkpoint stores under ``"config"``.
"""

from __future__ import annotations

import copy
import math
import re
from typing import Any

from hyperdml.data.registry import DATASETS, SMALL_DATASETS, default_batch
from hyperdml.errors import ConfigError
from hyperdml.models.archs import ARCHS, HEADS, HYPERBOLIC_HEAD_ALIASES, HYPERBOLIC_HEADS, is_vit
from hyperdml.train.schedule import SCHEDULES

__all__ = ["DEFAULTS", "DATASETS", "SMALL_DATASETS", "ARCHS", "HEADS", "HYPERBOLIC_HEADS", "HYPERBOLIC_HEAD_ALIASES", "SCHEDULES", "AMP_CHOICES",
           "RUN_OPTIONS", "MAX_SEED", "resolve_config"]

#: autocast dtypes of the network (``fp16`` only on CUDA)
AMP_CHOICES = ("none", "bf16", "fp16")
#: keys a config may hold that say how to start the run rather than what to train (not stored)
RUN_OPTIONS = ("resume", "overwrite")
#: the largest seed (seeds are 32-bit: the sampler and the data loader derive per-epoch seeds from them)
MAX_SEED = 2**32 - 1
_DEVICE = re.compile(r"auto|cpu|cuda(:\d+)?")

DEFAULTS: dict[str, Any] = {
    # data
    "dataset": "synthetic",
    "data_root": None,
    "data_seed": 0,          # seed of the synthetic data / label noise, kept apart from --seed
    "image_size": None,      # None: the data set's default
    "label_noise": 0.0,
    # recipe
    "recipe": None,          # hyp-vit | hier: a published recipe fills the options not given (train/recipes.py)
    # model
    "arch": "auto",          # small_cnn for synthetic/digits, resnet50 otherwise; or a timm ViT (models/archs.py)
    "weights": None,         # local file of pretrained backbone weights
    "head": "auto",          # from the loss: euclidean, hyperbolic or dual (chest)
    "embedding_size": 128,
    "hyperbolic_size": None,  # None: embedding_size
    "hyperbolic_head": "linear",  # linear: tangent outputs mapped by the loss's space; batch|layer: HyperbolicHead
    "c": 0.1,
    "clip_r": 2.3,
    # loss
    "loss": "proxy_anchor",
    "loss_args": {},
    # optimisation
    "epochs": 10,
    "batch_size": None,      # the global batch (split over processes under torchrun); None: the data set's
    "samples_per_class": None,  # None: the data set's (4; digits 12)
    "lr": None,              # None: 1e-3 for small_cnn, 1e-4 for the ResNets, 1e-5 for the ViTs
    "proxy_lr_mult": 100.0,
    "head_lr_mult": 1.0,
    "weight_decay": 1e-4,
    "adam_eps": 1e-8,        # RiemannianAdam's eps (a very large eps makes the steps ≈ SGD: lr/eps · momentum)
    "warmup_epochs": 1.0,
    "schedule": "cosine",    # cosine | step | constant (after the warm-up)
    "step_every": 10,        # epochs between ×0.5 steps of the "step" schedule
    "min_lr_mult": 0.01,     # floor of the cosine schedule, as a fraction of each group's lr
    "grad_clip": None,       # max global gradient norm; None: no clipping
    "amp": "none",           # none | bf16 | fp16 (fp16 only on CUDA, with a GradScaler)
    # run
    "out": "runs/train",
    "device": "auto",        # auto: cuda (this process's GPU under torchrun) if available, else cpu
    "seed": 0,
    "eval_every": 1,         # epochs between evaluations (0: only at the end)
    "eval_batch_size": 256,
    "workers": 0,
    "max_steps": None,       # stop after this many optimiser steps in total (tests, smoke runs)
    "log_every": 1,          # steps between "step" records in log.jsonl
    "quiet": False,
    "deterministic": True,   # torch.use_deterministic_algorithms (warn_only) on every device
    # filled by the trainer from the data set (stored in checkpoints; leave them None)
    "in_channels": None,
    "num_classes": None,
}

_POSITIVE_INT = ("epochs", "batch_size", "samples_per_class", "embedding_size", "eval_batch_size", "log_every",
                 "step_every")
_NONNEG_FLOAT = ("proxy_lr_mult", "head_lr_mult", "weight_decay", "warmup_epochs")


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v) -> bool:
    """A finite int or float (not a bool)."""
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _curvature(c) -> float:
    """``--c`` checked by the ops' own curvature rule (the range geoopt computes in)."""
    from hyperdml.ops._checks import check_curvature

    if isinstance(c, bool) or not isinstance(c, (int, float)):
        raise ConfigError(f"--c (curvature) must be a number, got {c!r}")
    try:
        return check_curvature(c)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"--c (curvature) {c!r} is refused: {exc}") from None


def resolve_config(config: dict | None = None, **overrides) -> dict:
    """``DEFAULTS`` updated with ``config`` and ``overrides``, ``"auto"`` values resolved, checked.

    Returns a new dict (JSON-able). Raises ``ConfigError`` for unknown keys, values of the wrong
    kind or out of range, and combinations that do not fit (a head that the loss cannot use,
    ``fp16`` on the CPU, a batch that is not a multiple of ``samples_per_class``, a data set
    that needs ``data_root`` without one, ...).
    """
    from hyperdml.train.loss_factory import loss_head, parse_loss_args

    cfg = copy.deepcopy(DEFAULTS)
    given = dict(config or {})
    given.update(overrides)
    unknown = sorted(set(given) - set(DEFAULTS) - set(RUN_OPTIONS))
    if unknown:
        raise ConfigError(f"unknown training option(s): {', '.join(unknown)}")
    for key in RUN_OPTIONS:
        given.pop(key, None)
    if given.get("recipe") is not None:  # the recipe fills what was not given
        from hyperdml.train.recipes import recipe_settings

        if given.get("arch") == "auto":
            del given["arch"]
        filled = recipe_settings(given["recipe"], given.get("dataset", DEFAULTS["dataset"]), given.get("arch"))
        given = {**filled, **given}
    cfg.update(copy.deepcopy(given))

    if cfg["dataset"] not in DATASETS:
        raise ConfigError(f"--dataset must be one of {', '.join(DATASETS)}, got {cfg['dataset']!r}")
    if cfg["dataset"] not in SMALL_DATASETS and not cfg["data_root"]:
        raise ConfigError(f"--dataset {cfg['dataset']} reads a local folder: give it with --data-root DIR")
    if cfg["samples_per_class"] is not None and (not _is_int(cfg["samples_per_class"]) or cfg["samples_per_class"] < 1):
        raise ConfigError(f"--samples-per-class must be a positive integer, got {cfg['samples_per_class']!r}")
    if cfg["batch_size"] is None:
        cfg["batch_size"], cfg["samples_per_class"] = default_batch(cfg["dataset"], cfg["samples_per_class"])
    elif cfg["samples_per_class"] is None:
        cfg["samples_per_class"] = default_batch(cfg["dataset"])[1]
    for key in ("seed", "data_seed"):
        if not _is_int(cfg[key]) or not 0 <= cfg[key] <= MAX_SEED:
            raise ConfigError(f"--{key.replace('_', '-')} must be an integer in [0, {MAX_SEED}], got {cfg[key]!r}")
    if cfg["image_size"] is not None and (not _is_int(cfg["image_size"]) or cfg["image_size"] < 1):
        raise ConfigError(f"--image-size must be a positive integer (pixels per side), got {cfg['image_size']!r}")
    if not isinstance(cfg["device"], str) or not _DEVICE.fullmatch(cfg["device"]):
        raise ConfigError(f"--device must be auto, cpu, cuda or cuda:N, got {cfg['device']!r}")
    for key in _POSITIVE_INT:
        if not _is_int(cfg[key]) or cfg[key] < 1:
            raise ConfigError(f"--{key.replace('_', '-')} must be a positive integer, got {cfg[key]!r}")
    for key in _NONNEG_FLOAT:
        v = cfg[key]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
            raise ConfigError(f"--{key.replace('_', '-')} must be a finite number >= 0, got {v!r}")
        cfg[key] = float(v)
    if not _is_number(cfg["adam_eps"]) or not cfg["adam_eps"] > 0:
        raise ConfigError(f"--adam-eps must be a finite number > 0 (Adam divides by it), got {cfg['adam_eps']!r}")
    cfg["adam_eps"] = float(cfg["adam_eps"])
    if cfg["hyperbolic_size"] is not None and (not _is_int(cfg["hyperbolic_size"]) or cfg["hyperbolic_size"] < 1):
        raise ConfigError(f"--hyperbolic-size must be a positive integer, got {cfg['hyperbolic_size']!r}")
    cfg["c"] = _curvature(cfg["c"])
    if cfg["clip_r"] is not None:
        if not (_is_number(cfg["clip_r"]) and cfg["clip_r"] > 0):
            raise ConfigError(f"--clip-r must be a finite number > 0 (or none), got {cfg['clip_r']!r}")
        cfg["clip_r"] = float(cfg["clip_r"])
    if not (_is_number(cfg["label_noise"]) and 0.0 <= cfg["label_noise"] < 1.0):
        raise ConfigError(f"--label-noise must lie in [0, 1), got {cfg['label_noise']!r}")
    if cfg["batch_size"] % cfg["samples_per_class"]:
        raise ConfigError(
            f"--batch-size {cfg['batch_size']} must be a multiple of --samples-per-class {cfg['samples_per_class']}"
        )
    if cfg["grad_clip"] is not None and not (_is_number(cfg["grad_clip"]) and cfg["grad_clip"] > 0):
        raise ConfigError(f"--grad-clip must be a finite number > 0, got {cfg['grad_clip']!r}")
    if cfg["max_steps"] is not None and (not _is_int(cfg["max_steps"]) or cfg["max_steps"] < 1):
        raise ConfigError(f"--max-steps must be a positive integer, got {cfg['max_steps']!r}")
    if not _is_int(cfg["eval_every"]) or cfg["eval_every"] < 0:
        raise ConfigError(f"--eval-every must be an integer >= 0, got {cfg['eval_every']!r}")
    if not _is_int(cfg["workers"]) or cfg["workers"] < 0:
        raise ConfigError(f"--workers must be an integer >= 0, got {cfg['workers']!r}")
    if cfg["schedule"] not in SCHEDULES:
        raise ConfigError(f"--schedule must be one of {', '.join(SCHEDULES)}, got {cfg['schedule']!r}")
    if not (_is_number(cfg["min_lr_mult"]) and 0.0 <= cfg["min_lr_mult"] <= 1.0):
        raise ConfigError(f"min_lr_mult must lie in [0, 1], got {cfg['min_lr_mult']!r}")
    amp = {"off": "none", "no": "none", "false": "none", "bfloat16": "bf16", "float16": "fp16"}.get(
        str(cfg["amp"]).lower(), str(cfg["amp"]).lower())
    if amp not in AMP_CHOICES:
        raise ConfigError(f"--amp must be one of {', '.join(AMP_CHOICES)}, got {cfg['amp']!r}")
    cfg["amp"] = amp

    cfg["hyperbolic_head"] = HYPERBOLIC_HEAD_ALIASES.get(cfg["hyperbolic_head"], cfg["hyperbolic_head"])
    if cfg["hyperbolic_head"] not in HYPERBOLIC_HEADS:
        raise ConfigError(f"--hyperbolic-head must be one of {', '.join(HYPERBOLIC_HEADS)}, got {cfg['hyperbolic_head']!r}")
    if cfg["arch"] == "auto":
        cfg["arch"] = "small_cnn" if cfg["dataset"] in SMALL_DATASETS else "resnet50"
    if cfg["arch"] not in ARCHS:
        raise ConfigError(f"--arch must be one of {', '.join(ARCHS)}, got {cfg['arch']!r}")
    if is_vit(cfg["arch"]):
        import importlib.util

        if importlib.util.find_spec("timm") is None:
            raise ConfigError(f"--arch {cfg['arch']} needs timm, an optional dependency: pip install hyperdml[vit]")
    needed = loss_head(cfg["loss"])  # ConfigError for an unknown loss
    if cfg["head"] == "auto":
        cfg["head"] = needed
    if cfg["head"] != needed:
        raise ConfigError(f"--loss {cfg['loss']} needs --head {needed} (got --head {cfg['head']})")
    if cfg["lr"] is None:
        cfg["lr"] = 1e-3 if cfg["arch"] == "small_cnn" else 1e-5 if is_vit(cfg["arch"]) else 1e-4
    if not _is_number(cfg["lr"]) or not cfg["lr"] > 0:
        raise ConfigError(f"--lr must be a finite number > 0, got {cfg['lr']!r}")
    cfg["lr"] = float(cfg["lr"])
    args = cfg["loss_args"]
    if not isinstance(args, (dict, list, tuple)):
        raise ConfigError(f"loss_args must be a dict or a list of key=value strings, got {type(args).__name__}")
    args = parse_loss_args(cfg["loss"], args if isinstance(args, dict) else list(args))
    cfg["loss_args"] = {k: list(v) if isinstance(v, tuple) else v for k, v in args.items()}
    return cfg
