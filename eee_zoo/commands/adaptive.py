"""``eee-zoo adaptive``: score a zoo checkpoint with the adaptive attacks of :mod:`eee_zoo.adaptive`.

Prints the result; with ``--json`` the whole result as JSON. Results files, cards and the leaderboard are the
business of ``python -m benchmarks.adaptive`` in a source checkout.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from . import add_card_arguments, nonnegative_int, positive_int

HELP = "Score a checkpoint with adaptive attacks (transfer, CrossMax surrogate, EOT), judged on many draws."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", help="checkpoint name (see `eee-zoo list`)")
    add_card_arguments(parser)
    parser.add_argument("--n-examples", type=positive_int, default=100, help="the first N test images (default: 100)")
    add_attack_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print the whole result as JSON")


def add_attack_arguments(parser: argparse.ArgumentParser) -> None:
    """The attack options shared by ``eee-zoo adaptive`` and ``python -m benchmarks.adaptive``."""
    from ..adaptive import ADAPTIVE_ATTACKS, DEFAULT_BATCH_SIZE, DEFAULT_SETTINGS

    parser.add_argument("--seed", type=nonnegative_int, default=0, help="seed of every draw and attack (default: 0)")
    parser.add_argument(
        "--attacks",
        nargs="+",
        choices=ADAPTIVE_ATTACKS,
        default=list(ADAPTIVE_ATTACKS),
        metavar="ATTACK",
        help="which attacks to run, in order: transfer-det (APGD-CE on the deterministic mode, transferred), "
        "transfer-det-mean (the same through a mean-of-logits surrogate of CrossMax), eot-mean (APGD-CE with "
        "EOT on that surrogate) (default: all three)",
    )
    settings = (
        ("--n-iter", "n_iter", "APGD iterations per attack"),
        ("--eot-iter", "eot_iter", "draws per step of eot-mean"),
        ("--eval-draws", "eval_draws", "draws judging each image"),
    )
    for flag, key, text in settings:
        parser.add_argument(
            flag, type=positive_int, default=DEFAULT_SETTINGS[key], help=f"{text} (default: %(default)s)"
        )
    parser.add_argument(
        "--batch-size",
        type=positive_int,
        default=DEFAULT_BATCH_SIZE,
        help="images attacked together; draws and random starts are seeded per batch, so it is part of the "
        "configuration (default: %(default)s)",
    )
    parser.add_argument("--device", default="cpu", help="cpu, cuda, ... (default: cpu)")
    parser.add_argument(
        "--data-dir", help="data root holding <dataset>/<split>.npz (default: $EEE_ZOO_DATA, else the embedded slice)"
    )


def attack_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """Keyword arguments of :func:`eee_zoo.adaptive.adaptive_evaluate` from :func:`add_attack_arguments` options."""
    return {
        "attacks": args.attacks,
        "n_iter": args.n_iter,
        "eot_iter": args.eot_iter,
        "eval_draws": args.eval_draws,
        "batch_size": args.batch_size,
        "seed": args.seed,
        "device": args.device,
        "data_dir": args.data_dir,
    }


def run(args: argparse.Namespace) -> int:
    from ..adaptive import adaptive_evaluate
    from ..loading import load_model

    model = load_model(args.name, args.dataset, args.threat_model, cards_dir=args.cards_dir, device=args.device)
    result = adaptive_evaluate(model, args.n_examples, args.dataset, args.threat_model, **attack_kwargs(args))
    print(json.dumps(result.to_dict(), indent=2) if args.json else result.summary())
    return 0
