"""``eee-zoo certify``: certified L2 robustness of a zoo checkpoint by randomized smoothing (:mod:`eee_zoo.certify`).

Prints the result (a progress bar while it runs); with ``--json`` the whole result as JSON. Results files, cards and
the leaderboard are the business of ``python -m benchmarks.certify`` in a source checkout.
"""

from __future__ import annotations

import argparse
import json
import math
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

HELP = "Certified L2 accuracy by randomized smoothing (Cohen et al. 2019; several --sigma: multi-scale cascade)."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", help="checkpoint name (see `eee-zoo list`)")
    add_card_arguments(parser)
    parser.add_argument("--n-examples", type=positive_int, default=100, help="the first N test images (default: 100)")
    add_certify_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print the whole result as JSON")


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0 (``--sigma``, ``--alpha``)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def nonnegative_float(text: str) -> float:
    """argparse type: a finite number >= 0 (``--radii``)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a non-negative number, got {text!r}") from None
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"expected a non-negative number, got {text!r}")
    return value


def add_certify_arguments(parser: argparse.ArgumentParser) -> None:
    """The options shared by ``eee-zoo certify`` and ``python -m benchmarks.certify``."""
    from ..certify import DEFAULT_BATCH_SIZE, DEFAULT_RADII

    parser.add_argument(
        "--sigma",
        type=positive_float,
        nargs="+",
        required=True,
        help="noise scale(s) of the Gaussian smoothing; several: the multi-scale cascade, highest first",
    )
    parser.add_argument("--n0", type=positive_int, default=100, help="selection draws per scale (default: 100)")
    parser.add_argument("--n", type=positive_int, default=100_000, help="estimation draws per scale (default: 100000)")
    parser.add_argument("--alpha", type=positive_float, default=0.001, help="failure probability (default: 0.001)")
    parser.add_argument("--seed", type=nonnegative_int, default=0, help="seed of every draw (default: 0)")
    parser.add_argument(
        "--radii",
        type=nonnegative_float,
        nargs="+",
        default=list(DEFAULT_RADII),
        help="L2 radii to report certified accuracy at (default: %(default)s)",
    )
    parser.add_argument(
        "--batch-size",
        type=positive_int,
        default=DEFAULT_BATCH_SIZE,
        help="noisy copies per forward pass; it orders the draws, so it is part of the configuration "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--shard",
        type=shard_spec,
        default=None,
        metavar="K/N",
        help="certify only the images i with i %% N == K into the state folder (run K = 0 .. N-1 in N processes, "
        "on one or several machines sharing it); the shard that finds every image stored writes the result. Under "
        "torchrun the shard is the rank and needs no option",
    )
    add_run_arguments(
        parser,
        unit="images",
        cache="certify",
        fresh="ignore stored images and certify from the start",
    )


def certify_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """Keyword arguments of :func:`eee_zoo.certify.certify` from :func:`add_certify_arguments` options."""
    if args.alpha >= 0.5:
        args._parser.error(f"argument --alpha: expected a number in (0, 0.5), got {args.alpha}")
    if len(set(args.sigma)) != len(args.sigma):
        args._parser.error(f"argument --sigma: values must be distinct, got {args.sigma}")
    state_dir = Path(args.state_dir) if args.state_dir is not None else default_state_dir("certify")
    return {
        "sigma": args.sigma if len(args.sigma) > 1 else args.sigma[0],
        "n0": args.n0,
        "n": args.n,
        "alpha": args.alpha,
        "seed": args.seed,
        "radii": args.radii,
        "batch_size": args.batch_size,
        "device": args.device,
        "data_dir": args.data_dir,
        "state_dir": state_dir,
        "fresh": args.fresh,
        "shard": args.shard,
    }


def shard_spec(text: str) -> tuple[int, int]:
    """``"K/N"`` -> ``(K, N)`` with ``0 <= K < N``."""
    k, sep, n = text.partition("/")
    try:
        shard = (int(k), int(n))
    except ValueError:
        shard = None
    if not sep or shard is None or not 0 <= shard[0] < shard[1]:
        raise argparse.ArgumentTypeError(f"expected K/N with 0 <= K < N (e.g. 0/4), got {text!r}")
    return shard


def run(args: argparse.Namespace) -> int:
    from ..certify import certify

    kwargs = certify_kwargs(args)  # usage errors before any model or data is loaded
    model = load_run_model(args)
    result = certify(model, args.n_examples, args.dataset, **kwargs)
    if result is None:
        from ..certify.api import SHARD_PENDING

        print(f"{args.name}: {SHARD_PENDING}")
        return 0
    print(json.dumps(result.to_dict(), indent=2) if args.json else result.summary())
    return 0
