"""Checkpoints: atomic writes, safe loads (``weights_only=True``), clear errors.

A checkpoint is a dict (see :data:`REQUIRED_KEYS`)::

    {"format": "hyperdml-checkpoint", "version": 1, "config": {...}, "epoch": int, "step": int,
     "model": state_dict, "loss": state_dict, "optimizer": state_dict, "scheduler": dict | None,
     "rng": {...}, "metrics": dict | None, "class_names": [...], "super_labels": [...] | None,
     "super_class_names": [...] | None}

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

__all__ = ["FORMAT", "VERSION", "REQUIRED_KEYS", "save_checkpoint", "load_checkpoint", "plain_tensors"]

FORMAT = "hyperdml-checkpoint"
VERSION = 1
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
