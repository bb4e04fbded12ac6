"""Re-key stored attack states keyed without the model's config to the current key, so they are resumed.

    python -m benchmarks.migrate_state DIR [--cards-dir DIR] [--dry-run]     # e.g. benchmarks/state, ~/.cache/eee_zoo

States used to be keyed by the weights' hash without the model's config, so an inference-time variant of a
checkpoint (``eee_zoo.models.variants.derive``) could resume its parent's attacks; the config is now in the key.

* The adaptive suite's batch folders (``adaptive_<key>/``, state format 2 -> 3): a format-2 folder holds attacks on a
  zoo checkpoint as its card deploys it (the adaptive suite never attacked a variant), so it is re-keyed with the
  config of the zoo checkpoint whose weights' hash it names: every batch file gets the new config, the folder its new
  name (each file written atomically, the folder renamed last).
* AutoAttack's states (``<stem>.eee.json`` + ``<stem>.adv.safetensors``, identity without ``model_config``): re-keyed
  only when run under the zoo checkpoint's own name (a variant ran under its own name, and its config cannot be told
  from the state), with the card's config in the inference mode the state records (stochastic or not).

Anything whose hash names no zoo checkpoint, or that is not unambiguous, is left as it is, and said so.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

from eee_zoo._io import atomic_write_json
from eee_zoo.adaptive.evaluate import STATE_FORMAT, state_folder
from eee_zoo.evaluation.state import STATE_FORMAT as STATE_FORMAT_AUTOATTACK
from eee_zoo.evaluation.state import state_location
from eee_zoo.registry import list_cards


def zoo_cards(cards_dir: str | None = None) -> dict[str, tuple[str, dict[str, Any]]]:
    """Weights' sha256 -> (the zoo checkpoint's name, the config its card deploys)."""
    return {
        card.sha256: (card.name, json.loads((card.folder / "config.json").read_text()))
        for card in list_cards(cards_dir=cards_dir)
    }


def migrate(
    state_dir: Path, cards: dict[str, tuple[str, dict[str, Any]]], *, dry_run: bool = False
) -> list[tuple[str, str]]:
    """Re-key every format-2 folder under ``state_dir``; ``cards``: weights' sha256 -> (card name, config). Returns
    ``(old name, new name)`` per folder moved."""
    moved = []
    for folder in sorted(state_dir.glob("adaptive_*")):
        files = sorted(folder.glob("batch*.json"))
        stored = [json.loads(f.read_text()) for f in files]
        olds = {json.dumps(d["config"], sort_keys=True) for d in stored}
        if not files or len(olds) != 1:
            logging.warning("%s: %s, left as it is", folder, "no batches" if not files else "batches disagree")
            continue
        old = stored[0]["config"]
        if old.get("format") != 2:
            continue
        if old["model"] not in cards:
            logging.warning("%s: weights %s are no zoo checkpoint's, left as it is", folder, old["model"][:12])
            continue
        new = {**old, "format": STATE_FORMAT, "model_config": cards[old["model"]][1]}
        if state_folder(old) != folder.name:
            logging.warning("%s: its name is not its config's key, left as it is", folder)
            continue
        target = folder.parent / state_folder(new)
        if target.exists():
            raise SystemExit(f"error: {target} exists already; remove one of {folder} and {target}")
        moved.append((folder.name, target.name))
        logging.info("%s -> %s", folder.name, target.name)
        if dry_run:
            continue
        for path, data in zip(files, stored):
            atomic_write_json(path, {**data, "config": new})
        folder.rename(target)
    return moved


def migrate_autoattack(
    state_dir: Path, cards: dict[str, tuple[str, dict[str, Any]]], *, dry_run: bool = False
) -> list[tuple[str, str]]:
    """Re-key every AutoAttack state under ``state_dir`` (recursively) whose identity has no model config;
    ``cards``: weights' sha256 -> (card name, config). Returns ``(old stem, new stem)`` per state moved."""
    moved = []
    for record in sorted(state_dir.rglob("*.eee.json")):
        data = json.loads(record.read_text())
        identity = data.get("identity") or {}
        if "model_config" in identity or not identity or data.get("format_version") != STATE_FORMAT_AUTOATTACK:
            continue  # current, or of a format that is discarded on reading anyway (no examples kept)
        stem = record.name[: -len(".eee.json")]
        card = cards.get(identity.get("checkpoint_sha256"))
        if card is None or card[0] != identity.get("model_name") or identity.get("chunk_size") is not None:
            why = "no zoo checkpoint's" if card is None else "not its card's name, or chunked"
            logging.warning("%s: %s, left as it is", record, why)
            continue
        config = json.loads(json.dumps(card[1]))
        config["stack"]["stochastic"] = bool(identity["stochastic"])
        new_identity = {**identity, "model_config": config}
        with state_location(record.parent, new_identity, chunked=False) as where:
            new_stem = where.stem
        if new_stem == stem or record.with_name(f"{new_stem}.eee.json").exists():
            logging.warning("%s: %s exists already, left as it is", record, new_stem)
            continue
        moved.append((stem, new_stem))
        logging.info("%s -> %s", stem, new_stem)
        if dry_run:
            continue
        examples = record.with_name(f"{stem}.adv.safetensors")
        if examples.exists():  # the examples first: a record never names examples that are not on disk
            examples.rename(record.with_name(f"{new_stem}.adv.safetensors"))
        atomic_write_json(record.with_name(f"{new_stem}.eee.json"), {**data, "identity": new_identity})
        record.unlink()
    return moved


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("state_dir", help="the --state-dir of the adaptive runs (e.g. benchmarks/state)")
    parser.add_argument("--cards-dir", default=None, help="the zoo's model cards (default: the package's)")
    parser.add_argument("--dry-run", action="store_true", help="only say what would move")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    state_dir = Path(args.state_dir)
    if not state_dir.is_dir():
        print(f"error: state dir {state_dir} does not exist", file=sys.stderr)
        return 2
    cards = zoo_cards(args.cards_dir)
    for folder in [state_dir, *sorted(p for p in state_dir.rglob("*") if p.is_dir())]:
        if any(folder.glob("adaptive_*")):
            migrate(folder, cards, dry_run=args.dry_run)
    migrate_autoattack(state_dir, cards, dry_run=args.dry_run)
    return 0


if __name__ == "__main__":
    sys.exit(main())
