"""Figure 2: class maximisation. From uniform grey plus small seeded noise, signed gradient steps in pixel space
towards each target class through the model; the grid of every class (``starts`` images each) and one class
enlarged, for the self-ensemble and, when given, a single-resolution baseline beside it.

Through a self-ensemble the steps follow the deployed aggregator with expectation over ``draws`` draws of the
stochastic stack (:class:`eee_zoo.adaptive.surrogates.Surrogate`; ``draws=0``: the deterministic mode); any other
model is followed as it is. The loss is the target's log-probability; images stay in [0, 1], with no other bound.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import torch
import torch.nn as nn
from matplotlib.figure import Figure

from .._percent import floor_percent
from .._progress import Progress, ProgressOutput
from ..adaptive.surrogates import Surrogate, stochastic_mode
from ..evaluation.seeds import preserve_model_seeds
from ..models import SelfEnsemble
from .classes import class_names
from .predictions import draw_logits
from .render import new_figure

__all__ = ["ClassMaxSettings", "ClassMaximisation", "class_maximisation_figure", "maximise_classes"]


@dataclasses.dataclass(frozen=True)
class ClassMaxSettings:
    """How the images are made (recorded in the figure's JSON)."""

    starts: int = 4  # images per class, each from its own noise
    steps: int = 100
    step_size: float = 2 / 255  # each step moves every pixel by this much (signed gradient)
    noise: float = 8 / 255  # start: 0.5 + U[-noise, noise] per pixel
    head: str | int = "deployed"  # self-ensembles: deployed | mean | a predictor's index
    draws: int = 4  # self-ensembles: EOT draws per step (0: deterministic mode)
    judge_draws: int = 20  # draws of the deployed model that judge the result
    batch: int = 200  # images per optimisation batch


@dataclasses.dataclass
class ClassMaximisation:
    """The images ``[classes, starts, C, H, W]`` of one model with what the model says about them."""

    model_name: str
    dataset: str
    seed: int
    settings: ClassMaxSettings
    classes: list[int]
    judge_draws: int  # draws of the deployed model that judged the images (1: a deterministic model)
    images: torch.Tensor
    logit_start: torch.Tensor  # [classes, starts]: the target's logit at the start (deterministic mode)
    logit_end: torch.Tensor  # [classes, starts]: ... and at the end
    p_target: torch.Tensor  # [classes, starts]: the target's probability at the end (deployed, mean over draws)
    hits: torch.Tensor  # [classes, starts]: draws on which the deployed model predicts the target

    def record(self) -> dict[str, Any]:
        names = class_names(self.dataset)
        per_class = [
            {"class": names[c], "p_target": self.p_target[i].tolist(), "logit_start": self.logit_start[i].tolist(),
             "logit_end": self.logit_end[i].tolist(), "hits": self.hits[i].tolist()}
            for i, c in enumerate(self.classes)
        ]  # fmt: skip
        return {
            "model": self.model_name, "seed": self.seed, "settings": dataclasses.asdict(self.settings),
            "images": int(self.hits.numel()), "judge_draws": self.judge_draws,
            "mean_p_target": float(self.p_target.mean()),
            "target_top1_per_draw": float(self.hits.sum()) / (self.hits.numel() * self.judge_draws),
            "logit_increased": int((self.logit_end > self.logit_start).sum()),
            "per_class": per_class,
        }  # fmt: skip


def _target_logits(model: nn.Module, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        if isinstance(model, SelfEnsemble):
            with stochastic_mode(model, False):
                z = model(x)
        else:
            z = model(x)
    return z.gather(1, target.view(-1, 1)).squeeze(1).float().cpu()


def maximise_classes(
    model: nn.Module,
    dataset: str,
    *,
    settings: ClassMaxSettings = ClassMaxSettings(),
    seed: int = 0,
    classes: list[int] | None = None,
    model_name: str = "",
    progress: ProgressOutput = False,
) -> ClassMaximisation:
    """Images of every class in ``classes`` (default all) maximising the class through ``model`` (see the module);
    ``progress``: the gradient steps as they run (see :class:`eee_zoo._progress.Progress`)."""
    names = class_names(dataset)
    classes = list(range(len(names))) if classes is None else list(classes)
    s = settings
    device = next(model.parameters()).device
    gen = torch.Generator().manual_seed(seed)
    target = torch.tensor(classes).repeat_interleave(s.starts)
    start = 0.5 + s.noise * (2 * torch.rand(len(target), 3, 32, 32, generator=gen) - 1)
    ensemble = isinstance(model, SelfEnsemble)
    follow = Surrogate(model, head=s.head, draws=s.draws) if ensemble else model
    images = []
    batches = math.ceil(len(target) / s.batch)
    task = f"class-max{f' {model_name}' if model_name else ''}"
    with preserve_model_seeds(model), Progress(task, batches * s.steps, output=progress, unit="step") as bar:
        if ensemble:
            model.manual_seed(seed)
        for b, first in enumerate(range(0, len(target), s.batch)):
            x = start[first : first + s.batch].to(device)
            t = target[first : first + s.batch].to(device)
            bar.update(text=f"batch {b + 1}/{batches} ({len(t)} starts)")
            for _ in range(s.steps):
                bar.update(1)
                x.requires_grad_(True)
                with torch.enable_grad():
                    loss = follow(x).log_softmax(dim=-1).gather(1, t.view(-1, 1)).sum()
                    (grad,) = torch.autograd.grad(loss, [x])
                x = (x.detach() + s.step_size * grad.sign()).clamp(0, 1)
            images.append(x.detach())
    x_end = torch.cat(images)
    logit_start = _target_logits(model, start.to(device), target.to(device))
    logit_end = _target_logits(model, x_end, target.to(device))
    if ensemble:
        judged = draw_logits(model, x_end, s.judge_draws, seed)
        p_target = judged.mean_probabilities().gather(1, target.view(-1, 1)).squeeze(1)
        hits = judged.hits(target)
    else:
        with torch.no_grad():
            p = model(x_end).softmax(dim=-1).float().cpu()
        p_target = p.gather(1, target.view(-1, 1)).squeeze(1)
        hits = (p.argmax(dim=-1) == target).long()
    shape = (len(classes), s.starts)
    return ClassMaximisation(
        model_name=model_name, dataset=dataset, seed=seed, settings=s, classes=classes,
        judge_draws=s.judge_draws if ensemble else 1,
        images=x_end.cpu().view(*shape, *x_end.shape[1:]), logit_start=logit_start.view(shape),
        logit_end=logit_end.view(shape), p_target=p_target.view(shape), hits=hits.view(shape),
    )  # fmt: skip


def _mosaic(images: torch.Tensor, columns: int, label_px: int) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """Blocks of ``[K, S, 3, H, W]`` images (one block per class, S images each on a square-ish grid) on ``columns``
    block columns, with a white strip of ``label_px`` above each block; returns the array and each block's label
    anchor (top centre, in pixels)."""
    k, s, _, h, w = images.shape
    per_row = math.ceil(math.sqrt(s))
    rows_in_block = math.ceil(s / per_row)
    inner, outer = 1, 6
    block_w, block_h = per_row * (w + inner) - inner, rows_in_block * (h + inner) - inner + label_px
    block_rows = math.ceil(k / columns)
    canvas = np.ones((block_rows * (block_h + outer) - outer, columns * (block_w + outer) - outer, 3), np.float32)
    anchors = []
    for c in range(k):
        top, left = (c // columns) * (block_h + outer), (c % columns) * (block_w + outer)
        anchors.append((left + block_w / 2, top + label_px - 1))
        for j in range(s):
            y0 = top + label_px + (j // per_row) * (h + inner)
            x0 = left + (j % per_row) * (w + inner)
            canvas[y0 : y0 + h, x0 : x0 + w] = images[c, j].clamp(0, 1).permute(1, 2, 0).numpy()
    return canvas, anchors


def _summary(data: ClassMaximisation) -> str:
    per_draw = float(data.hits.sum()) / (data.hits.numel() * data.judge_draws)
    judged = f"{data.judge_draws} draws" if data.judge_draws > 1 else "one pass"
    return (
        f"mean p(target) {float(data.p_target.mean()):.2f}; predicted as the target on "
        f"{floor_percent(per_draw, 0):.0f}% of "
        f"{judged}; target logit up on {int((data.logit_end > data.logit_start).sum())}/{data.hits.numel()}"
    )


def class_maximisation_figure(
    model: ClassMaximisation,
    baseline: ClassMaximisation | None = None,
    *,
    enlarge: int = 0,
    note: str | None = None,
) -> Figure:
    """Per model (the self-ensemble, then the baseline if given): the grid of every class and class ``enlarge``
    (a label) enlarged, two panels per model. ``note`` is printed at the foot (e.g. why there is no baseline)."""
    rows = [model] if baseline is None else [model, baseline]
    names = class_names(model.dataset)
    many = len(model.classes) > 20
    columns, label_px, grid_w = (10, 9, 13.0) if many else (5, 12, 9.0)
    mosaic, _ = _mosaic(model.images, columns, label_px)
    row_h = max(grid_w * mosaic.shape[0] / mosaic.shape[1], 2.4) + 0.8
    title_h, note_h = 0.75, 0.35 if note else 0.05
    figure = new_figure(grid_w + 4.0, title_h + row_h * len(rows) + note_h)
    title, *panels, foot = figure.subfigures(len(rows) + 2, 1, height_ratios=[title_h, *[row_h] * len(rows), note_h])
    s = model.settings
    follow = f"EOT over {s.draws} draw{'s' * (s.draws != 1)}" if s.draws else "deterministic mode"
    title.suptitle(
        f"Class maximisation ({model.dataset}): from grey + U[-{s.noise * 255:g}, {s.noise * 255:g}]/255 noise, "
        f"{s.steps} signed-gradient steps of {s.step_size * 255:g}/255 on log p(target), seed {model.seed}\n"
        f"self-ensembles followed through head '{s.head}' ({follow}); judged by the deployed model over "
        f"{s.judge_draws} draws",
        fontsize=11,
        y=0.92,
    )
    for panel, data in zip(panels, rows):
        mosaic, anchors = _mosaic(data.images, columns, label_px)
        grid = panel.add_gridspec(1, 2, width_ratios=[grid_w, 3.6], left=0.01, right=0.99, top=1 - 0.5 / row_h,
                                  bottom=0.02, wspace=0.04)  # fmt: skip
        ax = panel.add_subplot(grid[0, 0])
        ax.imshow(mosaic, interpolation="nearest")
        for c, (x, y) in zip(data.classes, anchors):
            ax.text(x, y, names[c].replace("_", " "), ha="center", va="bottom", fontsize=6.5 if many else 9.5)
        ax.set_title(f"{data.model_name}: every class, {data.settings.starts} starts each\n{_summary(data)}",
                     fontsize=10)  # fmt: skip
        big = panel.add_subplot(grid[0, 1])
        index = data.classes.index(enlarge)
        big.imshow(_mosaic(data.images[index : index + 1], 1, 0)[0], interpolation="nearest")
        p = ", ".join(f"{v:.2f}" for v in data.p_target[index].tolist())
        big.set_title(f"{names[enlarge].replace('_', ' ')}, enlarged\np(target) = {p}", fontsize=10)
        for a in (ax, big):
            a.set_xticks([])
            a.set_yticks([])
    if note:
        foot.text(0.01, 0.3, note, fontsize=9, style="italic")
    return figure
