"""The leaderboard's certified table: randomized smoothing's lower bounds, one row per certification results file."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..results import percent_floor
from .formatting import interval_text

__all__ = ["CERTIFIED_RADII", "render_certified"]

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
    return f"{percent_floor(k, n):.2f} {interval_text(clopper_pearson_interval(k, n))}"


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
