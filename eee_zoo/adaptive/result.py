"""The result of one worst-case evaluation: the headline, its per-attack columns, and every image's counts.

Headline: robust accuracy **per draw**, the mean over images of the share of fresh draws on which the deployed
model classifies the image's kept proposal right: the chance that one query of the deployed model on the kept
example is answered right. Beside it the **every-draw** figure (right on all ``fresh_draws`` fresh draws), which
falls as the number of draws grows, so it is always shown with that number.

Between the two, **right on k draws** (:func:`right_on_k_draws`): the share of images right on all of ``k``
independent draws, estimated without bias from each image's fresh hits. It is how AutoAttack ``rand`` counts: an
image stays robust only while every one of its single-draw checks is right (the clean check, then one check after
each attack: ``k = 3`` for APGD-CE and APGD-DLR), so rand's figure is compared with the worst case on ``k`` draws,
not with the per-draw figure, which is higher by construction where images are wrong on some draws only (small
eps). AutoAttack's examples are themselves proposals, so the per-draw worst case is compared with them re-scored
per draw (their column).

**The headline column** (:func:`headline_column`): the lowest of the worst case and each single attack's column.
Each column is scored on fresh draws its choice never saw, so each is an honest upper bound. The worst case is the
lowest in expectation, but where several proposals break an image on (nearly) every judging draw the choice among
them cannot be resolved by the draws spent, and the fresh draws that score the kept proposal can land a few
image-draws above the proposal one single attack kept (``Airbench_CPU_CrossMax_Gauss025``, n = 100: 951 against
pgd-mean-eot's 949 of 5000). The headline is then that attack's figure: the lowest any attack reaches. The minimum
of columns that differ on a few images only has a small bias, downwards: against the model, the safe side of an
upper bound. Whether the worst case's excess is more than such noise is tested (:func:`excess_over`); a
significant excess is a defect of the evaluation, shown as a failed check, not absorbed.

Intervals (95 %): every-draw counts are binomial, Clopper-Pearson. The per-draw figure is a mean of per-image
shares in [0, 1]; its interval is Clopper-Pearson at k = the sum of the shares (exact for one draw per image; with
more draws a share's variance is at most that of one draw, so the interval does not understate the uncertainty).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from fractions import Fraction
from typing import Any

import torch
from scipy.stats import beta, wilcoxon

from .._percent import interval_percent_text, percent_text
from ..evaluation.autoattack import attack_list, autoattack_checks
from ..evaluation.intervals import CONFIDENCE, clopper_pearson_interval

__all__ = [
    "AdaptiveResult",
    "Column",
    "fractional_count_interval",
    "per_draw_count_interval",
    "per_draw_interval",
    "counted_as_autoattack",
    "excess_over",
    "headline_column",
    "right_on_k_draws",
]

RESULT_FORMAT = 2


def per_draw_interval(hits: list[int], draws: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Clopper-Pearson interval of the mean per-draw accuracy, at the (possibly fractional) count sum(hits)/draws."""
    return per_draw_count_interval(sum(hits), len(hits), draws, confidence)


def per_draw_count_interval(
    total_hits: int, images: int, draws: int, confidence: float = CONFIDENCE
) -> tuple[float, float]:
    """:func:`per_draw_interval` from the totals alone (``total_hits`` image-draws right over ``images`` images),
    which is all it depends on: what a card entry keeps."""
    return fractional_count_interval(total_hits / draws, images, confidence)


def fractional_count_interval(count: float, n: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Clopper-Pearson interval at a fractional ``count`` of ``n``: the sum of per-image shares in [0, 1], each an
    unbiased estimate whose variance is at most a single Bernoulli's of the same mean, so the interval does not
    understate the uncertainty (exact for 0/1 shares)."""
    alpha = 1 - confidence
    lo = 0.0 if count <= 0 else float(beta.ppf(alpha / 2, count, n - count + 1))
    hi = 1.0 if count >= n else float(beta.ppf(1 - alpha / 2, count + 1, n - count))
    return lo, hi


def right_on_k_draws(hits: Sequence[int], draws: int, k: int) -> Fraction:
    """The share of images right on all of ``k`` independent draws, exactly, from each image's ``hits`` out of
    ``draws`` draws: the mean of C(h, k) / C(draws, k), the chance that ``k`` of the draws taken without
    replacement are all right, an unbiased estimate of p**k for an image right with probability p on each draw
    (``k = 1``: the per-draw figure; ``k = draws``: the every-draw figure)."""
    if not 1 <= k <= draws:
        raise ValueError(f"k must be between 1 and the number of draws ({draws}), got {k}")
    if not hits:
        raise ValueError("no images")
    return Fraction(sum(math.comb(h, k) for h in hits), len(hits) * math.comb(draws, k))


def counted_as_autoattack(
    fresh_hits: Sequence[int], fresh_draws: int, autoattack_attacks: Sequence[Any], stochastic: bool = True
) -> tuple[Fraction, int]:
    """A worst case counted as an AutoAttack run counts, exactly, and the number of draws that takes: the share of
    images right on all of its single-draw checks (:func:`~eee_zoo.evaluation.autoattack.autoattack_checks` of
    ``autoattack_attacks``: 3 for ``rand``; at most ``fresh_draws``), from each image's fresh hits
    (:func:`right_on_k_draws`). A model whose stack draws nothing (``stochastic`` False) is judged on one draw,
    which every check would repeat: its per-draw figure."""
    k = min(autoattack_checks(autoattack_attacks), fresh_draws) if stochastic else 1
    return right_on_k_draws(fresh_hits, fresh_draws, k), k


def headline_column(result: dict[str, Any]) -> dict[str, Any]:
    """The column of a results dict (format 2) that its headline reports: the per-image worst case (``robust``), or
    the single attack's column whose fresh draws count fewer image-draws right (see the module docstring); ties
    keep the worst case."""
    return _fewest_fresh_hits((result["robust"], *result["per_attack"]), lambda c: c["fresh_hits"])


def _fewest_fresh_hits(columns: Sequence[Any], fresh_hits: Callable[[Any], Sequence[int]]) -> Any:
    """The headline rule, for columns as dicts or :class:`Column`: fewest fresh hits in all, the first on ties."""
    return min(columns, key=lambda c: sum(fresh_hits(c)))


def excess_over(worst_hits: Sequence[int], other_hits: Sequence[int]) -> tuple[int, float]:
    """How far the worst case's fresh hits are above another column's: ``(image-draws above, p)``, where ``p`` is
    the one-sided p-value of the paired Wilcoxon signed-rank test over images that the worst case's kept proposals
    are right *more* often than the other column's (images where both kept the same proposal differ by 0 and drop
    out). A small ``p`` (below 0.05) says the excess is more than fresh-draw noise: the worst case chose worse than
    a single attack, a defect. ``(excess, 1.0)`` where the worst case is not above."""
    if len(worst_hits) != len(other_hits):
        raise ValueError(f"per-image hits of {len(worst_hits)} and {len(other_hits)} images")
    excess = sum(worst_hits) - sum(other_hits)
    differences = [w - o for w, o in zip(worst_hits, other_hits) if w != o]
    if excess <= 0 or not differences:
        return excess, 1.0
    return excess, float(wilcoxon(differences, alternative="greater").pvalue)


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

    def on_k_draws(self, k: int, draws: int) -> tuple[float, tuple[float, float]]:
        """The share of images right on all of ``k`` of the ``draws`` fresh draws (:func:`right_on_k_draws`), with
        its 95 % interval (Clopper-Pearson at the fractional count)."""
        share = right_on_k_draws(self.fresh_hits, draws, k)
        n = len(self.fresh_hits)
        return float(share), fractional_count_interval(float(share * n), n)


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
    # where AutoAttack's examples came from: "batch" (a run inside each batch) or "run" (its full run on the n images)
    autoattack_source: str = "batch"
    # with source "run": the chunk size those runs were made in (None: one unchunked run)
    autoattack_chunk_size: int | None = None
    # where the batches were attacked and judged, one entry per distinct machine (device: processor, instruction
    # set, threads, layout), in batch order; [] in files from before the record (2026-12-04)
    attacked_on: list[str] = dataclasses.field(default_factory=list)
    # per image, the kept proposal of the headline (the clean image where that is the worst); not in to_dict()
    x_adv: torch.Tensor | None = dataclasses.field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(dataclasses.replace(self, x_adv=None))
        d.pop("x_adv")
        if d["autoattack_source"] == "batch":  # files of the default source read as they did before the option
            d.pop("autoattack_source")
        if d["autoattack_chunk_size"] is None:  # likewise for runs that were not chunked
            d.pop("autoattack_chunk_size")
        if not d["attacked_on"]:  # and for results without the record
            d.pop("attacked_on")
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

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> AdaptiveResult:
        """The inverse of :meth:`to_dict` (a results file read back; :attr:`x_adv` is not in it). Files from before
        the second stage and the tie rounds read as ``final_draws`` / ``tie_draws`` 0."""
        d = {"final_draws": 0, "tie_draws": 0, **d}
        for key in ("format_version", "suite", "kind"):
            d.pop(key, None)
        d["clean"], d["robust"] = Column(**d["clean"]), Column(**d["robust"])
        d["per_attack"] = [Column(**c) for c in d["per_attack"]]
        unknown = set(d) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"unknown result fields {sorted(unknown)}")
        return cls(**d)

    def headline(self) -> Column:
        """The column the headline reports (:func:`headline_column`): :attr:`robust`, or a single attack's."""
        return _fewest_fresh_hits((self.robust, *self.per_attack), lambda c: c.fresh_hits)

    def summary(self) -> str:
        """Human-readable lines; every figure says what it counts."""
        f = self.fresh_draws
        runs = ""
        if self.autoattack_source == "run":
            chunks = f", in chunks of {self.autoattack_chunk_size}" if self.autoattack_chunk_size else ""
            runs = f" (of its runs on the {self.n_examples} images{chunks})"
        head = (
            f"{self.model_name} ({self.checkpoint_sha256[:12]}) {self.dataset} {self.threat_model} eps={self.eps:.6g} "
            f"worst case over the '{self.preset}' attacks"
            + (f" + AutoAttack {'/'.join(self.autoattack)} examples" if self.autoattack else "")
            + runs
            + f", seed={self.seed} n={self.n_examples}; chosen on {self.selection_draws} selection draws, scored on "
            f"{f} fresh draws"
            + (f" (finalists judged again on {self.final_draws} draws" if self.final_draws else "")
            + (f", ties on up to {self.tie_draws} more" if self.final_draws and self.tie_draws else "")
            + (")" if self.final_draws else "")
            + (" (cascade: images already broken were not attacked further)" if self.cascade else "")
        )
        lines = [
            head,
            "  per draw: mean over images and fresh draws (one query of the deployed model); "
            f"every draw: right on all {f} fresh draws (falls as draws grow)",
        ]
        width = max(len(c.name) for c in (self.clean, self.robust, *self.per_attack)) + 2

        def row(label: str, c: Column) -> str:
            tail = f"  {c.seconds:.0f} s" if c.seconds else ""
            return (
                f"  {label:<{width}} per draw {percent_text(c.per_draw, 7)} "
                f"[{interval_percent_text(c.per_draw_interval)}]   every draw {percent_text(c.every_draw, 7)} "
                f"({c.every_draw_correct}/{self.n_examples}) "
                f"[{interval_percent_text(c.every_draw_interval)}]{tail}"
            )

        for label, c in (("clean", self.clean), ("WORST CASE", self.robust), *((c.name, c) for c in self.per_attack)):
            lines.append(row(label, c))
        head = self.headline()
        if head is not self.robust:  # a single attack's column counted less (see headline_column)
            excess, p = excess_over(self.robust.fresh_hits, head.fresh_hits)
            lines.append(
                row("HEADLINE", head) + f"  ({head.name}: the worst case counted {excess} image-draw"
                f"{'s' * (excess != 1)} more on the fresh draws; paired Wilcoxon p = {p:.2g})"
            )
        k = autoattack_checks(attack_list("rand", None))
        if self.stochastic and f >= k:  # AutoAttack rand's own count, to hold its figure against like with like
            share, interval = head.on_k_draws(k, f)
            lines.append(
                f"  headline counted as AutoAttack rand counts (right on all of {k} draws: its clean check and one "
                f"after each attack; compare with rand's own figure): {percent_text(share)} "
                f"[{interval_percent_text(interval)}]"
            )
        if len(self.attacked_on) > 1:  # one figure, several machines (or layouts): their floats differ
            lines.append("  attacked on " + "; ".join(self.attacked_on))
        return "\n".join(lines)
