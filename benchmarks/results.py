"""Results files: the only place the zoo's numbers come from.

One JSON file (``EvaluationResult.to_dict()``), its log and its adversarial examples per evaluated
configuration::

    benchmarks/results/<dataset>/<threat_model>/<Name>/<version>_<sto|det>_eps<eps>_n<n>_seed<seed>_<sha12>[_chunk<k>].json
    ... .log, ... .adv.safetensors (eee_zoo.evaluation.examples: every image the attacks broke, as x_adv - x)

A file's ``suite`` says which family of attacks produced it (``autoattack`` here; the adaptive suite's files
live one folder down, see ``benchmarks/adaptive.py`` and :func:`iter_adaptive_results`); files written before the
field existed are read with :func:`eee_zoo.cards.result_suite` (``version == "adaptive"``: the adaptive suite, else
AutoAttack). The adaptive suite's files of format 2 (:mod:`eee_zoo.adaptive.result`, :func:`is_worst_case`) hold
the per-image worst case over every attack; its format-1 files (the retired cascade) are still read, never shown.

The name carries the model, checkpoint hash, dataset, threat model, AutoAttack version, inference mode, eps,
n and seed; everything else that shapes the result (batch size, chunking, the images' hash) is checked
against an existing file before it is replaced. So the same configuration always lands in the same file and
a different configuration never overwrites one; a rerun of the same configuration that does not reproduce
the stored numbers is refused rather than silently replacing them, and one that reproduces the stored file in
everything but its provenance (:func:`reproduces_stored`: it assembled finished states) leaves it as it is.

Model cards take their numbers from these files only (``eee-zoo benchmark --write-card``, via
:func:`card_results`), and :func:`check_cards` verifies that every number a card states is backed by one.

Only the zoo's own runners write into ``benchmarks/results/`` by default (``python -m benchmarks.run``, which
``benchmarks/zoo_evaluation.sh`` and the GPU queue call, and ``eee-zoo benchmark --write-card``); an exploratory
``eee-zoo benchmark`` writes the same files under :func:`user_results_dir` (or its ``--out``), where the
leaderboard never looks.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from eee_zoo._cpu import arithmetic_text
from eee_zoo._io import atomic_write_json, atomic_write_text
from eee_zoo._percent import interval_percent  # re-exported: the leaderboard and cards widen intervals alike
from eee_zoo.adaptive.result import headline_column
from eee_zoo.cards import result_suite
from eee_zoo.evaluation import SUITE, EvaluationResult

__all__ = [
    "ADAPTIVE_FORMAT", "REPO_ROOT", "RESULTS_DIR", "ResultsError", "adaptive_card_results", "adaptive_figures",
    "PROVENANCE_FIELDS", "card_results", "check_card", "check_cards", "eps_tag", "examples_path", "interval_percent",
    "is_worst_case", "iter_adaptive_results", "iter_results", "load_result", "percent_floor", "result_filename",
    "reproduces_stored", "result_path", "result_suite", "results_file_reference", "save_result", "user_results_dir",
    "worst_case_configuration",
]  # fmt: skip

log = logging.getLogger(__name__)

RESULTS_DIR = Path(__file__).resolve().parent / "results"
REPO_ROOT = Path(__file__).resolve().parents[1]
_LOAD_SOURCE = "eee_zoo.data.load_dataset"
# format_version of the adaptive suite's worst-case results files (eee_zoo.adaptive.result); 1 = the retired cascade.
ADAPTIVE_FORMAT = 2
_IDENTITY_FIELDS = ("model_name", "checkpoint_sha256", "dataset", "threat_model", "eps", "n_examples", "seed")
_COUNTS_V1 = ("version", "clean_correct", "robust_correct")  # AutoAttack's files and the cascade's
# Fields outside the file name that must agree before a file is replaced.
_HIDDEN_IDENTITY = ("batch_size", "chunk_size", "attacks", "attack_overrides", "data_sha256")
_COUNT_FIELDS = ("clean_correct", "robust_correct", "outcomes")
_PERCENT_RE = re.compile(r"(\d+(?:\.\d+)?)\s*%")
_RESULTS_SECTION_RE = re.compile(r"<!-- eee-zoo:results:start -->.*?<!-- eee-zoo:results:end -->", re.DOTALL)


class ResultsError(ValueError):
    """A results file that cannot be written or does not back what refers to it."""


def user_results_dir() -> Path:
    """Where ``eee-zoo benchmark`` puts results unless told otherwise: ``$XDG_CACHE_HOME/eee_zoo/results``
    (``~/.cache/...``), outside the source tree, so that an exploratory run never becomes a leaderboard row."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "eee_zoo" / "results"


# ============================================================================================ names
def eps_tag(eps: float, threat_model: str) -> str:
    """``8-255`` for L-inf budgets on the 1/255 grid, else ``f"{eps:g}"``."""
    k = eps * 255
    if threat_model == "Linf" and abs(k - round(k)) < 1e-6:
        return f"{round(k)}-255"
    return f"{eps:g}"


def result_filename(result: EvaluationResult | dict[str, Any]) -> str:
    """The file name for a result (see the module docstring)."""
    r = result.to_dict() if isinstance(result, EvaluationResult) else result
    mode = "sto" if r["stochastic"] else "det"
    name = (
        f"{r['version']}_{mode}_eps{eps_tag(r['eps'], r['threat_model'])}_n{r['n_examples']}_seed{r['seed']}_"
        f"{r['checkpoint_sha256'][:12]}"
    )
    if r.get("chunk_size") is not None:
        name += f"_chunk{r['chunk_size']}"
    return name + ".json"


def result_path(result: EvaluationResult | dict[str, Any], results_dir: str | os.PathLike | None = None) -> Path:
    """Where ``result`` is stored under ``results_dir`` (default: this repository's ``benchmarks/results``)."""
    r = result.to_dict() if isinstance(result, EvaluationResult) else result
    root = Path(results_dir) if results_dir is not None else RESULTS_DIR
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", r["model_name"])
    return root / r["dataset"] / r["threat_model"] / safe / result_filename(r)


# ============================================================================================ files
def save_result(result: EvaluationResult, results_dir: str | os.PathLike | None = None) -> Path:
    """Write ``result`` (JSON) and its log atomically; returns the JSON path.

    Raises :class:`ResultsError` for a result that is not a valid zoo evaluation (images not loaded by
    :func:`eee_zoo.data.load_dataset`, reduced attack settings) and when the file exists for another
    configuration or holds numbers this run did not reproduce.
    """
    if result.data.get("source") != _LOAD_SOURCE:
        raise ResultsError(
            "results files hold evaluations on the first n test images as loaded by eee_zoo.data.load_dataset; "
            f"this result was computed on {result.data.get('source')!r} inputs"
        )
    if result.suite != SUITE:
        raise ResultsError(f"a {result.suite!r} result does not go into an AutoAttack results file")
    if result.is_reduced:
        raise ResultsError(
            f"this result used reduced attack settings {result.attack_overrides}: it is not an AutoAttack "
            f"{result.version} evaluation and cannot go into a results file"
        )
    path = result_path(result, results_dir)
    data = result.to_dict()
    if path.exists():
        old = load_result(path)
        differ = [k for k in _HIDDEN_IDENTITY if _identity_field(old, k) != _identity_field(data, k)]
        if differ:
            details = ", ".join(
                f"{k}: {_identity_field(old, k)!r} there, {_identity_field(data, k)!r} now" for k in differ
            )
            raise ResultsError(
                f"{path} holds the same model/version/eps/n/seed evaluated with another configuration ({details}); "
                "results files are never overwritten by a different configuration. Rerun with the stored settings "
                "or move the old file away."
            )
        changed = [k for k in _COUNT_FIELDS if old.get(k) != data.get(k)]
        if changed:
            raise ResultsError(
                f"{path}: this rerun of the same configuration did not reproduce the stored result (differs in "
                f"{changed}: clean {old.get('clean_correct')} vs {data['clean_correct']}, robust "
                f"{old.get('robust_correct')} vs {data['robust_correct']}); keeping the stored file. Floats differ "
                f"across CPUs, instruction sets and thread counts (stored: {_arithmetic(old)}; now: "
                f"{_arithmetic(data)}) and across GPU kernels, and a stochastic attack turns that into other images "
                "broken; investigate before replacing it."
            )
    atomic_write_json(path, data)
    atomic_write_text(path.with_suffix(".log"), "\n".join([*result.summary().splitlines(), "", *result.log]) + "\n")
    return path


def _arithmetic(d: dict[str, Any]) -> str:
    """Where a results file's floats were computed: device, and on the CPU processor, instruction set, threads."""
    v = d.get("versions") or {}
    if d.get("device", "cpu") != "cpu":
        return str(d.get("device"))
    if "cpu_capability" not in v:
        return "a CPU the file does not name"
    return arithmetic_text(v)


def _identity_field(d: dict[str, Any], key: str) -> Any:
    if key == "attacks":
        return [a["attack"] for a in d.get("attacks", [])]
    if key == "data_sha256":
        return (d.get("data") or {}).get("sha256")
    return d.get(key)


def load_result(path: str | os.PathLike) -> dict[str, Any]:
    """Read a results file; raises :class:`ResultsError` naming the file when it is not one."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise
    except (OSError, ValueError) as e:
        raise ResultsError(f"{path}: not a readable JSON results file ({e})") from e
    if not isinstance(data, dict):
        raise ResultsError(f"{path}: not a results file (a JSON {type(data).__name__})")
    counts = ("preset", "fresh_draws", "clean", "robust") if is_worst_case(data) else _COUNTS_V1
    missing = [k for k in (*_IDENTITY_FIELDS, *counts) if k not in data]
    if missing:
        raise ResultsError(f"{path}: not a results file (missing {missing})")
    return data


def is_worst_case(data: dict[str, Any]) -> bool:
    """Whether a results-file dict is the adaptive suite's worst case (format 2), not AutoAttack's or the cascade's."""
    return result_suite(data) == "adaptive" and int(data.get("format_version") or 1) >= ADAPTIVE_FORMAT


def examples_path(results_path: str | os.PathLike) -> Path:
    """Where a results file's adversarial examples lie: ``<results stem>.adv.safetensors`` beside it."""
    return Path(results_path).with_suffix(".adv.safetensors")


# What a rerun measures anew about a result it reproduces: when and on which machine the file was assembled, and how
# long that call took (seconds, when it only assembled finished chunks or batches).
PROVENANCE_FIELDS = ("created", "versions", "wall_time_s")


def reproduces_stored(data: dict[str, Any], path: str | os.PathLike, *, with_examples: bool) -> bool:
    """Whether ``path`` already holds ``data`` (a results-file dict) in every field but :data:`PROVENANCE_FIELDS`,
    with its examples beside it where ``with_examples``: a rerun that assembled finished states. Callers then keep
    the stored files, whose machine, date and attack time are those of the run that made them."""
    path = Path(path)
    if not path.is_file() or (with_examples and not examples_path(path).is_file()):
        return False

    def kept(d: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in d.items() if k not in PROVENANCE_FIELDS}

    return kept(json.loads(path.read_text())) == kept(json.loads(json.dumps(data)))  # tuples as stored


def iter_results(
    results_dir: str | os.PathLike | None = None, *, suite: str | None = SUITE
) -> Iterator[tuple[Path, dict[str, Any]]]:
    """Every results file under ``results_dir`` (sorted by path) with its data; only ``suite``'s (None: all)."""
    root = Path(results_dir) if results_dir is not None else RESULTS_DIR
    for path in sorted(root.glob("*/*/*/*.json")):
        data = load_result(path)
        if suite is None or result_suite(data) == suite:
            yield path, data


def iter_adaptive_results(results_dir: str | os.PathLike | None = None) -> Iterator[tuple[Path, dict[str, Any]]]:
    """The adaptive suite's results files (``<name>/adaptive/*.json``, sorted by path) of format 2 with their data.

    Files of the retired cascade (format 1) are skipped with a logged note: their figure was not a worst case.
    """
    root = Path(results_dir) if results_dir is not None else RESULTS_DIR
    for path in sorted(root.glob("*/*/*/adaptive/*.json")):
        data = load_result(path)
        if is_worst_case(data):
            yield path, data
        else:
            log.info("%s: adaptive results format 1 (the retired cascade), not shown; rerun benchmarks.adaptive", path)


# ============================================================================================ cards
def results_file_reference(path: str | os.PathLike, results_dir: str | os.PathLike | None = None) -> str:
    """How a card names a results file: its path relative to the checkout holding ``benchmarks/results``."""
    root = Path(results_dir).resolve() if results_dir is not None else RESULTS_DIR
    if root.name != "results" or root.parent.name != "benchmarks":
        raise ResultsError(
            f"results directory {root} is not <checkout>/benchmarks/results: a model card could not name files in it"
        )
    return Path(path).resolve().relative_to(root.parents[1]).as_posix()


def card_results(
    result: dict[str, Any] | EvaluationResult, results_file: str, *, check: bool = True
) -> list[dict[str, Any]]:
    """The two card entries (clean and robust accuracy) of a result, in the form ``eee_zoo.cards.set_results`` takes.
    ``check=False`` builds them for any result, for comparisons that never reach a card (a leaderboard row of a run
    with reduced settings still names its best-known figure by the card's rule)."""
    r = result.to_dict() if isinstance(result, EvaluationResult) else result
    if check and r.get("attack_overrides"):
        raise ResultsError("a result with reduced attack settings cannot go into a model card")
    if check and (r.get("data") or {}).get("source") != _LOAD_SOURCE:
        raise ResultsError("a result on caller-provided images cannot go into a model card")
    n = r["n_examples"]
    common = {"n_examples": n, "norm": r["threat_model"], "eps": r["eps"], "seed": r["seed"]}
    # The inference mode measured is part of a card result's identity (eee_zoo.cards.IDENTITY_KEYS).
    common["stochastic"] = bool(r["stochastic"])
    return [
        {"metric": "clean_accuracy", "value": percent_floor(r["clean_correct"], n), "correct": r["clean_correct"],
         "version": None, **common, "results_file": results_file, "interval": interval_percent(r["clean_interval"])},
        {"metric": "robust_accuracy", "value": percent_floor(r["robust_correct"], n), "correct": r["robust_correct"],
         "version": r["version"], **common, "suite": result_suite(r), "results_file": results_file,
         "interval": interval_percent(r["robust_interval"])},
    ]  # fmt: skip


def adaptive_figures(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The two card figures of a worst-case result (format 2), by card ``version``: each its count and denominator.

    ``<preset>/per-draw``: robust accuracy per draw, the headline, counted in image-draws (``n_examples`` = images
    x fresh draws, ``correct`` = the fresh hits of every image's kept proposal), so ``100 * correct / n_examples``
    is the per-draw figure exactly. ``<preset>/every-draw-<F>``: images right on all F fresh draws. Both count the
    headline column (:func:`eee_zoo.adaptive.result.headline_column`): the worst case, or the single attack whose
    fresh draws count less, named then by ``column``.
    """
    if not is_worst_case(result):
        raise ResultsError(
            "not a worst-case adaptive result (format 2, eee_zoo.adaptive); files of the retired cascade (format 1) "
            "no longer go into cards: rerun python -m benchmarks.adaptive"
        )
    n, draws, robust = result["n_examples"], result["fresh_draws"], headline_column(result)
    preset = result["preset"]
    column = {} if robust is result["robust"] else {"column": robust["name"]}
    return {
        f"{preset}/per-draw": {
            "correct": int(sum(robust["fresh_hits"])), "n_examples": n * draws, "images": n, "fresh_draws": draws,
            "interval": interval_percent(robust["per_draw_interval"]), **column,
        },
        f"{preset}/every-draw-{draws}": {
            "correct": int(robust["every_draw_correct"]), "n_examples": n, "images": n, "fresh_draws": draws,
            "interval": interval_percent(robust["every_draw_interval"]), **column,
        },
    }  # fmt: skip


# What makes two worst-case runs "the same configuration" apart from n: a larger one then holds the smaller one's
# images with the same seeds (batches are seeded on their own), so the smaller is a subset, never a second figure.
_CONFIGURATION_KEYS = (
    "preset", "seed", "eps", "batch_size", "selection_draws", "final_draws", "tie_draws", "fresh_draws", "autoattack",
    "autoattack_source", "cascade", "attacks",
)  # fmt: skip


def worst_case_configuration(result: dict[str, Any]) -> str:
    """A short key of a worst-case result's configuration without its n (see ``_CONFIGURATION_KEYS``)."""
    same = {k: result.get(k) for k in _CONFIGURATION_KEYS}
    same["autoattack_source"] = same["autoattack_source"] or "batch"  # files from before the option
    if result.get("autoattack_chunk_size"):  # only when set, so that the keys of unchunked runs stay as they were
        same["autoattack_chunk_size"] = result["autoattack_chunk_size"]
    return hashlib.sha256(json.dumps(same, sort_keys=True, default=str).encode()).hexdigest()[:12]


def adaptive_card_results(result: dict[str, Any], results_file: str) -> list[dict[str, Any]]:
    """The card entries of a worst-case adaptive result: robust accuracy per draw (the headline) and on every draw.

    Both are :func:`adaptive_figures`, floored to 0.01 %, with ``suite: adaptive`` and the result's ``stochastic``
    (the deployed model judged them; False for a model whose stack draws nothing); ``images`` and ``fresh_draws``
    ride along so the card can say what was counted. The clean accuracy of the same run is left out of the card,
    where it would stand beside the usual single-draw clean accuracy without its context; the leaderboard shows it.
    """
    if (result.get("data") or {}).get("source") != _LOAD_SOURCE:
        raise ResultsError("a result on caller-provided images cannot go into a model card")
    if result.get("autoattack_overrides"):
        raise ResultsError("a result with reduced AutoAttack settings cannot go into a model card")
    common = {"norm": result["threat_model"], "eps": result["eps"], "seed": result["seed"],
              "stochastic": bool(result.get("stochastic", True)),
              "configuration": worst_case_configuration(result)}  # fmt: skip
    return [
        {"metric": "robust_accuracy", "value": percent_floor(f["correct"], f["n_examples"]), "version": version,
         **f, **common, "suite": "adaptive", "results_file": results_file}
        for version, f in adaptive_figures(result).items()
    ]  # fmt: skip


def percent_floor(correct: int, n: int) -> float:
    """100 * correct / n, floored to two decimals: a stated accuracy is never rounded up."""
    return (10000 * correct // n) / 100


def check_card(card_path: str | os.PathLike, root: str | os.PathLike | None = None) -> list[str]:
    """Problems with the numbers one card states: each must be backed by a results file under ``root``.

    Checked: every ``model-index`` result names an existing results file under ``root`` (default: this
    checkout) for the same checkpoint (name, sha256), dataset and threat model, with the same metric, version,
    eps, n, seed, correct count, value and 95 % interval (required: every number carries one); and every
    percentage on a line that mentions accuracy, outside the generated results section, equals one of the backed
    values.
    """
    from eee_zoo.cards import load_card

    root = Path(root) if root is not None else REPO_ROOT
    card = load_card(card_path)
    where = str(card.card_path)
    problems: list[str] = []
    backed: set[str] = set()
    for i, r in enumerate(card.results):
        tag = f"{where}: result {i} ({r['metric']} {r['version'] or ''} n={r['n_examples']} seed={r['seed']})"
        ref = r.get("results_file")
        if not ref or Path(ref).is_absolute() or ".." in Path(ref).parts:
            problems.append(f"{tag}: results_file {ref!r} must be a path inside the checkout")
            continue
        path = root / ref
        if not path.is_file():
            problems.append(f"{tag}: results file {ref} does not exist")
            continue
        if r["metric"] == "certified_accuracy":  # randomized smoothing's files (benchmarks.certify) have their own form
            from .certify import certified_card_problems

            problems += [f"{tag}: {p}" for p in certified_card_problems(card, r, path)]
            backed.update({f"{r['value']:.2f}", f"{r['value']:.1f}", f"{r['value']:.0f}", f"{r['value']:g}"})
            continue
        try:
            data = load_result(path)
        except ResultsError as e:
            problems.append(f"{tag}: {e}")
            continue
        problems += [f"{tag}: {p}" for p in _compare(card, r, data)]
        for value in (r["value"],):
            backed.update({f"{value:.2f}", f"{value:.1f}", f"{value:.0f}", f"{value:g}"})
    text = Path(where).read_text(encoding="utf-8")
    body = _RESULTS_SECTION_RE.sub("", text.split("\n---", 1)[-1] if text.startswith("---") else text)
    for line in body.splitlines():
        if "accura" not in line.lower():
            continue
        for number in _PERCENT_RE.findall(line):
            if number not in backed:
                problems.append(f"{where}: states {number}% ({line.strip()[:80]!r}) but no results file backs it")
    return problems


def _compare(card: Any, r: dict[str, Any], data: dict[str, Any]) -> list[str]:
    out = []
    worst_case = is_worst_case(data)
    figure: dict[str, Any] | None = None
    if worst_case:  # a card figure is one of the file's two (adaptive_figures), counted in its own denominator
        figures = adaptive_figures(data)
        figure = figures.get(r["version"]) if r["metric"] == "robust_accuracy" else None
        if figure is None:
            return [f"{r['metric']} {r['version']!r} is none of this adaptive results file's figures {sorted(figures)}"]
    expect = {
        "model_name": card.name,
        "checkpoint_sha256": card.sha256,
        "dataset": card.dataset,
        "threat_model": r["norm"],
        "n_examples": r["n_examples"] if figure is None else r.get("images"),
        "seed": r["seed"],
    }
    for key, value in expect.items():
        if data.get(key) != value:
            out.append(f"{key} is {value!r} in the card but {data.get(key)!r} in the results file")
    if data.get("threat_model") != card.threat_model:
        out.append(f"the results file is for {data.get('threat_model')}, the card for {card.threat_model}")
    if r["eps"] is None or abs(float(data["eps"]) - float(r["eps"])) > 1e-12:
        out.append(f"eps is {r['eps']!r} in the card but {data['eps']!r} in the results file")
    if r.get("stochastic") is not None and bool(r["stochastic"]) != bool(data.get("stochastic")):
        out.append(f"stochastic is {r['stochastic']!r} in the card but {data.get('stochastic')!r} in the results file")
    if figure is not None:
        correct, n = figure["correct"], figure["n_examples"]
        if r["n_examples"] != n or r.get("fresh_draws") != figure["fresh_draws"]:
            out.append(
                f"{r['n_examples']} examples ({r.get('fresh_draws')} fresh draws) in the card but {n} "
                f"({figure['fresh_draws']} fresh draws) in the results file"
            )
    elif r["metric"] == "robust_accuracy":
        correct, n = data["robust_correct"], data["n_examples"]
        if data.get("version") != r["version"]:
            out.append(f"version is {r['version']!r} in the card but {data.get('version')!r} in the results file")
    else:
        correct, n = data["clean_correct"], data["n_examples"]
    if r["metric"] == "robust_accuracy" and result_suite(data) != result_suite(r):
        out.append(f"suite is {result_suite(r)!r} in the card but {result_suite(data)!r} in the results file")
    if r["correct"] != correct:
        out.append(f"{r['correct']} correct in the card but {correct} in the results file")
    if figure is not None:
        interval = figure["interval"]
    else:
        interval = interval_percent(data["robust_interval" if r["metric"] == "robust_accuracy" else "clean_interval"])
    if r.get("interval") != interval:
        out.append(f"95 % interval {r.get('interval')} in the card but {interval} from the results file")
    exact = 100.0 * correct / n  # cards floor to 0.01 (never rounded up, in the model's favour)
    if not exact - 0.01 - 1e-9 <= r["value"] <= exact + 1e-9:
        out.append(f"value {r['value']} is not {correct}/{n} from the results file (floored to 0.01)")
    if data.get("attack_overrides") or data.get("autoattack_overrides"):
        out.append("the results file used reduced attack settings")
    if (data.get("data") or {}).get("source") != _LOAD_SOURCE:
        out.append("the results file was computed on caller-provided images")
    return out


def check_cards(cards_dir: str | os.PathLike, root: str | os.PathLike | None = None) -> list[str]:
    """:func:`check_card` for every ``<dataset>/<threat_model>/<Name>/README.md`` under ``cards_dir``."""
    problems: list[str] = []
    for path in sorted(Path(cards_dir).glob("*/*/*/README.md")):
        try:
            problems += check_card(path, root)
        except ValueError as e:  # CardError: an unreadable card backs nothing
            problems.append(str(e))
    return problems
