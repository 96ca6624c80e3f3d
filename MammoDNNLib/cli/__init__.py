"""The ``mammodnn`` command.

Each subcommand lives in its own module of this package with a ``register(subparsers)`` function that adds its
parser and sets ``func`` (called with the parsed arguments; returns an exit code). Errors a user can cause are
``MammoDNNError`` and are printed as one line, without a traceback; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from .. import __version__
from ..errors import MammoDNNError

# Subcommand modules, in the order `mammodnn --help` lists them.
COMMAND_MODULES: tuple[str, ...] = (
    "demo",
    "analyze",
    "preprocess",
    "phantom",
    "train",
    "finetune",
    "data",
    "models",
    "export",
    "stats",
    "benchmark",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mammodnn",
        description="Four-view screening mammography CAD (research use only).",
    )
    parser.add_argument("--version", action="version", version=f"mammodnn {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logging")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"{__name__}.{name}":
                continue  # not written yet in this checkout
            raise
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s" if args.debug else "%(message)s",
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except MammoDNNError as exc:
        if args.debug:
            raise
        print(f"mammodnn {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"mammodnn {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
