"""The ``eee-zoo`` command: help, usage errors (exit 2), library errors (one line, exit 1), list/info/export."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from eee_zoo import cli
from eee_zoo.cards import load_card, set_results
from eee_zoo.commands import COMMANDS_DIR
from eee_zoo.hub import export
from eee_zoo.loading import load_model
from eee_zoo.registry import card_folder

AVAILABLE = [name for name in cli.COMMANDS if (COMMANDS_DIR / f"{name}.py").is_file()]
X = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))


@pytest.fixture
def cards(tmp_path: Path, tiny_model) -> Path:
    root = tmp_path / "cards"
    for name in ("Tiny-10", "Tiny-2"):
        export(tiny_model, name, card_folder(name, cards_dir=root), training={"recipe": "r.yaml", "seed": 1})
    return root


def run(argv: list[str]) -> int:
    try:
        return cli.main(argv)
    except SystemExit as e:  # argparse: --help (0) and usage errors (2)
        return e.code


@pytest.mark.parametrize("name", AVAILABLE)
def test_command_modules_follow_the_contract(name: str) -> None:
    module = importlib.import_module(f"eee_zoo.commands.{name}")
    assert isinstance(module.HELP, str) and module.HELP
    assert module.HELP[0].isupper() and module.HELP.endswith("."), "the command list reads as sentences"
    assert callable(module.add_arguments) and callable(module.run)


def test_readme_command_block_names_every_subcommand() -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    block = readme.split("## Command line", 1)[1].split("```", 2)[1]
    listed = {line.split()[1] for line in block.splitlines() if line.startswith("eee-zoo ")}
    assert listed == set(cli.COMMANDS)


@pytest.mark.parametrize("argv", [["--help"], *[[name, "--help"] for name in AVAILABLE]])
def test_help_exits_0(argv: list[str], capsys: pytest.CaptureFixture) -> None:
    assert run(argv) == 0
    assert "usage: eee-zoo" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["no-such-command"],
        ["list", "--dataset", "mnist"],
        ["list", "--threat-model", "L7"],
        ["list", "--no-such-flag"],
        ["info"],
        ["export", "X"],  # no source
        ["export", "X", "--config", "c.json"],  # --config needs --weights
        ["export", "X", "--config", "c.json", "--from-zoo", "Y"],
        ["push"],
        ["benchmark", "X", "--chunk-size", "0"],
        ["adaptive", "X", "--autoattack-chunk-size", "100"],  # without --autoattack-runs: says what it goes with
        ["visualize", "X", "--autoattack-chunk-size", "100"],
    ],
)
def test_bad_usage_exits_2_with_one_line(argv: list[str], capsys: pytest.CaptureFixture) -> None:
    assert run(argv) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1].startswith("eee-zoo")


def test_list(cards: Path, capsys: pytest.CaptureFixture) -> None:
    assert run(["list", "--cards-dir", str(cards)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:3] == ["NAME", "DATASET", "THREAT"]
    assert [line.split()[0] for line in lines[1:]] == ["Tiny-2", "Tiny-10"]  # natural order
    assert "airbench, 4 predictors, crossmax k=3" in lines[1] and "stochastic" in lines[1]

    assert run(["list", "*-1?", "--cards-dir", str(cards), "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["name"] == "Tiny-10" and row["clean"] is None and row["robust"] == {}

    assert run(["list", "--cards-dir", str(cards), "--dataset", "CIFAR100"]) == 0
    assert "no models match" in capsys.readouterr().out


def test_list_and_info_lead_with_the_best_known_figure(cards: Path, capsys: pytest.CaptureFixture) -> None:
    """The lowest robust accuracy any attack reached on the deployed model, with its interval and what it counts."""
    common = {"n_examples": 4, "norm": "Linf", "eps": 8 / 255, "seed": 0, "stochastic": True, "results_file": "r.json"}
    set_results(
        card_folder("Tiny-2", cards_dir=cards),
        [
            {"metric": "robust_accuracy", "value": 50.0, "correct": 2, "version": "rand", **common,
             "interval": [15.0, 85.0]},
            {"metric": "robust_accuracy", "value": 25.0, "correct": 1, "version": "standard", **common,
             "interval": [4.56, 69.94]},
            {"metric": "robust_accuracy", "value": 0.0, "correct": 0, "version": "standard", **common,
             "eps": 16 / 255, "interval": [0.0, 48.99]},  # another threat budget: not the default eps's figure
        ],
    )  # fmt: skip
    assert run(["list", "--cards-dir", str(cards)]) == 0
    header, tiny2, tiny10 = capsys.readouterr().out.splitlines()
    assert header.index("BEST-KNOWN ROBUST %") < header.index("ALL ROBUST %")
    assert "25.00 [4.56, 69.94] (AutoAttack standard, seed 0)" in tiny2
    assert "rand 50.00 [15.00, 85.00] (n=4, stochastic)" in tiny2
    assert tiny10.split()[-1] == "-"
    assert run(["list", "Tiny-2", "--cards-dir", str(cards), "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["best_known"]["value"] == 25.0 and row["best_known"]["interval"] == [4.56, 69.94]
    assert run(["info", "Tiny-2", "--cards-dir", str(cards)]) == 0
    expected = "best-known:   25.00 % [4.56, 69.94] robust at Linf eps 8/255 (AutoAttack standard"
    assert expected in capsys.readouterr().out


def test_info(cards: Path, capsys: pytest.CaptureFixture) -> None:
    card = load_card(card_folder("Tiny-2", cards_dir=cards))
    assert run(["info", "Tiny-2", "--cards-dir", str(cards)]) == 0
    out = capsys.readouterr().out
    assert card.sha256 in out and card.repo_id in out and "none yet" in out and '"airbench"' in out
    assert "best-known:   - (no robust accuracy at the default eps yet)" in out

    assert run(["info", "Tiny-2", "--cards-dir", str(cards), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["architecture"] == card.architecture and data["training"] == {"recipe": "r.yaml", "seed": 1}


def test_library_errors_are_one_line_and_exit_1(cards: Path, capsys: pytest.CaptureFixture) -> None:
    assert run(["info", "Tiny-3", "--cards-dir", str(cards)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("eee-zoo: error: unknown model 'Tiny-3'") and "did you mean" in err


def test_export_from_config_and_weights(tmp_path: Path, tiny_model, capsys: pytest.CaptureFixture) -> None:
    config, weights = tmp_path / "config.json", tmp_path / "weights.safetensors"
    config.write_text(json.dumps(tiny_model.config))
    save_file(tiny_model.state_dict(), str(weights))
    cards = tmp_path / "cards"
    argv = ["export", "Cli-1", "--config", str(config), "--weights", str(weights), "--cards-dir", str(cards)]
    argv += [
        "--threat-model",
        "l2",
        "--recipe",
        "training/recipes/tiny.yaml",
        "--training-seed",
        "3",
        "--deterministic",
    ]
    assert run(argv) == 0
    assert "exported Cli-1 (cifar10/L2)" in capsys.readouterr().out
    card = load_card(card_folder("Cli-1", "cifar10", "L2", cards_dir=cards))
    assert card.training == {"recipe": "training/recipes/tiny.yaml", "seed": 3} and card.stochastic_inference is False

    model = load_model("Cli-1", "cifar10", "L2", cards_dir=cards)
    tiny_model.set_stochastic(False)
    with torch.no_grad():
        assert torch.equal(model(X), tiny_model(X))

    assert run(argv) == 1  # exists already
    assert "overwrite" in capsys.readouterr().err
    assert run([*argv, "--overwrite"]) == 0


def test_export_from_the_zoo(cards: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "hub-ready"
    assert run(["export", "Copy", "--from-zoo", "Tiny-2", "--cards-dir", str(cards), "--out", str(out)]) == 0
    card = load_card(out)
    assert card.name == "Copy" and card.training == {"recipe": "r.yaml", "seed": 1}
    assert card.sha256 == load_card(card_folder("Tiny-2", cards_dir=cards)).sha256


def test_real_subprocess_entry_point() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "eee_zoo.cli", "--help"], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    for name in AVAILABLE:
        assert name in result.stdout
    result = subprocess.run(
        [sys.executable, "-m", "eee_zoo.cli", "list", "--dataset", "nope"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2 and "unknown dataset 'nope'" in result.stderr


def test_adaptive_prints_the_result_as_json(cards: Path, capsys: pytest.CaptureFixture) -> None:
    pytest.importorskip("pyautoattack")
    argv = ["adaptive", "Tiny-10", "--cards-dir", str(cards), "--n-examples", "4", "--preset", "quick", "--autoattack"]
    argv += ["--selection-draws", "2", "--fresh-draws", "2", "--seed", "3", "--state-dir", str(cards.parent / "state")]
    assert run([*argv, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["suite"] == "adaptive" and result["model_name"] == "Tiny-10" and result["n_examples"] == 4
    assert result["seed"] == 3 and len(result["robust"]["fresh_hits"]) == 4 and result["preset"] == "quick"
    assert list((cards.parent / "state").glob("adaptive_*/batch*.json"))  # finished batches kept for resuming
    assert run(["adaptive", "No-Such-Model", "--cards-dir", str(cards)]) == 1
