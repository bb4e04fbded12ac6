"""Pictures of what a self-ensemble does (``pip install eee-zoo[viz]``: matplotlib), each reproducible from its seed.

    >>> from eee_zoo import load_model
    >>> from eee_zoo.viz import FigureSettings, make_figures
    >>> model = load_model("Airbench_CPU_CrossMax")
    >>> make_figures(model, ["attacks", "per-layer"], "figures/", settings=FigureSettings(n=100))

Figures (issue 11), each a PNG with its title, class names and legend drawn in, and the data behind it as JSON:

1. successful attacks (:mod:`.successful_attacks`): clean, adversarial, perturbation, for AutoAttack ``rand`` and
   the adaptive worst case;
2. class maximisation (:mod:`.class_maximisation`): from grey towards every class, one class enlarged, a baseline
   beside it when given;
3. per-layer robustness (:mod:`.per_layer`): every predictor and the aggregate, clean and under attacks against
   the full model and against each predictor;
4. robust accuracy against eps (:mod:`.eps_curve`): AutoAttack ``rand``, ``standard`` on the deterministic mode,
   the adaptive worst case.
5. certified accuracy against radius (:mod:`.certified`): a randomized-smoothing result, attacks' upper bounds beside.

Each figure module computes its data (a dataclass whose ``record()`` is the JSON) and draws it with a
``*_figure(data) -> matplotlib.figure.Figure`` function, on an Agg canvas without pyplot (:mod:`.render`).
Attacks come from the library (:mod:`.attack_runs`: :func:`eee_zoo.evaluate`, :func:`eee_zoo.adaptive_evaluate`);
accuracies carry their n and 95 % interval (:mod:`.stats`).

Modules, one idea each: ``classes`` (class names), ``render`` (figures, PNG bytes, JSON), ``stats`` (accuracy
records), ``predictions`` (seeded draws of the deployed model), ``attack_runs`` (adversarial examples from the
library's evaluations), ``crosscheck`` (points against results files), the four figures, ``make`` (all of them
into a folder).
"""

from __future__ import annotations

from .attack_runs import AdaptiveSettings, AttackRun, adaptive_run, autoattack_run
from .certified import CertifiedCurve, certified_curve, certified_curve_figure
from .class_maximisation import ClassMaximisation, ClassMaxSettings, class_maximisation_figure, maximise_classes
from .classes import CLASS_NAMES, class_index, class_names
from .eps_curve import EpsCurves, eps_curve_figure, eps_curves
from .make import FIGURES, FigureSettings, default_eps_list, make_figures, redraw
from .per_layer import PerLayer, PerLayerSettings, per_layer_figure, per_layer_robustness
from .render import figure_array, png_bytes, save_png, write_json
from .successful_attacks import SuccessfulAttacks, successful_attacks, successful_attacks_figure

__all__ = [
    "CLASS_NAMES", "FIGURES",
    "AdaptiveSettings", "AttackRun", "ClassMaxSettings", "ClassMaximisation", "EpsCurves", "FigureSettings",
    "CertifiedCurve",
    "PerLayer", "PerLayerSettings", "SuccessfulAttacks",
    "adaptive_run", "autoattack_run", "class_index", "class_maximisation_figure", "class_names", "default_eps_list",
    "certified_curve", "certified_curve_figure",
    "eps_curve_figure",
    "eps_curves", "figure_array", "make_figures", "maximise_classes", "per_layer_figure", "per_layer_robustness",
    "png_bytes", "redraw", "save_png", "successful_attacks", "successful_attacks_figure", "write_json",
]  # fmt: skip
