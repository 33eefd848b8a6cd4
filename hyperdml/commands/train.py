"""``hyperdml train``: train an embedding model with a proxy loss (one process or torchrun/DDP)."""

from __future__ import annotations

import argparse

HELP = "train an embedding model with any proxy loss (checkpoints, log.jsonl, metrics.json)"
DESCRIPTION = """Train a backbone + embedding head(s) with a proxy loss, evaluate on the test
classes after each epoch and write <out>/last.pt (checkpoint), <out>/log.jsonl,
<out>/metrics.json and <out>/config.json. A folder that holds another run is refused: continue
it with --resume, replace it with --overwrite, or choose another --out. Several processes:
torchrun --nproc_per_node N -m hyperdml train ... (DDP; --batch-size is the global batch). Loss
names: proxy_anchor, proxy_nca, soft_triple, hyp_proxy_anchor, hyp_proxy_nca, hyp_soft_triple,
chest, and the wrappers cp+NAME, hpl+NAME; loss parameters with repeated --loss-arg key=value."""

_S = argparse.SUPPRESS


def _none_or(cast):
    def parse(text: str):
        return None if text.lower() in ("none", "null", "off") else cast(text)
    parse.__name__ = cast.__name__
    return parse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``hyperdml train`` (defaults come from ``hyperdml.train.config.DEFAULTS``).

    Options not given on the command line are left out of the namespace (``SUPPRESS``), so that
    ``--resume`` can tell the options a user changed from the checkpoint's.
    """
    from hyperdml.train.config import (AMP_CHOICES, ARCHS, DATASETS, DEFAULTS, HEADS, HYPERBOLIC_HEAD_ALIASES,
                                       HYPERBOLIC_HEADS, MAX_SEED, SCHEDULES)
    from hyperdml.train.recipes import recipe_names

    group = parser

    def add(*flags, key=None, help="", default=None, **kw):
        """An option of the current ``group``; ``default``: the text shown for the default (else
        ``DEFAULTS[key]``)."""
        key = key or flags[0].lstrip("-").replace("-", "_")
        shown = "" if kw.get("action") == "store_true" else \
            f" (default: {default if default is not None else DEFAULTS.get(key)})"
        group.add_argument(*flags, dest=key, default=_S, help=help + shown, **kw)

    group = parser.add_argument_group("data")
    add("--dataset", choices=DATASETS, help="data set")
    add("--data-root", metavar="DIR", help="folder of cub/cars/sop/inshop in its published layout", default="none")
    add("--data-seed", type=int, help="seed of the synthetic images and of the label noise")
    add("--image-size", type=_none_or(int), metavar="S", help="image side given to the model",
        default="the data set's: synthetic 32, digits 8, folders 224")
    add("--label-noise", type=float, metavar="RATE", help="symmetric noise rate on the training labels")
    add("--workers", type=int, help="DataLoader worker processes")
    group = parser.add_argument_group("model")
    add("--arch", choices=("auto", *ARCHS),
        help="backbone (auto: small_cnn for synthetic/digits, resnet50 otherwise; the ViTs need hyperdml[vit])")
    add("--recipe", choices=recipe_names(), help="published recipe filling the options not given (docs/training.md)",
        default="none")
    add("--weights", metavar="FILE", help="local file of pretrained backbone weights (nothing downloads)",
        default="none: random initialisation")
    add("--head", choices=("auto", *HEADS), help="embedding head(s) (auto: from the loss)")
    add("--embedding-size", type=int, metavar="D", help="Euclidean head size")
    add("--hyperbolic-size", type=_none_or(int), metavar="D", help="hyperbolic head size",
        default="--embedding-size")
    add("--hyperbolic-head", choices=(*HYPERBOLIC_HEADS, *HYPERBOLIC_HEAD_ALIASES),
        help="hyperbolic head: linear (tangent vectors, clipped and mapped by the loss), batch "
             "(Linear -> BatchNorm1d -> clip -> expmap0, ball points) or layer (LayerNorm -> Linear -> "
             "clip -> expmap0, ball points; normalized is the same)")
    add("--c", type=float, help="curvature of the Poincaré ball")
    add("--clip-r", type=_none_or(float), help="feature clipping radius before expmap0 (none: off)")
    group = parser.add_argument_group("loss")
    add("--loss", metavar="NAME", help="loss name (see above)")
    group.add_argument("--loss-arg", dest="loss_args", action="append", default=_S, metavar="KEY=VALUE",
                        help="a loss parameter, repeatable (e.g. margin=0.1, lambda_hc=0.5, cp.queue_size=30)")
    group = parser.add_argument_group("optimisation")
    add("--epochs", type=int, help="epochs")
    add("--batch-size", type=int, help="global batch size (a multiple of --samples-per-class)",
        default="--samples-per-class x 16; digits: x 5, its 5 training classes")
    add("--samples-per-class", type=int, help="images per class in a batch", default="4; digits 12")
    add("--lr", type=float, help="base learning rate", default="1e-3 small_cnn, 1e-4 resnets")
    add("--proxy-lr-mult", type=float, help="proxies' learning rate = lr × this")
    add("--head-lr-mult", type=float, help="heads' learning rate = lr × this")
    add("--weight-decay", type=float, help="weight decay of backbone and heads")
    add("--adam-eps", type=float, help="RiemannianAdam's eps")
    add("--warmup-epochs", type=float, help="linear warm-up length in epochs")
    add("--schedule", choices=SCHEDULES, help="learning-rate schedule after the warm-up")
    add("--grad-clip", type=_none_or(float), metavar="NORM", help="clip the global gradient norm", default="none")
    add("--amp", choices=AMP_CHOICES, help="autocast dtype of the network (losses stay float32)")
    group = parser.add_argument_group("run")
    add("--out", metavar="DIR", help="output folder (the run folder)")
    add("--overwrite", action="store_true", help="replace the run already in --out (default: such a folder is refused)")
    add("--device", help="auto, cpu, cuda or cuda:N")
    add("--seed", type=int, help=f"seed of initialisation and batch sampling (0 to {MAX_SEED})")
    add("--resume", metavar="CKPT", help="continue from a checkpoint file or a run folder (its last.pt)", default="none")
    add("--eval-every", type=int, metavar="N", help="evaluate every N epochs (0: only at the end)")
    add("--max-steps", type=_none_or(int), metavar="N", help="stop after N optimiser steps in total", default="none")
    add("--log-every", type=int, metavar="N", help="steps between log.jsonl step records")
    add("--quiet", action="store_true", help="no progress bars or per-epoch lines")


def run(args) -> int:
    from hyperdml.train.evaluate import format_metrics_table
    from hyperdml.train.trainer import train

    config = {k: v for k, v in vars(args).items() if not k.startswith("_") and k != "command"}
    heads = train(config)
    if heads and not config.get("quiet"):
        print(format_metrics_table(heads))
    return 0
