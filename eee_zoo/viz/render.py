"""Drawing and writing figures: matplotlib's Agg canvas without pyplot, PNGs whose bytes depend only on the figure.

``new_figure`` builds a ``matplotlib.figure.Figure`` on an Agg canvas directly (no pyplot: no global figure
registry, no backend switching in the caller's process); ``save_png`` writes it with the ``Software`` metadata
removed, so the same figure gives the same bytes; ``write_json`` writes the data behind it.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .._io import atomic_write_bytes, atomic_write_json
from ..cards import format_eps

__all__ = [
    "DPI", "eps_text", "figure_array", "image_array", "new_figure", "perturbation_array", "png_bytes", "save_png",
    "write_json",
]  # fmt: skip

DPI = 100


def new_figure(width: float, height: float) -> Figure:
    """A figure of ``width x height`` inches on its own Agg canvas."""
    figure = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(figure)
    return figure


def png_bytes(figure: Figure) -> bytes:
    """The figure as PNG bytes: no software/version text, so bytes depend on the drawing only."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None}, facecolor="white")
    return buffer.getvalue()


def figure_array(figure: Figure) -> np.ndarray:
    """The rendered figure as an ``[H, W, 4]`` uint8 RGBA array."""
    figure.canvas.draw()
    return np.asarray(figure.canvas.buffer_rgba()).copy()


def save_png(figure: Figure, path: str | os.PathLike) -> Path:
    """Write the figure to ``path`` (atomically) and return the path."""
    path = Path(path)
    atomic_write_bytes(path, png_bytes(figure))
    return path


def write_json(data: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write the data behind a figure (atomically) and return the path."""
    path = Path(path)
    atomic_write_json(path, data)
    return path


def image_array(x: torch.Tensor) -> np.ndarray:
    """One image ``[3, H, W]`` in [0, 1] as ``[H, W, 3]`` float for ``imshow``."""
    return x.detach().to("cpu", torch.float32).clamp(0, 1).permute(1, 2, 0).numpy()


def perturbation_array(delta: torch.Tensor) -> tuple[np.ndarray, float]:
    """A perturbation ``[3, H, W]`` amplified to the full range: ``0.5 + delta * gain`` with ``gain = 0.5 / max|delta|``
    (grey: no change), and the gain."""
    peak = float(delta.detach().abs().max())
    gain = 0.5 / peak if peak > 0 else 1.0
    return image_array(0.5 + delta * gain), gain


def eps_text(eps: float, threat_model: str) -> str:
    """``"Linf eps = 8/255"`` or ``"L2 eps = 0.5"`` (:func:`eee_zoo.cards.format_eps`, as cards and tables write it)."""
    return f"{threat_model} eps = {format_eps(eps, threat_model)}"
