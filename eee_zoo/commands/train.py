"""``eee-zoo train``: train a checkpoint from a recipe (the same as ``python -m training.train``).

``training/`` is a folder of the source checkout, not part of the installed package: this command imports it
from the checkout that holds this package and says clearly when there is none. The options themselves are
defined once, in ``training/arguments.py``: the CLI depends on ``training/``, never the other way round.
"""

from __future__ import annotations

import argparse
import importlib
from pathlib import Path
from types import ModuleType

from . import CHECKOUT_ROOT, require_source_checkout

HELP = "Train a self-ensemble from a recipe (training/recipes/<name>.yaml); needs a source checkout."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``training.arguments.add_arguments`` from the checkout; without one, ``run`` explains what is missing."""
    try:
        arguments = import_training("arguments") if (CHECKOUT_ROOT / "training").is_dir() else None
    except ImportError:  # another ``training`` shadows the checkout's: keep the other commands usable
        arguments = None
    if arguments is None:
        parser.add_argument("options", nargs=argparse.REMAINDER, help="(needs a source checkout)")
        return
    arguments.add_arguments(parser)


def import_training(module: str = "train") -> ModuleType:
    """``training.<module>`` from the source checkout beside this package (a clear error when there is none)."""
    root = require_source_checkout("training")
    imported = importlib.import_module(f"training.{module}")
    found = Path(imported.__file__).resolve()
    if not found.is_relative_to(root):
        raise ImportError(f"imported training.{module} from {found}, not from the checkout {root}")
    return imported


def run(args: argparse.Namespace) -> int:
    return import_training().run(args)
