"""benchmarks/: results files, the card-backing rule, `eee-zoo benchmark`, `python -m benchmarks.run`, leaderboard.

A real checkpoint folder is exported from the tiny model (trained for two seconds so that attacks have
something to break) and evaluated with the real AutoAttack ``standard`` version on four images.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest
import torch
from tiny_model import train_tiny_model

from benchmarks.leaderboard import build, headline, model_info
from benchmarks.results import (
    ResultsError,
    card_results,
    check_card,
    check_cards,
    examples_path,
    iter_results,
    load_result,
    result_path,
    results_file_reference,
    save_result,
)
from benchmarks.run import main as run_main
from eee_zoo.cards import load_card, result_suite, set_results
from eee_zoo.cli import main as cli_main
from eee_zoo.data import load_dataset
from eee_zoo.evaluation import EvaluationResult, evaluate, load_adversarial_examples
from eee_zoo.hub import export

REPO = Path(__file__).resolve().parents[1]
N = 4


@pytest.fixture(scope="module")
def checkout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A checkout-shaped folder: model_cards/cifar10/Linf/Tiny (exported, stochastic inference) + benchmarks/results."""
    from conftest import TINY_CONFIG

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        root = tmp_path_factory.mktemp("checkout")
        model = train_tiny_model(TINY_CONFIG).set_stochastic(True)
        export(model, "Tiny", root / "model_cards" / "cifar10" / "Linf" / "Tiny", training={"seed": 0})
        (root / "benchmarks" / "results").mkdir(parents=True)
        return root
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def real_result(checkout: Path) -> EvaluationResult:
    """AutoAttack standard (the real configuration) on 4 images, deterministic mode of the exported model."""
    from eee_zoo.loading import load_model

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model = load_model("Tiny", cards_dir=checkout / "model_cards", stochastic=False)
        return evaluate(model, N, version="standard", batch_size=N, seed=0)
    finally:
        torch.set_num_threads(threads)


def _argv(checkout: Path, *extra: str) -> list[str]:
    return [
        "Tiny", "--cards-dir", str(checkout / "model_cards"), "--results-dir", str(checkout / "benchmarks" / "results"),
        "--state-dir", str(checkout / "state"), "--n-examples", str(N), "--batch-size", str(N), "--no-progress", *extra,
    ]  # fmt: skip


# ============================================================================================ results files
def test_results_file_name_carries_the_configuration(real_result: EvaluationResult, tmp_path: Path) -> None:
    path = result_path(real_result, tmp_path)
    assert path.relative_to(tmp_path).parts[:3] == ("cifar10", "Linf", "Tiny")
    assert path.name == f"standard_det_eps8-255_n{N}_seed0_{real_result.checkpoint_sha256[:12]}.json"
    assert result_path(dataclasses.replace(real_result, seed=1), tmp_path) != path
    assert result_path(dataclasses.replace(real_result, version="rand", stochastic=True), tmp_path) != path


def test_results_files_are_never_overwritten_by_another_configuration(
    real_result: EvaluationResult, tmp_path: Path
) -> None:
    path = save_result(real_result, tmp_path)
    assert save_result(real_result, tmp_path) == path  # same configuration: same file
    data = load_result(path)
    assert data["robust_correct"] == real_result.robust_correct and path.with_suffix(".log").is_file()
    assert "running apgd-ce" in path.with_suffix(".log").read_text()
    with pytest.raises(ResultsError, match="batch_size: 4 there, 2 now"):
        save_result(dataclasses.replace(real_result, batch_size=2), tmp_path)
    flipped = "R" if real_result.outcomes[0] != "R" else "-"
    rerun = dataclasses.replace(real_result, outcomes=flipped + real_result.outcomes[1:])
    here = f"{real_result.versions['cpu']}, {real_result.versions['cpu_capability']}"
    with pytest.raises(ResultsError, match=f"did not reproduce.*stored: {re.escape(here)}.*now: {re.escape(here)}"):
        save_result(rerun, tmp_path)
    data_elsewhere = {**data, "versions": {k: v for k, v in data["versions"].items() if k != "cpu_capability"}}
    path.write_text(json.dumps(data_elsewhere))  # a file from before the CPU was recorded
    with pytest.raises(ResultsError, match="stored: a CPU the file does not name"):
        save_result(rerun, tmp_path)
    path.write_text(json.dumps(data))
    assert load_result(path) == data  # untouched
    with pytest.raises(ResultsError, match="reduced attack settings"):
        save_result(dataclasses.replace(real_result, attack_overrides={"apgd.n_iter": 2}), tmp_path)
    with pytest.raises(ResultsError, match="'caller' inputs"):
        save_result(dataclasses.replace(real_result, data={**real_result.data, "source": "caller"}), tmp_path)


def test_headline_prefers_the_version_matching_inference_then_largest_n() -> None:
    base = {"attack_overrides": {}, "data": {"source": "eee_zoo.data.load_dataset"}, "chunk_size": None}
    rows = [
        {**base, "version": "standard", "stochastic": True, "n_examples": 10000, "seed": 0},
        {**base, "version": "rand", "stochastic": True, "n_examples": 100, "seed": 1},
        {**base, "version": "rand", "stochastic": True, "n_examples": 1000, "seed": 2},
        {**base, "version": "rand", "stochastic": True, "n_examples": 5000, "seed": 0, "attack_overrides": {"x": 1}},
    ]
    assert headline(rows) is rows[2]
    assert headline(rows[3:]) is None


# ============================================================================================ CLI, run, cards
def test_cli_benchmark_writes_results_and_card(checkout: Path, capsys: pytest.CaptureFixture) -> None:
    card_path = checkout / "model_cards" / "cifar10" / "Linf" / "Tiny" / "README.md"
    assert load_card(card_path).results == []
    assert cli_main(["benchmark", *_argv(checkout, "--deterministic", "--write-card")]) == 0
    out = capsys.readouterr().out
    assert "AutoAttack standard" in out and "robust accuracy" in out
    (path,) = (checkout / "benchmarks" / "results" / "cifar10" / "Linf" / "Tiny").glob("standard_det_*.json")
    data = load_result(path)
    card = load_card(card_path)
    assert {(r["metric"], r["correct"], r["n_examples"]) for r in card.results} == {
        ("clean_accuracy", data["clean_correct"], N),
        ("robust_accuracy", data["robust_correct"], N),
    }
    assert {r["results_file"] for r in card.results} == {path.relative_to(checkout).as_posix()}
    assert check_cards(checkout / "model_cards", checkout) == []
    # The same command again: the same configuration, the same file, the numbers reproduced.
    assert cli_main(["benchmark", *_argv(checkout, "--deterministic")]) == 0
    assert load_result(path)["outcomes"] == data["outcomes"]


def test_cli_refuses_standard_on_stochastic_inference(checkout: Path, capsys: pytest.CaptureFixture) -> None:
    assert cli_main(["benchmark", *_argv(checkout, "--version", "standard")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("eee-zoo: error:") and "stochastic" in err and "--deterministic" in err


def test_benchmarks_run_evaluates_named_checkpoints(checkout: Path, capsys: pytest.CaptureFixture) -> None:
    assert run_main([*_argv(checkout, "--deterministic", "--seed", "3"), "--no-leaderboard"]) == 0
    assert "-> " in capsys.readouterr().out
    (path,) = (checkout / "benchmarks" / "results" / "cifar10" / "Linf" / "Tiny").glob("standard_det_*_seed3_*.json")
    data = load_result(path)
    assert data["suite"] == "autoattack"
    # The run's adversarial examples beside its results file, read back with the images they were made for.
    x, _ = load_dataset("cifar10", N)
    x_adv, metadata = load_adversarial_examples(path.with_suffix(".adv.safetensors"), x)
    assert (metadata["model_sha256"], metadata["version"], metadata["seed"]) == (
        data["checkpoint_sha256"],
        "standard",
        "3",
    )
    assert (metadata["mode"], metadata["n_examples"], metadata["threat_model"]) == ("deterministic", str(N), "Linf")
    assert (x_adv - x).abs().max() <= data["eps"] + 1e-6 and 0 <= x_adv.min() and x_adv.max() <= 1
    for i, outcome in enumerate(data["outcomes"]):
        assert torch.equal(x_adv[i], x[i]) == (outcome in "-R"), (i, outcome)  # an example for every broken image


def test_benchmarks_run_in_chunks_resumes_chunk_by_chunk(checkout: Path, capsys: pytest.CaptureFixture) -> None:
    """``--chunk-size``: each chunk its own resumable run; a kill between chunks loses only the unfinished one, and
    the results file (``_chunkN``) is the uninterrupted one's."""
    argv = [*_argv(checkout, "--deterministic", "--seed", "5", "--chunk-size", "2"), "--no-leaderboard"]
    assert run_main(argv) == 0
    capsys.readouterr()
    (path,) = (checkout / "benchmarks" / "results" / "cifar10" / "Linf" / "Tiny").glob("standard_det_*_seed5_*.json")
    data = load_result(path)
    assert path.stem.endswith("_chunk2") and data["chunk_size"] == 2
    chunks = data["attack_config"]["chunks"]  # each chunk's images and seed, recorded
    assert [(c["start"], c["stop"]) for c in chunks] == [(0, 2), (2, 4)] and chunks[0]["seed"] != chunks[1]["seed"]
    (chunk_dir,) = [p for p in (checkout / "state").iterdir() if p.is_dir() and "_standard_" in p.name]
    second = sorted(chunk_dir.glob("chunk-00001.*"))
    assert second, sorted(chunk_dir.iterdir())
    first = {p: p.read_bytes() for p in chunk_dir.glob("chunk-00000.*")}
    for p in second:  # the second chunk lost (a kill before it finished): it alone is attacked again
        p.unlink()
    path.unlink()
    assert run_main(argv) == 0
    assert load_result(path)["outcomes"] == data["outcomes"] and sorted(chunk_dir.glob("chunk-00001.*")) == second
    assert {p: p.read_bytes() for p in chunk_dir.glob("chunk-00000.*")} == first  # resumed as it was, not rewritten
    assert data["device"] == "cpu" and len(data["attacked_on"]) == 1 and data["attacked_on"][0].startswith("cpu: ")

    # A chunk made elsewhere (a GPU lease): the file assembled here names the devices that attacked, not this one.
    (state_file,) = chunk_dir.glob("chunk-00000.eee.json")
    state = json.loads(state_file.read_text())
    state["arithmetic"] = [{"device": "cuda:0", "gpu": "NVIDIA H200", "cpu": "Intel(R) Xeon(R) Processor",
                            "cpu_capability": "AVX512", "threads": "16"}]  # fmt: skip
    state["spent_s"] = 600.0  # ten minutes there: the file assembled here in a second says what the figure cost
    state_file.write_text(json.dumps(state))
    path.unlink()
    assert run_main(argv) == 0
    out = capsys.readouterr().out
    assert "attacked on cuda:0 (NVIDIA H200): Intel(R) Xeon(R) Processor, AVX512, 16 thread(s); cpu: " in out
    mixed = load_result(path)
    (other,) = chunk_dir.glob("chunk-00001.eee.json")
    assert mixed["compute_s"] == round(600.0 + json.loads(other.read_text())["spent_s"], 1)
    assert mixed["wall_time_s"] < 60 and f"attacks took {mixed['compute_s']:.0f} s in all" in out
    assert mixed["device"] == "cuda:0 (NVIDIA H200) + cpu" and mixed["outcomes"] == data["outcomes"]
    assert mixed["attacked_on"][0] == "cuda:0 (NVIDIA H200): Intel(R) Xeon(R) Processor, AVX512, 16 thread(s)"

    # Run again with every chunk finished: it reproduces the stored file, which is kept with its examples and log
    # (its machine and date are the run's that made it, not this call's, which only assembled the chunks).
    stored = json.loads(path.read_text())
    stored["versions"] = {**stored["versions"], "cpu": "the machine that made it"}
    path.write_text(json.dumps(stored))
    files = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in (path, path.with_suffix(".log"), examples_path(path))}
    assert run_main(argv) == 0
    assert "reproduced; the stored file and its examples are kept" in capsys.readouterr().out
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in files} == files
    # A stored file that differs in more than its provenance (here: where it was attacked) is written anew.
    path.write_text(json.dumps({**stored, "attacked_on": []}))
    assert run_main(argv) == 0
    assert load_result(path)["attacked_on"] == mixed["attacked_on"] and load_result(path)["versions"]["cpu"] != (
        "the machine that made it"
    )


def test_channels_last_runs_are_recorded_as_such(checkout: Path, capsys: pytest.CaptureFixture) -> None:
    """``--channels-last`` stores the convolutions NHWC (the same model up to float rounding); the run's state and
    results file name the layout with the machine, since which images break depends on it."""
    from eee_zoo.loading import load_model

    model = load_model("Tiny", cards_dir=checkout / "model_cards", channels_last=True)
    convs = [p for p in model.parameters() if p.dim() == 4 and p.shape[-1] > 1]
    assert convs and all(p.is_contiguous(memory_format=torch.channels_last) for p in convs)
    assert not any(p.is_contiguous() for p in convs)
    assert run_main([*_argv(checkout, "--deterministic", "--seed", "7", "--channels-last"), "--no-leaderboard"]) == 0
    capsys.readouterr()
    (path,) = (checkout / "benchmarks" / "results" / "cifar10" / "Linf" / "Tiny").glob("standard_det_*_seed7_*.json")
    (entry,) = load_result(path)["attacked_on"]
    assert entry.startswith("cpu: ") and entry.endswith(" thread(s), channels_last")
    (state_file,) = [
        p for p in (checkout / "state").glob("*.eee.json") if json.loads(p.read_text())["identity"]["seed"] == 7
    ]
    assert [a.get("layout") for a in json.loads(state_file.read_text())["arithmetic"]] == ["channels_last"]


def test_a_card_number_without_a_backing_results_file_fails(
    checkout: Path, real_result: EvaluationResult, tmp_path: Path
) -> None:
    import shutil

    root = tmp_path / "copy"
    shutil.copytree(checkout, root, ignore=shutil.ignore_patterns("state"))
    card_path = root / "model_cards" / "cifar10" / "Linf" / "Tiny" / "README.md"
    path = save_result(real_result, root / "benchmarks" / "results")
    ref = results_file_reference(path, root / "benchmarks" / "results")
    entries = card_results(real_result, ref)
    set_results(card_path, entries)
    assert check_card(card_path, root) == []

    # A number typed by hand: a robust accuracy that the results file does not hold, or an interval.
    forged = dict(entries[1], correct=N, value=100.0, interval=[90.0, 100.0])
    set_results(card_path, [forged])
    assert any("correct in the card" in p for p in check_card(card_path, root))
    lo, hi = entries[1]["interval"]
    set_results(card_path, [dict(entries[1], interval=[lo, min(hi + 1, 100.0)])])
    assert any("95 % interval" in p for p in check_card(card_path, root))
    set_results(card_path, [{k: v for k, v in entries[1].items() if k != "interval"}])  # a number without one
    assert any("95 % interval None in the card" in p for p in check_card(card_path, root))
    set_results(card_path, entries[1:])
    assert check_card(card_path, root) == []
    # A result that names no results file at all, or one that does not exist.
    set_results(card_path, [dict(entries[1], seed=7, results_file="benchmarks/results/nowhere.json")])
    assert any("does not exist" in p for p in check_card(card_path, root))
    set_results(card_path, entries[1:])
    set_results(card_path, [dict(entries[1], seed=7, results_file=ref)])
    assert any("seed is 7 in the card" in p for p in check_card(card_path, root))

    # A percentage written into the prose of the card.
    clean = root / "clean_card.md"
    shutil.copy(card_path, clean)
    text = card_path.read_text()
    card_path.write_text(text + "\nThis model reaches a robust accuracy of 97.25% under AutoAttack.\n")
    assert any("states 97.25%" in p for p in check_card(card_path, root))


def test_every_card_in_the_repository_is_backed_by_a_results_file() -> None:
    assert check_cards(REPO / "model_cards", REPO) == []


# ============================================================================================ leaderboard
def test_leaderboard_shows_numbers_with_n_and_interval(real_result: EvaluationResult, tmp_path: Path) -> None:
    results_dir = tmp_path / "benchmarks" / "results"
    save_result(real_result, results_dir)
    written = build(
        results_dir, model_info_dir=tmp_path / "model_info", markdown_path=tmp_path / "LEADERBOARD.md", html=False
    )
    (info_path,) = written["model_info"]
    assert info_path == tmp_path / "model_info" / "cifar10" / "Linf" / "Tiny.json"
    info = json.loads(info_path.read_text())
    assert info == model_info(real_result.to_dict(), results_file=info["eee_zoo"]["results_file"])
    assert info["clean_acc"] == round(100 * real_result.clean_accuracy, 2)
    assert info["autoattack_acc"] == round(100 * real_result.robust_accuracy, 2)
    assert info["additional_data"] is False and info["number_forward_passes"] == 1
    assert isinstance(info["unreliable"], bool) and f"first {N} test images" in info["footnote"]
    assert info["eee_zoo"]["results_file"].startswith("benchmarks/results/cifar10/Linf/Tiny/")
    md = (tmp_path / "LEADERBOARD.md").read_text()
    lo, hi = real_result.robust_interval
    assert f"{info['autoattack_acc']:.2f} [{100 * lo:.2f}, {100 * hi:.2f}]" in md
    assert f"| {N} |" in md and "Tiny" in md


# ============================================================================================ suites
def test_results_files_name_their_suite_and_older_files_still_read(
    real_result: EvaluationResult, tmp_path: Path
) -> None:
    path = save_result(real_result, tmp_path)
    data = load_result(path)
    assert data["suite"] == "autoattack" and result_suite(data) == "autoattack"
    old = {k: v for k, v in data.items() if k != "suite"}  # written before the field existed
    assert result_suite(old) == "autoattack" and EvaluationResult.from_dict(old).suite == "autoattack"
    assert result_suite({**old, "version": "adaptive"}) == "adaptive"  # the adaptive suite's older files
    adaptive = path.with_name("adaptive_like.json")
    adaptive.write_text(json.dumps({**data, "suite": "adaptive"}))
    assert [p.name for p, _ in iter_results(tmp_path)] == [path.name]  # AutoAttack's files only, by default
    assert len(list(iter_results(tmp_path, suite=None))) == 2
    assert headline([{**data, "suite": "adaptive"}]) is None and headline([old]) is not None
    with pytest.raises(ResultsError, match="'adaptive' result"):
        save_result(dataclasses.replace(real_result, suite="adaptive"), tmp_path)
    clean, robust = card_results(real_result, "benchmarks/results/x.json")
    assert robust["suite"] == "autoattack" and "suite" not in clean


def test_a_card_result_of_another_suite_is_not_backed(checkout: Path, real_result: EvaluationResult, tmp_path) -> None:
    import shutil

    root = tmp_path / "copy"
    shutil.copytree(checkout, root, ignore=shutil.ignore_patterns("state"))
    card_path = root / "model_cards" / "cifar10" / "Linf" / "Tiny" / "README.md"
    path = save_result(real_result, root / "benchmarks" / "results")
    entries = card_results(real_result, results_file_reference(path, root / "benchmarks" / "results"))
    set_results(card_path, [dict(entries[1], suite="adaptive")])
    assert any("suite is 'adaptive' in the card but 'autoattack'" in p for p in check_card(card_path, root))

    def suites() -> list[str]:
        return [r["suite"] for r in load_card(card_path).results if r["metric"] == "robust_accuracy"]

    assert suites() == ["adaptive"]  # the same measurement (identity): replaced, not added
    set_results(card_path, entries[1:])
    assert check_card(card_path, root) == [] and suites() == ["autoattack"]


def test_the_committed_leaderboard_is_rebuilt_byte_for_byte(tmp_path: Path) -> None:
    """The committed results files (some older than the suite field) give the committed leaderboard."""
    written = build(model_info_dir=tmp_path / "model_info", markdown_path=tmp_path / "LEADERBOARD.md", html=False)
    assert (tmp_path / "LEADERBOARD.md").read_bytes() == (REPO / "benchmarks" / "LEADERBOARD.md").read_bytes()
    committed = sorted((REPO / "benchmarks" / "model_info").glob("*/*/*.json"))
    assert [p.relative_to(tmp_path) for p in sorted(written["model_info"])] == [
        p.relative_to(REPO / "benchmarks") for p in committed
    ]
    for path, theirs in zip(sorted(written["model_info"]), committed):
        assert path.read_bytes() == theirs.read_bytes(), theirs
