"""``eee-zoo train``: train a checkpoint from a recipe (the same as ``python -m training.train``).

``training/`` is a folder of the source checkout, not part of the installed package: this command imports it
from the checkout that holds this package and says clearly when there is none.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from types import ModuleType

from . import positive_int, require_source_checkout

HELP = "train a self-ensemble from a recipe (training/recipes/<name>.yaml); needs a source checkout"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The training command's options (shared by ``eee-zoo train`` and ``python -m training.train``)."""
    parser.add_argument("--recipe", required=True, type=Path, metavar="YAML", help="training/recipes/<name>.yaml")
    parser.add_argument("--out", type=Path, metavar="DIR", help="run directory (default: training/runs/<recipe name>)")
    parser.add_argument(
        "--resume", action="store_true", help="continue the run in --out from its checkpoint (a new run if none)"
    )
    parser.add_argument(
        "--device", default="auto", help="auto (CUDA when available), cpu, cuda or cuda:N (default: auto)"
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        metavar="DIR",
        help="dataset folder holding <dataset>/<split>.npz (overrides the recipe's data.data_dir and $EEE_ZOO_DATA)",
    )
    parser.add_argument("--threads", type=positive_int, metavar="N", help="torch CPU threads (default: torch's)")
    parser.add_argument(
        "--stop-after-steps",
        type=positive_int,
        metavar="N",
        help="stop with a checkpoint once the run has taken N optimiser steps in all; continue with --resume",
    )
    parser.add_argument("--no-export", action="store_true", help="train and evaluate, but write no Hub-ready folder")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (log lines only)")


def import_training() -> ModuleType:
    """``training.train`` from the source checkout beside this package (a clear error when there is none)."""
    root = require_source_checkout("training")
    import training.train

    found = Path(training.train.__file__).resolve()
    if not found.is_relative_to(root):
        raise ImportError(f"imported training.train from {found}, not from the checkout {root}")
    return training.train


def run(args: argparse.Namespace) -> int:
    return import_training().run(args)
