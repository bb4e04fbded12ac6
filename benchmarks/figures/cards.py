"""Show each zoo checkpoint's figures in its model card: ``python -m benchmarks.figures.cards [NAME ...]``.

A card ``model_cards/<dataset>/<threat_model>/<Name>/README.md`` gets a Figures section (and PNG copies in its
``figures/`` folder, for links that work in the repository and on the Hub) exactly when ``benchmarks/figures/<Name>/``
holds figures (:func:`eee_zoo.cards.set_figures`); a card without them keeps none.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from eee_zoo.cards import CARD_FILENAME, set_figures

REPO_ROOT = Path(__file__).resolve().parents[2]
FIGURES_ROOT = REPO_ROOT / "benchmarks" / "figures"
CARDS_ROOT = REPO_ROOT / "model_cards"


def show_figures(
    names: Sequence[str] = (), cards_root: Path = CARDS_ROOT, figures_root: Path = FIGURES_ROOT
) -> dict[str, list[Path]]:
    """:func:`eee_zoo.cards.set_figures` for every card under ``cards_root`` (or those named); name -> copies."""
    shown = {}
    for card in sorted(cards_root.glob(f"*/*/*/{CARD_FILENAME}")):
        name = card.parent.name
        if names and name not in names:
            continue
        folder = figures_root / name
        shown[name] = set_figures(card, folder if folder.is_dir() else None)
    return shown


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.figures.cards", description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="checkpoints (default: every card)")
    args = parser.parse_args(argv)
    for name, copies in show_figures(args.names).items():
        print(f"{name}: {len(copies)} figures" if copies else f"{name}: no figures")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
