"""``eee-zoo visualize NAME``: a checkpoint's figures (:mod:`eee_zoo.viz`), each a PNG with its JSON, into ``--out``.

Needs matplotlib (``pip install eee-zoo[viz]``). The attack options are those of ``eee-zoo adaptive`` (the adaptive
worst case's suite, draws, state folder, ...); ``--autoattack-cut KEY=VALUE`` cuts AutoAttack's settings for a
quick look (recorded in the JSON and labelled in the figures). Every JSON records the command that made it, with
every option that differs from its default.
"""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path
from typing import Any

from . import CHECKOUT_ROOT, add_card_arguments, load_run_model, nonnegative_int, positive_int

HELP = (
    "Draw a checkpoint's figures: successful attacks, class maximisation, per-layer robustness, robust accuracy "
    "against eps (PNG + JSON each)."
)
# eee_zoo.viz.FIGURES and eee_zoo.viz.make.CURVE_ATTACKS, repeated here so that building the parser needs no
# matplotlib (tests/test_viz.py checks that they agree)
FIGURES = ("attacks", "class-max", "per-layer", "eps-curve")
CURVE_ATTACKS = ("autoattack-rand", "autoattack-standard-det", "adaptive")
ALWAYS_SHOWN = ("n", "seed")  # recorded commands name the images and the seed even at their defaults


def budget(text: str) -> float:
    """argparse type: a perturbation budget, ``8/255`` or ``0.5``."""
    try:
        if "/" in text:
            num, den = text.split("/", 1)
            value = float(num) / float(den)
        else:
            value = float(text)
    except (ValueError, ZeroDivisionError):
        raise argparse.ArgumentTypeError(f"expected a budget such as 8/255 or 0.5, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive budget, got {text!r}")
    return value


def autoattack_cut(text: str) -> tuple[str, int | float]:
    """argparse type: one AutoAttack setting, ``apgd.n_iter=10``, checked against the settings it may cut."""
    from ..evaluation.autoattack import check_overrides

    key, sep, value = text.partition("=")
    try:
        number = float(value)
    except ValueError:
        number = None
    if not sep or number is None:
        raise argparse.ArgumentTypeError(f"expected KEY=NUMBER such as apgd.n_iter=10, got {text!r}")
    pair = key.strip(), int(number) if number.is_integer() else number
    try:
        check_overrides(dict([pair]))
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return pair


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from .adaptive import add_attack_arguments

    parser.add_argument("name", help="checkpoint name (see `eee-zoo list`)")
    add_card_arguments(parser)
    parser.add_argument(
        "--what", nargs="+", choices=[*FIGURES, "all"], default=["all"], help="figures to draw (default: all)"
    )
    parser.add_argument("--out", default="figures", help="folder for the PNG and JSON files (default: ./figures)")
    parser.add_argument("--n", type=positive_int, default=100, help="the first N test images (default: 100)")
    parser.add_argument("--eps", type=budget, help="budget of the successful attacks and per-layer figures "
                        "(default: 8/255 for Linf, 0.5 for L2)")  # fmt: skip
    parser.add_argument("--eps-list", nargs="+", type=budget, help="budgets of the eps curve (default: 1/8, 1/4, "
                        "1/2, 1 and 2 times the default eps: 1/255 ... 16/255 for Linf)")  # fmt: skip
    parser.add_argument("--curve-attacks", nargs="+", choices=CURVE_ATTACKS, default=list(CURVE_ATTACKS),
                        help="the eps curve's attacks (default: all three)")  # fmt: skip
    parser.add_argument("--k", type=positive_int, default=4, help="broken images shown per attack (default: 4)")
    parser.add_argument("--draws", type=positive_int, default=20, help="draws of the deployed model behind the "
                        "successful attacks' probabilities (default: 20)")  # fmt: skip
    parser.add_argument("--autoattack-cut", nargs="+", type=autoattack_cut, default=[], metavar="KEY=VALUE",
                        help="cut AutoAttack's settings (apgd.n_iter=10 apgd.eot_iter=5 ...; EOT cuts the rand run "
                        "only; default: none, its real settings); recorded and labelled")  # fmt: skip
    parser.add_argument("--autoattack-batch-size", type=positive_int, default=500,
                        help="AutoAttack's batch size (default: 500, as the zoo's results files)")  # fmt: skip
    group = parser.add_argument_group("class maximisation")
    group.add_argument("--starts", type=positive_int, default=4, help="images per class (default: 4)")
    group.add_argument("--steps", type=positive_int, default=100, help="signed-gradient steps (default: 100)")
    group.add_argument("--step-size", type=budget, default=2 / 255, help="pixel step (default: 2/255)")
    group.add_argument("--start-noise", type=budget, default=8 / 255, help="start: grey + U[-x, x] (default: 8/255)")
    group.add_argument(
        "--max-draws",
        type=nonnegative_int,
        default=4,
        help="EOT draws per step through the deployed model (0: deterministic mode; default: 4)",
    )
    group.add_argument("--enlarge", default=0, help="the class shown enlarged, by name or label (default: 0)")
    group.add_argument("--baseline", metavar="NAME",
                       help="a single-resolution checkpoint whose class maximisation is drawn beside (same card "
                       "options)")  # fmt: skip
    group = parser.add_argument_group("per-layer robustness")
    group.add_argument("--layer-iters", type=positive_int, default=100, help="APGD-CE iterations (default: 100)")
    group.add_argument("--layer-attack-draws", type=nonnegative_int, default=0,
                       help="EOT draws of those attacks (0: deterministic mode; default: 0)")  # fmt: skip
    group.add_argument("--layer-eval-draws", type=positive_int, default=10,
                       help="draws of the deployed model that judge each accuracy (default: 10)")  # fmt: skip
    parser.add_argument("--results-dir", help="results files to check AutoAttack points against (default: the "
                        "repository's benchmarks/results/ in a source checkout)")  # fmt: skip
    group = parser.add_argument_group("adaptive worst case (as `eee-zoo adaptive`)")
    add_attack_arguments(group)


def command_line(args: argparse.Namespace) -> str:
    """``eee-zoo visualize NAME`` with ``--n``, ``--seed`` and every option that differs from its default."""
    parser: argparse.ArgumentParser = args._parser
    words = ["eee-zoo", "visualize", args.name]
    for action in parser._actions:
        if not action.option_strings or action.dest in ("help", "name"):
            continue
        value = getattr(args, action.dest, None)
        if value is None or (value == action.default and action.dest not in ALWAYS_SHOWN):
            continue
        flag = action.option_strings[-1] if action.option_strings[-1].startswith("--") else action.option_strings[0]
        if isinstance(action, argparse._StoreTrueAction) or value is True:  # a flag, or an option without its value
            words.append(flag)
            continue
        values = value if isinstance(value, list) else [value]
        words.append(flag)
        words.extend(_word(v) for v in values)
    return shlex.join(words)


def _word(value: Any) -> str:
    if isinstance(value, tuple):
        return f"{value[0]}={value[1]}"
    if isinstance(value, float):
        scaled = value * 255
        return f"{scaled:g}/255" if abs(scaled - round(scaled)) < 1e-9 else f"{value:g}"
    return str(value)


def figure_settings(args: argparse.Namespace) -> Any:
    """The :class:`eee_zoo.viz.FigureSettings` of the parsed options (the defaults give ``FigureSettings()``)."""
    from ..viz import AdaptiveSettings, ClassMaxSettings, FigureSettings, PerLayerSettings
    from .adaptive import attack_kwargs

    attack = attack_kwargs(args)
    cut = dict(args.autoattack_cut)
    return FigureSettings(
        n=args.n, seed=args.seed, eps=args.eps, eps_list=tuple(args.eps_list) if args.eps_list else None,
        curve_attacks=tuple(args.curve_attacks), k=args.k, draws=args.draws, autoattack_overrides=cut,
        autoattack_batch_size=args.autoattack_batch_size,
        adaptive=AdaptiveSettings(
            preset=attack["preset"], autoattack=tuple(attack["autoattack"]),
            selection_draws=attack["selection_draws"], final_draws=attack["final_draws"],
            tie_draws=attack["tie_draws"],
            fresh_draws=attack["fresh_draws"], batch_size=attack["batch_size"], cascade=attack["cascade"],
            autoattack_overrides=(cut or None) if attack["autoattack"] else None,
            autoattack_runs=args.autoattack_runs, autoattack_chunk_size=attack["autoattack_chunk_size"],
        ),
        class_max=ClassMaxSettings(starts=args.starts, steps=args.steps, step_size=args.step_size,
                                   noise=args.start_noise, draws=args.max_draws),
        enlarge=args.enlarge,
        per_layer=PerLayerSettings(n_iter=args.layer_iters, draws=args.layer_attack_draws,
                                   eval_draws=args.layer_eval_draws),
    )  # fmt: skip


def run(args: argparse.Namespace) -> int:
    from .adaptive import attack_kwargs

    attack = attack_kwargs(args)  # usage errors first
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ImportError("eee-zoo visualize needs matplotlib: pip install 'eee-zoo[viz]'") from None
    from ..loading import load_model
    from ..viz import make_figures

    what = list(FIGURES) if "all" in args.what else list(dict.fromkeys(args.what))
    settings = figure_settings(args)
    model = load_run_model(args)
    baseline = None
    if args.baseline:
        baseline = load_model(
            args.baseline, args.dataset, args.threat_model, cards_dir=args.cards_dir, device=args.device
        )
    results_dir = args.results_dir
    if results_dir is None and (CHECKOUT_ROOT / "benchmarks" / "results").is_dir():
        results_dir = CHECKOUT_ROOT / "benchmarks" / "results"
    paths = make_figures(
        model, what, Path(args.out), dataset=args.dataset, threat_model=args.threat_model, settings=settings,
        baseline=baseline, data_dir=attack["data_dir"], state_dir=attack["state_dir"], results_dir=results_dir,
        fresh=attack["fresh"], command=command_line(args), progress=True,
    )  # fmt: skip
    for path in paths:
        print(path)
    return 0
