"""``eee-zoo list``: the checkpoints in the zoo, one line each (or JSON)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from . import add_card_arguments

HELP = (
    "List the checkpoints in the zoo: name, dataset, threat model, architecture, clean accuracy, the best-known "
    "robust accuracy (the lowest any attack reached) and every robust figure."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("filter", nargs="?", default="*", help="wildcard on the name, e.g. '*WRN*' (case-insensitive)")
    add_card_arguments(parser, filters=True)
    parser.add_argument("--json", action="store_true", help="print a JSON list instead of a table")


def run(args: argparse.Namespace) -> int:
    from ..registry import cards_root, list_cards

    cards = list_cards(args.filter, args.dataset, args.threat_model, cards_dir=args.cards_dir)
    rows = [summarize(card) for card in cards]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print(f"no models match {args.filter!r} (cards under {cards_root(args.cards_dir)})")
        return 0
    columns = ("name", "dataset", "threat_model", "architecture", "inference", "clean", "best_known", "robust")
    table = [
        ("NAME", "DATASET", "THREAT", "ARCHITECTURE", "INFERENCE", "CLEAN %", "BEST-KNOWN ROBUST %", "ALL ROBUST %")
    ]
    table += [tuple(_best_cell(row[c]) if c == "best_known" else _cell(row[c]) for c in columns) for row in rows]
    widths = [max(len(r[i]) for r in table) for i in range(len(columns))]
    for r in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip())
    return 0


def summarize(card: Any) -> dict[str, Any]:
    """One row: the card's identity, a short architecture, the clean, best-known and per-version robust accuracies.

    The clean accuracy is the deployed inference mode's (the card's ``stochastic_inference``), as in the
    leaderboard's ``model_info``; every figure carries the mode it was measured in (``stochastic`` may be None
    for a result that did not record it) and its n. ``best_known`` is the card's headline at the threat model's
    default eps (:func:`eee_zoo.cards.best_known_result`: the lowest figure any attack reached on the deployed
    model) with what it counts, its seed and results file; None where nothing was measured there.
    """
    arch = card.architecture
    aggregator = arch.get("aggregator", "crossmax")
    n_heads = len(arch["taps"]) + int(arch.get("include_backbone_head", True))
    agg = f"crossmax k={arch.get('k', 3)}" if aggregator == "crossmax" else aggregator
    clean = card.deployed_clean() or card.best_result("clean_accuracy")  # else the best other mode's
    versions = sorted({r["version"] for r in card.results if r["metric"] == "robust_accuracy"})
    robust = {v: card.best_result("robust_accuracy", v) for v in versions}
    return {
        "name": card.name,
        "dataset": card.dataset,
        "threat_model": card.threat_model,
        "architecture": f"{arch['backbone']['name']}, {n_heads} predictor{'s' * (n_heads != 1)}, {agg}",
        "inference": "stochastic" if card.stochastic_inference else "deterministic",
        "clean": _figure(clean) if clean else None,
        "best_known": _best_known(card),
        "robust": {v: _figure(r) for v, r in robust.items()},
        "repo_id": card.repo_id,
        "revision": card.revision,
        "card_path": str(card.card_path),
    }


def _best_known(card: Any) -> dict[str, Any] | None:
    from ..cards import result_label

    best = card.best_known()
    if best is None:
        return None
    return {**_figure(best), "label": result_label(best), "seed": best["seed"], "results_file": best["results_file"]}


def _best_cell(value: dict[str, Any] | None) -> str:
    if value is None:
        return "-"
    return f"{_number(value)} ({value['label']}, seed {value['seed']})"


def _number(value: dict[str, Any]) -> str:
    """The figure and, where the card has it, its 95 % interval: ``18.60 [15.43, 22.25]``."""
    from ..cards import interval_text

    return f"{value['value']:.2f}" + ("" if value.get("interval") is None else f" {interval_text(value)}")


def _figure(result: dict[str, Any]) -> dict[str, Any]:
    out = {"value": result["value"], "n_examples": result["n_examples"], "stochastic": result.get("stochastic")}
    for key in ("interval", "eval_draws", "images", "fresh_draws"):  # the adaptive suite's: what its n counts
        if result.get(key):
            out[key] = result[key]
    return out


def _cell(value: Any) -> str:
    if value is None or value == {}:
        return "-"
    if isinstance(value, dict) and "value" in value:
        images, draws = value.get("images"), value.get("fresh_draws")
        if images and draws and value["n_examples"] == images * draws:  # the adaptive suite's per-draw figure
            label = [f"n={images} x {draws} draws"]
        else:
            label = [f"n={value['n_examples']}"]
        mode = value.get("stochastic")
        if mode is not None:
            label.append("stochastic" if mode else "deterministic")
        if value.get("eval_draws"):
            label.append(f"right on all {value['eval_draws']} draws")
        return f"{_number(value)} ({', '.join(label)})"
    if isinstance(value, dict):
        return ", ".join(f"{v} {_cell(r)}" for v, r in value.items())
    return str(value)
