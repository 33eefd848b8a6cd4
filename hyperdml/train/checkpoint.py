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
import re
import zipfile
from collections import OrderedDict

import torch

from hyperdml._atomic import atomic_open
from hyperdml.errors import CheckpointError

__all__ = ["FORMAT", "VERSION", "REQUIRED_KEYS", "save_checkpoint", "load_checkpoint", "check_checkpoint", "plain_tensors",
           "checkpoint_spaces", "build_from_checkpoint", "load_state", "check_sizes"]

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
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with atomic_open(path, "wb") as f:
        torch.save(plain_tensors(state), f)


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
        raise CheckpointError(f"{path} {_load_failure(exc)}") from None
    return check_checkpoint(state, path)


def _load_failure(exc: Exception) -> str:
    """Why ``torch.load(weights_only=True)`` refused a file, in one line and in our words (torch's
    message suggests loading again with ``weights_only=False``, which would run the file's code)."""
    text = str(exc)
    if text.startswith("Weights only load failed"):
        names = re.findall(r"GLOBAL ([\w.]+)", text)
        what = f": {', '.join(dict.fromkeys(names))}" if names else ""
        return ("was not loaded: it contains code or objects other than tensors and plain data"
                f"{what} (refused by weights_only loading; a hyperdml checkpoint holds none)")
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return f"is not a readable hyperdml checkpoint: the file is truncated or corrupt ({type(exc).__name__}: {first[:200]})"


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
    for key in ("epoch", "step"):
        value = state[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise CheckpointError(f"{path}: the checkpoint's {key!r} must be an integer >= 0, got {value!r}")
    return state


def checkpoint_spaces(ckpt: dict) -> dict:
    """The space of each head of a checkpoint's model: ``{head: Space}``.

    From ``ckpt["spaces"]`` (version 2), or, for a version-1 checkpoint, rebuilt from its config
    (:func:`hyperdml.train.loss_factory.head_spaces`: linear heads, ``inputs="tangent"``). Raises
    :class:`CheckpointError` when the recorded spaces cannot be rebuilt.
    """
    from hyperdml.spaces import space_from_config
    from hyperdml.train.loss_factory import head_spaces

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
    the loss). A loss state of an older layout is rebuilt with the defaults it was trained with
    (:func:`~hyperdml.train.loss_factory.stored_loss_config`). The model's ``spaces`` are the checkpoint's. Raises :class:`CheckpointError` when
    the config does not build or a stored state does not fit the rebuilt modules (the message
    names the first keys that differ).
    """
    from hyperdml.errors import ConfigError
    from hyperdml.models import build_model
    from hyperdml.train.loss_factory import build_loss, hyperbolic_head_norm, stored_loss_config

    cfg = ckpt.get("config") or {}
    check_sizes(ckpt)
    spaces = checkpoint_spaces(ckpt)
    try:
        model = build_model(cfg["arch"], embedding_size=cfg["embedding_size"], head=cfg["head"],
                            hyperbolic_size=cfg.get("hyperbolic_size"), spaces=spaces,
                            in_channels=int(cfg.get("in_channels", 3)),
                            head_norm=hyperbolic_head_norm(cfg))
        num_classes = int(cfg.get("num_classes") or len(ckpt.get("class_names") or []))
        loss_cfg = stored_loss_config(cfg, ckpt.get("loss"))
        loss = build_loss(loss_cfg, num_classes, spaces=spaces) if num_classes > 0 else None
    except (KeyError, ValueError, TypeError) as exc:
        if isinstance(exc, ConfigError):
            raise CheckpointError(f"the checkpoint's config does not build a model and loss: {exc}") from None
        raise CheckpointError(f"the checkpoint's config does not build a model and loss: {exc!r}") from None
    load_state(model, ckpt["model"], "model")
    if loss is not None and ckpt.get("loss") is not None:
        load_state(loss, ckpt["loss"], "loss")
    return model.to(device), (loss.to(device) if loss is not None else None)


def _numel(state) -> int:
    """Elements of all the tensors in a (nested) state dict."""
    if isinstance(state, torch.Tensor):
        return state.numel()
    if isinstance(state, dict):
        return sum(_numel(v) for v in state.values())
    if isinstance(state, (list, tuple)):
        return sum(_numel(v) for v in state)
    return 0


def check_sizes(ckpt: dict) -> None:
    """CheckpointError unless the sizes in a checkpoint's config fit what it stores, checked before
    anything is built from them (a config edited to ``num_classes=1e9`` would otherwise allocate
    its proxies first and fail after): ``num_classes``, ``embedding_size``, ``hyperbolic_size``
    and ``in_channels`` positive integers (or absent where optional), the proxies they imply
    (``num_classes · size`` numbers at least) no more than the stored loss state holds (a smaller
    mismatch is named when the state is loaded: :func:`load_state`)."""
    cfg = ckpt.get("config") or {}
    for key in ("num_classes", "embedding_size", "hyperbolic_size", "in_channels"):
        value = cfg.get(key)
        if value is None and key != "embedding_size":
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise CheckpointError(f"the checkpoint's config has {key}={value!r}; expected a positive integer")
    names = ckpt.get("class_names")
    names = names if isinstance(names, (list, tuple)) else None
    num_classes = cfg.get("num_classes") or (len(names) if names is not None else 0)
    size = min(cfg["embedding_size"], cfg.get("hyperbolic_size") or cfg["embedding_size"])
    stored = _numel(ckpt.get("loss"))
    if num_classes and stored and num_classes * size > stored:
        raise CheckpointError(f"the checkpoint's loss does not fit its config: {num_classes} classes of size {size} "
                              f"need at least {num_classes * size} numbers of proxies, the stored loss state holds "
                              f"{stored}")


def load_state(module, state: dict, what: str) -> None:
    """``module.load_state_dict(state)`` with a :class:`CheckpointError` naming what does not fit:
    a key or shape that differs, or a floating-point tensor holding NaN or Inf (weights or proxies
    of a diverged run, or a damaged file, are not loaded as if they were a model)."""
    from hyperdml.models.backbones import state_mismatch

    if not isinstance(state, dict):
        raise CheckpointError(f"the checkpoint's {what} state is not a dict")
    for key, value in state.items():
        if isinstance(value, torch.Tensor) and value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise CheckpointError(f"the checkpoint's {what} holds NaN or Inf in {key!r}: the run that wrote it had "
                                  "diverged, or the file was altered; use an earlier checkpoint")
    mismatch = state_mismatch(module.state_dict(), state)
    if mismatch:
        raise CheckpointError(f"the checkpoint's {what} does not fit the {type(module).__name__} built from its "
                              f"config: {mismatch}")
    try:
        module.load_state_dict(state)
    except (RuntimeError, KeyError, ValueError) as exc:
        raise CheckpointError(f"cannot load the checkpoint's {what}: {str(exc).splitlines()[0]}") from None
