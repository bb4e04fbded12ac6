"""Finding weights through the real ``hf_hub_download`` (offline, against a real cache layout), export, push checks."""

from __future__ import annotations

import hashlib
import json
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
    stale_patterns,
    upload_patterns,
    verify_folder,
    verify_sha256,
)
from eee_zoo.loading import load_model
from eee_zoo.models import SelfEnsemble
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


def test_revision_missing_from_the_cache_says_where_it_looked(hub_zoo: dict) -> None:
    with pytest.raises(WeightsNotFoundError) as err:
        load_model("Tiny", cards_dir=hub_zoo["cards"], revision=OTHER_COMMIT)
    message = str(err.value)
    assert "<model_dir>/cifar10/Linf/Tiny.safetensors and pass model_dir" in message  # the RobustBench layout
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


# ---------------------------------------------------------------------------------------------- sharded on the Hub
SHARD_SIZE = 20_000  # bytes: several shards for the tiny model


@pytest.fixture
def sharded_hub_zoo(tmp_path: Path, tiny_model, monkeypatch: pytest.MonkeyPatch) -> dict:
    """A sharded checkpoint whose card is in the registry; its index and shards are only in a Hub cache."""
    exported = export(tiny_model, "Tiny", tmp_path / "export" / "Tiny", max_shard_size=SHARD_SIZE)
    cards = tmp_path / "cards"
    folder = card_folder("Tiny", cards_dir=cards)
    folder.mkdir(parents=True)
    shutil.copy(exported / "README.md", folder / "README.md")
    set_revision(folder, COMMIT)
    cache = tmp_path / "hf-cache"
    repo = build_hub_cache(cache, load_card(folder).repo_id, exported, COMMIT)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    shards = sorted(load_card(folder).shards)
    return {"cards": cards, "cache": cache, "repo": repo, "folder": folder, "export": exported, "shards": shards}


def test_sharded_weights_load_from_the_offline_cache(sharded_hub_zoo: dict, tiny_model) -> None:
    assert len(sharded_hub_zoo["shards"]) >= 3
    model = load_model("Tiny", cards_dir=sharded_hub_zoo["cards"])
    snapshot = sharded_hub_zoo["repo"] / "snapshots" / COMMIT
    info = model.eee_info
    assert info["weights_source"] == "hub" and info["revision"] == COMMIT
    assert Path(info["weights_path"]) == snapshot / "model.safetensors.index.json"
    assert [Path(s["path"]) for s in info["shards"]] == [snapshot / s for s in sharded_hub_zoo["shards"]]
    assert same_logits(model, tiny_model)

    set_revision(sharded_hub_zoo["folder"], "main")  # a branch: the shards come from the commit the index did
    assert same_logits(load_model("Tiny", cards_dir=sharded_hub_zoo["cards"]), tiny_model)


def test_shard_missing_from_the_cache_is_named(sharded_hub_zoo: dict) -> None:
    missing = sharded_hub_zoo["shards"][1]
    (sharded_hub_zoo["repo"] / "snapshots" / COMMIT / missing).unlink()
    with pytest.raises(WeightsNotFoundError) as err:
        load_model("Tiny", cards_dir=sharded_hub_zoo["cards"])
    message = str(err.value)
    assert message.startswith(f"shard '{missing}' of 'Tiny' (cifar10/Linf) not found (its index was)")
    assert f"eee-zoo/cifar10-Linf-Tiny/{missing} at revision '{COMMIT}'" in message and "offline" in message
    assert (
        f"hf download eee-zoo/cifar10-Linf-Tiny model.safetensors.index.json {' '.join(sharded_hub_zoo['shards'])}"
        in message
    )


def test_tampered_shard_blob_in_the_cache_is_refused(sharded_hub_zoo: dict) -> None:
    name = sharded_hub_zoo["shards"][-1]
    blob = (sharded_hub_zoo["repo"] / "snapshots" / COMMIT / name).resolve()
    data = bytearray(blob.read_bytes())
    data[-1] ^= 0xFF
    blob.write_bytes(bytes(data))
    with pytest.raises(WeightsChecksumError, match=rf"sha256 mismatch for .*{COMMIT}/{name}: "):
        load_model("Tiny", cards_dir=sharded_hub_zoo["cards"])


def test_sharded_index_missing_from_the_cache(sharded_hub_zoo: dict) -> None:
    with pytest.raises(WeightsNotFoundError) as err:
        load_model("Tiny", cards_dir=sharded_hub_zoo["cards"], revision=OTHER_COMMIT)
    message = str(err.value)
    assert "<model_dir>/cifar10/Linf/Tiny.safetensors.index.json" in message
    assert str(sharded_hub_zoo["folder"] / "model.safetensors.index.json") in message
    assert "put the index and its shards at" in message


def test_push_checks_every_shard_before_any_upload(tmp_path: Path, tiny_model) -> None:
    out = export(tiny_model, "Tiny", tmp_path / "Tiny", max_shard_size=SHARD_SIZE)
    card = verify_folder(out)
    assert upload_patterns(card) == [
        "README.md", "config.json", "model.safetensors.index.json", *sorted(card.shards), "figures/*.png"
    ]  # fmt: skip
    assert stale_patterns(card) == [
        "model.safetensors", "model.safetensors.index.json", "model-?????-of-?????.safetensors",
    ]  # fmt: skip
    shard = out / sorted(card.shards)[-1]
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0x01
    shard.write_bytes(bytes(data))
    with pytest.raises(WeightsChecksumError, match=shard.name):
        push(out, token="not-used")  # fails before HfApi is touched: offline-safe
    shard.unlink()
    with pytest.raises(WeightsNotFoundError, match=rf"shard '{shard.name}' of 'Tiny' is missing"):
        push(out, token="not-used")


# ---------------------------------------------------------------------------------------------- PyTorchModelHubMixin
def test_save_pretrained_from_pretrained_round_trip(tmp_path: Path, tiny_model) -> None:
    tiny_model.set_stochastic(False)
    tiny_model.save_pretrained(tmp_path / "saved")
    assert sorted(p.name for p in (tmp_path / "saved").iterdir()) == ["README.md", "config.json", "model.safetensors"]
    assert json.loads((tmp_path / "saved" / "config.json").read_text()) == tiny_model.config
    assert "library_name: eee-zoo" in (tmp_path / "saved" / "README.md").read_text()
    model = SelfEnsemble.from_pretrained(tmp_path / "saved")
    assert not model.training and model.stochastic is False and model.eee_info == {}
    assert same_logits(model, tiny_model)
    with pytest.raises(TypeError, match=r"unexpected arguments \['k'\]"):
        SelfEnsemble.from_pretrained(tmp_path / "saved", k=2)


def test_save_pretrained_refuses_a_zoo_checkpoint_folder(tmp_path: Path, tiny_model) -> None:
    out = export(tiny_model, "Tiny", tmp_path / "Tiny")
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    with pytest.raises(ValueError, match=r"holds an eee-zoo checkpoint.*export"):
        tiny_model.save_pretrained(out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


@pytest.mark.parametrize("fixture", ["hub_zoo", "sharded_hub_zoo"])
def test_from_pretrained_a_zoo_repo_in_the_offline_cache(request, fixture: str, tiny_model) -> None:
    zoo = request.getfixturevalue(fixture)
    repo_id = load_card(zoo["folder"]).repo_id
    model = SelfEnsemble.from_pretrained(repo_id)  # main -> refs/main -> COMMIT, offline, $HF_HUB_CACHE
    snapshot = zoo["repo"] / "snapshots" / COMMIT
    assert model.eee_info["weights_source"] == "hub" and model.eee_info["revision"] == COMMIT
    assert Path(model.eee_info["weights_path"]).parent == snapshot
    assert model.stochastic is True and same_logits(model, tiny_model)
    assert same_logits(SelfEnsemble.from_pretrained(repo_id, revision=COMMIT), tiny_model)
    assert same_logits(SelfEnsemble.from_pretrained(zoo["export"]), tiny_model)  # the local folder

    weights = snapshot / load_card(zoo["folder"]).filename
    name = sorted(load_card(zoo["folder"]).shards)[-1] if fixture == "sharded_hub_zoo" else weights.name
    blob = (snapshot / name).resolve()
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0x01
    blob.write_bytes(bytes(data))
    with pytest.raises(WeightsChecksumError, match=rf"sha256 mismatch for .*{COMMIT}/{name}: "):
        SelfEnsemble.from_pretrained(repo_id)  # the card in the repo pins every file


def test_from_pretrained_a_plain_sharded_folder(tmp_path: Path, tiny_model, monkeypatch: pytest.MonkeyPatch) -> None:
    """No zoo card (huggingface_hub's generic README): the index and its shards, strict shapes, no checksums."""
    folder = export(tiny_model, "Tiny", tmp_path / "plain", max_shard_size=SHARD_SIZE)
    (folder / "README.md").write_text("---\nlibrary_name: eee-zoo\n---\n\nA model.\n")
    assert same_logits(SelfEnsemble.from_pretrained(folder), tiny_model)
    cache = tmp_path / "hf-cache"
    build_hub_cache(cache, "someone/plain", folder, COMMIT)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    model = SelfEnsemble.from_pretrained("someone/plain")  # model.safetensors absent: the index, then its shards
    assert model.eee_info == {} and same_logits(model, tiny_model)
