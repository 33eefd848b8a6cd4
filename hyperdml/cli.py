"""Command line of hyperdml: ``hyperdml train | eval | viz | bench | demo``, ``hyperdml --version``.

Each subcommand lives in :mod:`hyperdml.commands` as a module with ``HELP``,
``add_arguments(parser)`` and ``run(args) -> int``; those modules import torch only inside
``run``, so ``hyperdml --help`` answers at once. Every user error (a bad option, an error that
names a user's mistake, :class:`hyperdml.errors.HyperdmlError`, a file that cannot be read or
written) is printed as one line on stderr, ``hyperdml <command>: error: ...``, with exit status
2; set ``HYPERDML_DEBUG=1`` to see the traceback instead. The commands show progress (a bar on a
terminal, a plain line every 30 s otherwise) and print nothing from the libraries underneath
that does not concern the user.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

COMMANDS = ("train", "eval", "viz", "bench", "demo")


class _Parser(argparse.ArgumentParser):
    """An argparse parser whose errors are one line (``<prog>: error: ... (see <prog> --help)``)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _command_module(name: str):
    return importlib.import_module(f"hyperdml.commands.{name}")


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser of the ``hyperdml`` command, one subparser per available command."""
    from hyperdml import __version__
    from hyperdml.commands import HelpFormatter

    parser = _Parser(
        prog="hyperdml",
        description="Deep metric learning with proxy losses in Euclidean and hyperbolic space.",
    )
    parser.add_argument("--version", action="version", version=f"hyperdml {__version__}")
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
            formatter_class=HelpFormatter,
        )
        module.add_arguments(sp)
        sp.set_defaults(_run=module.run)
    return parser


def _quiet_libraries() -> None:
    """Keep the libraries' notes that do not concern a user of the commands off the terminal:
    torch's ``No CUDA runtime is found, using CUDA_HOME=...`` (logged when ``torch.utils.benchmark``
    imports ``torch.utils.cpp_extension`` on a machine with a CUDA toolkit but no GPU) and geoopt's
    import-time ``torch.jit.script`` deprecation warning."""
    import logging
    import warnings

    logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.*", category=FutureWarning)


def _os_error(exc: OSError) -> str:
    reason = exc.strerror or str(exc)
    return f"{reason}: {exc.filename}" if exc.filename else reason


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``hyperdml`` command; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)  # --help, --version and a bad option exit here (SystemExit, status 0 / 2)
    _quiet_libraries()
    from hyperdml._progress import progress_enabled

    if os.environ.get("HYPERDML_DEBUG"):
        with progress_enabled():
            return int(args._run(args) or 0)
    from hyperdml.errors import HyperdmlError

    try:
        with progress_enabled():
            return int(args._run(args) or 0)
    except HyperdmlError as exc:
        message = " ".join(str(exc).split("\n"))
    except OSError as exc:  # a file or folder that cannot be read or written (missing, a full disk, ...)
        message = _os_error(exc)
    except KeyboardInterrupt:
        print(f"hyperdml {args.command}: interrupted", file=sys.stderr)
        return 130
    print(f"hyperdml {args.command}: error: {message}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
