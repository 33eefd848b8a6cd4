"""``hyperdml demo``: train CHEST on the synthetic hierarchy on the CPU, evaluate, plot the proxies."""

from __future__ import annotations

HELP = "train CHEST (dual head) on the synthetic class hierarchy on the CPU in a few minutes"
DESCRIPTION = """The main job (make demo): trains a small CNN with Euclidean and hyperbolic heads
and the CHEST loss on the embedded synthetic hierarchy, evaluates both heads on the unseen test
classes, writes the run (checkpoint, log.jsonl, metrics.json) and the hierarchy plots of the
proxies to --out/viz, and prints both heads' metrics."""


def add_arguments(parser) -> None:
    """Options of ``hyperdml demo``."""
    parser.add_argument("--out", default="runs/demo", metavar="DIR", help="output folder")
    parser.add_argument("--epochs", type=int, default=None, help="epochs (default: the demo's setting)")
    parser.add_argument("--seed", type=int, default=None, help="seed (default 0)")
    parser.add_argument("--quiet", action="store_true", help="print only errors")
    parser.add_argument("--images", default=None, metavar="DIR",
                        help="also write the two figures to DIR (make docs-images: docs/images)")


def run(args) -> int:
    from hyperdml.demo import run_demo

    run_demo(args.out, epochs=args.epochs, seed=args.seed, quiet=args.quiet, images=args.images)
    return 0
