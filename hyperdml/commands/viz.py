"""``hyperdml viz``: the hierarchy report of a checkpoint (dendrograms, Poincaré disk, tree metrics).

:func:`write_hierarchy_report` reads the checkpoint, rebuilds its model and loss
(:func:`hyperdml.train.checkpoint.build_from_checkpoint`), embeds a sample of the test split with
the model and hands the loss and the embeddings to :func:`hyperdml.viz.write_loss_report`.
"""

from __future__ import annotations

HELP = "plot the hierarchy of a checkpoint's hyperbolic proxies (dendrogram, Poincaré disk, tree_metrics.json)"
DESCRIPTION = """Rebuild the model and loss of a checkpoint written by hyperdml train, decode a tree
from its hyperbolic proxies (HypHC single linkage on LCA depth, one leaf per class) and write to
--out: dendrogram.<fmt> (hyperbolic tree, and the Euclidean proxies' cosine tree beside it for a
dual/CHEST model; leaves coloured by super-class when the data set has a hierarchy),
poincare_disk.<fmt> (proxies, decoded tree as geodesics and up to --max-points test embeddings,
reduced to the disk by PCA in the tangent space at the origin) and tree_metrics.json (Dasgupta
cost, dendrogram purity against the super-classes). Without the data, only the proxies are
plotted. The checkpoint needs hyperbolic proxies (a hyperbolic or dual model)."""


def add_arguments(parser) -> None:
    """Options of ``hyperdml viz``."""
    parser.add_argument("--checkpoint", required=True, metavar="CKPT", help="checkpoint file or run folder (last.pt)")
    parser.add_argument("--out", required=True, metavar="DIR", help="folder for the figures and tree_metrics.json")
    parser.add_argument("--format", choices=("png", "svg"), default="png", help="image format")
    parser.add_argument("--max-points", type=int, default=2000, metavar="N",
                        help="test embeddings plotted at most (a seeded sample); 0 plots proxies only")
    parser.add_argument("--data-root", default=None, metavar="DIR", help="data folder instead of the checkpoint's")
    parser.add_argument("--device", default="cpu", help="device for the test embeddings: cpu, cuda, cuda:N or auto")


def run(args) -> int:
    from hyperdml.errors import ConfigError

    if args.max_points < 0:
        raise ConfigError(f"--max-points must be >= 0, got {args.max_points}")
    from hyperdml.train.distributed import resolve_device
    from hyperdml.train.run_folder import make_out_folder

    make_out_folder(args.out)
    # a run folder means its last.pt, and a missing file is a FileNotFoundError: both in the report
    result = write_hierarchy_report(args.checkpoint, args.out, fmt=args.format, max_points=args.max_points,
                                    device=str(resolve_device(args.device)), data_root=args.data_root)
    spaces = result["metrics"]["spaces"]
    for space, m in spaces.items():
        cost = m["dasgupta_cost"]
        costs = ", ".join(f"{k} {v:.4f}" for k, v in cost.items())
        purity = "n/a" if m["dendrogram_purity"] is None else f"{m['dendrogram_purity']:.4f}"
        if m.get("dendrogram_purity_shuffled") is not None:
            purity += f" (chance {m['dendrogram_purity_shuffled']:.4f})"
        print(f"{space}: {m['leaves']} leaves, dendrogram purity {purity}, Dasgupta cost (normalised) {costs}")
    for note in result["notes"]:
        print(f"note: {note}")
    for name, file in result["files"].items():
        print(f"wrote {file}")
    return 0


def _test_embeddings(model, hyp, cfg: dict, ckpt: dict, splits, max_points: int, device: str, notes: list):
    """Points of ``hyp``'s space and colour keys of up to ``max_points`` test items (from the head of
    the same name), or ``(None, None)`` with a note."""
    import numpy as np
    import torch

    from hyperdml.errors import HyperdmlError

    if splits is None:
        try:
            from hyperdml.data import build_datasets

            seed = cfg.get("data_seed", cfg.get("seed", 0))
            splits = build_datasets(cfg["dataset"], cfg.get("data_root"), image_size=cfg.get("image_size"),
                                    seed=int(seed or 0))
        except (HyperdmlError, OSError, ImportError, KeyError, TypeError, ValueError) as exc:
            notes.append(f"test embeddings not plotted: data unavailable ({type(exc).__name__}: {exc})")
            return None, None
    test = splits.test if getattr(splits, "test", None) is not None else getattr(splits, "gallery", None)
    if test is None or len(test) == 0:
        notes.append("test embeddings not plotted: the test split is empty")
        return None, None
    rng = np.random.default_rng(0)
    idx = np.sort(rng.choice(len(test), min(max_points, len(test)), replace=False))
    from hyperdml.train import compute_embeddings

    outputs, labels = compute_embeddings(model, torch.utils.data.Subset(test, idx.tolist()), device=device)
    if hyp.name not in outputs:
        notes.append(f"test embeddings not plotted: the model has no {hyp.name} head")
        return None, None
    with torch.no_grad():
        emb = hyp.space.to_space(outputs[hyp.name].detach().to("cpu", torch.float64))
    labels = np.asarray(torch.as_tensor(labels).cpu(), dtype=np.int64)
    keys = None
    train_super = ckpt.get("super_labels")
    test_super = getattr(splits, "test_super_labels", None)
    same_classes = list(getattr(splits, "test_class_names", []) or []) == list(ckpt.get("class_names") or [None])
    if train_super is not None and test_super is not None:
        keys = np.asarray(test_super, dtype=np.int64)[labels]
    elif train_super is None and same_classes:
        keys = labels
    else:
        notes.append("test embeddings drawn grey: their classes are not the proxies' classes")
    return emb, keys


def write_hierarchy_report(checkpoint, out_dir, *, fmt: str = "png", max_points: int = 2000, splits=None,
                           device: str = "cpu", data_root: str | None = None) -> dict:
    """Hierarchy report of a checkpoint: figures and ``tree_metrics.json`` in ``out_dir``.

    Args:
        checkpoint: checkpoint dict (the trainer's format) or a path to one
            (:func:`hyperdml.train.checkpoint.load_checkpoint`), or a run folder (its ``last.pt``).
        out_dir: folder to write into (created).
        fmt: ``"png"`` or ``"svg"``.
        max_points: test embeddings plotted at most (sampled with seed 0).
        splits: a :class:`hyperdml.data.DataSplits` to take the test split from; default: built
            from the checkpoint's config; when the data is unavailable the proxies are plotted
            alone and ``notes`` says so.
        device: where the model computes the embeddings.
        data_root: read the checkpoint's data set from this folder instead of its config's.

    Returns:
        ``{"files": {"dendrogram", "poincare_disk", "tree_metrics": path}, "metrics": dict,
        "notes": [str]}``. Raises :class:`~hyperdml.errors.CheckpointError` for a file that is not
        a hyperdml checkpoint or a checkpoint without hyperbolic proxies.
    """
    import os

    from hyperdml.errors import CheckpointError, HyperdmlError
    from hyperdml.train.checkpoint import build_from_checkpoint, check_checkpoint, load_checkpoint
    from hyperdml.viz.analysis import report_proxy_sets
    from hyperdml.viz.report import check_format, write_loss_report

    check_format(fmt)
    if isinstance(checkpoint, (str, os.PathLike)):
        if os.path.isdir(checkpoint):
            checkpoint = os.path.join(checkpoint, "last.pt")
        ckpt = load_checkpoint(checkpoint)  # validates the format, version and keys itself
        source = str(checkpoint)
    else:
        ckpt, source = check_checkpoint(checkpoint), "checkpoint"
    model, loss = build_from_checkpoint(ckpt, device=device)
    if loss is None:
        raise CheckpointError(f"{source} holds no loss state (no proxies to plot)")
    cfg = dict(ckpt["config"])
    try:
        found = report_proxy_sets(loss)
    except HyperdmlError as exc:
        raise CheckpointError(
            f"{source} (loss {cfg.get('loss')!r}, head {cfg.get('head')!r}): {exc}; hyperdml viz needs a "
            "hyperbolic or dual (CHEST) model") from None
    if data_root is not None:
        cfg["data_root"] = data_root
    notes: list = []
    model.eval()
    if max_points > 0:
        emb, keys = _test_embeddings(model, next(iter(found.values())), cfg, ckpt, splits, max_points, device, notes)
    else:
        emb = keys = None
        notes.append("test embeddings not plotted (max_points=0)")
    return write_loss_report(
        loss, out_dir, fmt=fmt, notes=notes,
        extra={"checkpoint": {"source": source, "epoch": ckpt.get("epoch"), "step": ckpt.get("step"),
                              "dataset": cfg.get("dataset"), "loss": cfg.get("loss"), "head": cfg.get("head")}},
        class_names=ckpt.get("class_names"), super_labels=ckpt.get("super_labels"),
        super_class_names=ckpt.get("super_class_names"), embeddings=emb, embedding_keys=keys,
        max_points=max_points, name=str(cfg.get("dataset") or ""),
    )
