"""Shared fixtures: tiny real models sized for the 2-core CPU."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from tiny_model import TINY_CONFIG  # noqa: F401  (re-exported for `from conftest import`)

from eee_zoo.models import SelfEnsemble

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
# AutoAttack standard cut down to seconds on tiny models (the attacks and their order are unchanged)
FAST_STANDARD = {
    "apgd.n_iter": 4,
    "apgd_targeted.n_iter": 4,
    "apgd_targeted.n_target_classes": 2,
    "fab.n_iter": 4,
    "fab.n_target_classes": 2,
    "square.n_queries": 30,
}


def adaptive_counts(result) -> dict:
    """An adaptive result without its timings (which differ between runs of the same configuration)."""
    d = result.to_dict()
    for key in ("wall_time_s", "created"):
        d.pop(key)
    for column in (d["clean"], d["robust"], *d["per_attack"]):
        column.pop("seconds")
    return d


N_TRAIN_PREFIX = 512  # training images decoded for the tests (the tiny recipe uses 256)


@pytest.fixture(autouse=True)
def _offline_and_quiet(monkeypatch: pytest.MonkeyPatch) -> None:
    # Tests never touch the network: the Hub is reached only through its offline cache.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")


@pytest.fixture
def tiny_config() -> dict:
    import copy

    return copy.deepcopy(TINY_CONFIG)


@pytest.fixture
def tiny_model(tiny_config: dict) -> SelfEnsemble:
    torch.manual_seed(0)  # weight init only; inference randomness comes from the model's own generator
    return SelfEnsemble.from_config(tiny_config).eval()


@pytest.fixture(scope="session")
def shared_data_dir() -> Path:
    if not (SHARED_DATA / "cifar10" / "test.webp.npz").exists():
        pytest.skip(f"shared CIFAR packs not found at {SHARED_DATA}")
    return SHARED_DATA


def make_cifar_dir(root: Path, shared_data: Path) -> Path:
    """``root/cifar10/test.npz`` (the full split, by the shared unpack.py) + ``train.npz`` (its first 512 images).

    Made once per session (about 5 s); later calls find it.
    """
    from training.make_shipped_slice import decode_pack

    test = root / "cifar10" / "test.npz"
    if not test.exists():
        cmd = [sys.executable, str(shared_data / "unpack.py"), str(root), "--only", "cifar10", "--split", "test"]
        subprocess.run(cmd, check=True, capture_output=True, timeout=300)
    train = root / "cifar10" / "train.npz"
    if not train.exists():
        x, y = decode_pack(shared_data / "cifar10" / "train.webp.npz", N_TRAIN_PREFIX)
        np.savez(train, x=x, y=y)
    return root


@pytest.fixture(scope="session")
def cifar_npz_dir(tmp_path_factory: pytest.TempPathFactory, shared_data_dir: Path) -> Path:
    """The session's decoded CIFAR-10 folder in the npz layout (see :func:`make_cifar_dir`)."""
    return make_cifar_dir(tmp_path_factory.getbasetemp() / "cifar_npz", shared_data_dir)


def pytest_configure(config: pytest.Config) -> None:
    # Tests use tiny tensors: one intra-op thread avoids thread start-up overhead, and more threads than the
    # 2 shared cores make small convolutions 10-30x slower. Subprocess tests pass --threads to match.
    torch.set_num_threads(1)
