"""load_model: export -> load round trips (bit-identical logits), RobustBench model_dir, refusals with clear errors."""

from __future__ import annotations

import inspect
import json
import re
import shutil
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

import eee_zoo
from eee_zoo import hub, loading
from eee_zoo._io import sha256_file
from eee_zoo.cards import CardError, load_card, write_card
from eee_zoo.hub import WeightsChecksumError, WeightsNotFoundError, export
from eee_zoo.loading import load_model
from eee_zoo.models import SelfEnsemble
from eee_zoo.registry import UnknownModelError, card_folder

X = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
INFO_KEYS = {
    "name", "dataset", "threat_model", "sha256", "stochastic_inference", "repo_id", "revision", "filename",
    "card_path", "weights_path",
}  # fmt: skip


@pytest.fixture
def cards(tmp_path: Path, tiny_model) -> Path:
    root = tmp_path / "cards"
    export(tiny_model, "Tiny", card_folder("Tiny", cards_dir=root), training={"recipe": "r.yaml", "seed": 0})
    return root


def logits(model, seed: int | None = 1) -> torch.Tensor:
    if seed is not None:
        model.manual_seed(seed)
    with torch.no_grad():
        return model(X)


def replace_weights(cards: Path, state: dict | None = None, raw: bytes | None = None) -> Path:
    """Put other weights beside the card and update its sha256, so loading gets past the checksum."""
    folder = card_folder("Tiny", cards_dir=cards)
    weights = folder / "model.safetensors"
    if state is not None:
        save_file(state, str(weights))
    else:
        weights.write_bytes(raw)
    card = load_card(folder)
    card.sha256 = eee_zoo._io.sha256_file(weights)
    write_card(card)
    return weights


# ---------------------------------------------------------------------------------------------- round trips
def test_round_trip_from_the_card_folder_is_bit_identical(cards: Path, tiny_model) -> None:
    model = load_model("Tiny", cards_dir=cards)
    assert isinstance(model, SelfEnsemble) and not model.training and model.stochastic
    assert torch.equal(logits(model, 5), logits(tiny_model, 5))
    assert not torch.equal(logits(model, 5), logits(model, 6))  # stochastic: the seed matters
    assert torch.equal(logits(model, 5), logits(model, 5))  # ... and replays exactly

    model.set_stochastic(False)
    tiny_model.set_stochastic(False)
    assert torch.equal(logits(model, None), logits(tiny_model, None))
    for name, tensor in tiny_model.state_dict().items():
        assert torch.equal(model.state_dict()[name], tensor), name


def test_eee_info_is_attached(cards: Path) -> None:
    info = load_model("Tiny", cards_dir=cards).eee_info
    assert INFO_KEYS <= set(info)
    assert info["weights_source"] == "card_folder"
    assert info["card_path"] == str(card_folder("Tiny", cards_dir=cards) / "README.md")
    assert info["sha256"] == load_card(info["card_path"]).sha256


def test_stochastic_and_seed_overrides(cards: Path, tiny_model) -> None:
    deterministic = load_model("Tiny", cards_dir=cards, stochastic=False)
    assert deterministic.stochastic is False
    assert torch.equal(logits(deterministic, 1), logits(deterministic, 2))
    seeded = load_model("Tiny", cards_dir=cards, seed=7)
    with torch.no_grad():
        first = seeded(X)
    assert torch.equal(first, logits(tiny_model, 7))


def test_card_inference_mode_is_applied(tmp_path: Path, tiny_model) -> None:
    tiny_model.set_stochastic(False)
    export(tiny_model, "Det", card_folder("Det", cards_dir=tmp_path))
    tiny_model.set_stochastic(True)  # the exported card says deterministic, whatever the object does later
    assert load_model("Det", cards_dir=tmp_path).stochastic is False


def test_robustbench_model_dir_layout(cards: Path, tmp_path: Path, tiny_model) -> None:
    folder = card_folder("Tiny", cards_dir=cards)
    model_dir = tmp_path / "models"
    target = model_dir / "cifar10" / "Linf" / "Tiny.safetensors"
    target.parent.mkdir(parents=True)
    shutil.move(folder / "model.safetensors", target)  # only the card stays in the registry
    model = load_model("Tiny", "CIFAR10", "linf", model_dir=model_dir, cards_dir=cards)
    assert model.eee_info["weights_source"] == "model_dir" and model.eee_info["weights_path"] == str(target)
    assert torch.equal(logits(model), logits(tiny_model))


def test_device_argument(cards: Path) -> None:
    model = load_model("Tiny", cards_dir=cards, device=torch.device("cpu"))
    assert next(model.parameters()).device.type == "cpu"


# ---------------------------------------------------------------------------------------------- refusals
def test_unknown_and_misplaced_names(cards: Path) -> None:
    with pytest.raises(UnknownModelError, match="did you mean 'Tiny'"):
        load_model("Tiny2", cards_dir=cards)
    with pytest.raises(UnknownModelError, match="exists for dataset='cifar10', threat_model='Linf'"):
        load_model("Tiny", "cifar100", cards_dir=cards)
    with pytest.raises(ValueError, match="unknown dataset 'cifar-11'"):
        load_model("Tiny", "cifar-11", cards_dir=cards)


def test_tampered_weights_are_refused(cards: Path) -> None:
    weights = card_folder("Tiny", cards_dir=cards) / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0x01  # one flipped bit in the tensor data: safetensors alone would not notice
    weights.write_bytes(bytes(data))
    with pytest.raises(WeightsChecksumError, match=rf"sha256 mismatch for {weights}.*refusing to load"):
        load_model("Tiny", cards_dir=cards)


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty"])
def test_malformed_safetensors_is_a_clear_error(cards: Path, damage: str) -> None:
    weights = card_folder("Tiny", cards_dir=cards) / "model.safetensors"
    good = weights.read_bytes()
    raw = {"truncated": good[: len(good) // 2], "garbage": b"this is not a safetensors file", "empty": b""}[damage]
    replace_weights(cards, raw=raw)
    with pytest.raises(ValueError, match=rf"{weights} is not a valid safetensors file"):
        load_model("Tiny", cards_dir=cards)


def test_state_dict_key_mismatch_is_a_clear_error(cards: Path, tiny_model) -> None:
    state = dict(tiny_model.state_dict())
    state["heads.9.linear.weight"] = state.pop("heads.0.linear.weight")
    weights = replace_weights(cards, state={k: v.contiguous() for k, v in state.items()})
    with pytest.raises(ValueError, match=rf"{weights} does not fit the architecture: 1 missing keys "
                       r"\[heads.0.linear.weight\], 1 unexpected keys \[heads.9.linear.weight\]"):  # fmt: skip
        load_model("Tiny", cards_dir=cards)


def test_state_dict_shape_mismatch_is_a_clear_error(cards: Path, tiny_config: dict) -> None:
    tiny_config["backbone"]["kwargs"]["widths"] = [8, 16, 24]
    other = SelfEnsemble.from_config(tiny_config)
    replace_weights(cards, state=other.state_dict())
    with pytest.raises(ValueError, match=r"shape mismatches \(file vs model\)"):
        load_model("Tiny", cards_dir=cards)


def test_bad_architecture_in_the_card(cards: Path) -> None:
    card = load_card(card_folder("Tiny", cards_dir=cards))
    card.architecture["backbone"]["name"] = "no_such_backbone"
    write_card(card)
    with pytest.raises(CardError, match=r"field 'eee_zoo.architecture': unknown backbone 'no_such_backbone'"):
        load_model("Tiny", cards_dir=cards)


def test_weights_are_never_unpickled() -> None:
    for module in (loading, hub):
        source = inspect.getsource(module)
        assert "torch.load(" not in source and "import pickle" not in source


# ---------------------------------------------------------------------------------------------- sharded, bfloat16
SHARD_SIZE = 20_000  # bytes: the tiny model's ~71 kB of tensors become several shards


def shards_of(folder: Path) -> list[Path]:
    return sorted(folder.glob("model-*-of-*.safetensors"))


@pytest.fixture
def sharded_cards(tmp_path: Path, tiny_model) -> Path:
    root = tmp_path / "sharded-cards"
    export(tiny_model, "Tiny", card_folder("Tiny", cards_dir=root), max_shard_size=SHARD_SIZE)
    return root


def test_sharded_export_writes_the_hugging_face_layout(sharded_cards: Path, tiny_model) -> None:
    folder = card_folder("Tiny", cards_dir=sharded_cards)
    shards = shards_of(folder)
    assert len(shards) >= 3 and shards[0].name == f"model-00001-of-{len(shards):05d}.safetensors"
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        ["README.md", "config.json", "model.safetensors.index.json", *(s.name for s in shards)]
    )
    index_path = folder / "model.safetensors.index.json"
    card = load_card(folder)
    assert card.filename == "model.safetensors.index.json" and card.sha256 == sha256_file(index_path)
    assert card.shards == {s.name: sha256_file(s) for s in shards} and card.storage_dtype == "float32"
    index = json.loads(index_path.read_text())
    assert set(index["weight_map"]) == set(tiny_model.state_dict())
    assert set(index["weight_map"].values()) == set(card.shards)
    assert index["metadata"]["eee_zoo_shards_sha256"] == card.shards  # the index's sha256 pins the shards too
    for shard in shards:
        with safe_open(shard, "pt") as f:
            keys = list(f.keys())
            assert all(index["weight_map"][k] == shard.name for k in keys)
            assert sum(f.get_tensor(k).nbytes for k in keys) <= SHARD_SIZE
    front_matter = (folder / "README.md").read_text().split("---")[1]
    assert "shards:" in front_matter and "storage_dtype" not in front_matter  # float32: not recorded
    assert tiny_model.eee_info["sha256"] == card.sha256 and len(tiny_model.eee_info["shards"]) == len(shards)


def test_sharded_round_trip_is_bit_identical(sharded_cards: Path, tiny_model) -> None:
    model = load_model("Tiny", cards_dir=sharded_cards)
    folder = card_folder("Tiny", cards_dir=sharded_cards)
    for name, tensor in tiny_model.state_dict().items():
        assert torch.equal(model.state_dict()[name], tensor), name
    assert torch.equal(logits(model, 3), logits(tiny_model, 3))
    model.set_stochastic(False)
    tiny_model.set_stochastic(False)
    assert torch.equal(logits(model, None), logits(tiny_model, None))
    info = model.eee_info
    assert info["weights_source"] == "card_folder"
    assert info["weights_path"] == str(folder / "model.safetensors.index.json")
    assert [s["filename"] for s in info["shards"]] == [s.name for s in shards_of(folder)]
    assert all(s["sha256"] == sha256_file(s["path"]) for s in info["shards"])


@pytest.mark.parametrize("max_shard_size", [None, SHARD_SIZE], ids=["single-file", "sharded"])
def test_bfloat16_storage_round_trip(tmp_path: Path, tiny_model, max_shard_size) -> None:
    with torch.no_grad():
        for m in tiny_model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.running_mean.normal_()
                m.running_var.uniform_(0.5, 2.0)
                m.num_batches_tracked.fill_(123_456_789)  # an integer buffer: stored as it is
    fp32_size = (export(tiny_model, "Full", tmp_path / "Full") / "model.safetensors").stat().st_size
    out = export(
        tiny_model, "Half", card_folder("Half", cards_dir=tmp_path / "cards"), storage_dtype="bfloat16",
        max_shard_size=max_shard_size,
    )  # fmt: skip
    card = load_card(out)
    assert card.storage_dtype == "bfloat16" and "storage_dtype: bfloat16" in (out / "README.md").read_text()
    files = [out / "model.safetensors"] if max_shard_size is None else shards_of(out)
    assert bool(card.shards) == (max_shard_size is not None) and all(f.is_file() for f in files)
    assert sum(f.stat().st_size for f in files) < 0.6 * fp32_size
    for f in files:
        with safe_open(f, "pt") as st:
            for k in st.keys():
                assert st.get_tensor(k).dtype == (torch.int64 if k.endswith("num_batches_tracked") else torch.bfloat16)

    model = load_model("Half", cards_dir=tmp_path / "cards")
    expected = {
        k: v.to(torch.bfloat16).to(torch.float32) if v.is_floating_point() else v
        for k, v in tiny_model.state_dict().items()
    }
    for name, tensor in model.state_dict().items():
        assert tensor.dtype == tiny_model.state_dict()[name].dtype, name  # the model stays float32
        assert torch.equal(tensor, expected[name]), name
    assert model.eee_info["storage_dtype"] == "bfloat16"
    assert any(not torch.equal(expected[k], v) for k, v in tiny_model.state_dict().items())  # rounding happened
    reference = SelfEnsemble.from_config(tiny_model.config).eval()
    reference.load_state_dict(expected)
    assert torch.equal(logits(model, 4), logits(reference, 4))


def test_tampered_shard_is_refused_naming_it(sharded_cards: Path) -> None:
    shard = shards_of(card_folder("Tiny", cards_dir=sharded_cards))[-1]  # the earlier shards are fine
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0x01  # one flipped bit in the tensor data
    shard.write_bytes(bytes(data))
    with pytest.raises(WeightsChecksumError, match=rf"sha256 mismatch for {re.escape(str(shard))}.*refusing") as err:
        load_model("Tiny", cards_dir=sharded_cards)
    assert "\n" not in str(err.value)


def test_tampered_index_is_refused(sharded_cards: Path) -> None:
    index = card_folder("Tiny", cards_dir=sharded_cards) / "model.safetensors.index.json"
    data = json.loads(index.read_text())
    first, second = sorted(data["weight_map"])[:2]
    data["weight_map"][first], data["weight_map"][second] = data["weight_map"][second], data["weight_map"][first]
    index.write_text(json.dumps(data))
    with pytest.raises(WeightsChecksumError, match=rf"sha256 mismatch for {re.escape(str(index))}"):
        load_model("Tiny", cards_dir=sharded_cards)


def test_missing_shard_is_a_clear_error(sharded_cards: Path) -> None:
    shard = shards_of(card_folder("Tiny", cards_dir=sharded_cards))[1]
    shard.unlink()
    with pytest.raises(WeightsNotFoundError, match=rf"shard '{shard.name}' of 'Tiny' .* is missing") as err:
        load_model("Tiny", cards_dir=sharded_cards)
    assert str(shard) in str(err.value) and "\n" not in str(err.value)


def test_sharded_robustbench_model_dir_layout(sharded_cards: Path, tmp_path: Path, tiny_model) -> None:
    folder = card_folder("Tiny", cards_dir=sharded_cards)
    target = tmp_path / "models" / "cifar10" / "Linf"
    target.mkdir(parents=True)
    shutil.move(folder / "model.safetensors.index.json", target / "Tiny.safetensors.index.json")
    shards = shards_of(folder)
    for shard in shards:
        shutil.move(shard, target / shard.name)  # beside the index, under the names the index gives them
    model = load_model("Tiny", "CIFAR10", "linf", model_dir=tmp_path / "models", cards_dir=sharded_cards)
    assert model.eee_info["weights_source"] == "model_dir"
    assert model.eee_info["weights_path"] == str(target / "Tiny.safetensors.index.json")
    assert {Path(s["path"]).parent for s in model.eee_info["shards"]} == {target}
    assert torch.equal(logits(model), logits(tiny_model))

    (target / shards[0].name).unlink()
    with pytest.raises(WeightsNotFoundError, match=rf"shard '{shards[0].name}' of 'Tiny'.*in model_dir") as err:
        load_model("Tiny", model_dir=tmp_path / "models", cards_dir=sharded_cards)
    assert str(target / shards[0].name) in str(err.value)


def test_overwrites_between_layouts_leave_no_stale_files(tmp_path: Path, tiny_model) -> None:
    out = tmp_path / "Tiny"
    export(tiny_model, "Tiny", out, max_shard_size=SHARD_SIZE)
    many = len(shards_of(out))
    export(tiny_model, "Tiny", out, max_shard_size=2 * SHARD_SIZE, overwrite=True)  # fewer shards
    assert 1 < len(shards_of(out)) < many
    assert sorted(load_card(out).shards) == [s.name for s in shards_of(out)]
    hub.verify_folder(out)

    with torch.no_grad():
        tiny_model.heads[0].linear.bias.add_(1.0)
    export(tiny_model, "Tiny", out, overwrite=True)  # sharded -> single file
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    card = hub.verify_folder(out)
    assert card.shards == {} and card.filename == "model.safetensors"
    assert [p.name for p in tmp_path.iterdir()] == ["Tiny"]  # no temporary folder left behind

    export(tiny_model, "Tiny", out, max_shard_size=SHARD_SIZE, storage_dtype="bfloat16", overwrite=True)
    assert not (out / "model.safetensors").exists() and (out / "model.safetensors.index.json").is_file()
    hub.verify_folder(out)
    with pytest.raises(FileExistsError, match="model.safetensors.index.json"):
        export(tiny_model, "Tiny", out)


def test_a_state_dict_that_fits_in_one_shard_is_one_file(tmp_path: Path, tiny_model) -> None:
    out = export(tiny_model, "Tiny", tmp_path / "Tiny", max_shard_size="5GB")
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    assert load_card(out).shards == {}


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"max_shard_size": 0}, "max_shard_size"),
        ({"max_shard_size": 1.5}, "max_shard_size"),
        ({"max_shard_size": "lots"}, "Unit"),  # huggingface_hub's own parser
        ({"storage_dtype": "float16"}, "unknown storage_dtype 'float16'"),
    ],
)
def test_bad_export_arguments_leave_nothing(tmp_path: Path, tiny_model, kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        export(tiny_model, "Tiny", tmp_path / "Tiny", **kwargs)
    assert list(tmp_path.iterdir()) == []


def test_load_weights_reads_an_index_and_checks_where_tensors_are(sharded_cards: Path, tiny_config: dict) -> None:
    folder = card_folder("Tiny", cards_dir=sharded_cards)
    model = SelfEnsemble.from_config(tiny_config)
    loading.load_weights(model, folder / "model.safetensors.index.json")  # no card: shapes only (CLI --weights)

    index_path = folder / "model.safetensors.index.json"
    index = json.loads(index_path.read_text())
    key = sorted(index["weight_map"])[0]
    other = next(s for s in sorted(set(index["weight_map"].values())) if s != index["weight_map"][key])
    index["weight_map"][key] = other
    index_path.write_text(json.dumps(index))
    with pytest.raises(ValueError, match=rf"holds tensors its index .* puts elsewhere .*{re.escape(key)}"):
        loading.load_weights(model, index_path)


def test_integer_buffers_must_keep_their_dtype(cards: Path, tiny_model) -> None:
    state = {k: v.float() if k.endswith("num_batches_tracked") else v for k, v in tiny_model.state_dict().items()}
    replace_weights(cards, state={k: v.contiguous() for k, v in state.items()})
    with pytest.raises(ValueError, match=r"dtype mismatches \(file vs model\).*num_batches_tracked: torch.float32"):
        load_model("Tiny", cards_dir=cards)
