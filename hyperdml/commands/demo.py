"""``hyperdml demo``: train CHEST on the synthetic hierarchy on the CPU, evaluate, plot the proxies."""

from __future__ import annotations

HELP = "train CHEST (dual head) on the synthetic class hierarchy on the CPU in a few minutes"
DESCRIPTION = """The main job (make demo): trains a small CNN with Euclidean and hyperbolic heads
and the CHEST loss on the embedded synthetic hierarchy, evaluates both heads on the unseen test
classes, writes the run (checkpoint, log.jsonl, metrics.json) and the hierarchy plots of the
proxies to --out/viz, and prints both heads' metrics."""


def add_arguments(parser) -> None:
    """Options of ``hyperdml demo``."""
    from hyperdml.demo import DEMO_CONFIG

    parser.add_argument("--out", default="runs/demo", metavar="DIR",
                        help="output folder (a run folder: refused when it holds another run, unless --overwrite)")
    parser.add_argument("--overwrite", action="store_true", help="replace the run already in --out")
    parser.add_argument("--epochs", type=int, default=DEMO_CONFIG["epochs"], help="epochs")
    parser.add_argument("--seed", type=int, default=DEMO_CONFIG["seed"], help="seed")
    parser.add_argument("--quiet", action="store_true", help="print only errors")
    parser.add_argument("--images", default=None, metavar="DIR",
                        help="also write the two figures to DIR (make docs-images: docs/images)")


def run(args) -> int:
    from hyperdml.demo import run_demo

    run_demo(args.out, epochs=args.epochs, seed=args.seed, quiet=args.quiet, overwrite=args.overwrite,
             images=args.images)
    return 0
