"""Adversarial examples kept beside a results file: one safetensors file, small, and refused for other images.

Format (``<results stem>.adv.safetensors``):

* ``indices``: int64 ``[m]``, the images whose adversarial example differs from the clean image;
* ``delta``: float16 ``[m, C, H, W]``, ``x_adv - x`` for those images;
* string metadata: :data:`FORMAT`, ``threat_model``, ``eps``, ``n_examples``, ``x_sha256`` (a sha256 of the
  clean images, float32, C order) and the caller's (model sha256, dataset, version, seed, inference mode, ...).

:func:`load_adversarial_examples` rebuilds ``x_adv = x + delta``, projected back onto the eps-ball around ``x``
(Linf: clamped; L2: rescaled) and onto [0, 1], so float16 rounding never takes an example outside the threat
model; given other images than those the examples were computed on, it refuses with one clear error.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import torch

from .._io import atomic_path
from ..datasets import THREAT_MODELS

__all__ = ["FORMAT", "images_sha256", "load_adversarial_examples", "project", "save_adversarial_examples"]

FORMAT = "eee-zoo/adversarial-examples/1"
_OWN_KEYS = ("format", "threat_model", "eps", "n_examples", "x_sha256")


def images_sha256(x: torch.Tensor) -> str:
    """sha256 of the images as float32 in C order (the key that ties examples to their clean images)."""
    return hashlib.sha256(x.detach().to("cpu", torch.float32).contiguous().numpy().tobytes()).hexdigest()


def project(x: torch.Tensor, x_adv: torch.Tensor, eps: float, threat_model: str) -> torch.Tensor:
    """``x_adv`` moved onto the ``threat_model`` ball of radius ``eps`` around ``x``, then onto [0, 1]."""
    delta = x_adv - x
    if threat_model == "Linf":
        delta = delta.clamp(-eps, eps)
    elif threat_model == "L2":
        norms = delta.flatten(1).norm(dim=1).clamp_min(1e-12)
        delta = delta * (eps / norms).clamp(max=1.0).view(-1, *([1] * (delta.ndim - 1)))
    else:
        raise ValueError(f"unknown threat model {threat_model!r}; choose one of {list(THREAT_MODELS)}")
    return (x + delta).clamp(0.0, 1.0)  # x in [0, 1]: clamping only shortens the perturbation


def save_adversarial_examples(
    path: str | os.PathLike,
    x: torch.Tensor,
    x_adv: torch.Tensor,
    *,
    eps: float,
    threat_model: str,
    metadata: dict[str, str],
) -> Path:
    """Write the examples ``x_adv`` of the clean images ``x`` to ``path`` atomically (see the module docstring)."""
    from safetensors.torch import save_file

    if not isinstance(x, torch.Tensor) or not isinstance(x_adv, torch.Tensor) or x.shape != x_adv.shape:
        raise ValueError("x and x_adv must be tensors of the same shape [n, C, H, W]")
    if threat_model not in THREAT_MODELS:
        raise ValueError(f"unknown threat model {threat_model!r}; choose one of {list(THREAT_MODELS)}")
    bad = [k for k, v in metadata.items() if not isinstance(k, str) or not isinstance(v, str) or k in _OWN_KEYS]
    if bad:
        raise ValueError(f"metadata must map strings to strings, without the keys {list(_OWN_KEYS)}; got {bad}")
    x, x_adv = x.detach().to("cpu", torch.float32), x_adv.detach().to("cpu", torch.float32)
    indices = torch.nonzero((x_adv != x).flatten(1).any(dim=1)).flatten()
    tensors = {
        "indices": indices.to(torch.int64).contiguous(),
        "delta": (x_adv[indices] - x[indices]).to(torch.float16).contiguous(),
    }
    meta = {
        **metadata,
        "format": FORMAT,
        "threat_model": threat_model,
        "eps": repr(float(eps)),
        "n_examples": str(len(x)),
        "x_sha256": images_sha256(x),
    }
    path = Path(path)
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=meta)
    return path


def load_adversarial_examples(path: str | os.PathLike, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, str]]:
    """``(x_adv, metadata)`` of a file written by :func:`save_adversarial_examples` for the clean images ``x``."""
    from safetensors import safe_open

    path = Path(path)
    with safe_open(str(path), framework="pt") as f:
        metadata: dict[str, Any] = dict(f.metadata() or {})
        if metadata.get("format") != FORMAT:
            raise ValueError(f"{path}: not an eee_zoo adversarial-examples file (format {metadata.get('format')!r})")
        indices, delta = f.get_tensor("indices"), f.get_tensor("delta")
    theirs, ours = metadata["x_sha256"], images_sha256(x)
    if theirs != ours:
        raise ValueError(
            f"{path}: these adversarial examples were computed on other images ({metadata['n_examples']} images, "
            f"sha256 {theirs[:12]}) than the {len(x)} given (sha256 {ours[:12]}); load them with the images they "
            f"were made for (the first {metadata['n_examples']} {metadata.get('dataset', '')} test images)"
        )
    x = x.detach().to("cpu", torch.float32)
    x_adv = x.clone()
    if len(indices):
        clean = x[indices]
        x_adv[indices] = project(clean, clean + delta.float(), float(metadata["eps"]), metadata["threat_model"])
    return x_adv, metadata
