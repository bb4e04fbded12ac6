"""CIFAR-10 / CIFAR-100 loaders: the first ``n`` images of a split in canonical order, as RobustBench's do.

``load_cifar10(n_examples=None, data_dir=None, split="test") -> (x, y)`` returns ``x`` float32
``[N, 3, 32, 32]`` in [0, 1] and ``y`` int64; ``load_uint8`` returns the raw ``uint8 [N, 32, 32, 3]`` HWC
arrays for training code that keeps data on the device as bytes.

Sources, tried in order (the first one that holds the split wins; its name is logged):

1. ``<root>/<dataset>/<split>.npz`` with ``x`` uint8 NHWC and ``y`` int64, as written by
   ``python ../shared/data/unpack.py ROOT``; ``root`` is ``data_dir`` or else the environment variable
   ``EEE_ZOO_DATA``. A file may hold a prefix of the split (the first N images), enough for
   requests of at most N images.
2. torchvision's own files under ``root`` (``cifar-10-batches-py`` / ``cifar-100-python``, directly in
   ``root`` or in ``root/<dataset>``), read with ``torchvision.datasets`` and ``download=False``.
3. The slice of the CIFAR-10 test set shipped inside the package (the first 500 images), when it covers
   the request; a warning says so.
4. torchvision's download into ``root`` (or ``$XDG_CACHE_HOME/eee_zoo/data``), reused on later calls; never
   attempted when ``EEE_ZOO_OFFLINE=1`` or ``HF_HUB_OFFLINE=1`` is set.

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

__all__ = [
    "DATASETS", "ENV_VAR", "SHIPPED_SLICE", "DataSpec", "load_cifar10", "load_cifar100", "load_dataset",
    "load_uint8", "sha256_array",
]  # fmt: skip

logger = logging.getLogger(__name__)  # a child of the "eee_zoo" logger

ENV_VAR = "EEE_ZOO_DATA"
OFFLINE_ENV_VARS = ("EEE_ZOO_OFFLINE", "HF_HUB_OFFLINE")  # either one set to 1: never download
SPLITS = ("train", "test")
IMAGE_SHAPE = (32, 32, 3)


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
        num_classes=10,
        sizes={"train": 50000, "test": 10000},
        sha256_x={
            "train": "47af8b02cfcfb6cdf3dbbd1969ad7f1b70f4413f6f80f437b020ee4e5bc8304a",
            "test": "f9b1e2130bab680db56eb06d886f7f1ad0f1183907ceff4659d1735c890f5b04",
        },
        torchvision_class="CIFAR10",
        torchvision_folder="cifar-10-batches-py",
    ),
    "cifar100": DataSpec(
        name="cifar100",
        num_classes=100,
        sizes={"train": 50000, "test": 10000},
        sha256_x={
            "train": "4e457917601a66aed021f5fa37957b56c6319557c0a8ed5484de3c390af45430",
            "test": "4cb8e5d9309da489bf6b19cc10cd96c3ae6f8daf225380b605aaee4c0d6aee19",
        },
        torchvision_class="CIFAR100",
        torchvision_folder="cifar-100-python",
    ),
}

# The first 500 CIFAR-10 test images, shipped so that examples run on a fresh offline machine
# (regenerate with `python training/make_shipped_slice.py`).
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
    root = _root(data_dir)

    if root is not None:
        npz = root / spec.name / f"{split}.npz"
        if npz.is_file():
            x, y = _read_npz(npz)
            return _finish(spec, split, x, y, wanted, source=f"npz file {npz}")
        tv_root = _torchvision_root(root, spec)
        if tv_root is not None:
            x, y = _read_torchvision(spec, split, tv_root, download=False)
            return _finish(spec, split, x, y, wanted, source=f"torchvision files under {tv_root}")

    if spec.name == SHIPPED_SLICE_SPEC[0] and split == SHIPPED_SLICE_SPEC[1] and wanted <= SHIPPED_SLICE_SPEC[2]:
        x, y = _read_shipped_slice()
        logger.warning(
            "using the first %d CIFAR-10 test images shipped with eee_zoo (%s); pass data_dir or set %s "
            "for the full dataset",
            SHIPPED_SLICE_SPEC[2],
            SHIPPED_SLICE.name,
            ENV_VAR,
        )
        return _finish(spec, split, x, y, wanted, source=f"shipped slice {SHIPPED_SLICE}", verified=True)

    download_root = root if root is not None else _cache_dir()
    tv_root = _torchvision_root(download_root, spec)
    if tv_root is not None:  # an earlier download into the cache
        x, y = _read_torchvision(spec, split, tv_root, download=False)
        return _finish(spec, split, x, y, wanted, source=f"torchvision files under {tv_root}")
    tried = (
        f"{root / spec.name / f'{split}.npz'}, torchvision files under {root}"
        if root is not None
        else f"no data_dir given and {ENV_VAR} unset"
    )
    advice = f"Decode the shared packs (`python ../shared/data/unpack.py DIR`); pass data_dir=DIR or set {ENV_VAR}=DIR."
    slice_note = f"the shipped slice (first {SHIPPED_SLICE_SPEC[2]} CIFAR-10 test images only)"
    offline = [v for v in OFFLINE_ENV_VARS if os.environ.get(v, "").strip().lower() in ("1", "true", "yes", "on")]
    if offline:
        raise FileNotFoundError(
            f"cannot load {spec.name}/{split}: tried {tried} and {slice_note}; downloads are off "
            f"({offline[0]} is set). {advice}"
        )
    logger.info("no local copy of %s/%s found; downloading with torchvision into %s", spec.name, split, download_root)
    try:
        x, y = _read_torchvision(spec, split, download_root, download=True)
    except Exception as e:  # offline machines end here: say what would have worked
        raise FileNotFoundError(
            f"cannot load {spec.name}/{split}: tried {tried}, {slice_note}, and torchvision's download into "
            f"{download_root}, which failed: {type(e).__name__}: {e}. " + advice
        ) from e
    return _finish(spec, split, x, y, wanted, source=f"torchvision download into {download_root}")


# ------------------------------------------------------------------------------------------- sources
def _spec(dataset: str) -> DataSpec:
    name = getattr(dataset, "value", dataset)  # accept string Enums (RobustBench's BenchmarkDataset)
    if not isinstance(name, str) or name.lower() not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; choose one of {sorted(DATASETS)}")
    return DATASETS[name.lower()]


def _split(split: str) -> str:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {list(SPLITS)}")
    return split


def _root(data_dir: str | os.PathLike | None) -> Path | None:
    if data_dir is not None:
        return Path(data_dir).expanduser()
    env = os.environ.get(ENV_VAR)
    return Path(env).expanduser() if env else None


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
            f"{where}: holds only the first {n} images; {wanted} were requested "
            f"(re-create it with `python ../shared/data/unpack.py DIR`)"
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
                f"expected {want}); results on this data are not comparable. Re-create the file with "
                "`python ../shared/data/unpack.py DIR`."
            )
        logger.info("loaded %s (%d images, sha256 verified)", where, n)
    else:
        check = "sha256 of the slice verified" if verified else "a prefix: the split's sha256 cannot be checked"
        logger.info("loaded %s (first %d of %d images held; %s)", where, n, full, check)
    if wanted < n:
        x, y = x[:wanted], y[:wanted]
    return np.ascontiguousarray(x), np.ascontiguousarray(y)
