"""Command line of hyperdml: `hyperdml demo` (train, eval, viz and bench arrive with their issues)."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``hyperdml`` command."""
    parser = argparse.ArgumentParser(prog="hyperdml", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("demo", help="show poincare_cdist against geoopt on random points")
    args = parser.parse_args(argv)
    if args.command == "demo":
        from hyperdml.demo import main as demo_main

        return demo_main()
    return 2


if __name__ == "__main__":
    sys.exit(main())
