"""Writing the leaderboard: model_info JSON per checkpoint, ``benchmarks/LEADERBOARD.md`` and RobustBench's HTML."""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from eee_zoo._io import atomic_write_json, atomic_write_text

from ..results import RESULTS_DIR, iter_adaptive_results, iter_results
from .adaptive_table import render_adaptive
from .autoattack_table import render_markdown
from .certified_table import render_certified
from .headline_table import render_headline
from .model_info import headline, model_info

__all__ = ["HTML_DIR", "LEADERBOARD_MD", "MODEL_INFO_DIR", "build", "main", "render_html"]

BENCH_DIR = Path(__file__).resolve().parents[1]  # benchmarks/
MODEL_INFO_DIR = BENCH_DIR / "model_info"
LEADERBOARD_MD = BENCH_DIR / "LEADERBOARD.md"
HTML_DIR = BENCH_DIR / "leaderboard"
DESCRIPTION = "The leaderboard, built from results files only."


def render_html(dataset: str, threat_model: str, models_folder: str | os.PathLike) -> str | None:
    """HTML through RobustBench's own template, or None when robustbench or its template is not available."""
    try:
        from eee_zoo._robustbench import import_robustbench

        import_robustbench()
        from jinja2.exceptions import TemplateNotFound
        from robustbench.leaderboard.template import generate_leaderboard
    except ImportError:
        return None
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # it prints the table as well as returning it
            return generate_leaderboard(dataset, threat_model, str(models_folder))
    except TemplateNotFound:  # the robustbench 1.1.1 wheel does not ship leaderboard.html.j2
        return None


def build(
    results_dir: str | os.PathLike | None = None,
    *,
    model_info_dir: str | os.PathLike | None = None,
    markdown_path: str | os.PathLike | None = None,
    html_dir: str | os.PathLike | None = None,
    html: bool = True,
) -> dict[str, Any]:
    """Write model_info JSON, the Markdown leaderboard and (if possible) HTML; returns what was written."""
    results_dir = Path(results_dir) if results_dir is not None else RESULTS_DIR
    model_info_dir = Path(model_info_dir) if model_info_dir is not None else MODEL_INFO_DIR
    markdown_path = Path(markdown_path) if markdown_path is not None else LEADERBOARD_MD
    html_dir = Path(html_dir) if html_dir is not None else HTML_DIR
    per_model: dict[tuple[str, str, str], list[tuple[Path, dict[str, Any]]]] = defaultdict(list)
    for path, data in iter_results(results_dir):
        per_model[(data["dataset"], data["threat_model"], data["model_name"])].append((path, data))
    boards: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    headlines: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)  # one model_info per checkpoint
    written: dict[str, Any] = {"model_info": [], "markdown": None, "html": []}
    base = results_dir.resolve().parents[1] if results_dir.resolve().parent.name == "benchmarks" else None

    def reference(path: Path) -> str:
        return path.resolve().relative_to(base).as_posix() if base is not None else str(path)

    adaptive = [(reference(path), data) for path, data in iter_adaptive_results(results_dir)]
    shown = {ref for ref, _ in adaptive}  # the rest are the retired cascade's files (iter_adaptive_results logs them)
    skipped = [ref for ref in map(reference, sorted(results_dir.glob("*/*/*/adaptive/*.json"))) if ref not in shown]
    for (dataset, threat, name), entries in sorted(per_model.items()):
        best = headline([d for _, d in entries])
        if best is None:
            continue
        runs = [(reference(path), data) for path, data in entries]
        for path, data in entries:
            if data is not best and headline([data]) is None:
                continue  # reduced settings or caller-provided images: never on a leaderboard
            info = model_info(data, results_file=reference(path), adaptive=adaptive, autoattack=runs)
            if data is best:  # RobustBench's model_info holds one entry per checkpoint: the headline
                target = model_info_dir / dataset / threat / f"{name}.json"
                atomic_write_json(target, info)
                written["model_info"].append(target)
                headlines[(dataset, threat)].append(info)
            # The Markdown board shows every measured configuration: the gap between versions is the point.
            boards[(dataset, threat)].append(info)
    for stale in sorted(model_info_dir.glob("*/*/*.json")):  # generated files whose results are gone
        if stale not in written["model_info"]:
            stale.unlink()
    autoattack = [data for entries in per_model.values() for _, data in entries]
    from ..certify import iter_certified

    certified = [(reference(path), data) for path, data in iter_certified(results_dir)]
    intro, autoattack_table = render_markdown(boards)
    tables = [
        intro,
        *render_headline(headlines),
        autoattack_table,
        *render_adaptive(adaptive, autoattack, skipped=skipped),
        *render_certified(certified),
    ]
    atomic_write_text(markdown_path, "\n".join(tables) + "\n")
    written["markdown"] = markdown_path
    if html:
        for dataset, threat in sorted(boards):
            page = render_html(dataset, threat, model_info_dir)
            if page is not None:
                target = html_dir / f"{dataset}_{threat}.html"
                atomic_write_text(target, page)
                written["html"].append(target)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.leaderboard", description=DESCRIPTION)
    parser.add_argument("--results-dir", default=None, help=f"default: {RESULTS_DIR}")
    parser.add_argument("--model-info-dir", default=None, help=f"default: {MODEL_INFO_DIR}")
    parser.add_argument("--markdown", default=None, help=f"default: {LEADERBOARD_MD}")
    parser.add_argument("--html-dir", default=None, help=f"default: {HTML_DIR}")
    parser.add_argument("--no-html", action="store_true", help="skip the RobustBench HTML table")
    args = parser.parse_args(argv)
    written = build(
        args.results_dir,
        model_info_dir=args.model_info_dir,
        markdown_path=args.markdown,
        html_dir=args.html_dir,
        html=not args.no_html,
    )
    print(f"{len(written['model_info'])} model_info files, {written['markdown']}", file=sys.stderr)
    for path in written["html"]:
        print(path, file=sys.stderr)
    return 0
