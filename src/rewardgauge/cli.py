"""The ``rewardgauge`` command. Each area registers its subcommands; handlers import heavy modules lazily."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from typing import NoReturn

from rewardgauge.errors import InputError

# Each module has ``register(subparsers)``; a command group (``rm``, ``lab``) is shared via ``group()``.
COMMAND_MODULES = [
    "rewardgauge.lab.commands",
    "rewardgauge.data.commands",
    "rewardgauge.modeling.commands",
    "rewardgauge.train.commands",
    "rewardgauge.rewards.commands",
    "rewardgauge.audit.commands",
    "rewardgauge.monitor.commands",
    "rewardgauge.sandbox.commands",
    "rewardgauge.report.commands",
    "rewardgauge.prm.commands",
    "rewardgauge.serve.commands",
    "rewardgauge.quickstart",
    "rewardgauge.pipeline",
]

_groups: dict[tuple[int, str], argparse._SubParsersAction] = {}


def group(subparsers: argparse._SubParsersAction, name: str, help: str) -> argparse._SubParsersAction:
    """The sub-subparsers of a command group such as ``rm``, created on first use."""
    key = (id(subparsers), name)
    if key not in _groups:
        parser = subparsers.add_parser(name, help=help, description=help)
        _groups[key] = parser.add_subparsers(dest=f"{name}_command", required=True, metavar="COMMAND")
    return _groups[key]


class _Parser(argparse.ArgumentParser):
    """Usage errors in the one-line form of every other bad input (argparse prints the usage first)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"rewardgauge: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="rewardgauge",
        description="Post-training with the reward model as the first-class object: "
                    "train, evaluate, audit and monitor reward models; optimise against them.")
    parser.add_argument("--version", action="version", version=f"rewardgauge {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _groups.clear()
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def _chosen_parser(parser: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.ArgumentParser:
    """The (sub)command's own parser, so that a usage error points to its help rather than the top-level one."""
    while True:
        actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        name = getattr(args, actions[0].dest, None) if actions else None
        if name is None:
            return parser
        parser = actions[0].choices[name]


def _version() -> str:
    from rewardgauge import __version__
    return __version__


def _one_line(message: str) -> str:
    """The message on one line, printable anywhere (a lone surrogate from a bad file is shown as \\udxxx)."""
    message = message.encode("utf-8", "backslashreplace").decode("utf-8")
    return " ".join(part.strip() for part in message.splitlines() if part.strip())


class _StderrNotes(logging.Handler):
    """The library's warnings and notes (``rewardgauge.*`` loggers) as plain lines on the stderr of the moment."""

    def emit(self, record: logging.LogRecord) -> None:
        print(f"rewardgauge: {record.getMessage()}", file=sys.stderr)


def _notes_to_stderr() -> None:
    log = logging.getLogger("rewardgauge")
    if not any(isinstance(h, _StderrNotes) for h in log.handlers):
        log.addHandler(_StderrNotes(logging.WARNING))


def main(argv: list[str] | None = None) -> int:
    _notes_to_stderr()
    parser = build_parser()
    try:
        # Flag values are checked as they are parsed (an InputError below); a usage error (unknown flag,
        # missing command) is one line that names the (sub)command it was meant for.
        args, extra = parser.parse_known_args(argv)
        if extra:
            _chosen_parser(parser, args).error(f"unrecognized arguments: {' '.join(extra)}")
    except SystemExit as e:
        if e.code == 0:  # --help, --version
            raise
        return 2
    except InputError as e:
        print(f"rewardgauge: error: {_one_line(str(e))}", file=sys.stderr)
        return e.exit_code
    try:
        return int(args.func(args) or 0)
    except InputError as e:
        print(f"rewardgauge: error: {_one_line(str(e))}", file=sys.stderr)
        return e.exit_code
    except OSError as e:  # a disk that filled up or went away mid-run; outputs were checked before the work
        from rewardgauge.io import os_error_message

        print(f"rewardgauge: error: {_one_line(os_error_message(e))}", file=sys.stderr)
        return InputError.exit_code
    except KeyboardInterrupt:
        print("rewardgauge: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
