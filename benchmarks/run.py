"""Evaluate zoo checkpoints with AutoAttack and write their results files (and, optionally, their cards).

    python -m benchmarks.run --all                              # every card, its default AutoAttack version
    python -m benchmarks.run NAME [NAME ...] --dataset cifar10 --threat-model Linf --n-examples 1000
    torchrun --nproc_per_node 4 -m benchmarks.run --all --device cuda   # chunks spread over 4 processes

Each checkpoint is loaded with :func:`eee_zoo.load_model`, evaluated with :func:`eee_zoo.evaluate` (version
``rand`` for a card with stochastic inference, ``standard`` otherwise, unless ``--version``), saved with
:func:`benchmarks.results.save_result`; ``--write-card`` copies the numbers into the card (the only way numbers
enter a card) and the leaderboard is rebuilt at the end. A run that is interrupted resumes from its state
(``--state-dir``, default ``$EEE_ZOO_STATE_DIR`` or ``~/.cache/eee_zoo/autoattack``) when started again.
Beside every results file goes ``<results stem>.adv.safetensors``, the adversarial examples of the run
(:func:`eee_zoo.evaluation.load_adversarial_examples` reads them back with the images they were made for).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from eee_zoo.adaptive import AdaptiveResult
from eee_zoo.commands import add_layout_argument, default_state_dir, nonnegative_int, positive_int
from eee_zoo.evaluation import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_CHUNK_SIZE,
    VERSIONS,
    EvaluationResult,
    evaluate,
    is_main_process,
    save_adversarial_examples,
)

from .checkpoints import selected_checkpoints
from .results import (
    RESULTS_DIR,
    card_results,
    examples_path,
    reproduces_stored,
    result_path,
    results_file_reference,
    save_result,
)

__all__ = [
    "add_evaluation_arguments", "build_parser", "evaluation_kwargs", "main", "parse_eps",
    "run_one", "save_examples", "selected_checkpoints",
]  # fmt: skip


def parse_eps(value: str) -> float:
    """``"8/255"`` or ``"0.5"`` -> float (argparse type)."""
    try:
        if "/" in value:
            num, den = value.split("/", 1)
            return float(num) / float(den)
        return float(value)
    except (ValueError, ZeroDivisionError):
        raise argparse.ArgumentTypeError(f"eps must be a number or a fraction like 8/255, got {value!r}") from None


def run_one(
    name: str,
    *,
    dataset: str = "cifar10",
    threat_model: str = "Linf",
    version: str | None = None,
    n_examples: int = 10000,
    seed: int = 0,
    eps: float | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    chunk_size: int | None = None,
    device: str | None = None,
    data_dir: str | os.PathLike | None = None,
    results_dir: str | os.PathLike | None = None,
    state_dir: str | os.PathLike | None = None,
    fresh: bool = False,
    cards_dir: str | os.PathLike | None = None,
    model_dir: str | os.PathLike | None = None,
    write_card: bool = False,
    deterministic: bool = False,
    allow_stochastic_standard: bool = False,
    channels_last: bool = False,
    progress: bool = True,
) -> tuple[EvaluationResult, Path | None]:
    """Load checkpoint ``name``, evaluate it, save the results file (rank 0); optionally update its card.

    Returns the result and the results file (None on ranks other than 0).
    """
    from eee_zoo.loading import load_model

    results_dir = Path(results_dir) if results_dir is not None else RESULTS_DIR
    if write_card:  # fail before hours of attacks, not after
        results_file_reference(results_dir / "x.json", results_dir)
    model = load_model(
        name,
        dataset,
        threat_model,
        model_dir=model_dir,
        device=device or "cpu",
        cards_dir=cards_dir,
        stochastic=False if deterministic else None,
        channels_last=channels_last,
    )
    result = evaluate(
        model,
        n_examples,
        dataset,
        threat_model,
        version=version,
        eps=eps,
        batch_size=batch_size,
        chunk_size=chunk_size,
        seed=seed,
        device=device,
        data_dir=data_dir,
        state_path=state_dir if state_dir is not None else default_state_dir("autoattack"),
        fresh=fresh,
        allow_stochastic_standard=allow_stochastic_standard,
        progress=progress,
    )
    if not is_main_process():
        return result, None
    path = result_path(result, results_dir)
    if reproduces_stored(result.to_dict(), path, with_examples=True):  # finished chunks assembled again
        print(f"{path}: reproduced; the stored file and its examples are kept (their machine, date and attack time)")
    else:
        path = save_result(result, results_dir)
        save_examples(result, path, data_dir)
    if write_card:
        from eee_zoo.cards import set_results

        card_path = model.eee_info.get("card_path")
        if not card_path:
            raise ValueError(f"{name}: the loaded model carries no card_path; cannot write its card")
        set_results(card_path, card_results(result, results_file_reference(path, results_dir)))
    return result, path


def save_examples(
    result: EvaluationResult | AdaptiveResult, results_path: Path, data_dir: str | os.PathLike | None = None
) -> Path:
    """Write ``result.x_adv`` beside its results file (:func:`benchmarks.results.examples_path`).

    The clean images are loaded again (the same first n test images; their hash must be the result's).
    """
    from eee_zoo.evaluation.inputs import load_inputs

    if result.x_adv is None:
        raise ValueError(f"{results_path}: the result holds no adversarial examples to write beside it")
    x, _, data = load_inputs(result.dataset, result.n_examples, data_dir, None)
    if data["sha256"] != result.data.get("sha256"):
        raise ValueError(f"{results_path}: the test images loaded now are not those the result was computed on")
    return save_adversarial_examples(
        examples_path(results_path),
        x,
        result.x_adv,
        eps=result.eps,
        threat_model=result.threat_model,
        metadata=result.examples_metadata(),
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.run",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawTextHelpFormatter,
    )
    parser.add_argument("names", nargs="*", help="checkpoint names (see `eee-zoo list`)")
    parser.add_argument("--all", action="store_true", help="every card (filtered by --dataset/--threat-model)")
    parser.add_argument("--dataset", default=None, help="cifar10 or cifar100 (default: cifar10; with --all: any)")
    parser.add_argument("--threat-model", default=None, help="Linf or L2 (default: Linf; with --all: any)")
    add_evaluation_arguments(parser)
    parser.add_argument("--no-leaderboard", action="store_true", help="do not rebuild the leaderboard at the end")
    return parser


def add_evaluation_arguments(
    parser: argparse.ArgumentParser, *, cards_dir: bool = True, results_dir: bool = True
) -> None:
    """The evaluation options shared by ``python -m benchmarks.run`` and ``eee-zoo benchmark``.

    ``cards_dir=False`` leaves out ``--cards-dir`` (``eee-zoo``'s common card arguments provide it);
    ``results_dir=False`` leaves out ``--results-dir`` (``eee-zoo benchmark`` has ``--out``, another default).
    """
    parser.add_argument(
        "--version", choices=[v for v in VERSIONS if v != "custom"], default=None,
        help="AutoAttack version (default: rand for stochastic inference, standard otherwise)",
    )  # fmt: skip
    parser.add_argument(
        "--n-examples", type=positive_int, default=10000, help="the first N test images (default: 10000)"
    )
    parser.add_argument(
        "--seed", type=nonnegative_int, default=0, help="AutoAttack / model generator seed (default: 0)"
    )
    parser.add_argument("--eps", type=parse_eps, default=None, help="budget, e.g. 8/255 (default: 8/255 Linf, 0.5 L2)")
    parser.add_argument("--batch-size", type=positive_int, default=DEFAULT_BATCH_SIZE, help="AutoAttack batch size")
    parser.add_argument(
        "--chunk-size", type=positive_int, default=None, metavar="N",
        help="attack in fixed chunks of N images, each its own AutoAttack run with its own seed and state, so a run "
        "longer than one sitting resumes chunk by chunk (another configuration: its file name says _chunkN; "
        f"default: one run, or chunks of {DEFAULT_CHUNK_SIZE} under torchrun)",
    )  # fmt: skip
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cpu)")
    add_layout_argument(parser)
    parser.add_argument(
        "--data-dir",
        default=None,
        help="data root holding <dataset>/<split>.npz (default: $EEE_ZOO_DATA, see eee_zoo.data)",
    )
    if results_dir:
        parser.add_argument("--results-dir", default=None, help=f"results root (default: {RESULTS_DIR})")
    parser.add_argument(
        "--state-dir", default=None, help=f"resumable AutoAttack state (default: {default_state_dir('autoattack')})"
    )
    parser.add_argument(
        "--fresh", action="store_true", help="discard a saved state of this configuration and attack from the start"
    )
    if cards_dir:
        parser.add_argument(
            "--cards-dir", default=None, help="model cards root (default: the repository's model_cards/)"
        )
    parser.add_argument("--model-dir", default=None, help="RobustBench-style weights dir (default: card folder / Hub)")
    parser.add_argument("--write-card", action="store_true", help="copy the results into the model card")
    parser.add_argument(
        "--deterministic", action="store_true", help="evaluate the model's deterministic mode (set_stochastic(False))"
    )
    parser.add_argument(
        "--allow-stochastic-standard", action="store_true",
        help="run a non-EOT version on a stochastic model anyway (the number is unreliable)",
    )  # fmt: skip
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def evaluation_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """Keyword arguments of :func:`run_one` from parsed :func:`add_evaluation_arguments` options."""
    return {
        "version": args.version,
        "n_examples": args.n_examples,
        "seed": args.seed,
        "eps": args.eps,
        "batch_size": args.batch_size,
        "chunk_size": args.chunk_size,
        "device": args.device,
        "data_dir": args.data_dir,
        "results_dir": args.results_dir,
        "state_dir": args.state_dir,
        "fresh": args.fresh,
        "cards_dir": args.cards_dir,
        "model_dir": args.model_dir,
        "write_card": args.write_card,
        "deterministic": args.deterministic,
        "allow_stochastic_standard": args.allow_stochastic_standard,
        "channels_last": args.channels_last,
        "progress": not args.no_progress,
    }


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    selected = selected_checkpoints(args)
    kwargs = evaluation_kwargs(args)
    for name, dataset, threat_model in selected:
        result, path = run_one(name, dataset=dataset, threat_model=threat_model, **kwargs)
        if is_main_process():
            print(result.summary())
            print(f"-> {path}" + (" (card updated)" if args.write_card else ""))
    if is_main_process() and not args.no_leaderboard:
        from .leaderboard import build

        results_dir = args.results_dir if args.results_dir is not None else RESULTS_DIR
        written = build(results_dir) if Path(results_dir).resolve() == RESULTS_DIR.resolve() else None
        if written is not None:
            print(f"leaderboard: {written['markdown']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
