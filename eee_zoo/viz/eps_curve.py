"""Figure 4: robust accuracy against eps. Each attack (AutoAttack ``rand`` on the deployed model, ``standard`` on
the deterministic mode, the adaptive worst case) over a list of budgets on the same images, one curve each with
its 95 % intervals; the gap between the curves is the gradient-masking signature.

Each point is an :class:`~eee_zoo.viz.attack_runs.AttackRun` with its own figure: AutoAttack's counts (Clopper-
Pearson), the adaptive worst case's per-draw accuracy (Clopper-Pearson at the fractional count).
"""

from __future__ import annotations

import dataclasses
import textwrap
from collections.abc import Callable
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from .._percent import floor_percent
from ..adaptive.result import counted_as_autoattack, fractional_count_interval
from .attack_runs import AttackRun, deployed_autoattack
from .render import new_figure

__all__ = ["EpsCurves", "counted_point", "eps_curves", "eps_curve_figure"]

STYLES = {
    "autoattack-rand": {"color": "#4c72b0", "marker": "o"},
    "autoattack-standard-det": {"color": "#55a868", "marker": "s"},
    "adaptive": {"color": "#c44e52", "marker": "D"},
}
TITLES_SHORT = {"autoattack-rand": "AutoAttack rand", "autoattack-standard-det": "AutoAttack standard"}
LABEL_OFFSETS = {"autoattack-rand": (6, 5), "autoattack-standard-det": (6, -12), "adaptive": (-18, -12)}  # points


@dataclasses.dataclass
class EpsCurves:
    """Per attack name, its runs in increasing eps."""

    model_name: str
    dataset: str
    threat_model: str
    n: int
    seed: int
    curves: dict[str, list[AttackRun]]
    checks: dict[str, Any] = dataclasses.field(default_factory=dict)  # agreement with results files, per point

    def record(self) -> dict[str, Any]:
        return {
            "figure": "eps_curve", "model": self.model_name, "dataset": self.dataset,
            "threat_model": self.threat_model, "n": self.n, "seed": self.seed,
            "attacks": list(self.curves),  # the curves' order (JSON files are written with sorted keys)
            "curves": {
                name: [r.record() for r in runs] for name, runs in self.curves.items()
            },
            "results_file_checks": self.checks,
            "adaptive_above_autoattack": self.adaptive_above_autoattack(),
            "adaptive_counted_as_autoattack": self._counted_record(),
        }  # fmt: skip

    def _counted_record(self) -> dict[str, Any] | None:
        counted = self.counted_curve()
        if counted is None:
            return None
        name, points = counted
        return {"autoattack": name, "points": [
            {"eps": e, "eps_255": round(e * 255, 6), "accuracy": a, "draws": k, "n": self.n,
             "interval": list(fractional_count_interval(a * self.n, self.n)),
             "interval_method": "clopper-pearson 95% at the fractional count"}
            for e, a, k in points
        ]}  # fmt: skip

    def adaptive_above_autoattack(self) -> list[str]:
        """Where the adaptive worst case ends above AutoAttack on the deployed model at the same eps (``rand``; for a
        model whose stack draws nothing, ``standard``), compared like with like: counted as AutoAttack counts (right
        on all of its single-draw checks, :func:`counted_point`) against AutoAttack's own figure, and per
        draw against AutoAttack's examples re-scored per draw (the adaptive run's column, where recorded), e.g.
        ``"2/255: adaptive 65.65 % on 3 draws > autoattack-rand 62.00 %"``. A worst case above an attack it could
        have proposed is a defect of the evaluation, shown, not hidden. (``standard`` on a random model's
        deterministic mode attacks another function: not compared.) Where the record has AutoAttack's examples'
        fresh hits, the first kind also says what those examples give counted the same way on the same fresh
        draws: a worst case below that, above AutoAttack's own figure, is above one realisation of AutoAttack's
        draws, not above its examples."""
        found = []
        for name, r, worst in self._deployed_pairs():
            eps = self._eps_text(r.eps)
            counted = counted_point(worst, r)
            if counted is not None and counted[0] > r.robust["accuracy"]:
                own = counted_point(worst, r, column=name)
                note = "" if own is None else f" (its examples counted so on these fresh draws: {_pct(own[0])})"
                found.append(f"{eps}: adaptive {_pct(counted[0])} on {_draws(counted[1])} > {name} "
                             f"{_pct(r.robust['accuracy'])}{note}")  # fmt: skip
            column = worst.settings.get("per_attack", {}).get(name)
            if column is not None and worst.robust["accuracy"] > column["accuracy"]:
                found.append(f"{eps}: adaptive {_pct(worst.robust['accuracy'])} per draw > {name}'s examples "
                             f"{_pct(column['accuracy'])} per draw")  # fmt: skip
        return found

    def counted_curve(self) -> tuple[str, list[tuple[float, float, int]]] | None:
        """The adaptive curve counted as the deployed model's AutoAttack counts: ``(AutoAttack run name, [(eps,
        accuracy, draws), ...])``, or None where that says nothing new (no such run, or one draw: the per-draw
        curve itself)."""
        pairs = self._deployed_pairs()
        points = [(r.eps, *c) for _, r, worst in pairs if (c := counted_point(worst, r)) is not None]
        return (pairs[0][0], points) if points and any(k > 1 for _, _, k in points) else None

    def _deployed_pairs(self) -> list[tuple[str, AttackRun, AttackRun]]:
        """``(name, AutoAttack run, adaptive run)`` at each eps both have, for AutoAttack on the deployed model
        (:func:`~eee_zoo.viz.attack_runs.deployed_autoattack`)."""
        adaptive = {r.eps: r for r in self.curves.get("adaptive", [])}
        if not adaptive:
            return []
        name = deployed_autoattack(next(iter(adaptive.values())).settings.get("stochastic", True))
        return [(name, r, adaptive[r.eps]) for r in self.curves.get(name, []) if r.eps in adaptive]

    def _eps_text(self, eps: float) -> str:
        return f"{eps * 255:g}/255" if self.threat_model == "Linf" else f"{eps:g}"

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> EpsCurves:
        """The data of a :meth:`record` (a figure's JSON), to draw it again."""
        known = list(STYLES)  # a record without "attacks": the usual order
        rank = {name: i for i, name in enumerate(known)}
        order = record.get("attacks") or sorted(record["curves"], key=lambda a: (rank.get(a, len(known)), a))
        curves = {name: [AttackRun.from_record(r) for r in record["curves"][name]] for name in order}
        return cls(record["model"], record["dataset"], record["threat_model"], record["n"], record["seed"], curves,
                   dict(record.get("results_file_checks") or {}))  # fmt: skip


def eps_curves(
    run: Callable[[str, float], AttackRun],
    attacks: list[str],
    eps_list: list[float],
    *,
    model_name: str,
    dataset: str,
    threat_model: str,
    n: int,
    seed: int,
) -> EpsCurves:
    """``run(attack, eps)`` for every attack and eps (in increasing eps), gathered into curves."""
    curves = {a: [run(a, e) for e in sorted(eps_list)] for a in attacks}
    return EpsCurves(model_name, dataset, threat_model, n, seed, curves)


def counted_point(adaptive: AttackRun, autoattack: AttackRun, column: str | None = None) -> tuple[float, int] | None:
    """The adaptive point (``column``: one attack's column of it instead) counted as the AutoAttack run counts,
    and the draws that takes (:func:`~eee_zoo.adaptive.result.counted_as_autoattack`); None for a record without
    those per-image fresh hits."""
    settings = adaptive.settings
    if column is None:
        hits = settings.get("fingerprint", {}).get("robust.fresh_hits")
    else:
        hits = settings.get("per_attack_fresh_hits", {}).get(column)
    draws = settings.get("fresh_draws")
    if not hits or not draws:
        return None
    share, k = counted_as_autoattack(
        hits, draws, autoattack.settings.get("attacks", []), settings.get("stochastic", True)
    )
    return float(share), k


def _draws(k: int) -> str:
    return f"{k} draw{'s' if k > 1 else ''}"


def _is_cut(run: AttackRun) -> bool:
    """Whether AutoAttack ran with cut settings: itself, or as the adaptive suite's proposals."""
    if run.name == "adaptive":
        return bool(run.settings.get("autoattack_proposals") and run.settings.get("autoattack_overrides"))
    return bool(run.settings.get("cut"))


def eps_curve_figure(data: EpsCurves) -> Figure:
    """One panel: robust accuracy (%) against eps (log scale, in /255 for Linf) per attack, with shaded 95 %
    intervals, and the clean accuracy of the first attack as a dashed line."""
    figure = new_figure(8.0, 5.6)
    ax = figure.add_subplot(1, 1, 1)
    linf = data.threat_model == "Linf"
    scale = 255 if linf else 1
    for name, runs in data.curves.items():
        xs = np.array([r.eps * scale for r in runs])
        ys = np.array([100 * r.robust["accuracy"] for r in runs])
        lo = np.array([100 * r.robust["interval"][0] for r in runs])
        hi = np.array([100 * r.robust["interval"][1] for r in runs])
        style = STYLES.get(name, {"color": "#8172b3", "marker": "^"})
        cut = any(_is_cut(r) for r in runs)
        label = runs[0].title + (" (cut settings)" if cut else "")
        ax.plot(xs, ys, label=label, linewidth=1.8, markersize=6, **style)
        ax.fill_between(xs, lo, hi, color=style["color"], alpha=0.15, linewidth=0)
        dx, dy = LABEL_OFFSETS.get(name, (6, 5))
        for x, y in zip(xs, ys):
            offset = (dx, abs(dy)) if y < 8 else (dx, dy)  # near the axis: above the point, not on the tick labels
            ax.annotate(_whole(y), (x, y), textcoords="offset points", xytext=offset, fontsize=8,
                        color=style["color"])  # fmt: skip
    counted = data.counted_curve()
    if counted is not None:  # like with like: AutoAttack's own figure counts images right on all of its checks
        name, points = counted
        xs = np.array([e * scale for e, _, _ in points])
        ys = np.array([100 * a for _, a, _ in points])
        k = max(k for _, _, k in points)
        ax.plot(
            xs,
            ys,
            linestyle="--",
            linewidth=1.4,
            color=STYLES["adaptive"]["color"],
            marker="d",
            markersize=4,
            label=f"adaptive worst case counted as {TITLES_SHORT.get(name, name)} counts (right on all {k} draws)",
        )
        for x, y in zip(xs, ys):
            ax.annotate(_whole(y), (x, y), textcoords="offset points", xytext=(-18, 5), fontsize=7,
                        color=STYLES["adaptive"]["color"])  # fmt: skip
    first = next(iter(data.curves.values()))[0]
    clean = 100 * first.clean["accuracy"]
    label = f"clean accuracy {clean:.0f} % (clean pass of {first.title})"
    ax.axhline(clean, color="#555555", linestyle="--", linewidth=1, label=label)
    ax.set_xscale("log", base=2)
    ticks = sorted({r.eps * scale for runs in data.curves.values() for r in runs})
    ax.set_xticks(ticks, [f"{t:g}/255" if linf else f"{t:g}" for t in ticks])
    ax.minorticks_off()
    ax.set_xlabel(f"{data.threat_model} eps")
    ax.set_ylabel("robust accuracy (%)")
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper right", fontsize=9)
    ax.set_title(  # the name on a line of its own: long names overflowed the figure
        f"{data.model_name} ({data.dataset})\nrobust accuracy against eps, first {data.n} test images, seed "
        f"{data.seed}\nAutoAttack: images right on each of its single-draw checks (its own verdict)\nadaptive: per "
        "draw over fresh draws (dashed: counted as AutoAttack counts); 95 % bands",
        fontsize=10,
    )
    above = data.adaptive_above_autoattack()
    if above:  # in the picture itself, where nobody can miss it
        text = "adaptive worst case above AutoAttack (a defect of this evaluation): " + "; ".join(above)
        text = textwrap.fill(text, 150)  # matplotlib's own wrap let the first line touch the figure's edges
        figure.text(0.5, 0.01, text, ha="center", va="bottom", fontsize=7, color="#b00000")
        figure.tight_layout(rect=(0, 0.05 + 0.025 * text.count("\n"), 1, 1))
    else:
        figure.tight_layout()
    return figure


def _pct(fraction: float) -> str:
    return f"{floor_percent(fraction):.2f} %"


def _whole(percent: float) -> str:
    """A point's label: whole percent, floored (9.8 reads 9, never 10)."""
    return f"{floor_percent(percent / 100, 0):.0f}"
