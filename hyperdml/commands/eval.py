"""``hyperdml eval``: evaluate a checkpoint's heads on a test split and print a table."""

from __future__ import annotations

HELP = "evaluate a checkpoint (Recall@K, MAP@R, R-precision, NMI per head)"
DESCRIPTION = """Rebuild the model of a checkpoint written by hyperdml train, embed the test split
of its data set (or of --dataset/--data-root) and print retrieval metrics for each head
(Euclidean head: cosine; hyperbolic head: Poincaré distance). With --out, also write
<out>/metrics.json."""


def add_arguments(parser) -> None:
    """Options of ``hyperdml eval``."""
    from hyperdml.data.registry import DATASETS

    parser.add_argument("--checkpoint", required=True, metavar="CKPT", help="checkpoint file or run folder (last.pt)")
    parser.add_argument("--dataset", default=None, choices=DATASETS,
                        help="evaluate on this data set (default: the checkpoint's)")
    parser.add_argument("--data-root", default=None, metavar="DIR", help="data folder (default: the checkpoint's)")
    parser.add_argument("--out", default=None, metavar="DIR", help="write DIR/metrics.json")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--batch-size", type=int, default=256, help="evaluation batch size")
    parser.add_argument("--workers", type=int, default=0, help="DataLoader worker processes")


def run(args) -> int:
    import os

    from hyperdml._atomic import atomic_write_json
    from hyperdml.errors import ConfigError
    from hyperdml.train.distributed import resolve_device
    from hyperdml.train.evaluate import evaluate_checkpoint, format_metrics_table
    from hyperdml.train.resume import resolve_resume_path
    from hyperdml.train.run_folder import make_out_folder

    if args.batch_size < 1:
        raise ConfigError(f"--batch-size must be a positive integer, got {args.batch_size}")
    if args.workers < 0:
        raise ConfigError(f"--workers must be an integer >= 0, got {args.workers}")
    if args.out:
        make_out_folder(args.out)
    path = resolve_resume_path(args.checkpoint)
    result = evaluate_checkpoint(path, dataset=args.dataset, data_root=args.data_root,
                                 device=resolve_device(args.device), batch_size=args.batch_size, workers=args.workers)
    print(f"{path}: step {result['step']} (epoch {result['epoch']}), data set {result['dataset']} (test split)")
    print(format_metrics_table(result["heads"]))
    if args.out:
        atomic_write_json(os.path.join(args.out, "metrics.json"), result)
    return 0
