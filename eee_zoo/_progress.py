"""Progress of long runs (attacks, training): a tqdm bar in a terminal, plain log lines elsewhere, or a callback.

:func:`eee_zoo.evaluate` / :func:`eee_zoo.benchmark`, :func:`eee_zoo.adaptive_evaluate`, ``eee-zoo demo`` and the
training loop report through :class:`Progress`. Where it goes depends on where the output goes:

* a terminal (``file.isatty()``): a tqdm bar, redrawn as it moves;
* anything else (a log file, a pipe, CI, captured stderr): one plain line when a task starts, at most one every
  ``every_s`` seconds while it runs (``$EEE_ZOO_PROGRESS_EVERY`` overrides the default), and one when it ends;
* ``progress=<callable>``: the callable gets a :class:`ProgressEvent` on every update (no rate limit) and nothing
  is printed.

``$EEE_ZOO_PROGRESS`` set to ``bar``, ``lines`` or ``off`` forces the first two choices.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import sys
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any, TextIO

__all__ = ["ENV_EVERY", "ENV_MODE", "Progress", "ProgressEvent", "ProgressOutput"]

ENV_EVERY = "EEE_ZOO_PROGRESS_EVERY"  # seconds between log lines when the output is not a terminal
ENV_MODE = "EEE_ZOO_PROGRESS"  # bar | lines | off
_BAR_REFRESH_S = 0.2  # postfix-only redraws of a tqdm bar, at most this often


@dataclasses.dataclass(frozen=True)
class ProgressEvent:
    """One update of a task: where it stands, and the task's own details (batch, restart, robust, ...)."""

    task: str  # "apgd-ce", "transfer-det", "backbone", ...
    kind: str  # "start" | "update" | "end"
    done: int
    total: int
    unit: str
    elapsed_s: float
    rate: float | None  # units per second since the start (None before any progress)
    text: str  # the task's details as shown beside the bar
    info: dict[str, Any]


ProgressOutput = bool | Callable[[ProgressEvent], None]


class Progress:
    """Progress of one task: ``update(...)`` as it moves, ``close()`` when it ends (or use it as a context)."""

    def __init__(
        self,
        task: str,
        total: int,
        *,
        output: ProgressOutput = True,
        unit: str = "it",
        initial: int = 0,
        every_s: float | None = None,
        file: TextIO | None = None,
        logger: logging.Logger | None = None,
        unit_scale: bool = False,
        text: str = "",
        **info: Any,
    ) -> None:
        self.task, self.total, self.unit, self.initial = task, max(int(total), 0), unit, int(initial)
        self.done = self.initial
        self.text = text
        self.info: dict[str, Any] = dict(info)
        self.callback = output if callable(output) else None
        self.file = file if file is not None else sys.stderr
        self.logger = logger
        self.every_s = _every_s(every_s)
        self.mode = _mode(output, self.file)
        self.start = time.perf_counter()
        self.last_line = self.start
        self.last_key: tuple[int, str] | None = None
        self.last_redraw = 0.0
        self.closed = False
        self.bar: Any = None
        if self.mode == "bar":
            from tqdm import tqdm

            self.bar = tqdm(
                total=self.total, initial=self.initial, desc=task, unit=unit, unit_scale=unit_scale, file=self.file,
                dynamic_ncols=True, leave=True, mininterval=_BAR_REFRESH_S,
            )  # fmt: skip
            if text:
                self.bar.set_postfix_str(text)
        self._emit("start")

    # -------------------------------------------------------------------------------------------- API
    def update(self, n: int = 0, *, done: int | None = None, text: str | None = None, **info: Any) -> None:
        """Move by ``n`` (or to ``done``), with the task's details ``text`` and ``info``."""
        if self.closed:
            return
        new = self.done + int(n) if done is None else int(done)
        new = min(max(new, self.done), self.total) if self.total else new
        delta, self.done = new - self.done, new
        changed = text is not None and text != self.text
        if text is not None:
            self.text = text
        if not delta and not changed and all(self.info.get(k, not v) == v for k, v in info.items()):
            return  # nothing new to show
        self.info.update(info)
        if self.bar is not None:
            now = time.perf_counter()
            if changed:
                self.bar.set_postfix_str(self.text, refresh=False)
            if delta:
                self.bar.update(delta)  # tqdm redraws at most every mininterval
            elif changed and now - self.last_redraw >= _BAR_REFRESH_S:
                self.bar.refresh()
                self.last_redraw = now
        self._emit("update")

    def skip(self, n: int, *, text: str | None = None) -> None:
        """Move by ``n`` units done by an earlier run (resumed from a state): shown as done, but left out of the rate,
        so the estimate of the time left counts only the work this run does."""
        n = min(max(int(n), 0), self.total - self.done) if self.total else max(int(n), 0)
        if self.closed or not n:
            return
        self.done += n
        self.initial += n
        if text is not None:
            self.text = text
        if self.bar is not None:
            # tqdm's rate counts n - initial (and its moving average the updates it sees): move all three together
            self.bar.n += n
            self.bar.last_print_n += n
            self.bar.initial += n
            if text is not None:
                self.bar.set_postfix_str(self.text, refresh=False)
            self.bar.refresh()
        self._emit("update")

    def close(self, text: str | None = None, **info: Any) -> None:
        if self.closed:
            return
        if text is not None:
            self.text = text
        self.info.update(info)
        if self.bar is not None:
            self.bar.set_postfix_str(self.text, refresh=False)
            self.bar.close()
        self._emit("end")
        self.closed = True

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -------------------------------------------------------------------------------------------- output
    def _emit(self, kind: str) -> None:
        elapsed = time.perf_counter() - self.start
        moved = self.done - self.initial
        rate = moved / elapsed if moved > 0 and elapsed > 0 else None
        if self.callback is not None:
            event = ProgressEvent(
                task=self.task, kind=kind, done=self.done, total=self.total, unit=self.unit,
                elapsed_s=elapsed, rate=rate, text=self.text, info=dict(self.info),
            )  # fmt: skip
            self.callback(event)
        if self.mode != "lines":
            return
        now = time.perf_counter()
        key = (self.done, self.text)
        if kind == "update" and (now - self.last_line < self.every_s or key == self.last_key):
            return
        self.last_line, self.last_key = now, key
        self._write_line(self._line(kind, elapsed, rate))

    def _line(self, kind: str, elapsed: float, rate: float | None) -> str:
        where = f"{self.done}/{self.total} {self.unit}"
        if self.total:
            where += f" ({100.0 * self.done / self.total:.0f} %)"
        parts = [f"{self.task}: {where}"]
        if self.text:
            parts.append(self.text)
        timing = f"{_duration(elapsed)} elapsed"
        if rate is not None:
            timing += f", {_number(rate)} {self.unit}/s"
            if kind != "end" and self.total > self.done:
                timing += f", ~{_duration((self.total - self.done) / rate)} left"
        if kind == "end":
            timing = "done, " + timing
        parts.append(timing)
        return " | ".join(parts)

    def _write_line(self, line: str) -> None:
        if self.logger is not None:
            self.logger.info("%s", line)
            return
        print(f"{datetime.now():%H:%M:%S} {line}", file=self.file, flush=True)


def _mode(output: ProgressOutput, file: TextIO) -> str | None:
    if callable(output) or not output:
        return None
    forced = os.environ.get(ENV_MODE, "").strip().lower()
    if forced in ("bar", "lines"):
        return forced
    if forced in ("off", "0", "none", "false"):
        return None
    try:
        return "bar" if file.isatty() else "lines"
    except (AttributeError, ValueError):
        return "lines"


def _every_s(every_s: float | None) -> float:
    env = os.environ.get(ENV_EVERY)
    if env:
        try:
            return max(0.0, float(env))
        except ValueError:
            raise ValueError(f"${ENV_EVERY} must be a number of seconds, got {env!r}") from None
    return 10.0 if every_s is None else max(0.0, float(every_s))


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def _number(x: float) -> str:
    return f"{x:.0f}" if x >= 100 else f"{x:.1f}" if x >= 10 else f"{x:.2f}"
