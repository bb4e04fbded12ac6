"""Certify zoo checkpoints by randomized smoothing (:mod:`eee_zoo.certify`) and keep the results.

    python -m benchmarks.certify NAME --sigma 0.25 [--n 10000] [--n-examples 100] [--seed 0] [--write-card]
    python -m benchmarks.certify NAME --sigma 1.0 0.5 0.25 ...        # the multi-scale cascade

Results go beside the AutoAttack ones, one folder down:
``benchmarks/results/<dataset>/<threat model>/<name>/certified/<method>_sigma<s>_N<n>_n0<n0>_alpha<a>_n<images>_
seed<seed>_<sto|det>_<sha12>.{json,log}`` (``_bs<B>`` when the batch size is not the default; the log holds the
summary and the command). A rerun of the same configuration must reproduce every image's answer, or the stored file
is kept and the run fails. Finished images are kept in the state directory (``--state-dir``), so an interrupted run
resumes. The leaderboard lists these results in their own table; ``--write-card`` copies the certified accuracies
into the model card, where they stand beside the empirical figures.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch.nn as nn

from eee_zoo._io import atomic_write_json, atomic_write_text
from eee_zoo.certify import DEFAULT_BATCH_SIZE, CertifyResult, certify
from eee_zoo.commands.certify import add_certify_arguments, certify_kwargs

from .checkpoints import add_checkpoint_arguments, score_checkpoints
from .results import RESULTS_DIR, ResultsError, interval_percent, percent_floor

__all__ = [
    "certified_card_problems", "certified_card_results", "certified_path", "certified_version", "iter_certified",
    "main", "save_certified",
]  # fmt: skip

_LOAD_SOURCE = "eee_zoo.data.load_dataset"
_PER_IMAGE = ("predictions", "p_lower", "radius", "scales", "outcome")  # what a rerun must reproduce


def _sigmas_tag(sigmas: Sequence[float]) -> str:
    return "+".join(f"{s:g}" for s in sigmas)


def certified_version(result: dict[str, Any]) -> str:
    """What a card calls the smoothing: ``cohen-sigma0.25-n0100-N10000-alpha0.001`` (``multiscale-sigma1+0.5-...``)."""
    return (
        f"{result['method']}-sigma{_sigmas_tag(result['sigmas'])}-n0{result['n0']}-N{result['n']}"
        f"-alpha{result['alpha']:g}"
    )


def certified_path(result: dict[str, Any], results_dir: str | Path | None = None) -> Path:
    """Where a certification result is stored (see the module docstring)."""
    root = Path(results_dir) if results_dir is not None else RESULTS_DIR
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", result["model_name"])
    mode = {True: "sto", False: "det", None: "any"}[result["stochastic"]]
    name = (
        f"{result['method']}_sigma{_sigmas_tag(result['sigmas'])}_N{result['n']}_n0{result['n0']}"
        f"_alpha{result['alpha']:g}_n{result['n_examples']}_seed{result['seed']}_{mode}"
    )
    if result["batch_size"] != DEFAULT_BATCH_SIZE:
        name += f"_bs{result['batch_size']}"
    name += f"_{result['checkpoint_sha256'][:12]}.json"
    threat = result.get("card_threat_model") or "L2"
    return root / result["dataset"] / threat / safe / "certified" / name


def save_certified(result: CertifyResult, results_dir: str | Path | None = None, *, command: str = "") -> Path:
    """Write the result and its log atomically; refuse to replace a stored result this run did not reproduce."""
    if result.data.get("source") != _LOAD_SOURCE:
        raise ResultsError("certified results files hold runs on images loaded by eee_zoo.data.load_dataset")
    data = result.to_dict()
    path = certified_path(data, results_dir)
    if path.exists():
        old = json.loads(path.read_text())
        differ = [k for k in _PER_IMAGE if old.get(k) != data[k]]
        if differ:
            raise ResultsError(
                f"{path}: this rerun did not reproduce the stored per-image answers (differs in {differ}); "
                "keeping the stored file"
            )
    atomic_write_json(path, data)
    log = result.summary() + (f"\n\ncommand: {command}" if command else "") + "\n"
    atomic_write_text(path.with_suffix(".log"), log)
    return path


def iter_certified(results_dir: str | Path | None = None) -> list[tuple[Path, dict[str, Any]]]:
    """Every certification results file under ``results_dir`` (sorted by path) with its data."""
    root = Path(results_dir) if results_dir is not None else RESULTS_DIR
    return [(p, json.loads(p.read_text())) for p in sorted(root.glob("*/*/*/certified/*.json"))]


def certified_card_results(result: dict[str, Any], results_file: str) -> list[dict[str, Any]]:
    """The card entries of a certification result: certified accuracy at each of its L2 radii (``eps``)."""
    if (result.get("data") or {}).get("source") != _LOAD_SOURCE:
        raise ResultsError("a result on caller-provided images cannot go into a model card")
    n = result["n_examples"]
    common = {
        "metric": "certified_accuracy", "version": certified_version(result), "norm": "L2", "seed": result["seed"],
        "n_examples": n, "stochastic": result["stochastic"], "results_file": results_file,
        "sigmas": list(result["sigmas"]), "smoothing_n": result["n"], "alpha": result["alpha"],
    }  # fmt: skip
    return [
        {**common, "value": percent_floor(c["correct"], n), "correct": c["correct"], "eps": c["radius"],
         "radius_linf": c["radius_linf"], "interval": interval_percent(c["interval"])}
        for c in result["certified"]
    ]  # fmt: skip


def certified_card_problems(card: Any, r: dict[str, Any], path: Path) -> list[str]:
    """What is wrong with one certified card entry ``r`` against its results file ``path`` (empty: backed)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        return [f"{path}: not a readable JSON results file ({e})"]
    if not isinstance(data, dict) or data.get("suite") != "certify":
        return [f"{path}: not a certification results file"]
    out = []
    expect = {
        "model_name": card.name, "checkpoint_sha256": card.sha256, "dataset": card.dataset,
        "n_examples": r["n_examples"], "seed": r["seed"],
    }  # fmt: skip
    out += [
        f"{k} is {v!r} in the card but {data.get(k)!r} in the results file"
        for k, v in expect.items()
        if data.get(k) != v
    ]
    if r["version"] != certified_version(data):
        out.append(f"version is {r['version']!r} in the card but {certified_version(data)!r} in the results file")
    if r.get("stochastic") != data.get("stochastic"):
        out.append(f"stochastic is {r.get('stochastic')!r} in the card but {data.get('stochastic')!r} in the file")
    at = [c for c in data.get("certified", []) if abs(float(c["radius"]) - float(r["eps"])) < 1e-12]
    if not at:
        out.append(f"the results file has no certified accuracy at L2 radius {r['eps']}")
    elif at[0]["correct"] != r["correct"] or abs(r["value"] - 100.0 * at[0]["correct"] / data["n_examples"]) > 0.005:
        out.append(f"{r['correct']} correct ({r['value']} %) in the card but {at[0]['correct']} in the results file")
    elif r.get("interval") != (interval := interval_percent(at[0]["interval"])):
        out.append(f"95 % interval {r.get('interval')} in the card but {interval} in the results file")
    if (data.get("data") or {}).get("source") != _LOAD_SOURCE:
        out.append("the results file was computed on caller-provided images")
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.certify", description=__doc__.split("\n\n")[0])
    add_checkpoint_arguments(parser, default_n=100, card_help="copy the certified accuracies into the model card")
    add_certify_arguments(parser)
    parser.add_argument("--no-progress", action="store_true", help="no progress bar or progress lines")
    args = parser.parse_args(argv)
    args._parser = parser
    kwargs = certify_kwargs(args)  # usage errors before any model is loaded
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    command = "python -m benchmarks.certify " + shlex.join(sys.argv[1:] if argv is None else list(argv))

    def score(model: nn.Module, dataset: str, threat_model: str) -> CertifyResult:
        return certify(model, args.n_examples, dataset, progress=not args.no_progress, **kwargs)

    def save(result: CertifyResult) -> list[Path]:
        return [save_certified(result, args.results_dir, command=command)]

    return score_checkpoints(args, score, save, certified_card_results)


if __name__ == "__main__":
    sys.exit(main())
