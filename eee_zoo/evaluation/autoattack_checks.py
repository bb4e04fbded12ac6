"""AutoAttack's own checks (its ``checks`` module), called directly and kept with the result.

AutoAttack's checks only log a warning: the model looks randomized, returns probabilities, is dynamic, has too
few classes for the targeted attacks, APGD met zero gradients, or Square beat the white-box attacks. Here they
are called the way ``run_standard_evaluation`` calls them, with a :class:`CheckRecorder` as their logger (APGD
gets it too, for its zero-gradient check), and every message is kept as a classified warning.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import torch

__all__ = [
    "CHECKS", "CheckRecorder", "add_warning", "captured_python_warnings", "check_square", "classify",
    "run_pre_checks",
]  # fmt: skip

# Classify a check's message by its text (pyautoattack 0.2.0, checks.py).
CHECKS = (
    ("randomized", "randomized defense"),
    ("softmax_output", "probability distribution"),
    ("zero_gradients", "zero gradient"),
    ("square_beats_white_box", "Square Attack has decreased"),
    ("dynamic", "dynamic defense"),
    ("n_classes", "target classes"),
    ("n_classes", "not possible to use the"),
)


def classify(message: str) -> str:
    """The check a message comes from (``"other"`` when none matches)."""
    for check, needle in CHECKS:
        if needle in message:
            return check
    return "other"


def add_warning(warnings_list: list[dict[str, Any]], check: str, message: str) -> None:
    """Count ``message`` in ``warnings_list`` (``{"check", "message", "count"}`` records)."""
    for w in warnings_list:
        if w["check"] == check and w["message"] == message:
            w["count"] += 1
            return
    warnings_list.append({"check": check, "message": message, "count": 1})


class CheckRecorder(logging.Logger):
    """A logger of its own (outside the logging tree) that hands every record to ``on_record(level, message)``."""

    def __init__(self, on_record: Callable[[int, str], None]) -> None:
        super().__init__("eee_zoo.evaluation.autoattack_checks", level=logging.DEBUG)
        self.propagate = False
        handler = logging.Handler(level=logging.DEBUG)
        handler.emit = lambda record: on_record(record.levelno, record.getMessage())  # type: ignore[method-assign]
        self.addHandler(handler)

    def attach(self, adversary: Any) -> None:
        """Make APGD's zero-gradient checks report here (they use the logger the attack objects hold)."""
        adversary.logger = self
        adversary.apgd.logger = self
        adversary.apgd_targeted.logger = self


def run_pre_checks(adversary: Any, x: torch.Tensor, y: torch.Tensor, batch_size: int, logger: logging.Logger) -> None:
    """The checks ``run_standard_evaluation`` runs before its clean pass, on the first batch, in its order.

    Each calls the model (a stochastic model draws from its generator), so they run exactly as AutoAttack runs
    them: the random draws of everything after them stay those of AutoAttack run directly.
    """
    from pyautoattack import checks

    device = adversary.device
    xb, yb = x[:batch_size].to(device), y[:batch_size].to(device)
    if adversary.version != "rand":
        checks.check_randomized(adversary.get_logits, xb, yb, bs=batch_size, logger=logger)
    n_classes = checks.check_range_output(adversary.get_logits, x[:batch_size].to(device), logger=logger)
    checks.check_dynamic(adversary.model, x[:batch_size].to(device), False, logger=logger)
    checks.check_n_classes(
        n_classes,
        adversary.attacks_to_run,
        adversary.apgd_targeted.n_target_classes,
        adversary.fab.n_target_classes,
        logger=logger,
    )


def check_square(accuracies: dict[str, float], logger: logging.Logger) -> None:
    """AutoAttack's final check: did Square (black box) beat the white-box attacks before it?"""
    from pyautoattack import checks

    checks.check_square_sr(accuracies, logger=logger)


@contextlib.contextmanager
def captured_python_warnings(on_warning: Callable[[str], None]) -> Iterator[None]:
    """pyautoattack's ``warnings.warn`` calls (a check without a logger) go to ``on_warning``; others pass on."""
    caught: list[warnings.WarningMessage] = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield
    finally:
        for w in caught:
            if "pyautoattack" in str(w.filename):
                on_warning(str(w.message))
            else:  # not ours to keep: hand it back to the caller's filters
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno, source=w.source)
