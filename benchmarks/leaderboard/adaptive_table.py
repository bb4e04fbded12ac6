"""The leaderboard's adaptive table: one row per worst-case results file, its headline and per-attack columns, and
its checks against AutoAttack on the same images and against each single attack."""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from typing import Any

from eee_zoo.adaptive import AUTOATTACK_PROPOSALS
from eee_zoo.adaptive.evaluate import autoattack_names
from eee_zoo.adaptive.result import counted_as_autoattack, excess_over, fractional_count_interval, headline_column

from ..results import eps_tag, is_worst_case, percent_floor
from .formatting import fraction_floor, interval_text
from .model_info import headline, per_draw, same_checkpoint

__all__ = [
    "EXCESS_ALPHA",
    "adaptive_checks",
    "as_autoattack_counts",
    "first_images",
    "matching_autoattack",
    "render_adaptive",
]

EXCESS_ALPHA = 0.05  # a worst case above a single attack with p below this is a defect, not fresh-draw noise


_ADAPTIVE_INTRO = (
    "`python -m benchmarks.adaptive` (eee_zoo.adaptive): for every image, every attack of the preset proposes "
    "adversarial examples, and so do AutoAttack's own runs named in the Preset column and the clean image itself. "
    "The deployed model, with its own random stack and aggregator, keeps the proposal it gets right least often "
    "on *selection* draws (`S + T`: each attack's finalist judged again on T further draws) and is then scored on "
    "other, *fresh* draws (F), so picking the minimum does not flatter the figure. Columns: **clean, per draw** "
    "is the clean images' accuracy on the fresh draws; **AutoAttack** is the robust accuracy of AutoAttack `rand` "
    "on the same model, images (n; where AutoAttack's run is larger, its first n images, from its per-image "
    "outcomes, named `first n of N`), seed and eps (`standard` for a model whose stack draws nothing, judged on one "
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
    return f"{fraction_floor(counted):.2f} {interval_text(interval)} ({k} draw{'s' if k > 1 else ''})"


def matching_autoattack(r: dict[str, Any], autoattack: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """AutoAttack on the deployed model, on the same checkpoint, eps, seed and images as the adaptive result ``r``:
    ``rand``, or ``standard`` for a model whose stack draws nothing (``r["stochastic"]`` False), where rand would
    only repeat standard's APGD on copies of one gradient. A run of ``r``'s n (unchunked first); else the smallest
    larger run of that seed, restricted to its first n images (:func:`first_images`: the same images, from its
    per-image outcomes), so that a worst case on fewer images than AutoAttack's run is still held against it."""
    stochastic = r.get("stochastic", True)
    same = [
        a
        for a in autoattack
        if (a["version"] == "rand" if stochastic else (a["version"] == "standard" and a.get("stochastic") is False))
        and headline([a]) is not None
        and same_checkpoint(a, r)
        and a["seed"] == r["seed"]
    ]
    n = r["n_examples"]
    exact = [a for a in same if a["n_examples"] == n]
    if exact:
        return min(exact, key=lambda a: a.get("chunk_size") is not None)
    larger = [a for a in same if a["n_examples"] > n and len(a.get("outcomes") or "") == a["n_examples"]]
    if not larger:
        return None
    return first_images(min(larger, key=lambda a: (a["n_examples"], a.get("chunk_size") is not None)), n)


def first_images(result: dict[str, Any], n: int) -> dict[str, Any]:
    """An AutoAttack results dict restricted to its first ``n`` images, from its per-image ``outcomes`` (``-``: wrong
    clean, a digit: broken by that attack, ``R``: robust); ``first_of`` keeps the run's own n. The run's clean and
    robust intervals belong to all its images, so they are left out; ``attacks`` stays the run's own record (which
    attacks ran: what :func:`as_autoattack_counts` reads), its per-attack figures those of all its images."""
    outcomes = result["outcomes"][:n]
    counts = {"clean_correct": n - outcomes.count("-"), "robust_correct": outcomes.count("R")}
    dropped = ("clean_interval", "robust_interval")
    return {
        **{k: v for k, v in result.items() if k not in dropped},
        **counts,
        "n_examples": n,
        "outcomes": outcomes,
        "clean_accuracy": counts["clean_correct"] / n,
        "robust_accuracy": counts["robust_correct"] / n,
        "first_of": result["n_examples"],
    }


def as_autoattack_counts(r: dict[str, Any], reference: dict[str, Any]) -> tuple[Fraction, int]:
    """The worst case of the adaptive result ``r`` counted as the AutoAttack run ``reference`` counts, exactly, and
    the number of draws that takes (:func:`eee_zoo.adaptive.result.counted_as_autoattack`)."""
    return counted_as_autoattack(
        headline_column(r)["fresh_hits"], r["fresh_draws"], reference["attacks"], r.get("stochastic", True)
    )


def adaptive_checks(r: dict[str, Any], reference: dict[str, Any] | None = None) -> str:
    """``ok`` when the headline counted as ``reference`` counts (:func:`as_autoattack_counts`) is at most its figure
    (if given: AutoAttack on the deployed model, :func:`matching_autoattack`) and the worst case per draw is not
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
            reference = matching_autoattack(r, autoattack)
            robust, head = r["robust"], headline_column(r)
            columns = {c["name"]: c for c in r["per_attack"]}
            cells = [
                f"{r['model_name']} (`{r['checkpoint_sha256'][:12]}`)",
                f"{r['dataset']} / {r['threat_model']}",
                eps_tag(r["eps"], r["threat_model"]).replace("-", "/"),
                r["preset"]
                + (f" + AutoAttack {', '.join(r['autoattack'])}" if r.get("autoattack") else "")
                + _runs_note(r)
                + (" (cascade)" if r.get("cascade") else ""),
                str(n),
                str(r["seed"]),
                f"{r['selection_draws']}"
                + (f" + {r['final_draws']}" if r.get("final_draws") else "")
                + (f" (+{r['tie_draws']} ties)" if r.get("tie_draws") else "")
                + f" / {draws}",
                f"{fraction_floor(per_draw(r['clean'], n, draws)):.2f}",
                "-"
                if reference is None
                else f"{percent_floor(reference['robust_correct'], reference['n_examples']):.2f} "
                f"({reference['version']}"
                + (f", first {n} of {reference['first_of']}" if reference.get("first_of") else "")
                + ")",
                "-" if reference is None else _counted_text(r, reference),
                f"**{fraction_floor(per_draw(head, n, draws)):.2f}** {interval_text(head['per_draw_interval'])}"
                + ("" if head is robust else f" ({head['name']})"),
                f"{fraction_floor(per_draw(robust, n, draws)):.2f} {interval_text(robust['per_draw_interval'])}",
                f"{percent_floor(head['every_draw_correct'], n):.2f} {interval_text(head['every_draw_interval'])}"
                f" (all {draws})",
                *(f"{fraction_floor(per_draw(columns[a], n, draws)):.2f}" if a in columns else "-" for a in attacks),
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


def _runs_note(r: dict[str, Any]) -> str:
    """`` (its runs' examples[, runs in chunks of N])`` for a worst case that took AutoAttack's runs' examples."""
    if r.get("autoattack_source") != "run":
        return ""
    chunks = f", runs in chunks of {r['autoattack_chunk_size']}" if r.get("autoattack_chunk_size") else ""
    return f" (its runs' examples{chunks})"
