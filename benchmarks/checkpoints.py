"""The loop the zoo's per-checkpoint runners share: which checkpoints, score each, save, card, leaderboard.

``benchmarks.adaptive`` and ``benchmarks.certify`` differ only in how they score a model and where its results file
goes; the arguments naming checkpoints and the order of writes (results file, then card, then leaderboard) live
here once.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch.nn as nn

from eee_zoo.certify.api import SHARD_PENDING
from eee_zoo.evaluation.distributed import is_main_process

from .results import RESULTS_DIR, results_file_reference

__all__ = ["add_checkpoint_arguments", "score_checkpoints", "selected_checkpoints"]


def add_checkpoint_arguments(parser: argparse.ArgumentParser, *, default_n: int, card_help: str) -> None:
    """Which checkpoints (names or --all), on how many images, and where models, results and cards are."""
    parser.add_argument("names", nargs="*", help="checkpoint names (see `eee-zoo list`)")
    parser.add_argument("--all", action="store_true", help="every card (filtered by --dataset/--threat-model)")
    parser.add_argument("--dataset", default=None, help="cifar10 or cifar100 (default: cifar10; with --all: any)")
    parser.add_argument("--threat-model", default=None, help="the card's threat model (default: Linf; --all: any)")
    parser.add_argument(
        "--n-examples", type=int, default=default_n, help=f"the first N test images (default: {default_n})"
    )
    parser.add_argument("--cards-dir", default=None)
    parser.add_argument("--model-dir", default=None)
    parser.add_argument("--results-dir", default=None, help=f"results root (default: {RESULTS_DIR})")
    parser.add_argument("--write-card", action="store_true", help=card_help)
    parser.add_argument("--no-leaderboard", action="store_true", help="do not rebuild the leaderboard at the end")


def selected_checkpoints(args: argparse.Namespace) -> list[tuple[str, str, str]]:
    """``(name, dataset, threat model)`` of the checkpoints ``args`` name."""
    from eee_zoo.registry import list_cards

    if args.all:
        cards = list_cards("*", args.dataset, args.threat_model, cards_dir=args.cards_dir)
        return [(c.name, c.dataset, c.threat_model) for c in cards]
    if not args.names:
        raise SystemExit("give checkpoint names or --all")
    return [(name, args.dataset or "cifar10", args.threat_model or "Linf") for name in args.names]


def score_checkpoints(
    args: argparse.Namespace,
    score: Callable[[nn.Module, str, str], Any],
    save: Callable[[Any], list[Path]],
    card_results: Callable[[dict[str, Any], str], list[dict[str, Any]]],
) -> int:
    """Load each selected checkpoint, ``score`` it, ``save`` the result (the results file first, then anything
    beside it), copy ``card_results`` into its card with ``--write-card``, and rebuild the leaderboard."""
    from eee_zoo.cards import set_results
    from eee_zoo.loading import load_model

    if args.write_card:  # fail before the long work, not after
        root = Path(args.results_dir) if args.results_dir is not None else RESULTS_DIR
        results_file_reference(root / "x.json", root)
    for name, dataset, threat_model in selected_checkpoints(args):
        model = load_model(
            name, dataset, threat_model, model_dir=args.model_dir, device=args.device, cards_dir=args.cards_dir,
            channels_last=args.channels_last,
        )  # fmt: skip
        result = score(model, dataset, threat_model)
        if result is None:  # a shard whose siblings have not all finished (certify --shard)
            print(f"{name}: {SHARD_PENDING}")
            continue
        if not is_main_process():  # under torchrun every process has the result; rank 0 writes it
            continue
        path, *beside = save(result)
        print(result.summary())
        for p in (path, *beside):
            print(f"-> {p}")
        if args.write_card:
            ref = results_file_reference(path, args.results_dir)
            set_results(model.eee_info["card_path"], card_results(result.to_dict(), ref))
            print(f"card updated: {model.eee_info['card_path']}")
    if not args.no_leaderboard and args.results_dir is None and is_main_process():
        from .leaderboard import build

        print(f"leaderboard: {build()['markdown']}")
    return 0
