"""Command line of hyperdml: ``hyperdml train | eval | viz | bench | demo``.

Each subcommand lives in :mod:`hyperdml.commands` as a module with ``HELP``,
``add_arguments(parser)`` and ``run(args) -> int``; those modules import torch only inside
``run``, so ``hyperdml --help`` answers at once. Errors that name a user's mistake
(:class:`hyperdml.errors.HyperdmlError`, a missing file) are printed as one line on stderr with
exit status 2; set ``HYPERDML_DEBUG=1`` to see the traceback instead.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

COMMANDS = ("train", "eval", "viz", "bench", "demo")


def _command_module(name: str):
    return importlib.import_module(f"hyperdml.commands.{name}")


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser of the ``hyperdml`` command, one subparser per available command."""
    parser = argparse.ArgumentParser(
        prog="hyperdml",
        description="Deep metric learning with proxy losses in Euclidean and hyperbolic space.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = _command_module(name)
        except ModuleNotFoundError as exc:  # a command whose module is not there yet
            if exc.name != f"hyperdml.commands.{name}":
                raise
            continue
        sp = sub.add_parser(
            name, help=module.HELP, description=getattr(module, "DESCRIPTION", module.HELP),
            formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        )
        module.add_arguments(sp)
        sp.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``hyperdml`` command; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if os.environ.get("HYPERDML_DEBUG"):
        return int(args._run(args) or 0)
    from hyperdml.errors import HyperdmlError

    try:
        return int(args._run(args) or 0)
    except (HyperdmlError, FileNotFoundError, IsADirectoryError, PermissionError) as exc:
        print(f"hyperdml {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"hyperdml {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
