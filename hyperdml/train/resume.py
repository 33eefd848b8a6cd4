"""Resuming a run: which checkpoint, which config, and the training state put back.

- :func:`resolve_resume_path`: ``--resume`` (a file or a run folder) → the checkpoint file.
- :func:`merge_resume_config`: the checkpoint's config with the options a resumed run may change
  (:data:`RESUME_OVERRIDES`); any other option given with a different value is refused, naming it.
- :func:`resumed_config`: the same from a whole checkpoint (a loss state of an older layout keeps
  the loss settings it trained with).
- :func:`restore_training_state`: optimiser, schedule, scaler, position and RNG states of a
  checkpoint into a freshly built run.
"""

from __future__ import annotations

import os

import torch

from hyperdml.errors import CheckpointError, ConfigError
from hyperdml.train.config import HYPERBOLIC_HEAD_ALIASES, RUN_OPTIONS, resolve_config
from hyperdml.train.rng import set_rng_state

__all__ = ["RESUME_OVERRIDES", "resolve_resume_path", "merge_resume_config", "resumed_config", "restore_training_state"]

#: options that may differ from the checkpoint's when resuming (the rest must stay the same)
RESUME_OVERRIDES = ("epochs", "max_steps", "out", "quiet", "device", "eval_every", "eval_batch_size", "workers",
                    "log_every", "data_root")
#: filled in from the data set, not chosen by the user
_DERIVED = ("in_channels", "num_classes")


def resolve_resume_path(resume: str | os.PathLike) -> str:
    """``--resume`` value → checkpoint file: a file as is, a folder → ``<folder>/last.pt``."""
    path = os.fspath(resume)
    return os.path.join(path, "last.pt") if os.path.isdir(path) else path


def _refuse(key: str, old, new) -> ConfigError:
    flag = "--" + key.replace("_", "-")
    return ConfigError(
        f"--resume continues the checkpoint's run, whose {key} is {old!r}, not {new!r}: start a new run without "
        f"--resume to train with another {flag} (only {', '.join(RESUME_OVERRIDES)} may change on resume)"
    )


def merge_resume_config(given: dict, ckpt_cfg: dict, ckpt_path: str) -> dict:
    """The config of the resumed run: the checkpoint's, with the options of :data:`RESUME_OVERRIDES`
    taken from ``given``; ``out`` defaults to the checkpoint's folder.

    An option outside :data:`RESUME_OVERRIDES` given with a value other than the checkpoint's
    raises :class:`ConfigError` naming the option and both values (``"auto"`` values are compared
    after resolution, so ``arch="auto"`` matches a checkpoint whose ``auto`` became ``small_cnn``).
    """
    given = {k: v for k, v in given.items() if k not in RUN_OPTIONS}
    # checkpoints from before the option had linear heads; an alias is the head it names
    head = ckpt_cfg.get("hyperbolic_head") or "linear"
    ckpt_cfg = {**ckpt_cfg, "hyperbolic_head": HYPERBOLIC_HEAD_ALIASES.get(head, head)}
    merged = dict(ckpt_cfg)
    for key in RESUME_OVERRIDES:
        if key in given:
            merged[key] = given[key]
    if "out" not in given:
        merged["out"] = os.path.dirname(os.path.abspath(ckpt_path))
    changed = [k for k, v in given.items()
               if k not in RESUME_OVERRIDES and k not in _DERIVED and v != ckpt_cfg.get(k)]
    if not changed:
        return merged
    try:  # "auto" and defaults resolve to the checkpoint's values: not a change
        wanted = resolve_config({**ckpt_cfg, **given})
    except ConfigError:
        # the change does not even fit the rest of the checkpoint's config (e.g. another --loss
        # that needs another head): name the change, not the misfit it causes
        raise _refuse(changed[0], ckpt_cfg.get(changed[0]), given[changed[0]]) from None
    for key in changed:
        if wanted[key] != ckpt_cfg.get(key):
            raise _refuse(key, ckpt_cfg.get(key), wanted[key])
    return merged


def resumed_config(given: dict, ckpt: dict, ckpt_path: str) -> dict:
    """:func:`merge_resume_config` of a loaded checkpoint ``ckpt``: its config, with the loss
    settings of an older stored loss layout
    (:func:`~hyperdml.train.loss_factory.stored_loss_config`)."""
    from hyperdml.train.loss_factory import stored_loss_config

    return merge_resume_config(given, stored_loss_config(ckpt["config"], ckpt.get("loss")), ckpt_path)


def restore_training_state(ckpt: dict, *, optimizer, schedule, scaler, steps_per_epoch: int) -> tuple[int, int]:
    """Load a checkpoint's optimiser, schedule, scaler and RNG states; return ``(epoch, step)``.

    ``epoch`` counts the finished epochs, ``step`` the optimiser steps done. Raises
    :class:`CheckpointError` when the states do not fit (another optimiser layout, or another
    number of steps per epoch: different data or batch size).
    """
    try:
        optimizer.load_state_dict(ckpt["optimizer"])
    except (ValueError, KeyError, RuntimeError, TypeError) as exc:
        raise CheckpointError(f"cannot load the checkpoint's optimizer state: {exc}") from None
    # torch's Optimizer.load_state_dict turns Adam's "step" into a float32 tensor; geoopt's
    # RiemannianAdam keeps a Python int (bias corrections in float64): restore the int, or the
    # resumed run drifts from the uninterrupted one by float32 rounding.
    for st in optimizer.state.values():
        if isinstance(st.get("step"), torch.Tensor) and st["step"].dim() == 0:
            st["step"] = int(st["step"].item())
    if ckpt.get("scheduler"):
        schedule.load_state_dict(ckpt["scheduler"])
    if scaler is not None and ckpt.get("scaler"):
        scaler.load_state_dict(ckpt["scaler"])
    spe = (ckpt.get("sampler") or {}).get("steps_per_epoch")
    if spe is not None and int(spe) != steps_per_epoch:
        raise CheckpointError(f"the checkpoint was written with {spe} steps per epoch, this run has "
                              f"{steps_per_epoch} (different data or batch size)")
    epoch, step = int(ckpt["epoch"]), int(ckpt["step"])
    if not epoch * steps_per_epoch <= step <= (epoch + 1) * steps_per_epoch:
        raise CheckpointError(f"the checkpoint's position does not add up: {epoch} finished epochs of "
                              f"{steps_per_epoch} steps, but step {step}")
    set_rng_state(ckpt.get("rng") or {})
    return epoch, step
