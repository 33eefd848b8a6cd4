"""Training and evaluation: ``hyperdml train`` / ``hyperdml eval`` in Python.

- :func:`train` (config dict → final metrics), :class:`Trainer`.
- :func:`build_loss` (any loss by name), :func:`resolve_config`, :data:`DEFAULTS`.
- :func:`save_checkpoint`, :func:`load_checkpoint` (atomic, ``weights_only``),
  :func:`build_from_checkpoint` (checkpoint → model, loss), :func:`checkpoint_spaces`.
- :func:`compute_embeddings`, :func:`evaluate_model`, :func:`evaluate_checkpoint`.
- :mod:`hyperdml.train.distributed`: ``setup_distributed`` / ``cleanup_distributed`` (torchrun).
"""

from hyperdml._lazy import lazy_exports

_EXPORTS = {
    "train": "trainer", "Trainer": "trainer",
    "build_loss": "losses", "parse_loss_args": "losses",
    "resolve_config": "config", "DEFAULTS": "config",
    "save_checkpoint": "checkpoint", "load_checkpoint": "checkpoint", "build_from_checkpoint": "checkpoint",
    "checkpoint_spaces": "checkpoint", "head_spaces": "losses",
    "compute_embeddings": "evaluate", "evaluate_model": "evaluate",
    "evaluate_checkpoint": "evaluate", "evaluate_embeddings": "evaluate",
    "setup_distributed": "distributed", "cleanup_distributed": "distributed",
}


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())

__all__ = sorted(_EXPORTS)
