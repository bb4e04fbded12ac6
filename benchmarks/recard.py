"""Copy committed results files into their model cards again, without running anything.

    python -m benchmarks.recard RESULTS_FILE [RESULTS_FILE ...] [--no-leaderboard]

For when the rule that turns a results file into card figures changes (e.g. the adaptive headline column,
:func:`eee_zoo.adaptive.result.headline_column`): each file's card entries are derived again exactly as
``--write-card`` derives them after a run (:func:`~benchmarks.results.card_results` for AutoAttack,
:func:`~benchmarks.results.adaptive_card_results` for the adaptive worst case,
:func:`~benchmarks.certify.certified_card_results` for randomized smoothing), written into the card of the
checkpoint the file names, and the leaderboard is rebuilt. A worst-case file's summary beside it (``.log``) is
written again from the file, so it shows the same headline.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from eee_zoo._io import atomic_write_text
from eee_zoo.adaptive.result import AdaptiveResult
from eee_zoo.cards import set_results
from eee_zoo.registry import get_card

from .certify import certified_card_results
from .results import (
    RESULTS_DIR,
    adaptive_card_results,
    card_results,
    is_worst_case,
    load_result,
    results_file_reference,
)

__all__ = ["main", "recard"]


def recard(path: str | Path, *, cards_dir: str | Path | None = None, results_dir: str | Path | None = None) -> Path:
    """Write one results file's figures into its model card again; returns the card's path."""
    path = Path(path)
    certified = path.parent.name == "certified"  # randomized smoothing's files (benchmarks.certify) have their own form
    data = json.loads(path.read_text()) if certified else load_result(path)  # names the file when it is not one
    ref = results_file_reference(path, results_dir if results_dir is not None else RESULTS_DIR)
    threat_model = data.get("threat_model") or path.parents[2].name  # a certification file's folder names it
    card = get_card(data["model_name"], data["dataset"], threat_model, cards_dir=cards_dir)
    if certified:
        entries = certified_card_results(data, ref)
    elif is_worst_case(data):
        entries = adaptive_card_results(data, ref)
        atomic_write_text(path.with_suffix(".log"), AdaptiveResult.from_dict(data).summary() + "\n")
    else:
        entries = card_results(data, ref)
    set_results(card.card_path, entries)
    return card.card_path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.recard", description=__doc__.split("\n\n")[0])
    parser.add_argument("results", nargs="+", help="results files (benchmarks/results/...json)")
    parser.add_argument("--cards-dir", default=None, help="default: the zoo's model_cards/")
    parser.add_argument("--no-leaderboard", action="store_true", help="do not rebuild the leaderboard")
    args = parser.parse_args(argv)
    for results in args.results:
        if not Path(results).is_file():
            parser.error(f"no such results file: {results}")
    for results in args.results:
        print(f"{results} -> {recard(results, cards_dir=args.cards_dir)}")
    if not args.no_leaderboard:
        from .leaderboard import build

        print(f"leaderboard: {build()['markdown']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
