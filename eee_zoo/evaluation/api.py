"""The public entry points: :func:`benchmark` (RobustBench's call shape) and :func:`evaluate` (the full result).

Both check their arguments and the model before any data is read, load the images, and run AutoAttack's
cascade (:mod:`.cascade`) once or per chunk (:mod:`.distributed`), resumably (:mod:`.runner`); the records
become an :class:`~.results.EvaluationResult`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn as nn

from .._precision import strict_fp32
from .._progress import ProgressOutput
from ..datasets import DEFAULT_EPS, check_eps, parse_dataset, parse_threat_model
from .autoattack import VERSIONS, attack_list, attack_settings, check_overrides, default_version
from .checks import check_eval_mode, check_int, check_n_examples
from .distributed import DistInfo, run_chunks
from .inputs import model_config, prepare_inputs
from .intervals import INTERVALS
from .results import EvaluationResult, summarize
from .runner import RunSpec, run_resumable
from .seeds import preserve_model_seeds
from .state import make_identity, state_location

__all__ = ["DEFAULT_BATCH_SIZE", "DEFAULT_CHUNK_SIZE", "benchmark", "evaluate"]

DEFAULT_BATCH_SIZE = 500
DEFAULT_CHUNK_SIZE = 500


def benchmark(
    model: nn.Module,
    n_examples: int = 10000,
    dataset: str = "cifar10",
    threat_model: str = "Linf",
    *,
    version: str | None = None,
    eps: float | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    seed: int = 0,
    device: str | torch.device | None = None,
    data_dir: str | os.PathLike | None = None,
    state_path: str | os.PathLike | None = None,
    fresh: bool = False,
    progress: ProgressOutput = True,
) -> tuple[float, float]:
    """Clean and robust accuracy (fractions) of ``model`` on the first ``n_examples`` test images.

    RobustBench's call shape and return value; see :func:`evaluate` for the arguments and the full result.
    Unlike :func:`evaluate`, progress is shown by default (``progress=False`` for none).
    """
    result = evaluate(
        model,
        n_examples,
        dataset,
        threat_model,
        version=version,
        eps=eps,
        batch_size=batch_size,
        seed=seed,
        device=device,
        data_dir=data_dir,
        state_path=state_path,
        fresh=fresh,
        progress=progress,
    )
    return result.clean_accuracy, result.robust_accuracy


@strict_fp32()  # TF32 off on GPUs: attacks and accuracies in true fp32
def evaluate(
    model: nn.Module,
    n_examples: int = 10000,
    dataset: str = "cifar10",
    threat_model: str = "Linf",
    *,
    version: str | None = None,
    eps: float | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    seed: int = 0,
    device: str | torch.device | None = None,
    data_dir: str | os.PathLike | None = None,
    state_path: str | os.PathLike | None = None,
    model_name: str | None = None,
    allow_stochastic_standard: bool = False,
    attacks: Sequence[str] | None = None,
    attack_overrides: dict[str, Any] | None = None,
    chunk_size: int | None = None,
    distributed: bool | None = None,
    inputs: tuple[torch.Tensor, torch.Tensor] | None = None,
    interval: str = "wilson",
    progress: ProgressOutput = False,
    fresh: bool = False,
) -> EvaluationResult:
    """Evaluate ``model`` with AutoAttack and return the full :class:`EvaluationResult`.

    Args:
        model: an ``nn.Module`` in eval mode taking images ``[B, 3, H, W]`` in [0, 1] and returning logits.
        n_examples: how many of the first test images to use (at most the split's size).
        dataset: ``"cifar10"`` or ``"cifar100"`` (RobustBench's ``BenchmarkDataset`` works too).
        threat_model: ``"Linf"`` or ``"L2"``.
        version: AutoAttack version ``standard | rand | plus | custom``; ``None`` picks ``rand`` for a stochastic
            model (``model.stochastic``) and ``standard`` otherwise.
        eps: perturbation budget; default 8/255 (Linf) or 0.5 (L2).
        batch_size: AutoAttack's batch size (part of the configuration: batch composition affects random draws).
        seed: AutoAttack's seed; the model's own generator is reseeded with it too (``model.manual_seed``).
        device: where to run; default: the model's device. The model is moved there.
        data_dir: where the data lives (see :mod:`eee_zoo.data`).
        state_path: where to keep the resumable state: a directory (file names keyed by the configuration) or a
            ``<name>.json`` file name (the state is ``<name>.eee.json`` and ``<name>.adv.safetensors``, the
            adversarial examples found so far; see :mod:`eee_zoo.evaluation.state`). ``None``: a temporary
            directory, no resume. A finished state found there is reused (nothing is attacked again) and a partial
            one resumed; both are announced with their path (a warning) and noted in ``summary()``.
        model_name: name recorded in the result; default ``model.eee_info["name"]`` or the class name.
        allow_stochastic_standard: run a non-EOT version on a stochastic model anyway (the number is unreliable).
        attacks: the attack list for ``version="custom"``.
        attack_overrides: ``{"apgd.n_iter": 5, "square.n_queries": 50, ...}`` applied after AutoAttack set up
            its version: for plumbing tests only; the result is marked reduced and cannot back a model card.
        chunk_size: evaluate in fixed chunks of this many images with per-chunk seeds (see :mod:`.distributed`).
            Default: unsharded, or :data:`DEFAULT_CHUNK_SIZE` when launched by torchrun.
        distributed: split chunks over the processes of a torch.distributed job; default: when launched by
            torchrun (``WORLD_SIZE``/``RANK`` set) or when a process group is initialised.
        inputs: ``(x, y)`` to evaluate instead of loading ``dataset`` (the first ``n_examples`` are used); the
            result records ``data.source = "caller"`` and cannot go into results files.
        interval: ``"wilson"`` or ``"clopper-pearson"`` (95 % two-sided).
        progress: report progress during every attack, per batch, restart (or target class) and iteration, with
            the robust accuracy so far: ``True`` for a tqdm bar in a terminal and log lines every 10 s otherwise
            (see :mod:`eee_zoo._progress`), or a callable that gets every :class:`ProgressEvent`. Progress only
            observes (a hook on the model's forward and on the attacks' runs): results are the same without it.
        fresh: discard a saved state of this configuration under ``state_path`` and attack from the start.

    Raises:
        ValueError: bad arguments (unknown version, eps out of range, n_examples larger than the split, a model
            returning probabilities or the wrong number of classes, a model in training mode, standard on a
            stochastic model, a state file from another configuration, ...).
    """
    wall_start = time.perf_counter()
    dataset = parse_dataset(dataset)
    threat_model = parse_threat_model(threat_model)
    check_n_examples(n_examples, dataset)
    check_int("batch_size", batch_size, lo=1)
    check_int("seed", seed, lo=0)
    if chunk_size is not None:
        check_int("chunk_size", chunk_size, lo=1)
    if interval not in INTERVALS:
        raise ValueError(f"unknown interval method {interval!r}; choose one of {sorted(INTERVALS)}")
    check_eval_mode(model)
    stochastic = bool(getattr(model, "stochastic", False))
    version = default_version(model) if version is None else version
    if version not in VERSIONS:
        raise ValueError(f"unknown AutoAttack version {version!r}; choose one of {list(VERSIONS)}")
    attacks = attack_list(version, attacks)
    if stochastic and version != "rand" and not allow_stochastic_standard:
        raise ValueError(
            f"the model's inference is stochastic (model.stochastic is True), and AutoAttack's {version!r} version "
            "attacks it as if it were deterministic: its gradients and its final check see different random "
            "draws, so the robust accuracy would be overestimated. Use version='rand' (expectation over "
            "transformation, 20 samples per step), or switch the model to its deterministic mode with "
            "model.set_stochastic(False) (CLI: --deterministic), or pass allow_stochastic_standard=True to insist."
        )
    eps = check_eps(DEFAULT_EPS[threat_model] if eps is None else eps, threat_model)
    overrides = check_overrides(attack_overrides)

    dist_info = DistInfo.detect(distributed)
    if chunk_size is None and dist_info.enabled:
        chunk_size = DEFAULT_CHUNK_SIZE

    prepared = prepare_inputs(
        model, dataset, threat_model, n_examples,
        device=device, dist_info=dist_info, data_dir=data_dir, inputs=inputs, model_name=model_name,
    )  # fmt: skip
    device, x, y, data = prepared.device, prepared.x, prepared.y, prepared.data
    identity = make_identity(
        model_name=prepared.name,
        sha256=prepared.sha256,
        dataset=dataset,
        threat_model=threat_model,
        version=version,
        eps=eps,
        n_examples=n_examples,
        seed=seed,
        batch_size=batch_size,
        chunk_size=chunk_size,
        stochastic=stochastic,
        attacks=attacks,
        overrides=overrides,
        data_sha256=data["sha256"],
        model_config=model_config(model),
    )
    spec = RunSpec(
        model=model,
        version=version,
        attacks=attacks,
        eps=eps,
        norm=threat_model,
        batch_size=batch_size,
        device=device,
        overrides=overrides,
        progress=progress if dist_info.rank == 0 else False,
        fresh=bool(fresh),
    )

    with preserve_model_seeds(model), state_location(state_path, identity, chunked=chunk_size is not None) as where:
        if chunk_size is None:
            records = [run_resumable(spec, x, y, seed=seed, state_file=where, identity=identity)]
            chunks = None
        else:
            records, chunks = run_chunks(spec, x, y, seed, chunk_size, where, identity, dist_info)
    return summarize(
        records,
        identity=identity,
        sha_source=prepared.sha256_source,
        attack_config=attack_settings(spec.build(seed)),
        data=data,
        interval=interval,
        device=device,
        world_size=dist_info.world_size,
        wall_time=time.perf_counter() - wall_start,
        chunks=chunks,
    )
