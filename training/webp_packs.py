"""The lossless CIFAR packs: images stored as WebP byte strings in one blob, ``offsets`` (N+1) into it."""

from __future__ import annotations

import io

import numpy as np


def decode_webp(blob: bytes | np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Images ``[N, 32, 32, 3]`` uint8 RGB from ``blob[offsets[i]:offsets[i + 1]]``, i < N = len(offsets) - 1."""
    from PIL import Image

    data = blob.tobytes() if isinstance(blob, np.ndarray) else blob
    return np.stack([
        np.asarray(Image.open(io.BytesIO(data[offsets[i] : offsets[i + 1]])).convert("RGB"))
        for i in range(len(offsets) - 1)
    ])  # fmt: skip
