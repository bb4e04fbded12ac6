"""CIFAR-10 / CIFAR-100 loaders: the first ``n`` images of a split in canonical order, as RobustBench's do.

``load_cifar10(n_examples=None, data_dir=None, split="test") -> (x, y)`` returns ``x`` float32
``[N, 3, 32, 32]`` in [0, 1] and ``y`` int64; ``load_uint8`` returns the raw ``uint8 [N, 32, 32, 3]`` HWC
arrays for training code that keeps data on the device as bytes.

Sources, tried in order (the first one that holds the split wins; its name is logged):

1. ``<root>/<dataset>/<split>.npz`` with ``x`` uint8 NHWC ``[N, 32, 32, 3]`` and ``y`` int64 ``[N]``; ``root`` is
   ``data_dir`` or else the environment variable ``EEE_ZOO_DATA``. A file may hold a prefix of the split (the
   first N images), enough for requests of at most N images.
2. torchvision's own files under ``root`` (``cifar-10-batches-py`` / ``cifar-100-python``, directly in
   ``root`` or in ``root/<dataset>``), read with ``torchvision.datasets`` and ``download=False``.
3. The slice of the CIFAR-10 test set shipped inside the package (the first 500 images), when it covers
   the request and no ``root`` was given; a warning says so.
4. torchvision's download into ``root`` (or ``$XDG_CACHE_HOME/eee_zoo/data`` when no ``root`` was given), reused
   on later calls; never attempted when ``EEE_ZOO_OFFLINE=1`` or ``HF_HUB_OFFLINE=1`` is set.

A ``root`` the caller gave (``data_dir`` or ``EEE_ZOO_DATA``) is never passed over: a folder that does not exist
is an error naming it, and one that does not hold the split (and cannot receive torchvision's download) is an
error naming what was expected there, not a silent fall-back to the shipped slice.

Every array is checked (dtype, shape, label range; class counts for a full split) and, whenever a whole
split is in memory, its SHA-256 is compared with the canonical one: a mismatch raises ``ValueError``.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .datasets import IMAGE_SHAPE as _IMAGE_CHW
from .datasets import NUM_CLASSES, SPLIT_SIZES, SPLITS, parse_dataset

__all__ = [
    "DATASETS", "ENV_VAR", "SHIPPED_SLICE", "DataSpec", "load_cifar10", "load_cifar100", "load_dataset",
    "load_uint8", "sha256_array",
]  # fmt: skip

logger = logging.getLogger(__name__)  # a child of the "eee_zoo" logger

ENV_VAR = "EEE_ZOO_DATA"
OFFLINE_ENV_VARS = ("EEE_ZOO_OFFLINE", "HF_HUB_OFFLINE")  # either one set to 1: never download
IMAGE_SHAPE = (*_IMAGE_CHW[1:], _IMAGE_CHW[0])  # the arrays are stored HWC


@dataclass(frozen=True)
class DataSpec:
    """What is known about one dataset: sizes, classes, canonical hashes and torchvision's names."""

    name: str
    num_classes: int
    sizes: dict[str, int]
    sha256_x: dict[str, str]
    torchvision_class: str
    torchvision_folder: str


DATASETS: dict[str, DataSpec] = {
    "cifar10": DataSpec(
        name="cifar10",
        num_classes=NUM_CLASSES["cifar10"],
        sizes=dict(SPLIT_SIZES["cifar10"]),
        sha256_x={
            "train": "47af8b02cfcfb6cdf3dbbd1969ad7f1b70f4413f6f80f437b020ee4e5bc8304a",
            "test": "f9b1e2130bab680db56eb06d886f7f1ad0f1183907ceff4659d1735c890f5b04",
        },
        torchvision_class="CIFAR10",
        torchvision_folder="cifar-10-batches-py",
    ),
    "cifar100": DataSpec(
        name="cifar100",
        num_classes=NUM_CLASSES["cifar100"],
        sizes=dict(SPLIT_SIZES["cifar100"]),
        sha256_x={
            "train": "4e457917601a66aed021f5fa37957b56c6319557c0a8ed5484de3c390af45430",
            "test": "4cb8e5d9309da489bf6b19cc10cd96c3ae6f8daf225380b605aaee4c0d6aee19",
        },
        torchvision_class="CIFAR100",
        torchvision_folder="cifar-100-python",
    ),
}

# The first 500 CIFAR-10 test images, shipped so that examples run on a fresh offline machine
# (regenerate with `python -m training.make_shipped_slice`).
SHIPPED_SLICE = Path(__file__).resolve().parent / "_data" / "cifar10_test_first500.npz"
SHIPPED_SLICE_SPEC = ("cifar10", "test", 500, "8f2427926825821b6e0de483aa537ca1419ff2a5b82cc5e436d5dfc50e85cc7a")


def sha256_array(x: np.ndarray) -> str:
    """SHA-256 of ``x.tobytes()`` (C order), the hash the data README lists for each split."""
    return hashlib.sha256(np.ascontiguousarray(x).tobytes()).hexdigest()


# ------------------------------------------------------------------------------------------- public API
def load_cifar10(
    n_examples: int | None = None, data_dir: str | os.PathLike | None = None, split: str = "test"
) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``n_examples`` CIFAR-10 images of ``split``: ``x`` float32 ``[N, 3, 32, 32]`` in [0, 1], ``y`` int64.

    Sources and checks: see the module docstring (``data_dir`` or ``$EEE_ZOO_DATA``, torchvision files, the
    shipped slice of the first 500 test images, torchvision download).
    """
    return load_dataset("cifar10", n_examples=n_examples, data_dir=data_dir, split=split)


def load_cifar100(
    n_examples: int | None = None, data_dir: str | os.PathLike | None = None, split: str = "test"
) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``n_examples`` CIFAR-100 images (fine labels) of ``split``, like :func:`load_cifar10`."""
    return load_dataset("cifar100", n_examples=n_examples, data_dir=data_dir, split=split)


def load_dataset(
    dataset: str, n_examples: int | None = None, data_dir: str | os.PathLike | None = None, split: str = "test"
) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``n_examples`` images of ``dataset``/``split`` as float32 ``[N, 3, 32, 32]`` in [0, 1] + int64 labels.

    ``dataset`` is ``"cifar10"`` or ``"cifar100"`` (a string Enum such as RobustBench's ``BenchmarkDataset``
    works too). Sources and checks: see the module docstring.
    """
    x, y = load_uint8(dataset, split, data_dir=data_dir, n_examples=n_examples)
    images = torch.from_numpy(x).permute(0, 3, 1, 2).to(torch.float32).div_(255.0).contiguous()
    return images, torch.from_numpy(y)


def load_uint8(
    dataset: str, split: str, data_dir: str | os.PathLike | None = None, *, n_examples: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The raw arrays of ``dataset``/``split``: ``x`` uint8 ``[N, 32, 32, 3]`` (HWC, RGB) and ``y`` int64 ``[N]``.

    Without ``n_examples`` the whole split is returned (and its SHA-256 checked); with it, the first
    ``n_examples`` images in canonical order.
    """
    spec = _spec(dataset)
    split = _split(split)
    full = spec.sizes[split]
    if n_examples is not None:
        if isinstance(n_examples, bool) or not isinstance(n_examples, (int, np.integer)) or n_examples < 1:
            raise ValueError(f"n_examples must be a positive int or None, got {n_examples!r}")
        if n_examples > full:
            raise ValueError(f"n_examples={n_examples} exceeds the {full} images of {spec.name}/{split}")
    wanted = full if n_examples is None else int(n_examples)
    root, given = _root(data_dir)
    offline = [v for v in OFFLINE_ENV_VARS if os.environ.get(v, "").strip().lower() in ("1", "true", "yes", "on")]

    if root is not None:  # the caller's folder: the data comes from there (or is downloaded there), nowhere else
        if not root.is_dir():
            problem = "does not exist" if not root.exists() else "is not a folder"
            raise FileNotFoundError(
                f"cannot load {spec.name}/{split}: {given} {problem}; expected {_expected(spec, split, root)} "
                "there. " + _advice(offline, given=True)
            )
        npz = root / spec.name / f"{split}.npz"
        if npz.is_file():
            x, y = _read_npz(npz)
            return _finish(spec, split, x, y, wanted, source=f"npz file {npz}")
        tv_root = _torchvision_root(root, spec)
        if tv_root is not None:
            x, y = _read_torchvision(spec, split, tv_root, download=False)
            return _finish(spec, split, x, y, wanted, source=f"torchvision files under {tv_root}")
        tried = f"{given} holds neither {_expected(spec, split, root, 'nor')}"
        if offline:
            raise FileNotFoundError(
                f"cannot load {spec.name}/{split}: {tried}, and torchvision's download into it is off "
                f"({offline[0]} is set). " + _advice(offline, given=True)
            )
        return _download(spec, split, wanted, root, tried=tried, given=True)

    if spec.name == SHIPPED_SLICE_SPEC[0] and split == SHIPPED_SLICE_SPEC[1] and wanted <= SHIPPED_SLICE_SPEC[2]:
        x, y = _read_shipped_slice()
        logger.warning(
            "using the first %d CIFAR-10 test images shipped with eee_zoo (%s); for the full dataset point "
            "data_dir / --data-dir or %s at it",
            SHIPPED_SLICE_SPEC[2],
            SHIPPED_SLICE.name,
            ENV_VAR,
        )
        return _finish(spec, split, x, y, wanted, source=f"shipped slice {SHIPPED_SLICE}", verified=True)

    cache = _cache_dir()
    tv_root = _torchvision_root(cache, spec)
    if tv_root is not None:  # an earlier download into the cache
        x, y = _read_torchvision(spec, split, tv_root, download=False)
        return _finish(spec, split, x, y, wanted, source=f"torchvision files under {tv_root}")
    tried = (
        f"no data_dir given and {ENV_VAR} unset; the shipped slice holds only the first {SHIPPED_SLICE_SPEC[2]} "
        "CIFAR-10 test images"
    )
    if offline:
        raise FileNotFoundError(
            f"cannot load {spec.name}/{split}: {tried}, and torchvision's download is off ({offline[0]} is set). "
            + _advice(offline, given=False)
        )
    return _download(spec, split, wanted, cache, tried=tried, given=False)


def _download(
    spec: DataSpec, split: str, wanted: int, root: Path, *, tried: str, given: bool
) -> tuple[np.ndarray, np.ndarray]:
    logger.info("no local copy of %s/%s found; downloading with torchvision into %s", spec.name, split, root)
    try:
        x, y = _read_torchvision(spec, split, root, download=True)
    except Exception as e:  # offline machines end here: say what would have worked
        raise FileNotFoundError(
            f"cannot load {spec.name}/{split}: {tried}, and torchvision's download into {root} failed "
            f"({type(e).__name__}: {e}). " + _advice([], given=given)
        ) from e
    return _finish(spec, split, x, y, wanted, source=f"torchvision download into {root}")


def _expected(spec: DataSpec, split: str, root: Path, conjunction: str = "or") -> str:
    """What a data folder must hold for ``spec``/``split``, in words (for error messages)."""
    return (
        f"{root / spec.name / f'{split}.npz'} (arrays x uint8 [N, 32, 32, 3] and y int64 [N]) {conjunction} "
        f"torchvision's {spec.torchvision_folder} folder in {root} or {root / spec.name}"
    )


def _advice(offline: list[str], *, given: bool) -> str:
    """What a user can do about missing data (never a path of the development checkout: users do not have it)."""
    if offline:
        download = f"allow torchvision's download (unset {' and '.join(offline)})"
    else:
        download = "check the connection for torchvision's download"
    if given:
        return (
            f"To fix: correct the path, {download} into an existing folder, or give no data folder (the "
            "package's first 500 CIFAR-10 test images, else a download into the cache)."
        )
    return (
        f"To fix: {download}, or point data_dir / --data-dir or {ENV_VAR} at a folder holding "
        "<dataset>/<split>.npz arrays (x uint8 [N, 32, 32, 3], y int64 [N]) or torchvision's CIFAR files."
    )


# ------------------------------------------------------------------------------------------- sources
def _spec(dataset: str) -> DataSpec:
    return DATASETS[parse_dataset(dataset)]  # string Enums too (RobustBench's BenchmarkDataset)


def _split(split: str) -> str:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {list(SPLITS)}")
    return split


def _root(data_dir: str | os.PathLike | None) -> tuple[Path | None, str]:
    """The caller's data folder and how it was given (``data_dir /x`` or ``EEE_ZOO_DATA=/x``); ``(None, "")``: none."""
    if data_dir is not None:
        root = Path(data_dir).expanduser()
        return root, f"data_dir {root}"
    env = os.environ.get(ENV_VAR)
    return (Path(env).expanduser(), f"{ENV_VAR}={env}") if env else (None, "")


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "eee_zoo" / "data"


def _torchvision_root(root: Path, spec: DataSpec) -> Path | None:
    for candidate in (root, root / spec.name):
        if (candidate / spec.torchvision_folder).is_dir():
            return candidate
    return None


def _read_npz(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as d:
            missing = {"x", "y"} - set(d.files)
            if missing:
                raise ValueError(f"{path}: missing arrays {sorted(missing)} (has {d.files})")
            return d["x"], d["y"]
    except (OSError, ValueError) as e:
        if str(path) in str(e):
            raise
        raise ValueError(f"{path}: cannot read as a numpy .npz file: {e}") from e


def _read_torchvision(spec: DataSpec, split: str, root: Path, *, download: bool) -> tuple[np.ndarray, np.ndarray]:
    import torchvision.datasets

    cls = getattr(torchvision.datasets, spec.torchvision_class)
    ds = cls(str(root), train=split == "train", download=download)
    return np.asarray(ds.data), np.asarray(ds.targets, dtype=np.int64)


def _read_shipped_slice() -> tuple[np.ndarray, np.ndarray]:
    if not SHIPPED_SLICE.is_file():
        raise FileNotFoundError(f"the shipped CIFAR-10 slice {SHIPPED_SLICE} is missing from this installation")
    x, y = _read_npz(SHIPPED_SLICE)
    got = sha256_array(x)
    if got != SHIPPED_SLICE_SPEC[3]:
        raise ValueError(f"{SHIPPED_SLICE}: images differ from the canonical slice (sha256 {got})")
    return x, y


# ------------------------------------------------------------------------------------------- checks
def _finish(
    spec: DataSpec, split: str, x: np.ndarray, y: np.ndarray, wanted: int, *, source: str, verified: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Validate what a source returned and cut the first ``wanted`` images.

    ``verified``: the caller already checked a hash of this prefix (the shipped slice).
    """
    where = f"{spec.name}/{split} from {source}"
    if not isinstance(x, np.ndarray) or x.dtype != np.uint8:
        raise ValueError(f"{where}: x must be a uint8 array, got {getattr(x, 'dtype', type(x).__name__)}")
    if x.ndim != 4 or x.shape[1:] != IMAGE_SHAPE:
        raise ValueError(f"{where}: x must have shape [N, 32, 32, 3] (HWC), got {x.shape}")
    if not isinstance(y, np.ndarray) or y.dtype.kind not in "iu":
        raise ValueError(f"{where}: y must be an integer array, got {getattr(y, 'dtype', type(y).__name__)}")
    if y.shape != (x.shape[0],):
        raise ValueError(f"{where}: y has shape {y.shape} but x holds {x.shape[0]} images")
    full = spec.sizes[split]
    n = x.shape[0]
    if n > full:
        raise ValueError(f"{where}: holds {n} images, more than the {full} of the split")
    if n < wanted:
        raise ValueError(
            f"{where}: holds only the first {n} images; {wanted} were requested (replace it with a file holding at "
            "least that many, or ask for fewer)"
        )
    y = y.astype(np.int64, copy=False)
    if n and (y.min() < 0 or y.max() >= spec.num_classes):
        raise ValueError(f"{where}: labels must lie in [0, {spec.num_classes}), got [{y.min()}, {y.max()}]")
    if n == full:
        counts = np.bincount(y, minlength=spec.num_classes)
        if counts.min() != counts.max():
            raise ValueError(
                f"{where}: class counts differ from the balanced split (min {counts.min()}, max {counts.max()})"
            )
        got = sha256_array(x)
        want = spec.sha256_x[split]
        if got != want:
            raise ValueError(
                f"{where}: the images differ from canonical {spec.name}/{split} (sha256 of x.tobytes() is {got}, "
                f"expected {want}); results on this data are not comparable. Replace it with the canonical split "
                "(torchvision's files, or arrays decoded from them)."
            )
        logger.info("loaded %s (%d images, sha256 verified)", where, n)
    else:
        check = "sha256 of the slice verified" if verified else "a prefix: the split's sha256 cannot be checked"
        logger.info("loaded %s (first %d of %d images held; %s)", where, n, full, check)
    if wanted < n:
        x, y = x[:wanted], y[:wanted]
    return np.ascontiguousarray(x), np.ascontiguousarray(y)
