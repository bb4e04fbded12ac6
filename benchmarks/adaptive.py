"""Score zoo checkpoints with the worst-case adaptive evaluation of :mod:`eee_zoo.adaptive` and keep the results.

    python -m benchmarks.adaptive NAME [--n-examples 500] [--seed 0] [--preset zoo] [--write-card]

Results go beside the AutoAttack ones, one folder down:
``benchmarks/results/<dataset>/<threat model>/<name>/adaptive/<preset>_eps8-255_n500_seed0_<sha12>.{json,log}``
(the file name also carries every setting that differs from the defaults). A rerun of the same configuration must
reproduce the stored per-image counts, or the stored file is kept and the run fails. Finished batches are kept in
the state directory (``--state-dir``), so an interrupted run resumes. The leaderboard lists these results in their
own table.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch.nn as nn

from eee_zoo._io import atomic_write_json, atomic_write_text
from eee_zoo.adaptive import AUTOATTACK_PROPOSALS, DEFAULT_BATCH_SIZE, DEFAULT_DRAWS, AdaptiveResult, adaptive_evaluate
from eee_zoo.commands.adaptive import add_attack_arguments, attack_kwargs

from .checkpoints import add_checkpoint_arguments, score_checkpoints
from .results import RESULTS_DIR, ResultsError, adaptive_card_results, eps_tag, examples_path, reproduces_stored
from .run import parse_eps, save_examples

__all__ = ["adaptive_path", "iter_adaptive", "judging", "main", "save_adaptive"]

logger = logging.getLogger(__name__)


def adaptive_path(result: dict[str, Any], results_dir: str | Path | None = None) -> Path:
    """``<root>/<dataset>/<threat model>/<name>/adaptive/<preset>_eps.._n.._seed.._<settings>_<sha12>.json``."""
    root = Path(results_dir) if results_dir is not None else RESULTS_DIR
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", result["model_name"])
    name = f"{result['preset']}_eps{eps_tag(result['eps'], result['threat_model'])}_n{result['n_examples']}"
    name += f"_seed{result['seed']}"
    settings = {**judging(result), "batch_size": result["batch_size"]}
    for key, default in (*DEFAULT_DRAWS.items(), ("batch_size", DEFAULT_BATCH_SIZE)):
        if settings[key] != default:
            name += f"_{key.replace('_', '')}{settings[key]}"
    if result["autoattack"] != list(AUTOATTACK_PROPOSALS):
        name += "_aa-" + ("+".join(result["autoattack"]) or "none")
    if result.get("autoattack_source") == "run":
        name += "_aa-run" + (f"-chunk{result['autoattack_chunk_size']}" if result.get("autoattack_chunk_size") else "")
    if result["cascade"]:
        name += "_cascade"
    name += f"_{result['checkpoint_sha256'][:12]}.json"
    return root / result["dataset"] / result["threat_model"] / safe / "adaptive" / name


def judging(result: dict[str, Any]) -> dict[str, int]:
    """How a result's attacks were judged: its draws (``tie_draws`` 0 in files from before ties were settled)."""
    return {key: int(result.get(key) or 0) for key in DEFAULT_DRAWS}


def save_adaptive(result: AdaptiveResult, results_dir: str | Path | None = None) -> Path:
    """Write the result and its summary atomically; refuse to replace a stored result this run did not reproduce.

    A stored file of the same attacks judged with other draws (a file from before ``tie_draws`` existed: the name
    leaves out the default draws) is replaced, not compared: judging the same attacks again supersedes the old
    judgement (one figure per attack stage, never the lower of two), and git keeps the old one."""
    if result.data.get("source") != "eee_zoo.data.load_dataset":
        raise ResultsError("adaptive results files hold evaluations on images loaded by eee_zoo.data.load_dataset")
    if result.autoattack_overrides:
        raise ResultsError(f"this result cut AutoAttack's settings {result.autoattack_overrides}: not a results file")
    data = result.to_dict()
    path = adaptive_path(data, results_dir)
    if path.exists():
        old = json.loads(path.read_text())
        now = json.loads(json.dumps({"robust": data["robust"], "chosen": data["chosen"]}))  # tuples as stored
        if judging(old) != judging(data):
            logger.info("%s: replacing a judgement with draws %s by one with %s", path, judging(old), judging(data))
        elif old.get("robust") != now["robust"] or old.get("chosen") != now["chosen"]:
            raise ResultsError(
                f"{path}: this rerun did not reproduce the stored per-image counts (per draw "
                f"{old.get('robust', {}).get('per_draw')} there, {data['robust']['per_draw']} now); "
                "keeping the stored file"
            )
    atomic_write_json(path, data)
    atomic_write_text(path.with_suffix(".log"), result.summary() + "\n")
    return path


def iter_adaptive(results_dir: str | Path | None = None) -> list[tuple[Path, dict[str, Any]]]:
    root = Path(results_dir) if results_dir is not None else RESULTS_DIR
    return [(p, json.loads(p.read_text())) for p in sorted(root.glob("*/*/*/adaptive/*.json"))]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.adaptive", description=__doc__.split("\n\n")[0])
    add_checkpoint_arguments(parser, default_n=500, card_help="copy the worst-case figures into the model card")
    parser.add_argument("--eps", type=parse_eps, default=None, help="budget, e.g. 8/255 (default: 8/255 Linf)")
    add_attack_arguments(parser)
    parser.set_defaults(_parser=parser)  # attack_kwargs reports usage errors through it
    args = parser.parse_args(argv)
    kwargs = attack_kwargs(args)  # before any model is loaded
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")

    def score(model: nn.Module, dataset: str, threat_model: str) -> AdaptiveResult:
        return adaptive_evaluate(model, args.n_examples, dataset, threat_model, eps=args.eps, **kwargs)

    def save(result: AdaptiveResult) -> list[Path]:
        data = result.to_dict()
        path = adaptive_path(data, args.results_dir)
        if reproduces_stored(data, path, with_examples=result.x_adv is not None):  # stored batches
            print(f"{path}: reproduced; the stored file and its examples are kept (their machine, date and time)")
            return [path, examples_path(path)] if result.x_adv is not None else [path]
        path = save_adaptive(result, args.results_dir)
        # each image's kept proposal beside its counts, to look at or to attack from
        return [path, save_examples(result, path, args.data_dir)] if result.x_adv is not None else [path]

    return score_checkpoints(args, score, save, adaptive_card_results)


if __name__ == "__main__":
    sys.exit(main())
