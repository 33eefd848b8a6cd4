"""Evaluation: embeddings of a data set, retrieval metrics per head, checkpoints evaluated.

- :func:`compute_embeddings`: head outputs of a model over a data set.
- :func:`evaluate_embeddings`: retrieval metrics of one head's outputs in that head's space
  (mapped by ``space.to_space``, ranked by the space: cosine, or geodesic distance in the ball).
- :func:`evaluate_model`: every head of a model on a data set's test split (In-Shop: query vs
  gallery), each in its space (``model.spaces``).
- :func:`evaluate_checkpoint`: rebuild a model from a checkpoint and evaluate it.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["compute_embeddings", "evaluate_embeddings", "evaluate_model", "evaluate_checkpoint", "format_metrics_table"]


@torch.no_grad()
def compute_embeddings(model: nn.Module, dataset, batch_size: int = 256, device="cpu", workers: int = 0,
                       progress: bool | None = None):
    """Head outputs of ``model`` over ``dataset`` in order.

    Args:
        model: returns ``{head: (B, D)}`` for images ``(B, C, H, W)`` (put in eval mode during the
            pass, its mode restored after).
        dataset: items ``(image (C, H, W), int label)``.
        batch_size, device, workers: of the pass.
        progress: show the pass's progress (default: as :func:`hyperdml._progress.progress_enabled`
            says; off in plain library calls).

    Returns:
        ``({head: (N, D) float32 CPU tensor of HEAD OUTPUTS}, labels (N,) int64)``.
    """
    from torch.utils.data import DataLoader

    from hyperdml._progress import Progress

    device = torch.device(device)
    was_training = model.training
    model.eval()
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=workers,
                        pin_memory=device.type == "cuda")
    outs: dict[str, list[torch.Tensor]] = {}
    labels = []
    bar = Progress(loader, len(loader), f"embedding {len(dataset)} images", progress)
    try:
        for images, y in bar:
            z = model(images.to(device, non_blocking=True))
            for name, v in z.items():
                outs.setdefault(name, []).append(v.float().cpu())
            labels.append(torch.as_tensor(y, dtype=torch.int64))
    finally:
        bar.close()
        model.train(was_training)
    if not labels:
        raise ValueError("compute_embeddings: the data set is empty")
    return {k: torch.cat(v) for k, v in outs.items()}, torch.cat(labels)


def evaluate_embeddings(z: torch.Tensor, labels: torch.Tensor, space, *, query=None, query_labels=None) -> dict:
    """Retrieval metrics of one head's outputs ``z (N, D)`` with ``labels (N,)``, in ``space``.

    The outputs (and ``query``'s) are mapped by ``space.to_space`` and ranked by the space
    (:func:`hyperdml.metrics.evaluate_retrieval` with ``space=space``). Returns its dict.
    """
    from hyperdml.metrics import evaluate_retrieval

    with torch.no_grad():
        points = space.to_space(z)
        kwargs = {}
        if query is not None:
            kwargs = {"query": space.to_space(query), "query_labels": query_labels}
    return {k: float(v) for k, v in evaluate_retrieval(points, labels, space=space, **kwargs).items()}


def evaluate_model(model: nn.Module, splits, *, spaces: dict | None = None, batch_size: int = 256, device="cpu",
                   workers: int = 0, progress: bool | None = None) -> dict:
    """Metrics of every head of ``model`` on ``splits.test`` → ``{head: metrics dict}``.

    Each head is evaluated in its space: ``spaces[head]`` (default ``model.spaces``). With
    ``splits.query``/``splits.gallery`` set (In-Shop) the query images are ranked against the
    gallery; otherwise every test image against the rest. ``progress``: of the embedding passes
    (see :func:`compute_embeddings`).
    """
    spaces = model.spaces if spaces is None else spaces
    if getattr(splits, "query", None) is not None and getattr(splits, "gallery", None) is not None:
        zg, yg = compute_embeddings(model, splits.gallery, batch_size, device, workers, progress)
        zq, yq = compute_embeddings(model, splits.query, batch_size, device, workers, progress)
        return {h: evaluate_embeddings(zg[h], yg, spaces[h], query=zq[h], query_labels=yq) for h in zg}
    z, y = compute_embeddings(model, splits.test, batch_size, device, workers, progress)
    return {h: evaluate_embeddings(z[h], y, spaces[h]) for h in z}


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

    Returns ``{"checkpoint", "epoch", "step", "dataset", "heads": {head: metrics}}`` (``epoch``:
    the 1-based epoch of the checkpoint's last step, as in ``log.jsonl``).
    Raises ``CheckpointError`` (unreadable or unfitting checkpoint) or ``DatasetError``.
    """
    from hyperdml.data import build_datasets
    from hyperdml.data.splits import check_evaluable
    from hyperdml.train.checkpoint import build_from_checkpoint, load_checkpoint

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
    check_evaluable(splits, cfg["dataset"])
    if splits.channels != model.backbone.in_channels:
        from hyperdml.errors import ConfigError

        raise ConfigError(f"data set {cfg['dataset']!r} has {splits.channels}-channel images but the checkpoint's "
                          f"model takes {model.backbone.in_channels} channels")
    heads = evaluate_model(model, splits, batch_size=batch_size, device=device, workers=workers)
    spe = (ckpt.get("sampler") or {}).get("steps_per_epoch")
    epoch = -(-int(ckpt["step"]) // int(spe)) if spe else int(ckpt["epoch"])  # 1-based, as in log.jsonl
    return {"checkpoint": str(path), "epoch": epoch, "step": int(ckpt["step"]),
            "dataset": cfg["dataset"], "heads": heads}
