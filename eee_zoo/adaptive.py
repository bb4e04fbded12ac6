"""Adaptive attacks on stochastic self-ensembles: what AutoAttack's ``standard`` and ``rand`` may miss.

AutoAttack attacks the deployed output. For a multi-resolution self-ensemble that output is built to mask
gradients: the stack injects fresh noise on every call, and CrossMax's max and top-k pass gradient to one
predictor per class. The attacks here go around both, as the independent evaluations of the method did:

* ``transfer-det``: APGD-CE (AutoAttack's own implementation) on the model's *deterministic* mode (no jitter,
  factors 1, noise at its mean: the same weights, smooth in the input);
* ``transfer-det-mean``: the same with CrossMax replaced by the mean of the predictors' logits, a smooth
  surrogate of the aggregator (BPDA-style: only the gradient path changes);
* ``eot-mean``: APGD-CE with expectation over transformation (``eot_iter`` draws of the stochastic stack per
  step) on the mean-of-logits surrogate.

Every attack returns, for every image, the iterate of highest surrogate loss (``best_loss=True``), and the
*deployed* model (its own stochastic stack and aggregator) then judges it. An image counts as robust only if
the deployed model classifies it correctly on every one of ``eval_draws`` independent draws of its randomness,
for the clean image and after every attack (the worst case over attacks and over draws, as an attacker who can
resubmit would see it). The mean over draws is reported too. The attacks run in order on the images still
robust, like AutoAttack's cascade. Accuracies carry Clopper-Pearson 95 % intervals.

Randomness: the model's generator is reseeded with ``seed`` (and given its configured seed back afterwards),
each draw of the judge uses its own seeded ``torch.Generator``, and AutoAttack's global-RNG use is confined to
a forked RNG state, so the same seed gives the same result.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import logging
import time
from collections.abc import Iterator, Sequence
from typing import Any

import torch
import torch.nn as nn

from ._precision import strict_fp32
from ._progress import Progress, ProgressOutput
from .datasets import DEFAULT_EPS
from .datasets import NUM_CLASSES as _NUM_CLASSES
from .datasets import SPLIT_SIZE as _SPLIT_SIZE
from .datasets import check_eps as _check_eps
from .datasets import parse_dataset as _parse_dataset
from .datasets import parse_threat_model as _parse_threat_model
from .evaluation.checks import check_int as _check_int
from .evaluation.distributed import DistInfo as _DistInfo
from .evaluation.inputs import PROBE_IMAGES as _PROBE_IMAGES
from .evaluation.inputs import check_model_matches as _check_model_matches
from .evaluation.inputs import check_model_outputs as _check_model_outputs
from .evaluation.inputs import load_inputs as _inputs
from .evaluation.inputs import model_identity as _model_identity
from .evaluation.inputs import resolve_device as _resolve_device
from .evaluation.intervals import CONFIDENCE, clopper_pearson_interval
from .evaluation.progress import apgd_iterations as _apgd_iterations
from .evaluation.results import versions as _versions
from .evaluation.seeds import RUN_LOCK as _RUN_LOCK
from .evaluation.seeds import preserve_model_seeds as _preserve_model_seeds

__all__ = ["ADAPTIVE_ATTACKS", "DEFAULT_BATCH_SIZE", "DEFAULT_SETTINGS", "AdaptiveResult", "adaptive_evaluate"]

ADAPTIVE_ATTACKS = ("transfer-det", "transfer-det-mean", "eot-mean")
DEFAULT_SETTINGS = {"n_iter": 100, "eot_iter": 20, "eval_draws": 10}  # results file names omit these values
DEFAULT_BATCH_SIZE = 250
_SELF_ENSEMBLE_API = ("predictor_logits", "set_stochastic", "manual_seed")
RESULT_FORMAT = 1

logger = logging.getLogger(__name__)


class _MeanOfPredictors(nn.Module):
    """The self-ensemble with its aggregator replaced by the plain mean of the predictors' logits."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.predictor_logits(x).mean(dim=1)


@dataclasses.dataclass
class AdaptiveStep:
    attack: str
    robust: int  # images still robust after this attack (cumulative, worst case over draws)
    accuracy: float
    interval: tuple[float, float]
    attacked: int
    seconds: float


@dataclasses.dataclass
class AdaptiveResult:
    """Everything about one adaptive evaluation; ``to_dict()`` is what results files hold."""

    model_name: str
    checkpoint_sha256: str
    dataset: str
    threat_model: str
    eps: float
    n_examples: int
    seed: int
    batch_size: int
    attacks: list[str]
    n_iter: int
    eot_iter: int
    eval_draws: int
    clean_correct: int  # correct on every draw
    clean_accuracy: float
    clean_interval: tuple[float, float]
    clean_accuracy_mean_over_draws: float
    robust_correct: int
    robust_accuracy: float
    robust_interval: tuple[float, float]
    robust_accuracy_mean_over_draws: float  # the final adversarial images, judged draw by draw
    steps: list[AdaptiveStep]
    outcomes: str  # per image: '-' wrong on some clean draw, 'k' broken first by attack k (1-based), 'R' robust
    data: dict[str, Any]
    versions: dict[str, str]
    device: str
    wall_time_s: float
    created: str
    confidence: float = CONFIDENCE
    interval_method: str = "clopper-pearson"

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["format_version"] = RESULT_FORMAT
        d["kind"] = "adaptive"
        d["version"] = "adaptive"  # read by the results and card tools beside AutoAttack's versions
        d["stochastic"] = True  # judged on the deployed stochastic model
        return d

    def summary(self) -> str:
        """Human-readable lines; every figure says what it counts (all draws, or the mean over draws)."""
        d, n = self.eval_draws, self.n_examples
        every, mean = f"right on all {d} draws", f"mean over the {d} draws"
        lo, hi = self.clean_interval
        rows = [
            (f"clean accuracy, {every}", self.clean_accuracy, f"({self.clean_correct}/{n}, 95% CI {lo:.2%}-{hi:.2%})"),
            (f"clean accuracy, {mean}", self.clean_accuracy_mean_over_draws, ""),
        ]
        for step in self.steps:
            lo, hi = step.interval
            detail = f"({step.robust}/{n}, CI {lo:.2%}-{hi:.2%}; {step.attacked} attacked in {step.seconds:.1f} s)"
            rows.append((f"after {step.attack}, {every}", step.accuracy, detail))
        lo, hi = self.robust_interval
        rows += [
            (
                f"robust accuracy, {every}",
                self.robust_accuracy,
                f"({self.robust_correct}/{n}, 95% CI {lo:.2%}-{hi:.2%})",
            ),
            (
                f"robust accuracy, {mean}",
                self.robust_accuracy_mean_over_draws,
                "(each image's final adversarial example)",
            ),
        ]
        width = max(len(label) for label, _, _ in rows)
        lines = [
            f"{self.model_name} ({self.checkpoint_sha256[:12]}) {self.dataset} {self.threat_model} eps={self.eps:.6g} "
            f"adaptive attacks seed={self.seed} n={n} (APGD {self.n_iter} iterations, EOT "
            f"{self.eot_iter} draws, judged on {d} draws)",
            f"  '{every}': an image counts only if the deployed model is right on every draw (what an attacker who "
            f"may resubmit sees); '{mean}': the per-draw accuracy, the figure to compare with AutoAttack's, which "
            "judges one draw per image",
        ]
        lines += [f"  {label:<{width}}  {value:7.2%}  {detail}".rstrip() for label, value, detail in rows]
        return "\n".join(lines)


@strict_fp32()  # TF32 off on GPUs: attacks and accuracies in true fp32
def adaptive_evaluate(
    model: nn.Module,
    n_examples: int = 1000,
    dataset: str = "cifar10",
    threat_model: str = "Linf",
    *,
    eps: float | None = None,
    attacks: Sequence[str] = ADAPTIVE_ATTACKS,
    n_iter: int = DEFAULT_SETTINGS["n_iter"],
    eot_iter: int = DEFAULT_SETTINGS["eot_iter"],
    eval_draws: int = DEFAULT_SETTINGS["eval_draws"],
    batch_size: int = DEFAULT_BATCH_SIZE,
    seed: int = 0,
    device: str | torch.device | None = None,
    data_dir: Any = None,
    inputs: tuple[torch.Tensor, torch.Tensor] | None = None,
    model_name: str | None = None,
    progress: ProgressOutput = True,
) -> AdaptiveResult:
    """Robust accuracy of a (stochastic) self-ensemble under the adaptive attacks of this module.

    ``model`` must be a :class:`~eee_zoo.models.SelfEnsemble` (or offer ``predictor_logits``,
    ``set_stochastic`` and ``manual_seed``) in eval mode, taking images in [0, 1]. The other arguments are
    those of :func:`eee_zoo.evaluation.evaluate`; ``n_iter`` is APGD's iterations per attack, ``eot_iter`` the
    draws averaged per gradient step of ``eot-mean``, ``eval_draws`` the draws of the deployed model that
    judge every image. ``progress`` (default on, like :func:`eee_zoo.benchmark`): per batch, attack and APGD
    iteration with the robust accuracy so far, as a tqdm bar in a terminal, log lines otherwise, or a callable
    that gets every :class:`~eee_zoo.evaluation.ProgressEvent`; it does not change the result.
    """
    wall_start = time.perf_counter()
    dataset = _parse_dataset(dataset)
    threat_model = _parse_threat_model(threat_model)
    _check_int("n_examples", n_examples, lo=1)
    if n_examples > _SPLIT_SIZE[dataset]:
        raise ValueError(f"n_examples={n_examples} is larger than the {dataset} test split")
    for name, value in (("n_iter", n_iter), ("eot_iter", eot_iter), ("eval_draws", eval_draws)):
        _check_int(name, value, lo=1)
    _check_int("batch_size", batch_size, lo=1)
    _check_int("seed", seed, lo=0)
    attacks = list(attacks)
    unknown = [a for a in attacks if a not in ADAPTIVE_ATTACKS]
    if unknown or not attacks or len(set(attacks)) != len(attacks):
        raise ValueError(f"attacks must be distinct names from {list(ADAPTIVE_ATTACKS)}, got {attacks}")
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if model.training:
        raise ValueError("the model is in training mode; call model.eval() before evaluating")
    missing = [m for m in _SELF_ENSEMBLE_API if not callable(getattr(model, m, None))]
    if missing:
        raise TypeError(f"adaptive attacks need a self-ensemble (eee_zoo SelfEnsemble); the model lacks {missing}")
    eps = _check_eps(DEFAULT_EPS[threat_model] if eps is None else eps, threat_model)
    device = _resolve_device(model, device, _DistInfo.detect(False))
    model.to(device)

    _check_model_matches(model, dataset, threat_model, device, probe=inputs is None)  # before any data is read
    x, y, data = _inputs(dataset, n_examples, data_dir, inputs)
    _check_model_outputs(model, x[:_PROBE_IMAGES], y, _NUM_CLASSES[dataset], device)
    name, sha, _ = _model_identity(model, model_name)
    was_stochastic = bool(model.stochastic)

    outcomes = ["R"] * n_examples
    seconds = dict.fromkeys(attacks, 0.0)
    attacked = dict.fromkeys(attacks, 0)
    clean_draw_hits = 0
    adv_draw_hits = 0
    meter = _Meter(progress, n_examples, batch_size, attacks, n_iter, eval_draws)
    with _RUN_LOCK, _preserve_model_seeds(model), _restore_stochastic(model, was_stochastic), meter:
        model.set_stochastic(True)
        model.manual_seed(seed)
        for start in range(0, n_examples, batch_size):
            xb = x[start : start + batch_size].to(device)
            yb = y[start : start + batch_size].to(device)
            batch_seed = seed * 1_000_003 + start  # per-batch seeds: a batch's result does not depend on others
            hits = _judge(model, xb, yb, eval_draws, batch_seed)
            clean_draw_hits += int(hits.sum())
            clean_ok = hits.all(dim=0)
            robust = clean_ok.clone()
            for i in torch.nonzero(~clean_ok).flatten().tolist():
                outcomes[start + i] = "-"
            x_final = xb.clone()
            meter.start_batch(start, len(yb), robust=int(robust.sum()))
            for k, attack in enumerate(attacks):
                idx = torch.nonzero(robust).flatten()
                if len(idx) == 0:
                    break
                t0 = time.perf_counter()
                meter.start_attack(k)
                x_adv = _run_attack(
                    attack, model, xb[idx], yb[idx], eps, threat_model, n_iter, eot_iter, batch_seed,
                    on_iteration=meter.iteration if meter.enabled else None,
                )  # fmt: skip
                hits_adv = _judge(model, x_adv, yb[idx], eval_draws, batch_seed + 1 + k)
                seconds[attack] += time.perf_counter() - t0
                attacked[attack] += len(idx)
                broken = ~hits_adv.all(dim=0)
                x_final[idx] = x_adv  # the breaking example, or the latest attempt on an image still standing
                logger.info(
                    "images %d-%d: %s broke %d of %d in %.1f s",
                    start,
                    start + len(yb) - 1,
                    attack,
                    int(broken.sum()),
                    len(idx),
                    time.perf_counter() - t0,
                )
                for i in idx[broken].tolist():
                    outcomes[start + i] = str(k + 1)
                robust[idx[broken]] = False
                meter.end_attack(robust=int(robust.sum()))
            meter.end_batch()
            # Every image's final adversarial example, judged draw by draw (clean-wrong images count as misses).
            final_hits = _judge(model, x_final, yb, eval_draws, batch_seed + 1000)
            adv_draw_hits += int((final_hits & clean_ok).sum())

    n = n_examples
    clean_correct = sum(o != "-" for o in outcomes)
    robust_correct = sum(o == "R" for o in outcomes)
    steps = []
    for k, attack in enumerate(attacks):
        still = sum(o == "R" or (o.isdigit() and int(o) > k + 1) for o in outcomes)
        steps.append(
            AdaptiveStep(
                attack=attack,
                robust=still,
                accuracy=still / n,
                interval=clopper_pearson_interval(still, n),
                attacked=attacked[attack],
                seconds=round(seconds[attack], 2),
            )
        )
    return AdaptiveResult(
        model_name=name,
        checkpoint_sha256=sha,
        dataset=dataset,
        threat_model=threat_model,
        eps=float(eps),
        n_examples=n,
        seed=seed,
        batch_size=batch_size,
        attacks=attacks,
        n_iter=n_iter,
        eot_iter=eot_iter,
        eval_draws=eval_draws,
        clean_correct=clean_correct,
        clean_accuracy=clean_correct / n,
        clean_interval=clopper_pearson_interval(clean_correct, n),
        clean_accuracy_mean_over_draws=clean_draw_hits / (n * eval_draws),
        robust_correct=robust_correct,
        robust_accuracy=robust_correct / n,
        robust_interval=clopper_pearson_interval(robust_correct, n),
        robust_accuracy_mean_over_draws=adv_draw_hits / (n * eval_draws),
        steps=steps,
        outcomes="".join(outcomes),
        data=data,
        versions=_versions(),
        device=str(device),
        wall_time_s=round(time.perf_counter() - wall_start, 1),
        created=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    )


@torch.no_grad()
def _judge(model: nn.Module, x: torch.Tensor, y: torch.Tensor, draws: int, seed: int) -> torch.Tensor:
    """``[draws, B]``: is the deployed (stochastic) model right on each draw? Draw ``d`` uses its own seed."""
    hits = []
    for d in range(draws):
        gen = torch.Generator(device=x.device).manual_seed(seed * 1009 + d)
        hits.append(model(x, generator=gen).argmax(1) == y)
    return torch.stack(hits)


def _run_attack(
    attack: str,
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    norm: str,
    n_iter: int,
    eot_iter: int,
    seed: int,
    *,
    on_iteration: Any = None,
) -> torch.Tensor:
    """The adversarial images of ``attack`` (see the module docstring); ``on_iteration(i)`` follows APGD's steps."""
    from pyautoattack.autopgd_base import APGDAttack

    stochastic = attack == "eot-mean"
    target: nn.Module = model if attack == "transfer-det" else _MeanOfPredictors(model)
    apgd = APGDAttack(
        target,
        n_iter=n_iter,
        norm=norm,
        n_restarts=1,
        eps=eps,
        seed=seed,
        loss="ce",
        eot_iter=eot_iter if stochastic else 1,
        device=x.device,
    )
    # APGD draws its random start from torch's global RNG and, with best_loss=True, does not seed it itself:
    # seed it here, inside a forked RNG state so that the caller's stays as it was. The stack draws from the
    # model's own generator, seeded per attack and batch.
    with torch.random.fork_rng(devices=[x.device] if x.device.type == "cuda" else []):
        torch.manual_seed(seed)
        model.set_stochastic(stochastic)
        model.manual_seed(seed)
        watch = _apgd_iterations(apgd, on_iteration) if on_iteration is not None else contextlib.nullcontext()
        try:
            with watch:
                return apgd.perturb(x, y, best_loss=True).detach()
        finally:
            model.set_stochastic(True)


class _Meter:
    """Progress of :func:`adaptive_evaluate`: APGD iterations over all batches and attacks, robust so far."""

    def __init__(
        self, output: ProgressOutput, n: int, batch_size: int, attacks: list[str], n_iter: int, draws: int
    ) -> None:
        self.output, self.n, self.attacks, self.n_iter, self.draws = output, n, attacks, n_iter, draws
        self.batches = -(-n // batch_size)
        self.enabled = bool(output)
        self.progress: Progress | None = None
        self.batch, self.attack, self.it = -1, 0, 0
        self.first, self.size = 0, 0
        self.done_robust, self.done_images = 0, 0  # over finished batches
        self.robust = 0  # in the batch under way

    def __enter__(self) -> _Meter:
        if self.enabled:
            total = self.batches * len(self.attacks) * self.n_iter
            self.progress = Progress("adaptive", total, output=self.output, unit="it", text="judging the clean images")
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.progress is not None:
            self.progress.close(text=self._robust())
            self.progress = None

    def start_batch(self, first: int, size: int, *, robust: int) -> None:
        self.batch, self.attack, self.it = self.batch + 1, 0, 0
        self.first, self.size, self.robust = first, size, robust
        self._show()

    def start_attack(self, k: int) -> None:
        self.attack, self.it = k, 0
        self._show()

    def iteration(self, i: int) -> None:
        self.it = i
        self._show()

    def end_attack(self, *, robust: int) -> None:
        self.robust, self.it = robust, self.n_iter
        self._show()

    def end_batch(self) -> None:
        self.done_robust += self.robust
        self.done_images += self.size
        self.attack, self.it, self.robust, self.size = len(self.attacks), 0, 0, 0  # attacks left out count as done
        self._show()

    def _robust(self) -> str:
        k, m = self.done_robust + self.robust, self.done_images + self.size
        share = f" ({k / m:.2%})" if m else ""
        return f"robust on all {self.draws} draws {k}/{m} so far{share}"

    def _show(self) -> None:
        if self.progress is None:
            return
        done = ((self.batch * len(self.attacks)) + self.attack) * self.n_iter + self.it
        if self.attack < len(self.attacks):
            where = (
                f"images {self.first}-{self.first + self.size - 1} (batch {self.batch + 1}/{self.batches}), "
                f"{self.attacks[self.attack]} iteration {self.it}/{self.n_iter}"
            )
        else:
            where = f"batch {self.batch + 1}/{self.batches} done"
        self.progress.update(
            done=done,
            text=f"{where}, {self._robust()}",
            batch=self.batch + 1,
            batches=self.batches,
            attack=self.attacks[min(self.attack, len(self.attacks) - 1)],
            iteration=self.it,
            iterations=self.n_iter,
            robust=self.done_robust + self.robust,
            judged=self.done_images + self.size,
            n=self.n,
        )


@contextlib.contextmanager
def _restore_stochastic(model: nn.Module, stochastic: bool) -> Iterator[None]:
    try:
        yield
    finally:
        model.set_stochastic(stochastic)
