"""load_model: export -> load round trips (bit-identical logits), RobustBench model_dir, refusals with clear errors."""

from __future__ import annotations

import inspect
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

import eee_zoo
from eee_zoo import hub, loading
from eee_zoo.cards import CardError, load_card, write_card
from eee_zoo.hub import WeightsChecksumError, export
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
