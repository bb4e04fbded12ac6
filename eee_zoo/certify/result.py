"""The result of one certification run: every image's answer, certified accuracy at each radius, and the settings.

Certified accuracy at L2 radius ``r``: the share of images the smoothed classifier gets right *and* certifies at a
radius of at least ``r`` (Cohen et al.'s ``analyze``); at ``r = 0`` it is the smoothed classifier's accuracy with
abstentions counted wrong. Its 95 % interval over images is Clopper-Pearson (two-sided); it says nothing about the
``alpha`` of each certificate, which is a separate, per-image failure probability. An L2 ball of radius ``r`` holds
the L-inf ball of radius ``r / sqrt(d)`` (``d = 3 * 32 * 32`` for CIFAR), so each radius also certifies that L-inf
radius.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from .._percent import interval_percent_text, percent_text
from ..evaluation.intervals import CONFIDENCE, clopper_pearson_interval
from .bounds import largest_radius
from .multiscale import scale_budgets

__all__ = ["CertifiedAccuracy", "CertifyResult", "RESULT_FORMAT", "SUITE"]

RESULT_FORMAT = 1
SUITE = "certify"


@dataclasses.dataclass
class CertifiedAccuracy:
    """Certified accuracy at one L2 radius, with the L-inf radius it implies."""

    radius: float  # L2
    radius_linf: float  # radius / sqrt(input dimension)
    correct: int  # images right and certified at >= radius
    n_examples: int
    accuracy: float
    interval: tuple[float, float]  # Clopper-Pearson, CONFIDENCE, over images

    @classmethod
    def count(cls, r: float, correct: list[bool], radii: list[float], dim: int) -> CertifiedAccuracy:
        k = sum(1 for ok, rad in zip(correct, radii) if ok and rad >= r)
        n = len(correct)
        return cls(float(r), float(r) / math.sqrt(dim), k, n, k / n, clopper_pearson_interval(k, n))


@dataclasses.dataclass
class CertifyResult:
    """Everything about one run of :func:`eee_zoo.certify`; ``to_dict()`` is what results files hold."""

    model_name: str
    checkpoint_sha256: str
    dataset: str
    card_threat_model: str | None  # the threat model of the model's card (where results files go), if any
    method: str  # "cohen" (one sigma) or "multiscale" (a cascade, highest sigma first)
    sigmas: list[float]
    n0: int  # selection draws per scale
    n: int  # estimation draws per scale
    alpha: float  # per-image failure probability of a certificate (all scales together)
    budgets: list[dict[str, float | None]]  # how alpha is spent per scale (multiscale.scale_budgets)
    batch_size: int  # noisy copies per forward pass (part of the configuration: it orders the draws)
    seed: int
    n_examples: int
    stochastic: bool | None  # the model's own randomness on (True), off (False), or no such switch (None)
    input_dim: int
    labels: list[int]
    predictions: list[int]  # -1: abstain
    p_lower: list[float]  # the answering scale's pA lower bound
    radius: list[float]  # certified L2 radius (0 when abstaining)
    correct: list[bool]  # prediction == label (an abstention is never correct)
    answered_sigma: list[float | None]
    outcome: list[str]  # certified | abstained | ambiguous | conflict (see multiscale)
    scales: list[list[dict[str, Any]]]  # per image, per scale tried: sigma, selected class, estimation counts
    certified: list[CertifiedAccuracy]
    largest_radius: float  # the most n draws can certify at the highest sigma and its share of alpha
    data: dict[str, Any]
    versions: dict[str, str]
    device: str
    wall_time_s: float
    created: str
    confidence: float = CONFIDENCE
    compute_s: float | None = None  # seconds spent certifying, summed over images (resumed ones too: wall_time_s
    # counts only this call)

    @classmethod
    def largest(cls, sigmas: list[float], n: int, alpha: float, num_classes: int) -> float:
        budgets = scale_budgets(len(sigmas), alpha, num_classes)
        return max(largest_radius(s, n, b.lower) for s, b in zip(sigmas, budgets))

    @property
    def abstained(self) -> int:
        return sum(p < 0 for p in self.predictions)

    def at(self, radius: float) -> CertifiedAccuracy:
        """Certified accuracy at any L2 radius (not only the stored ones)."""
        return CertifiedAccuracy.count(radius, self.correct, self.radius, self.input_dim)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d.update(format_version=RESULT_FORMAT, suite=SUITE, kind="certified", norm="L2")
        return d

    def summary(self) -> str:
        """Human-readable lines; every figure says what it counts."""
        sig = ", ".join(f"{s:g}" for s in self.sigmas)
        how = "CERTIFY (Cohen et al. 2019)" if self.method == "cohen" else "multi-scale cascade (Jeong & Shin 2023)"
        mode = {True: "stochastic", False: "deterministic", None: "as given"}[self.stochastic]
        lines = [
            f"{self.model_name} ({self.checkpoint_sha256[:12]}) {self.dataset}: randomized smoothing, {how}, sigma "
            f"{sig}; n0={self.n0} N={self.n} alpha={self.alpha:g} per image, seed {self.seed}, first "
            f"{self.n_examples} test images, model's own randomness: {mode}",
            f"  smoothed accuracy (radius 0, abstentions wrong): {self._line(self.at(0.0))}; abstained "
            f"{self.abstained}/{self.n_examples}",
        ]
        for c in self.certified:
            lines.append(
                f"  certified accuracy at L2 radius {c.radius:g} (L-inf {255 * c.radius_linf:.2f}/255): {self._line(c)}"
            )
        lines.append(
            f"  largest certifiable L2 radius with these N and alpha: {self.largest_radius:.3f} (all N draws right); "
            f"95% intervals are Clopper-Pearson over images; "
            + (f"compute {self.compute_s:.0f} s summed over images, " if self.compute_s is not None else "")
            + f"wall time of this call {self.wall_time_s:.0f} s"
        )
        return "\n".join(lines)

    @staticmethod
    def _line(c: CertifiedAccuracy) -> str:
        return f"{percent_text(c.accuracy, 7)} ({c.correct}/{c.n_examples}) [{interval_percent_text(c.interval)}]"
