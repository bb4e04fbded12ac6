"""``certify``: certified L2 robustness of a zoo model by randomized smoothing, one or several noise scales.

Per image ``i``: the cascade of :mod:`.multiscale` (with one sigma, CERTIFY of :mod:`.cohen`), each scale's
selection and estimation draws from their own ``torch.Generator``, seeded by ``derive_seed(seed, i, sigma, phase)``.
Images are independent, so a run is resumable per image (:mod:`.state`) and the result does not depend on how it
was interrupted, nor on how it was sharded: under ``torchrun --nproc_per_node N`` (or with ``shard=(k, N)`` in N
separate processes) process ``k`` certifies the images ``i`` with ``i % N == k`` into the shared ``state_dir``, and
the result is assembled from it once every image is there.
"""

from __future__ import annotations

import datetime
import math
import numbers
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from .._cpu import layout_record
from .._precision import strict_fp32
from .._progress import Progress, ProgressOutput
from ..datasets import NUM_CLASSES, parse_dataset
from ..evaluation.checks import check_eval_mode, check_int, check_ints, check_n_examples
from ..evaluation.distributed import DistInfo
from ..evaluation.inputs import model_config, prepare_inputs
from ..evaluation.results import versions
from ..evaluation.seeds import RUN_LOCK, derive_seed, preserve_model_seeds
from .cohen import ScaleCounts, select
from .multiscale import cascade, scale_budgets
from .result import CertifiedAccuracy, CertifyResult
from .sampling import sample_counts, takes_generator, unclamped_inputs
from .state import ImageStore, image_sha256

__all__ = ["DEFAULT_BATCH_SIZE", "DEFAULT_RADII", "certify"]

DEFAULT_BATCH_SIZE = 500  # noisy copies per forward pass
DEFAULT_RADII = (0.25, 0.5, 0.75, 1.0)
STATE_FORMAT = 2  # 1: the weights' hash without the model's config (its inference-time variants shared a key)
SHARD_PENDING = (
    "this shard's images are stored; the result is written once every shard has run (the last shard, or a run "
    "without --shard, assembles it)"
)


def certify(
    model: nn.Module,
    n_examples: int,
    dataset: str = "cifar10",
    *,
    sigma: float | Sequence[float],
    n0: int = 100,
    n: int = 100_000,
    alpha: float = 0.001,
    batch_size: int = DEFAULT_BATCH_SIZE,
    seed: int = 0,
    radii: Sequence[float] = DEFAULT_RADII,
    device: str | torch.device | None = None,
    data_dir: Any = None,
    inputs: tuple[torch.Tensor, torch.Tensor] | None = None,
    model_name: str | None = None,
    state_dir: str | Path | None = None,
    fresh: bool = False,
    shard: tuple[int, int] | None = None,
    progress: ProgressOutput = True,
) -> CertifyResult | None:
    """Certify the first ``n_examples`` test images (or ``inputs``) by randomized smoothing of ``model``.

    The base classifier is ``model`` as given (``load_model`` gives a zoo model in its deployed mode, its own random
    stack on; the mode is recorded) fed ``x + N(0, sigma^2 I)``, **not clamped to [0, 1]**, as in Cohen et al.
    (see :mod:`.sampling`). ``sigma``: one scale (Cohen et al. 2019, CERTIFY with ``n0`` selection and ``n``
    estimation draws; abstain when the one-sided Clopper-Pearson lower bound of pA is ``<= 1/2``; radius
    ``sigma * Phi^-1(pA_lower)``), or several (Jeong & Shin 2023's cascade from the highest sigma down, alpha split
    over the scales as :mod:`.multiscale` states). ``alpha`` is each image's failure probability.
    ``batch_size`` noisy copies go through the model per forward pass (it orders the draws, so it is part of the
    configuration). ``radii``: the L2 radii certified accuracy is reported at. ``state_dir``: keep finished images
    there and resume from them (``fresh=True``: certify anew). ``shard=(k, N)``: certify only the images ``i`` with
    ``i % N == k`` into ``state_dir`` (needed), and return the result only if every image is stored by then (``None``
    otherwise: the shard that finishes last, or a call without ``shard``, assembles it); under torchrun the shard is
    the process's rank, and every process waits for the others and returns the result. Raises ``ValueError`` for
    bad arguments, in one line.
    """
    wall_start = time.perf_counter()
    dataset = parse_dataset(dataset)
    sigmas = _check_sigmas(sigma)
    check_n_examples(n_examples, dataset)
    check_ints(1, n0=n0, n=n, batch_size=batch_size)
    check_int("seed", seed, lo=0)
    if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real) or not 0 < alpha < 0.5:
        raise ValueError(f"alpha must be a number in (0, 0.5), got {alpha!r}")
    radii = _check_radii(radii)
    dist = DistInfo.detect(None)
    if shard is None and dist.enabled:
        shard = (dist.rank, dist.world_size)
    if shard is not None:
        if not (isinstance(shard, tuple) and len(shard) == 2 and all(isinstance(v, int) for v in shard)) or not (
            0 <= shard[0] < shard[1]
        ):
            raise ValueError(f"shard must be (k, N) with 0 <= k < N, got {shard!r}")
        if state_dir is None:
            raise ValueError("a sharded certification needs state_dir: the shards meet there")
    check_eval_mode(model)
    info = getattr(model, "eee_info", None)
    info = info if isinstance(info, dict) else {}
    card_threat = info.get("threat_model") if isinstance(info.get("threat_model"), str) else None
    prepared = prepare_inputs(  # under torchrun a bare cuda is cuda:<local rank>
        model, dataset, card_threat or "L2", n_examples,
        device=device, dist_info=dist, data_dir=data_dir, inputs=inputs, model_name=model_name, probe_outputs=False,
    )  # fmt: skip
    device, x, y, data = prepared.device, prepared.x, prepared.y, prepared.data
    name, sha = prepared.name, prepared.sha256
    num_classes = NUM_CLASSES[dataset]
    stochastic = bool(model.stochastic) if hasattr(model, "stochastic") else None
    pass_generator = takes_generator(model)
    config = {
        "format": STATE_FORMAT, "model": sha, "model_config": model_config(model), "dataset": dataset,
        "sigmas": sigmas, "n0": n0, "n": n,
        "alpha": float(alpha), "batch_size": batch_size, "seed": seed, "stochastic": stochastic,
        "generator": pass_generator,
    }  # fmt: skip
    store = ImageStore(state_dir, config, fresh=fresh)

    def draw(xi: torch.Tensor, index: int, k: int) -> ScaleCounts:
        s = sigmas[k]

        def counts(phase: str, num: int) -> list[int]:
            gen = torch.Generator(device=device).manual_seed(derive_seed(seed, index, f"{s!r}", phase))
            return sample_counts(
                model, xi, num, s, gen, batch_size=batch_size, num_classes=num_classes, pass_generator=pass_generator
            )

        return ScaleCounts(s, select(counts("selection", n0)), counts("estimation", n))

    mine = range(n_examples) if shard is None else range(shard[0], n_examples, shard[1])
    done: dict[int, dict[str, Any]] = {}
    with RUN_LOCK, preserve_model_seeds(model), strict_fp32(), unclamped_inputs(model):
        with Progress("certify", len(mine), output=progress, unit="img") as bar:
            for i in mine:
                sha_i = image_sha256(x[i], int(y[i]))
                record = store.load(i, sha_i)
                resumed = record is not None
                if record is None:
                    xi = x[i].to(device)
                    t0 = time.perf_counter()
                    cert = cascade(sigmas, alpha, num_classes, lambda k, xi=xi, i=i: draw(xi, i, k))
                    record = {
                        "prediction": cert.prediction, "p_lower": cert.p_lower, "radius": cert.radius,
                        "scale": cert.scale, "outcome": cert.outcome,
                        "scales": [{"sigma": c.sigma, "selected": c.selected, "counts": c.counts} for c in cert.scales],
                        "seconds": round(time.perf_counter() - t0, 3),
                    }  # fmt: skip
                    store.save(i, record, sha_i)
                done[i] = record
                right = sum(r["prediction"] == int(y[j]) for j, r in done.items())
                where = "" if shard is None else f" (shard {shard[0]}/{shard[1]})"
                text = f"image {i + 1}/{n_examples}{where}: {right} right and certified at some radius"
                if resumed:
                    bar.skip(1, text=text)  # certified by an earlier run: not in this run's rate
                else:
                    bar.update(1, text=text)
    if shard is not None:
        if dist.enabled:  # every process's images are stored once all have passed the barrier
            dist.init(device)
            torch.distributed.barrier()
            dist.close()
        stored = ImageStore(state_dir, config)  # not fresh: this run's and the other shards' images
        for i in range(n_examples):
            if i not in done:
                record = stored.load(i, image_sha256(x[i], int(y[i])))
                if record is None:
                    return None
                done[i] = record
    records = [done[i] for i in range(n_examples)]

    labels = [int(v) for v in y]
    predictions = [int(r["prediction"]) for r in records]
    radius = [float(r["radius"]) for r in records]
    correct = [p == t for p, t in zip(predictions, labels)]
    dim = int(x[0].numel())
    budgets = scale_budgets(len(sigmas), alpha, num_classes)
    return CertifyResult(
        model_name=name, checkpoint_sha256=sha, dataset=dataset, card_threat_model=card_threat,
        method="cohen" if len(sigmas) == 1 else "multiscale", sigmas=sigmas, n0=n0, n=n, alpha=float(alpha),
        budgets=[{"lower": b.lower, "upper_per_class": b.upper_per_class} for b in budgets],
        batch_size=batch_size, seed=seed, n_examples=n_examples, stochastic=stochastic, input_dim=dim,
        labels=labels, predictions=predictions, p_lower=[float(r["p_lower"]) for r in records], radius=radius,
        correct=correct,
        answered_sigma=[None if r["scale"] is None else sigmas[r["scale"]] for r in records],
        outcome=[r["outcome"] for r in records], scales=[r["scales"] for r in records],
        certified=[CertifiedAccuracy.count(r, correct, radius, dim) for r in radii],
        largest_radius=CertifyResult.largest(sigmas, n, alpha, num_classes), data=data,
        versions={**versions(), **layout_record(model)},  # the layout too, where channels_last
        device=str(device), wall_time_s=round(time.perf_counter() - wall_start, 1),
        compute_s=round(sum(float(r["seconds"]) for r in records), 1),
        created=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    )  # fmt: skip


def _check_sigmas(sigma: Any) -> list[float]:
    """One positive finite sigma, or several distinct ones; returned highest first (the cascade's order)."""
    values = [sigma] if isinstance(sigma, numbers.Real) else sigma
    try:
        values = list(values)
    except TypeError:
        raise ValueError(f"sigma must be a positive number or a sequence of them, got {sigma!r}") from None
    if not values or any(
        isinstance(s, bool) or not isinstance(s, numbers.Real) or not (math.isfinite(s) and s > 0) for s in values
    ):
        raise ValueError(f"sigma must be a positive number or a sequence of them, got {sigma!r}")
    if len(set(values)) != len(values):
        raise ValueError(f"sigma values must be distinct, got {values}")
    return sorted((float(s) for s in values), reverse=True)


def _check_radii(radii: Any) -> list[float]:
    try:
        values = [float(r) for r in radii if not isinstance(r, bool)]
        ok = len(values) == len(list(radii)) and all(math.isfinite(r) and r >= 0 for r in values)
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(f"radii must be non-negative numbers, got {radii!r}")
    return values
