"""The card's Figures section: copies of ``eee-zoo visualize``'s PNGs beside the card and relative links to
them, which resolve in the repository and on the Hub alike."""

from __future__ import annotations

import contextlib
import json
import os
import re
from pathlib import Path

from .._io import atomic_write_bytes, atomic_write_text
from .files import card_file, locked
from .validate import model_card_from_text, parse_card

__all__ = ["FIGURES_FOLDER", "FIGURE_CAPTIONS", "set_figures"]

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


def set_figures(card_path: str | os.PathLike, figures_dir: str | os.PathLike | None) -> list[Path]:
    """Show the figures of ``figures_dir`` (the repository's ``benchmarks/figures/<Name>/``) in a card.

    Copies their PNGs into the card folder's ``figures/`` (removing PNGs no longer there) and writes a ``## Figures``
    section of relative links ``figures/<stem>.png``, which resolve in the repository and on the Hub alike (the
    pushed folder holds the same ``figures/``), before the Limitations section. Each figure's caption comes from
    :data:`FIGURE_CAPTIONS` and its command from the JSON beside it. With no PNG in ``figures_dir`` (or None), the
    section and the copies are removed. Returns the copies; one atomic rewrite of the card.
    """
    path = card_file(card_path)
    source = Path(figures_dir) if figures_dir is not None else None
    pngs = sorted(source.glob("*.png")) if source is not None and source.is_dir() else []
    order = list(FIGURE_CAPTIONS)
    pngs.sort(key=lambda p: (order.index(_figure_key(p.stem)) if _figure_key(p.stem) else len(order), p.stem))
    target = path.parent / FIGURES_FOLDER
    with locked(path.parent):
        text = path.read_text(encoding="utf-8-sig")
        card = parse_card(model_card_from_text(text, path), path)
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
            parse_card(model_card_from_text(body, path), path)  # never write a card that would not load
            atomic_write_text(path, body)
    return copies


def _figure_key(stem: str) -> str | None:
    """The :data:`FIGURE_CAPTIONS` key of a figure file's stem: itself, or the key it starts with plus ``_``."""
    return stem if stem in FIGURE_CAPTIONS else next((k for k in FIGURE_CAPTIONS if stem.startswith(k + "_")), None)
