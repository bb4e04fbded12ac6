"""Figure 1: successful attacks. For the first ``k`` images each attack breaks: the clean image, the adversarial
image, the perturbation amplified to the full range, with the true and predicted classes and their probabilities.

Which images count as broken is each attack's own verdict (:mod:`eee_zoo.viz.attack_runs`); the probabilities shown
are the deployed stochastic model's, averaged over ``draws`` seeded draws, with the share of draws it gets wrong; a
model whose stack draws nothing (a single-resolution baseline: ``model.is_random`` False) is shown on its one pass,
since every draw would repeat it.
"""

from __future__ import annotations

import dataclasses
import textwrap
from typing import Any

import torch
import torch.nn as nn
from matplotlib.figure import Figure

from .._percent import percent_text
from .attack_runs import AttackRun
from .classes import class_names
from .predictions import draw_logits
from .render import eps_text, image_array, new_figure, perturbation_array

__all__ = ["Example", "SuccessfulAttacks", "successful_attacks", "successful_attacks_figure"]

CELL = 1.8  # inches per image panel
# an attack's bold title over its three image columns holds about 68 characters: wrap before it runs off the figure
TITLE_CHARS = 62
NO_PERTURBATION = "no perturbation: a later\nrandom draw was wrong"


@dataclasses.dataclass
class Example:
    """One broken image: what the deployed model says before and after the attack."""

    index: int  # position in the first n test images
    label: int
    clean_pred: int
    clean_p_pred: float
    clean_p_true: float
    adv_pred: int
    adv_p_pred: float
    adv_p_true: float
    adv_wrong_draws: int
    linf: float  # max |delta|
    l2: float  # ||delta||_2
    clean: torch.Tensor = dataclasses.field(repr=False)
    adversarial: torch.Tensor = dataclasses.field(repr=False)

    def record(self, names: tuple[str, ...]) -> dict[str, Any]:
        return {
            "index": self.index, "true": names[self.label],
            "clean": {"predicted": names[self.clean_pred], "p_predicted": self.clean_p_pred,
                      "p_true": self.clean_p_true},
            "adversarial": {"predicted": names[self.adv_pred], "p_predicted": self.adv_p_pred,
                            "p_true": self.adv_p_true, "wrong_draws": self.adv_wrong_draws},
            "linf": self.linf, "l2": self.l2,
        }  # fmt: skip


@dataclasses.dataclass
class SuccessfulAttacks:
    """The data of figure 1: per attack, its run and its first ``k`` broken images."""

    model_name: str
    dataset: str
    threat_model: str
    k: int
    draws: int
    seed: int
    runs: list[AttackRun]
    examples: dict[str, list[Example]]  # run name -> examples
    random: bool = True  # False: the model's stack draws nothing, shown on its one pass

    def record(self) -> dict[str, Any]:
        names = class_names(self.dataset)
        return {
            "figure": "successful_attacks", "model": self.model_name, "dataset": self.dataset,
            "threat_model": self.threat_model, "k": self.k,
            "probabilities": probabilities_text(self.draws, self.random, self.seed),
            "attacks": [
                {**run.record(), "broken": int(run.broken.sum()),
                 "examples": [e.record(names) for e in self.examples[run.name]]}
                for run in self.runs
            ],
        }  # fmt: skip


def successful_attacks(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    runs: list[AttackRun],
    *,
    dataset: str,
    threat_model: str = "Linf",
    k: int = 4,
    draws: int = 20,
    seed: int = 0,
    model_name: str = "",
) -> SuccessfulAttacks:
    """The first ``k`` images each run broke, judged by the deployed model on ``draws`` seeded draws (one pass for a
    model whose stack draws nothing: ``model.is_random`` False)."""
    device = next(model.parameters()).device
    random = bool(getattr(model, "is_random", True))
    if not random:  # every draw would repeat the same function
        draws = 1
    examples: dict[str, list[Example]] = {}
    for run in runs:
        idx = torch.nonzero(run.broken).flatten()[:k]
        chosen = []
        if len(idx) and run.x_adv is None:
            raise RuntimeError(
                f"the {run.name} run's kept examples are not stored (its attacks were resumed from counts only); "
                "run again with fresh=True (--fresh) to attack anew"
            )
        if len(idx):
            xc, xa, yc = x[idx], run.x_adv[idx], y[idx]
            clean = draw_logits(model, xc.to(device), draws, seed)
            adv = draw_logits(model, xa.to(device), draws, seed)
            pc, pa = clean.mean_probabilities(), adv.mean_probabilities()
            wrong = draws - adv.hits(yc)
            for j, i in enumerate(idx.tolist()):
                label = int(yc[j])
                chosen.append(Example(
                    index=i, label=label, clean_pred=int(pc[j].argmax()), clean_p_pred=float(pc[j].max()),
                    clean_p_true=float(pc[j, label]), adv_pred=int(pa[j].argmax()), adv_p_pred=float(pa[j].max()),
                    adv_p_true=float(pa[j, label]), adv_wrong_draws=int(wrong[j]),
                    linf=float((xa[j] - xc[j]).abs().max()), l2=float((xa[j] - xc[j]).norm()), clean=xc[j],
                    adversarial=xa[j],
                ))  # fmt: skip
        examples[run.name] = chosen
    return SuccessfulAttacks(model_name, dataset, threat_model, k, draws, seed, list(runs), examples, random)


def probabilities_text(draws: int, random: bool = True, seed: int | None = None) -> str:
    """Where the figure's probabilities come from: a mean over ``draws`` draws, or the one pass of a model whose
    stack draws nothing (``random`` False)."""
    if not random:
        return "the model's one pass (its stack draws nothing)"
    return f"the deployed model, mean over {draws} draws" + (f" (seed {seed})" if seed is not None else "")


def successful_attacks_figure(data: SuccessfulAttacks) -> Figure:
    """``k`` rows; per attack three columns (clean, adversarial, perturbation x gain): ``k x 3 x attacks`` panels."""
    names = class_names(data.dataset)
    titles = [textwrap.fill(run.title, TITLE_CHARS) for run in data.runs]
    # each panel's heading (its title and the robust-accuracy line) gets a quarter inch per line of the longest
    heading = 0.25 * (max((t.count("\n") for t in titles), default=0) + 2)
    figure = new_figure(CELL * 3 * len(data.runs) + 0.2, CELL * 1.35 * data.k + 1.0 + heading)
    budgets = ", ".join(sorted({eps_text(run.eps, data.threat_model) for run in data.runs}))
    figure.suptitle(
        f"{data.model_name} ({data.dataset}): successful attacks, {budgets}\n"
        f"probabilities: {probabilities_text(data.draws, data.random)}; perturbation amplified to the full range",
        fontsize=11,
        y=0.995,
    )
    top = 1 - 0.55 / figure.get_figheight()
    panels = figure.subfigures(1, len(data.runs), wspace=0.02, squeeze=False)[0]
    for panel, run, title in zip(panels, data.runs, titles):
        acc = run.robust
        panel.suptitle(
            f"{title}\nrobust accuracy {percent_text(acc['accuracy'])} (n={acc['n']}), "
            f"broken: {int(run.broken.sum())}",
            fontsize=10, fontweight="bold", y=top,
        )  # fmt: skip
        inch = 1 / figure.get_figheight()
        grid = panel.add_gridspec(data.k, 3, left=0.03, right=0.97, top=top - (heading + 0.25) * inch,
                                  bottom=0.1 * inch, hspace=0.55, wspace=0.08)  # fmt: skip
        examples = data.examples[run.name]
        for row in range(data.k):
            axes = [panel.add_subplot(grid[row, c]) for c in range(3)]
            for ax in axes:
                ax.set_xticks([])
                ax.set_yticks([])
            if row >= len(examples):
                for ax in axes:
                    ax.axis("off")
                text = "no further image broken" if examples else "no image broken"
                axes[1].text(0.5, 0.5, text, ha="center", va="center", fontsize=9,
                             transform=axes[1].transAxes)  # fmt: skip
                continue
            e = examples[row]
            true = names[e.label]
            axes[0].imshow(image_array(e.clean), interpolation="nearest")
            axes[0].set_title(
                f"#{e.index} true: {true}\npred: {names[e.clean_pred]} {e.clean_p_pred:.2f}",
                fontsize=8.5, color="black" if e.clean_pred == e.label else "firebrick",
            )  # fmt: skip
            axes[1].imshow(image_array(e.adversarial), interpolation="nearest")
            axes[1].set_title(
                f"adv pred: {names[e.adv_pred]} {e.adv_p_pred:.2f}\np(true) {e.adv_p_true:.2f}"
                + (f", wrong {e.adv_wrong_draws}/{data.draws}" if data.random else ""),
                fontsize=8.5, color="firebrick" if e.adv_pred != e.label else "black",
            )  # fmt: skip
            picture, gain = perturbation_array(e.adversarial - e.clean)
            axes[2].imshow(picture, interpolation="nearest")
            if e.linf == 0:
                # right on the attack's clean check, wrong on a later draw of the unchanged image: a stochastic
                # model's own randomness, which AutoAttack rand counts as broken
                axes[2].set_title(NO_PERTURBATION, fontsize=8.5)
                continue
            size = f"{e.linf * 255:.1f}/255" if data.threat_model == "Linf" else f"{e.l2:.2f} (L2)"
            axes[2].set_title(f"perturbation x{gain:.0f}\nmax |d| {size}", fontsize=8.5)
    return figure
