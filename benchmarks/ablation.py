"""Which knob moves AutoAttack accuracy: a zoo checkpoint re-evaluated with its inference-time knobs changed.

    python -m benchmarks.ablation benchmarks/ablation/airbench_crossmax.yaml [--variants NAME ...] [--table-only]

A spec file (YAML) names one checkpoint, the AutoAttack protocol (version, n, seed, batch size) and two kinds of
rows, all on the same first n test images with the same seed:

- ``checkpoints``: zoo checkpoints already evaluated with that protocol (their committed results files), for the
  knobs fixed at training time (the stack and heads against the single-resolution baseline, adversarial or noise
  training, width and number of taps);
- ``variants``: the spec's checkpoint with knobs changed at inference (:func:`eee_zoo.models.variants.derive`:
  which predictors vote, the aggregator and CrossMax's k, the stack's noise and randomness), each evaluated here
  with :func:`eee_zoo.evaluate` and kept as a results file under ``<spec folder>/<spec stem>/results/``.

A variant whose results file exists is not attacked again (and a rerun must reproduce it); an interrupted one
resumes from AutoAttack's state (``--state-dir``). The table (``ABLATION.md``) and its data (``ablation.json``) are
written from the results files only, each figure with its count, n and 95 % interval; every row names the
results file behind it. AutoAttack figures are upper bounds on robust accuracy: a knob that raises one may raise
only the masking of gradients (the zoo's adaptive worst case is the figure to trust; see the README).
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from eee_zoo._io import atomic_write_json, atomic_write_text
from eee_zoo.commands import default_state_dir
from eee_zoo.datasets import DEFAULT_EPS
from eee_zoo.evaluation import DEFAULT_BATCH_SIZE, evaluate

from .results import interval_percent, load_result, percent_floor, result_path, save_result

__all__ = ["AblationSpec", "Row", "load_spec", "main", "render_table", "rows", "run_variant"]

REPO_ROOT = Path(__file__).resolve().parents[1]
_SPEC_KEYS = {
    "model", "dataset", "threat_model", "version", "n_examples", "seed", "batch_size", "checkpoints", "variants",
}  # fmt: skip
_VARIANT_KNOBS = {"predictors", "aggregator", "k", "stack"}


@dataclasses.dataclass(frozen=True)
class Row:
    """One row of the table: what differs, and the results file that measured it."""

    name: str
    what: str
    source: str  # "checkpoint" (a zoo results file) or "variant" (evaluated by this module)
    change: dict[str, Any] = dataclasses.field(default_factory=dict)
    results: str | None = None  # checkpoints: the results file, repository-relative


@dataclasses.dataclass(frozen=True)
class AblationSpec:
    path: Path
    model: str
    dataset: str
    threat_model: str
    version: str
    n_examples: int
    seed: int
    batch_size: int
    checkpoints: tuple[Row, ...]
    variants: tuple[Row, ...]

    @property
    def out_dir(self) -> Path:
        return self.path.parent / self.path.stem

    @property
    def results_dir(self) -> Path:
        return self.out_dir / "results"

    def variant_name(self, row: Row) -> str:
        return f"{self.model}+{row.name}"


def load_spec(path: str | Path) -> AblationSpec:
    """Read and check a spec file; a problem is one line naming the file and the key."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"ablation spec {path} does not exist")
    data = yaml.safe_load(path.read_text())
    if not isinstance(data, dict):
        raise ValueError(f"{path}: an ablation spec is a mapping, got {type(data).__name__}")
    unknown = sorted(set(data) - _SPEC_KEYS)
    if unknown:
        raise ValueError(f"{path}: unknown keys {unknown}; allowed: {sorted(_SPEC_KEYS)}")
    for key in ("model", "dataset", "version", "n_examples", "seed"):
        if key not in data:
            raise ValueError(f"{path}: missing key {key!r}")
    names: set[str] = set()

    def row(entry: Any, source: str, i: int) -> Row:
        where = f"{path}: {source}s[{i}]"
        if not isinstance(entry, dict) or not {"name", "what"} <= set(entry):
            raise ValueError(f"{where} needs 'name' and 'what'")
        if entry["name"] in names:
            raise ValueError(f"{where}: the name {entry['name']!r} is used twice")
        names.add(entry["name"])
        if source == "checkpoint":
            if set(entry) != {"name", "what", "results"}:
                raise ValueError(f"{where} takes 'name', 'what' and 'results' (a results file), got {sorted(entry)}")
            return Row(entry["name"], entry["what"], source, results=str(entry["results"]))
        change = entry.get("change") or {}
        if set(entry) - {"name", "what", "change"} or not isinstance(change, dict):
            raise ValueError(f"{where} takes 'name', 'what' and 'change' (a mapping), got {sorted(entry)}")
        bad = sorted(set(change) - _VARIANT_KNOBS)
        if bad:
            raise ValueError(f"{where}: knobs {bad} cannot change at inference; allowed: {sorted(_VARIANT_KNOBS)}")
        return Row(entry["name"], entry["what"], source, change=dict(change))

    return AblationSpec(
        path=path,
        model=str(data["model"]),
        dataset=str(data["dataset"]),
        threat_model=str(data.get("threat_model", "Linf")),
        version=str(data["version"]),
        n_examples=int(data["n_examples"]),
        seed=int(data["seed"]),
        batch_size=int(data.get("batch_size", DEFAULT_BATCH_SIZE)),
        checkpoints=tuple(row(e, "checkpoint", i) for i, e in enumerate(data.get("checkpoints") or [])),
        variants=tuple(row(e, "variant", i) for i, e in enumerate(data.get("variants") or [])),
    )


def run_variant(
    spec: AblationSpec,
    row: Row,
    *,
    data_dir: str | None = None,
    state_dir: str | None = None,
    cards_dir: str | None = None,
    progress: bool = True,
) -> Path:
    """Evaluate variant ``row`` of ``spec``'s checkpoint and save its results file (returned)."""
    from eee_zoo.loading import load_model
    from eee_zoo.models.variants import derive

    model = load_model(spec.model, spec.dataset, spec.threat_model, device="cpu", cards_dir=cards_dir)
    variant = derive(model, **row.change)
    result = evaluate(
        variant,
        spec.n_examples,
        spec.dataset,
        spec.threat_model,
        version=spec.version,
        batch_size=spec.batch_size,
        seed=spec.seed,
        data_dir=data_dir,
        # keyed by the variant's config as well as the weights it shares with its checkpoint
        state_path=state_dir if state_dir is not None else default_state_dir("autoattack"),
        model_name=spec.variant_name(row),
        progress=progress,
    )
    path = save_result(result, spec.results_dir)
    logging.info("%s\n-> %s", result.summary(), path)
    return path


def _variant_file(spec: AblationSpec, row: Row, cards_dir: str | None = None) -> Path:
    """Where variant ``row``'s results file lands (its name needs the checkpoint's hash: read from the card)."""
    card = _card(spec, cards_dir)
    key = {
        "model_name": spec.variant_name(row),
        "dataset": spec.dataset,
        "threat_model": spec.threat_model,
        "version": spec.version,
        "stochastic": row.change.get("stack", {}).get("stochastic", card.stochastic_inference),
        "eps": DEFAULT_EPS[spec.threat_model],
        "n_examples": spec.n_examples,
        "seed": spec.seed,
        "checkpoint_sha256": card.sha256,
    }
    return result_path(key, spec.results_dir)


def _card(spec: AblationSpec, cards_dir: str | None) -> Any:
    return _read_card(spec.model, spec.dataset, spec.threat_model, cards_dir)


@functools.lru_cache(maxsize=8)  # read once per run, not once per variant and table row
def _read_card(model: str, dataset: str, threat_model: str, cards_dir: str | None) -> Any:
    from eee_zoo.registry import get_card

    return get_card(model, dataset, threat_model, cards_dir=cards_dir)


def _check_variant_config(
    spec: AblationSpec, row: Row, stored: dict[str, Any], path: Path, cards_dir: str | None
) -> None:
    """A variant's results file must have been computed with the change the spec names now (names are reused)."""
    from eee_zoo.models.variants import derived_config

    expected, _ = derived_config(_card(spec, cards_dir).architecture, **row.change)
    if json.loads(json.dumps(expected)) != stored.get("model_config"):
        raise ValueError(
            f"{path} was computed with another configuration than variant {row.name!r} names now "
            f"({row.change}); move it away to evaluate the variant again"
        )


def rows(spec: AblationSpec, cards_dir: str | None = None) -> list[dict[str, Any]]:
    """Every row with its figures, read from results files; a missing or mismatched file is an error."""
    out = []
    for row in (*spec.checkpoints, *spec.variants):
        path = REPO_ROOT / row.results if row.source == "checkpoint" else _variant_file(spec, row, cards_dir)
        if not path.is_file():
            raise ValueError(f"{spec.path}: row {row.name!r} has no results file {path} (run it first)")
        r = load_result(path)
        if row.source == "variant":
            _check_variant_config(spec, row, r, path, cards_dir)
        for key in ("dataset", "threat_model", "version", "n_examples", "seed"):
            if r[key] != getattr(spec, key):
                raise ValueError(f"{path}: {key} {r[key]!r}, the spec's protocol has {getattr(spec, key)!r}")
        config = r.get("model_config") or {}
        predictors = len(config.get("taps", [])) + int(config.get("include_backbone_head", True))
        out.append(
            {
                "name": row.name,
                "what": row.what,
                "source": row.source,
                "model": r["model_name"],
                "change": row.change,
                "predictors": predictors,
                "aggregator": config.get("aggregator"),
                "k": config.get("k") if config.get("aggregator") == "crossmax" else None,
                "stochastic": r["stochastic"],
                "n": r["n_examples"],
                "clean_correct": r["clean_correct"],
                "clean_percent": percent_floor(r["clean_correct"], r["n_examples"]),
                "robust_correct": r["robust_correct"],
                "robust_percent": percent_floor(r["robust_correct"], r["n_examples"]),
                "robust_interval_percent": interval_percent(r["robust_interval"]),
                "results_file": _shown(path),
            }
        )
    return out


def render_table(spec: AblationSpec, table: Sequence[dict[str, Any]]) -> str:
    """``ABLATION.md``: one line per row, the difference to the first row in points."""
    if not table:
        return f"# Ablation: what moves AutoAttack `{spec.version}` accuracy ({spec.model})\n\nNothing evaluated yet.\n"
    ref = table[0]
    here = spec.out_dir.resolve()
    lines = [
        f"# Ablation: what moves AutoAttack `{spec.version}` accuracy ({spec.model})",
        "",
        f"{spec.dataset}, {spec.threat_model} 8/255, the first {spec.n_examples} test images, seed {spec.seed}, "
        f"batch size {spec.batch_size}; every figure from the results file its row names (95 % Wilson intervals, "
        "percentages floored). Written by `python -m benchmarks.ablation "
        f"{_shown(spec.path)}`.",
        "",
        "Rows marked *checkpoint* are zoo checkpoints trained differently; rows marked *variant* are "
        f"`{spec.model}`'s own weights with a knob changed at inference (`eee_zoo.models.variants.derive`), which is "
        "not the same as training with that knob. AutoAttack figures are upper bounds on robust accuracy: a knob "
        "that raises one may only hide the gradient better, which the zoo's adaptive worst case tests (README, "
        '"Adaptive attacks: the per-image worst case").',
        "",
        f"| Row | Kind | What differs | Predictors | Aggregator | Clean | AutoAttack `{spec.version}` [95 % CI] | "
        f"vs {ref['name']} |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in table:
        agg = r["aggregator"] + (f" k={r['k']}" if r["k"] is not None else "") if r["aggregator"] else "?"
        lo, hi = r["robust_interval_percent"]
        delta = round(r["robust_percent"] - ref["robust_percent"], 2)
        lines.append(
            f"| [{r['name']}]({Path(os.path.relpath(REPO_ROOT / r['results_file'], here)).as_posix()}) "
            f"| {r['source']} | {r['what']} | {r['predictors']} | {agg}"
            f"{'' if r['stochastic'] else ', deterministic'} "
            f"| {r['clean_percent']:.2f} % ({r['clean_correct']}/{r['n']}) "
            f"| {r['robust_percent']:.2f} % ({r['robust_correct']}/{r['n']}) [{lo:.2f}, {hi:.2f}] "
            f"| {'' if r is ref else f'{delta:+.2f}'} |"
        )
    return "\n".join(lines) + "\n"


def _shown(path: Path) -> str:
    """``path`` relative to the repository when inside it (as committed files name each other), else absolute."""
    path = path.resolve()
    return str(path.relative_to(REPO_ROOT)) if path.is_relative_to(REPO_ROOT) else str(path)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.ablation", description=__doc__.split("\n\n")[0])
    parser.add_argument("spec", help="the ablation spec (YAML), e.g. benchmarks/ablation/airbench_crossmax.yaml")
    parser.add_argument("--variants", nargs="+", default=None, help="run only these variants (default: all)")
    parser.add_argument("--table-only", action="store_true", help="attack nothing: write the table from the files")
    parser.add_argument("--data-dir", default=None, help="data root (default: $EEE_ZOO_DATA, see eee_zoo.data)")
    parser.add_argument("--state-dir", default=None, help="resumable AutoAttack state (default: the zoo's cache)")
    parser.add_argument("--cards-dir", default=None, help="model cards root (default: the repository's model_cards/)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    try:
        spec = load_spec(args.spec)
        wanted = set(args.variants) if args.variants else {row.name for row in spec.variants}
        unknown = sorted(wanted - {row.name for row in spec.variants})
        if unknown:
            raise ValueError(f"{spec.path}: no variants named {unknown}")
        for row in spec.variants:
            if args.table_only or row.name not in wanted or _variant_file(spec, row, args.cards_dir).is_file():
                continue
            logging.info("variant %s: %s (%s)", row.name, row.what, row.change)
            run_variant(
                spec,
                row,
                data_dir=args.data_dir,
                state_dir=args.state_dir,
                cards_dir=args.cards_dir,
                progress=not args.no_progress,
            )
        done = [r for r in spec.variants if _variant_file(spec, r, args.cards_dir).is_file()]
        missing = [r.name for r in spec.variants if r not in done]
        table = rows(dataclasses.replace(spec, variants=tuple(done)), args.cards_dir)
    except (ValueError, KeyError) as e:  # UnknownModelError is a KeyError
        print(f"error: {e.args[0] if isinstance(e, KeyError) and e.args else e}", file=sys.stderr)
        return 2
    atomic_write_json(spec.out_dir / "ablation.json", {"spec": spec.path.name, "missing": missing, "rows": table})
    text = render_table(spec, table)
    if missing:
        text += f"\nNot yet evaluated: {', '.join(missing)} (run the command above again to continue).\n"
    atomic_write_text(spec.out_dir / "ABLATION.md", text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
