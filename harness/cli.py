"""The ``harness`` command line: one sub-command per module in :mod:`harness.commands`."""

from __future__ import annotations

import argparse
import importlib
import sys

from harness import __version__
from harness.errors import HarnessError, StorageError, Terminated
from harness.signals import sigterm_raises

#: Sub-command modules, in the order ``harness --help`` lists them.
COMMANDS = ("run", "evaluate", "tune", "grid", "table", "report", "predict", "export", "list", "env", "data")


class Parser(argparse.ArgumentParser):
    """argparse with its usage errors on one line (sub-command parsers inherit it)."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {' '.join(message.split())} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="harness",
        description=(
            "Benchmark and ablation harness for acoustic scene classification: train and compare "
            "the factorized CNN, SubSpectralNet and the DCASE 2019 baseline with cross-entropy or "
            "the cross-city triplet loss, tune α/γ with Optuna, and regenerate the paper's tables."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"harness {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"harness.commands.{name}").add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a one-line usage error already printed
        return int(exc.code or 0)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        attach_command_line(parser, args, argv)
        with sigterm_raises(Terminated):  # a run stopped by `kill` is marked failed, not left looking alive
            return int(args.func(args) or 0)
    except HarnessError as exc:
        print(f"harness: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:  # a write or read the file system refused, outside the atomic writers
        error = StorageError.from_os(exc, verb="cannot access")
        print(f"harness: error: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt as exc:
        what = "terminated (SIGTERM)" if isinstance(exc, Terminated) else "interrupted"
        print(f"harness: {what}; completed work is kept, re-run the same command to resume", file=sys.stderr)
        return 143 if isinstance(exc, Terminated) else 130


def attach_command_line(parser: argparse.ArgumentParser, args: argparse.Namespace, argv: list[str]) -> None:
    """Give the command its own parser and the flags its command line set explicitly, so that
    experiment files (``--config``) and stored records (``--from``) fill in only the rest."""
    from harness.experiment import given_dests

    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    command_parser = sub.choices[args.command]
    rest = argv[argv.index(args.command) + 1:]
    args.command_parser = command_parser
    args.given = given_dests(command_parser, rest)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
