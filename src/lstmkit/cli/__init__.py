"""The ``lstmkit`` command. One module per subcommand; each registers its parser here.

Bad input (a :class:`~lstmkit.errors.UsageError`, or a bad flag) prints one line on
stderr and exits with code 2, without a traceback. Ctrl-C exits with 130.
"""
from __future__ import annotations

import argparse
import os
import sys

from ..errors import UsageError
from . import bench, demo, evaluate, generate, gradflow, info, predict, train
from . import inspect as inspect_cmd
from . import translate as translate_cmd

SUBCOMMANDS = {"train": train, "generate": generate, "evaluate": evaluate, "predict": predict,
               "translate": translate_cmd, "inspect": inspect_cmd, "gradflow": gradflow, "bench": bench,
               "info": info, "demo": demo}

__all__ = ["main", "build_parser", "UsageError"]


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad flag is one line (``lstmkit train: error: ...``), not the whole usage."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="lstmkit", description="LSTM-family networks: train, sample, evaluate, compare.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)
    for module in SUBCOMMANDS.values():
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args) or 0
    except (UsageError, ValueError, TypeError, FileNotFoundError) as e:
        if os.environ.get("LSTMKIT_DEBUG"):  # developers: the full traceback
            raise
        message = " ".join(str(e).split("\n")[0].split()) or type(e).__name__
        print(f"lstmkit {args.command}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"lstmkit {args.command}: interrupted", file=sys.stderr)
        return 130
