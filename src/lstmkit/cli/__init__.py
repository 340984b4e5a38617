"""The ``lstmkit`` command. One module per subcommand; each registers its parser here."""
from __future__ import annotations

import argparse
import sys

from . import demo, info

SUBCOMMANDS = {"info": info, "demo": demo}


class UsageError(Exception):
    """Bad input from the user: printed as one line, exit code 2, no traceback."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lstmkit", description="LSTM-family networks: train, inspect, compare.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module in SUBCOMMANDS.items():
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args) or 0
    except (UsageError, ValueError, TypeError, FileNotFoundError) as e:
        print(f"lstmkit {args.command}: error: {e}", file=sys.stderr)
        return 2
