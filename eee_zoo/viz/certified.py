"""Certified accuracy against radius: a randomized-smoothing result (:func:`eee_zoo.certify`) as a curve, with the
attacks' empirical figures beside it.

Certified accuracy at L2 radius ``r`` is the share of images the smoothed classifier gets right *and* certifies at a
radius of at least ``r`` (Cohen et al.'s ``analyze``; abstentions count wrong); it is a lower bound on that
classifier's accuracy against every attack within ``r``. An attack's robust accuracy is an upper bound, for the
classifier it attacked (the deployed model, not the smoothed one). An L2 ball of radius ``r`` holds the L-inf ball of
radius ``r / sqrt(d)``, so the same curve also certifies those L-inf radii. Every accuracy carries its 95 %
Clopper-Pearson interval over images (:func:`eee_zoo.evaluation.intervals.clopper_pearson_interval`); it says nothing
about ``alpha``, each certificate's own failure probability.
"""

from __future__ import annotations

import dataclasses
import math
import textwrap
from collections.abc import Iterable
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from .._percent import floor_percent
from ..evaluation.intervals import clopper_pearson_interval
from .render import new_figure

__all__ = ["CertifiedCurve", "certified_curve", "certified_curve_figure"]

FIGURE = "certified_curve"  # the record's "figure" (what redraw dispatches on)
CERTIFIED_COLOR = "#4c72b0"
EMPIRICAL_STYLES = (  # one per empirical point, in order
    {"color": "#c44e52", "marker": "D"},
    {"color": "#55a868", "marker": "s"},
    {"color": "#8172b3", "marker": "^"},
    {"color": "#ccb974", "marker": "v"},
    {"color": "#64b5cd", "marker": "P"},
)
EMPIRICAL_KEYS = ("label", "norm", "eps", "accuracy", "interval", "n_examples", "results_file")
_RESULT_KEYS = (
    "model_name", "dataset", "method", "sigmas", "n", "n0", "alpha", "seed", "n_examples", "input_dim",
    "largest_radius", "radius", "correct", "certified",
)  # fmt: skip
_MARGIN = 1.05  # the grid ends this factor beyond the largest radius (certified or certifiable)
_POINT_MARGIN = 1.15  # the axes end this factor beyond the largest attack eps (room for its value)


@dataclasses.dataclass
class CertifiedCurve:
    """Certified accuracy of one smoothing result on a grid of L2 radii, its reported points, and attack points."""

    model_name: str
    dataset: str
    method: str  # "cohen" or "multiscale"
    sigmas: list[float]
    n: int  # estimation draws per scale
    n0: int  # selection draws per scale
    alpha: float  # per-image failure probability of a certificate
    seed: int
    n_examples: int  # images
    input_dim: int  # d: an L2 radius r certifies the L-inf radius r / sqrt(d)
    largest_radius: float  # the most n draws can certify (all of them right)
    results_file: str | None
    radii: list[float]  # the grid of L2 radii, increasing, from 0
    correct: list[int]  # per radius: images right and certified at >= radius
    accuracy: list[float]  # correct / n_examples
    interval: list[list[float]]  # per radius: Clopper-Pearson 95 % over images
    reported: list[dict[str, Any]]  # the result's own ``certified`` list: radius, radius_linf, correct, accuracy, ...
    empirical: list[dict[str, Any]] = dataclasses.field(default_factory=list)  # see EMPIRICAL_KEYS
    abstained: int | None = None

    def record(self) -> dict[str, Any]:
        """The JSON written beside the figure; :meth:`from_record` reads it back."""
        return {
            "figure": FIGURE, "model": self.model_name, "dataset": self.dataset, "method": self.method,
            "sigmas": list(self.sigmas), "n": self.n, "n0": self.n0, "alpha": self.alpha, "seed": self.seed,
            "n_examples": self.n_examples, "input_dim": self.input_dim, "largest_radius": self.largest_radius,
            "results_file": self.results_file, "abstained": self.abstained,
            "curve": {
                "radii": list(self.radii), "correct": list(self.correct), "accuracy": list(self.accuracy),
                "interval": [list(i) for i in self.interval], "interval_method": "clopper-pearson 95% over images",
                "definition": "share of images right and certified at an L2 radius >= r (abstentions wrong)",
            },
            "reported": [dict(p) for p in self.reported],
            "empirical": [dict(p) for p in self.empirical],
        }  # fmt: skip

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> CertifiedCurve:
        """The data of a :meth:`record` (a figure's JSON, extra keys such as ``command`` ignored), to draw it again."""
        curve = record["curve"]
        return cls(
            model_name=record["model"], dataset=record["dataset"], method=record["method"],
            sigmas=[float(s) for s in record["sigmas"]], n=int(record["n"]), n0=int(record["n0"]),
            alpha=float(record["alpha"]), seed=int(record["seed"]), n_examples=int(record["n_examples"]),
            input_dim=int(record["input_dim"]), largest_radius=float(record["largest_radius"]),
            results_file=record.get("results_file"), radii=[float(r) for r in curve["radii"]],
            correct=[int(k) for k in curve["correct"]], accuracy=[float(a) for a in curve["accuracy"]],
            interval=[[float(lo), float(hi)] for lo, hi in curve["interval"]],
            reported=[dict(p) for p in record.get("reported") or []],
            empirical=[dict(p) for p in record.get("empirical") or []], abstained=record.get("abstained"),
        )  # fmt: skip


def certified_curve(
    result: Any,
    *,
    results_file: str | None = None,
    empirical: Iterable[dict[str, Any]] = (),
    grid_points: int = 101,
) -> CertifiedCurve:
    """The certified-accuracy curve of ``result`` (a :class:`~eee_zoo.certify.CertifyResult` or the dict of a
    certified results file) on ``grid_points`` evenly spaced L2 radii from 0 to a little beyond the largest radius
    certified or certifiable, plus the result's reported radii. ``empirical``: attack points to draw beside, each
    ``{label, norm ("Linf" or "L2"), eps, accuracy (a share), interval, n_examples, results_file}``.
    Raises ``ValueError`` (one line) for a result it cannot read."""
    data = result.to_dict() if hasattr(result, "to_dict") else result
    if not isinstance(data, dict):
        raise ValueError(f"expected a certification result or its dict, got {type(result).__name__}")
    missing = [k for k in _RESULT_KEYS if k not in data]
    if missing:
        raise ValueError(f"not a certification result: missing {missing}")
    if isinstance(grid_points, bool) or not isinstance(grid_points, int) or grid_points < 2:
        raise ValueError(f"grid_points must be an integer >= 2, got {grid_points!r}")
    n_images = int(data["n_examples"])
    radius = [float(r) for r in data["radius"]]
    correct = [bool(c) for c in data["correct"]]
    if n_images < 1 or len(radius) != n_images or len(correct) != n_images:
        raise ValueError(
            f"not a certification result: {len(radius)} radii and {len(correct)} correct flags for {n_images} images"
        )
    largest = float(data["largest_radius"])
    reported = [_reported(c) for c in data["certified"]]
    top = max([largest, *radius, *(p["radius"] for p in reported)])
    end = _MARGIN * top if top > 0 else 1.0
    grid = sorted({*np.linspace(0.0, end, grid_points).tolist(), *(p["radius"] for p in reported)})
    certified = sorted(r for r, ok in zip(radius, correct) if ok)
    counts = [len(certified) - int(np.searchsorted(certified, r, side="left")) for r in grid]  # right, radius >= r
    intervals: dict[int, tuple[float, float]] = {}
    for k in counts:
        if k not in intervals:
            intervals[k] = clopper_pearson_interval(k, n_images)
    predictions = data.get("predictions")  # -1: no answer (abstained, or a cascade's ambiguous/conflict)
    abstained = sum(int(p) < 0 for p in predictions) if isinstance(predictions, list) else None
    return CertifiedCurve(
        model_name=str(data["model_name"]), dataset=str(data["dataset"]), method=str(data["method"]),
        sigmas=[float(s) for s in data["sigmas"]], n=int(data["n"]), n0=int(data["n0"]), alpha=float(data["alpha"]),
        seed=int(data["seed"]), n_examples=n_images, input_dim=int(data["input_dim"]), largest_radius=largest,
        results_file=None if results_file is None else str(results_file), radii=[float(r) for r in grid],
        correct=counts, accuracy=[k / n_images for k in counts], interval=[list(intervals[k]) for k in counts],
        reported=reported, empirical=[_empirical(p) for p in empirical], abstained=abstained,
    )  # fmt: skip


def _reported(point: Any) -> dict[str, Any]:
    p = dataclasses.asdict(point) if dataclasses.is_dataclass(point) else dict(point)
    return {
        "radius": float(p["radius"]), "radius_linf": float(p["radius_linf"]), "correct": int(p["correct"]),
        "n_examples": int(p["n_examples"]), "accuracy": float(p["accuracy"]),
        "interval": [float(v) for v in p["interval"]],
    }  # fmt: skip


def _empirical(point: dict[str, Any]) -> dict[str, Any]:
    missing = [k for k in EMPIRICAL_KEYS if k not in point]
    if missing:
        raise ValueError(f"an empirical point needs {list(EMPIRICAL_KEYS)}; missing {missing}")
    if point["norm"] not in ("Linf", "L2"):
        raise ValueError(f"an empirical point's norm must be 'Linf' or 'L2', got {point['norm']!r}")
    out = dict(point)
    out.update(eps=float(point["eps"]), accuracy=float(point["accuracy"]),
               interval=[float(v) for v in point["interval"]])  # fmt: skip
    return out


def _sigma_text(data: CertifiedCurve) -> str:
    return ("sigma " if len(data.sigmas) == 1 else "sigmas ") + ", ".join(f"{s:g}" for s in data.sigmas)


def _floored(percent: float) -> str:
    """A figure's label, floored to 0.01 (never rounded up: 9.788 reads 9.78, not 9.8)."""
    return f"{floor_percent(percent / 100):.2f}"


def certified_curve_figure(data: CertifiedCurve) -> Figure:
    """Two panels. Left: certified accuracy (%) against the L2 radius, a step line with its shaded 95 % band, the
    result's reported radii marked and annotated, and the largest certifiable radius dotted. Right: the same curve
    against the L-inf radius it certifies (``r / sqrt(d)``, in /255), with the attacks' L-inf points (upper bounds)
    and their intervals; attack points in L2 go on the left panel."""
    figure = new_figure(13.0, 5.6)
    left, right = figure.add_subplot(1, 2, 1), figure.add_subplot(1, 2, 2)
    radii = np.asarray(data.radii, dtype=float)
    acc = 100 * np.asarray(data.accuracy, dtype=float)
    lo = 100 * np.asarray([i[0] for i in data.interval], dtype=float)
    hi = 100 * np.asarray([i[1] for i in data.interval], dtype=float)
    to_linf = 255 / math.sqrt(data.input_dim)  # an L2 radius -> the L-inf radius it certifies, in /255
    linf_points = [p for p in data.empirical if p["norm"] == "Linf"]
    l2_points = [p for p in data.empirical if p["norm"] == "L2"]
    styles = {id(p): EMPIRICAL_STYLES[i % len(EMPIRICAL_STYLES)] for i, p in enumerate(data.empirical)}
    certified_label = f"certified (lower bound), smoothed classifier, {_sigma_text(data)}"

    def curve(ax: Any, scale: float, x_end: float) -> None:
        xs, ys, los, his = radii * scale, acc, lo, hi
        if x_end > xs[-1]:  # beyond the grid no image is certified: the last value (0) carries on
            xs, ys, los, his = (np.append(v, last) for v, last in ((xs, x_end), (ys, ys[-1]), (los, los[-1]),
                                                                    (his, his[-1])))  # fmt: skip
        ax.step(xs, ys, where="pre", color=CERTIFIED_COLOR, linewidth=1.8, label=certified_label)
        ax.fill_between(xs, los, his, step="pre", color=CERTIFIED_COLOR, alpha=0.18, linewidth=0,
                        label="95 % interval over images (Clopper-Pearson)")  # fmt: skip
        ax.set_xlim(0, x_end)
        ax.set_ylim(0, 100)
        ax.set_ylabel("accuracy (%)", fontsize=10)
        ax.grid(alpha=0.3)

    def attack_points(ax: Any, points: list[dict[str, Any]], scale: float) -> None:
        for p in points:
            x, y = p["eps"] * scale, 100 * p["accuracy"]
            err = [[max(y - 100 * p["interval"][0], 0.0)], [max(100 * p["interval"][1] - y, 0.0)]]
            label = textwrap.fill(f"attack (upper bound), deployed model: {p['label']}", 60)
            ax.errorbar([x], [y], yerr=err, linestyle="none", markersize=7, capsize=4, elinewidth=1.4, label=label,
                        **styles[id(p)])  # fmt: skip
            ax.annotate(_floored(y), (x, y), textcoords="offset points", xytext=(7, 4), fontsize=9,
                        color=styles[id(p)]["color"])  # fmt: skip

    # left: L2
    l2_end = max([radii[-1], *(_POINT_MARGIN * p["eps"] for p in l2_points)])
    curve(left, 1.0, l2_end)
    for p in data.reported:
        x, y = p["radius"], 100 * p["accuracy"]
        left.plot([x], [y], "o", color=CERTIFIED_COLOR, markersize=6)
        left.annotate(_floored(y), (x, y), textcoords="offset points", xytext=(5, 6), fontsize=9,
                      color=CERTIFIED_COLOR)  # fmt: skip
    if data.reported:
        left.plot([], [], "o", color=CERTIFIED_COLOR, label="reported radii of the result")
    if data.largest_radius > 0:
        label = f"largest certifiable radius {data.largest_radius:.3g} (all N={data.n} draws right)"
        left.axvline(data.largest_radius, color="#555555", linestyle=":", linewidth=1.4, label=label)
    attack_points(left, l2_points, 1.0)
    left.set_xlabel("L2 radius", fontsize=10)
    left.set_title("certified accuracy against the L2 radius", fontsize=11)
    left.legend(loc="upper right", fontsize=8)

    # right: the L-inf radius each L2 radius certifies, and the attacks' L-inf points
    linf_end = max([radii[-1] * to_linf, *(_POINT_MARGIN * 255 * p["eps"] for p in linf_points)])
    curve(right, to_linf, linf_end)
    attack_points(right, linf_points, 255.0)
    right.set_xlabel(f"L-inf radius (/255); certified: L2 radius / sqrt({data.input_dim})", fontsize=10)
    right.set_title("certified (lower bound) against attacks (upper bound), L-inf", fontsize=11)
    if not linf_points:
        note = (
            "no empirical (attack) points given:\nno upper bound to set beside the certified one"
            if not data.empirical
            else "no empirical (attack) points in L-inf given\n(the L2 ones are on the left)"
        )
        right.text(0.5, 0.55, note, transform=right.transAxes, ha="center", va="center", fontsize=11,
                   color="#555555", bbox={"facecolor": "white", "edgecolor": "#aaaaaa", "alpha": 0.9})  # fmt: skip
    right.legend(loc="upper right", fontsize=8)

    method = "CERTIFY (Cohen et al. 2019)" if data.method == "cohen" else "multi-scale cascade (Jeong & Shin 2023)"
    abstained = f", abstained {data.abstained}/{data.n_examples}" if data.abstained is not None else ""
    figure.suptitle(
        f"{data.model_name} ({data.dataset}): randomized smoothing, {method}, {_sigma_text(data)}\n"
        f"N={data.n}, n0={data.n0}, alpha={data.alpha:g} per image, first {data.n_examples} test images, seed "
        f"{data.seed}{abstained}; certified = right and certified at >= the radius; 95 % bands over images",
        fontsize=11,
    )
    figure.tight_layout()
    return figure
