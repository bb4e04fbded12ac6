"""Finished images on disk, so that a killed certification resumes with the uninterrupted result.

One JSON file per image (written atomically), in a folder keyed by the whole configuration except ``n_examples``
and the radii: image ``i`` is certified with seeds derived from ``(seed, i)`` alone, so the first 100 images of a
500-image run are a 100-image run, and images can be done in any order or by several processes. Each file records
the sha256 of its image and label; a file whose image differs is refused.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch

from .._io import atomic_write_json

__all__ = ["ImageStore", "image_sha256"]


def image_sha256(x: torch.Tensor, y: int) -> str:
    digest = hashlib.sha256(x.detach().cpu().contiguous().numpy().tobytes())
    digest.update(int(y).to_bytes(8, "little", signed=True))
    return digest.hexdigest()


class ImageStore:
    """``<state_dir>/certify_<key>/image<i>.json``; no folder (``state_dir=None``): nothing is kept."""

    def __init__(self, state_dir: str | Path | None, config: dict[str, Any], *, fresh: bool = False) -> None:
        key = hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:16]
        self.root = None if state_dir is None else Path(state_dir) / f"certify_{key}"
        self.config, self.fresh = config, fresh

    def _path(self, index: int) -> Path | None:
        return None if self.root is None else self.root / f"image{index:06d}.json"

    def load(self, index: int, images_sha256: str) -> dict[str, Any] | None:
        path = self._path(index)
        if path is None or self.fresh or not path.is_file():
            return None
        stored = json.loads(path.read_text())
        if stored.get("image_sha256") != images_sha256 or stored.get("config") != json.loads(json.dumps(self.config)):
            raise ValueError(f"{path} holds another image or configuration than image {index}; remove it or pass fresh")
        return stored["record"]

    def save(self, index: int, record: dict[str, Any], images_sha256: str) -> None:
        path = self._path(index)
        if path is not None:
            atomic_write_json(path, {"config": self.config, "image_sha256": images_sha256, "record": record})
