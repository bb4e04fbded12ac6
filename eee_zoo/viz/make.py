"""``make_figures``: a model's figures, each a PNG with the JSON of the data behind it, into one folder.

Figures (``what``): ``attacks`` (successful attacks), ``class-max`` (class maximisation), ``per-layer``
(per-layer robustness), ``eps-curve`` (robust accuracy against eps). Attack runs shared by two figures (the
successful attacks' AutoAttack ``rand`` and adaptive runs at ``eps`` are points of the curve) are made once, and
with ``state_dir`` kept on disk, so that asking again reuses them.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch.nn as nn

from .._progress import ProgressOutput
from ..cards import format_eps
from ..datasets import DEFAULT_EPS, parse_dataset, parse_threat_model
from ..evaluation.inputs import load_inputs, model_identity
from ..evaluation.results import versions
from .attack_runs import AUTOATTACK_RUNS, AdaptiveSettings, AttackRun, adaptive_run, autoattack_run, deployed_autoattack
from .certified import CertifiedCurve, certified_curve_figure
from .class_maximisation import ClassMaxSettings, class_maximisation_figure, maximise_classes
from .classes import class_index
from .crosscheck import check_against_results
from .eps_curve import EpsCurves, eps_curve_figure, eps_curves
from .per_layer import PerLayer, PerLayerSettings, per_layer_figure, per_layer_robustness
from .render import save_png, write_json
from .successful_attacks import successful_attacks, successful_attacks_figure

__all__ = [
    "CURVE_ATTACKS", "EPS_CURVE_SCALES", "FIGURES", "FigureSettings", "default_eps_list", "make_figures", "redraw",
]  # fmt: skip

logger = logging.getLogger(__name__)

# what -> file stem
FIGURES = {
    "attacks": "successful_attacks",
    "class-max": "class_maximisation",
    "per-layer": "per_layer",
    "eps-curve": "eps_curve",
}
CURVE_ATTACKS = ("autoattack-rand", "autoattack-standard-det", "adaptive")
# the eps curve's budgets, as multiples of the threat model's default (Linf: 1, 2, 4, 8, 16 /255)
EPS_CURVE_SCALES = (1 / 8, 1 / 4, 1 / 2, 1, 2)
NO_BASELINE = "No single-resolution baseline drawn beside it: pass one with --baseline NAME (baseline= in Python)."


def is_single_resolution(model: nn.Module) -> bool:
    """A plain classifier in the zoo's format (one 32 px copy, no heads): the baseline itself, which needs none."""
    config = getattr(model, "config", None)
    if not isinstance(config, dict):
        return True  # not a self-ensemble at all
    return len(config["stack"]["resolutions"]) == 1 and not config["taps"]


@dataclasses.dataclass
class FigureSettings:
    """Everything the figures depend on besides the model (all recorded in the JSON files)."""

    n: int = 100  # the first n test images
    seed: int = 0
    eps: float | None = None  # the successful attacks' and per-layer budget (default: the threat model's)
    eps_list: tuple[float, ...] | None = None  # the eps curve's budgets (default: default_eps_list)
    curve_attacks: tuple[str, ...] = CURVE_ATTACKS
    k: int = 4  # broken images shown per attack
    draws: int = 20  # draws of the deployed model behind the successful attacks' probabilities
    autoattack_overrides: dict[str, Any] = dataclasses.field(default_factory=dict)  # cuts (recorded)
    autoattack_batch_size: int = 500
    adaptive: AdaptiveSettings = AdaptiveSettings()
    class_max: ClassMaxSettings = ClassMaxSettings()
    enlarge: int | str = 0  # the class enlarged (label or name)
    per_layer: PerLayerSettings = PerLayerSettings()


def default_eps_list(threat_model: str) -> tuple[float, ...]:
    """The eps curve's default budgets: :data:`EPS_CURVE_SCALES` times the threat model's default eps."""
    eps = DEFAULT_EPS[parse_threat_model(threat_model)]
    return tuple(scale * eps for scale in EPS_CURVE_SCALES)


def make_figures(
    model: nn.Module,
    what: Sequence[str],
    out: str | os.PathLike,
    *,
    dataset: str = "cifar10",
    threat_model: str = "Linf",
    settings: FigureSettings | None = None,
    baseline: nn.Module | None = None,
    data_dir: Any = None,
    state_dir: str | os.PathLike | None = None,
    results_dir: str | os.PathLike | None = None,
    fresh: bool = False,
    command: str | None = None,
    progress: ProgressOutput = False,
) -> list[Path]:
    """Draw the figures ``what`` of ``model`` into ``out`` (``<stem>.png`` + ``<stem>.json`` each); returns the paths.

    ``baseline``: a single-resolution model whose class maximisation is drawn beside the self-ensemble's.
    ``results_dir``: the zoo's results files, to check AutoAttack points of the same configuration against.
    ``state_dir``: where the attacks keep their resumable state (finished runs are reused; ``fresh=True``: not).
    ``command``: the command line that made the figures, recorded in every JSON.
    """
    s = settings or FigureSettings()
    unknown = [w for w in what if w not in FIGURES]
    if unknown:
        raise ValueError(f"unknown figures {unknown}; choose from {list(FIGURES)}")
    dataset, threat_model = parse_dataset(dataset), parse_threat_model(threat_model)
    eps = DEFAULT_EPS[threat_model] if s.eps is None else s.eps
    name, sha, _ = model_identity(model, None)
    device = next(model.parameters()).device
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    x, y, data_record = load_inputs(dataset, s.n, data_dir, None)
    common = {
        "model": name, "checkpoint_sha256": sha, "dataset": dataset, "threat_model": threat_model, "n": s.n,
        "seed": s.seed, "images": f"the first {s.n} {dataset} test images", "data": data_record, "command": command,
        "device": str(device), "versions": versions(),
    }  # fmt: skip
    runs: dict[tuple[str, float], AttackRun] = {}
    autoattack = deployed_autoattack(getattr(model, "is_random", True))  # the successful attacks' AutoAttack run
    # a model whose stack draws nothing gets no rand curve either (see deployed_autoattack)
    curve_attacks = [a for a in s.curve_attacks if a != "autoattack-rand" or autoattack == a]

    def run(attack: str, at: float) -> AttackRun:
        if (attack, at) not in runs:
            kw = dict(eps=at, seed=s.seed, data_dir=data_dir, state_dir=state_dir, fresh=fresh, progress=progress)
            if attack in AUTOATTACK_RUNS:
                runs[attack, at] = autoattack_run(
                    model, attack, s.n, dataset, threat_model, overrides=s.autoattack_overrides,
                    batch_size=s.autoattack_batch_size, **kw,
                )  # fmt: skip
            elif attack == "adaptive":
                runs[attack, at] = adaptive_run(model, s.n, dataset, threat_model, settings=s.adaptive, **kw)
            else:
                raise ValueError(f"unknown attack {attack!r}; choose from {[*AUTOATTACK_RUNS, 'adaptive']}")
        return runs[attack, at]

    def check(point: AttackRun) -> dict[str, Any] | None:
        result = check_against_results(point, results_dir)
        if result is not None and not result["agree"]:
            logger.warning("%s at %s differs from %s in %s", point.name, format_eps(point.eps, threat_model),
                           result["results_file"], ", ".join(result["differ"]))  # fmt: skip
        return result

    written: list[Path] = []

    def save(stem: str, figure: Any, record: dict[str, Any]) -> None:
        written.append(save_png(figure, out / f"{stem}.png"))
        written.append(write_json({**common, **record}, out / f"{stem}.json"))

    for key in FIGURES:
        if key not in what:
            continue
        if key == "attacks":
            data = successful_attacks(
                model, x, y, [run(autoattack, eps), run("adaptive", eps)], dataset=dataset,
                threat_model=threat_model, k=s.k, draws=s.draws, seed=s.seed, model_name=name,
            )  # fmt: skip
            checks = {r.name: check(r) for r in data.runs}
            record = {**data.record(), "results_file_checks": {k: v for k, v in checks.items() if v is not None}}
            save(FIGURES[key], successful_attacks_figure(data), record)
        elif key == "class-max":
            enlarge = class_index(dataset, s.enlarge)
            ours = maximise_classes(model, dataset, settings=s.class_max, seed=s.seed, model_name=name,
                                    progress=progress)  # fmt: skip
            theirs = None
            if baseline is not None:
                base_name = model_identity(baseline, None)[0]
                theirs = maximise_classes(baseline, dataset, settings=s.class_max, seed=s.seed,
                                          model_name=base_name, progress=progress)  # fmt: skip
            note = None if theirs is not None or is_single_resolution(model) else NO_BASELINE
            figure = class_maximisation_figure(ours, theirs, enlarge=enlarge, note=note)
            record = {"figure": "class_maximisation", "enlarged": enlarge, "self_ensemble": ours.record(),
                      "baseline": theirs.record() if theirs is not None else None, "baseline_note": note}  # fmt: skip
            save(FIGURES[key], figure, record)
        elif key == "per-layer":
            data = per_layer_robustness(
                model, x, y, eps=eps, threat_model=threat_model, dataset=dataset, seed=s.seed, settings=s.per_layer,
                model_name=name, progress=progress,
            )  # fmt: skip
            save(FIGURES[key], per_layer_figure(data), data.record())
        elif key == "eps-curve":
            eps_list = s.eps_list or default_eps_list(threat_model)
            data = eps_curves(run, curve_attacks, list(eps_list), model_name=name, dataset=dataset,
                              threat_model=threat_model, n=s.n, seed=s.seed)  # fmt: skip
            for attack, points in data.curves.items():
                for point in points:
                    result = check(point)
                    if result is not None:
                        data.checks[f"{attack}@{format_eps(point.eps, threat_model)}"] = result
            save(FIGURES[key], eps_curve_figure(data), data.record())
    return written


def redraw(json_path: str | os.PathLike) -> Path:
    """Draw a figure again from the JSON beside it, without attacking (after a change to how it is drawn); writes and
    returns the PNG. Only the figures made of numbers: the per-layer bars, the eps curve and the certified curve (the
    others show images, which the JSON does not hold). An eps curve's JSON also gets the checks derived from its points
    as they are made now (the flags, the worst case counted as AutoAttack counts), so the JSON says what the PNG
    shows."""
    path = Path(json_path)
    record = json.loads(path.read_text())
    draw = {"per_layer": lambda: per_layer_figure(PerLayer.from_record(record)),
            "eps_curve": lambda: eps_curve_figure(EpsCurves.from_record(record)),
            "certified_curve": lambda: certified_curve_figure(CertifiedCurve.from_record(record))}  # fmt: skip
    if record.get("figure") not in draw:
        raise ValueError(f"{path}: only {sorted(draw)} figures can be drawn from their JSON; make the others again")
    if record["figure"] == "eps_curve":  # what the curve's checks derive from its points, as the drawing does now
        derived = EpsCurves.from_record(record).record()
        checks = ("adaptive_above_autoattack", "adaptive_counted_as_autoattack")
        if any(record.get(k) != derived[k] for k in checks):
            write_json({**record, **{k: derived[k] for k in checks}}, path)
    return save_png(draw[record["figure"]](), path.with_suffix(".png"))
