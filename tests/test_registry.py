"""The registry: list_models filters and natural sort, lookups with helpful errors, cards root resolution."""

from __future__ import annotations

import configparser
import shutil
from pathlib import Path

import pytest
import torch
from conftest import TINY_CONFIG

import eee_zoo
from eee_zoo.cards import CardError, set_results
from eee_zoo.hub import export
from eee_zoo.models import SelfEnsemble
from eee_zoo.registry import (
    UnknownModelError,
    card_folder,
    cards_root,
    get_card,
    list_cards,
    list_models,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
ZOO = [  # (name, dataset, threat model)
    ("Tiny-10", "cifar10", "Linf"),
    ("Tiny-2", "cifar10", "Linf"),
    ("tiny-1", "cifar10", "Linf"),
    ("Other", "cifar10", "Linf"),
    ("Tiny-2", "cifar10", "L2"),
    ("Wide", "cifar100", "Linf"),
]


@pytest.fixture(scope="module")
def zoo_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("zoo")
    torch.manual_seed(0)
    models = {
        10: SelfEnsemble.from_config(TINY_CONFIG),
        100: SelfEnsemble.from_config({**TINY_CONFIG, "num_classes": 100}),
    }
    for name, dataset, threat_model in ZOO:
        model = models[100 if dataset == "cifar100" else 10]
        export(
            model,
            name,
            card_folder(name, dataset, threat_model, cards_dir=root),
            dataset=dataset,
            threat_model=threat_model,
        )
    return root


@pytest.fixture
def zoo(tmp_path: Path, zoo_template: Path) -> Path:
    return Path(shutil.copytree(zoo_template, tmp_path / "cards"))


def test_natural_sort_and_unique_names(zoo: Path) -> None:
    assert list_models(cards_dir=zoo) == ["Other", "tiny-1", "Tiny-2", "Tiny-10", "Wide"]


@pytest.mark.parametrize(
    "kwargs, expected",
    [
        ({"filter": "tiny*"}, ["tiny-1", "Tiny-2", "Tiny-10"]),  # case-insensitive wildcard
        ({"filter": "*-1?"}, ["Tiny-10"]),
        ({"filter": ["Other", "W*"]}, ["Other", "Wide"]),
        ({"dataset": "cifar100"}, ["Wide"]),
        ({"dataset": "CIFAR10", "threat_model": "l2"}, ["Tiny-2"]),
        ({"threat_model": "Linf", "filter": "*2"}, ["Tiny-2"]),
        ({"filter": "nothing*"}, []),
    ],
)
def test_list_models_filters(zoo: Path, kwargs: dict, expected: list[str]) -> None:
    assert list_models(cards_dir=zoo, **kwargs) == expected


def test_list_cards_gives_typed_cards_in_order(zoo: Path) -> None:
    cards = list_cards("Tiny-2", cards_dir=zoo)
    assert [(c.name, c.dataset, c.threat_model) for c in cards] == [
        ("Tiny-2", "cifar10", "L2"),
        ("Tiny-2", "cifar10", "Linf"),
    ]


def test_get_card_accepts_names_like_robustbench(zoo: Path) -> None:
    card = get_card("Tiny-2", "CIFAR10", "linf", cards_dir=zoo)
    assert (card.name, card.dataset, card.threat_model) == ("Tiny-2", "cifar10", "Linf")
    assert card.card_path == zoo / "cifar10" / "Linf" / "Tiny-2" / "README.md"


def test_unknown_name_suggests_close_names(zoo: Path) -> None:
    with pytest.raises(UnknownModelError) as err:
        get_card("Tiny2", cards_dir=zoo)
    assert (
        "unknown model 'Tiny2'" in str(err.value) and "did you mean" in str(err.value) and "'Tiny-2'" in str(err.value)
    )
    assert isinstance(err.value, KeyError)  # like RobustBench
    with pytest.raises(UnknownModelError, match="did you mean 'Other'"):
        get_card("other", cards_dir=zoo)  # wrong case


def test_name_known_for_another_dataset_says_so(zoo: Path) -> None:
    with pytest.raises(
        UnknownModelError, match=r"'Wide' is not available for cifar10/Linf; it exists for dataset='cifar100'"
    ):
        get_card("Wide", "cifar10", "Linf", cards_dir=zoo)
    with pytest.raises(UnknownModelError, match="threat_model='Linf'"):
        get_card("Tiny-10", "cifar10", "L2", cards_dir=zoo)


def test_bad_dataset_or_threat_model_string(zoo: Path) -> None:
    with pytest.raises(ValueError, match="unknown dataset 'imagenet21k'"):
        get_card("Tiny-2", "imagenet21k", cards_dir=zoo)
    with pytest.raises(ValueError, match="unknown threat model 'Lfoo'"):
        list_models(threat_model="Lfoo", cards_dir=zoo)


def test_names_cannot_escape_the_registry(zoo: Path) -> None:
    with pytest.raises(UnknownModelError):
        get_card("../L2/Tiny-2", cards_dir=zoo)


def test_an_invalid_card_fails_the_registry_naming_file_and_field(zoo: Path) -> None:
    path = zoo / "cifar10" / "Linf" / "Other" / "README.md"
    path.write_text(path.read_text().replace("stochastic_inference: true", "stochastic_inference: maybe"))
    with pytest.raises(CardError, match=rf"{path}: field 'eee_zoo.stochastic_inference'"):
        list_models(cards_dir=zoo)


def test_a_card_in_the_wrong_folder_is_invalid(zoo: Path) -> None:
    shutil.move(zoo / "cifar10" / "Linf" / "Other", zoo / "cifar10" / "Linf" / "Renamed")
    with pytest.raises(CardError, match=r"Renamed/README.md: field 'eee_zoo.name': 'Other' but the card sits in"):
        list_models(cards_dir=zoo)
    shutil.move(zoo / "cifar10" / "Linf" / "Renamed", zoo / "cifar10" / "L2" / "Other")
    with pytest.raises(CardError, match="field 'eee_zoo.threat_model'"):
        list_models(cards_dir=zoo)


def test_results_are_listed_with_the_card(zoo: Path) -> None:
    result = {
        "metric": "clean_accuracy", "value": 50.0, "correct": 5, "n_examples": 10, "version": None,
        "norm": "Linf", "eps": 8 / 255, "seed": 0, "results_file": "benchmarks/results/x.json",
    }  # fmt: skip
    set_results(card_folder("Other", cards_dir=zoo), [result])
    (card,) = list_cards("Other", cards_dir=zoo)
    assert card.best_result("clean_accuracy")["value"] == 50.0


def test_empty_registry(tmp_path: Path) -> None:
    assert list_models(cards_dir=tmp_path) == []
    assert list_models(cards_dir=tmp_path / "does-not-exist") == []
    with pytest.raises(UnknownModelError, match="no model cards found under"):
        get_card("Anything", cards_dir=tmp_path)


def test_cards_root_resolution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EEE_ZOO_CARDS", raising=False)
    package = Path(eee_zoo.__file__).resolve().parent
    if package == REPO_ROOT / "eee_zoo":  # source checkout / editable install: the repository's folder
        assert cards_root() == REPO_ROOT / "model_cards"
    else:  # regular install: the cards shipped inside the package
        assert cards_root() == package / "model_cards"
    monkeypatch.setenv("EEE_ZOO_CARDS", str(tmp_path / "env"))
    assert cards_root() == tmp_path / "env"
    assert cards_root(tmp_path / "arg") == tmp_path / "arg"  # the argument wins
    assert card_folder("X", "CIFAR100", "l2") == tmp_path / "env" / "cifar100" / "L2" / "X"


def test_setup_cfg_ships_every_package_and_the_cards() -> None:
    """setup.cfg lists packages (to map model_cards/ into the wheel): a new subpackage must be listed too."""
    config = configparser.ConfigParser()
    config.read(REPO_ROOT / "setup.cfg")
    listed = set(config["options"]["packages"].split())
    on_disk = {".".join(p.parent.relative_to(REPO_ROOT).parts) for p in (REPO_ROOT / "eee_zoo").rglob("__init__.py")}
    assert listed == on_disk | {"eee_zoo.model_cards"}
    assert config["options"]["package_dir"].split() == ["eee_zoo.model_cards", "=", "model_cards"]
