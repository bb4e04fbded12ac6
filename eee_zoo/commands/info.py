"""``eee-zoo info NAME``: everything one card says about a checkpoint."""

from __future__ import annotations

import argparse
import dataclasses
import json
from typing import Any

from . import add_card_arguments

HELP = (
    "Show a checkpoint's card: Hub location, sha256, inference mode, best-known robust accuracy, architecture, "
    "training and results."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", help="checkpoint name (see `eee-zoo list`)")
    add_card_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print the card data as JSON")


def run(args: argparse.Namespace) -> int:
    from ..cards import results_table
    from ..registry import get_card

    card = get_card(args.name, args.dataset, args.threat_model, cards_dir=args.cards_dir)
    if args.json:
        data = dataclasses.asdict(card)
        data["card_path"] = str(card.card_path)
        print(json.dumps(data, indent=2))
        return 0
    stack = card.architecture.get("stack") or {}
    inference = "stochastic" if card.stochastic_inference else "deterministic"
    training = ", ".join(f"{k}={v}" for k, v in card.training.items()) or "-"
    print(f"{card.name}  ({card.dataset} / {card.threat_model})")
    for label, value in (
        ("card", card.card_path),
        ("hub", f"{card.repo_id} @ {card.revision} / {card.filename}"),
        ("sha256", card.sha256),
        ("inference", f"{inference} (generator seed {stack.get('seed', 0)})"),
        ("best-known", _best_known_text(card)),
        ("training", training),
    ):
        print(f"  {label + ':':<14}{value}")
    print("  architecture:")
    for key, value in card.architecture.items():
        print(f"    {key + ':':<24}{json.dumps(value)}")
    if card.results:
        print("  results:")
        for line in results_table(card.results).splitlines():
            print(f"    {line}")
    else:
        print(
            f"  results:      none yet; add them with: eee-zoo benchmark {card.name} --dataset {card.dataset} "
            f"--threat-model {card.threat_model} --write-card"
        )
    return 0


def _best_known_text(card: Any) -> str:
    from ..cards import format_eps, interval_text, result_label

    best = card.best_known()
    if best is None:
        return "- (no robust accuracy at the default eps yet)"
    eps = format_eps(best["eps"], best["norm"])
    return (
        f"{best['value']:.2f} % {interval_text(best)} robust at {best['norm']} eps {eps} ({result_label(best)}, "
        f"seed {best['seed']}; the lowest any attack reached: an upper bound)"
    )
