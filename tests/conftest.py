"""Shared fixtures: tiny real models sized for the 2-core CPU."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from benchmarks.perf.tiny_model import TINY_CONFIG  # noqa: F401  (re-exported for `from conftest import`)
from eee_zoo.models import SelfEnsemble

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


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


def pytest_configure(config: pytest.Config) -> None:
    # Tests use tiny tensors: one intra-op thread avoids thread start-up overhead, and more threads than the
    # 2 shared cores make small convolutions 10-30x slower. Subprocess tests pass --threads to match.
    torch.set_num_threads(1)
