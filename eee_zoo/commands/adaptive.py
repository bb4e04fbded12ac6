"""``eee-zoo adaptive``: score a zoo checkpoint with the adaptive attacks of :mod:`eee_zoo.adaptive`.

Prints the result; with ``--json`` the whole result as JSON. Results files, cards and the leaderboard are the
business of ``python -m benchmarks.adaptive`` in a source checkout.
"""

from __future__ import annotations

import argparse
import json

from . import add_card_arguments

HELP = "Score a checkpoint with adaptive attacks (transfer, CrossMax surrogate, EOT), judged on many draws."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..adaptive import ADAPTIVE_ATTACKS

    parser.add_argument("name", help="checkpoint name (see `eee-zoo list`)")
    add_card_arguments(parser)
    parser.add_argument("--n-examples", type=int, default=100, help="the first N test images (default: 100)")
    parser.add_argument("--seed", type=int, default=0, help="seed of every draw and attack (default: 0)")
    parser.add_argument("--attacks", nargs="+", choices=ADAPTIVE_ATTACKS, default=list(ADAPTIVE_ATTACKS))
    parser.add_argument("--n-iter", type=int, default=100, help="APGD iterations per attack (default: 100)")
    parser.add_argument("--eot-iter", type=int, default=20, help="draws per step of eot-mean (default: 20)")
    parser.add_argument("--eval-draws", type=int, default=10, help="draws judging each image (default: 10)")
    parser.add_argument("--batch-size", type=int, default=250)
    parser.add_argument("--device", default="cpu", help="cpu, cuda, ... (default: cpu)")
    parser.add_argument("--data-dir", help="data root (default: $EEE_ZOO_DATA, else the embedded slice)")
    parser.add_argument("--json", action="store_true", help="print the whole result as JSON")


def run(args: argparse.Namespace) -> int:
    from ..adaptive import adaptive_evaluate
    from ..loading import load_model

    model = load_model(args.name, args.dataset, args.threat_model, cards_dir=args.cards_dir, device=args.device)
    result = adaptive_evaluate(
        model,
        args.n_examples,
        args.dataset,
        args.threat_model,
        attacks=args.attacks,
        n_iter=args.n_iter,
        eot_iter=args.eot_iter,
        eval_draws=args.eval_draws,
        batch_size=args.batch_size,
        seed=args.seed,
        device=args.device,
        data_dir=args.data_dir,
    )
    print(json.dumps(result.to_dict(), indent=2) if args.json else result.summary())
    return 0
