"""The ``recsys`` command: a thin layer of argument parsing over library functions.

Each command group lives in its own module exposing ``register(subparsers)``. Flag
defaults and choices come from the config dataclasses, imported at registration; the
heavy imports (TensorFlow, Keras Tuner) happen inside the handlers, so that
``recsys --help`` and argument errors answer without loading them.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from recsys_base.errors import RecsysError

# Modules under recsys/cli/ that contribute subcommands, in help order.
COMMAND_MODULES = ("data", "models", "serve", "drill", "tune")


class OneLineErrorParser(argparse.ArgumentParser):
    """An argparse parser whose errors are one line (no usage block) with exit code 2.

    Every bad input to ``recsys``, a flag argparse rejects or a value a config refuses,
    then looks the same: ``<command>: error: <what is wrong>`` on stderr, one line.
    Subcommand parsers inherit the class.
    """

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineErrorParser(
        prog="recsys",
        description="Session-based shop recommendations and search: data, training, tuning, serving.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(f"recsys.cli.{name}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except RecsysError as exc:
        print(f"recsys {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"recsys {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
