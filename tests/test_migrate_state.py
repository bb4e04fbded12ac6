"""benchmarks/migrate_state: states keyed without the model's config are re-keyed and then resumed, not redone.

The tiny model (trained for two seconds) is exported as a zoo card; real adaptive and AutoAttack runs write the
current state, which is turned back into what the earlier format wrote (no model config in the key) and migrated.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from conftest import adaptive_counts
from tiny_model import TINY_CONFIG, train_tiny_model

from benchmarks.migrate_state import main as migrate_main
from benchmarks.migrate_state import migrate, migrate_autoattack, zoo_cards
from eee_zoo.adaptive import Attack, adaptive_evaluate
from eee_zoo.adaptive.evaluate import state_folder
from eee_zoo.data import load_cifar10
from eee_zoo.evaluation import evaluate
from eee_zoo.evaluation.state import state_location
from eee_zoo.hub import export
from eee_zoo.loading import load_model

pytest.importorskip("pyautoattack")

FAST = (
    Attack("apgd-ce-det", surrogate="deployed", n_iter=3),
    Attack("pgd-mean-eot", surrogate="mean", draws=2, optimiser="pgd", n_iter=4, record_every=2),
)
DRAWS = {"selection_draws": 3, "final_draws": 6, "tie_draws": 12, "fresh_draws": 4, "batch_size": 4}


@pytest.fixture(scope="module")
def zoo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cards = tmp_path_factory.mktemp("cards")
    export(train_tiny_model(copy.deepcopy(TINY_CONFIG)), "Tiny", cards / "cifar10" / "Linf" / "Tiny")
    return cards


@pytest.fixture(scope="module")
def data():
    return load_cifar10(n_examples=8)


def test_format_2_batches_are_rekeyed_to_their_checkpoints_config_and_resumed(zoo, data, tmp_path: Path) -> None:
    """A folder keyed without the config (format 2) gets the key the current code computes for the zoo checkpoint it
    attacked, and its batches are read back, not attacked again."""
    model = load_model("Tiny", cards_dir=zoo, device="cpu")
    kw = {"inputs": data, "attacks": FAST, "autoattack": (), "progress": False, **DRAWS}
    first = adaptive_evaluate(model, 8, state_dir=tmp_path / "state", **kw)
    (current,) = (tmp_path / "state").iterdir()
    files = {f.name: f.read_bytes() for f in current.glob("*")}
    old = {k: v for k, v in json.loads(files["batch000000.json"])["config"].items() if k != "model_config"}
    old["format"] = 2  # the same batches as format 2 wrote them: no model config in the key
    legacy = current.parent / state_folder(old)
    current.rename(legacy)
    for f in legacy.glob("*.json"):
        f.write_text(json.dumps({**json.loads(f.read_text()), "config": old}))
    assert migrate(tmp_path / "state", zoo_cards(str(zoo))) == [(legacy.name, current.name)]
    assert sorted(f.name for f in current.glob("*")) == sorted(files)
    for name in (n for n in files if n.endswith(".json")):
        assert json.loads(current.joinpath(name).read_text()) == json.loads(files[name])
    stamp = current.joinpath("batch000000.json").stat().st_mtime_ns
    again = adaptive_evaluate(model, 8, state_dir=tmp_path / "state", **kw)
    assert current.joinpath("batch000000.json").stat().st_mtime_ns == stamp  # read back, not attacked again
    assert adaptive_counts(again) == adaptive_counts(first)
    assert migrate(tmp_path / "state", zoo_cards(str(zoo))) == []  # current folders stay as they are


def test_autoattack_states_of_the_checkpoint_are_rekeyed_and_resumed_and_variants_left(zoo, data, tmp_path) -> None:
    """An AutoAttack state run under the card's name, in either inference mode, is re-keyed with the card's config in
    that mode and then reused as finished; one run under another name (a variant) is left as it is."""
    kw = {"inputs": data, "attack_overrides": {"apgd.n_iter": 3, "apgd.eot_iter": 2}, "batch_size": 4, "seed": 0,
          "progress": False, "state_path": tmp_path}  # fmt: skip
    model = load_model("Tiny", cards_dir=zoo, device="cpu")
    runs = {}
    for mode in (True, False):
        model.set_stochastic(mode)
        runs[mode] = evaluate(model, 8, version="rand", **kw)
    evaluate(model, 8, version="rand", model_name="Tiny-variant", **kw)
    originals = sorted(p.name for p in tmp_path.glob("*.eee.json"))
    assert len(originals) == 3
    for record in tmp_path.glob("*.eee.json"):  # as the earlier key wrote them
        state = json.loads(record.read_text())
        state["identity"].pop("model_config")
        with state_location(tmp_path, state["identity"], chunked=False) as where:
            stem = where.stem
        record.with_name(record.name.replace(".eee.json", ".adv.safetensors")).rename(
            tmp_path / f"{stem}.adv.safetensors"
        )
        (tmp_path / f"{stem}.eee.json").write_text(json.dumps(state))
        record.unlink()
    moved = migrate_autoattack(tmp_path, zoo_cards(str(zoo)))
    assert len(moved) == 2 and sorted(p.name for p in tmp_path.glob("*.eee.json")) != originals  # variant left
    assert sorted(new + ".eee.json" for _, new in moved) == [n for n in originals if not n.startswith("Tiny-variant")]
    for mode in (True, False):
        model.set_stochastic(mode)
        again = evaluate(model, 8, version="rand", **kw)
        assert any("reused the finished" in n for n in again.notes) and again.outcomes == runs[mode].outcomes


def test_the_command_names_a_missing_folder_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert migrate_main([str(tmp_path / "nowhere")]) == 2
    assert capsys.readouterr().err.strip() == f"error: state dir {tmp_path / 'nowhere'} does not exist"
