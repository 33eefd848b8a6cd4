"""Checkpoints: atomic writes, safe loads (``weights_only=True``), clear errors.

A checkpoint is a dict (see :data:`REQUIRED_KEYS`)::

    {"format": "hyperdml-checkpoint", "version": 2, "config": {...}, "epoch": int, "step": int,
     "spaces": {head: space config}, "model": state_dict, "loss": state_dict,
     "optimizer": state_dict, "scheduler": dict | None, "rng": {...}, "metrics": dict | None,
     "class_names": [...], "super_labels": [...] | None, "super_class_names": [...] | None}

``spaces`` records the space of each model head (``Space.config()``: kind, ``c``, ``clip_r``,
``inputs``, ...); :func:`checkpoint_spaces` rebuilds them and :func:`build_from_checkpoint` gives
them to the model, the loss and evaluation. Version-1 checkpoints (no ``spaces``) get theirs
rebuilt from their config, as they were trained: linear heads whose outputs the loss mapped into
the ball (``inputs="tangent"``) with the config's ``c`` and ``clip_r``.

:func:`save_checkpoint` writes it to a temporary file in the destination folder, flushes and
fsyncs it, then ``os.replace``-s it over the destination, so a reader (or a crash) never sees a
half-written file: the previous checkpoint stays intact until the new one is complete. Before
unpickling, :func:`load_checkpoint` verifies the CRC-32 that the zip format stores for every record
(PyTorch's reader does not), so a file damaged on disk is refused rather than loaded with wrong
weights or a wrong config.
:func:`load_checkpoint` reads with ``torch.load(weights_only=True)`` (no arbitrary code runs)
and raises :class:`~hyperdml.errors.CheckpointError` for anything that is not a complete
hyperdml checkpoint.
"""

from __future__ import annotations

import os
import tempfile
import zipfile
from collections import OrderedDict

import torch

from hyperdml.errors import CheckpointError

__all__ = ["FORMAT", "VERSION", "REQUIRED_KEYS", "save_checkpoint", "load_checkpoint", "check_checkpoint", "plain_tensors",
           "checkpoint_spaces", "build_from_checkpoint", "load_state"]

FORMAT = "hyperdml-checkpoint"
VERSION = 2
REQUIRED_KEYS = ("format", "version", "config", "epoch", "step", "model", "loss")


def plain_tensors(obj):
    """``obj`` with every tensor subclass (e.g. ``geoopt.ManifoldParameter``) as a plain tensor.

    Recurses into dicts, lists and tuples; ``weights_only`` loading accepts only plain tensors.
    """
    if isinstance(obj, torch.Tensor):
        return obj.detach().as_subclass(torch.Tensor) if type(obj) is not torch.Tensor else obj.detach()
    if isinstance(obj, dict):
        out = type(obj)() if isinstance(obj, OrderedDict) else {}
        for k, v in obj.items():
            out[k] = plain_tensors(v)
        if hasattr(obj, "_metadata"):  # a state_dict's per-module versions
            out._metadata = obj._metadata
        return out
    if isinstance(obj, list):
        return [plain_tensors(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(plain_tensors(v) for v in obj)
    return obj


def save_checkpoint(path: str | os.PathLike, state: dict) -> None:
    """Write ``state`` (a checkpoint dict) to ``path`` atomically.

    The dict is saved (tensor subclasses as plain tensors) to a temporary file next to ``path``,
    flushed and fsynced, then renamed over ``path`` with ``os.replace`` (atomic on POSIX and
    Windows); the folder is created if needed and fsynced after the rename where the OS allows.
    On any error the temporary file is removed and ``path`` is untouched.
    """
    path = os.fspath(path)
    if not isinstance(state, dict):
        raise TypeError(f"a checkpoint must be a dict, got {type(state).__name__}")
    state = dict(state)
    state.setdefault("format", FORMAT)
    state.setdefault("version", VERSION)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(plain_tensors(state), f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    try:  # make the rename itself durable
        dir_fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


def _verify_zip(path: str) -> None:
    """CheckpointError unless ``path`` is a zip archive (``torch.save``'s format) whose records all
    match their stored CRC-32 (``zipfile.ZipFile.testzip``)."""
    if os.path.getsize(path) == 0:
        raise CheckpointError(f"{path} is not a readable hyperdml checkpoint: the file is empty")
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except zipfile.BadZipFile as exc:
        raise CheckpointError(f"{path} is not a readable hyperdml checkpoint: not a complete torch.save zip "
                              f"archive (another kind of file, or truncated or corrupt: {exc})") from None
    except Exception as exc:  # noqa: BLE001 - damaged headers raise all sorts of errors
        raise CheckpointError(f"{path} is not a readable hyperdml checkpoint: the file is truncated or corrupt "
                              f"({type(exc).__name__}: {str(exc)[:160]})") from None
    if bad is not None:
        raise CheckpointError(f"{path} is corrupt: its record {bad!r} fails its CRC-32 check (damaged on disk?); "
                              "use an earlier checkpoint")


def load_checkpoint(path: str | os.PathLike, map_location="cpu") -> dict:
    """Read a checkpoint written by :func:`save_checkpoint`, with ``weights_only=True``.

    Raises:
        FileNotFoundError: no file at ``path``.
        CheckpointError: a truncated or corrupt file (zip structure or any record's CRC-32), a
            pickle with objects that are not plain
            data (refused by ``weights_only``), not a dict, another ``format``, a newer
            ``version``, or missing keys; the message names the file and the problem.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        raise CheckpointError(f"{path} is a folder, not a checkpoint file (did you mean {os.path.join(path, 'last.pt')}?)")
    if not os.path.exists(path):
        raise FileNotFoundError(f"no checkpoint at {path}")
    _verify_zip(path)
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - every failure mode means "not a usable checkpoint"
        text = str(exc).strip()
        if "WeightsUnpickler error:" in text:  # the useful part of torch's long message
            text = text.split("WeightsUnpickler error:", 1)[1].strip()
        msg = text.splitlines()[0] if text else type(exc).__name__
        if "Unsupported global" in text:
            why = (f"it holds objects other than tensors and plain data, refused by weights_only loading "
                   f"({msg[:160]})")
        else:
            why = f"the file is truncated or corrupt ({type(exc).__name__}: {msg[:200]})"
        raise CheckpointError(f"{path} is not a readable hyperdml checkpoint: {why}") from None
    return check_checkpoint(state, path)


def check_checkpoint(state, source: str = "checkpoint") -> dict:
    """``state`` if it is a complete hyperdml checkpoint dict; :class:`CheckpointError` naming
    ``source`` and the problem otherwise (another kind of object, another ``format``, a newer
    ``version``, missing keys, a config that is not a dict)."""
    path = source
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} is not a hyperdml checkpoint: it holds a {type(state).__name__}, not a dict")
    if state.get("format") != FORMAT:
        keys = ", ".join(sorted(map(str, state))[:6])
        raise CheckpointError(
            f"{path} is not a hyperdml checkpoint (no 'format': '{FORMAT}'; its keys: {keys or 'none'}); "
            "to start from pretrained backbone weights use --weights"
        )
    if not isinstance(state.get("version"), int) or state["version"] > VERSION:
        raise CheckpointError(
            f"{path} has checkpoint version {state.get('version')!r}; this hyperdml reads version <= {VERSION}"
        )
    missing = [k for k in REQUIRED_KEYS if k not in state]
    if missing:
        raise CheckpointError(f"{path} is an incomplete hyperdml checkpoint: missing {', '.join(missing)}")
    if not isinstance(state["config"], dict):
        raise CheckpointError(f"{path}: the checkpoint's 'config' is not a dict")
    return state


def checkpoint_spaces(ckpt: dict) -> dict:
    """The space of each head of a checkpoint's model: ``{head: Space}``.

    From ``ckpt["spaces"]`` (version 2), or, for a version-1 checkpoint, rebuilt from its config
    (:func:`hyperdml.train.losses.head_spaces`: linear heads, ``inputs="tangent"``). Raises
    :class:`CheckpointError` when the recorded spaces cannot be rebuilt.
    """
    from hyperdml.spaces import space_from_config
    from hyperdml.train.losses import head_spaces

    cfg = ckpt.get("config") or {}
    if ckpt.get("spaces") is None:
        try:
            return head_spaces({**cfg, "hyperbolic_head": "linear"})
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(f"cannot rebuild the spaces of a version-1 checkpoint from its config: {exc}") from None
    recorded = ckpt["spaces"]
    if not isinstance(recorded, dict) or not recorded:
        raise CheckpointError(f"the checkpoint's 'spaces' is not a dict of head spaces: {recorded!r}")
    try:
        return {str(head): space_from_config(conf) for head, conf in recorded.items()}
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"the checkpoint's spaces cannot be rebuilt: {exc}") from None


def build_from_checkpoint(ckpt: dict, device="cpu"):
    """Rebuild ``(model, loss)`` from a checkpoint dict and load their states.

    Uses ``ckpt["config"]`` (architecture, heads, sizes, loss and its arguments), the recorded
    spaces (:func:`checkpoint_spaces`) and the number of classes of the stored class names (or of
    the loss). The model's ``spaces`` are the checkpoint's. Raises :class:`CheckpointError` when
    the config does not build or a stored state does not fit the rebuilt modules (the message
    names the first keys that differ).
    """
    from hyperdml.errors import ConfigError
    from hyperdml.models import build_model
    from hyperdml.train.losses import build_loss

    cfg = ckpt.get("config") or {}
    spaces = checkpoint_spaces(ckpt)
    try:
        model = build_model(cfg["arch"], embedding_size=cfg["embedding_size"], head=cfg["head"],
                            hyperbolic_size=cfg.get("hyperbolic_size"), spaces=spaces,
                            in_channels=int(cfg.get("in_channels", 3)))
        num_classes = int(cfg.get("num_classes") or len(ckpt.get("class_names") or []))
        loss = build_loss(cfg, num_classes, spaces=spaces) if num_classes > 0 else None
    except (KeyError, ValueError, TypeError) as exc:
        if isinstance(exc, ConfigError):
            raise CheckpointError(f"the checkpoint's config does not build a model and loss: {exc}") from None
        raise CheckpointError(f"the checkpoint's config does not build a model and loss: {exc!r}") from None
    load_state(model, ckpt["model"], "model")
    if loss is not None and ckpt.get("loss") is not None:
        load_state(loss, ckpt["loss"], "loss")
    return model.to(device), (loss.to(device) if loss is not None else None)


def load_state(module, state: dict, what: str) -> None:
    """``module.load_state_dict(state)`` with a :class:`CheckpointError` naming what does not fit."""
    from hyperdml.models.backbones import state_mismatch

    if not isinstance(state, dict):
        raise CheckpointError(f"the checkpoint's {what} state is not a dict")
    mismatch = state_mismatch(module.state_dict(), state)
    if mismatch:
        raise CheckpointError(f"the checkpoint's {what} does not fit the {type(module).__name__} built from its "
                              f"config: {mismatch}")
    try:
        module.load_state_dict(state)
    except (RuntimeError, KeyError, ValueError) as exc:
        raise CheckpointError(f"cannot load the checkpoint's {what}: {str(exc).splitlines()[0]}") from None
