"""Plot certified accuracy against radius from one certification results file (:mod:`benchmarks.certify`).

    python -m benchmarks.figures.certified RESULTS_JSON [--out DIR] [--empirical-from-card] [--cards-dir DIR]

Writes ``certified_<version>.png`` and ``.json`` (:func:`eee_zoo.viz.certified_curve_figure`; ``<version>`` as the
card names the smoothing, ``cohen-sigma0.25-n0100-N10000-alpha0.001``) into ``benchmarks/figures/<name>/`` (or
``--out``), atomically; the JSON holds the curve, its intervals and the command. ``--empirical-from-card``: draw
the model card's best-known robust accuracy per threat budget (:func:`eee_zoo.cards.best_known_result`, the
upper bounds the card sets beside the certified ones) on the same axes. Redraw from the JSON with
``python -c "from eee_zoo.viz import redraw; redraw('benchmarks/figures/NAME/certified_VERSION.json')"``.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.certify import certified_version
from eee_zoo.adaptive.result import per_draw_count_interval
from eee_zoo.cards import THREAT_MODELS, CardError, ZooCard, best_known_result, result_label
from eee_zoo.evaluation.intervals import clopper_pearson_interval
from eee_zoo.registry import UnknownModelError, get_card
from eee_zoo.viz import certified_curve, certified_curve_figure, save_png, write_json

from .cards import FIGURES_ROOT, REPO_ROOT

__all__ = ["card_empirical_points", "find_card", "main", "read_results"]


def read_results(path: Path) -> dict[str, Any]:
    """The data of a certification results file; ``SystemExit`` with one line when it is missing or not one."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise SystemExit(f"error: certified results file not found: {path}") from None
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise SystemExit(f"error: cannot read certified results file {path}: {str(e).splitlines()[0]}") from None
    if not isinstance(data, dict) or data.get("suite") != "certify":
        raise SystemExit(f"error: {path} is not a certification results file (python -m benchmarks.certify)")
    return data


def find_card(result: dict[str, Any], cards_dir: str | Path | None = None) -> ZooCard:
    """The model card of a result (its model, dataset and card threat model, else any threat model); it must be of
    the checkpoint the result certified. ``SystemExit`` with one line otherwise."""
    threat = result.get("card_threat_model")
    for threat_model in [threat] if threat else THREAT_MODELS:
        try:
            card = get_card(result["model_name"], result["dataset"], threat_model, cards_dir=cards_dir)
        except UnknownModelError:
            continue
        except (CardError, OSError, ValueError) as e:
            raise SystemExit(f"error: {str(e).splitlines()[0]}") from None
        if card.sha256 != result.get("checkpoint_sha256"):
            raise SystemExit(
                f"error: the card of {card.name} ({card.card_path}) is of checkpoint {card.sha256[:12]}, the results "
                f"file of {str(result.get('checkpoint_sha256'))[:12]}: its attacks are of another checkpoint"
            )
        return card
    raise SystemExit(f"error: no model card for {result['model_name']} ({result['dataset']}, {threat or 'any'})")


def card_empirical_points(card: Any) -> list[dict[str, Any]]:
    """The card's best-known robust accuracy per (norm, eps) as empirical points of the certified curve: what the
    card's certified section sets beside the certified rows (:func:`eee_zoo.cards.best_known_result`). Intervals:
    Clopper-Pearson over images; for the adaptive worst case per draw, at the fractional count over its images
    (:func:`eee_zoo.adaptive.result.per_draw_count_interval`, as its results file states it)."""
    robust = [r for r in card.results if r["metric"] == "robust_accuracy" and r["norm"] in ("Linf", "L2")]
    points = []
    for norm, eps in sorted({(r["norm"], r["eps"]) for r in robust}):
        best = best_known_result([r for r in robust if (r["norm"], r["eps"]) == (norm, eps)], card.stochastic_inference)
        if best is None:
            continue
        draws = best.get("fresh_draws")
        if str(best.get("version")).endswith("/per-draw") and draws:
            images = int(best.get("images") or best["n_examples"] // draws)
            interval = per_draw_count_interval(int(best["correct"]), images, int(draws))
            how, label = "clopper-pearson 95% at the fractional count (per draw)", result_label(best)
        else:
            images = int(best["n_examples"])
            interval = clopper_pearson_interval(int(best["correct"]), images)
            how, label = "clopper-pearson 95% over images", f"{result_label(best)}, {images} images"
        points.append({
            "label": f"{label}, seed {best['seed']}", "norm": norm, "eps": float(eps),
            "accuracy": int(best["correct"]) / int(best["n_examples"]), "interval": [float(v) for v in interval],
            "n_examples": int(best["n_examples"]), "images": images, "interval_method": how,
            "results_file": best["results_file"], "version": best["version"],
        })  # fmt: skip
    return points


def _shown(path: Path) -> str:
    """A path as the JSON records it: relative to the repository when inside it."""
    try:
        return path.resolve().relative_to(REPO_ROOT).as_posix()
    except ValueError:
        return str(path)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.figures.certified", description=__doc__.split("\n")[0])
    parser.add_argument("results", type=Path, help="a certified results file (benchmarks/results/.../certified/*.json)")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: benchmarks/figures/<name>/)")
    parser.add_argument(
        "--empirical-from-card", action="store_true", help="draw the card's best-known robust accuracies beside"
    )
    parser.add_argument("--cards-dir", default=None, help="the model cards' root (default: the zoo's)")
    parser.add_argument("--grid-points", type=int, default=101, help="radii on the curve's grid (default 101)")
    args = parser.parse_args(argv)
    command = "python -m benchmarks.figures.certified " + shlex.join(sys.argv[1:] if argv is None else list(argv))

    result = read_results(args.results)
    try:
        version = certified_version(result)
        empirical = card_empirical_points(find_card(result, args.cards_dir)) if args.empirical_from_card else []
        data = certified_curve(
            result, results_file=_shown(args.results), empirical=empirical, grid_points=args.grid_points
        )
    except (KeyError, TypeError, ValueError) as e:
        raise SystemExit(f"error: {args.results}: not a usable certification result ({e})") from None
    out = args.out if args.out is not None else FIGURES_ROOT / re.sub(r"[^A-Za-z0-9_.-]+", "-", data.model_name)
    stem = f"certified_{version}"
    png = save_png(certified_curve_figure(data), out / f"{stem}.png")
    record = {**data.record(), "command": command, "checkpoint_sha256": result.get("checkpoint_sha256")}
    record["stochastic"] = result.get("stochastic")
    write_json(record, out / f"{stem}.json")
    print(f"{png}\n{png.with_suffix('.json')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
