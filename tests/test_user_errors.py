"""What a new user meets (issue 10): explicit paths are honoured, every error is one line, nothing is written
where the user did not ask.

Real tiny models (tests/conftest.py), real files, real ``eee-zoo`` processes (``python -m eee_zoo.cli`` from this
checkout; one per subcommand, two at a time, each paying about 3 s for importing torch) and, for the Hub, a local
endpoint that answers 404 or a closed port, so that nothing waits on huggingface_hub's retries.
"""

from __future__ import annotations

import argparse
import copy
import http.server
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TINY_CONFIG

from eee_zoo import cli, load_cifar10
from eee_zoo.commands import COMMANDS_DIR
from eee_zoo.data import ENV_VAR, SHIPPED_SLICE
from eee_zoo.hub import WeightsNotFoundError, export
from eee_zoo.loading import load_model
from eee_zoo.models import SelfEnsemble
from eee_zoo.registry import card_folder

REPO = Path(__file__).resolve().parents[1]
NAME = "UserErrors_Tiny"  # a name no committed checkpoint or results folder uses
TINY_RECIPE = "training/recipes/tiny.yaml"
AVAILABLE = [name for name in cli.COMMANDS if (COMMANDS_DIR / f"{name}.py").is_file()]


# ============================================================================================ fixtures
class _NotFoundHub(http.server.BaseHTTPRequestHandler):
    """A Hub endpoint that answers every request with 404: a download that fails at once, without retries."""

    def _not_found(self) -> None:
        self.send_response(404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_HEAD = do_POST = _not_found

    def log_message(self, *args: object) -> None:
        pass


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def zoo(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """``cards``: the tiny model exported as NAME (deterministic inference); ``bare``: the same card, no weights."""
    root = tmp_path_factory.mktemp("user_errors")
    torch.manual_seed(0)
    model = SelfEnsemble.from_config(copy.deepcopy(TINY_CONFIG)).eval().set_stochastic(False)
    cards = root / "cards"
    export(model, NAME, card_folder(NAME, cards_dir=cards))
    bare = root / "bare"  # weights published on the Hub only: load_model has to download them
    shutil.copytree(cards, bare)
    (card_folder(NAME, cards_dir=bare) / "model.safetensors").unlink()
    return {"root": root, "cards": cards, "bare": bare}


@pytest.fixture(scope="module")
def not_found_hub() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _NotFoundHub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _cases(zoo: dict[str, Path], hub_url: str) -> dict[str, tuple[list[str], int, dict[str, str]]]:
    """name -> (argv, expected exit status, extra environment): bad input for each subcommand, failing fast.

    One real process per subcommand (each pays for importing torch); more bad inputs run in-process below.
    """
    cards, root = str(zoo["cards"]), zoo["root"]
    no_network = {"HF_HUB_OFFLINE": "0", "HF_ENDPOINT": f"http://127.0.0.1:{_closed_port()}"}
    return {
        "list": (["list", "--dataset", "mnist"], 2, {}),
        "info": (["info", "No_Such_Model", "--cards-dir", cards], 1, {}),
        "demo": (["demo", "--model", NAME, "--cards-dir", cards, "--n-examples", "0"], 2, {}),
        "benchmark": (["benchmark", NAME, "--cards-dir", cards, "--n-examples", "0"], 2, {}),
        "adaptive": (["adaptive", NAME, "--cards-dir", cards, "--n-examples", "0"], 2, {}),
        "certify": (["certify", NAME, "--cards-dir", cards, "--sigma", "0"], 2, {}),
        "visualize": (["visualize", NAME, "--cards-dir", cards, "--n", "0"], 2, {}),
        "train": (  # missing data: also no run folder left behind
            ["train", "--recipe", TINY_RECIPE, "--out", str(root / "run"), "--data-dir", str(root / "no_data")]
            + ["--no-progress"],
            1,
            {},
        ),
        "export": (["export", NAME, "--from-zoo", NAME, "--cards-dir", cards], 1, {}),  # onto an existing one
        "push": (  # no network: a closed port
            ["push", str(card_folder(NAME, cards_dir=zoo["cards"])), "--repo-id", "org/name", "--no-pin"],
            1,
            no_network,
        ),
        # not a one-line case: the download is announced before the Hub is asked (and fails at once: 404)
        "hub-download": (
            ["export", "Copy", "--from-zoo", NAME, "--cards-dir", str(zoo["bare"]), "--out", str(root / "copy")],
            1,
            {"HF_HUB_OFFLINE": "0", "HF_ENDPOINT": hub_url},
        ),
    }


@pytest.fixture(scope="module")
def cli_runs(
    zoo: dict[str, Path], not_found_hub: str, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, tuple[subprocess.CompletedProcess, int]]:
    """Every case of :func:`_cases` as a real ``eee-zoo`` process (two at a time: the machine has two cores)."""
    home = tmp_path_factory.mktemp("user_errors_home")
    env = {k: v for k, v in os.environ.items() if k not in ("EEE_ZOO_DEBUG", ENV_VAR, "HF_TOKEN", "EEE_ZOO_CARDS")}
    env.update(
        HF_HUB_OFFLINE="1",
        HF_HOME=str(home / "hf"),  # no stored token, an empty Hub cache
        HF_HUB_CACHE=str(home / "hf" / "hub"),
        XDG_CACHE_HOME=str(home / "cache"),
        HF_HUB_DISABLE_TELEMETRY="1",
        OMP_NUM_THREADS="1",
    )

    def run(case: tuple[list[str], int, dict[str, str]]) -> subprocess.CompletedProcess:
        argv, _, extra = case
        command = [sys.executable, "-m", "eee_zoo.cli", *argv]
        return subprocess.run(command, cwd=REPO, env={**env, **extra}, capture_output=True, text=True, timeout=120)

    cases = _cases(zoo, not_found_hub)
    with ThreadPoolExecutor(max_workers=2) as pool:
        done = dict(zip(cases, pool.map(run, cases.values())))
    return {name: (done[name], expected) for name, (_, expected, _) in cases.items()}


def _in_process(argv: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str]:
    """``eee-zoo ARGV`` in this process: (exit status, stderr); an exception escaping ``main`` fails the test."""
    try:
        code = cli.main(argv)
    except SystemExit as e:  # argparse
        code = e.code
    return code, capsys.readouterr().err


def _one_line(run: subprocess.CompletedProcess) -> str:
    lines = run.stderr.splitlines()
    assert len(lines) == 1 and "Traceback" not in run.stderr, run.stderr
    return lines[0]


# ============================================================================================ 1. explicit paths
def test_explicit_data_folder_is_never_passed_over(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)
    missing = tmp_path / "nonexistent"
    with pytest.raises(FileNotFoundError) as err:
        load_cifar10(n_examples=5, data_dir=missing)
    message = str(err.value)
    assert f"data_dir {missing} does not exist" in message and str(missing / "cifar10" / "test.npz") in message
    assert "cifar-10-batches-py" in message  # torchvision's files would do too

    monkeypatch.setenv(ENV_VAR, str(missing))
    with pytest.raises(FileNotFoundError, match=re.escape(f"{ENV_VAR}={missing} does not exist")):
        load_cifar10(n_examples=5)

    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError) as err:  # offline (conftest): it holds nothing and cannot receive a download
        load_cifar10(n_examples=5, data_dir=empty)
    assert f"data_dir {empty} holds neither {empty / 'cifar10' / 'test.npz'}" in str(err.value)
    assert not (empty / "cifar10").exists()

    # A folder holding a prefix <dataset>/<split>.npz, as training/gpu/call.py and the tests build, still serves.
    (tmp_path / "prefix" / "cifar10").mkdir(parents=True)
    with np.load(SHIPPED_SLICE) as d:
        np.savez(tmp_path / "prefix" / "cifar10" / "test.npz", x=d["x"][:20], y=d["y"][:20])
        first = torch.from_numpy(d["x"][:5]).permute(0, 3, 1, 2).float() / 255
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "prefix"))
    x, _ = load_cifar10(n_examples=5)
    assert torch.equal(x, first)
    with pytest.raises(ValueError, match="holds only the first 20 images; 50 were requested"):
        load_cifar10(n_examples=50)  # not silently the shipped slice either


def test_explicit_model_dir_is_never_passed_over(zoo: dict[str, Path], tmp_path: Path) -> None:
    missing = tmp_path / "does" / "not" / "exist"
    with pytest.raises(WeightsNotFoundError) as err:
        load_model(NAME, cards_dir=zoo["cards"], model_dir=missing)
    message = str(err.value)
    assert f"model_dir {missing} does not exist" in message
    assert str(missing / "cifar10" / "Linf" / f"{NAME}.safetensors") in message

    (tmp_path / "models").mkdir()
    with pytest.raises(WeightsNotFoundError, match=f"holds no cifar10/Linf/{NAME}.safetensors"):
        load_model(NAME, cards_dir=zoo["cards"], model_dir=tmp_path / "models")
    # Without model_dir the card's folder is where the weights come from.
    assert load_model(NAME, cards_dir=zoo["cards"]).eee_info["weights_source"] == "card_folder"


# ============================================================================================ 2. one-line errors
def test_push_without_network_is_one_line(cli_runs: dict) -> None:
    run, _ = cli_runs["push"]
    line = _one_line(run)
    assert run.returncode == 1 and line.startswith("eee-zoo: error: could not reach the Hugging Face Hub")
    assert "ConnectError" in line and "push again" in line


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16, torch.bfloat16])
def test_images_of_any_float_dtype_are_accepted_with_gradients(tiny_model, dtype: torch.dtype) -> None:
    tiny_model.set_stochastic(False)
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0)).to(dtype).requires_grad_()
    logits = tiny_model(x)
    assert logits.dtype == torch.float32
    assert torch.equal(logits, tiny_model(x.detach().float()))
    logits[:, 0].sum().backward()  # an attack's gradient still reaches the input
    assert x.grad is not None and x.grad.dtype == dtype and x.grad.abs().sum() > 0


def test_missing_weights_say_what_is_tried_before_the_hub(cli_runs: dict) -> None:
    run, _ = cli_runs["hub-download"]
    assert run.returncode == 1 and "Traceback" not in run.stderr, run.stderr
    lines = run.stderr.splitlines()
    trying = [i for i, line in enumerate(lines) if "downloading model.safetensors from the Hugging Face Hub" in line]
    assert trying and f"weights of '{NAME}'" in lines[trying[0]] and "HF_HUB_OFFLINE=1" in lines[trying[0]]
    assert lines[-1].startswith(f"eee-zoo: error: weights of '{NAME}'") and trying[0] < len(lines) - 1


def test_argument_errors_come_first_with_the_same_wording(cli_runs: dict) -> None:
    for command in ("demo", "benchmark", "adaptive"):
        run, _ = cli_runs[command]
        line = _one_line(run)
        assert run.returncode == 2 and run.stdout == "", (command, run.stdout)  # refused before loading anything
        assert line == (
            f"eee-zoo {command}: error: argument --n-examples: expected a positive integer, got 0 "
            f"(see `eee-zoo {command} --help`)"
        )


def test_export_onto_an_existing_checkpoint_names_the_flag(cli_runs: dict) -> None:
    run, _ = cli_runs["export"]
    line = _one_line(run)
    assert run.returncode == 1 and "--overwrite" in line and "overwrite=True" not in line


def test_every_option_has_help_text() -> None:
    cli.add_checkout_to_path()
    parser = cli.build_parser()
    (subparsers,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    missing = [
        f"{name} {action.option_strings or action.dest}"
        for name, sub in subparsers.choices.items()
        for action in sub._actions
        if not action.help
    ]
    assert missing == []


def test_messages_never_name_the_development_checkout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    with pytest.raises(FileNotFoundError) as err:
        load_cifar10(n_examples=501)  # beyond the shipped slice, downloads off
    assert "../shared" not in str(err.value)
    assert "<dataset>/<split>.npz" in str(err.value) and "torchvision" in str(err.value)
    offenders = [
        str(path.relative_to(REPO))
        for path in sorted((REPO / "eee_zoo").rglob("*.py"))
        if "../shared" in path.read_text()
    ]
    assert offenders == []


# ============================================================================================ 3. nothing written
def test_a_failed_train_start_leaves_no_run_folder(cli_runs: dict, zoo: dict[str, Path]) -> None:
    run, _ = cli_runs["train"]
    line = _one_line(run)
    assert run.returncode == 1 and str(zoo["root"] / "no_data") in line
    assert not (zoo["root"] / "run").exists()


def test_a_failed_train_start_in_an_existing_folder_removes_only_its_own_files(tmp_path: Path) -> None:
    from training.train import main as train_main

    out = tmp_path / "run"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    argv = ["--recipe", str(REPO / TINY_RECIPE), "--out", str(out), "--data-dir", str(tmp_path / "no_data")]
    assert train_main([*argv, "--no-progress"]) == 1
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]


def test_benchmark_results_stay_out_of_the_source_tree(
    zoo: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # the user's cache: results and AutoAttack state
    in_tree = REPO / "benchmarks" / "results" / "cifar10" / "Linf" / NAME
    assert not in_tree.exists()
    argv = ["benchmark", NAME, "--cards-dir", str(zoo["cards"]), "--n-examples", "2", "--batch-size", "2"]
    try:
        assert cli.main([*argv, "--no-progress"]) == 0
        out = capsys.readouterr().out
        (path,) = (tmp_path / "cache" / "eee_zoo" / "results" / "cifar10" / "Linf" / NAME).glob("*.json")
        assert f"results: {path}" in out
        assert not in_tree.exists()

        assert cli.main([*argv, "--no-progress", "--out", str(tmp_path / "mine")]) == 0
        assert f"results: {tmp_path / 'mine'}" in capsys.readouterr().out
    finally:  # on a regression, leave the checkout as it was
        if in_tree.exists():
            shutil.rmtree(in_tree)


# ============================================================================================ 4. every subcommand
def test_every_subcommand_fails_on_bad_input_in_one_line(cli_runs: dict) -> None:
    assert set(AVAILABLE) <= set(cli_runs), f"add a bad-input case for {sorted(set(AVAILABLE) - set(cli_runs))}"
    for name, (run, expected) in cli_runs.items():
        if name == "hub-download":
            continue
        assert run.returncode == expected, (name, run.returncode, run.stderr)
        line = _one_line(run)
        assert line.startswith("eee-zoo") and ": error: " in line, (name, line)


@pytest.mark.parametrize(
    "argv, expected, says",
    [
        (["demo", "--model", NAME, "--n-examples", "2", "--data-dir", "{root}/nowhere"], 1, "{root}/nowhere"),
        (["benchmark", "No_Such_Model", "--n-examples", "2"], 1, "unknown model 'No_Such_Model'"),
        (["adaptive", NAME, "--preset", "pgd"], 2, "invalid choice: 'pgd'"),
        (["train", "--recipe", "{root}/missing.yaml", "--out", "{root}/run3"], 1, "{root}/missing.yaml"),
        (["export", NAME], 2, "one of the arguments --config --from-zoo is required"),
        (["push", "{root}/no_such_folder"], 1, "{root}/no_such_folder"),
        (["info"], 2, "the following arguments are required: name"),
        (["certify", NAME, "--sigma", "0.25", "--shard", "2/2"], 2, "expected K/N with 0 <= K < N"),
    ],
)
def test_more_bad_inputs_fail_in_one_line(
    zoo: dict[str, Path], capsys: pytest.CaptureFixture, argv: list[str], expected: int, says: str
) -> None:
    argv = [a.format(root=zoo["root"]) for a in argv]
    if argv[0] in ("demo", "benchmark", "adaptive", "certify"):
        argv += ["--cards-dir", str(zoo["cards"])]
    code, err = _in_process(argv, capsys)
    assert code == expected and err.count("\n") == 1, err
    assert err.startswith("eee-zoo") and says.format(root=zoo["root"]) in err
