"""A card's results: one dict per measurement (the contract :func:`validate_result` checks), its identity,
its label in words, the results table and the best-known (lowest) robust accuracy."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from .fields import CardError, Fields

__all__ = [
    "IDENTITY_KEYS",
    "METRICS",
    "NORMS",
    "RESULT_KEYS",
    "SUITES",
    "best_known_result",
    "format_eps",
    "is_retired_cascade",
    "is_worst_case",
    "result_identity",
    "result_label",
    "result_suite",
    "interval_text",
    "results_table",
    "validate_result",
]

METRICS = ("clean_accuracy", "robust_accuracy", "certified_accuracy")  # certified: L2 randomized smoothing
NORMS = ("Linf", "L2", "L1")
RESULT_KEYS = (
    "metric", "value", "correct", "n_examples", "version", "norm", "eps", "seed", "results_file", "stochastic",
    "suite", "interval",
)  # fmt: skip
# Which family of attacks a robust accuracy comes from: AutoAttack (eee_zoo.evaluation) or the adaptive suite.
SUITES = ("autoattack", "adaptive")
# The contract's identity, plus the optional inference mode (None when not recorded).
IDENTITY_KEYS = ("metric", "version", "norm", "eps", "n_examples", "seed", "stochastic")
_VALUE_TOLERANCE = 0.05 + 1e-6  # a stored percentage may be rounded to one decimal


def format_eps(eps: float | None, norm: str | None = None) -> str:
    """``8/255`` for L-inf budgets on the 1/255 grid, otherwise a plain number."""
    if eps is None:
        return "-"
    k = eps * 255
    if norm == "Linf" and eps > 0 and abs(k - round(k)) < 1e-6:
        return f"{round(k)}/255"
    return f"{eps:g}"


def result_identity(result: dict[str, Any]) -> tuple:
    """What makes two results "the same measurement": metric, version, norm, eps, n_examples, seed (, stochastic)."""
    return tuple(result.get(k) for k in IDENTITY_KEYS)


def is_worst_case(result: dict[str, Any]) -> bool:
    """A card result of the adaptive suite's worst case (eee_zoo.adaptive): it names its fresh draws."""
    return result_suite(result) == "adaptive" and result.get("fresh_draws") is not None


def is_retired_cascade(result: dict[str, Any]) -> bool:
    """A card result of the adaptive cascade that preceded the worst case (right on every one of ``eval_draws``)."""
    return result_suite(result) == "adaptive" and result.get("version") == "adaptive"


def result_suite(result: dict[str, Any]) -> str:
    """The suite of attacks behind a result (a card's result or a results file): its ``suite``, else inferred.

    Results written before the field existed are AutoAttack's unless their ``version`` is ``"adaptive"``.
    """
    suite = result.get("suite")
    if suite is not None:
        return str(suite)
    return "adaptive" if result.get("version") == "adaptive" else "autoattack"


def validate_result(
    result: dict[str, Any],
    *,
    threat_model: str | None = None,
    path: str | os.PathLike | None = None,
    where: str = "result",
) -> dict[str, Any]:
    """Check one result dict (see the contract) and return it normalised (``value``/``eps`` as floats).

    With ``threat_model``, a robust accuracy must have been measured under that norm.
    """
    if not isinstance(result, dict):
        raise CardError(path, where, f"expected a mapping, got {type(result).__name__}")
    f = Fields(result, path, where)
    metric = f.choice("metric", METRICS)
    robust = metric == "robust_accuracy"
    measured = metric != "clean_accuracy"  # robust or certified: a version, a norm and radius, a seed
    out = {
        "metric": metric,
        "value": float(f.number("value", lo=0, hi=100)),
        "correct": f.integer("correct", lo=0),
        "n_examples": f.integer("n_examples", lo=1),
        "version": f.string("version", required=measured),
        "norm": f.choice("norm", NORMS, required=measured),
        "eps": f.number("eps", lo=0, required=measured),
        "seed": f.integer("seed", lo=0, required=measured),
        "results_file": f.string("results_file"),
        "stochastic": f.boolean("stochastic", required=False),  # optional: the inference mode measured
        "suite": f.choice("suite", SUITES, required=False),  # optional: see result_suite
    }
    if out["eps"] is not None:
        out["eps"] = float(out["eps"])
    if metric == "certified_accuracy" and out["norm"] != "L2":
        raise CardError(path, f"{where}.norm", "certified accuracy (randomized smoothing) is for L2 radii (eps)")
    if robust and threat_model is not None and out["norm"] != threat_model:
        raise CardError(path, f"{where}.norm", f"robust accuracy under {out['norm']} in a {threat_model} card")
    if out["correct"] > out["n_examples"]:
        raise CardError(path, f"{where}.correct", f"{out['correct']} correct out of {out['n_examples']} examples")
    expected = 100.0 * out["correct"] / out["n_examples"]
    if abs(out["value"] - expected) > _VALUE_TOLERANCE:
        raise CardError(
            path,
            f"{where}.value",
            f"{out['value']} does not match correct/n_examples = {out['correct']}/{out['n_examples']} "
            f"({expected:.4f}%); value is a percentage",
        )
    interval = result.get("interval")  # optional: the results file's 95 % interval in percent, widened outwards
    if interval is not None:
        ok = isinstance(interval, (list, tuple)) and len(interval) == 2
        ok = ok and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in interval)
        if not ok or not 0 <= interval[0] <= out["value"] <= interval[1] <= 100:
            raise CardError(
                path, f"{where}.interval", f"expected [low, high] in percent around {out['value']}, got {interval!r}"
            )
        out["interval"] = [float(x) for x in interval]
    out.update({k: v for k, v in result.items() if k not in RESULT_KEYS})  # extra keys ride along untouched
    return out


def interval_text(result: dict[str, Any]) -> str:
    """A result's 95 % interval as ``[12.34, 15.67]``, or ``-`` where the card has none."""
    interval = result.get("interval")
    return "-" if interval is None else f"[{interval[0]:.2f}, {interval[1]:.2f}]"


def results_table(results: Sequence[dict[str, Any]]) -> str:
    """A markdown table of results (clean first, then robust by AutoAttack version); certified ones have their own."""
    results = [r for r in results if r["metric"] != "certified_accuracy"]
    if not results:
        return ""
    rows = [
        "| Metric | Attack | Threat model | Inference | Accuracy (%) | 95 % interval | Correct / n | Seed "
        "| Results file |",
        "|---|---|---|---|---:|---:|---:|---:|---|",
    ]
    for r in sorted(results, key=lambda r: (r["metric"] != "clean_accuracy", r["version"] or "", -r["n_examples"])):
        robust = r["metric"] == "robust_accuracy"
        threat = f"{r['norm']}, eps = {format_eps(r['eps'], r['norm'])}" if robust else "-"
        mode = {True: "stochastic", False: "deterministic", None: "-"}[r.get("stochastic")]
        rows.append(
            f"| {'Robust' if robust else 'Clean'} | {result_label(r) if robust else '-'} | {threat} | {mode} "
            f"| {r['value']:.2f} | {interval_text(r)} "
            f"| {r['correct']} / {r['n_examples']} | {'-' if r['seed'] is None else r['seed']} "
            f"| `{r['results_file']}` |"
        )
    return "\n".join(rows)


def result_label(result: dict[str, Any]) -> str:
    """What a robust accuracy counts, in words: ``AutoAttack rand``, ``worst case over adaptive attacks, per draw
    (500 images x 20 draws)``, ``worst case over adaptive attacks, right on all 20 draws``, ``adaptive attacks,
    lowest column: pgd-mean-eot, per draw (100 images x 50 draws)``."""
    if is_worst_case(result):  # eee_zoo.adaptive: the per-image worst case, scored on fresh draws
        draws, version = result["fresh_draws"], result.get("version") or ""
        preset = version.split("/", 1)[0]
        preset = f", preset {preset}" if preset and preset != "zoo" else ""
        # the headline column (eee_zoo.adaptive.result.headline_column): a single attack's where it counts less
        column = result.get("column")
        what = (
            f"adaptive attacks{preset}, lowest column: {column}"
            if column
            else f"worst case over adaptive attacks{preset}"
        )
        if version.endswith("/per-draw"):
            images = result.get("images") or result["n_examples"] // draws
            return f"{what}, per draw ({images} images x {draws} draws)"
        return f"{what}, right on all {draws} draws"
    if result_suite(result) == "adaptive":  # the retired cascade: right on every judging draw counts as robust
        draws = result.get("eval_draws")
        return "adaptive attacks" + (f", right on all {draws} draws" if draws else "")
    return f"AutoAttack {result['version']}"


def best_known_result(results: Sequence[dict[str, Any]], stochastic_inference: bool) -> dict[str, Any] | None:
    """The lowest robust accuracy measured on the deployed model: RobustBench's ``external``, the best-known figure.
    Give it the results of one threat budget (norm and eps).

    Candidates: AutoAttack results in the deployed inference mode (or with no mode recorded) and the adaptive
    suite's per-draw worst cases (their headline: one query of the deployed model). Every-draw figures
    count something else (right on all F draws) and are left out, and so is a worst case with a larger run of the
    same configuration (its first images: the lower of the two would be the noisier). Ties go to the larger n.
    None without candidates.
    """
    candidates = [
        r
        for r in results
        if r["metric"] == "robust_accuracy"
        and (
            (is_worst_case(r) and str(r.get("version")).endswith("/per-draw"))
            or (result_suite(r) == "autoattack" and r.get("stochastic") in (None, stochastic_inference))
        )
    ]

    def images(r: dict[str, Any]) -> int:
        return r.get("images", r["n_examples"])

    def superseded(r: dict[str, Any]) -> bool:  # a larger run of the same configuration holds r's images and seeds
        # ``configuration``: benchmarks.results.worst_case_configuration, the key the leaderboard compares too
        same = ("version", "seed", "fresh_draws", "selection_draws", "final_draws", "tie_draws", "norm", "eps")
        same += ("configuration",)
        return is_worst_case(r) and any(
            is_worst_case(o) and images(o) > images(r) and all(o.get(k) == r.get(k) for k in same) for o in candidates
        )

    candidates = [r for r in candidates if not superseded(r)]
    return min(candidates, key=lambda r: (r["value"], -images(r)), default=None)
