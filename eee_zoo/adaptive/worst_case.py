"""Per-image worst case over every proposal, chosen by the deployed model on selection draws, scored on fresh ones.

Every attack *proposes* adversarial examples (several per image: restarts, targets, iterates along the way); the
clean image is itself a proposal (delta = 0), so clean-wrong images count with no special case. The deployed model
(its own stochastic stack and aggregator) judges each proposal on ``selection_draws`` draws, the same draws for
every proposal (common random numbers, so proposals are compared on equal terms), and each image keeps the proposal
it gets right least often (ties keep the earlier one). The kept proposal is then scored on ``fresh_draws`` *other*
draws: picking the minimum of noisy scores biases them down, scoring on draws the choice never saw does not.

With many proposals, a few selection draws cannot tell apart the proposals that all look broken; so the choice is
made in two stages: the running minimum on the selection draws keeps one finalist per attack (and the clean
image), then :meth:`WorstCase.finalize` judges the finalists on ``final_draws`` further draws and keeps, per image,
the one with fewest hits there. Both stages are minima over what was offered, so adding an attack can only lower
an image's score or keep it.

Where several different finalists share an image's fewest final hits (typically several attacks that all break it
on nearly every draw: 0 of 200), the choice among them would be a coin flip that the fresh draws then score, so a
near-tie could leave the worst case a few image-draws above the best single attack. ``tie_draws`` settles these:
the tied finalists alone are judged on further rounds of ``final_draws`` draws (common to them, other seeds), the
ones no longer at the minimum of the cumulated hits drop out, until one is left or ``tie_draws`` are spent; the
mean true-class probability breaks what is still tied, then the earlier finalist. Only the choice uses these draws;
the kept proposal is still scored on fresh draws it never saw.

Because the kept score is a running minimum, offering another proposal can only lower an image's selection score
or keep it. The same bookkeeping runs per attack (clean plus that attack's proposals only), which gives the
per-attack columns.

Judging is nearly all of the cost, so an image is judged only where its result is used: each on the very draws it
gets in the whole batch (:func:`judge`'s ``rows``), and a proposal equal to one already judged on the same draws (an
attack that kept the clean image, the worst case's choice) takes that judgement rather than being judged again.
On a CPU the backbone runs in micro-batches (:func:`~eee_zoo.adaptive.surrogates.micro_batch_for`) after the stack
has drawn for the whole pass (the same draws; about 2x faster on a ResNet-18, where one pass over thousands of images
is slow per image).
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from typing import Any

import torch
import torch.nn as nn

from ..evaluation.seeds import derive_seed
from .surrogates import micro_batch_for, stochastic_mode

__all__ = ["Tally", "WorstCase", "count_hits", "judge"]

CLEAN = "clean"
_MAX_JUDGE_BATCH = 2048  # images per forward pass when judging (draws x images are batched together)


def count_hits(model: nn.Module, x: torch.Tensor, y: torch.Tensor, draws: int, seed: int) -> torch.Tensor:
    """``[B]`` int: on how many of ``draws`` draws of the deployed stochastic model each image is classified right."""
    return judge(model, x, y, draws, seed)[0]


@torch.no_grad()
def judge(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    draws: int,
    seed: int,
    rows: torch.Tensor | None = None,
    micro_batch: int | None | str = "cpu",
) -> tuple[torch.Tensor, torch.Tensor]:
    """``([B] hits, [B] mean true-class probability)`` of the deployed stochastic model over ``draws`` draws.

    The draws come from one ``torch.Generator`` seeded with ``seed`` and are batched (draw ``d`` of image ``i`` is row
    ``d * B + i``), so the same ``(seed, B)`` gives every call the same noise: judged images are compared on the same
    draws. A model whose randomness is off gives ``0`` or ``draws``.

    ``rows`` (``[B]`` bool) judges only those images, on the very draws they get in the whole batch (the stack still
    draws for every image; the backbone, nearly all the cost, runs on the rows alone); the others read ``-1`` hits
    and NaN probability.

    ``micro_batch``: a model whose forward takes ``micro_batch`` (a SelfEnsemble) runs its backbone on that many
    images at a time, with the draws of the whole pass; ``"cpu"``: :func:`~.surrogates.micro_batch_for` (32 on a
    CPU, one pass on other devices); ``None``: one pass.
    """
    b = len(x)
    micro_batch = micro_batch_for(micro_batch, x)
    if rows is not None and bool(rows.all()):
        rows = None
    gen = torch.Generator(device=x.device).manual_seed(seed)
    per_chunk = max(1, _MAX_JUDGE_BATCH // max(b, 1))  # fixed by b alone: the chunks decide which draw is whose
    hits = torch.zeros(b, dtype=torch.long, device=x.device)
    p_true = torch.zeros(b, dtype=torch.float64, device=x.device)
    wanted = torch.ones(b, dtype=torch.bool, device=x.device) if rows is None else rows
    k, yk = int(wanted.sum()), y[wanted]
    with stochastic_mode(model, True):
        for first in range(0, draws, per_chunk):
            e = min(per_chunk, draws - first)
            logits = _classify(model, x.repeat(e, 1, 1, 1), gen, None if rows is None else rows.repeat(e), micro_batch)
            logits = logits.view(e, k, -1)
            hits[wanted] += (logits.argmax(dim=-1) == yk.view(1, k)).sum(dim=0)
            p = logits.softmax(dim=-1).gather(-1, yk.view(1, k, 1).expand(e, k, 1)).squeeze(-1).sum(dim=0)
            p_true[wanted] += p.double()
    if rows is not None:
        hits[~rows], p_true[~rows] = -1, float("nan")
    return hits, p_true / draws


def _classify(
    model: nn.Module, x: torch.Tensor, gen: torch.Generator, rows: torch.Tensor | None, micro_batch: int | None
) -> torch.Tensor:
    """The deployed model's logits for the ``rows`` of ``x`` (all: ``None``), drawn with ``gen``."""
    accepts = inspect.signature(model.forward).parameters
    kwargs: dict[str, Any] = {"generator": gen}
    if micro_batch is not None and "micro_batch" in accepts:  # a SelfEnsemble: the same draws, in small passes
        kwargs["micro_batch"] = micro_batch
    if rows is None:
        return model(x, **kwargs)
    if "rows" in accepts:  # a SelfEnsemble skips the rows' backbone passes
        return model(x, rows=rows, **kwargs)
    return model(x, **kwargs)[rows]


@dataclasses.dataclass
class Tally:
    """One column: each image's kept proposal, its selection hits, and (after :meth:`WorstCase.score`) fresh hits."""

    x: torch.Tensor
    selection_hits: torch.Tensor  # [B]
    selection_p_true: torch.Tensor  # [B] mean true-class probability on the selection draws (the tie-break)
    source: list[str]  # the proposal kept per image ("clean" or "<attack>/<proposal>")
    fresh_hits: torch.Tensor | None = None  # [B]


class WorstCase:
    """The running worst case of one batch of images over all proposals offered, overall and per attack."""

    def __init__(
        self,
        model: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        *,
        selection_draws: int,
        selection_seed: int,
        fresh_draws: int,
        fresh_seed: int,
        final_draws: int = 0,
        final_seed: int | None = None,
        tie_draws: int = 0,
    ) -> None:
        if len({selection_seed, fresh_seed, final_seed if final_draws else None} - {None}) != 2 + bool(final_draws):
            raise ValueError("selection, final and fresh draws need different seeds")
        self.model, self.x, self.y = model, x, y
        self.selection_draws, self.selection_seed = selection_draws, selection_seed
        self.fresh_draws, self.fresh_seed = fresh_draws, fresh_seed
        self.final_draws, self.final_seed = final_draws, final_seed
        self.tie_draws = tie_draws  # used by finalize only, which does nothing without final draws
        self.clean_hits, self.clean_p_true = judge(model, x, y, selection_draws, selection_seed)
        self.overall = self._clean_tally()
        self.per_attack: dict[str, Tally] = {}
        self.clean_fresh_hits: torch.Tensor | None = None

    @classmethod
    def from_columns(
        cls, model: nn.Module, x: torch.Tensor, y: torch.Tensor, columns: dict[str, Tally], **draws: Any
    ) -> WorstCase:
        """The worst case of an attack stage already run: ``columns`` holds each attack's kept proposals (as a
        stored batch does), in the order the attacks ran. The overall running minimum is rebuilt from them: the
        minimum over each attack's minima is the minimum over every proposal, ties going to the earlier one either
        way. Then :meth:`finalize` and :meth:`score` judge them on any number of final and fresh draws."""
        worst = cls(model, x, y, **draws)
        everywhere = torch.ones(len(x), dtype=torch.bool, device=x.device)
        for name, tally in columns.items():
            worst.per_attack[name] = tally
            _keep_lower(worst.overall, tally.x, tally.selection_hits, tally.selection_p_true, everywhere, tally.source)
        return worst

    def _clean_tally(self) -> Tally:
        return Tally(self.x.clone(), self.clean_hits.clone(), self.clean_p_true.clone(), [CLEAN] * len(self.x))

    def add_column(self, attack: str) -> Tally:
        """The column of ``attack`` (created holding the clean images), so an attack that proposes nothing still
        has its column."""
        return self.per_attack.setdefault(attack, self._clean_tally())

    def still_correct(self) -> torch.Tensor:
        """``[B]`` bool: images the deployed model still gets right on at least one selection draw."""
        return self.overall.selection_hits > 0

    def offer(self, attack: str, proposal: str, x_adv: torch.Tensor, index: torch.Tensor | None = None) -> int:
        """Judge ``x_adv`` (for the images ``index``, default all) and keep it where it is worse for the model.

        Returns how many images' overall worst case it lowered.
        """
        index = torch.arange(len(self.x), device=self.x.device) if index is None else index
        if len(index) == 0:
            return 0
        full = self.x.clone()
        full[index] = x_adv  # judged in the whole batch, so every image sees its own selection draws
        mask = torch.zeros(len(self.x), dtype=torch.bool, device=self.x.device)
        mask[index] = True
        hits, p_true = judge(self.model, full, self.y, self.selection_draws, self.selection_seed, rows=mask)
        tally = self.add_column(attack)
        _keep_lower(tally, full, hits, p_true, mask, f"{attack}/{proposal}")
        return _keep_lower(self.overall, full, hits, p_true, mask, f"{attack}/{proposal}")

    @torch.no_grad()
    def finalize(self, on_column: Callable[[str], None] | None = None) -> None:
        """The second stage: the finalists (clean image, each attack's kept proposal) judged on the final draws.

        Afterwards :attr:`overall` holds, per image, the finalist with fewest final hits (ties settled on up to
        ``tie_draws`` further draws, then by lower mean true-class probability, then the earlier finalist), and its
        ``selection_hits`` count its hits on the first ``final_draws`` draws: the minimum over the finalists there,
        so adding an attack still never raises it.
        """
        if not self.final_draws:
            return
        finalists = [(CLEAN, self._clean_tally()), *self.per_attack.items()]
        xs = torch.stack([t.x for _, t in finalists])  # [F, B, C, H, W]
        first = _first_equal(xs)
        own = first == torch.arange(len(xs), device=xs.device).view(-1, 1)  # a finalist equal to an earlier one is it
        images = torch.arange(len(self.x), device=self.x.device)
        hits = torch.empty(own.shape, dtype=torch.long, device=xs.device)
        p_first = torch.empty(own.shape, dtype=torch.float64, device=xs.device)
        for f, (name, tally) in enumerate(finalists):
            if on_column is not None:
                on_column(name)
            if own[f].any():
                hits[f], p_first[f] = judge(self.model, tally.x, self.y, self.final_draws, self.final_seed, own[f])
            # a repeat has its original's judgement: the same image on the same draws (judged once, not twice)
            hits[f] = torch.where(own[f], hits[f], hits[first[f], images])
            p_first[f] = torch.where(own[f], p_first[f], p_first[first[f], images])
        p_sum = p_first * self.final_draws
        first_min = hits.min(dim=0).values
        alive = (hits == first_min) & own
        spent, round_no = 0, 0
        while spent < self.tie_draws:
            tied = torch.nonzero(alive.sum(dim=0) > 1).flatten()
            if len(tied) == 0:
                break
            round_no, draws = round_no + 1, min(self.final_draws, self.tie_draws - spent)
            seed = derive_seed(self.final_seed, f"tie{round_no}")
            if on_column is not None:
                on_column(f"ties of {len(tied)} images (round {round_no})")
            for f in range(len(finalists)):
                keep = alive[f, tied]
                if keep.any():  # each on the batch of all tied images, so every finalist sees the same draws
                    h, p = judge(self.model, xs[f, tied], self.y[tied], draws, seed, rows=keep)
                    rows = tied[keep]
                    hits[f, rows] += h[keep]
                    p_sum[f, rows] += p[keep] * draws
            spent += draws
            fewest = torch.where(alive, hits, torch.iinfo(hits.dtype).max).min(dim=0).values
            alive &= hits == fewest
        # among the finalists left: the lowest summed true-class probability, then the earliest (argmin's first)
        score = p_sum if round_no else p_first  # no rounds: exactly the probabilities judged on the final draws
        best = torch.where(alive, score, torch.full_like(score, float("inf"))).argmin(dim=0)
        source = [finalists[f][1].source[i] for i, f in enumerate(best.tolist())]
        self.overall = Tally(xs[best, images].clone(), first_min, p_first[best, images], source)

    @torch.no_grad()
    def score(self, on_column: Callable[[str], None] | None = None) -> None:
        """Score every kept proposal (and the clean images) on the fresh draws.

        A proposal already scored for its image (the clean image an attack kept, the worst case's choice) has that
        score: the same image on the same draws."""
        self.clean_fresh_hits = count_hits(self.model, self.x, self.y, self.fresh_draws, self.fresh_seed)
        scored = [(self.x, self.clean_fresh_hits)]
        for name, tally in (("worst case", self.overall), *self.per_attack.items()):
            if on_column is not None:
                on_column(name)
            hits = torch.full_like(self.clean_fresh_hits, -1)
            known = torch.zeros(len(self.x), dtype=torch.bool, device=self.x.device)
            for x_scored, hits_scored in scored:
                same = (x_scored.flatten(1) == tally.x.flatten(1)).all(dim=1) & ~known
                hits[same], known = hits_scored[same], known | same
            if not known.all():
                new = judge(self.model, tally.x, self.y, self.fresh_draws, self.fresh_seed, rows=~known)[0]
                hits[~known] = new[~known]
            tally.fresh_hits = hits
            scored.append((tally.x, hits))


def _first_equal(xs: torch.Tensor) -> torch.Tensor:
    """``[F, B]`` long: for finalist ``f`` and image ``b``, the first finalist whose proposal equals ``f``'s (``f``
    itself unless an earlier one is the same, e.g. an attack that kept the clean image)."""
    flat = xs.flatten(2)
    first = torch.arange(len(xs), device=xs.device).view(-1, 1).repeat(1, xs.shape[1])
    for f in range(1, len(xs)):
        same = (flat[:f] == flat[f]).all(dim=-1)  # [f, B]
        earlier = same.any(dim=0)
        first[f, earlier] = same.int().argmax(dim=0)[earlier]  # argmax returns the first of equal maxima
    return first


def _keep_lower(
    tally: Tally,
    x_new: torch.Tensor,
    hits: torch.Tensor,
    p_true: torch.Tensor,
    mask: torch.Tensor,
    source: str | list[str],
) -> int:
    """Keep ``x_new`` where it scores lower: fewer hits, or as many with a lower mean true-class probability."""
    lower = hits < tally.selection_hits
    lower |= (hits == tally.selection_hits) & (p_true < tally.selection_p_true)
    lower &= mask
    tally.x[lower] = x_new[lower]
    tally.selection_hits[lower] = hits[lower]
    tally.selection_p_true[lower] = p_true[lower]
    for i in torch.nonzero(lower).flatten().tolist():
        tally.source[i] = source if isinstance(source, str) else source[i]
    return int(lower.sum())
