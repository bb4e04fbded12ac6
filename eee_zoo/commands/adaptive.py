"""``eee-zoo adaptive``: the per-image worst case of a zoo checkpoint over every attack of :mod:`eee_zoo.adaptive`.

Prints the result; with ``--json`` the whole result as JSON. Results files, cards and the leaderboard are the
business of ``python -m benchmarks.adaptive`` in a source checkout.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from . import (
    add_card_arguments,
    add_run_arguments,
    default_state_dir,
    load_run_model,
    nonnegative_int,
    positive_int,
)

HELP = "Worst case over adaptive attacks (surrogates, EOT, single predictors, AutoAttack's examples), many draws."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", help="checkpoint name (see `eee-zoo list`)")
    add_card_arguments(parser)
    parser.add_argument("--n-examples", type=positive_int, default=100, help="the first N test images (default: 100)")
    add_attack_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print the whole result as JSON")


def add_attack_arguments(parser: argparse.ArgumentParser) -> None:
    """The attack options shared by ``eee-zoo adaptive`` and ``python -m benchmarks.adaptive``."""
    from ..adaptive import AUTOATTACK_PROPOSALS, DEFAULT_BATCH_SIZE, DEFAULT_DRAWS, PRESETS, describe_preset

    presets = " | ".join(f"{name} = {describe_preset(name)}" for name in PRESETS).replace("%", "%%")  # argparse
    parser.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        default="zoo",
        help=f"the attack suite (default: %(default)s). Presets: {presets}",
    )
    parser.add_argument(
        "--autoattack",
        nargs="*",
        choices=AUTOATTACK_PROPOSALS,
        default=list(AUTOATTACK_PROPOSALS),
        metavar="VERSION",
        help="AutoAttack versions whose adversarial examples join the proposals: rand (deployed model), standard-det "
        "(deterministic mode); give the option with no value for none (default: both)",
    )
    parser.add_argument(
        "--autoattack-runs",
        nargs="?",
        const=True,
        default=None,
        metavar="DIR",
        help="take AutoAttack's examples from its full runs on the same images, the runs `eee-zoo benchmark` and "
        "`python -m benchmarks.run` keep (reused when finished there, run and kept there when not; DIR: their state "
        f"folder, default {default_state_dir('autoattack')}; for `visualize`, the figures' own AutoAttack runs), "
        "instead of an AutoAttack run inside every batch: most of the suite's time when those runs exist. Another "
        "configuration, named in the result (default: off)",
    )
    parser.add_argument(
        "--autoattack-chunk-size",
        type=positive_int,
        default=None,
        metavar="N",
        help="with --autoattack-runs: those runs were made in chunks of N images (`--chunk-size N` of "
        "`eee-zoo benchmark` / `python -m benchmarks.run`: each chunk its own seed and resumable run), and are "
        "looked for, or made, so (default: one unchunked run)",
    )
    parser.add_argument("--seed", type=nonnegative_int, default=0, help="seed of every draw and attack (default: 0)")
    parser.add_argument(
        "--selection-draws",
        type=positive_int,
        default=DEFAULT_DRAWS["selection_draws"],
        help="draws of the deployed model that choose each image's worst proposal (default: %(default)s)",
    )
    parser.add_argument(
        "--fresh-draws",
        type=positive_int,
        default=DEFAULT_DRAWS["fresh_draws"],
        help="other draws that score the chosen proposals (default: %(default)s)",
    )
    parser.add_argument(
        "--final-draws",
        type=nonnegative_int,
        default=DEFAULT_DRAWS["final_draws"],
        help="further draws on which each attack's finalist is judged again before the choice; 0: one stage "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--tie-draws",
        type=nonnegative_int,
        default=DEFAULT_DRAWS["tie_draws"],
        help="further draws, in rounds of --final-draws, that settle finalists tied on the final draws (several "
        "attacks breaking an image on every draw); only the choice uses them (default: %(default)s)",
    )
    parser.add_argument(
        "--cascade",
        action="store_true",
        help="speed option: skip images already wrong on every selection draw (labelled in the result)",
    )
    parser.add_argument(
        "--batch-size",
        type=positive_int,
        default=DEFAULT_BATCH_SIZE,
        help="images attacked together; draws and random starts are seeded per batch, so it is part of the "
        "configuration (default: %(default)s)",
    )
    add_run_arguments(
        parser,
        unit="batches",
        cache="adaptive",
        fresh="ignore stored batches and attack from the start",
    )


def attack_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """Keyword arguments of :func:`eee_zoo.adaptive.adaptive_evaluate` from :func:`add_attack_arguments` options."""
    state_dir = Path(args.state_dir) if args.state_dir is not None else default_state_dir("adaptive")
    runs = args.autoattack_runs
    if args.autoattack_chunk_size is not None and runs is None:  # a usage error, before any model is loaded
        args._parser.error("argument --autoattack-chunk-size: goes with --autoattack-runs (how those runs were made)")
    return {
        "preset": args.preset,
        "autoattack": args.autoattack,
        "selection_draws": args.selection_draws,
        "fresh_draws": args.fresh_draws,
        "final_draws": args.final_draws,
        "tie_draws": args.tie_draws,
        "cascade": args.cascade,
        "autoattack_runs": default_state_dir("autoattack") if runs is True else runs,
        "autoattack_chunk_size": args.autoattack_chunk_size,
        "batch_size": args.batch_size,
        "seed": args.seed,
        "device": args.device,
        "data_dir": args.data_dir,
        "state_dir": state_dir,
        "fresh": args.fresh,
    }


def run(args: argparse.Namespace) -> int:
    from ..adaptive import adaptive_evaluate

    kwargs = attack_kwargs(args)  # usage errors first
    model = load_run_model(args)
    result = adaptive_evaluate(model, args.n_examples, args.dataset, args.threat_model, **kwargs)
    print(json.dumps(result.to_dict(), indent=2) if args.json else result.summary())
    return 0
