"""Re-key the adaptive attacks' stored batches of an earlier state format to the current one.

    python -m benchmarks.migrate_state benchmarks/state [--cards-dir DIR] [--dry-run]

State format 2 keyed a folder of finished batches (``adaptive_<key>/``) by the weights' hash without the model's
config, so an inference-time variant of a checkpoint (``eee_zoo.models.variants.derive``) could resume its parent's
attacks. Format 3 puts the config in the key. A format-2 folder holds attacks on a zoo checkpoint as its card
deploys it (variants were only ever attacked by AutoAttack, never by the adaptive suite), so it is re-keyed with the
config of the zoo checkpoint whose weights' hash it names: every batch file gets the new config and the folder its new
name (each file written atomically, the folder renamed last). A folder whose hash names no zoo checkpoint is left as
it is, and said so.
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


def zoo_configs(cards_dir: str | None = None) -> dict[str, dict[str, Any]]:
    """Weights' sha256 -> the config its zoo card deploys."""
    from eee_zoo.registry import list_cards

    configs = {}
    for card in list_cards(cards_dir=cards_dir):
        config = json.loads((card.folder / "config.json").read_text())
        configs[card.sha256] = config
    return configs


def migrate(state_dir: Path, configs: dict[str, dict[str, Any]], *, dry_run: bool = False) -> list[tuple[str, str]]:
    """Re-key every format-2 folder under ``state_dir``; returns ``(old name, new name)`` per folder moved."""
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
        if old["model"] not in configs:
            logging.warning("%s: weights %s are no zoo checkpoint's, left as it is", folder, old["model"][:12])
            continue
        new = {**old, "format": STATE_FORMAT, "model_config": configs[old["model"]]}
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
    migrate(state_dir, zoo_configs(args.cards_dir), dry_run=args.dry_run)
    return 0


if __name__ == "__main__":
    sys.exit(main())
