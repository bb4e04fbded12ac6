"""Subcommands of ``eee-zoo``: one module each, exposing ``HELP``, ``add_arguments(parser)`` and ``run(args)``.

Helpers shared by the subcommands live here: argument types that turn bad values into usage errors
(exit code 2) and access to the repository's ``training/`` and ``benchmarks/`` folders, which are not part
of the installed package.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..models import SelfEnsemble

__all__ = [
    "STATE_ENV",
    "default_state_dir",
    "add_layout_argument",
    "add_run_arguments",
    "load_run_model",
    "CHECKOUT_ROOT", "COMMANDS_DIR", "add_checkout_to_path", "add_card_arguments", "dataset_arg",
    "nonnegative_int", "positive_int", "require_source_checkout", "threat_model_arg",
]  # fmt: skip

COMMANDS_DIR = Path(__file__).resolve().parent
CHECKOUT_ROOT = COMMANDS_DIR.parents[1]  # the repository root in a source checkout or editable install
_CHECKOUT_DIRS = ("training", "benchmarks")


def add_checkout_to_path() -> None:
    """Make ``import training`` / ``import benchmarks`` work when running from a source checkout."""
    if any((CHECKOUT_ROOT / d).is_dir() for d in _CHECKOUT_DIRS) and str(CHECKOUT_ROOT) not in sys.path:
        sys.path.append(str(CHECKOUT_ROOT))


def require_source_checkout(folder: str) -> Path:
    """The checkout root holding ``folder`` (``"training"`` or ``"benchmarks"``), put on ``sys.path``."""
    if not (CHECKOUT_ROOT / folder).is_dir():
        raise RuntimeError(
            f"this command needs the repository's {folder}/ folder, which is not installed with the package; "
            f"run it from a source checkout (git clone ... && pip install -e .)"
        )
    add_checkout_to_path()
    return CHECKOUT_ROOT


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1 (``--n-examples``, ``--batch-size``, ...), checked before any work starts."""
    return _int_at_least(text, 1, "a positive integer")


def nonnegative_int(text: str) -> int:
    """argparse type: an integer >= 0 (``--seed``)."""
    return _int_at_least(text, 0, "a non-negative integer")


def _int_at_least(text: str, lo: int, what: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
    if value < lo:
        raise argparse.ArgumentTypeError(f"expected {what}, got {value}")
    return value


def dataset_arg(value: str) -> str:
    """argparse type: a dataset name, case-insensitive (``CIFAR10`` -> ``cifar10``)."""
    from ..datasets import parse_dataset

    try:
        return parse_dataset(value)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def threat_model_arg(value: str) -> str:
    """argparse type: a threat model, case-insensitive (``linf`` -> ``Linf``)."""
    from ..datasets import parse_threat_model

    try:
        return parse_threat_model(value)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def add_card_arguments(parser: argparse.ArgumentParser, *, filters: bool = False) -> None:
    """``--dataset``, ``--threat-model`` and ``--cards-dir``; as filters (default: any) or as a model's key."""
    default_dataset, default_threat = (None, None) if filters else ("cifar10", "Linf")
    parser.add_argument(
        "--dataset",
        type=dataset_arg,
        default=default_dataset,
        help=f"cifar10 or cifar100 (default: {default_dataset or 'any'})",
    )
    parser.add_argument(
        "--threat-model",
        type=threat_model_arg,
        default=default_threat,
        help=f"Linf or L2 (default: {default_threat or 'any'})",
    )
    parser.add_argument(
        "--cards-dir", metavar="DIR", help="model cards root (default: $EEE_ZOO_CARDS or the repository's model_cards/)"
    )


STATE_ENV = "EEE_ZOO_STATE_DIR"


def default_state_dir(kind: str) -> Path:
    """Where a resumable run of ``kind`` ("autoattack", "adaptive", "certify") keeps its state: ``$EEE_ZOO_STATE_DIR``,
    else ``$XDG_CACHE_HOME/eee_zoo/<kind>`` (``~/.cache/...``); each configuration gets its own subfolder there."""
    env = os.environ.get(STATE_ENV)
    if env:
        return Path(env).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "eee_zoo" / kind


def add_layout_argument(parser: argparse.ArgumentParser) -> None:
    """``--channels-last``: the model's convolutions stored NHWC (``load_model(channels_last=True)``)."""
    parser.add_argument(
        "--channels-last", action="store_true",
        help="store the model's convolutions NHWC: attack steps 1.2-1.3x faster on 2 CPU cores, floats rounded "
        "differently (recorded with the run; default: PyTorch's layout)",
    )  # fmt: skip


def add_run_arguments(parser: argparse.ArgumentParser, *, unit: str, cache: str, fresh: str) -> None:
    """``--device``, ``--data-dir``, ``--state-dir`` and ``--fresh`` of a resumable run (``unit``: what is kept
    finished, e.g. "batches"; ``cache``: its kind of :func:`default_state_dir`; ``fresh``: the option's help)."""
    parser.add_argument("--device", default="cpu", help="cpu, cuda, ... (default: cpu)")
    add_layout_argument(parser)
    parser.add_argument(
        "--data-dir", help="data root holding <dataset>/<split>.npz (default: $EEE_ZOO_DATA, else the embedded slice)"
    )
    parser.add_argument(
        "--state-dir",
        default=None,
        help=f"finished {unit} are kept here and a rerun resumes from them (default: ${STATE_ENV}, else "
        f"~/.cache/eee_zoo/{cache})",
    )
    parser.add_argument("--fresh", action="store_true", help=fresh)


def load_run_model(args: argparse.Namespace) -> SelfEnsemble:
    """The checkpoint ``args.name`` as a resumable run's command attacks it: its card options
    (:func:`add_card_arguments`), and the device and layout of :func:`add_run_arguments`."""
    from ..loading import load_model

    return load_model(
        args.name, args.dataset, args.threat_model, cards_dir=args.cards_dir, device=args.device,
        channels_last=args.channels_last,
    )  # fmt: skip
