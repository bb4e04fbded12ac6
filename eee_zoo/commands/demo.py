"""``eee-zoo demo``: the main job on a fresh, offline machine.

Loads a zoo checkpoint, takes the first test images (the CIFAR-10 slice embedded in the package when no
data directory is configured) and scores it with the real AutoAttack version the checkpoint calls for,
printing clean and robust accuracy with their confidence intervals. A demo-sized n gives wide intervals:
the zoo's reported numbers come from ``eee-zoo benchmark`` / ``benchmarks/zoo_evaluation.sh``.
"""

from __future__ import annotations

import argparse

from . import add_card_arguments, nonnegative_int, positive_int

HELP = "Load a zoo checkpoint and score it with AutoAttack on the first few test images (works offline)."
DEFAULT_MODEL = "Airbench_CPU_CrossMax"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default=DEFAULT_MODEL, help=f"checkpoint name (default: {DEFAULT_MODEL})")
    add_card_arguments(parser)
    parser.add_argument("--n-examples", type=positive_int, default=10, help="the first N test images (default: 10)")
    parser.add_argument(
        "--version", choices=("standard", "rand"), help="AutoAttack version (default: what the card's mode needs)"
    )
    parser.add_argument(
        "--seed", type=nonnegative_int, default=0, help="AutoAttack / model generator seed (default: 0)"
    )
    parser.add_argument(
        "--data-dir", help="data root holding <dataset>/<split>.npz (default: $EEE_ZOO_DATA, else the embedded slice)"
    )


def run(args: argparse.Namespace) -> int:
    from ..data import load_dataset
    from ..evaluation import evaluate
    from ..loading import load_model

    # The data first: a wrong --data-dir or --n-examples fails in a second, before the model is built.
    x, y = load_dataset(args.dataset, n_examples=args.n_examples, data_dir=args.data_dir)
    model = load_model(args.model, args.dataset, args.threat_model, cards_dir=args.cards_dir)
    info = model.eee_info
    mode = "stochastic" if model.stochastic else "deterministic"
    print(f"loaded {info['name']} ({info['dataset']}/{info['threat_model']}, sha256 {info['sha256'][:12]}, {mode})")
    result = evaluate(
        model,
        args.n_examples,
        args.dataset,
        args.threat_model,
        version=args.version,
        seed=args.seed,
        inputs=(x, y),
        model_name=info["name"],
        progress=True,
    )
    print(result.summary())
    print(
        f"(demo size n={args.n_examples}: see the intervals. A larger evaluation: eee-zoo benchmark {info['name']} "
        "--n-examples 1000; the zoo's own numbers: benchmarks/LEADERBOARD.md)"
    )
    return 0
