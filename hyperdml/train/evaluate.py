"""Evaluation: embeddings of a data set, retrieval metrics per head, checkpoints evaluated.

- :func:`compute_embeddings`: head outputs of a model over a data set.
- :func:`evaluate_embeddings`: retrieval metrics of one head's outputs (Euclidean head: cosine;
  hyperbolic head: ``metric="poincare"`` on ``PoincareSpace(c, clip_r).to_space(z)``).
- :func:`evaluate_model`: every head of a model on a data set's test split (In-Shop: query vs
  gallery).
- :func:`evaluate_checkpoint`: rebuild a model from a checkpoint and evaluate it.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["compute_embeddings", "evaluate_embeddings", "evaluate_model", "evaluate_checkpoint", "build_from_checkpoint",
           "format_metrics_table", "HEAD_METRIC"]

#: the retrieval metric of each head
HEAD_METRIC = {"euclidean": "cosine", "hyperbolic": "poincare"}


@torch.no_grad()
def compute_embeddings(model: nn.Module, dataset, batch_size: int = 256, device="cpu", workers: int = 0):
    """Head outputs of ``model`` over ``dataset`` in order.

    Args:
        model: returns ``{head: (B, D)}`` for images ``(B, C, H, W)`` (put in eval mode during the
            pass, its mode restored after).
        dataset: items ``(image (C, H, W), int label)``.
        batch_size, device, workers: of the pass.

    Returns:
        ``({head: (N, D) float32 CPU tensor of HEAD OUTPUTS}, labels (N,) int64)``.
    """
    from torch.utils.data import DataLoader

    device = torch.device(device)
    was_training = model.training
    model.eval()
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=workers,
                        pin_memory=device.type == "cuda")
    outs: dict[str, list[torch.Tensor]] = {}
    labels = []
    try:
        for images, y in loader:
            z = model(images.to(device, non_blocking=True))
            for name, v in z.items():
                outs.setdefault(name, []).append(v.float().cpu())
            labels.append(torch.as_tensor(y, dtype=torch.int64))
    finally:
        model.train(was_training)
    if not labels:
        raise ValueError("compute_embeddings: the data set is empty")
    return {k: torch.cat(v) for k, v in outs.items()}, torch.cat(labels)


def _ball_points(z: torch.Tensor, c: float, clip_r: float | None) -> torch.Tensor:
    from hyperdml.spaces import PoincareSpace

    return PoincareSpace(c=c, clip_r=clip_r).to_space(z)


def evaluate_embeddings(head: str, z: torch.Tensor, labels: torch.Tensor, *, c: float = 0.1,
                        clip_r: float | None = 2.3, query=None, query_labels=None) -> dict:
    """Retrieval metrics of one head's outputs ``z (N, D)`` with ``labels (N,)``.

    ``head="euclidean"``: cosine kNN on ``z``; ``"hyperbolic"``: Poincaré kNN on the ball points
    ``PoincareSpace(c, clip_r).to_space(z)`` (and of ``query`` likewise). Returns
    :func:`hyperdml.metrics.evaluate_retrieval`'s dict.
    """
    from hyperdml.metrics import evaluate_retrieval

    metric = HEAD_METRIC[head]
    if head == "hyperbolic":
        z = _ball_points(z, c, clip_r)
        query = None if query is None else _ball_points(query, c, clip_r)
    kwargs = {"metric": metric}
    if metric == "poincare":
        kwargs["c"] = c
    if query is not None:
        kwargs.update(query=query, query_labels=query_labels)
    return {k: float(v) for k, v in evaluate_retrieval(z, labels, **kwargs).items()}


def evaluate_model(model: nn.Module, splits, *, c: float = 0.1, clip_r: float | None = 2.3,
                   batch_size: int = 256, device="cpu", workers: int = 0) -> dict:
    """Metrics of every head of ``model`` on ``splits.test`` → ``{head: metrics dict}``.

    With ``splits.query``/``splits.gallery`` set (In-Shop) the query images are ranked against
    the gallery; otherwise every test image against the rest.
    """
    if getattr(splits, "query", None) is not None and getattr(splits, "gallery", None) is not None:
        zg, yg = compute_embeddings(model, splits.gallery, batch_size, device, workers)
        zq, yq = compute_embeddings(model, splits.query, batch_size, device, workers)
        return {h: evaluate_embeddings(h, zg[h], yg, c=c, clip_r=clip_r, query=zq[h], query_labels=yq) for h in zg}
    z, y = compute_embeddings(model, splits.test, batch_size, device, workers)
    return {h: evaluate_embeddings(h, z[h], y, c=c, clip_r=clip_r) for h in z}


def build_from_checkpoint(ckpt: dict, device="cpu"):
    """Rebuild ``(model, loss)`` from a checkpoint dict and load their states.

    Uses ``ckpt["config"]`` (architecture, heads, sizes, loss and its arguments) and the number
    of classes of the stored class names (or of the loss). Raises
    :class:`~hyperdml.errors.CheckpointError` when a stored state does not fit the rebuilt
    modules (the message names the first keys that differ).
    """
    from hyperdml.errors import CheckpointError, ConfigError
    from hyperdml.models import build_model
    from hyperdml.train.losses import build_loss

    cfg = ckpt.get("config") or {}
    try:
        model = build_model(cfg["arch"], embedding_size=cfg["embedding_size"], head=cfg["head"],
                            hyperbolic_size=cfg.get("hyperbolic_size"), c=cfg.get("c", 0.1),
                            clip_r=cfg.get("clip_r", 2.3), in_channels=int(cfg.get("in_channels", 3)))
        num_classes = int(cfg.get("num_classes") or len(ckpt.get("class_names") or []))
        loss = build_loss(cfg, num_classes) if num_classes > 0 else None
    except (KeyError, ValueError, TypeError) as exc:
        if isinstance(exc, ConfigError):
            raise CheckpointError(f"the checkpoint's config does not build a model and loss: {exc}") from None
        raise CheckpointError(f"the checkpoint's config does not build a model and loss: {exc!r}") from None
    load_state(model, ckpt["model"], "model")
    if loss is not None and ckpt.get("loss") is not None:
        load_state(loss, ckpt["loss"], "loss")
    return model.to(device), (loss.to(device) if loss is not None else None)


def load_state(module: nn.Module, state: dict, what: str) -> None:
    """``module.load_state_dict(state)`` with a :class:`CheckpointError` naming what does not fit."""
    from hyperdml.errors import CheckpointError

    if not isinstance(state, dict):
        raise CheckpointError(f"the checkpoint's {what} state is not a dict")
    from hyperdml.models.backbones import state_mismatch

    mismatch = state_mismatch(module.state_dict(), state)
    if mismatch:
        raise CheckpointError(f"the checkpoint's {what} does not fit the {type(module).__name__} built from its "
                              f"config: {mismatch}")
    try:
        module.load_state_dict(state)
    except (RuntimeError, KeyError, ValueError) as exc:
        raise CheckpointError(f"cannot load the checkpoint's {what}: {str(exc).splitlines()[0]}") from None


def format_metrics_table(metrics: dict, keys=("recall@1", "recall@2", "recall@4", "recall@8", "map@r",
                                              "r_precision", "nmi")) -> str:
    """``{head: {metric: value}}`` → a small aligned text table (one row per head, values in %)."""
    keys = [k for k in keys if any(k in m for m in metrics.values())]
    head_w = max([4] + [len(h) for h in metrics])
    lines = [f"{'head':<{head_w}}  " + "  ".join(f"{k:>11}" for k in keys)]
    for head, m in metrics.items():
        lines.append(f"{head:<{head_w}}  " + "  ".join(
            f"{100 * m[k]:>11.2f}" if k in m else f"{'-':>11}" for k in keys))
    return "\n".join(lines)


def evaluate_checkpoint(path: str, *, dataset: str | None = None, data_root: str | None = None,
                        device="cpu", batch_size: int = 256, workers: int = 0) -> dict:
    """Evaluate the checkpoint at ``path`` on its data set's test split (or ``dataset``/``data_root``).

    Returns ``{"checkpoint", "epoch", "step", "dataset", "heads": {head: metrics}}``.
    Raises ``CheckpointError`` (unreadable or unfitting checkpoint) or ``DatasetError``.
    """
    from hyperdml.data import build_datasets
    from hyperdml.train.checkpoint import load_checkpoint

    ckpt = load_checkpoint(path)
    cfg = dict(ckpt["config"])
    if dataset is not None:
        cfg["dataset"] = dataset
    if data_root is not None:
        cfg["data_root"] = data_root
    device = torch.device(device)
    model, _ = build_from_checkpoint(ckpt, device)
    splits = build_datasets(cfg["dataset"], cfg.get("data_root"), image_size=cfg.get("image_size"),
                            seed=int(cfg.get("data_seed", 0)))
    if splits.channels != model.backbone.in_channels:
        from hyperdml.errors import ConfigError

        raise ConfigError(f"data set {cfg['dataset']!r} has {splits.channels}-channel images but the checkpoint's "
                          f"model takes {model.backbone.in_channels} channels")
    heads = evaluate_model(model, splits, c=cfg.get("c", 0.1), clip_r=cfg.get("clip_r", 2.3),
                           batch_size=batch_size, device=device, workers=workers)
    return {"checkpoint": str(path), "epoch": int(ckpt["epoch"]), "step": int(ckpt["step"]),
            "dataset": cfg["dataset"], "heads": heads}
