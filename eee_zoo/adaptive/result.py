"""The result of one worst-case evaluation: the headline, its per-attack columns, and every image's counts.

Headline: robust accuracy **per draw**, the mean over images of the share of fresh draws on which the deployed
model classifies the image's kept proposal right, what AutoAttack ``rand`` measures with one draw per image.
Beside it the **every-draw** figure (right on all ``fresh_draws`` fresh draws), which falls as the number of draws
grows, so it is always shown with that number.

Intervals (95 %): every-draw counts are binomial, Clopper-Pearson. The per-draw figure is a mean of per-image
shares in [0, 1]; its interval is Clopper-Pearson at k = the sum of the shares (exact for one draw per image; with
more draws a share's variance is at most that of one draw, so the interval does not understate the uncertainty).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
from scipy.stats import beta

from ..evaluation.intervals import CONFIDENCE, clopper_pearson_interval

__all__ = ["AdaptiveResult", "Column", "per_draw_count_interval", "per_draw_interval"]

RESULT_FORMAT = 2


def per_draw_interval(hits: list[int], draws: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Clopper-Pearson interval of the mean per-draw accuracy, at the (possibly fractional) count sum(hits)/draws."""
    return per_draw_count_interval(sum(hits), len(hits), draws, confidence)


def per_draw_count_interval(
    total_hits: int, images: int, draws: int, confidence: float = CONFIDENCE
) -> tuple[float, float]:
    """:func:`per_draw_interval` from the totals alone (``total_hits`` image-draws right over ``images`` images),
    which is all it depends on: what a card entry keeps."""
    n = images
    k = total_hits / draws
    alpha = 1 - confidence
    lo = 0.0 if k <= 0 else float(beta.ppf(alpha / 2, k, n - k + 1))
    hi = 1.0 if k >= n else float(beta.ppf(1 - alpha / 2, k + 1, n - k))
    return lo, hi


@dataclasses.dataclass
class Column:
    """One figure (overall, clean, or one attack): per draw and every draw, with per-image counts."""

    name: str
    per_draw: float
    per_draw_interval: tuple[float, float]
    every_draw: float
    every_draw_correct: int
    every_draw_interval: tuple[float, float]
    selection_hits: list[int]  # per image: hits of the kept proposal on the selection draws
    fresh_hits: list[int]  # per image: hits on the fresh draws
    seconds: float = 0.0
    proposals: int = 0  # proposals offered per image

    @classmethod
    def from_hits(cls, name: str, selection: list[int], fresh: list[int], fresh_draws: int, **kw: Any) -> Column:
        n = len(fresh)
        every = sum(h == fresh_draws for h in fresh)
        return cls(
            name=name,
            per_draw=sum(fresh) / (n * fresh_draws),
            per_draw_interval=per_draw_interval(fresh, fresh_draws),
            every_draw=every / n,
            every_draw_correct=every,
            every_draw_interval=clopper_pearson_interval(every, n),
            selection_hits=selection,
            fresh_hits=fresh,
            **kw,
        )


@dataclasses.dataclass
class AdaptiveResult:
    """Everything about one worst-case evaluation; ``to_dict()`` is what results files hold."""

    model_name: str
    checkpoint_sha256: str
    dataset: str
    threat_model: str
    eps: float
    n_examples: int
    seed: int
    batch_size: int
    preset: str
    attacks: list[dict[str, Any]]  # each Attack's settings, in order
    autoattack: list[str]  # AutoAttack versions whose examples were proposals
    autoattack_overrides: dict[str, Any]  # cut AutoAttack settings (tests only; empty for real evaluations)
    selection_draws: int
    fresh_draws: int
    final_draws: int  # the second selection stage's draws (0: one stage); robust.selection_hits count these
    tie_draws: int  # further draws that settle finalists tied on the final draws (0: none)
    cascade: bool  # True: images already wrong on every selection draw were not attacked further
    clean: Column
    robust: Column  # the headline: the worst case over every proposal
    per_attack: list[Column]
    chosen: list[str]  # per image: the proposal kept ("clean" or "<attack>/<proposal>")
    data: dict[str, Any]
    versions: dict[str, str]
    device: str
    wall_time_s: float
    created: str
    confidence: float = CONFIDENCE
    stochastic: bool = True  # False: the model's stack draws nothing (judged on one draw, see evaluate._one_draw)
    # per image, the kept proposal of the headline (the clean image where that is the worst); not in to_dict()
    x_adv: torch.Tensor | None = dataclasses.field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(dataclasses.replace(self, x_adv=None))
        d.pop("x_adv")
        d.update(format_version=RESULT_FORMAT, suite="adaptive", kind="adaptive")
        return d

    def examples_metadata(self) -> dict[str, str]:
        """What :func:`eee_zoo.evaluation.examples.save_adversarial_examples` records beside :attr:`x_adv`."""
        return {
            "model_name": self.model_name, "model_sha256": self.checkpoint_sha256, "dataset": self.dataset,
            "suite": "adaptive", "preset": self.preset, "seed": str(self.seed),
            "mode": "stochastic" if self.stochastic else "deterministic",
            "batch_size": str(self.batch_size),
        }  # fmt: skip

    def summary(self) -> str:
        """Human-readable lines; every figure says what it counts."""
        f = self.fresh_draws
        head = (
            f"{self.model_name} ({self.checkpoint_sha256[:12]}) {self.dataset} {self.threat_model} eps={self.eps:.6g} "
            f"worst case over the '{self.preset}' attacks"
            + (f" + AutoAttack {'/'.join(self.autoattack)} examples" if self.autoattack else "")
            + f", seed={self.seed} n={self.n_examples}; chosen on {self.selection_draws} selection draws, scored on "
            f"{f} fresh draws"
            + (f" (finalists judged again on {self.final_draws} draws" if self.final_draws else "")
            + (f", ties on up to {self.tie_draws} more" if self.final_draws and self.tie_draws else "")
            + (")" if self.final_draws else "")
            + (" (cascade: images already broken were not attacked further)" if self.cascade else "")
        )
        lines = [
            head,
            "  per draw: mean over images and fresh draws (what AutoAttack rand measures with one draw); "
            f"every draw: right on all {f} fresh draws (falls as draws grow)",
        ]
        width = max(len(c.name) for c in (self.clean, self.robust, *self.per_attack)) + 2
        for label, c in (("clean", self.clean), ("WORST CASE", self.robust), *((c.name, c) for c in self.per_attack)):
            lo, hi = c.per_draw_interval
            elo, ehi = c.every_draw_interval
            tail = f"  {c.seconds:.0f} s" if c.seconds else ""
            lines.append(
                f"  {label:<{width}} per draw {c.per_draw:7.2%} [{lo:.2%}, {hi:.2%}]   every draw {c.every_draw:7.2%} "
                f"({c.every_draw_correct}/{self.n_examples}) [{elo:.2%}, {ehi:.2%}]{tail}"
            )
        return "\n".join(lines)
