"""`stackops COMMAND ...` or `python -m stackops_cli COMMAND ...`: one subcommand per runbook that needs more than
ansible-playbook."""

from __future__ import annotations

import argparse
import sys
import typing as t
from collections.abc import Sequence

from stackops_cli import drill


class Parser(argparse.ArgumentParser):
    """argparse's parser, exiting with EXIT_USAGE: its own code, 2, means a failed drill here."""

    def error(self, message: str) -> t.NoReturn:
        self.print_usage(sys.stderr)
        self.exit(drill.EXIT_USAGE, f"{self.prog}: error: {message}\n")


def build_parser(prog: str = "python -m stackops_cli") -> Parser:
    parser = Parser(prog=prog, description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    drill.add_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None, prog: str = "python -m stackops_cli") -> int:
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    try:
        options = drill.DrillOptions.from_args(args)
    except drill.UsageError as exc:
        parser.error(str(exc))
    return drill.main(options)


def console() -> t.NoReturn:
    """The `stackops` command that pip installs (pyproject.toml)."""
    sys.exit(main(prog="stackops"))


if __name__ == "__main__":
    sys.exit(main())
