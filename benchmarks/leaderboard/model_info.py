"""RobustBench ``model_info`` of one checkpoint: its headline AutoAttack result and the best-known (lowest) robust
accuracy any evaluation of it reached (``external``), with the footnote saying where each figure comes from."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from fractions import Fraction
from typing import Any

from eee_zoo.cards import best_known_result, result_suite

from ..results import (
    ResultsError,
    adaptive_card_results,
    card_results,
    eps_tag,
    interval_percent,
    is_worst_case,
    percent_floor,
)

__all__ = ["CAVEAT", "LOAD_SOURCE", "PAPER", "best_known", "headline", "model_info", "per_draw", "same_checkpoint"]

PAPER = {
    "link": "https://arxiv.org/abs/2408.05446",
    "name": "Ensemble everything everywhere: Multi-scale aggregation for adversarial robustness",
    "authors": "Stanislav Fort, Balaji Lakshminarayanan",
    "venue": "arXiv, Aug 2024",
}
LOAD_SOURCE = "eee_zoo.data.load_dataset"


CAVEAT = (
    "AutoAttack numbers are upper bounds: adaptive attacks on this defense report far lower robust accuracy "
    "(Zhang et al. 2024, arXiv:2411.14834); see the adaptive-attack table (`python -m benchmarks.adaptive`). "
    "RobustBench's `external` field holds the lowest robust accuracy measured for the checkpoint."
)


def headline(results: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """The result a leaderboard shows for one checkpoint (see the module docstring), or None."""
    valid = [
        r
        for r in results
        if result_suite(r) == "autoattack"
        and not r.get("attack_overrides")
        and (r.get("data") or {}).get("source") == LOAD_SOURCE
    ]
    if not valid:
        return None

    def key(r: dict[str, Any]) -> tuple:
        matches_mode = r["version"] == ("rand" if r["stochastic"] else "standard")
        return (not matches_mode, -r["n_examples"], r["seed"], r.get("chunk_size") is not None, r["version"])

    return min(valid, key=key)


def _architecture(config: dict[str, Any] | None) -> str:
    if not config:
        return "unknown"
    backbone = config.get("backbone", {})
    kwargs = backbone.get("kwargs") or {}
    widths = f" {kwargs['widths']}" if "widths" in kwargs else ""
    predictors = len(config.get("taps", [])) + int(config.get("include_backbone_head", True))
    aggregator = config.get("aggregator", "crossmax")
    agg = f"CrossMax k={config.get('k', 3)}" if aggregator == "crossmax" else aggregator
    return f"{backbone.get('name', '?')}{widths} self-ensemble ({predictors} predictors, {agg})"


def same_checkpoint(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Same checkpoint (sha256), dataset, threat model and eps: figures that bound the same robustness."""
    keys = ("checkpoint_sha256", "dataset", "threat_model")
    return all(a[k] == b[k] for k in keys) and abs(float(a["eps"]) - float(b["eps"])) < 1e-12


def per_draw(column: dict[str, Any], n: int, draws: int) -> Fraction:
    """A worst-case column's robust accuracy per draw, exactly: its fresh hits over the image-draws."""
    return Fraction(sum(column["fresh_hits"]), n * draws)


def best_known(
    result: dict[str, Any],
    adaptive: Sequence[tuple[str, dict[str, Any]]] = (),
    *,
    results_file: str | None = None,
    autoattack: Sequence[tuple[str, dict[str, Any]]] = (),
) -> dict[str, Any]:
    """The best-known (lowest) robust accuracy of ``result``'s checkpoint at its eps, with where it comes from.

    The card's rule (:func:`eee_zoo.cards.best_known_result`) applied to the entries the card gets from the same
    results files, so the two cannot disagree: ``result`` itself (AutoAttack); the other AutoAttack runs in
    ``autoattack`` (``(results file, dict)``) of the same checkpoint and eps with the full settings (the rule keeps
    those on ``result``'s inference mode; another n is another draw of the attack's randomness, a second
    measurement); and the per-draw figure of every worst-case adaptive result in ``adaptive`` (others are ignored)
    for the same checkpoint, dataset, threat model and eps (its headline: one query of the deployed model;
    AutoAttack's own count, right on all its checks, is stricter, so the lower of the two never flatters a model);
    an adaptive run with a larger run of the same configuration (whose first images it is) is not a candidate.
    Values in percent, floored; intervals widened outwards; ties go to the larger n, then to ``result``.
    """
    entries = card_results(result, results_file or "", check=False)[1:]
    for ref, other in autoattack:
        if other is not result and same_checkpoint(other, result) and headline([other]) is not None:
            entries += card_results(other, ref)[1:]  # full settings only
    worst = 0  # worst-case adaptive evaluations compared
    for ref, r in adaptive:
        if is_worst_case(r) and same_checkpoint(r, result):
            with contextlib.suppress(ResultsError):  # caller-provided images or reduced AutoAttack: not a card figure
                entries += adaptive_card_results(r, ref)
                worst += 1
    chosen = best_known_result(entries, bool(result["stochastic"]))
    assert chosen is not None, "result's own entry is always a candidate"
    ref = chosen["results_file"] if chosen is not entries[0] else results_file
    if chosen["suite"] == "autoattack":
        return {
            "value": chosen["value"],
            "suite": "autoattack",
            "version": chosen["version"],
            "n_examples": chosen["n_examples"],
            "seed": chosen["seed"],
            "interval": chosen["interval"],
            "results_file": ref,
            "adaptive_results": worst,
        }
    return {
        "adaptive_results": worst,
        "value": chosen["value"],
        "suite": "adaptive",
        "version": chosen["version"],
        "n_examples": chosen["images"],
        "fresh_draws": chosen["fresh_draws"],
        "seed": chosen["seed"],
        "interval": chosen["interval"],
        "results_file": ref,
        **({"column": chosen["column"]} if "column" in chosen else {}),
    }


def _best_known_text(best: dict[str, Any], results_file: str | None) -> str:
    lo, hi = best["interval"]
    if best["suite"] == "autoattack":
        compared = best["adaptive_results"]
        others = (
            f"none of the {compared} adaptive worst-case evaluations of this checkpoint found less"
            if compared
            else "no adaptive worst-case evaluation of this checkpoint at this eps yet"
        )
        head = f"Best-known robust accuracy (external): {best['value']:.2f}%"
        if best["results_file"] == results_file:
            return f"{head}, this AutoAttack {best['version']} evaluation; {others}."
        return (
            f"{head}, another AutoAttack {best['version']} run, first {best['n_examples']} test images, seed "
            f"{best['seed']}, 95% interval {lo:.2f}-{hi:.2f}% ({best['results_file']}); {others}."
        )
    what = f"worst case over the adaptive suite's '{best['version'].split('/')[0]}' attacks"
    if best.get("column"):  # a single attack's column counted fewer fresh image-draws than the worst case over all
        what = f"the adaptive suite's '{best['version'].split('/')[0]}' attacks, lowest column ({best['column']})"
    return (
        f"Best-known robust accuracy (external): {best['value']:.2f}%, {what}, per draw, "
        f"first {best['n_examples']} test images x "
        f"{best['fresh_draws']} fresh draws, seed {best['seed']}, 95% interval {lo:.2f}-{hi:.2f}% "
        f"({best['results_file']})."
    )


def model_info(
    result: dict[str, Any],
    *,
    results_file: str | None = None,
    additional_data: bool = False,
    adaptive: Sequence[tuple[str, dict[str, Any]]] = (),
    autoattack: Sequence[tuple[str, dict[str, Any]]] = (),
) -> dict:
    """RobustBench ``model_info`` JSON for one results-file dict; ``adaptive``: worst-case adaptive results,
    ``autoattack``: the checkpoint's other AutoAttack results (each ``(results file, dict)``), that may give a lower
    ``external`` (see :func:`best_known`)."""
    n = result["n_examples"]
    checks = sorted({w["check"] for w in result.get("warnings", [])} - {"n_classes", "other"})
    unreliable = bool(checks) or (result["stochastic"] and result["version"] != "rand")
    clean_interval = interval_percent(result["clean_interval"])
    robust_interval = interval_percent(result["robust_interval"])
    version = result["version"] + (" (EOT 20)" if result["version"] == "rand" else "")
    best = best_known(result, adaptive, results_file=results_file, autoattack=autoattack)
    footnote = (
        f"eee-zoo checkpoint {result['model_name']} (sha256 {result['checkpoint_sha256'][:12]}), "
        f"{'stochastic' if result['stochastic'] else 'deterministic'} inference; AutoAttack {version}, seed "
        f"{result['seed']}, first {n} test images; 95% {result.get('interval_method', 'wilson')} intervals, widened "
        f"outwards: clean {clean_interval[0]:.2f}-{clean_interval[1]:.2f}%, robust "
        f"{robust_interval[0]:.2f}-{robust_interval[1]:.2f}%."
    )
    if checks:
        footnote += f" AutoAttack checks fired: {', '.join(checks)}."
    footnote += " " + _best_known_text(best, results_file) + " " + CAVEAT
    return {
        **PAPER,
        "additional_data": bool(additional_data),
        "number_forward_passes": 1,
        "dataset": result["dataset"],
        "architecture": _architecture(result.get("model_config")),
        "eps": eps_tag(result["eps"], result["threat_model"]).replace("-", "/"),
        "clean_acc": percent_floor(result["clean_correct"], n),
        "reported": None,
        "autoattack_acc": percent_floor(result["robust_correct"], n),
        "external": best["value"],
        "unreliable": unreliable,
        "footnote": footnote,
        "eee_zoo": {
            "checkpoint": result["model_name"],
            "sha256": result["checkpoint_sha256"],
            "version": result["version"],
            "stochastic_inference": result["stochastic"],
            "seed": result["seed"],
            "n_examples": n,
            "clean_correct": result["clean_correct"],
            "robust_correct": result["robust_correct"],
            "clean_interval": clean_interval,
            "robust_interval": robust_interval,
            "results_file": results_file,
            "external": best,
        },
    }
