"""The registry: the model cards under one root, looked up by (name, dataset, threat model).

Cards live at ``<root>/<dataset>/<threat_model>/<Name>/README.md``. The root is, in order: the
``cards_dir`` argument, the environment variable ``EEE_ZOO_CARDS``, the repository's ``model_cards/``
beside the package (source checkout or editable install), or ``eee_zoo/model_cards/`` inside an installed
package. Architectures are code; the checkpoints are exactly the cards found here.
"""

from __future__ import annotations

import difflib
import fnmatch
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .cards import CARD_FILENAME, CardError, ZooCard, is_valid_name, load_card, parse_dataset, parse_threat_model

__all__ = ["CARDS_ENV", "UnknownModelError", "cards_root", "card_folder", "get_card", "list_cards", "list_models"]

CARDS_ENV = "EEE_ZOO_CARDS"
_PACKAGE_DIR = Path(__file__).resolve().parent


class UnknownModelError(KeyError):
    """No card for this (name, dataset, threat model); the message suggests what was meant."""

    def __str__(self) -> str:  # KeyError would print the message in quotes
        return str(self.args[0]) if self.args else ""


def cards_root(cards_dir: str | os.PathLike | None = None) -> Path:
    """The folder holding the cards: ``cards_dir``, else ``$EEE_ZOO_CARDS``, else the shipped ``model_cards/``."""
    if cards_dir is not None:
        return Path(cards_dir)
    if os.environ.get(CARDS_ENV):
        return Path(os.environ[CARDS_ENV])
    checkout = _PACKAGE_DIR.parent / "model_cards"  # source checkout / editable install
    installed = _PACKAGE_DIR / "model_cards"  # regular install, when the cards are packaged as data
    return installed if installed.is_dir() and not checkout.is_dir() else checkout


def card_folder(
    name: str, dataset: Any = "cifar10", threat_model: Any = "Linf", *, cards_dir: str | os.PathLike | None = None
) -> Path:
    """Where the Hub-ready folder of a checkpoint belongs in the registry (pass it to ``export``)."""
    return cards_root(cards_dir) / parse_dataset(dataset) / parse_threat_model(threat_model) / name


def list_cards(
    filter: str | Sequence[str] = "*",
    dataset: Any = None,
    threat_model: Any = None,
    *,
    cards_dir: str | os.PathLike | None = None,
) -> list[ZooCard]:
    """Every card matching the filters, naturally sorted by name. All cards are validated first."""
    root = cards_root(cards_dir)
    cards = [_load_in_place(path, root) for path in _card_paths(root)]
    patterns = [filter] if isinstance(filter, str) else list(filter)
    dataset = parse_dataset(dataset) if dataset is not None else None
    threat_model = parse_threat_model(threat_model) if threat_model is not None else None
    selected = [
        card
        for card in cards
        if any(fnmatch.fnmatchcase(card.name.lower(), p.lower()) for p in patterns)
        and dataset in (None, card.dataset)
        and threat_model in (None, card.threat_model)
    ]
    return sorted(selected, key=lambda c: (_natural_key(c.name), c.dataset, c.threat_model))


def list_models(
    filter: str | Sequence[str] = "*",
    dataset: Any = None,
    threat_model: Any = None,
    *,
    cards_dir: str | os.PathLike | None = None,
) -> list[str]:
    """Names of the checkpoints in the zoo, like ``timm.list_models``.

    Args:
        filter: a wildcard pattern (``"*WRN*"``, case-insensitive) or a list of them.
        dataset: only checkpoints for this dataset (``"cifar10"``, ``"cifar100"``; case-insensitive).
        threat_model: only checkpoints for this threat model (``"Linf"``, ``"L2"``).
        cards_dir: the cards root (default: ``$EEE_ZOO_CARDS`` or the shipped ``model_cards/``).

    Returns:
        Unique names in natural order (``Tiny-2`` before ``Tiny-10``). Raises :class:`~eee_zoo.cards.CardError`
        naming the file and field if any card is invalid.
    """
    names = {card.name for card in list_cards(filter, dataset, threat_model, cards_dir=cards_dir)}
    return sorted(names, key=_natural_key)


def get_card(
    name: str, dataset: Any = "cifar10", threat_model: Any = "Linf", *, cards_dir: str | os.PathLike | None = None
) -> ZooCard:
    """The validated card of one checkpoint; :class:`UnknownModelError` with suggestions if there is none."""
    dataset, threat_model = parse_dataset(dataset), parse_threat_model(threat_model)
    root = cards_root(cards_dir)
    path = root / dataset / threat_model / str(name) / CARD_FILENAME
    if is_valid_name(name) and path.is_file():
        card = _load_in_place(path, root)
        if card.name == name:  # guards case-insensitive file systems
            return card
    raise UnknownModelError(_explain_unknown(str(name), dataset, threat_model, root))


# ---------------------------------------------------------------------------------------------- internals
def _natural_key(name: str) -> tuple:
    """``Tiny-2`` < ``Tiny-10``: digit runs compare as numbers, the rest case-insensitively."""
    parts = re.split(r"(\d+)", name)
    return tuple(int(p) if i % 2 else p.lower() for i, p in enumerate(parts)), name


def _card_paths(root: Path) -> list[Path]:
    return sorted(root.glob(f"*/*/*/{CARD_FILENAME}"))


def _load_in_place(path: Path, root: Path) -> ZooCard:
    """Load a card and check that it sits where its data says: ``<root>/<dataset>/<threat_model>/<name>/``."""
    card = load_card(path)
    dataset, threat_model, name = path.relative_to(root).parts[:3]
    for field, actual, expected in (
        ("name", card.name, name),
        ("dataset", card.dataset, dataset),
        ("threat_model", card.threat_model, threat_model),
    ):
        if actual != expected:
            raise CardError(path, f"eee_zoo.{field}", f"{actual!r} but the card sits in a folder named {expected!r}")
    return card


def _explain_unknown(name: str, dataset: str, threat_model: str, root: Path) -> str:
    where = f"{dataset}/{threat_model}"
    known = [p.relative_to(root).parts[:3] for p in _card_paths(root)]  # (dataset, threat_model, name)
    if not known:
        return (
            f"unknown model {name!r} for {where}: no model cards found under {root} "
            f"(pass cards_dir=... or set {CARDS_ENV})"
        )
    elsewhere = sorted(f"dataset={d!r}, threat_model={t!r}" for d, t, n in known if n == name)
    if elsewhere:
        return f"model {name!r} is not available for {where}; it exists for {'; '.join(elsewhere)}"
    here = sorted({n for d, t, n in known if (d, t) == (dataset, threat_model)}, key=_natural_key)
    same_case = [n for n in here if n.lower() == name.lower()]
    close = same_case or difflib.get_close_matches(name, here, n=3, cutoff=0.5)
    if close:
        hint = f"did you mean {', '.join(repr(c) for c in close)}?"
    elif here:
        hint = f"available: {', '.join(here[:10])}{' ...' if len(here) > 10 else ''}"
    else:
        hint = "there are no models for it yet"
    return f"unknown model {name!r} for {where}; {hint} (cards under {root})"
