"""Finding weights through the real ``hf_hub_download`` (offline, against a real cache layout), export, push checks."""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
from pathlib import Path

import pytest
import torch

from eee_zoo._io import sha256_file
from eee_zoo.cards import load_card, set_revision
from eee_zoo.hub import (
    WeightsChecksumError,
    WeightsNotFoundError,
    export,
    push,
    resolve_weights,
    verify_folder,
    verify_sha256,
)
from eee_zoo.loading import load_model
from eee_zoo.registry import card_folder

COMMIT = "0123456789abcdef0123456789abcdef01234567"
OTHER_COMMIT = "fedcba9876543210fedcba9876543210fedcba98"
X = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))


def build_hub_cache(cache: Path, repo_id: str, folder: Path, commit: str, ref: str = "main") -> Path:
    """Lay out ``folder``'s files exactly as huggingface_hub caches a download of ``repo_id`` at ``commit``.

    ``<cache>/models--<org>--<name>/blobs/<sha256 for LFS files, git blob sha1 otherwise>``,
    ``refs/<ref>`` holding the commit (no newline), ``snapshots/<commit>/<file>`` symlinked to the blob.
    """
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (repo / "blobs").mkdir(exist_ok=True)
    for src in folder.iterdir():
        data = src.read_bytes()
        if src.suffix == ".safetensors":  # stored with Git LFS: the etag is the sha256
            etag = hashlib.sha256(data).hexdigest()
        else:  # a regular git file: the etag is the git blob id
            etag = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
        blob = repo / "blobs" / etag
        blob.write_bytes(data)
        (snapshot / src.name).symlink_to(os.path.relpath(blob, snapshot))
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / ref).write_text(commit)
    return repo


@pytest.fixture
def hub_zoo(tmp_path: Path, tiny_model, monkeypatch: pytest.MonkeyPatch) -> dict:
    """A checkpoint whose card is in the registry without weights; the weights are only in a Hub cache."""
    exported = export(tiny_model, "Tiny", tmp_path / "export" / "Tiny")
    cards = tmp_path / "cards"
    folder = card_folder("Tiny", cards_dir=cards)
    folder.mkdir(parents=True)
    shutil.copy(exported / "README.md", folder / "README.md")
    set_revision(folder, COMMIT)  # pinned, as after `eee-zoo push`
    cache = tmp_path / "hf-cache"
    repo = build_hub_cache(cache, load_card(folder).repo_id, exported, COMMIT)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    return {"cards": cards, "cache": cache, "repo": repo, "folder": folder, "export": exported}


def same_logits(a, b, seed: int = 1) -> bool:
    a.manual_seed(seed)
    b.manual_seed(seed)
    with torch.no_grad():
        return torch.equal(a(X), b(X))


# ---------------------------------------------------------------------------------------------- hub cache
def test_pinned_revision_loads_from_the_offline_cache(hub_zoo: dict, tiny_model) -> None:
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    model = load_model("Tiny", cards_dir=hub_zoo["cards"])
    info = model.eee_info
    assert info["weights_source"] == "hub" and info["revision"] == COMMIT
    assert Path(info["weights_path"]) == hub_zoo["repo"] / "snapshots" / COMMIT / "model.safetensors"
    assert same_logits(model, tiny_model)


def test_branch_revision_resolves_through_refs(hub_zoo: dict, tiny_model) -> None:
    set_revision(hub_zoo["folder"], "main")
    model = load_model("Tiny", cards_dir=hub_zoo["cards"])
    assert model.eee_info["revision"] == "main"
    assert Path(model.eee_info["weights_path"]).parent.name == COMMIT
    assert same_logits(model, tiny_model)


def test_explicit_cache_dir(hub_zoo: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_HUB_CACHE")
    card = load_card(hub_zoo["folder"])
    path, source = resolve_weights(card, cache_dir=hub_zoo["cache"])
    assert source == "hub" and path.is_relative_to(hub_zoo["cache"])


def test_revision_missing_from_the_cache_says_where_it_looked(hub_zoo: dict, tmp_path: Path) -> None:
    with pytest.raises(WeightsNotFoundError) as err:
        load_model("Tiny", cards_dir=hub_zoo["cards"], revision=OTHER_COMMIT, model_dir=tmp_path / "models")
    message = str(err.value)
    assert str(tmp_path / "models" / "cifar10" / "Linf" / "Tiny.safetensors") in message  # model_dir
    assert str(hub_zoo["folder"] / "model.safetensors") in message  # beside the card
    assert str(hub_zoo["repo"]) in message and OTHER_COMMIT in message and "offline" in message  # the cache
    assert "hf download eee-zoo/cifar10-Linf-Tiny model.safetensors" in message  # how to get them
    assert isinstance(err.value, FileNotFoundError)


def test_repo_missing_from_the_cache(hub_zoo: dict) -> None:
    shutil.rmtree(hub_zoo["repo"])
    with pytest.raises(WeightsNotFoundError, match="LocalEntryNotFoundError"):
        load_model("Tiny", cards_dir=hub_zoo["cards"])


def test_tampered_blob_in_the_cache_is_refused(hub_zoo: dict) -> None:
    blob = (hub_zoo["repo"] / "snapshots" / COMMIT / "model.safetensors").resolve()
    data = bytearray(blob.read_bytes())
    data[-1] ^= 0xFF
    blob.write_bytes(bytes(data))
    with pytest.raises(WeightsChecksumError, match=rf"sha256 mismatch for .*{COMMIT}/model.safetensors"):
        load_model("Tiny", cards_dir=hub_zoo["cards"])


# ---------------------------------------------------------------------------------------------- export
def test_export_is_complete_and_refuses_to_overwrite(tmp_path: Path, tiny_model) -> None:
    out = export(tiny_model, "Tiny", tmp_path / "Tiny")
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    assert tiny_model.eee_info["sha256"] == sha256_file(out / "model.safetensors") == load_card(out).sha256
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    with pytest.raises(FileExistsError, match="overwrite=True"):
        export(tiny_model, "Tiny", out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["Tiny"]  # no temporary folder left behind
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(out.stat().st_mode) == 0o777 & ~umask  # a normal folder, readable by others
    assert {stat.S_IMODE(p.stat().st_mode) for p in out.iterdir()} == {0o666 & ~umask}


def test_export_overwrite_replaces_weights_and_drops_old_results(tmp_path: Path, tiny_model) -> None:
    from eee_zoo.cards import set_results

    out = export(tiny_model, "Tiny", tmp_path / "Tiny")
    set_results(out, [{"metric": "clean_accuracy", "value": 50.0, "correct": 1, "n_examples": 2, "seed": 0,
                       "results_file": "benchmarks/results/x.json"}])  # fmt: skip
    with torch.no_grad():
        tiny_model.heads[0].linear.bias.add_(1.0)
    export(tiny_model, "Tiny", out, overwrite=True)
    card = verify_folder(out)
    assert card.results == [] and card.sha256 == tiny_model.eee_info["sha256"]
    assert [p.name for p in tmp_path.iterdir()] == ["Tiny"]


def test_failed_export_leaves_nothing(tmp_path: Path, tiny_model) -> None:
    with pytest.raises(ValueError, match="eee_zoo.name"):
        export(tiny_model, "not a valid name!", tmp_path / "bad")
    assert list(tmp_path.iterdir()) == []


def test_export_records_the_inference_mode(tmp_path: Path, tiny_model) -> None:
    tiny_model.set_stochastic(False)
    out = export(tiny_model, "Det", tmp_path / "Det", dataset="CIFAR10", threat_model="l2", repo_id="me/det")
    card = load_card(out)
    assert card.stochastic_inference is False and card.threat_model == "L2" and card.repo_id == "me/det"
    assert "Inference is **deterministic**" in (out / "README.md").read_text()


# ---------------------------------------------------------------------------------------------- checks
def test_verify_sha256_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "w.safetensors"
    path.write_bytes(b"weights")
    verify_sha256(path, hashlib.sha256(b"weights").hexdigest())
    with pytest.raises(WeightsChecksumError, match=rf"sha256 mismatch for {path}"):
        verify_sha256(path, "0" * 64)


def test_push_checks_the_folder_before_any_upload(tmp_path: Path, tiny_model) -> None:
    out = export(tiny_model, "Tiny", tmp_path / "Tiny")
    weights = out / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0x01
    weights.write_bytes(bytes(data))
    with pytest.raises(WeightsChecksumError, match="model.safetensors"):
        push(out, token="not-used")  # fails before HfApi is touched: offline-safe
