"""The leaderboard's first table: one row per checkpoint, its best-known robust accuracy (the lowest any of the zoo's
evaluations reached on the deployed model, RobustBench's ``external``) beside its headline AutoAttack figure."""

from __future__ import annotations

from typing import Any

from .formatting import table_start

__all__ = ["render_headline"]

INTRO = (
    "One row per checkpoint. **Best-known** is the zoo's headline: the lowest robust accuracy any of its evaluations "
    "reached on the deployed model (AutoAttack on the inference mode the checkpoint ships with, or the adaptive "
    "suite's per-image worst case per draw, scored on fresh draws: no selection bias), with its 95 % interval, n and "
    "seed. Like every attack's figure it is an upper bound: a stronger attack may find less. Beside it, the "
    "AutoAttack figure RobustBench would list (`rand` for a stochastic checkpoint, `standard` for a deterministic "
    "one), with its n: the two may count different numbers of images. Ordered as RobustBench orders, highest "
    "best-known first; the tables below hold every configuration."
)


COLUMNS = (
    "#", "Model", "Inference", "eps", "Clean accuracy", "AutoAttack", "Best-known robust accuracy", "Counted as",
    "Seed", "Results file",
)  # fmt: skip


def render_headline(headlines: dict[tuple[str, str], list[dict[str, Any]]]) -> list[str]:
    """Markdown lines from ``{(dataset, threat_model): [model_info of each checkpoint's headline result, ...]}``."""
    lines = ["## Headline: the best-known robust accuracy of each checkpoint", "", INTRO, ""]
    for (dataset, threat), infos in sorted(headlines.items()):
        lines += table_start(f"{dataset} / {threat}", COLUMNS, "rlllrrrlrl")
        ranked = sorted(infos, key=lambda i: (-i["external"], i["eee_zoo"]["checkpoint"]))
        for rank, info in enumerate(ranked, start=1):
            z, best = info["eee_zoo"], info["eee_zoo"]["external"]
            lines.append(
                f"| {rank} | {z['checkpoint']} (`{z['sha256'][:12]}`) "
                f"| {'stochastic' if z['stochastic_inference'] else 'deterministic'} | {info['eps']} "
                f"| {info['clean_acc']:.2f} {_interval(z['clean_interval'])} "
                f"| {info['autoattack_acc']:.2f} {_interval(z['robust_interval'])} "
                f"({z['version']}, n {z['n_examples']}) "
                f"| **{best['value']:.2f}** {_interval(best['interval'])} "
                f"| {_counted(best, z['results_file'])} | {best['seed']} | `{best['results_file']}` |"
            )
        lines.append("")
    return lines


def _interval(interval: list[float]) -> str:
    return f"[{interval[0]:.2f}, {interval[1]:.2f}]"


def _counted(best: dict[str, Any], headline_file: str) -> str:
    """What the best-known figure counts, in words, with its n (``headline_file``: the AutoAttack column's run)."""
    if best["suite"] == "autoattack":
        which = "itself" if best["results_file"] == headline_file else "in another run"
        return f"AutoAttack {best['version']} {which}, n {best['n_examples']} (no adaptive evaluation found less)"
    preset = best["version"].split("/")[0]
    what = f"adaptive '{preset}' worst case" + (f", lowest column {best['column']}" if best.get("column") else "")
    return f"{what}, per draw: {best['n_examples']} images x {best['fresh_draws']} fresh draws"
