"""What a new user meets (issue 10): progress during long runs, reused state announced, a wrong dataset or threat
model named before any data is touched, and every figure labelled with what it counts.

Real tiny models (conftest's configuration, trained for a second where attacks need correct images), the real
AutoAttack / APGD code, reduced attack settings where the point is the plumbing.
"""

from __future__ import annotations

import copy
import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
from conftest import FAST_STANDARD
from PIL import Image
from tiny_model import train_tiny_model

from eee_zoo import benchmark, evaluate
from eee_zoo._percent import percent_text
from eee_zoo.adaptive import Attack, adaptive_evaluate
from eee_zoo.data import load_dataset
from eee_zoo.models import SelfEnsemble

REPO = Path(__file__).resolve().parents[1]
FAST_RAND = {"apgd.n_iter": 5, "apgd.eot_iter": 2}
FAST_ADAPTIVE = {
    "attacks": (
        Attack("apgd-ce-det", surrogate="deployed", n_iter=4),
        Attack("pgd-mean-eot", surrogate="mean", draws=2, optimiser="pgd", n_iter=4),
    ),
    "autoattack": (),
    "selection_draws": 3,
    "fresh_draws": 3,
    "batch_size": 5,
}
LINE = re.compile(r"^\d\d:\d\d:\d\d (\S+): (\d+)/(\d+) it .*\| (.*) \| ")


@pytest.fixture(scope="module")
def weights() -> dict[str, torch.Tensor]:
    from conftest import TINY_CONFIG

    return train_tiny_model(copy.deepcopy(TINY_CONFIG)).state_dict()


@pytest.fixture
def model(weights: dict[str, torch.Tensor], tiny_config: dict) -> SelfEnsemble:
    """conftest's tiny self-ensemble, trained for a second, stochastic inference."""
    m = SelfEnsemble.from_config(tiny_config)
    m.load_state_dict(weights)
    return m.eval().set_stochastic(True)


@pytest.fixture(scope="module")
def images() -> tuple[torch.Tensor, torch.Tensor]:
    return load_dataset("cifar10", 16)


@pytest.fixture
def lines_every_update(monkeypatch: pytest.MonkeyPatch) -> None:
    """Progress as log lines (captured stderr is not a terminal), one per update."""
    monkeypatch.setenv("EEE_ZOO_PROGRESS_EVERY", "0")
    monkeypatch.delenv("EEE_ZOO_PROGRESS", raising=False)


def _same(a, b) -> None:
    assert a.outcomes == b.outcomes
    assert [(s.attack, s.robust, s.attacked) for s in a.attacks] == [
        (s.attack, s.robust, s.attacked) for s in b.attacks
    ]
    assert (a.clean_correct, a.robust_correct) == (b.clean_correct, b.robust_correct)


# ============================================================================================ 1. progress
def test_evaluate_reports_every_iteration_of_an_attack_and_changes_nothing(model, images, lines_every_update, capfd):
    x, y = images
    kwargs = {"inputs": (x, y), "attack_overrides": FAST_RAND, "batch_size": 16, "seed": 1}
    events = []
    with_callback = evaluate(model, 8, progress=events.append, **kwargs)
    silent = evaluate(model, 8, progress=False, **kwargs)
    capfd.readouterr()
    with_lines = evaluate(model, 8, progress=True, **kwargs)
    err = capfd.readouterr().err
    _same(with_callback, silent)
    _same(with_lines, silent)
    assert with_callback.clean_correct > 0, "the test needs images the model classifies correctly"

    for attack in ("apgd-ce", "apgd-dlr"):
        mine = [e for e in events if e.task == attack]
        assert [e.kind for e in mine][0] == "start" and mine[-1].kind == "end"
        during = [e for e in mine if e.kind == "update" and e.info["batch"] == 1]  # one batch: all images
        iterations = sorted({e.info["iteration"] for e in during})
        assert iterations == list(range(6)), iterations  # every APGD iteration, inside the single batch
        assert all(e.info["n"] == 8 and 0 <= e.info["robust"] <= 8 for e in mine)
        assert mine[-1].done == mine[-1].total == 5 and f"/{8})" in mine[-1].text and "robust" in mine[-1].text
        # The same as log lines: more than one per batch, with the robust accuracy so far.
        moving = [m for m in map(LINE.match, err.splitlines()) if m and m.group(1) == attack]
        assert len({m.group(2) for m in moving}) >= 5, err[-2000:]
        assert all("robust" in m.group(4) for m in moving)


def test_every_attack_of_standard_moves_by_runs_and_iterations(model, images) -> None:
    x, y = images
    model.set_stochastic(False)
    kwargs = {"inputs": (x, y), "attack_overrides": FAST_STANDARD, "batch_size": 4, "seed": 2, "eps": 16 / 255}
    events = []
    result = evaluate(model, 8, progress=events.append, **kwargs)
    _same(result, evaluate(model, 8, progress=False, **kwargs))
    for step in result.attacks:
        if not step.ran:
            continue
        mine = [e for e in events if e.task == step.attack]
        positions = sorted({e.done for e in mine if e.kind == "update"})
        assert len(positions) > 2, (step.attack, positions)  # moves inside the attack, not only at its end
        runs = {e.info["run"] for e in mine}
        if step.attack in ("apgd-t", "fab-t"):
            assert max(runs) == 2  # per target class
        batches = {e.info["batch"] for e in mine}
        assert max(batches) == -(-step.attacked // 4)


def test_benchmark_shows_progress_by_default(lines_every_update, capfd) -> None:
    """RobustBench's call shape, unchanged arguments: progress lines during the real rand attacks."""
    x, y = load_dataset("cifar10", 1)
    torch.manual_seed(0)
    linear = nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 10))
    with torch.no_grad():
        linear[1].weight.mul_(0.01)
        linear[1].bias.zero_()
        linear[1].bias[y[0]] = 1.0  # right on the first image, so that the attacks run on it
    clean, robust = benchmark(linear.eval(), n_examples=1, version="rand", seed=0)
    err = capfd.readouterr().err
    assert clean == 1.0
    moving = [m for m in map(LINE.match, err.splitlines()) if m and m.group(1) == "apgd-ce"]
    assert len({m.group(2) for m in moving}) > 10, err[-2000:]
    assert "iteration" in moving[1].group(4) and "robust" in moving[1].group(4)


def test_adaptive_evaluate_reports_progress_and_changes_nothing(model, images, lines_every_update, capfd) -> None:
    events = []
    a = adaptive_evaluate(model, 10, inputs=images, seed=0, progress=events.append, **FAST_ADAPTIVE)
    b = adaptive_evaluate(model, 10, inputs=images, seed=0, progress=False, **FAST_ADAPTIVE)
    capfd.readouterr()
    c = adaptive_evaluate(model, 10, inputs=images, seed=0, **FAST_ADAPTIVE)  # default: on
    err = capfd.readouterr().err
    for other in (b, c):
        assert other.chosen == a.chosen
        assert (other.clean, other.robust) == (a.clean, a.robust)
        assert [col.fresh_hits for col in other.per_attack] == [col.fresh_hits for col in a.per_attack]
    first_batch = [e for e in events if e.kind == "update" and e.info["batch"] == 1]
    assert len({(e.info["attack"], e.info["iteration"]) for e in first_batch}) > 4  # per attack and iteration
    assert events[-1].kind == "end" and events[-1].done == events[-1].total
    updates = [e.text for e in events if e.kind == "update"]
    assert all("worst case so far" in t or " judging " in t for t in updates)  # attacking, then judging
    assert any("final draws" in t for t in updates) and any("fresh draws" in t for t in updates)
    assert sum(bool(re.match(r"^\d\d:\d\d:\d\d adaptive: \d+/\d+ it", line)) for line in err.splitlines()) > 4


def test_work_resumed_from_a_state_is_shown_done_but_left_out_of_the_rate(monkeypatch) -> None:
    """A resumed half of a run must not make the estimate of the time left look twice as fast (it did: 241 it/s, then
    the true 10 it/s over the run's first minute, because the resumed batch counted as moved in this run)."""
    import io

    from eee_zoo._progress import Progress

    clock = iter(float(t) for t in range(100))
    monkeypatch.setattr("eee_zoo._progress.time.perf_counter", lambda: next(clock))
    events = []
    with Progress("job", 100, output=events.append) as bar:
        bar.skip(50, text="resumed")
        bar.update(10)
    resumed, moved = events[1], events[2]
    assert (resumed.done, resumed.text, resumed.rate) == (50, "resumed", None)
    assert moved.done == 60 and moved.rate == pytest.approx(10 / (moved.elapsed_s))
    # in a terminal, tqdm's own rate leaves the resumed units out too
    monkeypatch.setenv("EEE_ZOO_PROGRESS", "bar")
    out = io.StringIO()
    with Progress("job", 100, file=out) as bar:
        bar.skip(50)
        assert (bar.bar.n, bar.bar.initial) == (50, 50)
        bar.update(10)
        assert bar.bar.format_dict["n"] - bar.bar.format_dict["initial"] == 10


def test_training_progress_is_logged_with_images_per_second_when_not_a_terminal(
    tmp_path: Path, cifar_npz_dir: Path, lines_every_update
) -> None:
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    from training.train import main

    run_dir = tmp_path / "run"
    recipe = REPO / "training" / "recipes" / "tiny.yaml"
    argv = ["--recipe", str(recipe), "--out", str(run_dir), "--data-dir", str(cifar_npz_dir), "--no-export"]
    assert main(argv) == 0
    log = (run_dir / "train.log").read_text()
    for stage in ("backbone", "heads"):
        lines = re.findall(rf"{stage}: (\d+)/256 img \(\d+ %\) .*?(\d+(?:\.\d+)?) img/s", log)
        assert len({done for done, _ in lines}) >= 3, log  # moves step by step, not only at the end
        assert all(float(rate) > 0 for _, rate in lines)
    assert re.search(r"backbone: \d+/256 img .*epoch 1/1, step \d+/4, loss \d", log), log


# ============================================================================================ 2. reused state
class _Killed(RuntimeError):
    pass


def test_reused_and_resumed_states_are_announced_and_fresh_starts_over(model, images, tmp_path: Path, caplog) -> None:
    x, y = images
    kwargs = {"inputs": (x, y), "attack_overrides": FAST_RAND, "batch_size": 4, "seed": 3, "progress": False}
    state = tmp_path / "state"
    first = evaluate(model, 8, state_path=state, **kwargs)
    assert not first.notes
    (ckpt,) = state.glob("*.eee.json")

    caplog.clear()
    again = evaluate(model, 8, state_path=state, **kwargs)
    assert again.outcomes == first.outcomes
    assert any("reused the finished AutoAttack state" in r.getMessage() and str(ckpt) in r.getMessage()
               for r in caplog.records if r.levelname == "WARNING")  # fmt: skip
    assert f"note: reused the finished AutoAttack state {ckpt}" in again.summary()
    assert "fresh=True (--fresh)" in again.summary()

    calls = [0]
    handle = model.register_forward_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    caplog.clear()
    fresh = evaluate(model, 8, state_path=state, fresh=True, **kwargs)
    handle.remove()
    assert calls[0] > 20 and fresh.outcomes == first.outcomes and not fresh.notes  # attacked again
    assert any("removed the saved AutoAttack state" in r.getMessage() for r in caplog.records)

    # A partial state: killed inside the second attack, then resumed with a note naming the attack and path.
    killed = tmp_path / "killed"
    seen = [0]

    def bomb(*_):
        seen[0] += 1
        if seen[0] > 0.75 * calls[0]:
            raise _Killed

    handle = model.register_forward_hook(bomb)
    with pytest.raises(_Killed):
        evaluate(model, 8, state_path=killed, **kwargs)
    handle.remove()
    (partial,) = killed.glob("*.eee.json")
    caplog.clear()
    resumed = evaluate(model, 8, state_path=killed, **kwargs)
    assert resumed.outcomes == first.outcomes
    note = f"resumed the partial AutoAttack state {partial} at the start of apgd-dlr (1 of 2 attacks done"
    assert any(note in r.getMessage() for r in caplog.records) and note in resumed.summary()


def test_fresh_is_a_flag_of_both_benchmark_commands() -> None:
    from benchmarks.run import build_parser, evaluation_kwargs
    from eee_zoo import cli

    args = build_parser().parse_args(["Name", "--fresh"])
    assert evaluation_kwargs(args)["fresh"] is True
    assert evaluation_kwargs(build_parser().parse_args(["Name"]))["fresh"] is False
    args = cli.build_parser().parse_args(["benchmark", "Name", "--fresh"])
    assert args.fresh is True


# ============================================================================================ 3. wrong dataset
def test_a_cifar10_model_on_cifar100_is_refused_before_any_data_is_read(tiny_model, tmp_path: Path) -> None:
    empty = tmp_path / "no-data-here"  # CIFAR-100 is nowhere: reading it would fail differently
    empty.mkdir()
    tiny_model.eee_info = {"name": "Tiny", "dataset": "cifar10", "threat_model": "Linf"}
    with pytest.raises(ValueError, match=r"Tiny returns 10 classes but the dataset has 100 \(cifar100\) \(its card is "
                       r"for cifar10\)"):  # fmt: skip
        benchmark(tiny_model, n_examples=5, dataset="cifar100", data_dir=empty)
    plain = nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 10)).eval()  # no card, no config: one probe pass
    with pytest.raises(ValueError, match=r"returns 10 classes but the dataset has 100"):
        benchmark(plain, n_examples=5, dataset="cifar100", data_dir=empty)
    with pytest.raises(ValueError, match=r"returns 10 classes but the dataset has 100"):
        adaptive_evaluate(tiny_model, 5, dataset="cifar100", data_dir=empty)
    assert list(empty.iterdir()) == []


def test_another_threat_model_than_the_cards_is_warned_about(model, images) -> None:
    model.eee_info = {"name": "Tiny", "dataset": "cifar10", "threat_model": "Linf", "sha256": "ab" * 32}
    kwargs = {"inputs": images, "attack_overrides": FAST_RAND, "progress": False}
    with pytest.warns(UserWarning, match=r"Tiny's card is for the Linf threat model.*evaluated under L2"):
        evaluate(model, 2, threat_model="L2", **kwargs)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the card's own threat model: not a word
        evaluate(model, 2, threat_model="Linf", **kwargs)


# ============================================================================================ 4. figures labelled
def test_list_shows_the_deployed_modes_clean_accuracy_labelled(tiny_model, tmp_path: Path, capsys) -> None:
    from eee_zoo import cli
    from eee_zoo.cards import set_results
    from eee_zoo.hub import export
    from eee_zoo.registry import card_folder

    root = tmp_path / "cards"
    folder = card_folder("Tiny-1", cards_dir=root)
    export(tiny_model, "Tiny-1", folder, training={"recipe": "r.yaml", "seed": 1})
    common = {"version": None, "norm": "Linf", "eps": 8 / 255, "seed": 0, "n_examples": 500}
    det = {**common, "metric": "clean_accuracy", "value": 72.6, "correct": 363, "results_file": "b/det.json"}
    sto = {**common, "metric": "clean_accuracy", "value": 73.0, "correct": 365, "results_file": "b/sto.json"}
    rob = {**sto, "metric": "robust_accuracy", "version": "rand", "value": 18.6, "correct": 93}
    set_results(folder, [{**det, "stochastic": False}, {**sto, "stochastic": True}, {**rob, "stochastic": True}])
    assert tiny_model.stochastic  # the card says stochastic inference: its clean figure is the stochastic one

    assert cli.main(["list", "--cards-dir", str(root)]) == 0
    out = capsys.readouterr().out
    assert "73.00 (n=500, stochastic)" in out and "72.60" not in out
    assert "rand 18.60 (n=500, stochastic)" in out
    assert cli.main(["list", "--cards-dir", str(root), "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["clean"] == {"value": 73.0, "n_examples": 500, "stochastic": True}


def test_every_figure_of_a_summary_says_what_it_counts(model, images) -> None:
    r = adaptive_evaluate(model, 10, inputs=images, seed=0, progress=False, **FAST_ADAPTIVE)
    figures = [line for line in r.summary().splitlines()[2:] if re.search(r"\d+\.\d\d%", line)]
    assert len(figures) == 2 + len(r.per_attack) + 1
    for line in figures[:-1]:
        assert "per draw" in line and "every draw" in line, line
    counted = percent_text(r.robust.on_k_draws(3, 3)[0])  # like with like for rand: right on all of its 3 checks' draws
    assert "counted as AutoAttack rand counts (right on all of 3 draws" in figures[-1] and counted in figures[-1]
    assert "right on all 3 fresh draws" in r.summary() and "mean over images and fresh draws" in r.summary()
    assert re.search(r"clean\s+per draw\s+" + percent_text(r.clean.per_draw), r.summary())

    e = evaluate(model, 4, inputs=images, attack_overrides=FAST_RAND, progress=False)
    clean_line, robust_line = e.summary().splitlines()[1], e.summary().splitlines()[-1]
    assert "one stochastic draw per image" in clean_line and "one stochastic draw per image" in robust_line


def test_readme_names_the_crossmax_k_of_every_zoo_checkpoint() -> None:
    from eee_zoo.registry import list_cards

    readme = (REPO / "README.md").read_text()
    paragraph = readme[readme.index("3. **CrossMax.**") :].split("\n\n")[0]
    assert "CrossMax(k=3)" not in readme  # the diagram does not state one k for all
    for card in list_cards("*"):
        if card.architecture.get("aggregator", "crossmax") != "crossmax":
            continue  # a single-resolution baseline aggregates nothing
        family = card.name.split("_CrossMax")[0] + "_*"  # Airbench_CPU_*, ResNet18_GPU_*
        assert family in paragraph and f"k = {card.architecture['k']}" in paragraph, card.name


def test_the_stack_figure_is_labelled_inside_the_image(tmp_path: Path) -> None:
    from benchmarks.figures import stack_figure

    out = tmp_path / "stack.png"
    stack_figure.main(["--out", str(out)])
    image = np.asarray(Image.open(out).convert("L"))
    side, gap = 32 * stack_figure.SCALE, stack_figure.GAP
    grid_width, grid_height = 9 * (side + gap) + gap, 4 * (side + gap) + gap
    assert image.shape[1] > grid_width and image.shape[0] > grid_height  # room for labels beside and above
    left = image[stack_figure.TOP :, : stack_figure.LEFT]  # row labels
    top = image[: stack_figure.TOP, stack_figure.LEFT :]  # group and column labels
    assert (left < 100).sum() > 200 and (top < 100).sum() > 500  # dark text drawn there
    committed = Image.open(REPO / "benchmarks" / "figures" / "stack.png")
    assert committed.size == (image.shape[1], image.shape[0]), "regenerate: python -m benchmarks.figures.stack_figure"
