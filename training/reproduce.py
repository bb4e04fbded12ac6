"""Every zoo checkpoint, loaded the way users load it, reproduces the clean accuracy its training run measured.

    python -m training.reproduce [NAME ...] [--data-dir DIR] [--cards-dir DIR] [--device cpu]

For each card under ``model_cards/`` (or those named) whose training section names a run folder (which must hold
the run's ``results.json``): ``eee_zoo.load_model`` from the card's folder (sha256 checked, no network), then the clean
accuracy of every predictor and of the aggregate in each mode the run measured (stochastic with the recipe's
stack seed, deterministic), with the run's own function (:func:`training.finalize.evaluate_clean`), batch size
and images, compared count for count with ``results.json``.

On the device type the run used the comparison is exact (same weights, same draws, fp32): any difference fails.
A run measured on a GPU and re-measured on the CPU draws its stochastic stack from another generator, and float
sums differ in their last bits, so there the differences are reported, image counts per predictor, and only a
difference in the deterministic mode larger than ``--tolerance`` images fails. Each checkpoint's comparison goes
to ``<run dir>/reproduced.json``; the exit status is 1 when any check fails.
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from eee_zoo._io import atomic_write_json
from eee_zoo.data import load_uint8
from eee_zoo.loading import load_model
from eee_zoo.registry import list_cards

from .finalize import evaluate_clean

__all__ = ["reproduce", "compare"]

logger = logging.getLogger("eee_zoo.train")
REPO_ROOT = Path(__file__).resolve().parents[1]


def compare(recorded: dict[str, Any], measured: dict[str, Any]) -> dict[str, int]:
    """Per predictor (and ``aggregate``): measured minus recorded correct images."""
    diff = {
        name: measured["per_predictor"][name]["correct"] - r["correct"] for name, r in recorded["per_predictor"].items()
    }
    if "aggregated" in recorded:
        diff["aggregate"] = measured["aggregated"]["correct"] - recorded["aggregated"]["correct"]
    return diff


def run_folder(card: Any) -> Path:
    """The card's training run folder (``training.run_dir``, relative to the repository), which must hold the run's
    ``results.json``."""
    run_dir = REPO_ROOT / card.training["run_dir"]
    if not (run_dir / "results.json").is_file():
        raise SystemExit(f"{card.name}: its card's training run folder {run_dir} holds no results.json")
    return run_dir


def reproduce(
    card: Any, *, data_dir: str | os.PathLike | None, cards_dir: Path, device: str, tolerance: int
) -> dict[str, Any]:
    """Re-measure one card's checkpoint against its run's ``results.json``; returns the comparison record."""
    run_dir = run_folder(card)
    results = json.loads((run_dir / "results.json").read_text())
    recipe = json.loads((run_dir / "recipe.resolved.json").read_text())
    run_device = results.get("device", "cpu").split(":")[0]
    same_device = run_device == torch.device(device).type
    model = load_model(card.name, card.dataset, card.threat_model, cards_dir=cards_dir, device=device)
    if model.eee_info["sha256"] != results["weights_sha256"]:
        raise SystemExit(
            f"{card.name}: the card's weights (sha256 {model.eee_info['sha256'][:12]}) are not the run's "
            f"({results['weights_sha256'][:12]})"
        )
    # the test images once (both modes are measured on the same first n), as stage 3 holds them: uint8 NCHW
    n_max = max(r["n_examples"] for r in results["clean_accuracy"])
    x_all, y_all = load_uint8(card.dataset, "test", data_dir, n_examples=n_max)
    x_all = torch.from_numpy(x_all).permute(0, 3, 1, 2).contiguous().to(device)
    y_all = torch.from_numpy(y_all).to(device)
    checks = []
    for recorded in results["clean_accuracy"]:
        n = recorded["n_examples"]
        x, y = x_all[:n], y_all[:n]
        measured = evaluate_clean(
            model, x, y, batch_size=recipe["evaluation"]["batch_size"], stochastic=recorded["mode"] == "stochastic",
            seed=recorded["seed"],
        )  # fmt: skip
        diff = compare(recorded, measured)
        worst = max(abs(d) for d in diff.values())
        exact = worst == 0
        if same_device:
            ok = exact
        else:  # other draws (stochastic) and other float sums: only the deterministic mode is held to a tolerance
            ok = recorded["mode"] == "stochastic" or worst <= tolerance
        checks.append({
            "mode": recorded["mode"], "n_examples": n, "seed": recorded["seed"],
            "recorded": recorded.get("aggregated", {}).get("correct"),
            "measured": measured.get("aggregated", {}).get("correct"),
            "difference": diff, "exact": exact, "ok": ok,
        })  # fmt: skip
        logger.info(
            "%s %s (n=%d): aggregate %s recorded, %s measured; %s",
            card.name, recorded["mode"], n, checks[-1]["recorded"], checks[-1]["measured"],
            "exact" if exact else f"differences {diff}",
        )  # fmt: skip
    return {
        "name": card.name, "dataset": card.dataset, "threat_model": card.threat_model,
        "weights_sha256": results["weights_sha256"], "run_device": run_device, "device": str(device),
        "same_device": same_device, "tolerance_images": tolerance, "checks": checks,
        "ok": all(c["ok"] for c in checks), "torch": torch.__version__,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.reproduce", description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="checkpoints (default: every card with a training run folder)")
    parser.add_argument("--data-dir", default=None, help="folder of the CIFAR npz files (default: $EEE_ZOO_DATA)")
    parser.add_argument("--cards-dir", default=str(REPO_ROOT / "model_cards"), help="the cards root")
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--tolerance", type=int, default=5,
        help="images a deterministic figure may differ by on another device type (default 5)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S", stream=sys.stdout)
    cards_dir = Path(args.cards_dir)
    if not cards_dir.is_dir():
        parser.error(f"--cards-dir {cards_dir} does not exist")
    cards = [c for c in list_cards(cards_dir=cards_dir) if not args.names or c.name in args.names]
    unknown = set(args.names) - {c.name for c in cards}
    if unknown:
        parser.error(f"no card named {', '.join(sorted(unknown))} under {cards_dir}")
    failed = []
    for card in sorted(cards, key=lambda c: (c.dataset, c.name)):
        if not card.training.get("run_dir"):
            logger.info("%s: its card names no training run folder, skipped", card.name)
            continue
        record = reproduce(card, data_dir=args.data_dir, cards_dir=cards_dir, device=args.device,
                           tolerance=args.tolerance)  # fmt: skip
        atomic_write_json(run_folder(card) / "reproduced.json", record)
        logger.info("%s: %s", card.name, "reproduced" if record["ok"] else "NOT reproduced")
        if not record["ok"]:
            failed.append(card.name)
    if failed:
        logger.error("not reproduced: %s", ", ".join(failed))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
