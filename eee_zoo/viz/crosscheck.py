"""The figures' attack runs (AutoAttack, the adaptive worst case) against results files of the same configuration.

A point of a figure and a results file (``benchmarks/results/**/*.json``) describe the same configuration when they
agree on everything that determines the result: the suite, checkpoint sha256, dataset, threat model, eps, n, seed,
batch size, the attacks' settings (AutoAttack's version, chunking, inference mode, cuts; the adaptive suite's
attacks, proposals and draws) and the images' sha256. Then their per-image results (AutoAttack's outcomes, the
adaptive worst case's chosen proposals and fresh hits) must be the same, and the check says whether they are.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from .attack_runs import AttackRun

__all__ = ["check_against_results", "check_point"]

_MISSING = object()


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return isinstance(a, (int, float)) and isinstance(b, (int, float)) and math.isclose(a, b, rel_tol=1e-9)
    return a == b


def _field(record: dict[str, Any], path: str) -> Any:
    """``record["a"]["b"]`` for ``path`` ``"a.b"``; a missing key gives a value nothing equals."""
    value: Any = record
    for key in path.split("."):
        if not isinstance(value, dict) or key not in value:
            return _MISSING
        value = value[key]
    return value


def check_against_results(run: AttackRun, results_dir: str | os.PathLike | None) -> dict[str, Any] | None:
    """:func:`check_point` for one attack run (its ``settings["identity"]`` and ``settings["fingerprint"]``)."""
    return check_point(run.settings.get("identity"), run.settings.get("fingerprint", {}), results_dir)


def check_point(
    identity: dict[str, Any] | None, fingerprint: dict[str, Any], results_dir: str | os.PathLike | None
) -> dict[str, Any] | None:
    """``{"results_file" (relative to ``results_dir``), "compared", "differ", "agree"}`` for the first results file
    under ``results_dir`` whose configuration is ``identity`` (dotted keys into the file's record); ``agree`` says
    whether every entry of ``fingerprint`` (per-image outcomes or hits) is the same there, ``differ`` names those
    that are not. None when no results file has that configuration."""
    if identity is None or results_dir is None or not Path(results_dir).is_dir():
        return None
    root = Path(results_dir)
    for path in sorted(root.rglob("*.json")):
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if not isinstance(record, dict) or not all(_same(_field(record, k), v) for k, v in identity.items()):
            continue
        differ = sorted(k for k, v in fingerprint.items() if not _same(_field(record, k), v))
        return {"results_file": path.relative_to(root).as_posix(), "compared": sorted(fingerprint),
                "differ": differ, "agree": not differ}  # fmt: skip
    return None
