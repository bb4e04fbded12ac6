"""``eee-zoo benchmark NAME``: clean and AutoAttack robust accuracy of a checkpoint, written to a results file.

The work is done by the repository's ``benchmarks/`` folder (``benchmarks.run.run_one``), which is not part of
the installed package: the command needs a source checkout. The results file goes to ``--out``, by default a
folder outside the source tree (``~/.cache/eee_zoo/results``); only ``--write-card`` writes into the zoo's
``benchmarks/results/`` (the file the card then refers to), as the zoo's own runner ``python -m benchmarks.run``
does.
"""

from __future__ import annotations

import argparse
import json

from . import CHECKOUT_ROOT, add_card_arguments, require_source_checkout

HELP = (
    "Evaluate a checkpoint with AutoAttack (RobustBench protocol: the first n test images; rand for stochastic "
    "inference, standard otherwise) and write its results file (to --out); --write-card copies the numbers into "
    "its card."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", help="checkpoint name (see `eee-zoo list`)")
    add_card_arguments(parser)
    if not (CHECKOUT_ROOT / "benchmarks").is_dir():  # an installed package: run() explains what is missing
        parser.add_argument("options", nargs=argparse.REMAINDER, help="(needs a source checkout)")
        return
    require_source_checkout("benchmarks")
    from benchmarks.results import user_results_dir
    from benchmarks.run import add_evaluation_arguments

    add_evaluation_arguments(parser, cards_dir=False, results_dir=False)
    parser.add_argument(
        "--out",
        "--results-dir",
        dest="results_dir",
        metavar="DIR",
        help=f"folder for the results file (default: {user_results_dir()}; with --write-card: the repository's "
        "benchmarks/results/, which the card then refers to)",
    )
    parser.add_argument("--json", action="store_true", help="print the full result as JSON")


def run(args: argparse.Namespace) -> int:
    require_source_checkout("benchmarks")
    from benchmarks.results import RESULTS_DIR, user_results_dir
    from benchmarks.run import evaluation_kwargs, run_one

    from ..evaluation import is_main_process

    kwargs = evaluation_kwargs(args)
    if kwargs["results_dir"] is None:  # exploratory runs stay out of the source tree and the leaderboard
        kwargs["results_dir"] = RESULTS_DIR if args.write_card else user_results_dir()
    result, path = run_one(args.name, dataset=args.dataset, threat_model=args.threat_model, **kwargs)
    if not is_main_process():
        return 0
    if args.json:
        print(json.dumps({**result.to_dict(), "results_file": str(path)}, indent=2))
        return 0
    print(result.summary())
    print(f"results: {path}" + ("  (card updated)" if args.write_card else ""))
    return 0
