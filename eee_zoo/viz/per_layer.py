"""Figure 3: per-layer robustness. The accuracy of every predictor (each head and the backbone's classifier) and of
the aggregate, on clean images and under APGD-CE crafted against (a) the full model (the deployed aggregator) and
(b) each predictor itself: the paper's figure on intermediate layers.

The attacks are :class:`eee_zoo.adaptive.Attack` runs (``surrogate="deployed"`` and ``"predictors"``) through
:class:`eee_zoo.adaptive.surrogates.Surrogate`; each image keeps the attack's own choice, its last iterate the
attacked function misclassified, else its highest-loss iterate (AutoAttack's rule). Every accuracy is the deployed
stochastic model's (each predictor read from the same draws), per draw over ``eval_draws`` seeded draws.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import numpy as np
import torch
import torch.nn as nn
from matplotlib.figure import Figure

from .._percent import floor_percent
from .._progress import Progress, ProgressOutput
from ..adaptive import Attack
from ..adaptive.surrogates import Surrogate
from ..evaluation.seeds import preserve_model_seeds
from .predictions import draw_logits
from .render import eps_text, new_figure
from .stats import per_draw_accuracy

__all__ = ["CONDITIONS", "PerLayerSettings", "PerLayer", "per_layer_figure", "per_layer_robustness"]

CONDITIONS = {
    "clean": "clean",
    "full": "attack vs the full model",
    "own": "attack vs this predictor",
}
COLOURS = {"clean": "#4c72b0", "full": "#dd8452", "own": "#c44e52"}


@dataclasses.dataclass(frozen=True)
class PerLayerSettings:
    n_iter: int = 100  # APGD iterations per attack
    draws: int = 0  # EOT draws of the attacks (0: the deterministic mode)
    eval_draws: int = 10  # draws of the deployed model that judge every accuracy


@dataclasses.dataclass
class PerLayer:
    """Accuracy records ``[predictor or "aggregate"][condition]`` (see :mod:`eee_zoo.viz.stats`); the aggregate has no
    ``"own"`` entry (its own attack is the full model's)."""

    model_name: str
    dataset: str
    threat_model: str
    eps: float
    seed: int
    settings: PerLayerSettings
    aggregator: str
    predictors: list[str]
    accuracy: dict[str, dict[str, dict[str, Any]]]

    def record(self) -> dict[str, Any]:
        return {
            "figure": "per_layer", "model": self.model_name, "dataset": self.dataset,
            "threat_model": self.threat_model, "eps": self.eps, "eps_255": round(self.eps * 255, 6),
            "seed": self.seed, "settings": dataclasses.asdict(self.settings), "aggregator": self.aggregator,
            "conditions": CONDITIONS, "predictors": self.predictors, "accuracy": self.accuracy,
        }  # fmt: skip

    @classmethod
    def from_record(cls, record: dict[str, Any], predictors: list[str] | None = None) -> PerLayer:
        """The data of a :meth:`record` (a figure's JSON), to draw it again. ``predictors``: their order (the model's
        ``predictor_names``) for a record that does not hold it (JSON files are written with sorted keys); by default
        the self-ensemble's: the taps in natural order, then the backbone's classifier."""
        accuracy = record["accuracy"]
        found = [p for p in accuracy if p != "aggregate"]
        order = predictors or record.get("predictors") or sorted(found, key=_tap_order)
        if sorted(order) != sorted(p for p in accuracy if p != "aggregate"):
            raise ValueError(f"predictors {order} are not those of the record, {sorted(accuracy)}")
        return cls(record["model"], record["dataset"], record["threat_model"], record["eps"], record["seed"],
                   PerLayerSettings(**record["settings"]), record["aggregator"], list(order), accuracy)  # fmt: skip


def _tap_order(name: str) -> tuple[bool, list[Any]]:
    """Sort key: ``block2`` before ``block10``, ``backbone`` (the backbone's classifier) last."""
    return name == "backbone", [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def _choose(model: nn.Module, head: str | int, draws: int, proposals: dict[str, torch.Tensor], prefix: str,
            y: torch.Tensor, seed: int) -> torch.Tensor:  # fmt: skip
    """Per image: the run's last misclassified iterate if the attacked function is wrong there, else its highest-loss
    iterate (``prefix``: the run's label, e.g. ``"block1/r0/"``)."""
    best, last = proposals[f"{prefix}best-loss"], proposals[f"{prefix}last-misclassified"]
    model.manual_seed(seed)
    with torch.no_grad():
        fooled = Surrogate(model, head=head, draws=draws)(last).argmax(dim=-1) != y
    return torch.where(fooled.view(-1, 1, 1, 1), last, best)


def per_layer_robustness(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eps: float,
    threat_model: str = "Linf",
    dataset: str = "cifar10",
    seed: int = 0,
    settings: PerLayerSettings = PerLayerSettings(),
    model_name: str = "",
    progress: ProgressOutput = False,
) -> PerLayer:
    """Accuracies of every predictor and the aggregate: clean, vs the full model, vs each predictor itself.
    ``progress``: APGD iterations as they run (see :class:`eee_zoo._progress.Progress`)."""
    s = settings
    device = next(model.parameters()).device
    x, y = x.to(device), y.to(device)
    names = list(model.predictor_names)
    full = Attack("apgd-ce-full", surrogate="deployed", draws=s.draws, n_iter=s.n_iter)
    own = Attack("apgd-ce-own", surrogate="predictors", draws=s.draws, n_iter=s.n_iter)
    runs = 1 + own.runs_per_image(len(names))
    with preserve_model_seeds(model), Progress("per-layer", runs * s.n_iter, output=progress, unit="it") as bar:

        def step(what: str) -> Any:
            return lambda _: bar.update(1, text=f"APGD-CE against {what}")

        proposals = dict(full.proposals(model, x, y, eps=eps, norm=threat_model, seed=seed,
                                        on_iteration=step("the full model")))  # fmt: skip
        x_full = _choose(model, "deployed", s.draws, proposals, "r0/", y, seed)
        proposals = dict(own.proposals(model, x, y, eps=eps, norm=threat_model, seed=seed,
                                       on_iteration=step("each predictor itself")))  # fmt: skip
        x_own = [_choose(model, p, s.draws, proposals, f"{name}/r0/", y, seed) for p, name in enumerate(names)]
        bar.update(text=f"judging on {s.eval_draws} draws")
        judged = {c: draw_logits(model, xc, s.eval_draws, seed) for c, xc in (("clean", x), ("full", x_full))}
        own_judged = [draw_logits(model, xp, s.eval_draws, seed) for xp in x_own]
    y_cpu = y.cpu()
    accuracy: dict[str, dict[str, dict[str, Any]]] = {}
    for p, name in enumerate(names):
        accuracy[name] = {
            "clean": per_draw_accuracy(judged["clean"].predictor_hits(y_cpu)[:, p], s.eval_draws),
            "full": per_draw_accuracy(judged["full"].predictor_hits(y_cpu)[:, p], s.eval_draws),
            "own": per_draw_accuracy(own_judged[p].predictor_hits(y_cpu)[:, p], s.eval_draws),
        }
    # the aggregate's own attack is the attack on the full model: it has no third entry
    accuracy["aggregate"] = {c: per_draw_accuracy(judged[c].hits(y_cpu), s.eval_draws) for c in ("clean", "full")}
    aggregator = f"{model.aggregator} k={model.k}" if model.aggregator == "crossmax" else model.aggregator
    return PerLayer(model_name, dataset, threat_model, float(eps), seed, s, aggregator, names, accuracy)


def per_layer_figure(data: PerLayer) -> Figure:
    """One panel: grouped bars (clean, vs the full model, vs the predictor itself) per predictor, and the first two
    for the aggregate (its own attack is the full model's), with 95 % intervals and the value above each bar."""
    rows = [*data.predictors, "aggregate"]
    labels = [*data.predictors, f"aggregate\n({data.aggregator})"]
    figure = new_figure(max(7.5, 1.55 * len(rows) + 2.0), 5.2)
    ax = figure.add_subplot(1, 1, 1)
    width = 0.26
    centres = np.arange(len(rows))
    n = data.accuracy[rows[0]]["clean"]["n"]
    for j, (condition, text) in enumerate(CONDITIONS.items()):
        present = [i for i, r in enumerate(rows) if condition in data.accuracy[r]]
        records = [data.accuracy[rows[i]][condition] for i in present]
        values = np.array([100 * r["accuracy"] for r in records])
        low = values - np.array([100 * r["interval"][0] for r in records])
        high = np.array([100 * r["interval"][1] for r in records]) - values
        bars = np.array([len(data.accuracy[rows[i]]) for i in present])  # 3, or 2 for the aggregate
        where = centres[present] + (j - (bars - 1) / 2) * width
        ax.bar(where, values, width, yerr=[low, high], capsize=3, color=COLOURS[condition], label=text,
               error_kw={"elinewidth": 0.8, "ecolor": "#333333"})  # fmt: skip
        for xpos, v, h in zip(where, values, high):
            ax.text(xpos, v + h + 1.0, f"{floor_percent(v / 100, 0):.0f}", ha="center", va="bottom", fontsize=8)
    ax.set_xticks(centres, labels)
    ax.set_ylabel("accuracy (%), per draw of the deployed model")
    ax.set_ylim(0, 112)
    ax.set_yticks(range(0, 101, 20))
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)
    ax.legend(loc="upper left", ncols=3, fontsize=9, frameon=False)
    s = data.settings
    mode = "deterministic mode" if s.draws == 0 else f"EOT {s.draws} draws"
    ax.set_title(
        f"{data.model_name} ({data.dataset}): per-layer robustness, {eps_text(data.eps, data.threat_model)}, n = {n}\n"
        f"APGD-CE {s.n_iter} iterations ({mode}); accuracies over {s.eval_draws} draws, 95 % Clopper-Pearson bars",
        fontsize=10.5,
    )
    figure.tight_layout()
    return figure
