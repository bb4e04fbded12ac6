"""CIFAR loaders: sources in order, canonical order and hashes, validation, the shipped slice."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from enum import Enum
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import N_TRAIN_PREFIX

from eee_zoo import load_cifar10, load_cifar100
from eee_zoo.data import DATASETS, ENV_VAR, SHIPPED_SLICE, load_dataset, load_uint8, sha256_array

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # training/ is a repository folder, not an installed package
    sys.path.insert(0, str(REPO_ROOT))

FIRST_TEN_CIFAR10_TEST = [3, 8, 8, 0, 6, 6, 1, 6, 3, 1]
FIRST_TEN_CIFAR100_TEST = [49, 33, 72, 51, 71, 92, 15, 14, 23, 0]


@pytest.fixture
def no_env_data(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)


# ------------------------------------------------------------------------------------------- shipped slice
def test_shipped_slice_serves_small_requests_offline(no_env_data, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="eee_zoo"):
        x, y = load_cifar10(10)
    assert x.shape == (10, 3, 32, 32) and x.dtype == torch.float32
    assert y.dtype == torch.int64 and y.tolist() == FIRST_TEN_CIFAR10_TEST
    assert 0.0 <= x.min() and x.max() <= 1.0
    assert any("shipped" in r.message and r.levelno == logging.WARNING for r in caplog.records)
    assert SHIPPED_SLICE.stat().st_size < 2_000_000


def test_shipped_slice_does_not_cover_more_than_it_holds(
    no_env_data, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 501 images are not in the slice; with no data folder and an empty cache only the download is left, which
    # offline mode forbids; the message says what a user can do (no path of the development checkout)
    assert os.environ["HF_HUB_OFFLINE"] == "1"  # set for every test by conftest
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    with pytest.raises(FileNotFoundError, match=r"download is off.*<dataset>/<split>\.npz") as err:
        load_cifar10(501)
    assert "../shared" not in str(err.value)
    assert not (tmp_path / "cache").exists()  # nothing was fetched or created


def test_shipped_slice_matches_canonical_test_set(cifar_npz_dir: Path) -> None:
    with np.load(SHIPPED_SLICE) as d:
        x_slice, y_slice = d["x"], d["y"]
    x, y = load_uint8("cifar10", "test", cifar_npz_dir)
    assert x_slice.dtype == np.uint8 and y_slice.dtype == np.int64
    assert np.array_equal(x_slice, x[:500]) and np.array_equal(y_slice, y[:500])


# ------------------------------------------------------------------------------------------- npz folder
def test_npz_dir_full_split_is_hash_checked(cifar_npz_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="eee_zoo"):
        x, y = load_cifar10(data_dir=cifar_npz_dir)
    assert x.shape == (10000, 3, 32, 32) and x.dtype == torch.float32 and y.shape == (10000,)
    assert y[:10].tolist() == FIRST_TEN_CIFAR10_TEST
    assert torch.bincount(y).tolist() == [1000] * 10
    assert any("sha256 verified" in r.message and "npz file" in r.message for r in caplog.records)
    raw, _ = load_uint8("cifar10", "test", cifar_npz_dir)
    assert sha256_array(raw) == DATASETS["cifar10"].sha256_x["test"]
    assert torch.equal(x, torch.from_numpy(raw).permute(0, 3, 1, 2).float() / 255)  # exact, HWC -> CHW


def test_first_n_in_canonical_order_and_env_var(cifar_npz_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    x_all, y_all = load_cifar10(data_dir=cifar_npz_dir)
    x, y = load_cifar10(7, data_dir=cifar_npz_dir)
    assert torch.equal(x, x_all[:7]) and torch.equal(y, y_all[:7])
    monkeypatch.setenv(ENV_VAR, str(cifar_npz_dir))
    x_env, y_env = load_dataset("cifar10", 600)  # beyond the shipped slice: must come from the folder
    assert torch.equal(x_env, x_all[:600]) and torch.equal(y_env, y_all[:600])

    class Dataset(Enum):  # RobustBench passes a string Enum
        cifar_10 = "cifar10"

    assert torch.equal(load_dataset(Dataset.cifar_10, 3)[0], x_all[:3])


def test_prefix_file_serves_prefix_requests_only(cifar_npz_dir: Path) -> None:
    x, y = load_uint8("cifar10", "train", cifar_npz_dir, n_examples=100)
    assert x.shape == (100, 32, 32, 3) and x.dtype == np.uint8 and y.dtype == np.int64
    with pytest.raises(ValueError, match=f"holds only the first {N_TRAIN_PREFIX} images"):
        load_uint8("cifar10", "train", cifar_npz_dir)


def test_altered_data_fails_the_hash_check(cifar_npz_dir: Path, tmp_path: Path) -> None:
    x, y = load_uint8("cifar10", "test", cifar_npz_dir)
    x = x.copy()
    x[1234, 5, 6, 0] ^= 1  # one bit of one pixel
    (tmp_path / "cifar10").mkdir()
    np.savez(tmp_path / "cifar10" / "test.npz", x=x, y=y)
    with pytest.raises(ValueError, match="differ from canonical cifar10/test"):
        load_cifar10(data_dir=tmp_path)
    with pytest.raises(ValueError, match="sha256"):
        load_cifar10(5, data_dir=tmp_path)  # the whole split is in memory, so it is checked even for 5 images


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda x, y: (x.astype(np.float32), y), "uint8"),
        (lambda x, y: (np.ascontiguousarray(x.transpose(0, 3, 1, 2)), y), r"\[N, 32, 32, 3\]"),
        (lambda x, y: (x, y[:-1]), "y has shape"),
        (lambda x, y: (x, np.where(np.arange(len(y)) == 3, 10, y)), r"labels must lie in \[0, 10\)"),
        (lambda x, y: (x, y.astype(np.float64)), "integer"),
    ],
)
def test_malformed_arrays_are_rejected(tmp_path: Path, change, message: str) -> None:
    with np.load(SHIPPED_SLICE) as d:
        x, y = change(d["x"][:50], d["y"][:50])
    (tmp_path / "cifar10").mkdir()
    np.savez(tmp_path / "cifar10" / "test.npz", x=x, y=y)
    with pytest.raises(ValueError, match=message):
        load_cifar10(10, data_dir=tmp_path)


def test_missing_array_and_bad_arguments(tmp_path: Path) -> None:
    (tmp_path / "cifar10").mkdir()
    np.savez(tmp_path / "cifar10" / "test.npz", images=np.zeros((2, 32, 32, 3), np.uint8))
    with pytest.raises(ValueError, match="missing arrays"):
        load_cifar10(1, data_dir=tmp_path)
    with pytest.raises(ValueError, match=r"unknown dataset 'mnist'; choose one of \['cifar10', 'cifar100'\]"):
        load_dataset("mnist", 1)
    assert torch.equal(load_dataset("CIFAR-10", 2)[0], load_dataset("cifar10", 2)[0])  # eee_zoo.datasets' parser
    with pytest.raises(ValueError, match="unknown split"):
        load_cifar10(1, split="val")
    for bad in (0, -3, True, 2.5):
        with pytest.raises(ValueError, match="n_examples"):
            load_cifar10(bad)
    with pytest.raises(ValueError, match="exceeds"):
        load_cifar10(10001)


# ------------------------------------------------------------------------------------------- torchvision files
@pytest.mark.slow
def test_torchvision_files_are_a_source(shared_data_dir: Path, tmp_path: Path, no_env_data) -> None:
    """torchvision's own CIFAR-100 files (rebuilt byte for byte by the shared script; ~30 s)."""
    subprocess.run(
        [sys.executable, str(shared_data_dir / "make_torchvision_cifar100.py"), str(tmp_path)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    x, y = load_cifar100(10, data_dir=tmp_path)
    assert x.shape == (10, 3, 32, 32) and y.tolist() == FIRST_TEN_CIFAR100_TEST
    raw, labels = load_uint8("cifar100", "test", tmp_path)  # the full split: hash-checked
    assert sha256_array(raw) == DATASETS["cifar100"].sha256_x["test"]
    assert np.bincount(labels).tolist() == [100] * 100
    shutil.rmtree(tmp_path / "cifar-100-python")
