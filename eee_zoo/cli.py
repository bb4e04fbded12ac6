"""The ``eee-zoo`` command: a thin layer over the library, one module per subcommand.

Each subcommand is a module ``eee_zoo/commands/<name>.py`` with ``HELP``, ``add_arguments(parser)`` and
``run(args) -> int``. Bad usage is one line ``eee-zoo CMD: error: ...`` and exit code 2 (argparse, with the
usage block left to ``--help``); an error raised by the library is printed as one line ``eee-zoo: error: ...``
and exits with code 1 (set ``EEE_ZOO_DEBUG=1`` for the traceback). A subcommand's ``run`` finds its own parser
in ``args._parser`` to report a usage error it can only see after parsing.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Iterator, Sequence
from types import ModuleType
from typing import NoReturn

from . import __version__
from .commands import COMMANDS_DIR, add_checkout_to_path

__all__ = ["COMMANDS", "build_parser", "main"]

COMMANDS = ("demo", "list", "info", "export", "push", "benchmark", "adaptive", "train", "visualize", "certify")
LIBRARY_ERRORS = (ValueError, OSError, LookupError, RuntimeError, ImportError)


class OneLineParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose usage errors are one line on stderr (exit 2); ``--help`` shows the usage."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="eee-zoo",
        description="A RobustBench-compatible zoo of multi-resolution self-ensembles (Ensemble everything everywhere).",
    )
    parser.add_argument("--version", action="version", version=f"eee-zoo {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, module in _command_modules():
        sub = subparsers.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(sub)
        sub.set_defaults(_run=module.run, _parser=sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``eee-zoo`` with ``argv`` (default ``sys.argv[1:]``); returns the exit code."""
    add_checkout_to_path()
    args = build_parser().parse_args(argv)  # bad usage: SystemExit(2) with argparse's one-line message
    try:
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        print("eee-zoo: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `eee-zoo list | head`: the reader left; say nothing more
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except LIBRARY_ERRORS as e:
        if os.environ.get("EEE_ZOO_DEBUG"):
            raise
        message = " ".join(str(e).split()) or type(e).__name__
        print(f"eee-zoo: error: {message}", file=sys.stderr)
        return 1


def _command_modules() -> Iterator[tuple[str, ModuleType]]:
    for name in COMMANDS:
        if not (COMMANDS_DIR / f"{name}.py").is_file():
            continue  # a subcommand not written yet
        try:
            yield name, importlib.import_module(f"eee_zoo.commands.{name}")
        except ImportError as e:  # keep the other commands usable; this one reports why it cannot run
            yield name, _unavailable(name, e)


def _unavailable(name: str, error: ImportError) -> ModuleType:
    module = ModuleType(f"eee_zoo.commands.{name}")
    module.HELP = f"(unavailable: {error})"
    module.add_arguments = lambda parser: parser.add_argument("args", nargs=argparse.REMAINDER)

    def run(args: argparse.Namespace) -> int:
        raise ImportError(f"the '{name}' command cannot be loaded: {error}")

    module.run = run
    return module


if __name__ == "__main__":
    sys.exit(main())
