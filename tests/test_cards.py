"""Model cards: write -> read round trips, results upserts, validation errors naming file and field."""

from __future__ import annotations

import copy
import shutil
from pathlib import Path

import pytest
import torch
from conftest import TINY_CONFIG
from huggingface_hub import ModelCard

from eee_zoo.cards import (
    CardError,
    default_repo_id,
    is_plain_classifier,
    load_card,
    parse_dataset,
    parse_threat_model,
    render_card,
    set_results,
    set_revision,
    validate_result,
    write_card,
)
from eee_zoo.hub import export, verify_folder
from eee_zoo.loading import build_model
from eee_zoo.models import SelfEnsemble
from eee_zoo.registry import list_cards, list_models

REPO_CARDS = Path(__file__).resolve().parents[1] / "model_cards"
EPS = 8 / 255


def clean(correct: int = 3, n: int = 4, **extra) -> dict:
    return {
        "metric": "clean_accuracy", "value": 100 * correct / n, "correct": correct, "n_examples": n,
        "version": None, "norm": "Linf", "eps": EPS, "seed": 0, "results_file": "benchmarks/results/tiny.json",
        **extra,
    }  # fmt: skip


def robust(correct: int = 1, n: int = 4, version: str = "rand", **extra) -> dict:
    return {**clean(correct, n), "metric": "robust_accuracy", "version": version, **extra}


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    model = SelfEnsemble.from_config(TINY_CONFIG)
    training = {"recipe": "training/recipes/tiny.yaml", "seed": 3, "command": "eee-zoo train tiny"}
    folder = tmp_path_factory.mktemp("export") / "Tiny"
    return export(model, "Tiny", folder, training=training, description="A tiny test model.")


@pytest.fixture
def card_dir(tmp_path: Path, exported: Path) -> Path:
    """A fresh copy of one exported checkpoint folder (exporting once keeps the tests fast)."""
    return Path(shutil.copytree(exported, tmp_path / "Tiny"))


def edit_front_matter(path: Path, edit) -> None:
    """Change a card's metadata through huggingface_hub (as a careless editor might), bypassing our checks."""
    card = ModelCard(path.read_text())
    edit(card.data)
    path.write_text(str(card))


# ---------------------------------------------------------------------------------------------- round trips
def test_export_writes_a_card_that_reads_back(card_dir: Path, tiny_model) -> None:
    card = load_card(card_dir / "README.md")
    assert (card.name, card.dataset, card.threat_model) == ("Tiny", "cifar10", "Linf")
    assert card.architecture == tiny_model.config
    assert card.repo_id == default_repo_id("Tiny", "cifar10", "Linf") == "eee-zoo/cifar10-Linf-Tiny"
    assert card.revision == "main" and card.filename == "model.safetensors"
    assert card.stochastic_inference is True
    assert card.training == {"recipe": "training/recipes/tiny.yaml", "seed": 3, "command": "eee-zoo train tiny"}
    assert card.results == []
    assert card.card_path == card_dir / "README.md"
    verify_folder(card_dir)  # the sha256 in the card is the exported file's

    text = (card_dir / "README.md").read_text()
    assert 'load_model("Tiny", dataset="cifar10", threat_model="Linf")' in text
    assert "No results yet" in text and "--write-card" in text
    assert "gradient masking" in text and "A tiny test model." in text
    assert "eee-zoo train tiny" in text


def test_write_then_read_is_identity(card_dir: Path, tmp_path: Path) -> None:
    card = load_card(card_dir)
    card.results = [validate_result(r) for r in (clean(), robust(version="standard"), robust(version="rand"))]
    card.card_path = tmp_path / "copy" / "README.md"
    write_card(card)
    again = load_card(card.card_path)
    assert again == card
    for r in again.results:  # numbers are numbers
        assert type(r["value"]) is float and type(r["eps"]) is float
        assert type(r["correct"]) is int and type(r["n_examples"]) is int and type(r["seed"]) is int


def test_org_is_configurable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EEE_ZOO_HUB_ORG", "my-lab")
    assert default_repo_id("Tiny", "CIFAR100", "l2") == "my-lab/cifar100-L2-Tiny"


def test_parse_names_case_insensitively() -> None:
    assert parse_dataset("CIFAR-10") == parse_dataset("cifar10") == "cifar10"
    assert parse_threat_model("linf") == parse_threat_model("LINF") == "Linf"
    assert parse_threat_model("l2") == "L2"
    with pytest.raises(ValueError, match="unknown dataset 'mnist'"):
        parse_dataset("mnist")
    with pytest.raises(ValueError, match="unknown threat model"):
        parse_threat_model("L3")


def test_a_results_suite_is_recorded_or_inferred_from_older_cards() -> None:
    from eee_zoo.cards import result_suite, results_table, validate_result

    assert validate_result(robust(suite="autoattack"))["suite"] == "autoattack"
    old = validate_result(robust(version="adaptive", eval_draws=10))  # a card written before the field existed
    assert old["suite"] is None and result_suite(old) == "adaptive"
    assert "adaptive attacks, right on all 10 draws" in results_table([old])
    assert result_suite(validate_result(robust(version="rand"))) == "autoattack"


# ---------------------------------------------------------------------------------------------- results
def test_a_rewritten_results_file_leaves_no_stale_card_entry(card_dir: Path) -> None:
    path = card_dir / "README.md"
    set_results(path, [clean(3, 4), robust(1, 4, "zoo/per-draw"), robust(0, 2, "zoo/every-draw-20")])
    set_results(path, [clean(3, 4), robust(2, 10, "zoo/per-draw"), robust(0, 2, "zoo/every-draw-50")])
    assert [(r["version"], r["n_examples"]) for r in load_card(path).results] == [
        (None, 4), ("zoo/per-draw", 10), ("zoo/every-draw-50", 2)
    ]  # fmt: skip


def test_set_results_upserts_by_identity_and_keeps_the_rest(card_dir: Path) -> None:
    path = card_dir / "README.md"
    edit_front_matter(path, lambda data: data.__setitem__("custom_key", {"kept": True}))
    path.write_text(path.read_text().replace("## Usage", "A hand-written note.\n\n## Usage"))

    set_results(path, [clean(3, 4), robust(1, 4, "rand")])
    set_results(path, [robust(2, 4, "rand")])  # same identity: replaces
    set_results(path, [robust(0, 4, "standard", results_file="benchmarks/results/standard.json"),
                       robust(1, 8, "rand", results_file="benchmarks/results/n8.json")])  # fmt: skip

    card = load_card(path)
    assert [(r["metric"], r["version"], r["correct"], r["n_examples"]) for r in card.results] == [
        ("clean_accuracy", None, 3, 4),
        ("robust_accuracy", "rand", 2, 4),
        ("robust_accuracy", "standard", 0, 4),
        ("robust_accuracy", "rand", 1, 8),
    ]
    text = path.read_text()
    assert "A hand-written note." in text and "custom_key" in text
    assert "| Robust | AutoAttack rand | Linf, eps = 8/255 | - | 50.00 | - | 2 / 4 |" in text
    assert "No results yet" not in text
    assert card.best_result("robust_accuracy", "rand")["n_examples"] == 8


@pytest.mark.parametrize(
    "result, field",
    [
        (clean(value="75.0"), "results[0].value"),  # a string where a number belongs
        (clean(value=80.0), "results[0].value"),  # inconsistent with correct / n_examples
        (clean(value=0.75), "results[0].value"),  # a fraction, not a percentage
        (robust(eps="8/255"), "results[0].eps"),
        (robust(version=None), "results[0].version"),
        (robust(norm="L2"), "results[0].norm"),  # L2 robustness in a Linf card
        (clean(metric="accuracy"), "results[0].metric"),
        (clean(5, 4, value=100.0), "results[0].correct"),  # more correct than examples
        (clean(results_file=None), "results[0].results_file"),
        (robust(suite="pgd"), "results[0].suite"),  # autoattack or adaptive
    ],
)
def test_set_results_rejects_bad_results_and_leaves_the_card_alone(card_dir: Path, result: dict, field: str) -> None:
    path = card_dir / "README.md"
    before = path.read_bytes()
    with pytest.raises(CardError) as err:
        set_results(path, [result])
    assert str(path) in str(err.value) and f"'{field}'" in str(err.value)
    assert err.value.field == field
    assert path.read_bytes() == before


def test_inference_mode_is_part_of_a_results_identity(card_dir: Path) -> None:
    sto, det = ({"results_file": f"benchmarks/results/rand_{m}.json"} for m in ("sto", "det"))  # one file each
    set_results(card_dir, [robust(1, 4, "rand", stochastic=True, **sto), robust(2, 4, "rand", stochastic=False, **det)])
    set_results(card_dir, [robust(3, 4, "rand", stochastic=False, **det)])
    card = load_card(card_dir)
    assert [(r["stochastic"], r["correct"]) for r in card.results] == [(True, 1), (False, 3)]
    text = (card_dir / "README.md").read_text()
    assert "| deterministic | 75.00 | - | 3 / 4 |" in text and "| stochastic | 25.00 | - | 1 / 4 |" in text


def test_the_certified_section_holds_the_deployed_mode_s_clean_accuracy(card_dir: Path) -> None:
    """Its clean row says "deployed": of a stochastic checkpoint, the stochastic clean accuracy, not the
    deterministic mode's of the same n (the first one found, before)."""
    assert load_card(card_dir).stochastic_inference
    det = clean(1, 4, stochastic=False, results_file="benchmarks/results/det.json", interval=[0.63, 80.59])
    sto = clean(3, 4, stochastic=True, results_file="benchmarks/results/sto.json", interval=[19.41, 99.37])
    certified = {**clean(2, 4), "metric": "certified_accuracy", "version": "cohen-sigma0.25", "norm": "L2",
                 "eps": 0.25, "results_file": "benchmarks/results/c.json", "interval": [6.75, 93.25]}  # fmt: skip
    set_results(card_dir, [det, sto, certified])
    text = (card_dir / "README.md").read_text()
    assert "| upper: clean | deployed | none | 75.00 | [19.41, 99.37] | 3 / 4 |" in text
    assert "| 50.00 | [6.75, 93.25] | 2 / 4 |" in text


def test_the_card_opens_with_its_best_known_figure_and_keeps_it_current(card_dir: Path) -> None:
    from eee_zoo.cards.body import GLANCE_END, GLANCE_START

    path = card_dir / "README.md"
    assert "**At a glance:** nothing measured yet" in path.read_text()  # an exported card has the block already
    rand = robust(2, 4, "rand", stochastic=True, interval=[6.75, 93.25])
    worst = robust(1, 4, "zoo/per-draw", stochastic=True, suite="adaptive", images=2, fresh_draws=2,
                   interval=[0.63, 80.59], results_file="benchmarks/results/adaptive.json")  # fmt: skip
    set_results(card_dir, [rand, worst, clean(3, 4, stochastic=True, interval=[19.41, 99.37])])
    glance = path.read_text().split(GLANCE_START)[1].split(GLANCE_END)[0]
    assert "**Best-known robust accuracy: 25.00 %** [0.63, 80.59], worst case over adaptive attacks" in glance
    assert "AutoAttack `rand` (what RobustBench lists): 50.00 % [6.75, 93.25], n = 4" in glance
    assert "Clean accuracy: 75.00 % [19.41, 99.37], n = 4." in glance

    # A card written before the block existed gets it under its introduction, before the first section.
    text = path.read_text()
    older = text.replace(GLANCE_START + glance + GLANCE_END + "\n\n", "")
    assert GLANCE_START not in older and older != text
    path.write_text(older)
    set_results(card_dir, [robust(0, 4, "standard", stochastic=True, interval=[0.0, 60.24])])
    text = path.read_text()
    assert text.count(GLANCE_START) == 1 and text.index(GLANCE_END) < text.index("## Model")
    assert "**Best-known robust accuracy: 0.00 %** [0.00, 60.24], AutoAttack standard" in text


def test_a_results_interval_is_shown_and_must_hold_its_value(card_dir: Path) -> None:
    set_results(card_dir, [robust(1, 4, "rand", interval=[4.56, 69.94])])
    assert "| 25.00 | [4.56, 69.94] | 1 / 4 |" in (card_dir / "README.md").read_text()
    assert load_card(card_dir).results[0]["interval"] == [4.56, 69.94]
    for bad in ([30.0, 69.94], [4.56], ["4.56", 69.94], [4.56, 101.0]):
        with pytest.raises(CardError, match="interval"):
            set_results(card_dir, [robust(1, 4, "rand", interval=bad)])


def test_set_revision_pins_a_commit(card_dir: Path) -> None:
    set_revision(card_dir, "a" * 40)
    assert load_card(card_dir).revision == "a" * 40


# ---------------------------------------------------------------------------------------------- invalid cards
def _meta(key: str, value):
    def edit(data):
        data["eee_zoo"][key] = value

    return edit


def _arch(key: str, value):
    def edit(data):
        data["eee_zoo"]["architecture"][key] = value

    return edit


def _drop(key: str):
    def edit(data):
        del data["eee_zoo"][key]

    return edit


def _shards(shards):
    def edit(data):
        data["eee_zoo"]["filename"] = "model.safetensors.index.json"
        data["eee_zoo"]["shards"] = shards

    return edit


def _result_value(value):
    def edit(data):
        data.eval_results[0].metric_value = value

    return edit


def _result_arg(key: str, value, index: int = 0):
    def edit(data):
        data.eval_results[index].metric_args[key] = value

    return edit


@pytest.mark.parametrize(
    "edit, field",
    [
        (_meta("sha256", "abc123"), "eee_zoo.sha256"),
        (_meta("sha256", "F" * 64), "eee_zoo.sha256"),
        (_drop("revision"), "eee_zoo.revision"),
        (_drop("sha256"), "eee_zoo.sha256"),
        (_meta("stochastic_inference", "yes"), "eee_zoo.stochastic_inference"),
        (_meta("dataset", "imagenet21k"), "eee_zoo.dataset"),
        (_meta("threat_model", "L3"), "eee_zoo.threat_model"),
        (_meta("repo_id", "no spaces allowed/x y"), "eee_zoo.repo_id"),
        (_meta("filename", "model.bin"), "eee_zoo.filename"),
        (_meta("storage_dtype", "float16"), "eee_zoo.storage_dtype"),
        (_meta("filename", "model.safetensors.index.json"), "eee_zoo.shards"),  # an index needs its shards
        (_meta("shards", {"model-00001-of-00001.safetensors": "0" * 64}), "eee_zoo.filename"),  # ... and vice versa
        (_shards({"model-00001-of-00002.safetensors": "abc"}), "eee_zoo.shards.model-00001-of-00002.safetensors"),
        (_shards({"../model-00001-of-00002.safetensors": "0" * 64}), "eee_zoo.shards"),
        (_shards({"sub/model-00001-of-00002.safetensors": "0" * 64}), "eee_zoo.shards"),
        (_shards({"model-00001-of-00002.bin": "0" * 64}), "eee_zoo.shards"),
        (_shards(["model-00001-of-00002.safetensors"]), "eee_zoo.shards"),
        (_meta("name", "bad name!"), "eee_zoo.name"),
        (_meta("training", {"seed": "0"}), "eee_zoo.training.seed"),
        (_arch("num_classes", "10"), "eee_zoo.architecture.num_classes"),
        (_arch("num_classes", 100), "eee_zoo.architecture.num_classes"),  # cifar10 has 10
        (_arch("taps", "stem"), "eee_zoo.architecture.taps"),
        (lambda data: data.__dict__.pop("eee_zoo"), "eee_zoo"),
        (_result_value("50.0"), "model-index.results[0].value"),
        (_result_value(150.0), "model-index.results[0].value"),
        (_result_arg("n_examples", "4"), "model-index.results[0].n_examples"),
        (_result_arg("eps", "8/255"), "model-index.results[0].eps"),
        (_result_arg("norm", "L2", index=1), "model-index.results[1].norm"),  # L2 robustness in a Linf card
        (_result_arg("seed", None, index=1), "model-index.results[1].seed"),
    ],
)
def test_invalid_cards_name_file_and_field(card_dir: Path, edit, field: str) -> None:
    path = card_dir / "README.md"
    set_results(path, [clean(2, 4), robust(1, 4)])
    edit_front_matter(path, edit)
    with pytest.raises(CardError) as err:
        load_card(path)
    assert str(path) in str(err.value), err.value
    assert f"field '{field}'" in str(err.value), err.value


def test_card_without_front_matter_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "README.md"
    path.write_text("# Just markdown\n")
    with pytest.raises(CardError, match=r"README.md: field 'eee_zoo': missing"):
        load_card(path)


def test_missing_card_file_is_a_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="model card not found"):
        load_card(tmp_path / "nowhere" / "README.md")


# ---------------------------------------------------------------------------------------------- the real zoo
REAL_CARDS = sorted(REPO_CARDS.glob("*/*/*/README.md"))


def test_the_real_registry_loads() -> None:
    """Every card under model_cards/ validates (an empty zoo is valid too)."""
    cards = list_cards(cards_dir=REPO_CARDS)
    assert len(cards) == len(REAL_CARDS)
    assert sorted({c.name for c in cards}) == sorted(list_models(cards_dir=REPO_CARDS))


@pytest.mark.parametrize("path", REAL_CARDS, ids=[str(p.parent.relative_to(REPO_CARDS)) for p in REAL_CARDS])
def test_real_card_metadata_round_trips(path: Path) -> None:
    """Every committed card reads and rewrites unchanged; single-file float32 cards (written before sharding and
    storage_dtype existed) carry no new fields, sharded ones name every shard."""
    card = load_card(path)
    assert card.metadata() == ModelCard(path.read_text()).data["eee_zoo"]
    weights_row = [line for line in str(render_card(card)).splitlines() if line.startswith("| Weights |")]
    assert len(weights_row) == 1 and weights_row[0] in path.read_text().splitlines()
    if card.filename == "model.safetensors":
        assert card.shards == {} and card.storage_dtype == "float32" and not card.sharded
        assert "shards" not in card.metadata() and "storage_dtype" not in card.metadata()
        assert weights_row == [f"| Weights | `model.safetensors`, sha256 `{card.sha256}` |"]
    else:
        assert card.sharded and set(card.shards) == set(card.shard_filenames())
        assert all((path.parent / shard).is_file() for shard in card.shards)


@pytest.mark.parametrize("path", REAL_CARDS, ids=[str(p.parent.relative_to(REPO_CARDS)) for p in REAL_CARDS])
def test_real_card_is_valid(path: Path) -> None:
    card = load_card(path)
    build_model(card)  # the architecture builds
    if (path.parent / card.filename).is_file():
        verify_folder(path.parent)  # shipped weights match the card's sha256, config.json matches


def test_a_single_resolution_baseline_is_described_as_one(tmp_path: Path) -> None:
    """A plain classifier's card says so (no stack, heads, CrossMax or masking caveat); a self-ensemble's does not."""
    plain = {
        **TINY_CONFIG,
        "taps": [],
        "aggregator": "mean",
        "stack": {"resolutions": [32], "jitter": 0, "down_noise": 0.0, "up_noise": 0.0, "color_range": [1.0, 1.0]},
    }
    texts = {}
    for name, config in (("Plain", plain), ("Ensemble", TINY_CONFIG)):
        folder = export(SelfEnsemble.from_config(copy.deepcopy(config)).eval(), name, tmp_path / name)
        card = load_card(folder / "README.md")
        assert is_plain_classifier(card.architecture) is (name == "Plain")
        texts[name] = (folder / "README.md").read_text()
    assert "A single-resolution baseline" in texts["Plain"] and "CrossMax" not in texts["Plain"]
    assert "| Multi-resolution stack | none (the 32 px image as it is) |" in texts["Plain"]
    assert "A multi-resolution self-ensemble" in texts["Ensemble"] and "gradient masking" in texts["Ensemble"]
