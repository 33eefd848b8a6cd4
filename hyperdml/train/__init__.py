"""Training and evaluation: ``hyperdml train`` / ``hyperdml eval`` in Python.

- :func:`train` (config dict → final metrics), :class:`Trainer`.
- :func:`build_loss` (any loss by name), :func:`resolve_config`, :data:`DEFAULTS`.
- :func:`save_checkpoint`, :func:`load_checkpoint` (atomic, ``weights_only``),
  :func:`build_from_checkpoint` (checkpoint → model, loss).
- :func:`compute_embeddings`, :func:`evaluate_model`, :func:`evaluate_checkpoint`.
- :mod:`hyperdml.train.distributed`: ``setup_distributed`` / ``cleanup_distributed`` (torchrun).
"""

import importlib

_EXPORTS = {
    "train": "trainer", "Trainer": "trainer",
    "build_loss": "losses", "parse_loss_args": "losses",
    "resolve_config": "config", "DEFAULTS": "config",
    "save_checkpoint": "checkpoint", "load_checkpoint": "checkpoint",
    "build_from_checkpoint": "evaluate", "compute_embeddings": "evaluate", "evaluate_model": "evaluate",
    "evaluate_checkpoint": "evaluate", "evaluate_embeddings": "evaluate",
    "setup_distributed": "distributed", "cleanup_distributed": "distributed",
}


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"hyperdml.train.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'hyperdml.train' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))


__all__ = sorted(_EXPORTS)
