"""What goes into an evaluation: the images, the device, and a model checked against both before any attack.

* :func:`load_inputs`: the first n test images (or the caller's), with their hash;
* :func:`check_model_matches`: before any data is read, refuse a model for another number of classes and warn
  about one whose card names another threat model;
* :func:`check_model_outputs`: a pre-flight forward pass on :data:`PROBE_IMAGES` images: logits of the right shape;
* :func:`resolve_device`, :func:`model_identity` (name and checkpoint hash), :func:`model_config`;
* :func:`prepare_inputs`: the above in the order every entry point (AutoAttack, adaptive, certification) takes them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import warnings
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from ..datasets import NUM_CLASSES

__all__ = [
    "PROBE_IMAGES", "PreparedInputs", "check_model_matches", "check_model_outputs", "checkpoint_sha256", "load_inputs",
    "model_config", "model_identity", "prepare_inputs", "resolve_device",
]  # fmt: skip

PROBE_IMAGES = 8  # images of the pre-flight forward pass (output shape, logits vs probabilities)
LOAD_SOURCE = "eee_zoo.data.load_dataset"  # data["source"] of images loaded here (results files need it)


def load_inputs(
    dataset: str, n: int, data_dir: str | os.PathLike | None, inputs: tuple[torch.Tensor, torch.Tensor] | None
) -> tuple[torch.Tensor, torch.Tensor, dict[str, Any]]:
    """``(x, y, data)``: the first ``n`` test images of ``dataset`` (or of ``inputs``), on the CPU.

    ``data`` records the source, the split, the dataset and a sha256 of the images and labels.
    """
    if inputs is None:
        from ..data import load_dataset

        x, y = load_dataset(dataset, n_examples=n, data_dir=data_dir, split="test")
        source = LOAD_SOURCE
    else:
        if not (isinstance(inputs, (tuple, list)) and len(inputs) == 2):
            raise TypeError("inputs must be a pair (x, y) of tensors")
        x, y = inputs
        if not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor):
            raise TypeError("inputs must be a pair (x, y) of tensors")
        if x.ndim != 4 or not x.is_floating_point():
            raise ValueError(f"inputs x must be float images [N, C, H, W], got {x.dtype} {tuple(x.shape)}")
        if y.ndim != 1 or y.dtype != torch.int64 or len(y) != len(x):
            raise ValueError(f"inputs y must be int64 labels [N] matching x, got {y.dtype} {tuple(y.shape)}")
        if len(x) < n:
            raise ValueError(f"n_examples={n} but inputs hold only {len(x)} images")
        x, y = x[:n].detach().cpu().contiguous(), y[:n].detach().cpu().contiguous()
        source = "caller"
    if x.numel() and not (x.min() >= 0 and x.max() <= 1):
        raise ValueError("images must lie in [0, 1] (the model normalises internally)")
    digest = hashlib.sha256(x.numpy().tobytes())
    digest.update(y.numpy().astype("<i8").tobytes())
    return x, y, {"source": source, "split": "test", "sha256": digest.hexdigest(), "dataset": dataset}


def resolve_device(model: nn.Module, device: Any, dist_info: Any = None) -> torch.device:
    """``device`` as a ``torch.device`` (default: the model's); a bare ``cuda`` gets an index.

    ``dist_info``: the process's place in a torch.distributed job (:class:`.distributed.DistInfo`); when it is
    enabled, a bare ``cuda`` means ``cuda:<local_rank>``.
    """
    local_rank = dist_info.local_rank if getattr(dist_info, "enabled", False) else None
    if device is None:
        param = next(iter(model.parameters()), None)
        device = param.device if param is not None else torch.device("cpu")
    device = torch.device(device)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {device} requested but CUDA is not available")
        if local_rank is not None and device.index is None:
            device = torch.device("cuda", local_rank)
        elif device.index is None:
            device = torch.device("cuda", torch.cuda.current_device())
    return device


def check_model_matches(
    model: nn.Module, dataset: str, threat_model: str, device: torch.device, *, probe: bool
) -> None:
    """Before any data is touched: refuse a model for another number of classes, warn about another threat model.

    The classes come from the model's config (``num_classes``) or attribute, else (``probe``) from one forward
    pass on a blank image; a card's dataset and threat model from ``model.eee_info`` (models from ``load_model``).
    """
    info = getattr(model, "eee_info", None)
    info = info if isinstance(info, dict) else {}
    name = info.get("name") or type(model).__name__
    want = NUM_CLASSES[dataset]
    classes = _declared_classes(model)
    if classes is None and probe:
        classes = _probed_classes(model, device)
    if classes is not None and classes != want:
        card = f" (its card is for {info['dataset']})" if isinstance(info.get("dataset"), str) else ""
        raise ValueError(
            f"{name} returns {classes} classes but the dataset has {want} ({dataset}){card}: wrong model for this "
            f"dataset? Pass the dataset the model was trained on (nothing was loaded or attacked)"
        )
    card_threat = info.get("threat_model")
    if isinstance(card_threat, str) and card_threat != threat_model:
        warnings.warn(
            f"{name}'s card is for the {card_threat} threat model, but it is being evaluated under {threat_model}: "
            f"its training and its card's numbers are for {card_threat}, and this result cannot go into that card",
            UserWarning,
            stacklevel=4,  # the caller of evaluate / adaptive_evaluate (through strict_fp32's wrapper)
        )


def _declared_classes(model: nn.Module) -> int | None:
    try:
        config = model.config  # SelfEnsemble; other models may have none
    except Exception:
        config = None
    value = config.get("num_classes") if isinstance(config, dict) else getattr(model, "num_classes", None)
    return int(value) if isinstance(value, (int, np.integer)) and not isinstance(value, bool) else None


@torch.no_grad()
def _probed_classes(model: nn.Module, device: torch.device) -> int | None:
    """The width of the model's output on one blank 32x32 image (None when that does not give logits)."""
    try:
        out = model(torch.zeros(1, 3, 32, 32, device=device))
    except Exception:  # the checks on real images report what is wrong with such a model
        return None
    return int(out.shape[1]) if isinstance(out, torch.Tensor) and out.ndim == 2 else None


@torch.no_grad()
def check_model_outputs(model: nn.Module, x: torch.Tensor, y: torch.Tensor, num_classes: int, device: Any) -> None:
    """A pre-flight forward pass on a few images (before the model is reseeded): logits of the right shape."""
    if int(y.min()) < 0 or int(y.max()) >= num_classes:
        raise ValueError(f"labels must lie in [0, {num_classes}), got [{int(y.min())}, {int(y.max())}]")
    out = model(x.to(device))
    if not isinstance(out, torch.Tensor):
        raise TypeError(f"the model must return a tensor of logits, got {type(out).__name__}")
    if out.ndim != 2 or out.shape[0] != len(x):
        raise ValueError(f"the model must return logits [B, classes], got shape {tuple(out.shape)} for {len(x)} images")
    if out.shape[1] != num_classes:
        raise ValueError(
            f"the model returns {out.shape[1]} classes but the dataset has {num_classes}: wrong model for this dataset?"
        )
    if not torch.isfinite(out).all():
        raise ValueError("the model returned NaN or infinite logits")
    tol = 1e-5  # AutoAttack's own check_range_output tolerance
    rows_are_probabilities = (out.min() > -tol) & (out.max() < 1 + tol) & ((out.sum(-1) - 1).abs() < tol).all()
    if bool(rows_are_probabilities):
        raise ValueError(
            "the model's outputs look like probabilities (each row in [0, 1] summing to 1): AutoAttack's losses "
            "need logits; remove the final softmax"
        )


def checkpoint_sha256(model: nn.Module) -> tuple[str, str]:
    """``(sha256, source)``: the weights file's hash from ``model.eee_info``, else a hash of the state dict.

    The state-dict hash covers every entry's name, dtype, shape and bytes in sorted order.
    """
    info = getattr(model, "eee_info", None) or {}
    sha = info.get("sha256") if isinstance(info, dict) else None
    if isinstance(sha, str) and re.fullmatch(r"[0-9a-f]{64}", sha):
        return sha, "checkpoint"
    digest = hashlib.sha256()
    for key, value in sorted(model.state_dict().items()):
        t = value.detach().to("cpu").contiguous()
        digest.update(f"{key}|{t.dtype}|{tuple(t.shape)}|".encode())
        if t.numel():
            digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest(), "state_dict"


def model_identity(model: nn.Module, model_name: str | None) -> tuple[str, str, str]:
    """``(name, sha256, sha256 source)``: the name given, else the card's, else the class name."""
    info = getattr(model, "eee_info", None) or {}
    name = model_name or (info.get("name") if isinstance(info, dict) else None) or type(model).__name__
    sha, source = checkpoint_sha256(model)
    return str(name), sha, source


def model_config(model: nn.Module) -> dict[str, Any] | None:
    """The model's JSON-able config (``SelfEnsemble.config``), or None for models without one."""
    try:
        config = model.config  # SelfEnsemble; other models may have none
    except Exception:
        return None
    return json.loads(json.dumps(config)) if isinstance(config, dict) else None


@dataclasses.dataclass(frozen=True)
class PreparedInputs:
    """What an entry point evaluates, and on what: the device, the images and labels with their record, the model's
    name and checkpoint hash."""

    device: torch.device
    x: torch.Tensor
    y: torch.Tensor
    data: dict[str, Any]
    name: str
    sha256: str
    sha256_source: str


def prepare_inputs(
    model: nn.Module,
    dataset: str,
    threat_model: str,
    n_examples: int,
    *,
    device: Any,
    dist_info: Any,
    data_dir: str | os.PathLike | None,
    inputs: tuple[torch.Tensor, torch.Tensor] | None,
    model_name: str | None,
    probe_outputs: bool = True,
) -> PreparedInputs:
    """Move ``model`` to its device, refuse it for another dataset before any data is read, load the images, check
    its outputs on a few of them (``probe_outputs``), and name it: the steps every entry point shares, in one order.

    ``dataset`` and ``threat_model`` are parsed already; ``dist_info`` as in :func:`resolve_device`.
    """
    device = resolve_device(model, device, dist_info)
    model.to(device)
    check_model_matches(model, dataset, threat_model, device, probe=inputs is None)
    x, y, data = load_inputs(dataset, n_examples, data_dir, inputs)
    if probe_outputs:
        check_model_outputs(model, x[:PROBE_IMAGES], y, NUM_CLASSES[dataset], device)
    name, sha, source = model_identity(model, model_name)
    return PreparedInputs(device, x, y, data, name, sha, source)
