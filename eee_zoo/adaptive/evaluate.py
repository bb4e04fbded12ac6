"""``adaptive_evaluate``: the per-image worst case of a (stochastic) self-ensemble over every attack it knows.

Flow per batch of images: judge the clean images on the selection draws; every attack (of a preset, plus
AutoAttack's own examples) proposes adversarial examples for every image still right on some selection draw;
:class:`~eee_zoo.adaptive.worst_case.WorstCase` keeps, per image, the proposal the deployed model gets right least
often; the kept proposals are scored on fresh draws. Batches are seeded on their own, and with ``state_dir`` each
finished batch is stored, so a killed run resumes where it stopped with the uninterrupted result.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import safetensors.torch
import torch
import torch.nn as nn

from .._cpu import session_record, session_text
from .._io import atomic_write_bytes, atomic_write_json
from .._precision import strict_fp32
from .._progress import Progress, ProgressOutput
from ..datasets import DEFAULT_EPS, check_eps, parse_dataset, parse_threat_model
from ..evaluation.api import DEFAULT_BATCH_SIZE as AUTOATTACK_BATCH_SIZE
from ..evaluation.autoattack import check_overrides
from ..evaluation.checks import check_eval_mode, check_int, check_ints, check_n_examples
from ..evaluation.distributed import DistInfo
from ..evaluation.examples import project
from ..evaluation.inputs import model_config, prepare_inputs
from ..evaluation.results import versions
from ..evaluation.seeds import RUN_LOCK, derive_seed, preserve_model_seeds
from .attacks import Attack
from .autoattack_proposals import APGD_ITERATIONS, autoattack_examples, autoattack_run_examples
from .presets import AUTOATTACK_PROPOSALS, PRESETS
from .result import AdaptiveResult, Column
from .worst_case import CLEAN, Tally, WorstCase

__all__ = ["DEFAULT_BATCH_SIZE", "DEFAULT_DRAWS", "adaptive_evaluate"]

DEFAULT_BATCH_SIZE = 100
DEFAULT_DRAWS = {"selection_draws": 10, "final_draws": 200, "tie_draws": 800, "fresh_draws": 50}
_SELF_ENSEMBLE_API = ("predictor_logits", "set_stochastic", "manual_seed", "aggregate")
STATE_FORMAT = 3  # 1: judged draws in the key, one judgement per file; 2: the weights' hash without the model's config

logger = logging.getLogger(__name__)


@strict_fp32()  # TF32 off on GPUs: attacks and accuracies in true fp32
def adaptive_evaluate(
    model: nn.Module,
    n_examples: int = 500,
    dataset: str = "cifar10",
    threat_model: str = "Linf",
    *,
    eps: float | None = None,
    preset: str = "zoo",
    attacks: Sequence[Attack] | None = None,
    autoattack: Sequence[str] = AUTOATTACK_PROPOSALS,
    selection_draws: int = DEFAULT_DRAWS["selection_draws"],
    fresh_draws: int = DEFAULT_DRAWS["fresh_draws"],
    final_draws: int = DEFAULT_DRAWS["final_draws"],
    tie_draws: int = DEFAULT_DRAWS["tie_draws"],
    cascade: bool = False,
    autoattack_overrides: dict[str, Any] | None = None,
    autoattack_runs: str | os.PathLike | None = None,
    autoattack_chunk_size: int | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    seed: int = 0,
    device: str | torch.device | None = None,
    data_dir: Any = None,
    inputs: tuple[torch.Tensor, torch.Tensor] | None = None,
    model_name: str | None = None,
    state_dir: str | Path | None = None,
    fresh: bool = False,
    progress: ProgressOutput = True,
) -> AdaptiveResult:
    """Robust accuracy of a self-ensemble: per image, the worst of every attack's proposals (see the module doc).

    ``preset`` names an attack suite of :data:`~eee_zoo.adaptive.presets.PRESETS` (``attacks`` replaces it with
    your own list); ``autoattack`` names AutoAttack versions whose adversarial examples join the proposals
    (``rand`` on the deployed model, ``standard-det`` on the deterministic mode; ``()`` for none). Each image keeps
    the proposal the deployed model gets right on fewest of ``selection_draws`` draws, scored on ``fresh_draws``
    other draws; with ``final_draws`` (0: off) each attack's finalist is judged again on that many further draws and
    the image keeps the finalist with fewest hits there; finalists tied there are judged on up to ``tie_draws``
    further draws, in rounds of ``final_draws`` (see :mod:`~eee_zoo.adaptive.worst_case`).
    ``autoattack_overrides`` cut AutoAttack's settings (``{"apgd.n_iter": 4}``: tests and quick
    looks only; recorded in the result). ``autoattack_runs``: a state directory of :func:`eee_zoo.evaluate`; given,
    each AutoAttack version's examples come from its full run on these ``n_examples`` images with ``seed`` (the run
    ``eee-zoo benchmark`` / ``benchmarks.run`` keep there with the same settings: reused when finished, run and kept
    there when not) instead of an AutoAttack run inside every batch; recorded as ``autoattack_source="run"``.
    ``autoattack_chunk_size``: those runs were made in fixed chunks of that many images (``benchmarks.run
    --chunk-size``: each chunk its own seed and resumable run, for runs longer than a session); recorded.
    ``cascade=True`` skips images already wrong on every selection draw
    (faster; labelled in the result). ``state_dir``: keep finished batches there and resume from them
    (``fresh=True``: attack anew, overwriting them). Other arguments as in :func:`eee_zoo.evaluate`.
    """

    wall_start = time.perf_counter()
    dataset = parse_dataset(dataset)
    threat_model = parse_threat_model(threat_model)
    check_n_examples(n_examples, dataset)
    check_ints(1, selection_draws=selection_draws, fresh_draws=fresh_draws, batch_size=batch_size)
    check_ints(0, final_draws=final_draws, tie_draws=tie_draws)
    tie_draws = tie_draws if final_draws else 0  # ties are settled after the final stage only
    check_int("seed", seed, lo=0)
    if autoattack_chunk_size is not None:
        check_int("autoattack_chunk_size", autoattack_chunk_size, lo=1)
        if autoattack_runs is None:
            raise ValueError("autoattack_chunk_size names how AutoAttack's runs were made: give autoattack_runs too")
    if attacks is None:
        if preset not in PRESETS:
            raise ValueError(f"preset must be one of {sorted(PRESETS)}, got {preset!r}")
        attacks = PRESETS[preset]
    else:
        preset = "custom"
    attacks = list(attacks)
    names = [a.name for a in attacks]
    if not all(isinstance(a, Attack) for a in attacks) or len(set(names)) != len(names):
        raise ValueError("attacks must be Attack values with distinct names")
    autoattack = list(autoattack)
    if any(v not in AUTOATTACK_PROPOSALS for v in autoattack) or len(set(autoattack)) != len(autoattack):
        raise ValueError(f"autoattack must name distinct versions from {list(AUTOATTACK_PROPOSALS)}, got {autoattack}")
    if not attacks and not autoattack:
        raise ValueError("nothing to attack with: give a preset, attacks or autoattack versions")
    check_eval_mode(model)
    missing = [m for m in _SELF_ENSEMBLE_API if not callable(getattr(model, m, None))]
    if missing:
        raise TypeError(f"adaptive attacks need a self-ensemble (eee_zoo SelfEnsemble); the model lacks {missing}")
    random = getattr(model, "is_random", True)
    if not random:
        selection_draws, fresh_draws, final_draws, tie_draws, attacks, autoattack = _one_draw(attacks, autoattack)
    eps = check_eps(DEFAULT_EPS[threat_model] if eps is None else eps, threat_model)
    prepared = prepare_inputs(
        model, dataset, threat_model, n_examples,
        device=device, dist_info=DistInfo.detect(False), data_dir=data_dir, inputs=inputs, model_name=model_name,
    )  # fmt: skip
    device, x, y, data = prepared.device, prepared.x, prepared.y, prepared.data
    name, sha = prepared.name, prepared.sha256

    overrides = check_overrides(autoattack_overrides)
    # the attack stage's settings: final and fresh draws only judge what the attacks left (see _BatchStore); the
    # model's config as well as its weights, which its inference-time variants (eee_zoo.models.variants) share
    config = {
        "format": STATE_FORMAT, "model": sha, "model_config": model_config(model), "dataset": dataset,
        "threat_model": threat_model,
        "eps": float(eps), "seed": seed, "batch_size": batch_size, "attacks": [a.__dict__ for a in attacks],
        "autoattack": autoattack, "selection_draws": selection_draws, "cascade": cascade,
    }  # fmt: skip
    if overrides:  # only when set, so that the key of a full run does not depend on this option's existence
        config["autoattack_overrides"] = overrides
    source = "run" if autoattack_runs is not None and autoattack else "batch"
    if source == "run":  # the examples depend on the whole run's images (its n) and AutoAttack's batch size
        config["autoattack_source"] = {"run": {"n_examples": n_examples, "batch_size": AUTOATTACK_BATCH_SIZE}}
        if autoattack_chunk_size is not None:  # only when set: unchunked runs keep their keys
            config["autoattack_source"]["run"]["chunk_size"] = autoattack_chunk_size
    else:
        autoattack_chunk_size = None  # no runs, nothing chunked
    state = _BatchStore(state_dir, config, fresh=fresh)
    columns = ["clean", "robust", *autoattack_names(autoattack), *names]
    batches: list[dict[str, Any]] = []
    kept: list[torch.Tensor | None] = []  # per batch, the headline's kept proposals
    starts = list(range(0, n_examples, batch_size))
    images_of = {s: _images_sha256(x[s : s + batch_size], y[s : s + batch_size]) for s in starts}
    loaded = {s: state.load(s, images_of[s]) for s in starts}  # read once: for the check below and the loop
    run_examples: dict[str, torch.Tensor] = {}
    if source == "run" and any(r is None for r in loaded.values()):
        # some batch will attack: AutoAttack's runs first, each with its own progress
        for version in autoattack:
            logger.info("AutoAttack %s: the examples of its run on the %d images (state in %s)", version, n_examples,
                        autoattack_runs)  # fmt: skip
            run_examples[version] = autoattack_run_examples(
                model, version, n_examples, dataset, threat_model, eps=eps, seed=seed, state_path=autoattack_runs,
                overrides=overrides, data_dir=data_dir, inputs=inputs, model_name=model_name,
                chunk_size=autoattack_chunk_size, progress=progress,
            )  # fmt: skip
    work = (0 if source == "run" else sum(APGD_ITERATIONS[v] for v in autoattack)) + sum(
        a.n_iter * a.runs_per_image(model.num_predictors) for a in attacks
    )
    total = len(starts) * work  # APGD/PGD iterations (AutoAttack's FAB and Square are not counted)
    session = session_record(device, model)  # kept with what this call attacks and judges: its floats depend on it
    with RUN_LOCK, preserve_model_seeds(model), Progress("adaptive", total, output=progress, unit="it") as bar:
        was_stochastic = bool(model.stochastic)
        try:
            for b, start in enumerate(starts):
                xb, yb = x[start : start + batch_size], y[start : start + batch_size]
                images, record = images_of[start], loaded[start]
                where = f"batch {b + 1}/{len(starts)} (images {start}-{start + len(yb) - 1})"
                xb, yb = xb.to(device), yb.to(device)
                batch_seed = derive_seed(seed, start)
                draws = {
                    "selection_draws": selection_draws, "selection_seed": derive_seed(batch_seed, "selection"),
                    "fresh_draws": fresh_draws, "fresh_seed": derive_seed(batch_seed, "fresh"),
                    "final_draws": final_draws, "final_seed": derive_seed(batch_seed, "final"),
                    "tie_draws": tie_draws,
                }  # fmt: skip
                if record is None:
                    worst, record = _attack_batch(
                        model, xb, yb, attacks, autoattack, eps=eps, norm=threat_model, seed=batch_seed,
                        draws=draws, cascade=cascade, overrides=overrides, bar=bar, batch_no=b + 1, where=where,
                        given={v: t[start : start + len(yb)] for v, t in run_examples.items()} or None,
                    )  # fmt: skip
                    record["arithmetic"] = session
                    state.save(start, images, record, _examples(worst))
                else:
                    logger.info("%s: attacks resumed from %s", where, state.root)
                    bar.skip((b + 1) * total // len(starts) - bar.done, text=f"{where}: resumed")
                    worst = None
                judge_key = judgement_key(final_draws, tie_draws, fresh_draws)
                if judge_key not in record["judged"]:
                    if worst is None:
                        stored = _stored_columns(record, columns[2:], state.examples(start), device)
                        worst = WorstCase.from_columns(model, xb, yb, stored, **draws)
                    record["judged"][judge_key] = {**_judge(worst, bar, where), "arithmetic": session}
                    state.save_record(start, images, record)
                batches.append(_batch_columns(record, judge_key))
                kept.append(
                    worst.overall.x.cpu()
                    if worst is not None
                    else _kept_examples(record, judge_key, xb, state, start, images)
                )
                if kept[-1] is not None:  # attacked or judged now: replace; rebuilt from stored examples: if missing
                    state.save_kept(start, images, judge_key, xb, kept[-1], replace=worst is not None)
                bar.update(done=(b + 1) * total // len(starts))
            bar.update(done=total)
        finally:
            model.set_stochastic(was_stochastic)

    merged = {
        c: {key: sum((bt["columns"][c][key] for bt in batches), []) for key in ("selection", "fresh")} for c in columns
    }
    seconds = {c: sum(bt["columns"][c]["seconds"] for bt in batches) for c in columns}
    proposals = {c: max(bt["columns"][c]["proposals"] for bt in batches) for c in columns}
    sessions = [a for bt in batches for a in bt["arithmetic"] if a is not None]
    attacked_on = list(dict.fromkeys(session_text(a) for a in sessions))
    unrecorded = sum(bt["arithmetic"][0] is None for bt in batches)
    if unrecorded:  # batches stored before their records named where they ran
        attacked_on.append(f"not recorded for {unrecorded} of {len(batches)} batches (stored before the record)")

    def column(c: str) -> Column:
        m = merged[c]
        return Column.from_hits(c, m["selection"], m["fresh"], fresh_draws, seconds=round(seconds[c], 1),
                                proposals=proposals[c])  # fmt: skip

    return AdaptiveResult(
        model_name=name, checkpoint_sha256=sha, dataset=dataset, threat_model=threat_model, eps=float(eps),
        n_examples=n_examples, seed=seed, batch_size=batch_size, preset=preset,
        attacks=[{"name": a.name, "description": a.describe(), **a.__dict__} for a in attacks],
        autoattack=autoattack, autoattack_overrides=overrides, autoattack_source=source,
        autoattack_chunk_size=autoattack_chunk_size,
        selection_draws=selection_draws,
        fresh_draws=fresh_draws, final_draws=final_draws, tie_draws=tie_draws, cascade=cascade,
        clean=column("clean"), robust=column("robust"), per_attack=[column(c) for c in columns[2:]],
        chosen=sum((bt["chosen"] for bt in batches), []), data=data,
        x_adv=torch.cat(kept) if all(k is not None for k in kept) else None, versions=versions(), device=str(device),
        attacked_on=attacked_on,
        wall_time_s=round(time.perf_counter() - wall_start, 1), stochastic=random,
        created=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    )  # fmt: skip


def _one_draw(attacks: list[Attack], autoattack: list[str]) -> tuple[int, int, int, int, list[Attack], list[str]]:
    """Draws, attacks and AutoAttack versions for a model whose stack draws nothing (a single-resolution baseline):
    every draw is the same function, so one draw judges exactly, EOT over E copies is E times one gradient, and
    AutoAttack ``rand`` (APGD-CE and APGD-DLR with EOT 20) repeats what ``standard`` runs without EOT."""
    attacks = [dataclasses.replace(a, draws=min(a.draws, 1)) for a in attacks]
    dropped = [v for v in autoattack if v == "rand"]
    autoattack = [v for v in autoattack if v != "rand"]
    if not attacks and not autoattack:
        raise ValueError("the model draws no randomness, so AutoAttack rand is standard-det: ask for standard-det")
    logger.info(
        "the model's stack draws no randomness: judging on 1 draw, EOT on 1 draw%s",
        ", AutoAttack rand left out (standard-det covers it)" if dropped else "",
    )
    return 1, 1, 0, 0, attacks, autoattack


def judgement_key(final_draws: int, tie_draws: int, fresh_draws: int) -> str:
    """The name a stored batch files one judgement of its attacks under (judging needs no attack to run again)."""
    return f"final{final_draws}" + (f"_tie{tie_draws}" if tie_draws else "") + f"_fresh{fresh_draws}"


def autoattack_names(versions: Sequence[str]) -> list[str]:
    return [f"autoattack-{v}" for v in versions]


def _attack_batch(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    attacks: list[Attack],
    autoattack: list[str],
    *,
    eps: float,
    norm: str,
    seed: int,
    draws: dict[str, int],
    cascade: bool,
    overrides: dict[str, Any],
    bar: Progress,
    batch_no: int,
    where: str,
    given: dict[str, torch.Tensor] | None = None,
) -> tuple[WorstCase, dict[str, Any]]:
    """The attack stage of one batch: every attack's proposals offered to a :class:`WorstCase`; returns it and the
    record of its columns (what :class:`_BatchStore` keeps). ``given``: each AutoAttack version's examples of this
    batch's images, from its full run (``autoattack_source="run"``), instead of running AutoAttack here."""
    worst = WorstCase(model, x, y, **draws)
    attackable = worst.clean_hits > 0  # right on some selection draw: there is something to break
    seconds: dict[str, float] = {}
    proposals: dict[str, int] = {}

    def targets() -> torch.Tensor:
        return torch.nonzero(worst.still_correct() if cascade else attackable).flatten()

    for version, column in zip(autoattack, autoattack_names(autoattack)):
        t0 = time.perf_counter()
        meter = _Meter(bar, f"AutoAttack {version}", 100, where, worst, batch_no)
        bar.update(text=f"{where}: AutoAttack {version}, worst case so far {_share(worst)}")
        idx = targets()
        if len(idx) and given is not None:
            x_adv = given[version][idx.cpu()].to(x.device)
        elif len(idx):
            x_adv = autoattack_examples(
                model, x[idx], y[idx], version, eps=eps, norm=norm, seed=derive_seed(seed, column) % (2**31),
                overrides=overrides, on_iteration=meter.iteration,
            )  # fmt: skip
        if len(idx):
            x_adv = project(x[idx], x_adv, eps, norm)  # AutoAttack keeps to the ball up to rounding: make it exact
            lowered = worst.offer(column, "examples", x_adv, idx)
            logger.info("%s: %s lowered %d images", where, column, lowered)
        worst.add_column(column)
        seconds[column], proposals[column] = time.perf_counter() - t0, 1
        bar.update(done=meter.first + (0 if given is not None else APGD_ITERATIONS[version]))

    for attack in attacks:
        t0 = time.perf_counter()
        idx = targets()
        worst.add_column(attack.name)
        runs = attack.runs_per_image(model.num_predictors)
        meter = _Meter(bar, attack.name, attack.n_iter, where, worst, batch_no)
        count = 0
        if len(idx):
            seed_k = derive_seed(seed, attack.name) % (2**31)
            for label, x_adv in attack.proposals(
                model, x[idx], y[idx], eps=eps, norm=norm, seed=seed_k, on_iteration=meter.iteration
            ):
                worst.offer(attack.name, label, x_adv, idx)
                count += 1
        bar.update(done=meter.first + runs * attack.n_iter)
        seconds[attack.name], proposals[attack.name] = time.perf_counter() - t0, count
        logger.info(
            "%s: %s done in %.1f s, worst case so far %s", where, attack.name, seconds[attack.name], _share(worst)
        )

    record: dict[str, Any] = {
        "clean": {"selection": worst.clean_hits.tolist()},
        "columns": {
            c: {
                "selection": t.selection_hits.tolist(),
                "p_true": t.selection_p_true.tolist(),
                "source": t.source,
                "seconds": seconds[c],
                "proposals": proposals[c],
            }  # fmt: skip
            for c, t in worst.per_attack.items()
        },
        "judged": {},
    }
    return worst, record


def _judge(worst: WorstCase, bar: Progress, where: str) -> dict[str, Any]:
    """The judging stage: finalists on the final draws, the kept proposals on the fresh draws."""

    def stage(draws: int, what: str) -> Callable[[str], None]:
        def on_column(name: str) -> None:
            bar.update(text=f"{where}: judging {name} on {draws} {what} draws")
            logger.info("%s: judging %s on %d %s draws", where, name, draws, what)

        return on_column

    worst.finalize(stage(worst.final_draws, "final"))
    worst.score(stage(worst.fresh_draws, "fresh"))
    return {
        "robust": {"selection": worst.overall.selection_hits.tolist(), "fresh": worst.overall.fresh_hits.tolist()},
        "chosen": list(worst.overall.source),
        "clean_fresh": worst.clean_fresh_hits.tolist(),
        "fresh": {c: t.fresh_hits.tolist() for c, t in worst.per_attack.items()},
    }


def _kept_examples(
    record: dict[str, Any], judge_key: str, x: torch.Tensor, state: _BatchStore, start: int, images: str
) -> torch.Tensor | None:
    """A stored batch's headline examples: from each image's chosen proposal where every attack's kept proposals
    are stored, else from the headline's own kept file (None: neither is stored)."""
    try:
        examples = state.examples(start)
    except FileNotFoundError:
        return state.kept(start, images, judge_key, x)
    kept = x.detach().cpu().clone()
    for i, source in enumerate(record["judged"][judge_key]["chosen"]):
        if source != CLEAN:
            kept[i] = examples[f"attack/{source.split('/', 1)[0]}"][i]
    return kept


def _examples(worst: WorstCase) -> dict[str, torch.Tensor]:
    return {f"attack/{c}": t.x for c, t in worst.per_attack.items()}


def _stored_columns(
    record: dict[str, Any], order: list[str], examples: dict[str, torch.Tensor], device: torch.device
) -> dict[str, Tally]:
    """Each attack's kept proposals as :class:`Tally` columns, from a stored batch, in ``order``: the order the
    attacks ran (ties go to the earlier column; the JSON's keys are sorted)."""
    columns = {}
    for c in order:
        col = record["columns"][c]
        x = examples[f"attack/{c}"].to(device)
        columns[c] = Tally(
            x, torch.tensor(col["selection"], device=x.device), torch.tensor(col["p_true"], dtype=torch.float64,
            device=x.device), list(col["source"]),
        )  # fmt: skip
    return columns


def _batch_columns(record: dict[str, Any], judge_key: str) -> dict[str, Any]:
    """One batch's figures in the layout the merge reads: per column selection and fresh hits, seconds, proposals."""
    judged = record["judged"][judge_key]
    cols: dict[str, dict[str, Any]] = {
        "clean": {"selection": record["clean"]["selection"], "fresh": judged["clean_fresh"], "seconds": 0.0,
                  "proposals": 1},
        "robust": {**judged["robust"], "seconds": 0.0,
                   "proposals": 1 + sum(c["proposals"] for c in record["columns"].values())},
    }  # fmt: skip
    for c, col in record["columns"].items():
        cols[c] = {"selection": col["selection"], "fresh": judged["fresh"][c], "seconds": col["seconds"],
                   "proposals": col["proposals"]}  # fmt: skip
    # where its attacks and this judgement ran (None: stored before batches recorded it)
    sessions = [record.get("arithmetic"), judged.get("arithmetic")]
    return {"columns": cols, "chosen": judged["chosen"], "arithmetic": sessions}


class _Meter:
    """Moves the bar with an attack's iterations; a run's iteration count restarting means the next run began."""

    def __init__(self, bar: Progress, name: str, n_iter: int, where: str, worst: WorstCase, batch_no: int) -> None:
        self.bar, self.name, self.n_iter, self.where, self.worst, self.batch_no = (
            bar,
            name,
            n_iter,
            where,
            worst,
            batch_no,
        )
        self.first, self.offset, self.last = bar.done, 0, 0

    def iteration(self, i: int) -> None:
        if i < self.last:
            self.offset += self.n_iter
        self.last = i
        text = f"{self.where}: {self.name} iteration {i}/{self.n_iter}, worst case so far"
        self.bar.update(
            done=self.first + self.offset + i, text=f"{text} {_share(self.worst)}",
            batch=self.batch_no, attack=self.name, iteration=i,
        )  # fmt: skip


def _share(worst: WorstCase) -> str:
    hits = worst.overall.selection_hits
    return f"{float(hits.sum()) / (len(hits) * worst.selection_draws):.2%} per selection draw"


def _images_sha256(x: torch.Tensor, y: torch.Tensor) -> str:
    digest = hashlib.sha256(x.detach().cpu().contiguous().numpy().tobytes())
    digest.update(y.detach().cpu().numpy().astype("<i8").tobytes())
    return digest.hexdigest()


def state_folder(config: dict[str, Any]) -> str:
    """The folder (under a state dir) of the finished batches of the attack stage configured by ``config``."""
    key = hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return f"adaptive_{key}"


class _BatchStore:
    """Finished batches on disk, keyed by the attack stage's configuration; every file is written atomically.

    Per batch: ``batchNNNNNN.examples.safetensors`` (each attack's kept proposals), ``batchNNNNNN.json`` (their
    selection counts and sources, the sha256 of the images, and the judgements made of them, one per
    ``final<F>_fresh<R>``) and, per judgement, ``batchNNNNNN.<judgement>.kept.safetensors`` (the headline's examples
    only: the images whose kept proposal is not the clean image, in float32, ~0.6 MB for 50 CIFAR images). The
    examples file is large and stays local; the kept file is small enough to travel with the JSON, so a run resumed
    in another checkout still writes its headline's examples.

    The key leaves out ``n_examples`` (batch ``k`` holds images ``k*B .. (k+1)*B - 1`` with its own seeds whatever n
    is, so the first 100 images of a 500-image run are a 100-image run) and the final and fresh draws (judging again
    with more draws reuses the attacks). A file whose images differ is refused.
    """

    def __init__(self, state_dir: str | Path | None, config: dict[str, Any], *, fresh: bool = False) -> None:
        self.root = None if state_dir is None else Path(state_dir) / state_folder(config)
        self.config, self.fresh = config, fresh

    def _path(self, start: int, suffix: str) -> Path:
        assert self.root is not None
        return self.root / f"batch{start:06d}{suffix}"

    def load(self, start: int, images: str) -> dict[str, Any] | None:
        if self.root is None or self.fresh or not self._path(start, ".json").is_file():
            return None
        path = self._path(start, ".json")
        stored = json.loads(path.read_text())
        if stored.get("images_sha256") != images:
            raise ValueError(f"{path} holds another batch of images than images {start}-...; remove it or pass fresh")
        return stored["batch"]

    def examples(self, start: int) -> dict[str, torch.Tensor]:
        """The stored kept proposals, needed to judge a stored batch on other draws."""
        path = self._path(start, ".examples.safetensors")
        if not path.is_file():
            raise FileNotFoundError(
                f"{path} is missing: the batch's attacks are stored without their examples, so they cannot be judged "
                "on other final/fresh draws; run again with the stored draws, or pass fresh to attack anew"
            )
        return safetensors.torch.load_file(path)

    def save(self, start: int, images: str, record: dict[str, Any], examples: dict[str, torch.Tensor]) -> None:
        """Examples first, so a JSON means both exist."""
        if self.root is None:
            return
        tensors = {k: v.detach().cpu().contiguous() for k, v in examples.items()}
        atomic_write_bytes(self._path(start, ".examples.safetensors"), safetensors.torch.save(tensors))
        self.save_record(start, images, record)

    def kept(self, start: int, images: str, judge_key: str, x: torch.Tensor) -> torch.Tensor | None:
        """The headline's examples of a judged batch of clean images ``x`` (None: not stored)."""
        if self.root is None or not (path := self._path(start, f".{judge_key}.kept.safetensors")).is_file():
            return None
        with safetensors.safe_open(str(path), framework="pt") as f:
            if (f.metadata() or {}).get("images_sha256") != images:
                raise ValueError(f"{path} holds the examples of other images than images {start}-...; remove it")
            indices, x_adv = f.get_tensor("indices"), f.get_tensor("x_adv")
        kept = x.detach().to("cpu", torch.float32).clone()
        kept[indices] = x_adv
        return kept

    def save_kept(
        self, start: int, images: str, judge_key: str, x: torch.Tensor, kept: torch.Tensor, *, replace: bool
    ) -> None:
        """Store a judged batch's headline examples; an existing file is kept unless ``replace`` (the batch was
        attacked or judged again), so a resumed run does not rewrite, nor a GPU call bring back, unchanged files."""
        if self.root is None:
            return
        path = self._path(start, f".{judge_key}.kept.safetensors")
        if path.is_file() and not replace:
            return
        x, kept = x.detach().to("cpu", torch.float32), kept.detach().to("cpu", torch.float32)
        indices = torch.nonzero((kept != x).flatten(1).any(dim=1)).flatten().to(torch.int64)
        tensors = {"indices": indices.contiguous(), "x_adv": kept[indices].contiguous()}
        atomic_write_bytes(path, safetensors.torch.save(tensors, metadata={"images_sha256": images}))

    def save_record(self, start: int, images: str, record: dict[str, Any]) -> None:
        if self.root is not None:
            atomic_write_json(self._path(start, ".json"), {"config": self.config, "images_sha256": images,
                                                           "batch": record})  # fmt: skip
