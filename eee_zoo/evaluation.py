"""Clean and AutoAttack robust accuracy, measured the way RobustBench measures it: resumable, shardable, checked.

    >>> from eee_zoo import load_model, benchmark, evaluate
    >>> model = load_model("Name")
    >>> clean_acc, robust_acc = benchmark(model, n_examples=1000)        # RobustBench's call shape
    >>> result = evaluate(model, n_examples=1000, progress=True)        # everything: per attack, intervals, ...

What is measured
    The first ``n_examples`` test images in canonical order (:func:`eee_zoo.data.load_dataset`), attacked by
    AutoAttack's own code (the ``pyautoattack`` package) configured exactly as its versions define them:
    ``standard`` = APGD-CE, APGD-T (9 targets), FAB-T (9 targets), Square (5000 queries), one restart each;
    ``rand`` = APGD-CE and APGD-DLR with 20 EOT samples per step and 100 iterations; ``plus`` and ``custom``
    as AutoAttack defines them. ``version=None`` picks ``rand`` for a stochastic model and ``standard`` otherwise;
    ``standard`` on a stochastic model is refused unless the model is switched to its deterministic mode
    (``model.set_stochastic(False)``) or the caller insists (``allow_stochastic_standard=True``).

Identical to AutoAttack run directly
    The unsharded path is, operation for operation, this (same images, batches, seeds, random draws)::

        x, y = eee_zoo.data.load_dataset(dataset, n_examples, data_dir)
        model.manual_seed(seed)                          # models that own a generator (stochastic eee_zoo models)
        adversary = AutoAttack(model, norm=threat_model, eps=eps, version=version, seed=seed, device=device)
        adversary.run_standard_evaluation(x, y, batch_size=batch_size)

    so ``benchmark`` returns exactly the robust accuracy that code gives. Clean accuracy is AutoAttack's own
    first pass over the images (for a stochastic model: one stochastic forward pass per image).

Resuming
    AutoAttack's own state file (``EvaluationState``, updated after every batch) is kept under a name keyed by
    the full configuration (model, checkpoint sha256, dataset, threat model, version, eps, n, seed, batch size,
    chunking, inference mode, images). Beside it, ``<state>.eee.json`` records a checkpoint at the start of
    every attack: the robust flags and the state of the model's own random generators. A run that is killed and
    started again with the same arguments continues from the start of the interrupted attack with the same
    batches and the same random draws, so it ends with exactly the result of an uninterrupted run (work inside
    the interrupted attack is redone). A state from another configuration is refused, never mixed in. A finished
    state is reused without attacking again. Either reuse is announced with the state's path (a warning, and a note
    in ``summary()``); ``fresh=True`` (``--fresh`` on the command line) discards the state and starts over.

    pyautoattack 0.2.0 cannot resume from its own state file (it writes the attack set with ``str()`` and then
    fails comparing it with a set; its restore branch leaves ``y_adv`` undefined). So a resumed session is a new
    ``run_standard_evaluation`` call with the same seed over the remaining attacks, whose robust flags are set
    to the checkpointed ones when the interrupted attack starts (the same tensor drives AutoAttack's loop). While
    a run is in progress, pyautoattack's ``EvaluationState`` is replaced by a subclass that writes atomically
    (and records the attack set as a list) and hands itself to eee_zoo; nothing else of AutoAttack is changed.

Scaling out
    Under ``torchrun --nproc_per_node N`` (or with ``chunk_size=``) the examples are cut into fixed chunks of
    ``chunk_size`` images (independent of N); chunk ``i`` is evaluated as its own AutoAttack run with seed
    :func:`chunk_seed` ``(seed, i)`` (the model is reseeded with it too), process ``r`` takes the chunks with
    ``i % N == r``, and the per-chunk outcomes are gathered and merged in chunk order, so the result does not
    depend on N. Chunking changes AutoAttack's batch composition and seeds, so a chunked result is a different
    configuration from the unsharded one (it is keyed and named as such); the guarantee "identical to AutoAttack
    run directly" holds per chunk, and for the unsharded path as a whole.

Randomness
    AutoAttack reseeds PyTorch's global generator at the start of every attack; the caller's global RNG state
    is saved and restored around the run. Stochastic eee_zoo models draw only from their own generators, which
    are reseeded from ``seed``. A model that draws from global RNG state cannot be evaluated reproducibly.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import hashlib
import json
import logging
import math
import os
import platform
import re
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Iterator, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from ._io import atomic_write_json, atomic_write_text
from ._precision import strict_fp32
from ._progress import Progress, ProgressEvent, ProgressOutput

__all__ = [
    "CHECKPOINT_FORMAT", "DEFAULT_BATCH_SIZE", "DEFAULT_CHUNK_SIZE", "DEFAULT_EPS", "THREAT_MODELS", "VERSIONS",
    "AttackStep", "CheckWarning", "EvaluationResult", "ProgressEvent", "attack_settings", "benchmark",
    "checkpoint_sha256", "chunk_seed", "clopper_pearson_interval", "default_version", "evaluate", "is_main_process",
    "normal_quantile", "state_key", "wilson_interval",
]  # fmt: skip

logger = logging.getLogger(__name__)

VERSIONS = ("standard", "rand", "plus", "custom")
THREAT_MODELS = ("Linf", "L2")
DEFAULT_EPS = {"Linf": 8 / 255, "L2": 0.5}
DEFAULT_BATCH_SIZE = 500
DEFAULT_CHUNK_SIZE = 500
CONFIDENCE = 0.95
CHECKPOINT_FORMAT = 1
AUTOATTACK_LOGGER = "auto-attack"
ATTACK_NAMES = ("apgd-ce", "apgd-dlr", "fab", "square", "apgd-t", "fab-t")
_DATASET_ALIASES = {"cifar10": "cifar10", "cifar100": "cifar100"}
_NUM_CLASSES = {"cifar10": 10, "cifar100": 100}
_SPLIT_SIZE = {"cifar10": 10000, "cifar100": 10000}
_PROBE_IMAGES = 8  # images of the pre-flight forward pass (output shape, logits vs probabilities)
# AutoAttack's components and the attributes we record / allow to override (plumbing tests only).
_COMPONENTS = {
    "apgd": ("n_iter", "n_restarts", "eot_iter", "thr_decr", "use_largereps"),
    "apgd_targeted": ("n_iter", "n_restarts", "n_target_classes", "eot_iter", "thr_decr", "use_largereps"),
    "fab": ("n_iter", "n_restarts", "n_target_classes", "alpha_max", "eta", "beta"),
    "square": ("n_queries", "p_init", "n_restarts"),
}
_ATTACK_COMPONENT = {
    "apgd-ce": "apgd", "apgd-dlr": "apgd", "apgd-t": "apgd_targeted", "fab": "fab", "fab-t": "fab", "square": "square",
}  # fmt: skip
# AutoAttack's checks log a warning; classify them by their text (pyautoattack 0.2.0, checks.py).
_CHECKS = (
    ("randomized", "randomized defense"),
    ("softmax_output", "probability distribution"),
    ("zero_gradients", "zero gradient"),
    ("square_beats_white_box", "Square Attack has decreased"),
    ("dynamic", "dynamic defense"),
    ("n_classes", "target classes"),
    ("n_classes", "not possible to use the"),
)
# AutoAttack's progress messages (run_standard_evaluation, pyautoattack 0.2.0).
_RUNNING_RE = re.compile(r"^running (\S+)$")
_BATCH_RE = re.compile(r"^(\S+) - (\d+)/(\d+) - (\d+) out of (\d+) successfully perturbed$")
_AFTER_RE = re.compile(r"^robust accuracy after (\S+):")
_RUN_LOCK = threading.RLock()  # AutoAttack uses global RNG state and module globals: one run per process at a time


# ============================================================================================ intervals
def normal_quantile(p: float) -> float:
    """The standard normal quantile ``Phi^-1(p)`` (bisection on ``math.erfc``; exact to double precision)."""
    if not 0.0 < p < 1.0:
        raise ValueError(f"p must lie in (0, 1), got {p}")
    lo, hi = -40.0, 40.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if 0.5 * math.erfc(-mid / math.sqrt(2.0)) < p:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-15:
            break
    return 0.5 * (lo + hi)


def _check_counts(k: int, n: int, confidence: float) -> None:
    if isinstance(k, bool) or isinstance(n, bool) or int(k) != k or int(n) != n:
        raise ValueError(f"k and n must be integers, got k={k!r}, n={n!r}")
    if n < 1 or not 0 <= k <= n:
        raise ValueError(f"need 0 <= k <= n and n >= 1, got k={k}, n={n}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")


def wilson_interval(k: int, n: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion ``k / n`` (Wilson 1927; Newcombe 1998, method 3)."""
    _check_counts(k, n, confidence)
    z = normal_quantile(0.5 + confidence / 2)
    p = k / n
    z2n = z * z / n
    center = (p + z2n / 2) / (1 + z2n)
    half = z * math.sqrt(p * (1 - p) / n + z2n / (4 * n)) / (1 + z2n)
    lo = 0.0 if k == 0 else max(0.0, center - half)
    hi = 1.0 if k == n else min(1.0, center + half)
    return lo, hi


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz; Numerical Recipes 6.4)."""
    tiny, eps = 1e-300, 1e-15
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 10000):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < eps:
            break
    return h


def _betainc(a: float, b: float, x: float) -> float:
    """Regularised incomplete beta function ``I_x(a, b)``."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _betacf(a, b, x) / a
    return 1.0 - math.exp(log_front) * _betacf(b, a, 1.0 - x) / b


def _beta_quantile(q: float, a: float, b: float) -> float:
    lo, hi = 0.0, 1.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if _betainc(a, b, mid) < q:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-15:
            break
    return 0.5 * (lo + hi)


def clopper_pearson_interval(k: int, n: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Exact (Clopper-Pearson 1934) interval: Beta quantiles ``B(a/2; k, n-k+1)`` and ``B(1-a/2; k+1, n-k)``."""
    _check_counts(k, n, confidence)
    alpha = 1.0 - confidence
    lo = 0.0 if k == 0 else _beta_quantile(alpha / 2, k, n - k + 1)
    hi = 1.0 if k == n else _beta_quantile(1 - alpha / 2, k + 1, n - k)
    return lo, hi


_INTERVALS = {"wilson": wilson_interval, "clopper-pearson": clopper_pearson_interval}


# ============================================================================================ results
@dataclasses.dataclass
class AttackStep:
    """Robust accuracy after one attack of the sequence (each attack runs on the points still robust)."""

    attack: str
    robust: int  # images still correctly classified after this attack
    accuracy: float  # robust / n
    interval: tuple[float, float]
    attacked: int  # images this attack was run on
    seconds: float
    images_per_second: float | None
    ran: bool  # False when no robust image was left to attack


@dataclasses.dataclass
class CheckWarning:
    """One of AutoAttack's checks that fired (they only log; here they are kept with the result)."""

    check: str  # randomized | softmax_output | zero_gradients | square_beats_white_box | dynamic | n_classes | other
    message: str
    count: int = 1
    chunks: list[int] | None = None  # sharded runs: the chunks where it fired


@dataclasses.dataclass
class EvaluationResult:
    """Everything about one evaluation; ``to_dict()`` is what results files hold."""

    model_name: str
    checkpoint_sha256: str
    sha256_source: str  # "checkpoint" (model.eee_info, the weights file) or "state_dict"
    dataset: str
    threat_model: str
    version: str
    eps: float
    n_examples: int
    seed: int
    batch_size: int
    chunk_size: int | None
    stochastic: bool
    clean_correct: int
    clean_accuracy: float
    clean_interval: tuple[float, float]
    robust_correct: int
    robust_accuracy: float
    robust_interval: tuple[float, float]
    attacks: list[AttackStep]
    attack_config: dict[str, Any]
    attack_overrides: dict[str, Any]
    warnings: list[CheckWarning]
    data: dict[str, Any]  # source, sha256 of the images and labels evaluated
    outcomes: str  # per image: '-' misclassified clean, 'k' broken by attack k, 'R' robust
    model_config: dict[str, Any] | None
    confidence: float
    interval_method: str
    versions: dict[str, str]
    device: str
    world_size: int
    wall_time_s: float
    sessions: int  # > 1 when the run was resumed
    created: str
    log: list[str] = dataclasses.field(default_factory=list, repr=False)
    # What this session did not measure itself (a reused finished state, a resumed partial one): shown by
    # summary(), not kept in results files.
    notes: list[str] = dataclasses.field(default_factory=list, repr=False)

    @property
    def unreliable_checks(self) -> list[str]:
        """Checks whose firing makes the number unreliable (AutoAttack's own flags)."""
        bad = {"randomized", "softmax_output", "square_beats_white_box", "dynamic", "zero_gradients"}
        return sorted({w.check for w in self.warnings if w.check in bad})

    @property
    def is_reduced(self) -> bool:
        """True when attack settings were overridden (plumbing tests): not a valid AutoAttack evaluation."""
        return bool(self.attack_overrides)

    def identity(self) -> dict[str, Any]:
        """The configuration that determines the result (keys of state files and results files)."""
        return _identity(
            model_name=self.model_name,
            sha256=self.checkpoint_sha256,
            dataset=self.dataset,
            threat_model=self.threat_model,
            version=self.version,
            eps=self.eps,
            n_examples=self.n_examples,
            seed=self.seed,
            batch_size=self.batch_size,
            chunk_size=self.chunk_size,
            stochastic=self.stochastic,
            attacks=[a.attack for a in self.attacks],
            overrides=self.attack_overrides,
            data_sha256=self.data.get("sha256"),
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict (without the log and the notes)."""
        d = dataclasses.asdict(self)
        d.pop("log")
        d.pop("notes")
        d["format_version"] = CHECKPOINT_FORMAT
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EvaluationResult:
        d = dict(d)
        d.pop("format_version", None)
        d["attacks"] = [AttackStep(**{**a, "interval": tuple(a["interval"])}) for a in d["attacks"]]
        d["warnings"] = [CheckWarning(**w) for w in d["warnings"]]
        for key in ("clean_interval", "robust_interval"):
            d[key] = tuple(d[key])
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown result fields {sorted(unknown)}")
        return cls(**d)

    def summary(self) -> str:
        """Human-readable lines: clean, each attack, robust, checks; each figure says what it counts."""
        lo, hi = self.clean_interval
        judged = "one stochastic draw per image" if self.stochastic else "deterministic mode"
        lines = [
            f"{self.model_name} ({self.checkpoint_sha256[:12]}) {self.dataset} {self.threat_model} eps={self.eps:.6g} "
            f"AutoAttack {self.version} seed={self.seed} n={self.n_examples}"
            + (" [reduced attack settings: not a valid evaluation]" if self.is_reduced else ""),
            f"  clean accuracy   {self.clean_accuracy:7.2%}  ({self.clean_correct}/{self.n_examples}, "
            f"{self.confidence:.0%} CI {lo:.2%}-{hi:.2%}; {judged})",
        ]
        for step in self.attacks:
            lo, hi = step.interval
            speed = f", {step.images_per_second:.2f} img/s" if step.images_per_second else ""
            lines.append(
                f"  after {step.attack:<10} {step.accuracy:7.2%}  ({step.robust}/{self.n_examples}, "
                f"CI {lo:.2%}-{hi:.2%}; {step.attacked} attacked in {step.seconds:.1f} s{speed})"
                + ("" if step.ran else " [skipped: nothing left]")
            )
        lo, hi = self.robust_interval
        lines.append(
            f"  robust accuracy  {self.robust_accuracy:7.2%}  ({self.robust_correct}/{self.n_examples}, "
            f"{self.confidence:.0%} CI {lo:.2%}-{hi:.2%}; {judged}, right after every attack)"
        )
        for w in self.warnings:
            lines.append(f"  AutoAttack check [{w.check}] x{w.count}: {w.message}")
        lines.extend(f"  note: {note}" for note in self.notes)
        return "\n".join(lines)


# ============================================================================================ public API
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
            ``.json`` file (AutoAttack's state file; ``<name>.eee.json`` beside it). ``None``: a temporary
            directory, no resume. A finished state found there is reused (nothing is attacked again) and a partial
            one resumed; both are announced with their path (a warning) and noted in ``summary()``.
        model_name: name recorded in the result; default ``model.eee_info["name"]`` or the class name.
        allow_stochastic_standard: run a non-EOT version on a stochastic model anyway (the number is unreliable).
        attacks: the attack list for ``version="custom"``.
        attack_overrides: ``{"apgd.n_iter": 5, "square.n_queries": 50, ...}`` applied after AutoAttack set up
            its version: for plumbing tests only; the result is marked reduced and cannot back a model card.
        chunk_size: evaluate in fixed chunks of this many images with per-chunk seeds (see module docstring).
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
    dataset = _parse_dataset(dataset)
    threat_model = _parse_threat_model(threat_model)
    _check_int("n_examples", n_examples, lo=1)
    if n_examples > _SPLIT_SIZE[dataset]:
        raise ValueError(
            f"n_examples={n_examples} is larger than the {dataset} test split ({_SPLIT_SIZE[dataset]} images)"
        )
    _check_int("batch_size", batch_size, lo=1)
    _check_int("seed", seed, lo=0)
    if chunk_size is not None:
        _check_int("chunk_size", chunk_size, lo=1)
    if interval not in _INTERVALS:
        raise ValueError(f"unknown interval method {interval!r}; choose one of {sorted(_INTERVALS)}")
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if model.training:
        raise ValueError(
            "the model is in training mode (BatchNorm would use batch statistics and update its running ones); "
            "call model.eval() before evaluating"
        )
    stochastic = bool(getattr(model, "stochastic", False))
    version = default_version(model) if version is None else version
    if version not in VERSIONS:
        raise ValueError(f"unknown AutoAttack version {version!r}; choose one of {list(VERSIONS)}")
    attack_list = _attack_list(version, attacks)
    if stochastic and version != "rand" and not allow_stochastic_standard:
        raise ValueError(
            f"the model's inference is stochastic (model.stochastic is True), and AutoAttack's {version!r} version "
            "attacks it as if it were deterministic: its gradients and its final check see different random "
            "draws, so the robust accuracy would be overestimated. Use version='rand' (expectation over "
            "transformation, 20 samples per step), or switch the model to its deterministic mode with "
            "model.set_stochastic(False) (CLI: --deterministic), or pass allow_stochastic_standard=True to insist."
        )
    eps = _check_eps(DEFAULT_EPS[threat_model] if eps is None else eps, threat_model)
    overrides = _check_overrides(attack_overrides)

    dist_info = _DistInfo.detect(distributed)
    device = _resolve_device(model, device, dist_info)
    model.to(device)
    if chunk_size is None and dist_info.enabled:
        chunk_size = DEFAULT_CHUNK_SIZE

    _check_model_matches(model, dataset, threat_model, device, probe=inputs is None)  # before any data is read
    x, y, data = _inputs(dataset, n_examples, data_dir, inputs)
    _check_model_outputs(model, x[:_PROBE_IMAGES], y, _NUM_CLASSES[dataset], device)
    name, sha, sha_source = _model_identity(model, model_name)
    identity = _identity(
        model_name=name,
        sha256=sha,
        dataset=dataset,
        threat_model=threat_model,
        version=version,
        eps=eps,
        n_examples=n_examples,
        seed=seed,
        batch_size=batch_size,
        chunk_size=chunk_size,
        stochastic=stochastic,
        attacks=attack_list,
        overrides=overrides,
        data_sha256=data["sha256"],
    )
    spec = _RunSpec(
        model=model,
        version=version,
        attacks=attack_list,
        eps=eps,
        norm=threat_model,
        batch_size=batch_size,
        device=device,
        overrides=overrides,
        progress=progress if dist_info.rank == 0 else False,
        fresh=bool(fresh),
    )

    model_config = _model_config(model)
    with (
        _preserve_model_seeds(model),
        _state_location(state_path, identity, chunked=chunk_size is not None) as location,
    ):
        if chunk_size is None:
            records = [_run_resumable(spec, x, y, seed=seed, state_file=location, identity=identity)]
            chunks = None
        else:
            records, chunks = _run_chunks(spec, x, y, seed, chunk_size, location, identity, dist_info)

    aa_logger = logging.getLogger(AUTOATTACK_LOGGER)
    disabled, aa_logger.disabled = aa_logger.disabled, True  # its constructor announces the version again
    try:
        attack_config = attack_settings(_make_autoattack(spec, seed))
    finally:
        aa_logger.disabled = disabled
    return _summarize(
        records,
        identity=identity,
        sha_source=sha_source,
        attack_config=attack_config,
        data=data,
        model_config=model_config,
        interval=interval,
        device=device,
        world_size=dist_info.world_size,
        wall_time=time.perf_counter() - wall_start,
        chunks=chunks,
    )


def default_version(model: nn.Module) -> str:
    """``"rand"`` for a model whose inference is stochastic (``model.stochastic``), else ``"standard"``."""
    return "rand" if bool(getattr(model, "stochastic", False)) else "standard"


def chunk_seed(seed: int, chunk_index: int) -> int:
    """The seed of chunk ``chunk_index`` of a sharded run: 31 bits of ``sha256("eee-zoo/chunk/<seed>/<i>")``."""
    digest = hashlib.sha256(f"eee-zoo/chunk/{int(seed)}/{int(chunk_index)}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def state_key(identity: dict[str, Any]) -> str:
    """A 16-hex key for a configuration (names state and checkpoint files)."""
    blob = json.dumps(identity, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def checkpoint_sha256(model: nn.Module) -> tuple[str, str]:
    """``(sha256, source)``: the weights file's hash from ``model.eee_info``, else a hash of the state dict.

    The state-dict hash covers every entry's name, dtype, shape and bytes in sorted order.
    """
    info = getattr(model, "eee_info", None) or {}
    sha = info.get("sha256") if isinstance(info, dict) else None
    if isinstance(sha, str) and re.fullmatch(r"[0-9a-f]{64}", sha):
        return sha, "checkpoint"
    digest = hashlib.sha256()
    for key, value in sorted(model.state_dict().items()):
        t = value.detach().to("cpu").contiguous()
        digest.update(f"{key}|{t.dtype}|{tuple(t.shape)}|".encode())
        if t.numel():
            digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest(), "state_dict"


def attack_settings(adversary: Any) -> dict[str, Any]:
    """The parameters of the attacks an ``AutoAttack`` object will run (what its version configured)."""
    attacks = list(adversary.attacks_to_run)
    out: dict[str, Any] = {"attacks": attacks, "norm": adversary.norm, "eps": float(adversary.epsilon)}
    objects = {"apgd": adversary.apgd, "apgd_targeted": adversary.apgd_targeted, "fab": adversary.fab}
    objects["square"] = adversary.square
    for component in dict.fromkeys(_ATTACK_COMPONENT[a] for a in attacks):
        obj = objects[component]
        out[component] = {attr: _jsonable(getattr(obj, attr)) for attr in _COMPONENTS[component] if hasattr(obj, attr)}
    if "fab-t" in attacks:
        out["fab"]["n_restarts"] = 1  # run_standard_evaluation sets this before FAB-T
    return out


def is_main_process() -> bool:
    """False on every process but rank 0 of a torch.distributed / torchrun job (write files only on rank 0)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank() == 0
    return os.environ.get("RANK", "0") == "0"


# ============================================================================================ validation
def _check_int(name: str, value: Any, lo: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < lo:
        raise ValueError(f"{name} must be an integer >= {lo}, got {value!r}")


def _parse_dataset(dataset: Any) -> str:
    raw = getattr(dataset, "value", dataset)  # RobustBench's BenchmarkDataset
    key = raw.strip().lower().replace("-", "").replace("_", "") if isinstance(raw, str) else None
    if key not in _DATASET_ALIASES:
        raise ValueError(f"unknown dataset {dataset!r}; choose one of {sorted(_NUM_CLASSES)}")
    return _DATASET_ALIASES[key]


def _parse_threat_model(threat_model: Any) -> str:
    raw = getattr(threat_model, "value", threat_model)  # RobustBench's ThreatModel
    if isinstance(raw, str):
        for name in THREAT_MODELS:
            if raw.strip().lower() == name.lower():
                return name
    raise ValueError(f"unknown threat model {threat_model!r}; choose one of {list(THREAT_MODELS)}")


def _check_eps(eps: Any, threat_model: str) -> float:
    if isinstance(eps, bool) or not isinstance(eps, (int, float, np.floating)) or not math.isfinite(eps):
        raise ValueError(f"eps must be a finite number, got {eps!r}")
    eps = float(eps)
    if threat_model == "Linf" and not 0 < eps < 1:
        hint = f"; did you mean {eps:g}/255 = {eps / 255:.6f}?" if 1 <= eps <= 255 else ""
        raise ValueError(f"eps={eps:g} is out of range for Linf on images in [0, 1]: need 0 < eps < 1{hint}")
    diameter = math.sqrt(3 * 32 * 32)  # L2 distance between the all-zero and all-one 32x32 RGB images
    if threat_model == "L2" and not 0 < eps < diameter:
        raise ValueError(
            f"eps={eps:g} is out of range for L2 on 32x32 RGB images in [0, 1]: need 0 < eps < {diameter:.1f}"
        )
    return eps


def _attack_list(version: str, attacks: Sequence[str] | None) -> list[str]:
    if version != "custom":
        if attacks is not None:
            raise ValueError(f"attacks= is only used with version='custom' (version {version!r} defines its own)")
        return {
            "standard": ["apgd-ce", "apgd-t", "fab-t", "square"],
            "rand": ["apgd-ce", "apgd-dlr"],
            "plus": ["apgd-ce", "apgd-dlr", "fab", "square", "apgd-t", "fab-t"],
        }[version]
    if not attacks:
        raise ValueError(f"version='custom' needs a non-empty attacks= list from {list(ATTACK_NAMES)}")
    attacks = list(attacks)
    unknown = [a for a in attacks if a not in ATTACK_NAMES]
    if unknown or len(set(attacks)) != len(attacks):
        raise ValueError(f"bad custom attacks {attacks}: each must be one of {list(ATTACK_NAMES)}, without repeats")
    return attacks


def _check_overrides(overrides: dict[str, Any] | None) -> dict[str, Any]:
    if not overrides:
        return {}
    out = {}
    for key, value in sorted(overrides.items()):
        component, _, attr = key.partition(".")
        if component not in _COMPONENTS or attr not in _COMPONENTS[component]:
            allowed = [f"{c}.{a}" for c, attrs in _COMPONENTS.items() for a in attrs]
            raise ValueError(f"unknown attack override {key!r}; allowed: {allowed}")
        if isinstance(value, bool) and attr != "use_largereps" or not isinstance(value, (int, float)):
            raise ValueError(f"attack override {key!r} must be a number, got {value!r}")
        out[key] = value
    return out


def _resolve_device(model: nn.Module, device: Any, dist_info: _DistInfo) -> torch.device:
    if device is None:
        param = next(iter(model.parameters()), None)
        device = param.device if param is not None else torch.device("cpu")
    device = torch.device(device)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {device} requested but CUDA is not available")
        if dist_info.enabled and device.index is None:
            device = torch.device("cuda", dist_info.local_rank)
        elif device.index is None:
            device = torch.device("cuda", torch.cuda.current_device())
    return device


def _inputs(
    dataset: str, n: int, data_dir: Any, inputs: tuple[torch.Tensor, torch.Tensor] | None
) -> tuple[torch.Tensor, torch.Tensor, dict[str, Any]]:
    if inputs is None:
        from .data import load_dataset

        x, y = load_dataset(dataset, n_examples=n, data_dir=data_dir, split="test")
        source = "eee_zoo.data.load_dataset"
    else:
        if not (isinstance(inputs, (tuple, list)) and len(inputs) == 2):
            raise TypeError("inputs must be a pair (x, y) of tensors")
        x, y = inputs
        if not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor):
            raise TypeError("inputs must be a pair (x, y) of tensors")
        if x.ndim != 4 or not x.is_floating_point():
            raise ValueError(f"inputs x must be float images [N, C, H, W], got {x.dtype} {tuple(x.shape)}")
        if y.ndim != 1 or y.dtype != torch.int64 or len(y) != len(x):
            raise ValueError(f"inputs y must be int64 labels [N] matching x, got {y.dtype} {tuple(y.shape)}")
        if len(x) < n:
            raise ValueError(f"n_examples={n} but inputs hold only {len(x)} images")
        x, y = x[:n].detach().cpu().contiguous(), y[:n].detach().cpu().contiguous()
        source = "caller"
    if x.numel() and not (x.min() >= 0 and x.max() <= 1):
        raise ValueError("images must lie in [0, 1] (the model normalises internally)")
    digest = hashlib.sha256(x.numpy().tobytes())
    digest.update(y.numpy().astype("<i8").tobytes())
    return x, y, {"source": source, "split": "test", "sha256": digest.hexdigest(), "dataset": dataset}


def _check_model_matches(
    model: nn.Module, dataset: str, threat_model: str, device: torch.device, *, probe: bool
) -> None:
    """Before any data is touched: refuse a model for another number of classes, warn about another threat model.

    The classes come from the model's config (``num_classes``) or attribute, else (``probe``) from one forward
    pass on a blank image; a card's dataset and threat model from ``model.eee_info`` (models from ``load_model``).
    """
    info = getattr(model, "eee_info", None)
    info = info if isinstance(info, dict) else {}
    name = info.get("name") or type(model).__name__
    want = _NUM_CLASSES[dataset]
    classes = _declared_classes(model)
    if classes is None and probe:
        classes = _probed_classes(model, device)
    if classes is not None and classes != want:
        card = f" (its card is for {info['dataset']})" if isinstance(info.get("dataset"), str) else ""
        raise ValueError(
            f"{name} returns {classes} classes but the dataset has {want} ({dataset}){card}: wrong model for this "
            f"dataset? Pass the dataset the model was trained on (nothing was loaded or attacked)"
        )
    card_threat = info.get("threat_model")
    if isinstance(card_threat, str) and card_threat != threat_model:
        warnings.warn(
            f"{name}'s card is for the {card_threat} threat model, but it is being evaluated under {threat_model}: "
            f"its training and its card's numbers are for {card_threat}, and this result cannot go into that card",
            UserWarning,
            stacklevel=4,  # the caller of evaluate / adaptive_evaluate (through strict_fp32's wrapper)
        )


def _declared_classes(model: nn.Module) -> int | None:
    try:
        config = model.config  # SelfEnsemble; other models may have none
    except Exception:
        config = None
    value = config.get("num_classes") if isinstance(config, dict) else getattr(model, "num_classes", None)
    return int(value) if isinstance(value, (int, np.integer)) and not isinstance(value, bool) else None


@torch.no_grad()
def _probed_classes(model: nn.Module, device: torch.device) -> int | None:
    """The width of the model's output on one blank 32x32 image (None when that does not give logits)."""
    try:
        out = model(torch.zeros(1, 3, 32, 32, device=device))
    except Exception:  # the checks on real images report what is wrong with such a model
        return None
    return int(out.shape[1]) if isinstance(out, torch.Tensor) and out.ndim == 2 else None


@torch.no_grad()
def _check_model_outputs(model: nn.Module, x: torch.Tensor, y: torch.Tensor, num_classes: int, device: Any) -> None:
    """A pre-flight forward pass on a few images (before the model is reseeded): logits of the right shape."""
    if int(y.min()) < 0 or int(y.max()) >= num_classes:
        raise ValueError(f"labels must lie in [0, {num_classes}), got [{int(y.min())}, {int(y.max())}]")
    out = model(x.to(device))
    if not isinstance(out, torch.Tensor):
        raise TypeError(f"the model must return a tensor of logits, got {type(out).__name__}")
    if out.ndim != 2 or out.shape[0] != len(x):
        raise ValueError(f"the model must return logits [B, classes], got shape {tuple(out.shape)} for {len(x)} images")
    if out.shape[1] != num_classes:
        raise ValueError(
            f"the model returns {out.shape[1]} classes but the dataset has {num_classes}: wrong model for this dataset?"
        )
    if not torch.isfinite(out).all():
        raise ValueError("the model returned NaN or infinite logits")
    tol = 1e-5  # AutoAttack's own check_range_output tolerance
    rows_are_probabilities = (out.min() > -tol) & (out.max() < 1 + tol) & ((out.sum(-1) - 1).abs() < tol).all()
    if bool(rows_are_probabilities):
        raise ValueError(
            "the model's outputs look like probabilities (each row in [0, 1] summing to 1): AutoAttack's losses "
            "need logits; remove the final softmax"
        )


def _model_identity(model: nn.Module, model_name: str | None) -> tuple[str, str, str]:
    info = getattr(model, "eee_info", None) or {}
    name = model_name or (info.get("name") if isinstance(info, dict) else None) or type(model).__name__
    sha, source = checkpoint_sha256(model)
    return str(name), sha, source


def _model_config(model: nn.Module) -> dict[str, Any] | None:
    try:
        config = model.config  # SelfEnsemble; other models may have none
    except Exception:
        return None
    return json.loads(json.dumps(config)) if isinstance(config, dict) else None


def _identity(
    *,
    model_name: str,
    sha256: str,
    dataset: str,
    threat_model: str,
    version: str,
    eps: float,
    n_examples: int,
    seed: int,
    batch_size: int,
    chunk_size: int | None,
    stochastic: bool,
    attacks: list[str],
    overrides: dict[str, Any],
    data_sha256: str | None,
) -> dict[str, Any]:
    return {
        "model_name": model_name,
        "checkpoint_sha256": sha256,
        "dataset": dataset,
        "threat_model": threat_model,
        "version": version,
        "eps": float(eps),
        "n_examples": int(n_examples),
        "seed": int(seed),
        "batch_size": int(batch_size),
        "chunk_size": None if chunk_size is None else int(chunk_size),
        "stochastic": bool(stochastic),
        "attacks": list(attacks),
        "attack_overrides": dict(overrides),
        "data_sha256": data_sha256,
    }


def _jsonable(value: Any) -> Any:
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    if isinstance(value, np.generic):
        return value.item()
    return str(value)


# ============================================================================================ AutoAttack plumbing
@dataclasses.dataclass
class _RunSpec:
    model: nn.Module
    version: str
    attacks: list[str]
    eps: float
    norm: str
    batch_size: int
    device: torch.device
    overrides: dict[str, Any]
    progress: ProgressOutput
    fresh: bool = False


def _make_autoattack(spec: _RunSpec, seed: int) -> Any:
    from pyautoattack import AutoAttack

    adversary = AutoAttack(
        spec.model,
        attacks=list(spec.attacks) if spec.version == "custom" else None,
        device=spec.device,
        eps=spec.eps,
        norm=spec.norm,
        seed=seed,
        version=spec.version,
    )
    if spec.version == "custom":
        adversary.attacks_to_run = list(spec.attacks)
    for key, value in spec.overrides.items():
        component, _, attr = key.partition(".")
        obj = getattr(adversary, component)
        setattr(obj, attr, value)
        if attr == "n_iter" and component.startswith("apgd"):  # APGD derives its checkpoints from n_iter
            obj.n_iter_orig = value
            obj.n_iter_2 = max(int(0.22 * value), 1)
            obj.n_iter_min = max(int(0.06 * value), 1)
            obj.size_decr = max(int(0.03 * value), 1)
    if list(adversary.attacks_to_run) != list(spec.attacks):
        raise RuntimeError(f"AutoAttack {spec.version} runs {adversary.attacks_to_run}, expected {spec.attacks}")
    return adversary


def _flags_str(flags: torch.Tensor) -> str:
    return (flags.detach().to("cpu", torch.uint8).numpy() + ord("0")).tobytes().decode("ascii")


def _flags_tensor(flags: str) -> torch.Tensor:
    return torch.from_numpy(np.frombuffer(flags.encode("ascii"), dtype=np.uint8) == ord("1")).clone()


def _model_generators(model: nn.Module, device: torch.device) -> list[tuple[str, torch.Generator]]:
    """The model's own generators on ``device``: every submodule exposing ``generator_for(device)``."""
    out = []
    for name, module in model.named_modules():
        getter = getattr(module, "generator_for", None)
        if callable(getter):
            out.append((name, getter(device)))
    return out


def _snapshot_generators(model: nn.Module, device: torch.device) -> list[dict[str, str]]:
    return [
        {"module": name, "state": base64.b64encode(gen.get_state().numpy().tobytes()).decode("ascii")}
        for name, gen in _model_generators(model, device)
    ]


def _restore_generators(model: nn.Module, device: torch.device, saved: list[dict[str, str]]) -> None:
    generators = dict(_model_generators(model, device))
    if sorted(generators) != sorted(s["module"] for s in saved):
        raise RuntimeError(
            f"cannot resume: the model's generators {sorted(generators)} differ from the checkpoint's "
            f"{sorted(s['module'] for s in saved)}"
        )
    for s in saved:
        state = torch.frombuffer(bytearray(base64.b64decode(s["state"])), dtype=torch.uint8)
        generators[s["module"]].set_state(state)


@contextlib.contextmanager
def _preserve_model_seeds(model: nn.Module) -> Iterator[None]:
    """Give the model's generator owners their configured seed back after the run (it reseeds them)."""
    owners = [
        m
        for m in model.modules()
        if callable(getattr(m, "generator_for", None))
        and callable(getattr(m, "manual_seed", None))
        and isinstance(getattr(m, "seed", None), int)
    ]
    seeds = [m.seed for m in owners]
    try:
        yield
    finally:
        for m, seed in zip(owners, seeds):
            m.manual_seed(seed)


class _StateTracker:
    """Holds the ``EvaluationState`` of the running AutoAttack call (set by :class:`_State`)."""

    active: _StateTracker | None = None

    def __init__(self) -> None:
        self.state: Any = None


def _state_class() -> type:
    """pyautoattack's ``EvaluationState`` with atomic writes that record the attack set as a list.

    It also hands itself to the active :class:`_StateTracker`: its ``robust_flags`` is the very tensor that
    ``run_standard_evaluation`` updates, which is how attack boundaries are observed and a resume is set up.
    """
    from pyautoattack.state import EvaluationState

    class _State(EvaluationState):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            if _StateTracker.active is not None:
                _StateTracker.active.state = self

        def to_disk(self, force: bool = False) -> None:
            since = (datetime.now() - self._last_saved).total_seconds()
            if self.path is None or (since < self._SAVE_TIMEOUT and not force):
                return
            self._last_saved = datetime.now()
            flags = self._robust_flags
            d = {
                "_attacks_to_run": sorted(self._attacks_to_run),
                "path": str(self.path),
                "_run_attacks": sorted(self._run_attacks),
                "_robust_flags": None if flags is None else flags.detach().cpu().tolist(),
                "_last_saved": self._last_saved.isoformat(),
                "_SAVE_TIMEOUT": self._SAVE_TIMEOUT,
                "_clean_accuracy": self._clean_accuracy,
            }
            atomic_write_text(Path(self.path), json.dumps(d))

    return _State


@contextlib.contextmanager
def _autoattack_patched(tracker: _StateTracker) -> Iterator[None]:
    import pyautoattack.autoattack as aa_module

    original = aa_module.EvaluationState
    aa_module.EvaluationState = _state_class()
    _StateTracker.active = tracker
    try:
        yield
    finally:
        aa_module.EvaluationState = original
        _StateTracker.active = None


def _classify(message: str) -> str:
    for check, needle in _CHECKS:
        if needle in message:
            return check
    return "other"


def _add_warning(warnings_list: list[dict[str, Any]], check: str, message: str) -> None:
    for w in warnings_list:
        if w["check"] == check and w["message"] == message:
            w["count"] += 1
            return
    warnings_list.append({"check": check, "message": message, "count": 1})


class _Checkpoint:
    """Our side of the resumable state: attack boundaries (flags + generator states), warnings, log, timing."""

    def __init__(self, path: Path, identity: dict[str, Any], attacks: list[str]) -> None:
        self.path = path
        self.data: dict[str, Any] = {
            "format_version": CHECKPOINT_FORMAT,
            "identity": identity,
            "attacks": list(attacks),
            "boundaries": [],
            "warnings": [],
            "log": [],
            "spent_s": 0.0,
            "sessions": 0,
            "finished": False,
            "final_flags": None,
        }

    @classmethod
    def load(cls, path: Path, identity: dict[str, Any], attacks: list[str]) -> _Checkpoint:
        ckpt = cls(path, identity, attacks)
        if path.exists():
            try:
                data = json.loads(path.read_text())
            except (OSError, ValueError) as e:
                raise ValueError(f"{path}: unreadable evaluation checkpoint ({e}); delete it to start over") from e
            if data.get("format_version") != CHECKPOINT_FORMAT or data.get("identity") != identity:
                theirs = data.get("identity") or {}
                diff = sorted(k for k in set(theirs) | set(identity) if theirs.get(k) != identity.get(k))
                raise ValueError(
                    f"{path}: this state belongs to another configuration (differs in {diff}); refusing to mix runs. "
                    "Use another state path or delete it."
                )
            ckpt.data = data
        return ckpt

    def save(self) -> None:
        atomic_write_json(self.path, self.data)


@dataclasses.dataclass
class _RunRecord:
    """What one AutoAttack run (the whole evaluation, or one chunk) produced."""

    n: int
    seed: int
    attacks: list[str]
    boundaries: dict[str, dict[str, Any]]  # attack -> {"flags": str, "elapsed_s": float}
    final_flags: str
    elapsed_s: float  # along the reproducible path (boundary to boundary)
    spent_s: float  # over all sessions
    sessions: int
    warnings: list[dict[str, Any]]
    log: list[str]
    notes: list[str] = dataclasses.field(default_factory=list)  # reused / resumed state (not saved)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class _Hook(logging.Handler):
    """Listens to AutoAttack's logger: attack boundaries (checkpoint / resume), progress, check warnings."""

    def __init__(
        self,
        *,
        spec: _RunSpec,
        tracker: _StateTracker,
        ckpt: _Checkpoint,
        n: int,
        resume_from: dict[str, Any] | None,
        elapsed: Any,
    ) -> None:
        super().__init__(level=logging.DEBUG)
        self.spec, self.tracker, self.ckpt, self.n = spec, tracker, ckpt, n
        self.resume_from = resume_from
        self.resuming = resume_from is not None
        self.elapsed = elapsed
        self.started = False  # the first attack has started (before: checks and the clean pass)
        self.meter = _AttackMeter(spec.progress, n=n, batch_size=spec.batch_size)
        self.error: BaseException | None = None

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._handle(record)
        except BaseException as e:  # logging swallows handler errors: keep it and re-raise after the run
            if self.error is None:
                self.error = e

    def _handle(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        self.ckpt.data["log"].append(f"{record.levelname.lower()}: {message}")
        if record.levelno >= logging.WARNING:
            if self.resuming and not self.started:
                return  # the checks before the first attack were recorded by the session that started the run
            check = _classify(message)
            _add_warning(self.ckpt.data["warnings"], check, message)
            logger.warning("AutoAttack check [%s]: %s", check, message)
            return
        if m := _RUNNING_RE.match(message):
            self._boundary(m.group(1))
        elif m := _BATCH_RE.match(message):
            self.meter.end_batch(int(m.group(2)), broken=int(m.group(4)))
        elif _AFTER_RE.match(message):
            self.meter.close()

    def _boundary(self, attack: str) -> None:
        if attack not in self.spec.attacks:
            raise RuntimeError(f"AutoAttack started {attack!r}, which is not in {self.spec.attacks}")
        self.started = True
        self.meter.close()
        state = self.tracker.state
        if state is None or state.robust_flags is None:
            raise RuntimeError("AutoAttack started an attack before its state held robust flags")
        if self.resume_from is not None:
            saved, self.resume_from = self.resume_from, None
            if saved["attack"] != attack:
                raise RuntimeError(f"resume mismatch: AutoAttack started {attack}, checkpoint is at {saved['attack']}")
            # The same tensor drives run_standard_evaluation's loop: from here on it attacks exactly the images
            # that were still robust when the interrupted session reached this attack, with the same draws.
            state.robust_flags.copy_(_flags_tensor(saved["flags"]).to(state.robust_flags.device))
            _restore_generators(self.spec.model, self.spec.device, saved["generators"])
            flags = saved["flags"]
            self.ckpt.data["log"].append(f"eee_zoo: resumed at {attack} with {flags.count('1')} of {self.n} robust")
            logger.info("resumed at %s (%d of %d robust)", attack, flags.count("1"), self.n)
        else:
            flags = _flags_str(state.robust_flags)
            self.ckpt.data["boundaries"].append(
                {
                    "attack": attack,
                    "index": self.spec.attacks.index(attack),
                    "flags": flags,
                    "generators": _snapshot_generators(self.spec.model, self.spec.device),
                    "elapsed_s": self.elapsed(),
                }
            )
            self.ckpt.data["spent_s"] = self.elapsed(total=True)
            self.ckpt.save()
        self.meter.start_attack(attack, robust=flags.count("1"))


# Per attack: (AutoAttack component, what one run of attack_single_run is called, the count attribute(s) whose
# product is the runs per batch, iterations per run, forwards per iteration, whether only forwards with gradients
# count, forwards before the first iteration). pyautoattack 0.2.0: APGD computes eot_iter forwards with gradients
# per iteration after as many at its start; FAB one per iteration; Square one (without gradients) per query after
# one at its start. AutoAttack sets FAB's n_restarts to 1 for fab-t.
_ATTACK_WORK = {
    "apgd-ce": ("apgd", "restart", ("n_restarts",), "n_iter", "eot_iter", True, 1),
    "apgd-dlr": ("apgd", "restart", ("n_restarts",), "n_iter", "eot_iter", True, 1),
    "apgd-t": ("apgd_targeted", "target", ("n_target_classes", "n_restarts"), "n_iter", "eot_iter", True, 1),
    "fab": ("fab", "restart", ("n_restarts",), "n_iter", None, True, 0),
    "fab-t": ("fab", "target", ("n_target_classes",), "n_iter", None, True, 0),
    "square": ("square", "restart", ("n_restarts",), "n_queries", None, False, 1),
}


class _AttackMeter:
    """Progress during AutoAttack's attacks: per batch, per run (restart or target class) and per iteration.

    It only observes: a forward pre-hook on the model counts forward passes, and each attack object's
    ``attack_single_run`` is wrapped (an instance attribute, removed afterwards) to see where runs start and end;
    nothing they compute is touched, so results are identical with and without progress. The robust accuracy
    shown is AutoAttack's, updated at the end of every batch.
    """

    def __init__(self, output: ProgressOutput, *, n: int, batch_size: int) -> None:
        self.output, self.n, self.batch_size = output, n, batch_size
        self.adversary: Any = None
        self.progress: Progress | None = None
        self.in_run = False

    @property
    def enabled(self) -> bool:
        return bool(self.output)

    @contextlib.contextmanager
    def installed(self, adversary: Any, model: nn.Module) -> Iterator[None]:
        if not self.enabled:
            yield
            return
        self.adversary = adversary
        wrapped = []
        for component in dict.fromkeys(w[0] for w in _ATTACK_WORK.values()):
            obj = getattr(adversary, component)
            if "attack_single_run" not in vars(obj):
                obj.attack_single_run = self._wrap(obj.attack_single_run)
                wrapped.append(obj)
        handle = model.register_forward_pre_hook(self._count_forward)
        try:
            yield
        finally:
            handle.remove()
            for obj in wrapped:
                del obj.attack_single_run
            self.close()

    def _wrap(self, run: Any) -> Any:
        def attack_single_run(*args: Any, **kwargs: Any) -> Any:
            self._run_started()
            try:
                return run(*args, **kwargs)
            finally:
                self._run_ended()

        return attack_single_run

    def start_attack(self, attack: str, *, robust: int) -> None:
        self.close()
        if not self.enabled or self.adversary is None or robust == 0:  # AutoAttack skips the attack
            return
        component, run_name, run_attrs, iter_attr, per_iter_attr, grad_only, warmup = _ATTACK_WORK[attack]
        obj = getattr(self.adversary, component)
        self.run_name, self.grad_only = run_name, grad_only
        self.runs = max(1, math.prod(int(getattr(obj, a)) for a in run_attrs))
        self.iterations = max(1, int(getattr(obj, iter_attr)))
        self.per_iter = max(1, int(getattr(obj, per_iter_attr))) if per_iter_attr else 1
        self.warmup = warmup * self.per_iter
        self.batches = max(1, math.ceil(robust / self.batch_size))
        self.robust, self.batch, self.run, self.forwards, self.iteration = robust, 0, 0, 0, 0
        _, text, info = self._state()
        self.progress = Progress(
            attack, self.batches * self.runs * self.iterations, output=self.output, unit="it", text=text, **info
        )

    def end_batch(self, batch: int, *, broken: int) -> None:
        """AutoAttack finished batch ``batch`` (1-based) and broke ``broken`` images in it."""
        if self.progress is not None:
            self.robust -= broken
            self.batch, self.run, self.iteration = batch, 0, 0
            self._show()

    def close(self) -> None:
        if self.progress is not None:
            self.progress.close(text=self._text(final=True))
            self.progress = None

    def _run_started(self) -> None:
        if self.progress is not None:
            self.in_run, self.forwards, self.iteration = True, 0, 0
            self.run = min(self.run + 1, self.runs)
            self._show()

    def _run_ended(self) -> None:
        self.in_run = False
        if self.progress is not None:
            self.iteration = self.iterations
            self._show()

    def _count_forward(self, module: nn.Module, args: Any) -> None:
        if not self.in_run or self.progress is None or (self.grad_only and not torch.is_grad_enabled()):
            return
        self.forwards += 1
        iteration = min(self.iterations, max(0, self.forwards - self.warmup) // self.per_iter)
        if iteration != self.iteration:
            self.iteration = iteration
            self._show()

    def _show(self) -> None:
        if self.progress is not None:
            done, text, info = self._state()
            self.progress.update(done=done, text=text, **info)

    def _state(self) -> tuple[int, str, dict[str, Any]]:
        """Position in the attack's iterations, the text beside the bar and the event's details."""
        finished = self.batch >= self.batches
        done = (self.batch * self.runs + max(self.run - 1, 0)) * self.iterations + self.iteration
        if finished:
            done = self.batches * self.runs * self.iterations
        info = {
            "batch": min(self.batch + 1, self.batches),  # the batch under way (the last one once all are done)
            "batches": self.batches,
            "run": self.run,
            "runs": self.runs,
            "run_name": self.run_name,
            "iteration": self.iteration,
            "iterations": self.iterations,
            "robust": self.robust,
            "n": self.n,
        }
        return done, self._text(final=finished), info

    def _text(self, final: bool = False) -> str:
        robust = f"robust {self.robust / self.n:.2%} ({self.robust}/{self.n})"
        if final:
            return robust
        where = f"batch {min(self.batch + 1, self.batches)}/{self.batches}"
        if self.runs > 1:
            where += f", {self.run_name} {max(self.run, 1)}/{self.runs}"
        return f"{where}, iteration {self.iteration}/{self.iterations}, {robust} so far"


@contextlib.contextmanager
def _apgd_iterations(apgd: Any, on_iteration: Any) -> Iterator[None]:
    """Call ``on_iteration(i)`` as an APGD object (pyautoattack) runs its iterations; changes nothing it computes.

    APGD runs ``eot_iter`` forward passes with gradients at the start of every run and as many per iteration:
    a forward pre-hook on its model counts them while its ``attack_single_run`` (wrapped for the duration) runs.
    """
    eot = max(1, int(apgd.eot_iter))
    state = {"in_run": False, "forwards": 0, "iteration": -1}

    def count_forward(module: nn.Module, args: Any) -> None:
        if state["in_run"] and torch.is_grad_enabled():
            state["forwards"] += 1
            iteration = min(int(apgd.n_iter), max(0, state["forwards"] - eot) // eot)
            if iteration != state["iteration"]:
                state["iteration"] = iteration
                on_iteration(iteration)

    run = apgd.attack_single_run

    def attack_single_run(*args: Any, **kwargs: Any) -> Any:
        state.update(in_run=True, forwards=0, iteration=-1)
        try:
            return run(*args, **kwargs)
        finally:
            state["in_run"] = False
            on_iteration(int(apgd.n_iter))

    apgd.attack_single_run = attack_single_run
    handle = apgd.model.register_forward_pre_hook(count_forward)
    try:
        yield
    finally:
        handle.remove()
        del apgd.attack_single_run


@contextlib.contextmanager
def _captured_autoattack_logs(hook: _Hook) -> Iterator[None]:
    aa_logger = logging.getLogger(AUTOATTACK_LOGGER)
    saved = (aa_logger.level, aa_logger.propagate, aa_logger.disabled)
    aa_logger.setLevel(logging.DEBUG)
    aa_logger.propagate = False  # its per-batch debug lines go to our log, not to the caller's handlers
    aa_logger.disabled = False
    aa_logger.addHandler(hook)
    try:
        yield
    finally:
        aa_logger.removeHandler(hook)
        aa_logger.setLevel(saved[0])
        aa_logger.propagate, aa_logger.disabled = saved[1], saved[2]
        hook.meter.close()


@contextlib.contextmanager
def _captured_python_warnings(ckpt: _Checkpoint) -> Iterator[None]:
    """pyautoattack's ``warnings.warn`` calls (a check without a logger, state.py) go into the result too."""
    caught: list[warnings.WarningMessage] = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield
    finally:
        for w in caught:
            if "pyautoattack" in str(w.filename):
                message = str(w.message)
                _add_warning(ckpt.data["warnings"], _classify(message), message)
            else:  # not ours to keep: hand it back to the caller's filters
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno, source=w.source)


def _rng_devices(device: torch.device) -> list[int]:
    return [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else []


def _run_resumable(
    spec: _RunSpec, x: torch.Tensor, y: torch.Tensor, *, seed: int, state_file: Path, identity: dict[str, Any]
) -> _RunRecord:
    """One AutoAttack run on ``x, y`` with ``seed``, resumable through ``<state_file stem>.eee.json``.

    A fresh run is ``model.manual_seed(seed)`` + ``AutoAttack(..., seed=seed).run_standard_evaluation`` with
    AutoAttack's state file at ``state_file``. At the start of every attack the checkpoint records the robust
    flags and the model's generator states. A resumed run is a new AutoAttack call (same seed) that runs the
    remaining attacks: when the interrupted attack starts, the flags of its AutoAttack state are set to the
    checkpointed ones and the model's generators to their checkpointed states, so the batches and every random
    draw from then on are those of an uninterrupted run. (AutoAttack 0.2.0 cannot restore its own state: it
    writes the attack set with ``str()`` and then fails comparing it, and its restore branch leaves ``y_adv``
    undefined.)
    """
    ckpt_path = state_file.with_name(state_file.stem + ".eee.json")
    if state_file.exists() and not ckpt_path.exists():
        raise ValueError(
            f"{state_file} exists but was not written by eee_zoo (no {ckpt_path.name} beside it): refusing to "
            "resume from a state whose configuration is unknown. Delete it or use another state path."
        )
    if spec.fresh and ckpt_path.exists():
        state_file.unlink(missing_ok=True)
        ckpt_path.unlink()
        logger.warning("fresh start: removed the saved AutoAttack state %s", ckpt_path)
    ckpt = _Checkpoint.load(ckpt_path, identity, spec.attacks)
    if ckpt.data["finished"]:
        note = (
            f"reused the finished AutoAttack state {ckpt_path} ({ckpt.data['sessions']} session(s), "
            f"{ckpt.data['spent_s']:.1f} s of attacks): nothing was attacked again, and the times shown are those of "
            "that run; pass fresh=True (--fresh) to attack again"
        )
        logger.warning("%s", note)
        record = _record(ckpt, len(x), seed)
        record.notes.append(note)
        return record

    boundaries = ckpt.data["boundaries"]
    resume_from = boundaries[-1] if boundaries else None
    state_file.unlink(missing_ok=True)  # AutoAttack starts a new state file in every session
    notes = []
    if resume_from is not None:
        done = resume_from["index"]
        notes.append(
            f"resumed the partial AutoAttack state {ckpt_path} at the start of {resume_from['attack']} ({done} of "
            f"{len(spec.attacks)} attacks done in {ckpt.data['sessions']} earlier session(s)); pass fresh=True "
            "(--fresh) to start over"
        )
    elif ckpt.data["sessions"]:
        notes.append(
            f"restarted the unfinished AutoAttack state {ckpt_path}, which had not reached its first attack; pass "
            "fresh=True (--fresh) to discard it"
        )
    for note in notes:
        logger.warning("%s", note)
    path_elapsed = resume_from["elapsed_s"] if resume_from else 0.0
    spent_before = ckpt.data["spent_s"]
    session_start = time.perf_counter()

    def elapsed(total: bool = False) -> float:
        return (spent_before if total else path_elapsed) + time.perf_counter() - session_start

    ckpt.data["sessions"] += 1
    ckpt.save()  # before AutoAttack writes its state file: that file never exists without its checkpoint
    tracker = _StateTracker()
    hook = _Hook(spec=spec, tracker=tracker, ckpt=ckpt, n=len(x), resume_from=resume_from, elapsed=elapsed)
    if hasattr(spec.model, "manual_seed"):
        spec.model.manual_seed(seed)
    with (
        _RUN_LOCK,
        torch.random.fork_rng(devices=_rng_devices(spec.device)),
        _autoattack_patched(tracker),
        _captured_autoattack_logs(hook),
        _captured_python_warnings(ckpt),
    ):
        adversary = _make_autoattack(spec, seed)
        if resume_from is not None:
            adversary.attacks_to_run = list(spec.attacks[resume_from["index"] :])
        with hook.meter.installed(adversary, spec.model):
            adversary.run_standard_evaluation(x, y, batch_size=spec.batch_size, state_path=state_file)
        if resume_from is not None:  # AutoAttack's final check saw only this session's attacks: redo it whole
            _recheck_square(ckpt, tracker.state.robust_flags, len(x))
    if hook.error is not None:
        raise hook.error
    if hook.resume_from is not None:
        raise RuntimeError("AutoAttack did not restart the interrupted attack; cannot resume")
    if not ckpt.data["boundaries"]:
        raise RuntimeError(
            "no attack start was seen in AutoAttack's log: this pyautoattack version logs differently "
            "from 0.2.0, which eee_zoo.evaluation supports"
        )
    ckpt.data["final_flags"] = _flags_str(tracker.state.robust_flags)
    ckpt.data["elapsed_s"] = elapsed()
    ckpt.data["spent_s"] = elapsed(total=True)
    ckpt.data["finished"] = True
    ckpt.save()
    record = _record(ckpt, len(x), seed)
    record.notes.extend(notes)
    return record


def _recheck_square(ckpt: _Checkpoint, final_flags: torch.Tensor, n: int) -> None:
    """AutoAttack's ``check_square_sr`` on the accuracies of the whole run (it only saw the resumed part)."""
    from pyautoattack import checks

    boundaries = ckpt.data["boundaries"]
    accuracies = {"clean": boundaries[0]["flags"].count("1") / n}
    for j, b in enumerate(boundaries):
        if b["flags"].count("1") == 0:
            break  # AutoAttack stops when nothing is left and records no accuracy for this attack
        after = boundaries[j + 1]["flags"].count("1") if j + 1 < len(boundaries) else int(final_flags.sum())
        accuracies[b["attack"]] = after / n
    capture = logging.getLogger(f"{__name__}.square_check")
    records: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: records.append(record.getMessage())  # type: ignore[method-assign]
    capture.addHandler(handler)
    capture.propagate = False
    try:
        checks.check_square_sr(accuracies, logger=capture)
    finally:
        capture.removeHandler(handler)
    for message in records:
        if not any(w["message"] == message for w in ckpt.data["warnings"]):
            _add_warning(ckpt.data["warnings"], _classify(message), message)


def _record(ckpt: _Checkpoint, n: int, seed: int) -> _RunRecord:
    d = ckpt.data
    return _RunRecord(
        n=n,
        seed=seed,
        attacks=list(d["attacks"]),
        boundaries={b["attack"]: {"flags": b["flags"], "elapsed_s": b["elapsed_s"]} for b in d["boundaries"]},
        final_flags=d["final_flags"],
        elapsed_s=d["elapsed_s"],
        spent_s=d["spent_s"],
        sessions=d["sessions"],
        warnings=[dict(w) for w in d["warnings"]],
        log=list(d["log"]),
    )


# ============================================================================================ state files
@contextlib.contextmanager
def _state_location(state_path: Any, identity: dict[str, Any], *, chunked: bool) -> Iterator[Path]:
    """The AutoAttack state file (unsharded) or the chunk directory (sharded) for this configuration."""
    stem = _slug(f"{identity['model_name']}_{identity['dataset']}_{identity['threat_model']}_{identity['version']}")
    stem = f"{stem}_{state_key(identity)}"
    if state_path is None:
        with tempfile.TemporaryDirectory(prefix="eee_zoo_state_") as tmp:
            yield Path(tmp) / (f"{stem}.chunks" if chunked else f"{stem}.json")
        return
    path = Path(state_path).expanduser()
    if path.suffix == ".json":
        if path.is_dir():
            raise ValueError(f"state_path {path} is a directory named like a file")
        yield path.with_suffix(".chunks") if chunked else path
        return
    if path.exists() and not path.is_dir():
        raise ValueError(f"state_path {path} exists and is not a directory (pass a directory or a .json file)")
    path.mkdir(parents=True, exist_ok=True)
    yield path / (f"{stem}.chunks" if chunked else f"{stem}.json")


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text)


# ============================================================================================ sharding
@dataclasses.dataclass
class _DistInfo:
    enabled: bool
    rank: int
    world_size: int
    local_rank: int
    created_group: bool = False

    @classmethod
    def detect(cls, distributed: bool | None) -> _DistInfo:
        initialized = torch.distributed.is_available() and torch.distributed.is_initialized()
        launched = "WORLD_SIZE" in os.environ and "RANK" in os.environ
        enabled = (initialized or launched) if distributed is None else bool(distributed)
        if not enabled:
            return cls(False, 0, 1, 0)
        if not (initialized or launched):
            raise ValueError("distributed=True but no process group is initialised and WORLD_SIZE/RANK are unset")
        if initialized:
            rank, world = torch.distributed.get_rank(), torch.distributed.get_world_size()
        else:
            rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
        return cls(True, rank, world, int(os.environ.get("LOCAL_RANK", rank)))

    def init(self, device: torch.device) -> None:
        if not self.enabled or torch.distributed.is_initialized():
            return
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(device)
        torch.distributed.init_process_group(backend=backend)
        self.created_group = True

    def gather(self, obj: Any) -> list[Any]:
        if not self.enabled:
            return [obj]
        out: list[Any] = [None] * self.world_size
        torch.distributed.all_gather_object(out, obj)
        return out

    def close(self) -> None:
        if self.created_group and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
            self.created_group = False


def _run_chunks(
    spec: _RunSpec,
    x: torch.Tensor,
    y: torch.Tensor,
    seed: int,
    chunk_size: int,
    chunk_dir: Path,
    identity: dict[str, Any],
    dist_info: _DistInfo,
) -> tuple[list[_RunRecord], list[dict[str, Any]]]:
    n = len(x)
    bounds = [(start, min(start + chunk_size, n)) for start in range(0, n, chunk_size)]
    chunk_dir.mkdir(parents=True, exist_ok=True)
    dist_info.init(spec.device)
    try:
        local: dict[int, dict[str, Any]] = {}
        for i, (start, stop) in enumerate(bounds):
            if i % dist_info.world_size != dist_info.rank:
                continue
            cseed = chunk_seed(seed, i)
            chunk_identity = {**identity, "chunk_index": i, "chunk_start": start, "chunk_stop": stop}
            chunk_identity["chunk_seed"] = cseed
            if spec.progress:
                logger.info("chunk %d/%d: images %d-%d, seed %d", i + 1, len(bounds), start, stop - 1, cseed)
            record = _run_resumable(
                spec, x[start:stop], y[start:stop], seed=cseed, state_file=chunk_dir / f"chunk-{i:05d}.json",
                identity=chunk_identity,
            )  # fmt: skip
            local[i] = record.to_dict()
        gathered = dist_info.gather(local)
    finally:
        dist_info.close()
    merged: dict[int, dict[str, Any]] = {}
    for part in gathered:
        merged.update(part)
    if sorted(merged) != list(range(len(bounds))):
        raise RuntimeError(f"missing chunks after gathering: have {sorted(merged)} of {len(bounds)}")
    records = [_RunRecord(**merged[i]) for i in range(len(bounds))]
    chunks = [
        {"index": i, "start": s, "stop": e, "seed": chunk_seed(seed, i), "rank": i % dist_info.world_size}
        for i, (s, e) in enumerate(bounds)
    ]
    return records, chunks


# ============================================================================================ summary
def _summarize(
    records: list[_RunRecord],
    *,
    identity: dict[str, Any],
    sha_source: str,
    attack_config: dict[str, Any],
    data: dict[str, Any],
    model_config: dict[str, Any] | None,
    interval: str,
    device: torch.device,
    world_size: int,
    wall_time: float,
    chunks: list[dict[str, Any]] | None,
) -> EvaluationResult:
    ci = _INTERVALS[interval]
    attacks = identity["attacks"]
    n = identity["n_examples"]
    clean = 0
    robust_after = [0] * len(attacks)
    attacked = [0] * len(attacks)
    seconds = [0.0] * len(attacks)
    ran = [False] * len(attacks)
    outcomes: list[str] = []
    warnings_out: list[dict[str, Any]] = []
    log: list[str] = []
    notes: list[str] = []
    for c, rec in enumerate(records):
        flags_before = [rec.boundaries.get(a) for a in attacks]
        first = flags_before[0]
        if first is None:
            raise RuntimeError("a run record has no boundary for its first attack")
        clean_flags = first["flags"]
        clean += clean_flags.count("1")
        after: list[str] = []
        for j in range(len(attacks)):
            nxt = flags_before[j + 1] if j + 1 < len(attacks) else None
            after_j = nxt["flags"] if nxt is not None else rec.final_flags
            after.append(after_j)
            robust_after[j] += after_j.count("1")
            if flags_before[j] is not None:
                count = flags_before[j]["flags"].count("1")
                attacked[j] += count
                ran[j] = ran[j] or count > 0
                end = nxt["elapsed_s"] if nxt is not None else rec.elapsed_s
                seconds[j] += max(0.0, end - flags_before[j]["elapsed_s"])
        for i in range(rec.n):
            if clean_flags[i] != "1":
                outcomes.append("-")
                continue
            broken = next((str(j) for j in range(len(attacks)) if after[j][i] != "1"), "R")
            outcomes.append(broken)
        for w in rec.warnings:
            _merge_warning(warnings_out, w, c if chunks is not None else None, w["count"])
        prefix = f"[chunk {c}] " if chunks is not None else ""
        log.extend(prefix + line for line in rec.log)
        notes.extend(prefix + note for note in rec.notes)
    if len(outcomes) != n:
        raise RuntimeError(f"merged {len(outcomes)} outcomes for {n} examples")
    robust = robust_after[-1]
    steps = [
        AttackStep(
            attack=a,
            robust=robust_after[j],
            accuracy=robust_after[j] / n,
            interval=ci(robust_after[j], n),
            attacked=attacked[j],
            seconds=round(seconds[j], 4),
            images_per_second=round(attacked[j] / seconds[j], 4) if seconds[j] > 0 and attacked[j] else None,
            ran=ran[j],
        )
        for j, a in enumerate(attacks)
    ]
    device_name = str(device)
    if device.type == "cuda":
        device_name += f" ({torch.cuda.get_device_name(device)})"
    result = EvaluationResult(
        model_name=identity["model_name"],
        checkpoint_sha256=identity["checkpoint_sha256"],
        sha256_source=sha_source,
        dataset=identity["dataset"],
        threat_model=identity["threat_model"],
        version=identity["version"],
        eps=identity["eps"],
        n_examples=n,
        seed=identity["seed"],
        batch_size=identity["batch_size"],
        chunk_size=identity["chunk_size"],
        stochastic=identity["stochastic"],
        clean_correct=clean,
        clean_accuracy=clean / n,
        clean_interval=ci(clean, n),
        robust_correct=robust,
        robust_accuracy=robust / n,
        robust_interval=ci(robust, n),
        attacks=steps,
        attack_config={**attack_config, "chunks": chunks} if chunks is not None else attack_config,
        attack_overrides=dict(identity["attack_overrides"]),
        warnings=[CheckWarning(**w) for w in warnings_out],
        data={**data, "n_examples": n},
        outcomes="".join(outcomes),
        model_config=model_config,
        confidence=CONFIDENCE,
        interval_method=interval,
        versions=_versions(),
        device=device_name,
        world_size=world_size,
        wall_time_s=round(wall_time, 4),
        sessions=max(r.sessions for r in records),
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        log=log,
        notes=notes,
    )
    return result


def _merge_warning(out: list[dict[str, Any]], w: dict[str, Any], chunk: int | None, count: int) -> None:
    for existing in out:
        if existing["check"] == w["check"] and existing["message"] == w["message"]:
            existing["count"] += count
            if chunk is not None and chunk not in existing["chunks"]:
                existing["chunks"].append(chunk)
            return
    chunks = None if chunk is None else [chunk]
    out.append({"check": w["check"], "message": w["message"], "count": count, "chunks": chunks})


def _versions() -> dict[str, str]:
    import pyautoattack

    from . import __version__

    out = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "pyautoattack": getattr(pyautoattack, "__version__", "unknown"),
        "numpy": np.__version__,
        "eee_zoo": __version__,
        "platform": f"{sys.platform}-{platform.machine()}",
    }
    if torch.version.cuda:
        out["cuda"] = str(torch.version.cuda)
    return out
