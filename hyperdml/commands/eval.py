"""``hyperdml eval``: evaluate a checkpoint's heads on a test split and print a table."""

from __future__ import annotations

HELP = "evaluate a checkpoint (Recall@K, MAP@R, R-precision, NMI per head)"
DESCRIPTION = """Rebuild the model of a checkpoint written by hyperdml train, embed the test split
of its data set (or of --dataset/--data-root) and print retrieval metrics for each head
(Euclidean head: cosine; hyperbolic head: Poincaré distance). With --out, also write
<out>/metrics.json."""


def add_arguments(parser) -> None:
    """Options of ``hyperdml eval``."""
    parser.add_argument("--checkpoint", required=True, metavar="CKPT", help="checkpoint file or run folder (last.pt)")
    parser.add_argument("--dataset", default=None, help="evaluate on this data set instead of the checkpoint's")
    parser.add_argument("--data-root", default=None, metavar="DIR", help="data folder instead of the checkpoint's")
    parser.add_argument("--out", default=None, metavar="DIR", help="write DIR/metrics.json")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--batch-size", type=int, default=256, help="evaluation batch size")
    parser.add_argument("--workers", type=int, default=0, help="DataLoader worker processes")


def run(args) -> int:
    import json
    import os

    from hyperdml.train.distributed import resolve_device
    from hyperdml.train.evaluate import evaluate_checkpoint, format_metrics_table
    from hyperdml.train.trainer import resolve_resume_path

    path = resolve_resume_path(args.checkpoint)
    result = evaluate_checkpoint(path, dataset=args.dataset, data_root=args.data_root,
                                 device=resolve_device(args.device), batch_size=args.batch_size, workers=args.workers)
    print(f"{path}: epoch {result['epoch']}, step {result['step']}, data set {result['dataset']} (test split)")
    print(format_metrics_table(result["heads"]))
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, "metrics.json"), "w", encoding="utf-8") as f:
            json.dump(result, f, indent=2)
            f.write("\n")
    return 0
