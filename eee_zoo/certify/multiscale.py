"""Multi-scale (cascaded) randomized smoothing, after Jeong & Shin 2023 (*Multi-scale Diffusion Denoised Smoothing*,
NeurIPS 2023, arXiv:2310.16779; its code: github.com/jh-jeong/smoothing-multiscale, ``certify.py``).

Scales ``sigma_1 > sigma_2 > ... > sigma_K`` are tried from the highest down. At each scale CERTIFY's selection and
estimation draws are made (fresh draws per scale), and the scale

* **answers** when the lower bound of its selected class is above 1/2;
* **passes** to the next lower scale when every class's upper bound is below 1/2 (the smoothed classifier at this
  scale abstains, with confidence);
* otherwise (neither is shown) the cascade **abstains**, as the reference code does.

The last scale answers or the cascade abstains. With one scale this is exactly CERTIFY.

Radius. The cascaded classifier keeps its answer ``c`` at ``x'`` only if the scale that answered still gives ``c``
*and* no higher scale starts to answer another class. So the certified radius is the minimum of the answering
scale's ``sigma_k * Phi^-1(pA_lower)`` and, for every higher scale ``j`` that passed,
``sigma_j * (Phi^-1(1/2) - Phi^-1(pB_upper_j)) = -sigma_j * Phi^-1(pB_upper_j)``, where ``pB_upper_j`` bounds the
probability of every class other than ``c`` at scale ``j`` (Jeong & Shin's Theorem; ``r_neg`` in their code). A
radius that comes out at or below 0 is an abstention. (The answering scale's radius alone would not be a certificate
of the cascade.)

Multiple testing, stated exactly (conservative; the reference divides alpha by the stage number instead):
alpha is split evenly over the K scales (Bonferroni). The lowest scale spends its ``alpha / K`` on the lower bound of
its selected class, as CERTIFY does. Each higher scale spends ``alpha / (2K)`` on that lower bound and ``alpha / (2K)``
on upper bounds of *every* class, ``alpha / (2KC)`` each for C classes, so that they hold together whatever class a
lower scale later answers. By the union bound every bound an answer relies on holds at once with probability at
least ``1 - alpha``. The other outcomes (pass, abstain) are decisions, not claims, and need no budget.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

from ..evaluation.intervals import normal_quantile
from .bounds import upper_bound
from .cohen import ABSTAIN, ScaleCounts, certify_counts

__all__ = ["ImageCertificate", "ScaleBudget", "cascade", "scale_budgets"]

# outcome of one image
CERTIFIED, ABSTAINED, AMBIGUOUS, CONFLICT = "certified", "abstained", "ambiguous", "conflict"


@dataclasses.dataclass(frozen=True)
class ScaleBudget:
    """The failure probabilities one scale spends: its selected class's lower bound, and each class's upper bound
    (``None`` for the last scale, which needs none)."""

    lower: float
    upper_per_class: float | None


def scale_budgets(k: int, alpha: float, num_classes: int) -> list[ScaleBudget]:
    """The split of ``alpha`` over ``k`` scales, highest first (see the module docstring); one scale: ``alpha``."""
    last = ScaleBudget(alpha / k, None)
    higher = ScaleBudget(alpha / (2 * k), alpha / (2 * k * num_classes))
    return [higher] * (k - 1) + [last]


@dataclasses.dataclass
class ImageCertificate:
    """One image's answer: prediction (``-1``: abstain), the answering scale's ``pA_lower``, the radius, and why."""

    prediction: int
    p_lower: float  # of the answering scale (or of the last scale tried when the cascade abstained)
    radius: float
    scale: int | None  # index into the sigmas of the scale that answered
    outcome: str  # certified | abstained (pA_lower <= 1/2 at the last scale) | ambiguous | conflict (radius <= 0)
    scales: list[ScaleCounts]


def cascade(
    sigmas: Sequence[float],
    alpha: float,
    num_classes: int,
    draw: Callable[[int], ScaleCounts],
) -> ImageCertificate:
    """Run the cascade over ``sigmas`` (highest first); ``draw(k)`` makes scale ``k``'s draws when it is reached."""
    budgets = scale_budgets(len(sigmas), alpha, num_classes)
    tried: list[ScaleCounts] = []
    off_class: list[list[float]] = []  # per passed scale: every class's upper bound
    for k, budget in enumerate(budgets):
        counts = draw(k)
        tried.append(counts)
        prediction, p_lower, r = certify_counts(counts, budget.lower)
        if prediction != ABSTAIN:
            for sigma, uppers in zip(sigmas, off_class):  # the higher scales must not start answering another class
                pb = max(u for c, u in enumerate(uppers) if c != prediction)  # in (0, 1/2): the scale passed
                r = min(r, -sigma * normal_quantile(pb))
            if r <= 0:
                return ImageCertificate(ABSTAIN, p_lower, 0.0, None, CONFLICT, tried)
            return ImageCertificate(prediction, p_lower, r, k, CERTIFIED, tried)
        if budget.upper_per_class is None:
            return ImageCertificate(ABSTAIN, p_lower, 0.0, None, ABSTAINED, tried)
        uppers = [upper_bound(c, counts.n, budget.upper_per_class) for c in counts.counts]
        if max(uppers) >= 0.5:  # this scale may answer at population level: cannot pass it by
            return ImageCertificate(ABSTAIN, p_lower, 0.0, None, AMBIGUOUS, tried)
        off_class.append(uppers)
    raise AssertionError("unreachable: the last scale answers or abstains")
