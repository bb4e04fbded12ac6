"""The leaderboard, built from results files only.

    python -m benchmarks.leaderboard [--results-dir DIR] [--model-info-dir DIR] [--markdown FILE] [--html-dir DIR]

For each checkpoint the headline result is chosen (a full AutoAttack evaluation, ``suite`` ``autoattack``, on
loaded test images, the version that matches its inference mode first — ``rand`` for a stochastic model,
``standard`` otherwise — then the largest n, then the smallest seed), and written as

* RobustBench ``model_info`` JSON, ``benchmarks/model_info/<dataset>/<threat_model>/<Name>.json``: the fields
  RobustBench's own leaderboard code reads (``clean_acc``, ``autoattack_acc``, ``additional_data``,
  ``number_forward_passes``, ``unreliable``, ``footnote``, ``link``, ``name``, ``authors``, ``venue``,
  ``architecture``, ``eps``, ...; accuracies in percent, as numbers) plus an ``eee_zoo`` block (n, intervals,
  checkpoint hash, results file);
* ``benchmarks/LEADERBOARD.md``: every number with its n and 95 % interval, the AutoAttack checks that fired,
  and the results file it comes from;
* HTML through RobustBench's own template (``robustbench.leaderboard.template.generate_leaderboard``) when
  robustbench imports and ships the template (the 1.1.1 wheel does not; then no HTML is written).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import math
import os
import sys
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from eee_zoo._io import atomic_write_json, atomic_write_text
from eee_zoo.cards import result_suite

from .results import RESULTS_DIR, eps_tag, interval_percent, iter_results, percent_floor

__all__ = [
    "HTML_DIR", "LEADERBOARD_MD", "MODEL_INFO_DIR", "PAPER", "build", "headline", "main", "model_info",
    "render_html", "render_markdown",
]  # fmt: skip

BENCH_DIR = Path(__file__).resolve().parent
MODEL_INFO_DIR = BENCH_DIR / "model_info"
LEADERBOARD_MD = BENCH_DIR / "LEADERBOARD.md"
HTML_DIR = BENCH_DIR / "leaderboard"
PAPER = {
    "link": "https://arxiv.org/abs/2408.05446",
    "name": "Ensemble everything everywhere: Multi-scale aggregation for adversarial robustness",
    "authors": "Stanislav Fort, Balaji Lakshminarayanan",
    "venue": "arXiv, Aug 2024",
}
_LOAD_SOURCE = "eee_zoo.data.load_dataset"
_CAVEAT = (
    "AutoAttack numbers are upper bounds: adaptive attacks on this defense report far lower robust accuracy "
    "(Zhang et al. 2024, arXiv:2411.14834); see the adaptive-attack table (`python -m benchmarks.adaptive`)."
)


def headline(results: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """The result a leaderboard shows for one checkpoint (see the module docstring), or None."""
    valid = [
        r
        for r in results
        if result_suite(r) == "autoattack"
        and not r.get("attack_overrides")
        and (r.get("data") or {}).get("source") == _LOAD_SOURCE
    ]
    if not valid:
        return None

    def key(r: dict[str, Any]) -> tuple:
        matches_mode = r["version"] == ("rand" if r["stochastic"] else "standard")
        return (not matches_mode, -r["n_examples"], r["seed"], r.get("chunk_size") is not None, r["version"])

    return min(valid, key=key)


def _architecture(config: dict[str, Any] | None) -> str:
    if not config:
        return "unknown"
    backbone = config.get("backbone", {})
    kwargs = backbone.get("kwargs") or {}
    widths = f" {kwargs['widths']}" if "widths" in kwargs else ""
    predictors = len(config.get("taps", [])) + int(config.get("include_backbone_head", True))
    aggregator = config.get("aggregator", "crossmax")
    agg = f"CrossMax k={config.get('k', 3)}" if aggregator == "crossmax" else aggregator
    return f"{backbone.get('name', '?')}{widths} self-ensemble ({predictors} predictors, {agg})"


def model_info(result: dict[str, Any], *, results_file: str | None = None, additional_data: bool = False) -> dict:
    """RobustBench ``model_info`` JSON for one results-file dict."""
    n = result["n_examples"]
    checks = sorted({w["check"] for w in result.get("warnings", [])} - {"n_classes", "other"})
    unreliable = bool(checks) or (result["stochastic"] and result["version"] != "rand")
    lo_c, hi_c = result["clean_interval"]
    lo_r, hi_r = result["robust_interval"]
    version = result["version"] + (" (EOT 20)" if result["version"] == "rand" else "")
    footnote = (
        f"eee-zoo checkpoint {result['model_name']} (sha256 {result['checkpoint_sha256'][:12]}), "
        f"{'stochastic' if result['stochastic'] else 'deterministic'} inference; AutoAttack {version}, seed "
        f"{result['seed']}, first {n} test images; 95% {result.get('interval_method', 'wilson')} intervals: clean "
        f"{100 * lo_c:.1f}-{100 * hi_c:.1f}%, robust {100 * lo_r:.1f}-{100 * hi_r:.1f}%."
    )
    if checks:
        footnote += f" AutoAttack checks fired: {', '.join(checks)}."
    footnote += " " + _CAVEAT
    return {
        **PAPER,
        "additional_data": bool(additional_data),
        "number_forward_passes": 1,
        "dataset": result["dataset"],
        "architecture": _architecture(result.get("model_config")),
        "eps": eps_tag(result["eps"], result["threat_model"]).replace("-", "/"),
        "clean_acc": percent_floor(result["clean_correct"], n),
        "reported": None,
        "autoattack_acc": percent_floor(result["robust_correct"], n),
        "unreliable": unreliable,
        "footnote": footnote,
        "eee_zoo": {
            "checkpoint": result["model_name"],
            "sha256": result["checkpoint_sha256"],
            "version": result["version"],
            "stochastic_inference": result["stochastic"],
            "seed": result["seed"],
            "n_examples": n,
            "clean_correct": result["clean_correct"],
            "robust_correct": result["robust_correct"],
            "clean_interval": interval_percent((lo_c, hi_c)),
            "robust_interval": interval_percent((lo_r, hi_r)),
            "results_file": results_file,
        },
    }


def render_markdown(boards: dict[tuple[str, str], list[dict[str, Any]]]) -> str:
    """The Markdown leaderboard from ``{(dataset, threat_model): [model_info, ...]}``."""
    lines = [
        "# eee-zoo leaderboard",
        "",
        "Generated by `python -m benchmarks.leaderboard` from the results files under `benchmarks/results/` "
        "(do not edit by hand). Accuracies in percent with their 95 % interval and n, the first n test images "
        "in canonical order. Every measured configuration of a checkpoint has its row; "
        "`benchmarks/model_info/` holds one headline entry per checkpoint, RobustBench-style. " + _CAVEAT,
        "",
    ]
    if not boards:
        lines.append("No results yet: run `python -m benchmarks.run --all`.")
    for (dataset, threat), infos in sorted(boards.items()):
        lines += [
            f"## {dataset} / {threat}",
            "",
            "| # | Model | Inference | AutoAttack | eps | Clean accuracy | Robust accuracy | n | Checks "
            "| Results file |",
            "|---:|---|---|---|---|---:|---:|---:|---|---|",
        ]

        def order(i: dict[str, Any]) -> tuple:
            return (i["eee_zoo"]["checkpoint"], i["eee_zoo"]["version"], -i["eee_zoo"]["n_examples"])

        for rank, info in enumerate(sorted(infos, key=order), start=1):
            z = info["eee_zoo"]
            checks = "unreliable" if info["unreliable"] else "ok"
            lines.append(
                f"| {rank} | {z['checkpoint']} (`{z['sha256'][:12]}`) "
                f"| {'stochastic' if z['stochastic_inference'] else 'deterministic'} "
                f"| {z['version']} (seed {z['seed']}) "
                f"| {info['eps']} "
                f"| {info['clean_acc']:.2f} [{z['clean_interval'][0]:.2f}, {z['clean_interval'][1]:.2f}] "
                f"| {info['autoattack_acc']:.2f} [{z['robust_interval'][0]:.2f}, {z['robust_interval'][1]:.2f}] "
                f"| {z['n_examples']} | {checks} | `{z['results_file']}` |"
            )
        lines.append("")
    return "\n".join(lines)


def _floor_percent(fraction: float) -> float:
    return math.floor(round(fraction * 10000, 6)) / 100  # floored like percent_floor; round() drops float dust


def render_adaptive(entries: Sequence[tuple[str, dict[str, Any]]]) -> list[str]:
    """Markdown table of the adaptive-attack results (``benchmarks.adaptive``), one row per results file."""
    if not entries:
        return []
    lines = [
        "## Adaptive attacks",
        "",
        "`python -m benchmarks.adaptive` (eee_zoo.adaptive): APGD-CE transferred from the deterministic mode, the "
        "same through a mean-of-logits surrogate of CrossMax, and APGD-CE with EOT on that surrogate, run in "
        "cascade; an image counts only if the deployed stochastic model is right on every judging draw "
        "(clean and after every attack); the mean over draws is the per-draw accuracy on the same images (after "
        "the attacks: on each image's final adversarial example). Clopper-Pearson 95 % intervals; accuracies "
        "floored to 0.01.",
        "",
        "| Model | Dataset / threat | eps | Attacks (APGD iterations, EOT draws, judging draws) | Clean, every draw "
        "| Clean, mean over draws | Robust, every draw | Robust, mean over draws | n | Results file |",
        "|---|---|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for ref, r in entries:
        clean_lo, clean_hi = interval_percent(r["clean_interval"])
        rob_lo, rob_hi = interval_percent(r["robust_interval"])
        lines.append(
            f"| {r['model_name']} (`{r['checkpoint_sha256'][:12]}`) | {r['dataset']} / {r['threat_model']} "
            f"| {eps_tag(r['eps'], r['threat_model']).replace('-', '/')} "
            f"| {', '.join(r['attacks'])} ({r['n_iter']}, {r['eot_iter']}, {r['eval_draws']}) "
            f"| {percent_floor(r['clean_correct'], r['n_examples']):.2f} [{clean_lo:.2f}, {clean_hi:.2f}] "
            f"| {_floor_percent(r['clean_accuracy_mean_over_draws']):.2f} "
            f"| {percent_floor(r['robust_correct'], r['n_examples']):.2f} [{rob_lo:.2f}, {rob_hi:.2f}] "
            f"| {_floor_percent(r['robust_accuracy_mean_over_draws']):.2f} "
            f"| {r['n_examples']} | `{ref}` |"
        )
    lines.append("")
    return lines


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
    written: dict[str, Any] = {"model_info": [], "markdown": None, "html": []}
    base = results_dir.resolve().parents[1] if results_dir.resolve().parent.name == "benchmarks" else None
    for (dataset, threat, name), entries in sorted(per_model.items()):
        best = headline([d for _, d in entries])
        if best is None:
            continue
        for path, data in entries:
            if data is not best and headline([data]) is None:
                continue  # reduced settings or caller-provided images: never on a leaderboard
            ref = path.resolve().relative_to(base).as_posix() if base is not None else str(path)
            info = model_info(data, results_file=ref)
            if data is best:  # RobustBench's model_info holds one entry per checkpoint: the headline
                target = model_info_dir / dataset / threat / f"{name}.json"
                atomic_write_json(target, info)
                written["model_info"].append(target)
            # The Markdown board shows every measured configuration: the gap between versions is the point.
            boards[(dataset, threat)].append(info)
    for stale in sorted(model_info_dir.glob("*/*/*.json")):  # generated files whose results are gone
        if stale not in written["model_info"]:
            stale.unlink()
    from .adaptive import iter_adaptive

    adaptive = [
        (path.resolve().relative_to(base).as_posix() if base is not None else str(path), data)
        for path, data in iter_adaptive(results_dir)
        if result_suite(data) == "adaptive"
    ]
    atomic_write_text(markdown_path, "\n".join([render_markdown(boards), *render_adaptive(adaptive)]) + "\n")
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
    parser = argparse.ArgumentParser(prog="python -m benchmarks.leaderboard", description=__doc__.split("\n\n")[0])
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


if __name__ == "__main__":
    sys.exit(main())
