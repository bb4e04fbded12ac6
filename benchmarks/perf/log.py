"""The perf scripts' console log: what they print is what their ``.log`` result file holds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from eee_zoo._io import atomic_write_json, atomic_write_text


class Log:
    """Print and remember every line, so the log file holds exactly what was printed."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def __call__(self, line: str = "") -> None:
        print(line, flush=True)
        self.lines.append(line)

    def save(self, out: str | Path, stem: str, result: dict[str, Any]) -> None:
        """Write ``<out>/<stem>.json`` (the figures) and ``<out>/<stem>.log`` (what was printed), atomically."""
        atomic_write_json(Path(out) / f"{stem}.json", result)
        atomic_write_text(Path(out) / f"{stem}.log", "\n".join(self.lines) + "\n")
