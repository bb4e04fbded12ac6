"""The options of ``python -m training.train`` and ``eee-zoo train``: one definition, argparse only (no torch).

The CLI imports this module from the source checkout (``eee_zoo/commands/train.py``, through
``import_training``): the CLI depends on ``training/``, never the other way round. It is kept free of heavy
imports so that building the ``eee-zoo`` parser stays fast.
"""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["add_arguments", "positive_int"]


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1, so that ``--threads 0`` is a usage error before anything starts."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:  # the same wording as eee-zoo's other commands
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


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
