"""What the attacks differentiate: the self-ensemble seen through another aggregator, mode or draw count.

A stochastic self-ensemble masks its gradient two ways: fresh noise on every call, and CrossMax's max and top-k,
which pass gradient to one predictor per class. A :class:`Surrogate` changes one of those at a time, keeping the
same weights:

* ``head``: ``"deployed"`` (the model's own aggregator), ``"mean"`` (the plain mean of the predictors' logits, a
  smooth stand-in for CrossMax, BPDA-style), or an integer: one predictor alone;
* ``draws``: ``0`` for the deterministic mode (no jitter, factors 1, noise at its mean), ``E >= 1`` for the
  stochastic stack with expectation over ``E`` draws. The draws run as **one batch** of ``E x B`` images (each copy
  gets its own noise from the model's generator: the stack draws per image), not as ``E`` sequential passes, and
  are combined as the log of the mean probability, so cross-entropy on the output is the loss of the expected
  classifier, the quantity the deployed model's per-draw accuracy follows. ``micro_batch`` runs the backbone on that
  many of those images at a time (``SelfEnsemble.predictor_logits(micro_batch=)``), after the stack has drawn for
  all of them: the same draws, logits and gradients. It is off by default: on the 2-core CPU it made a gradient of
  a full-width ResNet-18 1.7x faster but the zoo's small models' no faster or slower
  (``benchmarks/perf/judging_micro_batch.py --workload eot``).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import torch
import torch.nn as nn

__all__ = ["CPU_MICRO_BATCH", "Surrogate", "micro_batch_for", "stochastic_mode"]

COMBINE = ("probs", "logits")
# Images per backbone pass on a CPU when judging stacks thousands (draws x images): such a pass is up to 2x slower
# per image there than passes of a few dozen (benchmarks/perf/judging_micro_batch.py); other devices keep one pass.
CPU_MICRO_BATCH = 32


def _check_micro_batch(micro_batch: int | None | str) -> None:
    if not (micro_batch is None or micro_batch == "cpu" or (isinstance(micro_batch, int) and micro_batch >= 1)):
        raise ValueError(f"micro_batch must be an integer >= 1, None or 'cpu', got {micro_batch!r}")


def micro_batch_for(micro_batch: int | None | str, x: torch.Tensor) -> int | None:
    """The ``micro_batch`` a SelfEnsemble call on ``x`` gets: ``"cpu"`` is :data:`CPU_MICRO_BATCH` on a CPU and
    ``None`` (one pass) elsewhere; an integer or ``None`` is itself. Anything else is refused."""
    _check_micro_batch(micro_batch)
    if micro_batch == "cpu":
        return CPU_MICRO_BATCH if x.device.type == "cpu" else None
    return micro_batch


@contextlib.contextmanager
def stochastic_mode(model: nn.Module, stochastic: bool) -> Iterator[None]:
    """Run ``model`` (a SelfEnsemble) in the given inference mode, and give it its own mode back afterwards."""
    was = bool(model.stochastic)
    model.set_stochastic(stochastic)
    try:
        yield
    finally:
        model.set_stochastic(was)


class Surrogate(nn.Module):
    """``model`` seen through ``head`` and ``draws`` (see the module docstring); outputs ``[B, C]`` logits."""

    def __init__(
        self,
        model: nn.Module,
        head: str | int = "deployed",
        draws: int = 0,
        combine: str = "probs",
        micro_batch: int | None | str = None,
    ) -> None:
        super().__init__()
        if not (head in ("deployed", "mean") or (isinstance(head, int) and 0 <= head < model.num_predictors)):
            raise ValueError(
                f"head must be 'deployed', 'mean' or a predictor index < {model.num_predictors}, got {head!r}"
            )
        if not isinstance(draws, int) or draws < 0:
            raise ValueError(f"draws must be an integer >= 0, got {draws!r}")
        if combine not in COMBINE:
            raise ValueError(f"combine must be one of {COMBINE}, got {combine!r}")
        _check_micro_batch(micro_batch)
        self.model, self.head, self.draws, self.combine = model, head, draws, combine
        self.micro_batch = micro_batch  # the EOT pass's backbone micro-batches (None: one pass; see micro_batch_for)

    def describe(self) -> str:
        head = self.head if isinstance(self.head, str) else f"predictor {self.model.predictor_names[self.head]}"
        mode = "deterministic mode" if self.draws == 0 else f"EOT over {self.draws} draws (batched)"
        return f"{head}, {mode}"

    def _aggregate(self, logits: torch.Tensor) -> torch.Tensor:
        if self.head == "deployed":
            return self.model.aggregate(logits)
        if self.head == "mean":
            return logits.mean(dim=1)
        return logits[:, self.head]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.draws == 0:
            with stochastic_mode(self.model, False):
                return self._aggregate(self.model.predictor_logits(x))
        b = x.shape[0]
        with stochastic_mode(self.model, True):
            # copy e of image i sits at e * B + i; one forward pass for all draws
            micro = micro_batch_for(self.micro_batch, x)
            z = self._aggregate(self.model.predictor_logits(x.repeat(self.draws, 1, 1, 1), micro_batch=micro))
        z = z.view(self.draws, b, -1)
        if self.combine == "logits":
            return z.mean(dim=0)
        return torch.logsumexp(z.log_softmax(dim=-1), dim=0) - math.log(self.draws)
