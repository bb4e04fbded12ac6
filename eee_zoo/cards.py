"""Model cards: one Hub-ready ``README.md`` per checkpoint, the zoo's single source of truth.

A card lives at ``model_cards/<dataset>/<threat_model>/<Name>/README.md`` and is read and written with
``huggingface_hub.ModelCard`` / ``ModelCardData`` / ``EvalResult`` (never hand-built YAML). Its front matter
holds the standard Hub keys, an ``eee_zoo`` block describing the checkpoint, and the results as
``model-index`` entries::

    library_name: eee-zoo
    datasets: [cifar10]
    eee_zoo:
      format_version: 1
      name: Tiny                 # == the card's folder name
      dataset: cifar10
      threat_model: Linf
      repo_id: eee-zoo/cifar10-Linf-Tiny
      revision: main             # or a 40-hex commit: what hf_hub_download fetches
      filename: model.safetensors
      sha256: 9f86d0...          # checked before the weights are loaded
      stochastic_inference: true
      storage_dtype: bfloat16    # optional; absent = float32 (floating-point tensors as stored in the file)
      architecture: {...}        # == model.config; SelfEnsemble.from_config rebuilds it
      training: {recipe: training/recipes/x.yaml, seed: 0, ...}
    model-index:
    - name: Tiny
      results:
      - task: {type: image-classification}
        dataset: {type: cifar10, name: CIFAR-10, split: test}
        metrics:
        - type: robust_accuracy  # or clean_accuracy
          value: 41.5            # percent, a number
          args: {correct: 415, n_examples: 1000, version: rand, norm: Linf, eps: 0.0313..., seed: 0,
                 results_file: benchmarks/results/....json}

A sharded checkpoint (``hub.export(..., max_shard_size=...)``) names the standard Hugging Face index instead,
whose sha256 is ``sha256``, and lists every shard (beside the index) with its own sha256::

      filename: model.safetensors.index.json
      sha256: 5e2b4c...
      shards: {model-00001-of-00002.safetensors: 3b1f07..., model-00002-of-00002.safetensors: 77c0aa...}

:func:`load_card` validates all of it and returns a typed :class:`ZooCard`; any problem raises
:class:`CardError` naming the file and the field. This module knows nothing about torch.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import os
import posixpath
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from huggingface_hub import EvalResult, ModelCard, ModelCardData
from huggingface_hub.errors import HFValidationError
from huggingface_hub.utils import validate_repo_id

from ._io import atomic_write_bytes, atomic_write_text
from .datasets import NUM_CLASSES, THREAT_MODELS, TITLES, parse_dataset, parse_threat_model

__all__ = [
    "CARD_FILENAME", "CONFIG_FILENAME", "DATASETS", "DEFAULT_ORG", "INDEX_FILENAME", "METRICS", "SHARD_PATTERN",
    "STORAGE_DTYPES", "SUITES", "THREAT_MODELS", "WEIGHTS_FILENAME", "CardError", "ZooCard", "best_known_result",
    "default_org", "default_repo_id", "format_eps", "is_valid_name", "load_card", "parse_dataset", "parse_threat_model",
    "render_card", "result_identity", "result_label", "result_suite", "results_table", "set_figures", "set_results",
    "set_revision",
    "validate_result", "write_card",
]  # fmt: skip

CARD_FORMAT_VERSION = 1
CARD_FILENAME = "README.md"
CONFIG_FILENAME = "config.json"
WEIGHTS_FILENAME = "model.safetensors"
INDEX_FILENAME = "model.safetensors.index.json"  # a sharded checkpoint: the standard Hugging Face index
SHARD_PATTERN = "model{suffix}.safetensors"  # its shards: model-00001-of-00003.safetensors, ...
# How floating-point tensors are stored; integer buffers (BatchNorm's num_batches_tracked) are kept as they are.
STORAGE_DTYPES = ("float32", "bfloat16")
DEFAULT_STORAGE_DTYPE = "float32"

DEFAULT_ORG = "eee-zoo"
ORG_ENV = "EEE_ZOO_HUB_ORG"

# RobustBench's names; value = number of classes (checked against the architecture): eee_zoo.datasets' table.
DATASETS: dict[str, int] = NUM_CLASSES
DATASET_TITLES = TITLES
METRICS = ("clean_accuracy", "robust_accuracy", "certified_accuracy")  # certified: L2 randomized smoothing
NORMS = ("Linf", "L2", "L1")
RESULT_KEYS = (
    "metric", "value", "correct", "n_examples", "version", "norm", "eps", "seed", "results_file", "stochastic",
    "suite",
)  # fmt: skip
# Which family of attacks a robust accuracy comes from: AutoAttack (eee_zoo.evaluation) or the adaptive suite.
SUITES = ("autoattack", "adaptive")
# The contract's identity, plus the optional inference mode (None when not recorded).
IDENTITY_KEYS = ("metric", "version", "norm", "eps", "n_examples", "seed", "stochastic")

_META_KEY = "eee_zoo"
_TASK_TYPE = "image-classification"
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,95}$")
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_SHARD_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*\.safetensors$")
_INDEX_SUFFIX = ".safetensors.index.json"
_VALUE_TOLERANCE = 0.05 + 1e-6  # a stored percentage may be rounded to one decimal
_RESULTS_START = "<!-- eee-zoo:results:start -->"
_RESULTS_END = "<!-- eee-zoo:results:end -->"
_RESULTS_SECTION_RE = re.compile(re.escape(_RESULTS_START) + r".*?" + re.escape(_RESULTS_END), re.DOTALL)
# Figures (eee-zoo visualize): PNG copies in the card folder's figures/, so that the same relative links work in the
# repository and on the Hub; the section between these markers is written by set_figures.
FIGURES_FOLDER = "figures"
FIGURE_CAPTIONS = {  # file stem -> caption, in the order shown
    "successful_attacks": "Successful attacks: clean image, adversarial image and the perturbation (amplified), "
    "with true and predicted classes, for AutoAttack (`rand`; `standard` for a model whose stack draws nothing) and "
    "for the adaptive suite's worst case.",
    "per_layer": "Per-layer robustness: every predictor (the heads and the backbone's classifier) and the "
    "aggregate, clean and under APGD-CE crafted against the full model and against each predictor itself.",
    "eps_curve": "Robust accuracy against eps: AutoAttack `rand` (not for a model whose stack draws nothing), "
    "`standard` on the deterministic mode and the adaptive worst case on the same images, with confidence intervals.",
    "class_maximisation": "Class maximisation: images optimised from grey towards each class through the model.",
    "certified": "Certified accuracy against radius (randomized smoothing, a lower bound for the smoothed "
    "classifier), in L2 and in the L-inf radius it implies, beside the best-known attacks' figures (upper bounds).",
}  # a stem "<key>_<detail>" (certified_<version>) takes its key's caption and place
_FIGURES_START = "<!-- eee-zoo:figures:start -->"
_FIGURES_END = "<!-- eee-zoo:figures:end -->"
_FIGURES_SECTION_RE = re.compile(
    r"(?:## Figures\n\n)?" + re.escape(_FIGURES_START) + r".*?" + re.escape(_FIGURES_END) + r"\n*", re.DOTALL
)
# A single-resolution baseline's Limitations section.
LIMITATIONS_PLAIN = (
    "A plain deterministic classifier: no random stack and no aggregation that could mask its gradients, so "
    "AutoAttack's `standard` version is its reference evaluation (RobustBench's protocol). The zoo's adaptive suite "
    "runs on it too, judged on one draw (every draw of its stack is the same function), so that its rows compare "
    "with the self-ensembles' on the same images. Every robust accuracy here is an upper bound: a stronger attack "
    "may find less."
)
# The adaptive suite in the card's Limitations section (eee_zoo.adaptive; benchmarks.adaptive writes the results).
LIMITATIONS_ADAPTIVE = (
    "This zoo's own adaptive evaluation (`python -m benchmarks.adaptive`, `eee_zoo.adaptive`) takes, for every "
    "image, the worst case over many proposals: APGD-CE and APGD-DLR, untargeted and targeted, on the deterministic "
    "mode, on a mean-of-logits surrogate of CrossMax (with and without EOT over the stack's noise), on each single "
    "predictor and on the deployed model with EOT; PGD with step decay; AutoAttack's own `rand` and `standard` "
    "examples; and the clean image. The deployed model picks each image's worst proposal on *selection* draws and "
    "is then scored on other, *fresh* draws, so picking the minimum does not flatter the figure. Its robust "
    "accuracy per draw (one query of the deployed model) and on every fresh draw are in the results above when "
    "measured and in the zoo's leaderboard, `benchmarks/LEADERBOARD.md`, which also counts it as AutoAttack `rand` "
    "counts (right on all of rand's 3 single-draw checks) to hold it against rand like with like. Where one "
    "attack's own worst case counts fewer fresh image-draws right than the worst case over all (a near-tie among "
    "proposals that break an image on nearly every draw, which the selection draws cannot resolve), the figures "
    "above are that attack's, named: the lowest any attack reaches. The lowest robust accuracy measured is "
    "the model's best-known figure (RobustBench's `external`). It too is an upper bound: a stronger attack may "
    "find less."
)


class CardError(ValueError):
    """An invalid model card; the message names the file and the field."""

    def __init__(self, path: str | os.PathLike | None, field: str, problem: str) -> None:
        self.path = Path(path) if path is not None else None
        self.field = field
        self.problem = problem
        super().__init__(f"{path if path is not None else '<card>'}: field '{field}': {problem}")


# ---------------------------------------------------------------------------------------------- names
def is_valid_name(name: Any) -> bool:
    """Whether ``name`` can name a checkpoint (a folder and part of a Hub repo name)."""
    return isinstance(name, str) and bool(_NAME_RE.match(name)) and "--" not in name and ".." not in name


def default_org() -> str:
    """The Hub organisation for new cards: env ``EEE_ZOO_HUB_ORG``, else ``DEFAULT_ORG``."""
    return os.environ.get(ORG_ENV) or DEFAULT_ORG


def default_repo_id(name: str, dataset: str, threat_model: str, org: str | None = None) -> str:
    """``<org>/<dataset>-<threat_model>-<name>``: RobustBench names are unique only per dataset/threat model."""
    return f"{org or default_org()}/{parse_dataset(dataset)}-{parse_threat_model(threat_model)}-{name}"


def format_eps(eps: float | None, norm: str | None = None) -> str:
    """``8/255`` for L-inf budgets on the 1/255 grid, otherwise a plain number."""
    if eps is None:
        return "-"
    k = eps * 255
    if norm == "Linf" and eps > 0 and abs(k - round(k)) < 1e-6:
        return f"{round(k)}/255"
    return f"{eps:g}"


# ---------------------------------------------------------------------------------------------- the card
@dataclass
class ZooCard:
    """Typed view of one model card (see the module docstring for the file format)."""

    name: str
    dataset: str
    threat_model: str
    architecture: dict[str, Any]
    repo_id: str
    revision: str
    filename: str
    sha256: str
    stochastic_inference: bool
    training: dict[str, Any] = field(default_factory=dict)
    results: list[dict[str, Any]] = field(default_factory=list)
    card_path: Path | None = None
    storage_dtype: str = DEFAULT_STORAGE_DTYPE
    shards: dict[str, str] = field(default_factory=dict)  # shard file name (beside the index) -> sha256

    @property
    def sharded(self) -> bool:
        """Whether ``filename`` is a Hugging Face index naming the :attr:`shards`."""
        return bool(self.shards)

    def shard_filenames(self) -> list[str]:
        """The shards' paths in the repo (beside the index), in order; empty for a single-file checkpoint."""
        folder = posixpath.dirname(self.filename)
        return [posixpath.join(folder, name) for name in sorted(self.shards)]

    @property
    def folder(self) -> Path | None:
        """The card's Hub-ready folder (weights may ship beside the README)."""
        return self.card_path.parent if self.card_path is not None else None

    def metadata(self) -> dict[str, Any]:
        """The ``eee_zoo`` front-matter block."""
        return {
            "format_version": CARD_FORMAT_VERSION,
            "name": self.name,
            "dataset": self.dataset,
            "threat_model": self.threat_model,
            "repo_id": self.repo_id,
            "revision": self.revision,
            "filename": self.filename,
            "sha256": self.sha256,
            **({"shards": dict(sorted(self.shards.items()))} if self.shards else {}),
            "stochastic_inference": self.stochastic_inference,
            # Recorded only when not the default, so that older cards are rewritten unchanged.
            **({"storage_dtype": self.storage_dtype} if self.storage_dtype != DEFAULT_STORAGE_DTYPE else {}),
            "architecture": copy.deepcopy(self.architecture),
            "training": copy.deepcopy(self.training),
        }

    def best_result(self, metric: str, version: str | None = None) -> dict[str, Any] | None:
        """The result with the most examples for ``metric`` (and AutoAttack ``version``), if any."""
        matches = [r for r in self.results if r["metric"] == metric and (version is None or r["version"] == version)]
        return max(matches, key=lambda r: r["n_examples"], default=None)


def load_card(path: str | os.PathLike) -> ZooCard:
    """Read and validate a card (a ``README.md`` or the folder holding it); raises :class:`CardError`."""
    path = Path(path)
    if path.is_dir():
        path = path / CARD_FILENAME
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise FileNotFoundError(f"model card not found: {path}") from None
    return _parse_card(_model_card(text, path), path)


def render_card(card: ZooCard, *, description: str | None = None) -> ModelCard:
    """A ``huggingface_hub.ModelCard`` for ``card``: front matter from its data and a generated body."""
    _validate_card(card, card.card_path)
    data = _card_data(card)
    # ModelCardData.to_yaml does the YAML; the body is markdown generated from the same data.
    model_card = _model_card(
        f"---\n{data.to_yaml()}\n---\n{render_body(card, description=description)}", card.card_path
    )
    _parse_card(model_card, card.card_path)  # validates the results too: never render a card that would not load
    return model_card


def write_card(card: ZooCard, path: str | os.PathLike | None = None, *, description: str | None = None) -> Path:
    """Render ``card`` and write it atomically to ``path`` (default ``card.card_path``)."""
    target = Path(path) if path is not None else card.card_path
    if target is None:
        raise ValueError("write_card needs a path (the card has no card_path)")
    atomic_write_text(target, str(render_card(card, description=description)))
    return target


def set_results(card_path: str | os.PathLike, results: Sequence[dict[str, Any]]) -> None:
    """Upsert ``results`` into a card's ``model-index`` and its results table; one atomic rewrite.

    A result is a dict with ``metric`` (``clean_accuracy``/``robust_accuracy``), ``value`` (percent), ``correct``,
    ``n_examples``, ``version`` (AutoAttack's; None for clean), ``norm``, ``eps``, ``seed``, ``results_file`` and
    optionally ``stochastic`` (the inference mode measured) and ``suite`` (:func:`result_suite`); other keys are
    kept as they are. It replaces an existing result with the same identity (:func:`result_identity`) and is
    appended otherwise; results replace the card's results of the same metric from the same results file (one
    file is one configuration: a file rewritten with more draws leaves no stale entry). A worst-case adaptive result
    (one with ``fresh_draws``, from ``eee_zoo.adaptive``) also removes the card's results of the retired adaptive
    cascade (``version: adaptive``) at the same norm and eps: that figure was not a worst case, and its results
    file is replaced by the new suite's. Every other part of the
    card (unknown front-matter keys, hand-written text) is kept. Raises :class:`CardError` for an invalid result,
    leaving the card untouched.
    """
    path = _card_file(card_path)

    def upsert(card: ZooCard) -> None:
        worst_case = [(r.get("norm"), float(r.get("eps") or 0)) for r in results if _is_worst_case(r)]

        # the same measurement of the same results file, whatever its size: the file was rewritten (e.g. judged on
        # more draws, so its per-draw figure counts more image-draws) and the card says what it says now
        rewritten = {(r.get("results_file"), r.get("metric")) for r in results}

        def superseded(r: dict[str, Any]) -> bool:
            if (r.get("results_file"), r.get("metric")) in rewritten:
                return True
            return _is_retired_cascade(r) and any(r["norm"] == n and abs(r["eps"] - e) < 1e-12 for n, e in worst_case)

        merged = [r for r in card.results if not superseded(r)]
        index = {result_identity(r): i for i, r in enumerate(merged)}
        for i, raw in enumerate(results):
            result = validate_result(raw, threat_model=card.threat_model, path=path, where=f"results[{i}]")
            key = result_identity(result)
            if key in index:
                merged[index[key]] = result
            else:
                index[key] = len(merged)
                merged.append(result)
        card.results = merged

    _rewrite(path, upsert)


def set_revision(card_path: str | os.PathLike, revision: str) -> None:
    """Pin the Hub revision (e.g. the commit a push created) in a card; atomic rewrite."""

    def pin(card: ZooCard) -> None:
        card.revision = revision

    _rewrite(_card_file(card_path), pin)


def set_figures(card_path: str | os.PathLike, figures_dir: str | os.PathLike | None) -> list[Path]:
    """Show the figures of ``figures_dir`` (the repository's ``benchmarks/figures/<Name>/``) in a card.

    Copies their PNGs into the card folder's ``figures/`` (removing PNGs no longer there) and writes a ``## Figures``
    section of relative links ``figures/<stem>.png``, which resolve in the repository and on the Hub alike (the
    pushed folder holds the same ``figures/``), before the Limitations section. Each figure's caption comes from
    :data:`FIGURE_CAPTIONS` and its command from the JSON beside it. With no PNG in ``figures_dir`` (or None), the
    section and the copies are removed. Returns the copies; one atomic rewrite of the card.
    """
    path = _card_file(card_path)
    source = Path(figures_dir) if figures_dir is not None else None
    pngs = sorted(source.glob("*.png")) if source is not None and source.is_dir() else []
    order = list(FIGURE_CAPTIONS)
    pngs.sort(key=lambda p: (order.index(_figure_key(p.stem)) if _figure_key(p.stem) else len(order), p.stem))
    target = path.parent / FIGURES_FOLDER
    with _locked(path.parent):
        text = path.read_text(encoding="utf-8-sig")
        card = _parse_card(_model_card(text, path), path)
        copies = []
        for png in pngs:
            target.mkdir(exist_ok=True)
            copies.append(target / png.name)
            if not copies[-1].is_file() or copies[-1].read_bytes() != png.read_bytes():
                atomic_write_bytes(copies[-1], png.read_bytes())
        for stale in sorted(target.glob("*.png")) if target.is_dir() else []:
            if stale not in copies:
                stale.unlink()
        if target.is_dir() and not any(target.iterdir()):
            target.rmdir()
        section = ""
        if pngs:
            lines = [
                "## Figures\n", _FIGURES_START,
                f"Made with `eee-zoo visualize {card.name}` (`bash benchmarks/figures/make_figures.sh` in the eee-zoo "
                f"repository); the data behind each figure, its settings and the exact command are in "
                f"`benchmarks/figures/{card.name}/<figure>.json` there.\n",
            ]  # fmt: skip
            for png in pngs:
                key = _figure_key(png.stem)
                caption = FIGURE_CAPTIONS[key] if key else png.stem.replace("_", " ").capitalize() + ": a figure."
                command = ""
                with contextlib.suppress(OSError, ValueError, AttributeError):
                    command = json.loads(png.with_suffix(".json").read_text()).get("command") or ""
                title, _, what = caption.partition(": ")
                lines.append(f"![{title}]({FIGURES_FOLDER}/{png.name})\n")
                lines.append(f"**{title}**: {what}" + (f" Made by:\n\n```\n{command}\n```\n" if command else "\n"))
            section = "\n".join(lines) + _FIGURES_END + "\n\n"
        body = _FIGURES_SECTION_RE.sub("", text)
        if section:
            at = body.find("\n## Limitations")
            body = body.rstrip("\n") + "\n\n" + section if at < 0 else body[: at + 1] + section + body[at + 1 :]
        if body != text:
            _parse_card(_model_card(body, path), path)  # never write a card that would not load
            atomic_write_text(path, body)
    return copies


# ---------------------------------------------------------------------------------------------- results
def result_identity(result: dict[str, Any]) -> tuple:
    """What makes two results "the same measurement": metric, version, norm, eps, n_examples, seed (, stochastic)."""
    return tuple(result.get(k) for k in IDENTITY_KEYS)


def _is_worst_case(result: dict[str, Any]) -> bool:
    """A card result of the adaptive suite's worst case (eee_zoo.adaptive): it names its fresh draws."""
    return result_suite(result) == "adaptive" and result.get("fresh_draws") is not None


def _is_retired_cascade(result: dict[str, Any]) -> bool:
    """A card result of the adaptive cascade that preceded the worst case (right on every one of ``eval_draws``)."""
    return result_suite(result) == "adaptive" and result.get("version") == "adaptive"


def result_suite(result: dict[str, Any]) -> str:
    """The suite of attacks behind a result (a card's result or a results file): its ``suite``, else inferred.

    Results written before the field existed are AutoAttack's unless their ``version`` is ``"adaptive"``.
    """
    suite = result.get("suite")
    if suite is not None:
        return str(suite)
    return "adaptive" if result.get("version") == "adaptive" else "autoattack"


def validate_result(
    result: dict[str, Any],
    *,
    threat_model: str | None = None,
    path: str | os.PathLike | None = None,
    where: str = "result",
) -> dict[str, Any]:
    """Check one result dict (see the contract) and return it normalised (``value``/``eps`` as floats).

    With ``threat_model``, a robust accuracy must have been measured under that norm.
    """
    if not isinstance(result, dict):
        raise CardError(path, where, f"expected a mapping, got {type(result).__name__}")
    f = _Fields(result, path, where)
    metric = f.choice("metric", METRICS)
    robust = metric == "robust_accuracy"
    measured = metric != "clean_accuracy"  # robust or certified: a version, a norm and radius, a seed
    out = {
        "metric": metric,
        "value": float(f.number("value", lo=0, hi=100)),
        "correct": f.integer("correct", lo=0),
        "n_examples": f.integer("n_examples", lo=1),
        "version": f.string("version", required=measured),
        "norm": f.choice("norm", NORMS, required=measured),
        "eps": f.number("eps", lo=0, required=measured),
        "seed": f.integer("seed", lo=0, required=measured),
        "results_file": f.string("results_file"),
        "stochastic": f.boolean("stochastic", required=False),  # optional: the inference mode measured
        "suite": f.choice("suite", SUITES, required=False),  # optional: see result_suite
    }
    if out["eps"] is not None:
        out["eps"] = float(out["eps"])
    if metric == "certified_accuracy" and out["norm"] != "L2":
        raise CardError(path, f"{where}.norm", "certified accuracy (randomized smoothing) is for L2 radii (eps)")
    if robust and threat_model is not None and out["norm"] != threat_model:
        raise CardError(path, f"{where}.norm", f"robust accuracy under {out['norm']} in a {threat_model} card")
    if out["correct"] > out["n_examples"]:
        raise CardError(path, f"{where}.correct", f"{out['correct']} correct out of {out['n_examples']} examples")
    expected = 100.0 * out["correct"] / out["n_examples"]
    if abs(out["value"] - expected) > _VALUE_TOLERANCE:
        raise CardError(
            path,
            f"{where}.value",
            f"{out['value']} does not match correct/n_examples = {out['correct']}/{out['n_examples']} "
            f"({expected:.4f}%); value is a percentage",
        )
    out.update({k: v for k, v in result.items() if k not in RESULT_KEYS})  # extra keys ride along untouched
    return out


def results_table(results: Sequence[dict[str, Any]]) -> str:
    """A markdown table of results (clean first, then robust by AutoAttack version); certified ones have their own."""
    results = [r for r in results if r["metric"] != "certified_accuracy"]
    if not results:
        return ""
    rows = [
        "| Metric | Attack | Threat model | Inference | Accuracy (%) | Correct / n | Seed | Results file |",
        "|---|---|---|---|---:|---:|---:|---|",
    ]
    for r in sorted(results, key=lambda r: (r["metric"] != "clean_accuracy", r["version"] or "", -r["n_examples"])):
        robust = r["metric"] == "robust_accuracy"
        threat = f"{r['norm']}, eps = {format_eps(r['eps'], r['norm'])}" if robust else "-"
        mode = {True: "stochastic", False: "deterministic", None: "-"}[r.get("stochastic")]
        rows.append(
            f"| {'Robust' if robust else 'Clean'} | {result_label(r) if robust else '-'} | {threat} | {mode} "
            f"| {r['value']:.2f} "
            f"| {r['correct']} / {r['n_examples']} | {'-' if r['seed'] is None else r['seed']} "
            f"| `{r['results_file']}` |"
        )
    return "\n".join(rows)


def result_label(result: dict[str, Any]) -> str:
    """What a robust accuracy counts, in words: ``AutoAttack rand``, ``worst case over adaptive attacks, per draw
    (500 images x 20 draws)``, ``worst case over adaptive attacks, right on all 20 draws``, ``adaptive attacks,
    lowest column: pgd-mean-eot, per draw (100 images x 50 draws)``."""
    if _is_worst_case(result):  # eee_zoo.adaptive: the per-image worst case, scored on fresh draws
        draws, version = result["fresh_draws"], result.get("version") or ""
        preset = version.split("/", 1)[0]
        preset = f", preset {preset}" if preset and preset != "zoo" else ""
        # the headline column (eee_zoo.adaptive.result.headline_column): a single attack's where it counts less
        column = result.get("column")
        what = (
            f"adaptive attacks{preset}, lowest column: {column}"
            if column
            else f"worst case over adaptive attacks{preset}"
        )
        if version.endswith("/per-draw"):
            images = result.get("images") or result["n_examples"] // draws
            return f"{what}, per draw ({images} images x {draws} draws)"
        return f"{what}, right on all {draws} draws"
    if result_suite(result) == "adaptive":  # the retired cascade: right on every judging draw counts as robust
        draws = result.get("eval_draws")
        return "adaptive attacks" + (f", right on all {draws} draws" if draws else "")
    return f"AutoAttack {result['version']}"


def best_known_result(results: Sequence[dict[str, Any]], stochastic_inference: bool) -> dict[str, Any] | None:
    """The lowest robust accuracy measured on the deployed model: RobustBench's ``external``, the best-known figure.
    Give it the results of one threat budget (norm and eps).

    Candidates: AutoAttack results in the deployed inference mode (or with no mode recorded) and the adaptive
    suite's per-draw worst cases (their headline: one query of the deployed model). Every-draw figures
    count something else (right on all F draws) and are left out, and so is a worst case with a larger run of the
    same configuration (its first images: the lower of the two would be the noisier). Ties go to the larger n.
    None without candidates.
    """
    candidates = [
        r
        for r in results
        if r["metric"] == "robust_accuracy"
        and (
            (_is_worst_case(r) and str(r.get("version")).endswith("/per-draw"))
            or (result_suite(r) == "autoattack" and r.get("stochastic") in (None, stochastic_inference))
        )
    ]

    def images(r: dict[str, Any]) -> int:
        return r.get("images", r["n_examples"])

    def superseded(r: dict[str, Any]) -> bool:  # a larger run of the same configuration holds r's images and seeds
        same = ("version", "seed", "fresh_draws", "selection_draws", "final_draws", "tie_draws", "norm", "eps")
        return _is_worst_case(r) and any(
            _is_worst_case(o) and images(o) > images(r) and all(o.get(k) == r.get(k) for k in same) for o in candidates
        )

    candidates = [r for r in candidates if not superseded(r)]
    return min(candidates, key=lambda r: (r["value"], -images(r)), default=None)


# ---------------------------------------------------------------------------------------------- body
def render_body(card: ZooCard, *, description: str | None = None) -> str:
    """The card's markdown body: what the model is, how to load it, randomness, training, results, caveats."""
    arch = card.architecture
    stack = arch.get("stack") or {}
    backbone = arch["backbone"]
    kwargs = ", ".join(f"{k}={v!r}" for k, v in (backbone.get("kwargs") or {}).items())
    predictors = [f"`{t}`" for t in arch["taps"]]
    if arch.get("include_backbone_head", True):
        predictors.append("the backbone's own classifier")
    aggregation = f"CrossMax, k = {arch.get('k', 3)}" if arch.get("aggregator", "crossmax") == "crossmax" else "mean"
    size = arch.get("input_size", 32)
    resolutions = ", ".join(str(r) for r in stack.get("resolutions", (32, 16, 8, 4)))
    hub_url = f"https://huggingface.co/{card.repo_id}"
    plain = is_plain_classifier(arch)
    if plain:
        intro = (
            f"A single-resolution baseline for {DATASET_TITLES[card.dataset]} under the {card.threat_model} threat "
            f"model, from the eee-zoo model zoo of multi-resolution self-ensembles (Fort & Lakshminarayanan 2024, "
            f"*Ensemble everything everywhere*, [arXiv:2408.05446](https://arxiv.org/abs/2408.05446)): a plain "
            f"classifier that reads the image as it is, with no stack of copies, no intermediate heads and no "
            f"aggregation, so its rows beside the self-ensembles' show what the method adds.\n"
        )
        stack_text, aggregation = f"none (the {size} px image as it is)", "none (one predictor)"
    else:
        intro = (
            f"A multi-resolution self-ensemble (Fort & Lakshminarayanan 2024, *Ensemble everything everywhere*, "
            f"[arXiv:2408.05446](https://arxiv.org/abs/2408.05446)) for {DATASET_TITLES[card.dataset]} under the "
            f"{card.threat_model} threat model, from the eee-zoo model zoo. Each image is turned into a stack of "
            f"noisy, jittered copies at several resolutions; a backbone reads the stack, linear heads on its "
            f"intermediate layers each predict the class, and their logits are aggregated.\n"
        )
        stack_text = f"{resolutions} px, `{stack.get('variant', 'code')}` variant"

    parts = [f"# {card.name}\n"]
    if description:
        parts.append(description.strip() + "\n")
    parts.append(intro)
    parts.append(
        "## Model\n\n| | |\n|---|---|\n"
        f"| Input | float images `[B, 3, {size}, {size}]` in [0, 1] (normalisation happens inside the model) |\n"
        f"| Multi-resolution stack | {stack_text} |\n"
        f"| Backbone | `{backbone['name']}`{f' ({kwargs})' if kwargs else ''} |\n"
        f"| Predictors | {', '.join(predictors)} |\n"
        f"| Aggregation | {aggregation} |\n"
        f"| Classes | {arch['num_classes']} |\n"
        f"| Weights | {_weights_text(card)} |\n"
        f"| Hub | [`{card.repo_id}`]({hub_url}) at revision `{card.revision}` |\n"
    )
    parts.append(
        "## Usage\n\n```python\nfrom eee_zoo import load_model\n\n"
        f'model = load_model("{card.name}", dataset="{card.dataset}", threat_model="{card.threat_model}")\n'
        f"logits = model(images)  # images: float tensor [B, 3, {size}, {size}] in [0, 1]\n```\n\n"
        "`load_model` finds the weights (a RobustBench-style `model_dir`, this folder, or the Hugging Face Hub at "
        "the pinned revision; with `HF_HUB_OFFLINE=1` only the local cache), checks their sha256 *before* loading "
        "and loads them with safetensors and `strict=True`. The card data is attached as `model.eee_info`.\n"
    )
    randomness = _PLAIN_RANDOMNESS if plain else _randomness_text(card, stack)
    parts.append("## Inference randomness\n\n" + randomness + "\n")
    parts.append("## Training\n\n" + _training_text(card) + "\n")
    parts.append("## Results\n\n" + _results_section(card) + "\n")
    if plain:
        parts.append("## Limitations\n\n" + LIMITATIONS_PLAIN + "\n")
        return "\n".join(parts)
    parts.append(
        "## Limitations: gradient masking and adaptive attacks\n\n"
        "Read the robust accuracy of this method with care. The random input stack and the max/sort inside "
        "CrossMax make input gradients noisy and partly uninformative (gradient masking), which weakens the "
        "gradient-based attacks of AutoAttack's `standard` version and can make a model look more robust than it "
        "is. The `rand` version (expectation over transformation) averages out the randomness but not the masking "
        "from the aggregation. Adaptive attacks designed against this defense have reported far lower robust "
        "accuracy than AutoAttack for the published models (Zhang et al. 2024, *Gradient Masking All-at-Once: "
        "Ensemble Everything Everywhere Is Not Robust*, [arXiv:2411.14834](https://arxiv.org/abs/2411.14834)). "
        "Treat AutoAttack's numbers above as upper bounds on the true robustness, not as certified or "
        "adaptive-attack-verified figures. " + LIMITATIONS_ADAPTIVE + "\n"
    )
    return "\n".join(parts)


_PLAIN_RANDOMNESS = (
    "Inference is **deterministic**, with no random mode: the model reads the image as it is, so the same images "
    "always give the same logits, and `load_model(..., stochastic=True)` changes nothing (its stack draws nothing)."
)


def is_plain_classifier(architecture: dict[str, Any]) -> bool:
    """A single-resolution baseline: one copy of the image at its own size, a stack that draws nothing, and the
    backbone's classifier as the only predictor (nothing to aggregate)."""
    from .models.multires import MultiResolutionStack  # here, not at import: reading cards needs no torch

    stack = dict(architecture.get("stack") or {})
    size = architecture.get("input_size", 32)
    return (
        list(stack.get("resolutions", ())) == [size]
        and not MultiResolutionStack(**stack).is_random
        and not architecture.get("taps")
        and architecture.get("include_backbone_head", True)
    )


def _weights_text(card: ZooCard) -> str:
    text = f"`{card.filename}`, sha256 `{card.sha256}`"
    if card.shards:
        text += f"; {len(card.shards)} safetensors shards, each with its sha256 in this card's `eee_zoo.shards`"
    if card.storage_dtype != DEFAULT_STORAGE_DTYPE:
        text += f"; floating-point tensors stored in {card.storage_dtype} (loaded into float32)"
    return text


def _randomness_text(card: ZooCard, stack: dict[str, Any]) -> str:
    seed = stack.get("seed", 0)
    if card.stochastic_inference:
        return (
            "Inference is **stochastic**: every forward pass draws new jitter, contrast/colour factors and noise in "
            "the multi-resolution stack, so two calls on the same images can give different logits. The draws come "
            f"only from the model's own `torch.Generator` (seeded with {seed} when the model is built), never from "
            "PyTorch's global random state.\n\n"
            "- `model.manual_seed(s)` (or `load_model(..., seed=s)`) replays the same draws: same seed, same logits.\n"
            "- `model.set_stochastic(False)` (or `load_model(..., stochastic=False)`) switches to the deterministic "
            "mode: no jitter, contrast and colour factors 1, each noise term replaced by its mean.\n"
            "- Each result below records its seed and, where given, the inference mode it was measured in."
        )
    return (
        "Inference is **deterministic**: the stack uses no jitter, contrast and colour factors 1 and each noise "
        "term's mean, so the same images always give the same logits. `load_model(..., stochastic=True)` turns on "
        f"the random stack; its draws come only from the model's own `torch.Generator` (seed {seed}, or "
        "`load_model(..., seed=s)`)."
    )


def _training_text(card: ZooCard) -> str:
    training = card.training
    if not training:
        return "No training record in this card."
    lines = []
    if "recipe" in training:
        seed = f", seed {training['seed']}" if "seed" in training else ""
        lines.append(f"- Recipe: `{training['recipe']}`{seed}")
    if "command" in training:
        lines.append(f"- Reproduce with:\n\n  ```\n  {training['command']}\n  ```")
    for key, value in training.items():
        if key not in ("recipe", "seed", "command"):
            lines.append(f"- {key}: `{value}`")
    return "\n".join(lines)


def _results_section(card: ZooCard) -> str:
    if card.results:
        inner = (
            f"Measured on the first n {DATASET_TITLES[card.dataset]} test images (unshuffled); every number comes "
            "from the results file named in its row.\n\n" + results_table(card.results)
        )
        if any(_is_worst_case(r) for r in card.results):
            inner += (
                "\n\nAdaptive rows: for every image the worst of all the adaptive suite's proposals, chosen by the "
                "deployed model on selection draws and scored on other, fresh draws. *Per draw* is the mean over "
                "images and fresh draws (n counts image-draws): one query of the deployed model. AutoAttack `rand` "
                "counts more strictly, an image staying robust only if right on each of its single-draw checks (the "
                "clean check and one after each attack: 3 draws), so where images are wrong on some draws only "
                "(small eps) its figure can sit below the per-draw one; the leaderboard holds the two like with like. "
                "*Right on all F draws* falls as F grows."
            )
        budgets = sorted({(r["norm"], r["eps"]) for r in card.results if r["metric"] == "robust_accuracy"})
        for norm, eps in budgets:  # one best-known figure per threat budget
            same = [r for r in card.results if (r["norm"], r["eps"]) == (norm, eps)]
            best = best_known_result(same, card.stochastic_inference)
            if best is not None:
                inner += (
                    f"\n\nBest-known robust accuracy of the deployed model at {norm} eps = {format_eps(eps, norm)} "
                    f"(RobustBench's `external`): **{best['value']:.2f} %**, {result_label(best)}, seed "
                    f"{best['seed']}, from `{best['results_file']}`."
                )
    else:
        inner = (
            "No results yet. Measure clean accuracy and AutoAttack robust accuracy and write them into this card "
            f"with:\n\n```\neee-zoo benchmark {card.name} --dataset {card.dataset} "
            f"--threat-model {card.threat_model} --write-card\n```"
        )
    return f"{_RESULTS_START}\n{inner}{_certified_section(card)}\n{_RESULTS_END}"


def _certified_section(card: ZooCard) -> str:
    """Certified (lower) bounds beside the empirical (upper) ones, from the card's results alone: every row is backed
    by a results file (``python -m benchmarks.certify --write-card``; checked by ``benchmarks.results.check_card``)."""
    certified = [r for r in card.results if r["metric"] == "certified_accuracy"]
    if not certified:
        return ""
    dim = 3 * card.architecture.get("input_size", 32) ** 2
    rows = [
        "| Bound | Classifier | Threat | Accuracy (%) | Correct / n | Seed | Results file |",
        "|---|---|---|---:|---:|---:|---|",
    ]
    for r in sorted(certified, key=lambda r: (r["version"], r["eps"], -r["n_examples"])):
        linf = 255 * float(r.get("radius_linf") or r["eps"] / math.sqrt(dim))
        rows.append(
            f"| lower: certified | smoothed, `{r['version']}` | L2 radius {r['eps']:g} (L-inf {linf:.2f}/255) "
            f"| {r['value']:.2f} | {r['correct']} / {r['n_examples']} | {r['seed']} | `{r['results_file']}` |"
        )
    clean = max(
        (r for r in card.results if r["metric"] == "clean_accuracy"), key=lambda r: r["n_examples"], default=None
    )
    budgets = sorted({(r["norm"], r["eps"]) for r in card.results if r["metric"] == "robust_accuracy"})
    for norm, eps in budgets:
        best = best_known_result(
            [r for r in card.results if (r["norm"], r["eps"]) == (norm, eps)], card.stochastic_inference
        )
        if best is not None:
            rows.append(
                f"| upper: best-known attack | deployed, {result_label(best)} | {norm} eps {format_eps(eps, norm)} "
                f"| {best['value']:.2f} | {best['correct']} / {best['n_examples']} | {best['seed']} "
                f"| `{best['results_file']}` |"
            )
    if clean is not None:
        rows.append(
            f"| upper: clean | deployed | none | {clean['value']:.2f} | {clean['correct']} / {clean['n_examples']} "
            f"| {'-' if clean['seed'] is None else clean['seed']} | `{clean['results_file']}` |"
        )
    return (
        "\n\n### Certified (lower bound) beside empirical (upper bound)\n\n"
        "Randomized smoothing (`python -m benchmarks.certify`, `eee_zoo.certify`) certifies the *smoothed* classifier: "
        "the class this model (with its own random stack) returns most often on copies of the image with Gaussian "
        "noise of the sigma in the version's name. Its certified accuracy at an L2 radius is a lower bound on that "
        "classifier's accuracy against *every* attack within the radius (each image's certificate may fail with "
        "probability alpha). The attacks' figures are upper bounds for the deployed model, a different classifier. "
        f"An L2 ball of radius r holds the L-inf ball of radius r / {math.sqrt(dim):.1f}, so a radius also certifies "
        f"that L-inf radius (L-inf 8/255 would need L2 radius {8 / 255 * math.sqrt(dim):.2f}).\n\n" + "\n".join(rows)
    )


# ---------------------------------------------------------------------------------------------- internals
def _figure_key(stem: str) -> str | None:
    """The :data:`FIGURE_CAPTIONS` key of a figure file's stem: itself, or the key it starts with plus ``_``."""
    return stem if stem in FIGURE_CAPTIONS else next((k for k in FIGURE_CAPTIONS if stem.startswith(k + "_")), None)


def _card_file(card_path: str | os.PathLike) -> Path:
    path = Path(card_path)
    return path / CARD_FILENAME if path.is_dir() else path


def _model_card(text: str, path: Path | None) -> ModelCard:
    try:
        return ModelCard(text)
    except Exception as e:  # yaml.YAMLError, or ValueError from an unparsable model-index
        raise CardError(path, "front matter", f"cannot be parsed: {e}") from None


def _card_data(card: ZooCard) -> ModelCardData:
    return ModelCardData(
        library_name="eee-zoo",
        license="mit",
        pipeline_tag=_TASK_TYPE,
        datasets=[card.dataset],
        tags=["eee-zoo", "robustbench", "adversarial-robustness", "self-ensemble", card.dataset, card.threat_model],
        model_name=card.name if card.results else None,
        eval_results=_eval_results(card) or None,
        **{_META_KEY: card.metadata()},
    )


def _eval_results(card: ZooCard) -> list[EvalResult]:
    out = []
    for i, raw in enumerate(card.results):
        r = validate_result(raw, threat_model=card.threat_model, path=card.card_path, where=f"results[{i}]")
        args = {k: v for k, v in r.items() if k not in ("metric", "value")}
        robust = r["metric"] == "robust_accuracy"
        label = (
            f"Robust accuracy ({result_label(r)}, {r['norm']} eps={format_eps(r['eps'], r['norm'])})"
            if robust
            else f"Certified accuracy (randomized smoothing {r['version']}, L2 radius {r['eps']:g})"
            if r["metric"] == "certified_accuracy"
            else "Clean accuracy"
        )
        out.append(
            EvalResult(
                task_type=_TASK_TYPE,
                dataset_type=card.dataset,
                dataset_name=DATASET_TITLES[card.dataset],
                dataset_split="test",
                metric_type=r["metric"],
                metric_value=r["value"],
                metric_name=label,
                metric_config=r["version"] if r["metric"] != "clean_accuracy" else "clean",
                metric_args=args,
            )
        )
    return out


def _parse_card(model_card: ModelCard, path: Path | None) -> ZooCard:
    data = model_card.data
    meta = data.get(_META_KEY)
    if meta is None:
        raise CardError(path, _META_KEY, "missing (not an eee-zoo card?)")
    if not isinstance(meta, dict):
        raise CardError(path, _META_KEY, f"expected a mapping, got {type(meta).__name__}")
    f = _Fields(meta, path, _META_KEY)
    version = f.integer("format_version")
    if version != CARD_FORMAT_VERSION:
        raise CardError(path, f"{_META_KEY}.format_version", f"{version} is not supported ({CARD_FORMAT_VERSION})")
    card = ZooCard(
        name=f.string("name"),
        dataset=f.string("dataset"),
        threat_model=f.string("threat_model"),
        architecture=f.mapping("architecture"),
        repo_id=f.string("repo_id"),
        revision=f.string("revision"),
        filename=f.string("filename"),
        sha256=f.string("sha256"),
        stochastic_inference=f.boolean("stochastic_inference"),
        training=f.mapping("training", required=False) or {},
        card_path=path,
        storage_dtype=f.string("storage_dtype", required=False) or DEFAULT_STORAGE_DTYPE,
        shards=f.mapping("shards", required=False) or {},
    )
    _validate_card(card, path)  # the card's own fields first: results are checked against them
    card.results = _parse_results(data.eval_results or [], card, path)
    return card


def _parse_results(eval_results: list[EvalResult], card: ZooCard, path: Path | None) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    seen: set[tuple] = set()
    for i, er in enumerate(eval_results):
        where = f"model-index.results[{i}]"
        if er.dataset_type != card.dataset:
            raise CardError(path, f"{where}.dataset.type", f"{er.dataset_type!r} but the card is for {card.dataset!r}")
        args = er.metric_args if er.metric_args is not None else {}
        if not isinstance(args, dict):
            raise CardError(path, f"{where}.args", f"expected a mapping, got {type(args).__name__}")
        raw = {"metric": er.metric_type, "value": er.metric_value, "version": None, "norm": None, "eps": None}
        raw.update(args)  # None-valued keys are dropped by huggingface_hub when writing; they default to None here
        result = validate_result(raw, threat_model=card.threat_model, path=path, where=where)
        key = result_identity(result)
        if key in seen:
            raise CardError(path, where, f"duplicate result {dict(zip(IDENTITY_KEYS, key))}")
        seen.add(key)
        results.append(result)
    return results


def _validate_card(card: ZooCard, path: Path | None) -> None:
    m = _META_KEY
    if not is_valid_name(card.name):
        raise CardError(path, f"{m}.name", f"{card.name!r} is not a valid model name (letters, digits, '_', '.', '-')")
    if card.dataset not in DATASETS:
        raise CardError(path, f"{m}.dataset", f"unknown dataset {card.dataset!r}; choose one of {sorted(DATASETS)}")
    if card.threat_model not in THREAT_MODELS:
        raise CardError(
            path,
            f"{m}.threat_model",
            f"unknown threat model {card.threat_model!r}; choose one of {list(THREAT_MODELS)}",
        )
    try:
        validate_repo_id(card.repo_id)
    except HFValidationError as e:
        raise CardError(path, f"{m}.repo_id", str(e)) from None
    if "/" not in card.repo_id:
        raise CardError(path, f"{m}.repo_id", f"{card.repo_id!r} must be '<organisation>/<name>'")
    if not card.revision.strip() or any(c.isspace() for c in card.revision):
        raise CardError(path, f"{m}.revision", f"{card.revision!r} is not a branch, tag or commit")
    _validate_shards(card, path)
    parts = card.filename.split("/")
    suffix = _INDEX_SUFFIX if card.shards else ".safetensors"
    if not card.filename.endswith(suffix) or card.filename.startswith("/") or ".." in parts:
        what = "a Hugging Face index (*.safetensors.index.json)" if card.shards else "a .safetensors file"
        raise CardError(path, f"{m}.filename", f"{card.filename!r} must be a relative path to {what}")
    if not _SHA256_RE.match(card.sha256):
        raise CardError(path, f"{m}.sha256", f"{card.sha256!r} is not 64 lowercase hex digits")
    if card.storage_dtype not in STORAGE_DTYPES:
        problem = f"unknown storage dtype {card.storage_dtype!r}; choose one of {list(STORAGE_DTYPES)}"
        raise CardError(path, f"{m}.storage_dtype", problem)
    if not isinstance(card.stochastic_inference, bool):
        raise CardError(path, f"{m}.stochastic_inference", "expected true or false")
    _validate_architecture(card, path)
    _validate_training(card.training, path)


def _validate_shards(card: ZooCard, path: Path | None) -> None:
    m = _META_KEY
    if not isinstance(card.shards, dict):
        raise CardError(path, f"{m}.shards", f"expected a mapping of shard file name to sha256, got {card.shards!r}")
    if card.filename.endswith(_INDEX_SUFFIX) and not card.shards:
        raise CardError(path, f"{m}.shards", f"missing: {card.filename!r} is an index; list every shard's sha256")
    for name, sha in card.shards.items():
        if not isinstance(name, str) or not _SHARD_NAME_RE.match(name) or ".." in name:
            raise CardError(path, f"{m}.shards", f"{name!r} is not a shard file name (*.safetensors beside the index)")
        if not isinstance(sha, str) or not _SHA256_RE.match(sha):
            raise CardError(path, f"{m}.shards.{name}", f"{sha!r} is not 64 lowercase hex digits")


def _validate_architecture(card: ZooCard, path: Path | None) -> None:
    f = _Fields(card.architecture, path, f"{_META_KEY}.architecture")
    num_classes = f.integer("num_classes", lo=2)
    if num_classes != DATASETS.get(card.dataset, num_classes):
        raise CardError(
            path,
            f"{_META_KEY}.architecture.num_classes",
            f"{num_classes} but {card.dataset} has {DATASETS[card.dataset]}",
        )
    backbone = _Fields(f.mapping("backbone"), path, f"{_META_KEY}.architecture.backbone")
    backbone.string("name")
    backbone.mapping("kwargs", required=False)
    taps = f.value("taps")
    if not isinstance(taps, list) or not all(isinstance(t, str) for t in taps):
        raise CardError(path, f"{_META_KEY}.architecture.taps", f"expected a list of strings, got {taps!r}")
    f.mapping("stack", required=False)


def _validate_training(training: dict[str, Any], path: Path | None) -> None:
    f = _Fields(training, path, f"{_META_KEY}.training")
    f.string("recipe", required=False)
    f.integer("seed", required=False)


def _rewrite(path: Path, mutate: Callable[[ZooCard], None]) -> None:
    """Read, mutate the typed card, write front matter + results section back; keep everything else."""
    with _locked(path.parent):
        text = path.read_text(encoding="utf-8-sig")
        model_card = _model_card(text, path)
        card = _parse_card(model_card, path)
        mutate(card)
        _validate_card(card, path)
        fresh = _card_data(card)
        # Replace only what we own; unknown keys and hand-written markdown stay as they are.
        model_card.data[_META_KEY] = fresh[_META_KEY]
        model_card.data.eval_results = fresh.eval_results
        model_card.data.model_name = fresh.model_name
        section = _results_section(card)
        if _RESULTS_SECTION_RE.search(model_card.text):
            model_card.text = _RESULTS_SECTION_RE.sub(lambda _: section, model_card.text, count=1)
        else:
            model_card.text = model_card.text.rstrip("\n") + "\n\n## Results\n\n" + section + "\n"
        new_text = str(model_card)
        _parse_card(_model_card(new_text, path), path)  # never write a card that would not load
        atomic_write_text(path, new_text)


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """Serialise read-modify-write of a card across processes (two benchmarks writing one card)."""
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks; the write itself is still atomic
        yield
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


class _Fields:
    """Typed access to a mapping, raising :class:`CardError` with the dotted field name."""

    _MISSING = object()

    def __init__(self, mapping: dict[str, Any], path: str | os.PathLike | None, prefix: str) -> None:
        self.data, self.path, self.prefix = mapping, path, prefix

    def _error(self, key: str, problem: str) -> CardError:
        return CardError(self.path, f"{self.prefix}.{key}", problem)

    def value(self, key: str, required: bool = True) -> Any:
        value = self.data.get(key)
        if value is None and required:
            raise self._error(key, "missing")
        return value

    def _typed(self, key: str, ok: Callable[[Any], bool], expected: str, required: bool) -> Any:
        value = self.value(key, required)
        if value is not None and not ok(value):
            raise self._error(key, f"expected {expected}, got {type(value).__name__} {value!r}")
        return value

    def string(self, key: str, required: bool = True) -> str | None:
        return self._typed(key, lambda v: isinstance(v, str) and v != "", "a non-empty string", required)

    def boolean(self, key: str, required: bool = True) -> bool | None:
        return self._typed(key, lambda v: isinstance(v, bool), "true or false", required)

    def mapping(self, key: str, required: bool = True) -> dict | None:
        return self._typed(key, lambda v: isinstance(v, dict), "a mapping", required)

    def integer(self, key: str, lo: int | None = None, required: bool = True) -> int | None:
        value = self._typed(key, lambda v: isinstance(v, int) and not isinstance(v, bool), "an integer", required)
        if value is not None and lo is not None and value < lo:
            raise self._error(key, f"{value} is below {lo}")
        return value

    def number(self, key: str, lo: float | None = None, hi: float | None = None, required: bool = True) -> Any:
        value = self._typed(
            key,
            lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v),
            "a finite number",
            required,
        )
        if value is not None and ((lo is not None and value < lo) or (hi is not None and value > hi)):
            raise self._error(key, f"{value} is outside [{lo}, {hi}]")
        return value

    def choice(self, key: str, choices: Sequence[str], required: bool = True) -> str | None:
        value = self.string(key, required)
        if value is not None and value not in choices:
            raise self._error(key, f"unknown value {value!r}; choose one of {list(choices)}")
        return value
