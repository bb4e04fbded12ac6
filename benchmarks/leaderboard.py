"""The leaderboard, built from results files only.

    python -m benchmarks.leaderboard [--results-dir DIR] [--model-info-dir DIR] [--markdown FILE] [--html-dir DIR]

For each checkpoint the headline result is chosen (a full AutoAttack evaluation, ``suite`` ``autoattack``, on
loaded test images, the version that matches its inference mode first — ``rand`` for a stochastic model,
``standard`` otherwise — then the largest n, then the smallest seed), and written as

* RobustBench ``model_info`` JSON, ``benchmarks/model_info/<dataset>/<threat_model>/<Name>.json``: the fields
  RobustBench's own leaderboard code reads (``clean_acc``, ``autoattack_acc``, ``external``, ``additional_data``,
  ``number_forward_passes``, ``unreliable``, ``footnote``, ``link``, ``name``, ``authors``, ``venue``,
  ``architecture``, ``eps``, ...; accuracies in percent, as numbers) plus an ``eee_zoo`` block (n, intervals,
  checkpoint hash, results file). ``external`` is the best-known (lowest) robust accuracy of the checkpoint at that
  eps: the headline AutoAttack figure or an adaptive suite's per-draw worst case, whichever is lower; the footnote
  names the evaluation it comes from;
* ``benchmarks/LEADERBOARD.md``: every number with its n and 95 % interval, the AutoAttack checks that fired,
  and the results file it comes from; then the adaptive suite's table (:func:`render_adaptive`), one row per
  worst-case results file, with its checks against AutoAttack ``rand`` and against each single attack;
* HTML through RobustBench's own template (``robustbench.leaderboard.template.generate_leaderboard``) when
  robustbench imports and ships the template (the 1.1.1 wheel does not; then no HTML is written).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
from collections import defaultdict
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

from eee_zoo._io import atomic_write_json, atomic_write_text
from eee_zoo.adaptive import AUTOATTACK_PROPOSALS
from eee_zoo.adaptive.evaluate import autoattack_names
from eee_zoo.adaptive.result import counted_as_autoattack, excess_over, fractional_count_interval, headline_column
from eee_zoo.cards import result_suite

from .results import (
    RESULTS_DIR,
    eps_tag,
    interval_percent,
    is_worst_case,
    iter_adaptive_results,
    iter_results,
    percent_floor,
)

__all__ = [
    "HTML_DIR", "LEADERBOARD_MD", "MODEL_INFO_DIR", "PAPER", "adaptive_checks", "best_known", "build", "headline",
    "main", "model_info", "render_adaptive", "render_certified", "render_html", "render_markdown",
]  # fmt: skip

BENCH_DIR = Path(__file__).resolve().parent
MODEL_INFO_DIR = BENCH_DIR / "model_info"
LEADERBOARD_MD = BENCH_DIR / "LEADERBOARD.md"
HTML_DIR = BENCH_DIR / "leaderboard"
PAPER = {
    "link": "https://arxiv.org/abs/2408.05446",
    "name": "Ensemble everything everywhere: Multi-scale aggregation for adversarial robustness",
    "authors": "Stanislav Fort, Balaji Lakshminarayanan",
    "venue": "arXiv, Aug 2024",
}
_LOAD_SOURCE = "eee_zoo.data.load_dataset"
EXCESS_ALPHA = 0.05  # a worst case above a single attack with p below this is a defect, not fresh-draw noise
_CAVEAT = (
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
        and (r.get("data") or {}).get("source") == _LOAD_SOURCE
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


def _same_checkpoint(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Same checkpoint (sha256), dataset, threat model and eps: figures that bound the same robustness."""
    keys = ("checkpoint_sha256", "dataset", "threat_model")
    return all(a[k] == b[k] for k in keys) and abs(float(a["eps"]) - float(b["eps"])) < 1e-12


def _per_draw(column: dict[str, Any], n: int, draws: int) -> Fraction:
    """A worst-case column's robust accuracy per draw, exactly: its fresh hits over the image-draws."""
    return Fraction(sum(column["fresh_hits"]), n * draws)


def _fraction_floor(value: Fraction) -> float:
    """Percent floored to 0.01, like :func:`percent_floor`."""
    return percent_floor(value.numerator, value.denominator)


def best_known(
    result: dict[str, Any], adaptive: Sequence[tuple[str, dict[str, Any]]] = (), *, results_file: str | None = None
) -> dict[str, Any]:
    """The best-known (lowest) robust accuracy of ``result``'s checkpoint at its eps, with where it comes from.

    Candidates: ``result`` itself (AutoAttack) and every worst-case adaptive result in ``adaptive`` (``(results
    file, dict)``; others are ignored) for the same checkpoint, dataset, threat model and eps, by its per-draw
    figure (its headline: one query of the deployed model; AutoAttack's own count, right on all its checks, is
    stricter, so the lower of the two never flatters a model); an adaptive run with a larger run of the same
    configuration (whose first images it is) is not a candidate. Values in percent, floored; intervals widened
    outwards. A tie keeps AutoAttack's figure.
    """
    n = result["n_examples"]
    best: dict[str, Any] = {
        "value": percent_floor(result["robust_correct"], n),
        "suite": "autoattack",
        "version": result["version"],
        "n_examples": n,
        "seed": result["seed"],
        "interval": interval_percent(result["robust_interval"]),
        "results_file": results_file,
        "adaptive_results": 0,  # worst-case adaptive evaluations compared
    }
    candidates = [(ref, r) for ref, r in adaptive if is_worst_case(r) and _same_checkpoint(r, result)]
    for ref, r in candidates:
        best["adaptive_results"] += 1
        if _superseded(r, candidates):
            continue
        column = headline_column(r)
        value = _fraction_floor(_per_draw(column, r["n_examples"], r["fresh_draws"]))
        if value < best["value"]:
            best = {
                "adaptive_results": best["adaptive_results"],
                "value": value,
                "suite": "adaptive",
                "version": f"{r['preset']}/per-draw",
                "n_examples": r["n_examples"],
                "fresh_draws": r["fresh_draws"],
                "seed": r["seed"],
                "interval": interval_percent(column["per_draw_interval"]),
                "results_file": ref,
                **({} if column is r["robust"] else {"column": column["name"]}),
            }
    return best


def _superseded(r: dict[str, Any], candidates: Sequence[tuple[str, dict[str, Any]]]) -> bool:
    """Whether a larger run of ``r``'s configuration exists: its first images and seeds are ``r``'s (batches are
    seeded on their own), so ``r`` is a subset of it; taking the lower of the two would pick the noisier figure."""
    same = ("preset", "seed", "batch_size", "selection_draws", "final_draws", "tie_draws", "fresh_draws")
    same += ("autoattack", "cascade")
    return any(
        o["n_examples"] > r["n_examples"] and all(o.get(k) == r.get(k) for k in same) and o["attacks"] == r["attacks"]
        for _, o in candidates
    )


def _best_known_text(best: dict[str, Any]) -> str:
    lo, hi = best["interval"]
    if best["suite"] == "autoattack":
        compared = best["adaptive_results"]
        others = (
            f"none of the {compared} adaptive worst-case evaluations of this checkpoint found less"
            if compared
            else "no adaptive worst-case evaluation of this checkpoint at this eps yet"
        )
        head = f"Best-known robust accuracy (external): {best['value']:.2f}%"
        return f"{head}, this AutoAttack {best['version']} evaluation; {others}."
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
) -> dict:
    """RobustBench ``model_info`` JSON for one results-file dict; ``adaptive``: worst-case adaptive results
    ``(results file, dict)`` that may give a lower ``external`` (see :func:`best_known`)."""
    n = result["n_examples"]
    checks = sorted({w["check"] for w in result.get("warnings", [])} - {"n_classes", "other"})
    unreliable = bool(checks) or (result["stochastic"] and result["version"] != "rand")
    clean_interval = interval_percent(result["clean_interval"])
    robust_interval = interval_percent(result["robust_interval"])
    version = result["version"] + (" (EOT 20)" if result["version"] == "rand" else "")
    best = best_known(result, adaptive, results_file=results_file)
    footnote = (
        f"eee-zoo checkpoint {result['model_name']} (sha256 {result['checkpoint_sha256'][:12]}), "
        f"{'stochastic' if result['stochastic'] else 'deterministic'} inference; AutoAttack {version}, seed "
        f"{result['seed']}, first {n} test images; 95% {result.get('interval_method', 'wilson')} intervals, widened "
        f"outwards: clean {clean_interval[0]:.2f}-{clean_interval[1]:.2f}%, robust "
        f"{robust_interval[0]:.2f}-{robust_interval[1]:.2f}%."
    )
    if checks:
        footnote += f" AutoAttack checks fired: {', '.join(checks)}."
    footnote += " " + _best_known_text(best) + " " + _CAVEAT
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


def render_markdown(boards: dict[tuple[str, str], list[dict[str, Any]]]) -> str:
    """The Markdown leaderboard from ``{(dataset, threat_model): [model_info, ...]}``."""
    lines = [
        "# eee-zoo leaderboard",
        "",
        "Generated by `python -m benchmarks.leaderboard` from the results files under `benchmarks/results/` "
        "(do not edit by hand). Accuracies in percent with their 95 % interval and n, the first n test images "
        "in canonical order. Every measured configuration of a checkpoint has its row; "
        "`benchmarks/model_info/` holds one headline entry per checkpoint, RobustBench-style. " + _CAVEAT,
        "",
    ]
    if not boards:
        lines.append("No results yet: run `python -m benchmarks.run --all`.")
    for (dataset, threat), infos in sorted(boards.items()):
        lines += [
            f"## {dataset} / {threat}",
            "",
            "| # | Model | Inference | AutoAttack | eps | Clean accuracy | Robust accuracy | n | Checks "
            "| Results file |",
            "|---:|---|---|---|---|---:|---:|---:|---|---|",
        ]

        def order(i: dict[str, Any]) -> tuple:
            return (i["eee_zoo"]["checkpoint"], i["eee_zoo"]["version"], -i["eee_zoo"]["n_examples"])

        for rank, info in enumerate(sorted(infos, key=order), start=1):
            z = info["eee_zoo"]
            checks = "unreliable" if info["unreliable"] else "ok"
            lines.append(
                f"| {rank} | {z['checkpoint']} (`{z['sha256'][:12]}`) "
                f"| {'stochastic' if z['stochastic_inference'] else 'deterministic'} "
                f"| {z['version']} (seed {z['seed']}) "
                f"| {info['eps']} "
                f"| {info['clean_acc']:.2f} [{z['clean_interval'][0]:.2f}, {z['clean_interval'][1]:.2f}] "
                f"| {info['autoattack_acc']:.2f} [{z['robust_interval'][0]:.2f}, {z['robust_interval'][1]:.2f}] "
                f"| {z['n_examples']} | {checks} | `{z['results_file']}` |"
            )
        lines.append("")
    return "\n".join(lines)


_ADAPTIVE_INTRO = (
    "`python -m benchmarks.adaptive` (eee_zoo.adaptive): for every image, every attack of the preset proposes "
    "adversarial examples, and so do AutoAttack's own runs named in the Preset column and the clean image itself. "
    "The deployed model, with its own random stack and aggregator, keeps the proposal it gets right least often "
    "on *selection* draws (`S + T`: each attack's finalist judged again on T further draws) and is then scored on "
    "other, *fresh* draws (F), so picking the minimum does not flatter the figure. Columns: **clean, per draw** "
    "is the clean images' accuracy on the fresh draws; **AutoAttack** is the robust accuracy of AutoAttack `rand` "
    "on the same model, images (n), seed and eps (`standard` for a model whose stack draws nothing, judged on one "
    "draw: rand would repeat standard's APGD on copies of one gradient; `-` where no such results file exists); "
    "**worst case, per draw** (the headline) is the robust accuracy per draw, the mean over images and fresh "
    "draws of the kept proposal being right: the chance that one query of the deployed model is answered right; "
    "**as AutoAttack counts** is the same worst case counted the way that AutoAttack run counts, right on all of "
    "its single-draw checks (the clean check and one after each attack: 3 draws for `rand`), estimated without "
    "bias from the fresh draws; it is the figure to hold against AutoAttack's own, which is lower than the "
    "per-draw figure wherever images are wrong on some draws only; **every draw** counts the images right on all F "
    "fresh draws (it falls as F grows, so F is named); each attack's column is its own per-image worst case, per "
    "draw (`-`: not in that row's preset; AutoAttack's columns are its examples re-scored per draw). 95 % "
    "intervals in brackets (Clopper-Pearson, at the fractional count for per-draw figures; lower end floored, upper "
    "end ceiled to 0.01 %); accuracies in percent, floored to 0.01. **Headline, per draw** is the lowest of the "
    "worst case and each attack's column, named where it is an attack's: each is scored on fresh draws its choice "
    "never saw, and where proposals that break an image on nearly every draw tie, the fresh draws can put the worst "
    "case a few image-draws above one attack's own (the minimum of such near-equal columns leans low: against the "
    "model, the safe side); *as AutoAttack counts* and *every draw* count the headline's column. **Checks** "
    "compares like with like: `ok` when the headline as AutoAttack counts is at most AutoAttack's own figure and "
    "the worst case per draw is not significantly above any single attack's (paired Wilcoxon signed-rank test over "
    "images, one-sided, p < 0.05); a worst case above an attack within that noise is named with its excess in "
    "image-draws and p. A failed check (`above ...`) is a defect of the evaluation, kept visible on purpose."
)


def _counted_text(r: dict[str, Any], reference: dict[str, Any]) -> str:
    """The cell of :func:`as_autoattack_counts`: its figure, interval and number of draws."""
    counted, k = as_autoattack_counts(r, reference)
    n = r["n_examples"]
    interval = fractional_count_interval(float(counted * n), n)
    return f"{_fraction_floor(counted):.2f} {_interval_text(interval)} ({k} draw{'s' if k > 1 else ''})"


def _interval_text(interval: Sequence[float]) -> str:
    lo, hi = interval_percent(interval)
    return f"[{lo:.2f}, {hi:.2f}]"


def _matching_autoattack(r: dict[str, Any], autoattack: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """AutoAttack on the deployed model, on the same checkpoint, eps, n and seed as the adaptive result ``r``
    (unchunked first): ``rand``, or ``standard`` for a model whose stack draws nothing (``r["stochastic"]`` False),
    where rand would only repeat standard's APGD on copies of one gradient."""
    stochastic = r.get("stochastic", True)
    matches = [
        a
        for a in autoattack
        if (a["version"] == "rand" if stochastic else (a["version"] == "standard" and a.get("stochastic") is False))
        and headline([a]) is not None
        and _same_checkpoint(a, r)
        and (a["n_examples"], a["seed"]) == (r["n_examples"], r["seed"])
    ]
    return min(matches, key=lambda a: a.get("chunk_size") is not None, default=None)


def as_autoattack_counts(r: dict[str, Any], reference: dict[str, Any]) -> tuple[Fraction, int]:
    """The worst case of the adaptive result ``r`` counted as the AutoAttack run ``reference`` counts, exactly, and
    the number of draws that takes (:func:`eee_zoo.adaptive.result.counted_as_autoattack`)."""
    return counted_as_autoattack(
        headline_column(r)["fresh_hits"], r["fresh_draws"], reference["attacks"], r.get("stochastic", True)
    )


def adaptive_checks(r: dict[str, Any], reference: dict[str, Any] | None = None) -> str:
    """``ok`` when the headline counted as ``reference`` counts (:func:`as_autoattack_counts`) is at most its figure
    (if given: AutoAttack on the deployed model, :func:`_matching_autoattack`) and the worst case per draw is not
    significantly above any single attack's (:func:`~eee_zoo.adaptive.result.excess_over`, p < 0.05); else what
    failed, e.g. ``above rand``. A worst case above an attack within noise is named: ``ok; worst case +2
    image-draws over pgd-mean-eot (p = 0.39)``."""
    failed, noise = [], []
    if reference is not None:
        counted, _ = as_autoattack_counts(r, reference)
        if counted > Fraction(reference["robust_correct"], reference["n_examples"]):
            failed.append(reference["version"])
    for c in r["per_attack"]:
        excess, p = excess_over(r["robust"]["fresh_hits"], c["fresh_hits"])
        if excess > 0 and p < EXCESS_ALPHA:
            failed.append(c["name"])
        elif excess > 0:
            noise.append(f"; worst case +{excess} image-draw{'s' * (excess != 1)} over {c['name']} (p = {p:.2g})")
    return ("above " + ", ".join(failed) if failed else "ok") + "".join(noise)


def render_adaptive(
    entries: Sequence[tuple[str, dict[str, Any]]],
    autoattack: Sequence[dict[str, Any]] = (),
    *,
    skipped: Sequence[str] = (),
) -> list[str]:
    """Markdown table of the worst-case adaptive results (``benchmarks.adaptive``), one row per results file.

    ``entries``: ``(results file, dict)`` of format 2 (others are left out); ``autoattack``: AutoAttack results dicts,
    searched for the ``rand`` figure of each row; ``skipped``: results files of the retired cascade, named below the
    table.
    """
    entries = sorted(
        ((ref, r) for ref, r in entries if is_worst_case(r)),
        key=lambda e: (e[1]["dataset"], e[1]["threat_model"], e[1]["model_name"], e[0]),
    )
    if not entries and not skipped:
        return []
    lines = ["## Adaptive attacks: the per-image worst case", ""]
    if not entries:
        lines.append("No worst-case results yet.")
    else:
        attacks = list(dict.fromkeys(c["name"] for _, r in entries for c in r["per_attack"]))
        first = autoattack_names(AUTOATTACK_PROPOSALS)  # AutoAttack's columns first, in one order for every row
        attacks.sort(key=lambda a: first.index(a) if a in first else len(first))
        lines += [
            _ADAPTIVE_INTRO,
            "",
            "| Model | Dataset / threat | eps | Preset | n | Seed | Selection / fresh draws | Clean, per draw "
            "| AutoAttack | As AutoAttack counts | **Headline, per draw** | Worst case, per draw | Every draw | "
            + "".join(f"{a} | " for a in attacks)
            + "Checks | Results file |",
            "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|" + "---:|" * len(attacks) + "---|---|",
        ]
        for ref, r in entries:
            n, draws = r["n_examples"], r["fresh_draws"]
            reference = _matching_autoattack(r, autoattack)
            robust, head = r["robust"], headline_column(r)
            columns = {c["name"]: c for c in r["per_attack"]}
            cells = [
                f"{r['model_name']} (`{r['checkpoint_sha256'][:12]}`)",
                f"{r['dataset']} / {r['threat_model']}",
                eps_tag(r["eps"], r["threat_model"]).replace("-", "/"),
                r["preset"]
                + (f" + AutoAttack {', '.join(r['autoattack'])}" if r.get("autoattack") else "")
                + (" (cascade)" if r.get("cascade") else ""),
                str(n),
                str(r["seed"]),
                f"{r['selection_draws']}"
                + (f" + {r['final_draws']}" if r.get("final_draws") else "")
                + (f" (+{r['tie_draws']} ties)" if r.get("tie_draws") else "")
                + f" / {draws}",
                f"{_fraction_floor(_per_draw(r['clean'], n, draws)):.2f}",
                "-"
                if reference is None
                else f"{percent_floor(reference['robust_correct'], reference['n_examples']):.2f} "
                f"({reference['version']})",
                "-" if reference is None else _counted_text(r, reference),
                f"**{_fraction_floor(_per_draw(head, n, draws)):.2f}** {_interval_text(head['per_draw_interval'])}"
                + ("" if head is robust else f" ({head['name']})"),
                f"{_fraction_floor(_per_draw(robust, n, draws)):.2f} {_interval_text(robust['per_draw_interval'])}",
                f"{percent_floor(head['every_draw_correct'], n):.2f} {_interval_text(head['every_draw_interval'])}"
                f" (all {draws})",
                *(f"{_fraction_floor(_per_draw(columns[a], n, draws)):.2f}" if a in columns else "-" for a in attacks),
                adaptive_checks(r, reference),
                f"`{ref}`",
            ]
            lines.append("| " + " | ".join(cells) + " |")
    if skipped:
        lines += [
            "",
            "Not shown: results of the retired adaptive cascade (results format 1, not a worst case; rerun "
            "`python -m benchmarks.adaptive`): " + ", ".join(f"`{ref}`" for ref in skipped) + ".",
        ]
    lines.append("")
    return lines


CERTIFIED_RADII = (0.25, 0.5, 0.75, 1.0)  # L2 radii of the certified table
_CERTIFIED_INTRO = (
    "`python -m benchmarks.certify` (eee_zoo.certify): randomized smoothing certifies the *smoothed* classifier (the "
    "class the model, with its own random stack, returns most often under Gaussian noise of sigma), a lower bound "
    "on its accuracy against every attack within the L2 radius, unlike the attack figures above (upper bounds, for "
    "the deployed model). `cohen`: CERTIFY (Cohen et al. 2019) at one sigma; `multiscale`: the cascade over several "
    "sigma, highest first (Jeong & Shin 2023), alpha split over the scales. n0 selection and N estimation draws per "
    "scale; alpha is each image's failure probability. **Smoothed accuracy** counts abstentions wrong; each radius "
    "column is the share of images right and certified at least that far, with the L-inf radius r / sqrt(3*32*32) "
    "it implies. **Largest radius**: what N and alpha can certify at all (all N draws right). 95 % Clopper-Pearson "
    "intervals over images in brackets (lower end floored, upper end ceiled to 0.01 %); percent floored to 0.01."
)


def _certified_cell(correct: Sequence[bool], radius: Sequence[float], r: float) -> str:
    """Certified accuracy at L2 radius ``r`` from a results file's per-image lists, with its interval."""
    from eee_zoo.evaluation.intervals import clopper_pearson_interval

    n = len(correct)
    k = sum(1 for ok, rad in zip(correct, radius) if ok and rad >= r)
    return f"{percent_floor(k, n):.2f} {_interval_text(clopper_pearson_interval(k, n))}"


def render_certified(entries: Sequence[tuple[str, dict[str, Any]]]) -> list[str]:
    """Markdown table of certification results (``benchmarks.certify``), one row per results file."""
    if not entries:
        return []
    entries = sorted(entries, key=lambda e: (e[1]["dataset"], e[1]["model_name"], e[0]))
    dim = 3 * 32 * 32
    heads = "".join(f"L2 {r:g} (L-inf {255 * r / dim**0.5:.2f}/255) | " for r in CERTIFIED_RADII)
    lines = [
        "## Certified robustness: randomized smoothing (L2)",
        "",
        _CERTIFIED_INTRO,
        "",
        "| Model | Dataset | Inference | Smoothing | n0 / N | alpha | n | Seed | Smoothed accuracy | " + heads
        + "Abstained | Largest radius | Compute | Results file |",
        "|---|---|---|---|---:|---:|---:|---:|---:|" + "---:|" * len(CERTIFIED_RADII) + "---:|---:|---:|---|",
    ]  # fmt: skip
    for ref, r in entries:
        correct, radius = r["correct"], r["radius"]
        sigmas = ", ".join(f"{s:g}" for s in r["sigmas"])
        cells = [
            f"{r['model_name']} (`{r['checkpoint_sha256'][:12]}`)",
            r["dataset"],
            {True: "stochastic", False: "deterministic", None: "-"}[r["stochastic"]],
            f"{r['method']}, sigma {sigmas}",
            f"{r['n0']} / {r['n']}",
            f"{r['alpha']:g}",
            str(r["n_examples"]),
            str(r["seed"]),
            _certified_cell(correct, radius, 0.0),
            *(_certified_cell(correct, radius, rad) for rad in CERTIFIED_RADII),
            f"{sum(p < 0 for p in r['predictions'])}",
            f"{r['largest_radius']:.3f}",
            f"{r.get('compute_s') or r['wall_time_s']:.0f} s",  # summed over images (older files: the wall time)
            f"`{ref}`",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    return lines


def render_html(dataset: str, threat_model: str, models_folder: str | os.PathLike) -> str | None:
    """HTML through RobustBench's own template, or None when robustbench or its template is not available."""
    try:
        from eee_zoo._robustbench import import_robustbench

        import_robustbench()
        from jinja2.exceptions import TemplateNotFound
        from robustbench.leaderboard.template import generate_leaderboard
    except ImportError:
        return None
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # it prints the table as well as returning it
            return generate_leaderboard(dataset, threat_model, str(models_folder))
    except TemplateNotFound:  # the robustbench 1.1.1 wheel does not ship leaderboard.html.j2
        return None


def build(
    results_dir: str | os.PathLike | None = None,
    *,
    model_info_dir: str | os.PathLike | None = None,
    markdown_path: str | os.PathLike | None = None,
    html_dir: str | os.PathLike | None = None,
    html: bool = True,
) -> dict[str, Any]:
    """Write model_info JSON, the Markdown leaderboard and (if possible) HTML; returns what was written."""
    results_dir = Path(results_dir) if results_dir is not None else RESULTS_DIR
    model_info_dir = Path(model_info_dir) if model_info_dir is not None else MODEL_INFO_DIR
    markdown_path = Path(markdown_path) if markdown_path is not None else LEADERBOARD_MD
    html_dir = Path(html_dir) if html_dir is not None else HTML_DIR
    per_model: dict[tuple[str, str, str], list[tuple[Path, dict[str, Any]]]] = defaultdict(list)
    for path, data in iter_results(results_dir):
        per_model[(data["dataset"], data["threat_model"], data["model_name"])].append((path, data))
    boards: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    written: dict[str, Any] = {"model_info": [], "markdown": None, "html": []}
    base = results_dir.resolve().parents[1] if results_dir.resolve().parent.name == "benchmarks" else None

    def reference(path: Path) -> str:
        return path.resolve().relative_to(base).as_posix() if base is not None else str(path)

    adaptive = [(reference(path), data) for path, data in iter_adaptive_results(results_dir)]
    shown = {ref for ref, _ in adaptive}  # the rest are the retired cascade's files (iter_adaptive_results logs them)
    skipped = [ref for ref in map(reference, sorted(results_dir.glob("*/*/*/adaptive/*.json"))) if ref not in shown]
    for (dataset, threat, name), entries in sorted(per_model.items()):
        best = headline([d for _, d in entries])
        if best is None:
            continue
        for path, data in entries:
            if data is not best and headline([data]) is None:
                continue  # reduced settings or caller-provided images: never on a leaderboard
            info = model_info(data, results_file=reference(path), adaptive=adaptive)
            if data is best:  # RobustBench's model_info holds one entry per checkpoint: the headline
                target = model_info_dir / dataset / threat / f"{name}.json"
                atomic_write_json(target, info)
                written["model_info"].append(target)
            # The Markdown board shows every measured configuration: the gap between versions is the point.
            boards[(dataset, threat)].append(info)
    for stale in sorted(model_info_dir.glob("*/*/*.json")):  # generated files whose results are gone
        if stale not in written["model_info"]:
            stale.unlink()
    autoattack = [data for entries in per_model.values() for _, data in entries]
    from .certify import iter_certified

    certified = [(reference(path), data) for path, data in iter_certified(results_dir)]
    tables = [
        render_markdown(boards),
        *render_adaptive(adaptive, autoattack, skipped=skipped),
        *render_certified(certified),
    ]
    atomic_write_text(markdown_path, "\n".join(tables) + "\n")
    written["markdown"] = markdown_path
    if html:
        for dataset, threat in sorted(boards):
            page = render_html(dataset, threat, model_info_dir)
            if page is not None:
                target = html_dir / f"{dataset}_{threat}.html"
                atomic_write_text(target, page)
                written["html"].append(target)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.leaderboard", description=__doc__.split("\n\n")[0])
    parser.add_argument("--results-dir", default=None, help=f"default: {RESULTS_DIR}")
    parser.add_argument("--model-info-dir", default=None, help=f"default: {MODEL_INFO_DIR}")
    parser.add_argument("--markdown", default=None, help=f"default: {LEADERBOARD_MD}")
    parser.add_argument("--html-dir", default=None, help=f"default: {HTML_DIR}")
    parser.add_argument("--no-html", action="store_true", help="skip the RobustBench HTML table")
    args = parser.parse_args(argv)
    written = build(
        args.results_dir,
        model_info_dir=args.model_info_dir,
        markdown_path=args.markdown,
        html_dir=args.html_dir,
        html=not args.no_html,
    )
    print(f"{len(written['model_info'])} model_info files, {written['markdown']}", file=sys.stderr)
    for path in written["html"]:
        print(path, file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
