"""Progress during AutoAttack's attacks, per batch, run (restart or target class) and iteration.

:class:`AttackMeter` shows it for :func:`.evaluate` (a tqdm bar in a terminal, log lines otherwise, or a callable
that gets every :class:`~eee_zoo._progress.ProgressEvent`); :func:`apgd_iterations` follows one APGD object's
iterations for any caller. Both only observe: a forward pre-hook on the model counts forward passes and each
attack object's ``attack_single_run`` is wrapped (an instance attribute, removed afterwards) to see where runs
start and end; nothing the attacks compute is touched, so results are identical with and without progress.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from typing import Any

import torch
import torch.nn as nn

from .._progress import Progress, ProgressOutput

__all__ = ["ATTACK_WORK", "AttackMeter", "apgd_iterations"]

# Per attack: (AutoAttack component, what one run of attack_single_run is called, the count attribute(s) whose
# product is the runs per batch, iterations per run, forwards per iteration, whether only forwards with gradients
# count, forwards before the first iteration). pyautoattack 0.2.0: APGD computes eot_iter forwards with gradients
# per iteration after as many at its start; FAB one per iteration; Square one (without gradients) per query after
# one at its start. AutoAttack sets FAB's n_restarts to 1 for fab-t.
ATTACK_WORK = {
    "apgd-ce": ("apgd", "restart", ("n_restarts",), "n_iter", "eot_iter", True, 1),
    "apgd-dlr": ("apgd", "restart", ("n_restarts",), "n_iter", "eot_iter", True, 1),
    "apgd-t": ("apgd_targeted", "target", ("n_target_classes", "n_restarts"), "n_iter", "eot_iter", True, 1),
    "fab": ("fab", "restart", ("n_restarts",), "n_iter", None, True, 0),
    "fab-t": ("fab", "target", ("n_target_classes",), "n_iter", None, True, 0),
    "square": ("square", "restart", ("n_restarts",), "n_queries", None, False, 1),
}


class AttackMeter:
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
        for component in dict.fromkeys(w[0] for w in ATTACK_WORK.values()):
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
        component, run_name, run_attrs, iter_attr, per_iter_attr, grad_only, warmup = ATTACK_WORK[attack]
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
def apgd_iterations(apgd: Any, on_iteration: Callable[[int], None]) -> Iterator[None]:
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
