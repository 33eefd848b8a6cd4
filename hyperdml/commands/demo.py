"""``hyperdml demo``: the two hot ops against their oracles (replaced by the training demo)."""

from __future__ import annotations

HELP = "check poincare_cdist and hyphc_triplet_loss against their oracles on random points"


def add_arguments(parser) -> None:
    """No options."""


def run(args) -> int:
    from hyperdml.demo import main

    return main()
