"""``hyperdml demo`` (what ``make demo`` runs): CHEST on the synthetic class hierarchy, on the CPU.

Trains a small CNN with the dual head (Euclidean ``z_E`` and hyperbolic ``z_H``) with the CHEST
loss on the embedded synthetic data set (4 super-classes × 4 training classes; the 16 test
classes are unseen), evaluates both heads on the test classes, writes the run to ``--out``
(``last.pt``, ``log.jsonl``, ``metrics.json``, ``config.json``), then the hierarchy report of
the proxies (``<out>/viz``, :func:`hyperdml.commands.viz.write_hierarchy_report`, on the data the run
trained on), and prints a table of both heads' metrics. With ``images=DIR`` (``--images``) the two
figures are also written to ``DIR`` as ``poincare_disk_demo.png`` and ``dendrogram_demo.png``,
each carrying the command that made it in its PNG text (``make docs-images`` writes
``docs/images`` this way).
"""

from __future__ import annotations

import os
import time

__all__ = ["DEMO_CONFIG", "DOC_IMAGES", "run_demo", "write_doc_images"]

HELP = "train CHEST (dual head) on the synthetic class hierarchy on the CPU in a few minutes"
DESCRIPTION = """The main job (make demo): trains a small CNN with Euclidean and hyperbolic heads
and the CHEST loss on the embedded synthetic hierarchy, evaluates both heads on the unseen test
classes, writes the run (checkpoint, log.jsonl, metrics.json) and the hierarchy plots of the
proxies to --out/viz, and prints both heads' metrics."""


#: report figure → file name under ``--images``
DOC_IMAGES = {"poincare_disk": "poincare_disk_demo.png", "dendrogram": "dendrogram_demo.png"}

#: the demo's training options (``hyperdml train`` defaults for the rest)
DEMO_CONFIG = {
    "dataset": "synthetic",
    "arch": "small_cnn",
    "loss": "chest",
    "head": "dual",
    "embedding_size": 128,
    "hyperbolic_size": 32,
    "hyperbolic_head": "batch",
    "loss_args": {"centers_per_class": 2, "lambda_hc": 1.0},
    "epochs": 30,
    "batch_size": 64,
    "samples_per_class": 4,
    "lr": 2e-3,
    "proxy_lr_mult": 10.0,
    "warmup_epochs": 1.0,
    "eval_every": 10,
    "device": "cpu",
    "seed": 0,
}


def add_arguments(parser) -> None:
    """Options of ``hyperdml demo``."""
    parser.add_argument("--out", default="runs/demo", metavar="DIR",
                        help="output folder (a run folder: refused when it holds another run, unless --overwrite)")
    parser.add_argument("--overwrite", action="store_true", help="replace the run already in --out")
    parser.add_argument("--epochs", type=int, default=DEMO_CONFIG["epochs"], help="epochs")
    parser.add_argument("--seed", type=int, default=DEMO_CONFIG["seed"], help="seed")
    parser.add_argument("--quiet", action="store_true", help="print only errors")
    parser.add_argument("--images", default=None, metavar="DIR",
                        help="also write the two figures to DIR (make docs-images: docs/images)")


def run(args) -> int:
    run_demo(args.out, epochs=args.epochs, seed=args.seed, quiet=args.quiet, overwrite=args.overwrite,
             images=args.images)
    return 0


def run_demo(out: str = "runs/demo", epochs: int | None = None, seed: int | None = None, quiet: bool = False,
             threads: int | None = None, overwrite: bool = False, images: str | None = None) -> dict:
    """Train the demo run into ``out`` and write its report; returns ``{"heads", "seconds", "viz"}``.

    ``out`` is a run folder (see :mod:`hyperdml.train.run_folder`): one that holds another run is
    refused unless ``overwrite``. ``images``: a folder that also gets the report's figures
    (:func:`write_doc_images`).

    ``threads`` sets ``torch.set_num_threads`` for the run (default 1: these tensors are small, and
    on a shared machine a second OpenMP thread that waits for a busy core made steps 5-7× slower
    in our measurements).
    """
    import torch

    from hyperdml.train.evaluate import format_metrics_table
    from hyperdml.train.trainer import Trainer
    from hyperdml.commands.viz import write_hierarchy_report

    config = dict(DEMO_CONFIG, out=out, quiet=quiet)
    if epochs is not None:
        config["epochs"] = int(epochs)
    if seed is not None:
        config["seed"] = int(seed)
    previous = torch.get_num_threads()
    torch.set_num_threads(threads or 1)
    t0 = time.perf_counter()
    try:
        trainer = Trainer(config, overwrite=overwrite)
        heads = trainer.run()
        seconds = time.perf_counter() - t0
        # the run's data sets, not built a second time from the checkpoint's config
        viz = write_hierarchy_report(os.path.join(out, "last.pt"), os.path.join(out, "viz"), splits=trainer.splits)
    finally:
        torch.set_num_threads(previous)
    if images is not None:
        command = "hyperdml demo" + (f" --seed {config['seed']}" if config["seed"] != DEMO_CONFIG["seed"] else "") + (
            f" --epochs {config['epochs']}" if config["epochs"] != DEMO_CONFIG["epochs"] else "")
        write_doc_images(viz["files"], images, command)
    if not quiet:
        n = config["epochs"]
        print(f"\nCHEST on the synthetic hierarchy: {n} epoch{'s' if n != 1 else ''} in {seconds:.0f} s; "
              "retrieval on the 16 unseen test classes (%):")
        print(format_metrics_table(heads))
        print(f"run written to {out}/ (last.pt, log.jsonl, metrics.json)")
        print(_tree_summary(viz))
        print(f"hierarchy report written to {out}/viz/")
    return {"heads": heads, "seconds": seconds, "viz": viz}


def write_doc_images(files: dict, out_dir: str, command: str = "hyperdml demo") -> dict:
    """Copy the report's PNG figures ``files`` (``{"poincare_disk": path, "dendrogram": path}``) into
    ``out_dir`` under the names of :data:`DOC_IMAGES`, with ``Source: <command>`` in the PNG text.

    Returns ``{name: written path}``.
    """
    from PIL import Image, PngImagePlugin

    os.makedirs(out_dir, exist_ok=True)
    written = {}
    for key, name in DOC_IMAGES.items():
        if not str(files.get(key, "")).endswith(".png"):
            continue
        info = PngImagePlugin.PngInfo()
        info.add_text("Source", f"{command} --images {out_dir}")
        info.add_text("Software", "hyperdml")
        path = os.path.join(out_dir, name)
        with Image.open(files[key]) as im:
            im.save(path, pnginfo=info)
        written[key] = path
    return written


def _tree_summary(report: dict) -> str:
    """One line per space: dendrogram purity against the super-classes and Dasgupta cost."""
    spaces = (report.get("metrics") or {}).get("spaces", {})
    lines = ["tree decoded from the class proxies (dendrogram purity vs the 4 super-classes, higher is better; "
             "Dasgupta cost, lower is better):"]
    for name, m in spaces.items():
        if not isinstance(m, dict):
            continue
        purity = m.get("dendrogram_purity")
        cost = (m.get("dasgupta_cost") or {}).get("super_class")
        text = f"  {name:<10}"
        if isinstance(purity, (int, float)):
            text += f"  purity {purity:.3f}"
        if isinstance(cost, (int, float)):
            text += f"  Dasgupta cost {cost:.3f}"
        lines.append(text)
    return "\n".join(lines) if len(lines) > 1 else "(no tree metrics in the hierarchy report)"

