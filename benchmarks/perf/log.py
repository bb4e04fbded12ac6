"""The perf scripts' console log: what they print is what their ``.log`` result file holds."""

from __future__ import annotations


class Log:
    """Print and remember every line, so the log file holds exactly what was printed."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def __call__(self, line: str = "") -> None:
        print(line, flush=True)
        self.lines.append(line)
