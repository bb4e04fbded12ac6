"""Reading and writing card files: load, render, write, and atomic read-modify-write of results and revision."""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from .._io import atomic_write_text
from .body import GLANCE_SECTION_RE, RESULTS_SECTION_RE, glance_section, render_body, results_section
from .card import CARD_FILENAME, DATASET_TITLES, META_KEY, TASK_TYPE, ZooCard
from .results import format_eps, is_retired_cascade, is_worst_case, result_identity, result_label, validate_result
from .validate import model_card_from_text, parse_card, validate_card

__all__ = ["card_file", "load_card", "locked", "render_card", "set_results", "set_revision", "write_card"]


def card_file(card_path: str | os.PathLike) -> Path:
    """The card's ``README.md``: ``card_path`` itself, or the file of that name inside a folder."""
    path = Path(card_path)
    return path / CARD_FILENAME if path.is_dir() else path


@contextlib.contextmanager
def locked(directory: Path) -> Iterator[None]:
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


def load_card(path: str | os.PathLike) -> ZooCard:
    """Read and validate a card (a ``README.md`` or the folder holding it); raises :class:`CardError`."""
    path = Path(path)
    if path.is_dir():
        path = path / CARD_FILENAME
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise FileNotFoundError(f"model card not found: {path}") from None
    return parse_card(model_card_from_text(text, path), path)


def render_card(card: ZooCard, *, description: str | None = None) -> ModelCard:
    """A ``huggingface_hub.ModelCard`` for ``card``: front matter from its data and a generated body."""
    validate_card(card, card.card_path)
    data = _card_data(card)
    # ModelCardData.to_yaml does the YAML; the body is markdown generated from the same data.
    model_card = model_card_from_text(
        f"---\n{data.to_yaml()}\n---\n{render_body(card, description=description)}", card.card_path
    )
    parse_card(model_card, card.card_path)  # validates the results too: never render a card that would not load
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
    path = card_file(card_path)

    def upsert(card: ZooCard) -> None:
        worst_case = [(r.get("norm"), float(r.get("eps") or 0)) for r in results if is_worst_case(r)]

        # the same measurement of the same results file, whatever its size: the file was rewritten (e.g. judged on
        # more draws, so its per-draw figure counts more image-draws) and the card says what it says now
        rewritten = {(r.get("results_file"), r.get("metric")) for r in results}

        def superseded(r: dict[str, Any]) -> bool:
            if (r.get("results_file"), r.get("metric")) in rewritten:
                return True
            return is_retired_cascade(r) and any(r["norm"] == n and abs(r["eps"] - e) < 1e-12 for n, e in worst_case)

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

    _rewrite(card_file(card_path), pin)


def _card_data(card: ZooCard) -> ModelCardData:
    return ModelCardData(
        library_name="eee-zoo",
        license="mit",
        pipeline_tag=TASK_TYPE,
        datasets=[card.dataset],
        tags=["eee-zoo", "robustbench", "adversarial-robustness", "self-ensemble", card.dataset, card.threat_model],
        model_name=card.name if card.results else None,
        eval_results=_eval_results(card) or None,
        **{META_KEY: card.metadata()},
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
                task_type=TASK_TYPE,
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


def _with_glance(text: str, glance: str) -> str:
    """``text`` with its at-a-glance block replaced, or (a card written before it existed) put before the first
    second-level heading, under the title and introduction."""
    if GLANCE_SECTION_RE.search(text):
        return GLANCE_SECTION_RE.sub(lambda _: glance, text, count=1)
    heading = re.search(r"^## ", text, re.MULTILINE)
    if heading is None:
        return text.rstrip("\n") + "\n\n" + glance + "\n"
    return text[: heading.start()] + glance + "\n\n" + text[heading.start() :]


def _rewrite(path: Path, mutate: Callable[[ZooCard], None]) -> None:
    """Read, mutate the typed card, write front matter + results section back; keep everything else."""
    with locked(path.parent):
        text = path.read_text(encoding="utf-8-sig")
        model_card = model_card_from_text(text, path)
        card = parse_card(model_card, path)
        mutate(card)
        validate_card(card, path)
        fresh = _card_data(card)
        # Replace only what we own; unknown keys and hand-written markdown stay as they are.
        model_card.data[META_KEY] = fresh[META_KEY]
        model_card.data.eval_results = fresh.eval_results
        model_card.data.model_name = fresh.model_name
        section = results_section(card)
        if RESULTS_SECTION_RE.search(model_card.text):
            model_card.text = RESULTS_SECTION_RE.sub(lambda _: section, model_card.text, count=1)
        else:
            model_card.text = model_card.text.rstrip("\n") + "\n\n## Results\n\n" + section + "\n"
        model_card.text = _with_glance(model_card.text, glance_section(card))
        new_text = str(model_card)
        parse_card(model_card_from_text(new_text, path), path)  # never write a card that would not load
        atomic_write_text(path, new_text)
