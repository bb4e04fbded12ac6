"""benchmarks/ablation.py: inference-time variants of an exported checkpoint evaluated with the real AutoAttack.

The tiny model (trained for two seconds) is exported as a card; its variants are attacked with AutoAttack
``standard`` (the real configuration) on four images of its deterministic mode.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from tiny_model import train_tiny_model

from benchmarks.ablation import load_spec
from benchmarks.ablation import main as ablation_main
from benchmarks.results import load_result
from eee_zoo.evaluation import evaluate
from eee_zoo.hub import export
from eee_zoo.loading import load_model

N = 4


@pytest.fixture(scope="module")
def cards(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from conftest import TINY_CONFIG

    root = tmp_path_factory.mktemp("cards")
    model = train_tiny_model(TINY_CONFIG)  # deterministic stack, as trained
    export(model, "Tiny", root / "cifar10" / "Linf" / "Tiny", training={"seed": 0})
    return root


def _spec(folder: Path, variants: str) -> Path:
    path = folder / "tiny_ablation.yaml"
    path.write_text(
        f"model: Tiny\ndataset: cifar10\nversion: standard\nn_examples: {N}\nseed: 0\nbatch_size: {N}\n"
        f"variants:\n{variants}"
    )
    return path


def test_variants_are_attacked_once_and_tabled_from_their_results_files(
    cards: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    spec = _spec(
        tmp_path,
        "  - {name: as-is, what: unchanged}\n"
        "  - {name: k2, what: CrossMax k = 2, change: {k: 2}}\n"
        "  - {name: mean, what: mean of the logits, change: {aggregator: mean}}\n",
    )
    argv = [str(spec), "--cards-dir", str(cards), "--state-dir", str(tmp_path / "state"), "--no-progress"]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert ablation_main(argv) == 0
        # The unchanged variant is the checkpoint itself: the same outcomes as evaluating it directly.
        model = load_model("Tiny", cards_dir=cards, stochastic=False)
        direct = evaluate(model, N, version="standard", batch_size=N, seed=0)
    finally:
        torch.set_num_threads(threads)
    table = capsys.readouterr().out
    data = json.loads((tmp_path / "tiny_ablation" / "ablation.json").read_text())
    assert data["missing"] == [] and [r["name"] for r in data["rows"]] == ["as-is", "k2", "mean"]
    as_is, k2, mean = data["rows"]
    assert as_is["robust_correct"] == direct.robust_correct and as_is["clean_correct"] == direct.clean_correct
    assert load_result(as_is["results_file"])["outcomes"] == direct.outcomes
    assert (as_is["predictors"], as_is["k"], k2["k"], mean["aggregator"], mean["k"]) == (4, 3, 2, "mean", None)
    stored = load_result(k2["results_file"])
    assert stored["model_name"] == "Tiny+k2" and stored["model_config"]["k"] == 2
    assert stored["checkpoint_sha256"] == model.eee_info["sha256"]  # the weights are the checkpoint's
    for r in data["rows"]:
        assert f"({r['robust_correct']}/{N})" in table and f"| [{r['name']}](" in table  # rows link their files
    written = (tmp_path / "tiny_ablation" / "ABLATION.md").read_bytes()

    # Again: nothing is attacked (every results file exists) and the table comes out byte for byte.
    assert ablation_main([*argv[:1], "--table-only", *argv[1:]]) == 0
    assert (tmp_path / "tiny_ablation" / "ABLATION.md").read_bytes() == written
    assert ablation_main(argv) == 0 and "variant " not in capsys.readouterr().err


def test_a_variant_renamed_to_another_change_is_refused_then_evaluated_afresh(
    cards: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """Every variant shares the checkpoint's weights hash: neither its results file nor AutoAttack's state may be
    reused for another change under the same name."""
    from eee_zoo.models.variants import derive

    spec = _spec(tmp_path, "  - {name: v, what: CrossMax k = 2, change: {k: 2}}\n")
    argv = [str(spec), "--cards-dir", str(cards), "--state-dir", str(tmp_path / "state"), "--no-progress"]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert ablation_main(argv) == 0
        # The stem's head alone is right on other images than the k = 2 ensemble (clean: --RR against -RR-).
        spec.write_text(spec.read_text().replace("change: {k: 2}", "change: {predictors: [stem], aggregator: mean}"))
        assert ablation_main(argv) == 2
        assert "was computed with another configuration than variant 'v'" in capsys.readouterr().err
        (stored,) = (tmp_path / "tiny_ablation" / "results").rglob("*.json")
        stored.unlink()
        assert ablation_main(argv) == 0  # attacked again, not read back from the k = 2 run's state
        model = load_model("Tiny", cards_dir=cards, stochastic=False)
        direct = evaluate(
            derive(model, predictors=["stem"], aggregator="mean"), N, version="standard", batch_size=N, seed=0
        )
    finally:
        torch.set_num_threads(threads)
    fresh = load_result(stored)
    assert fresh["model_config"]["aggregator"] == "mean" and fresh["outcomes"] == direct.outcomes
    assert direct.outcomes[1] != "-" and direct.outcomes[3] == "-"  # what a reused k = 2 state would not give


def test_unfinished_variants_are_named_not_hidden(cards: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    spec = _spec(tmp_path, "  - {name: k2, what: CrossMax k = 2, change: {k: 2}}\n")
    assert ablation_main([str(spec), "--cards-dir", str(cards), "--table-only"]) == 0
    assert "Not yet evaluated: k2" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("variants", "message"),
    [
        ("  - {name: a, what: x, change: {width: 2}}\n", "knobs ['width'] cannot change at inference"),
        ("  - {name: a, what: x}\n  - {name: a, what: y}\n", "the name 'a' is used twice"),
        ("  - {name: a}\n", "needs 'name' and 'what'"),
    ],
)
def test_bad_specs_fail_with_one_line(tmp_path: Path, variants: str, message: str) -> None:
    with pytest.raises(ValueError) as err:
        load_spec(_spec(tmp_path, variants))
    assert message in str(err.value) and "\n" not in str(err.value)


def test_unknown_checkpoint_and_missing_spec_are_one_line_errors(
    cards: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    assert ablation_main([str(tmp_path / "nowhere.yaml")]) == 2
    assert capsys.readouterr().err.strip().endswith("nowhere.yaml does not exist")
    spec = _spec(tmp_path, "  - {name: k2, what: x, change: {k: 2}}\n")
    spec.write_text(spec.read_text().replace("model: Tiny", "model: Tinny"))
    assert ablation_main([str(spec), "--cards-dir", str(cards)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Tinny" in err and err.count("\n") == 1
