"""Checking weights against their card before a tensor is read: every file's sha256, a sharded checkpoint's
index and shards, a Hub-ready folder as a whole."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from .._io import sha256_file
from ..cards import CARD_FILENAME, CONFIG_FILENAME, ZooCard, load_card
from .errors import WeightsChecksumError, WeightsNotFoundError

__all__ = ["INDEX_SHA256_KEY", "read_index", "verify_folder", "verify_sha256", "verify_weights"]

INDEX_SHA256_KEY = "eee_zoo_shards_sha256"  # in the index's metadata: its own sha256 then pins every shard


def verify_sha256(path: str | os.PathLike, expected: str, *, card_path: str | os.PathLike | None = None) -> None:
    """Refuse a weights file whose sha256 is not the card's (corrupted, truncated, tampered with, or stale)."""
    actual = sha256_file(path)
    if actual != expected:
        raise WeightsChecksumError(
            f"sha256 mismatch for {path}: the file has {actual} but the card"
            f"{f' {card_path}' if card_path else ''} expects {expected}; refusing to load it "
            "(re-download the file, or re-export the model if the card is out of date)"
        )


def read_index(path: str | os.PathLike) -> dict[str, Any]:
    """A Hugging Face safetensors index, checked for shape: ``{"metadata": {...}, "weight_map": {key: shard}}``."""
    path = Path(path)
    try:
        index = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{path} is not a valid safetensors index ({e})") from None
    weight_map = index.get("weight_map") if isinstance(index, dict) else None
    if not isinstance(weight_map, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in weight_map.items()
    ):
        raise ValueError(f"{path} is not a valid safetensors index (no 'weight_map' of tensor name -> shard file)")
    bad = sorted({v for v in weight_map.values() if "/" in v or "\\" in v or v in ("", ".", "..")})
    if bad:
        raise ValueError(f"{path}: shards must lie beside the index, got {bad}")
    return index


def verify_weights(card: ZooCard, path: str | os.PathLike) -> list[Path]:
    """Check the weights :func:`resolve_weights` found against the card *before* any tensor is read.

    A single file: its sha256. A sharded checkpoint: the index's sha256, then that the index names exactly the
    card's shards, then every shard's sha256 (a missing shard is a :class:`WeightsNotFoundError`, a tampered one a
    :class:`WeightsChecksumError`, both naming the shard). Returns the weights files, in loading order.
    """
    path = Path(path)
    verify_sha256(path, card.sha256, card_path=card.card_path)
    if not card.sharded:
        return [path]
    index = read_index(path)  # its bytes are the card's: safe to parse
    named = set(index["weight_map"].values())
    if named != set(card.shards):
        raise WeightsChecksumError(
            f"{path} names the shards {sorted(named)} but the card{f' {card.card_path}' if card.card_path else ''} "
            f"lists {sorted(card.shards)}; refusing to load (re-export the model)"
        )
    metadata = index.get("metadata")
    recorded = metadata.get(INDEX_SHA256_KEY) if isinstance(metadata, dict) else None
    if recorded is not None and recorded != card.shards:
        raise WeightsChecksumError(f"{path} records other shard sha256s than the card {card.card_path}; refusing")
    files = []
    for name in sorted(card.shards):
        shard = path.parent / name
        if not shard.is_file():
            raise WeightsNotFoundError(
                f"shard {name!r} of {card.name!r} is missing: no {shard} beside its index {path}"
            )
        verify_sha256(shard, card.shards[name], card_path=card.card_path)
        files.append(shard)
    return files


def verify_folder(folder: str | os.PathLike) -> ZooCard:
    """Check a Hub-ready folder before publishing: valid card, weights matching its sha256s, matching config.json.

    For a sharded checkpoint, the index and every shard are checked (:func:`verify_weights`).
    """
    folder = Path(folder)
    card = load_card(folder / CARD_FILENAME)
    weights = folder / card.filename
    if not weights.is_file():
        raise FileNotFoundError(f"{folder}: the card names weights {card.filename!r} but there is no {weights}")
    verify_weights(card, weights)
    config_path = folder / CONFIG_FILENAME
    if config_path.is_file() and json.loads(config_path.read_text()) != card.architecture:
        raise ValueError(f"{config_path} differs from the architecture in {card.card_path}")
    return card
