"""The figures (eee_zoo.viz, `eee-zoo visualize`) on the tiny trained self-ensemble with cut attack settings.

What is checked does not depend on attack strength: each figure has its panels, class maximisation raises the
target's logit, the same seed gives the same images and PNG bytes, the JSON carries n, seed and intervals, and
the command works offline on the embedded test slice.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn as nn
from tiny_model import train_tiny_model

from benchmarks.results import check_card
from eee_zoo import cli
from eee_zoo.adaptive import Attack, adaptive_evaluate
from eee_zoo.adaptive.result import right_on_k_draws
from eee_zoo.adaptive.surrogates import stochastic_mode
from eee_zoo.cards import FIGURE_CAPTIONS, load_card, set_figures
from eee_zoo.commands import visualize as visualize_command
from eee_zoo.commands.visualize import figure_settings
from eee_zoo.data import load_dataset
from eee_zoo.evaluation import evaluate
from eee_zoo.hub import export
from eee_zoo.registry import card_folder

pytest.importorskip("matplotlib")
pytest.importorskip("pyautoattack")

from matplotlib.figure import Figure  # noqa: E402

from eee_zoo.viz import (  # noqa: E402  (after the importorskip of the optional dependency)
    CLASS_NAMES,
    FIGURES,
    AdaptiveSettings,
    AttackRun,
    ClassMaxSettings,
    EpsCurves,
    FigureSettings,
    PerLayer,
    PerLayerSettings,
    adaptive_run,
    autoattack_run,
    class_index,
    class_maximisation_figure,
    eps_curve_figure,
    eps_curves,
    make_figures,
    maximise_classes,
    per_layer_figure,
    per_layer_robustness,
    png_bytes,
    successful_attacks,
    successful_attacks_figure,
)
from eee_zoo.viz.crosscheck import check_against_results  # noqa: E402
from eee_zoo.viz.make import CURVE_ATTACKS, default_eps_list, redraw  # noqa: E402
from eee_zoo.viz.render import new_figure  # noqa: E402
from eee_zoo.viz.stats import count_accuracy  # noqa: E402
from eee_zoo.viz.successful_attacks import NO_PERTURBATION  # noqa: E402

EPS = 8 / 255
N = 8
# AutoAttack rand and standard cut to a few iterations (the attacks and their order are unchanged)
FAST_AA = {
    "apgd.n_iter": 3, "apgd.eot_iter": 2, "apgd_targeted.n_iter": 2, "apgd_targeted.n_target_classes": 1,
    "fab.n_iter": 2, "fab.n_target_classes": 1, "square.n_queries": 5,
}  # fmt: skip
FAST_ADAPTIVE = AdaptiveSettings(
    attacks=(Attack("pgd-mean", optimiser="pgd", n_iter=4),), autoattack=(), selection_draws=2, final_draws=2,
    tie_draws=4, fresh_draws=4, batch_size=N,
)  # fmt: skip
FAST_MAX = ClassMaxSettings(starts=2, steps=6, draws=2, judge_draws=3)


@pytest.fixture(scope="module")
def model() -> nn.Module:
    torch.set_num_threads(1)
    return train_tiny_model().set_stochastic(True)


@pytest.fixture(scope="module")
def images() -> tuple[torch.Tensor, torch.Tensor]:
    return load_dataset("cifar10", N)


@pytest.fixture(scope="module")
def state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("viz_state")


@pytest.fixture(scope="module")
def runs(model: nn.Module, state: Path) -> list[AttackRun]:
    kw = {"eps": EPS, "seed": 0, "state_dir": state}
    return [
        autoattack_run(model, "autoattack-rand", N, "cifar10", "Linf", overrides=FAST_AA, **kw),
        adaptive_run(model, N, "cifar10", "Linf", settings=FAST_ADAPTIVE, **kw),
    ]


def test_an_eot_cut_applies_to_the_stochastic_run_only(model, state: Path) -> None:
    """``--autoattack-cut apgd.eot_iter=2`` cuts rand's 20 draws; on standard-det (one draw, deterministic mode) it
    would average two copies of one gradient: twice the cost for the same attack, so it is not applied there."""
    det = autoattack_run(model, "autoattack-standard-det", 2, "cifar10", "Linf", eps=EPS, seed=0, state_dir=state,
                         overrides=FAST_AA)  # fmt: skip
    assert "apgd.eot_iter" not in det.settings["cut"] and det.settings["attack_config"]["apgd"]["eot_iter"] == 1
    assert det.settings["cut"]["apgd.n_iter"] == 3
    rand = autoattack_run(model, "autoattack-rand", 2, "cifar10", "Linf", eps=EPS, seed=0, state_dir=state,
                          overrides=FAST_AA)  # fmt: skip
    assert rand.settings["cut"]["apgd.eot_iter"] == 2 and rand.settings["attack_config"]["apgd"]["eot_iter"] == 2


def test_class_name_tables() -> None:
    assert len(CLASS_NAMES["cifar10"]) == 10 and CLASS_NAMES["cifar10"][3] == "cat"
    assert len(CLASS_NAMES["cifar100"]) == 100 and list(CLASS_NAMES["cifar100"]) == sorted(CLASS_NAMES["cifar100"])
    assert class_index("CIFAR-100", "aquarium fish") == 1 and class_index("cifar10", "9") == 9
    with pytest.raises(ValueError, match="unknown cifar10 class"):
        class_index("cifar10", "apple")


def test_successful_attacks_shows_broken_images_within_the_ball(model, images, runs) -> None:
    x, y = images
    data = successful_attacks(model, x, y, runs, dataset="cifar10", k=2, draws=3, seed=0, model_name="tiny")
    figure = successful_attacks_figure(data)
    assert len(figure.axes) == 2 * 3 * len(runs)  # k rows x (clean, adversarial, perturbation) per attack
    titles = " ".join(ax.get_title() for ax in figure.axes)
    for run in runs:
        for example in data.examples[run.name]:
            assert run.broken[example.index] and example.linf <= EPS + 1e-6
            assert CLASS_NAMES["cifar10"][example.label] in titles
    record = json.loads(json.dumps(data.record()))
    rand = record["attacks"][0]
    assert rand["robust"]["n"] == N and len(rand["robust"]["interval"]) == 2
    assert rand["settings"]["cut"] == FAST_AA and rand["settings"]["seed"] == 0
    assert record["attacks"][1]["robust"]["draws"] == FAST_ADAPTIVE.fresh_draws


def test_a_long_attack_title_wraps_inside_the_figure(model, images, runs) -> None:
    """The adaptive panel's title names its proposals ("... from its runs"): however long, it stays on the image."""
    x, y = images
    long = "adaptive worst case (zoo + AutoAttack rand, standard-det from its runs)"
    wordy = [dataclasses.replace(run, title=long if run.name == "adaptive" else run.title) for run in runs]
    data = successful_attacks(model, x, y, wordy, dataset="cifar10", k=1, draws=3, seed=0, model_name="tiny")
    figure = successful_attacks_figure(data)
    png_bytes(figure)  # lays the text out
    renderer = figure.canvas.get_renderer()
    page = figure.bbox
    titles = [panel._suptitle for panel in figure.subfigs]
    assert long.replace(" ", "") in "".join(t.get_text() for t in titles).replace("\n", "").replace(" ", "")
    for panel, title in zip(figure.subfigs, titles):
        box = title.get_window_extent(renderer)
        assert page.x0 <= box.x0 and box.x1 <= page.x1, title.get_text()
        # and the heading's last line keeps the gap a two-line heading has (0.4 in) above the first row's titles
        first_row = max(ax.title.get_window_extent(renderer).y1 for ax in panel.axes)
        assert box.y0 - first_row >= 0.3 * figure.dpi, title.get_text()


def test_an_image_broken_without_perturbation_says_so(model, images, runs) -> None:
    """AutoAttack rand counts an image broken when one random draw gets the clean image wrong: its panel must not
    read as an attack that found a perturbation."""
    x, y = images
    run = dataclasses.replace(runs[0], x_adv=x.clone(), broken=torch.ones(len(y), dtype=torch.bool))
    data = successful_attacks(model, x, y, [run], dataset="cifar10", k=1, draws=3, seed=0, model_name="tiny")
    assert data.examples[run.name][0].linf == 0
    titles = [ax.get_title() for ax in successful_attacks_figure(data).axes]
    assert NO_PERTURBATION in titles and not any(t.startswith("perturbation x") for t in titles)


def test_class_maximisation_raises_the_target_logit_and_is_seeded(model) -> None:
    first = maximise_classes(model, "cifar10", settings=FAST_MAX, seed=3, model_name="tiny")
    assert first.images.shape == (10, 2, 3, 32, 32)
    rise = first.logit_end - first.logit_start  # the deterministic aggregate's target logit
    assert rise.mean() > 0.1 and (rise > 0).float().mean() >= 0.8  # CrossMax's logits need not all rise each step
    again = maximise_classes(model, "cifar10", settings=FAST_MAX, seed=3, model_name="tiny")
    other = maximise_classes(model, "cifar10", settings=FAST_MAX, seed=4, model_name="tiny")
    assert torch.equal(first.images, again.images) and not torch.equal(first.images, other.images)
    figure = class_maximisation_figure(first, enlarge=3, note="no baseline")
    assert len(figure.axes) == 2  # the grid of every class, one class enlarged
    assert png_bytes(figure) == png_bytes(class_maximisation_figure(again, enlarge=3, note="no baseline"))
    grid_labels = {t.get_text() for t in figure.axes[0].texts}
    assert grid_labels == {name.replace("_", " ") for name in CLASS_NAMES["cifar10"]}
    assert "cat" in figure.axes[1].get_title()


def test_class_maximisation_caption_never_rounds_its_hit_rate_up(model) -> None:
    from eee_zoo.viz.class_maximisation import _summary

    data = maximise_classes(model, "cifar10", settings=FAST_MAX, seed=3, model_name="tiny")
    assert data.hits.numel() == 20 and data.judge_draws == 3
    hits = torch.zeros_like(data.hits)
    hits.view(-1)[:12] = 3
    hits.view(-1)[12] = 1  # 37 of 60 image-draws: 61.67 %, which rounding would call 62 %
    assert "predicted as the target on 61% of" in _summary(dataclasses.replace(data, hits=hits))


def test_class_maximisation_beside_a_plain_baseline(model) -> None:
    torch.manual_seed(0)
    baseline = nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 10)).eval()
    ours = maximise_classes(model, "cifar10", settings=FAST_MAX, seed=0, model_name="tiny")
    theirs = maximise_classes(baseline, "cifar10", settings=FAST_MAX, seed=0, model_name="linear")
    assert (theirs.logit_end > theirs.logit_start).all() and theirs.judge_draws == 1  # linear: every logit rises
    figure = class_maximisation_figure(ours, theirs)
    assert len(figure.axes) == 4


def test_only_a_self_ensemble_is_told_to_draw_a_baseline_beside_it(model) -> None:
    from tiny_model import TINY_CONFIG

    from eee_zoo.models import SelfEnsemble
    from eee_zoo.viz.make import is_single_resolution

    plain = {**copy.deepcopy(TINY_CONFIG), "stack": {"resolutions": [32]}, "taps": [], "aggregator": "mean", "k": 1}
    assert is_single_resolution(SelfEnsemble.from_config(plain)) and not is_single_resolution(model)


def test_per_layer_and_class_maximisation_show_progress_that_moves_and_changes_nothing(model, images) -> None:
    x, y = images
    settings = PerLayerSettings(n_iter=2, eval_draws=3)
    events: list = []
    quiet = per_layer_robustness(model, x, y, eps=EPS, seed=0, settings=settings)
    shown = per_layer_robustness(model, x, y, eps=EPS, seed=0, settings=settings, progress=events.append)
    assert shown.accuracy == quiet.accuracy
    runs = 1 + len(model.predictor_names)  # the full model, then each predictor itself
    moves = [e.done for e in events if e.kind == "update"]
    assert events[-1].kind == "end" and events[-1].done == events[-1].total == runs * settings.n_iter
    assert len(set(moves)) == runs * settings.n_iter and any("each predictor" in e.text for e in events)
    events.clear()
    first = maximise_classes(model, "cifar10", settings=FAST_MAX, seed=3, progress=events.append)
    again = maximise_classes(model, "cifar10", settings=FAST_MAX, seed=3)
    assert torch.equal(first.images, again.images)
    assert events[-1].done == events[-1].total > 1 and len({e.done for e in events}) == events[-1].total + 1


def test_per_layer_has_every_predictor_and_the_aggregate(model, images) -> None:
    x, y = images
    settings = PerLayerSettings(n_iter=2, eval_draws=3)
    data = per_layer_robustness(model, x, y, eps=EPS, seed=0, settings=settings, model_name="tiny")
    assert list(data.accuracy) == [*model.predictor_names, "aggregate"]
    for name, record in data.accuracy.items():
        assert set(record) == ({"clean", "full"} if name == "aggregate" else {"clean", "full", "own"})
        assert all(r["n"] == N and r["draws"] == 3 and r["interval"][0] <= r["accuracy"] for r in record.values())
    figure = per_layer_figure(data)
    assert len(figure.axes) == 1
    assert len(figure.axes[0].patches) == 3 * model.num_predictors + 2  # 3 bars per predictor, 2 for the aggregate
    assert [t.get_text() for t in figure.axes[0].get_legend().texts] == [
        "clean", "attack vs the full model", "attack vs this predictor",
    ]  # fmt: skip
    again = per_layer_robustness(model, x, y, eps=EPS, seed=0, settings=settings, model_name="tiny")
    assert again.accuracy == data.accuracy
    # the JSON holds everything the figure draws: drawn again from it, the same bytes
    recorded = PerLayer.from_record(json.loads(json.dumps(data.record(), sort_keys=True)))  # as written
    assert png_bytes(per_layer_figure(recorded)) == png_bytes(figure)


def test_eps_curve_and_the_results_file_check(runs, tmp_path: Path) -> None:
    def run(name: str, eps: float) -> AttackRun:
        base = runs[0] if name == "autoattack-rand" else runs[1]
        return AttackRun(name, base.title, eps, base.x_adv, base.clean_right, base.broken, base.clean, base.robust,
                         base.settings)  # fmt: skip

    data = eps_curves(run, ["autoattack-rand", "adaptive"], [4 / 255, EPS], model_name="tiny", dataset="cifar10",
                      threat_model="Linf", n=N, seed=0)  # fmt: skip
    figure = eps_curve_figure(data)
    assert len(figure.axes) == 1
    legend = [t.get_text() for t in figure.axes[0].get_legend().texts]
    assert len(legend) == 4 and legend[0].startswith("AutoAttack rand") and legend[3].startswith("clean accuracy")
    # like with like: the worst case counted as rand counts, right on all of rand's 3 single-draw checks
    assert legend[2] == "adaptive worst case counted as AutoAttack rand counts (right on all 3 draws)"
    record = json.loads(json.dumps(data.record()))
    assert [p["eps_255"] for p in record["curves"]["autoattack-rand"]] == [4, 8]
    hits, draws = runs[1].settings["fingerprint"]["robust.fresh_hits"], runs[1].settings["fresh_draws"]
    counted = record["adaptive_counted_as_autoattack"]
    assert counted["autoattack"] == "autoattack-rand" and [p["draws"] for p in counted["points"]] == [3, 3]
    assert counted["points"][0]["accuracy"] == pytest.approx(float(right_on_k_draws(hits, draws, 3)))
    assert counted["points"][0]["accuracy"] <= runs[1].robust["accuracy"]  # fewer images right on 3 draws than 1
    assert set(runs[1].settings["per_attack"]) == {"pgd-mean"}  # each attack's column, per draw
    written = json.loads(json.dumps(data.record(), sort_keys=True))  # as atomic_write_json writes it
    assert png_bytes(eps_curve_figure(EpsCurves.from_record(written))) == png_bytes(figure)

    assert count_accuracy([True, False, True, True])["interval"][1] < 1.0


def test_an_adaptive_point_above_autoattack_on_the_deployed_model_is_flagged(tmp_path: Path) -> None:
    """Compared like with like with rand (the deployed model) for a random model: counted as rand counts (right on
    all of its 3 single-draw checks) against rand's own figure, and per draw against rand's examples re-scored per
    draw; with standard for a model whose stack draws nothing (one draw); never with standard on a random model's
    deterministic mode (another function)."""

    def point(name: str, eps: float, accuracy: float, **settings: Any) -> AttackRun:
        record = {"name": name, "title": name, "eps": eps, "clean": {"accuracy": 0.9},
                  "robust": {"accuracy": accuracy, "interval": [0.0, 1.0]}, "settings": settings}  # fmt: skip
        return AttackRun.from_record(record)

    def adaptive(eps: float, hits: list[int], rand_examples: float, stochastic: bool) -> AttackRun:
        examples = {"autoattack-rand": {"accuracy": rand_examples}}  # rand's examples re-scored per draw
        return point("adaptive", eps, sum(hits) / (4 * len(hits)), stochastic=stochastic, fresh_draws=4,
                     fingerprint={"robust.fresh_hits": hits}, per_attack=examples)  # fmt: skip

    rand_attacks, standard_attacks = ["apgd-ce", "apgd-dlr"], ["apgd-ce", "apgd-t", "fab-t", "square"]

    def curves(stochastic: bool) -> EpsCurves:
        return EpsCurves("m", "cifar10", "Linf", 100, 0, {
            "autoattack-rand": [point("autoattack-rand", 1 / 255, 0.60, attacks=rand_attacks),
                                point("autoattack-rand", 2 / 255, 0.30, attacks=rand_attacks)],
            "autoattack-standard-det": [point("autoattack-standard-det", 1 / 255, 0.10, attacks=standard_attacks),
                                        point("autoattack-standard-det", 2 / 255, 0.05, attacks=standard_attacks)],
            # 1/255: 81.25 % per draw, above rand's 60 %, but right on 3 draws only 56.25 %: below, as it must be
            # 2/255: half the images right on every draw: 50 % on 3 draws and per draw, above rand and its examples
            "adaptive": [adaptive(1 / 255, [4, 4, 3, 2] * 25, 0.85, stochastic),
                         adaptive(2 / 255, [4, 4, 0, 0] * 25, 0.40, stochastic)],
        })  # fmt: skip

    assert curves(True).adaptive_above_autoattack() == [
        "2/255: adaptive 50.00 % on 3 draws > autoattack-rand 30.00 %",
        "2/255: adaptive 50.00 % per draw > autoattack-rand's examples 40.00 % per draw",
    ]
    assert curves(True).counted_curve() == ("autoattack-rand", [(1 / 255, 0.5625, 3), (2 / 255, 0.5, 3)])
    assert curves(False).adaptive_above_autoattack() == [
        "1/255: adaptive 81.25 % on 1 draw > autoattack-standard-det 10.00 %",
        "2/255: adaptive 50.00 % on 1 draw > autoattack-standard-det 5.00 %",
    ]
    assert curves(False).counted_curve() is None  # one draw: the per-draw curve itself
    # with rand's examples' own fresh hits recorded, the flag says what they give counted the same way
    noted = curves(True)
    noted.curves["adaptive"][1].settings["per_attack_fresh_hits"] = {"autoattack-rand": [4, 4, 4, 0] * 25}
    assert noted.adaptive_above_autoattack()[0] == (
        "2/255: adaptive 50.00 % on 3 draws > autoattack-rand 30.00 % (its examples counted so on these fresh "
        "draws: 75.00 %)"
    )
    flagged = curves(True)
    assert flagged.record()["adaptive_above_autoattack"] == flagged.adaptive_above_autoattack()
    texts = [t.get_text() for t in eps_curve_figure(flagged).texts]
    assert any(t.startswith("adaptive worst case above AutoAttack") for t in texts)
    # drawn again from a JSON written before these checks: the JSON's derived checks follow the drawing
    stale = {**json.loads(json.dumps(flagged.record())), "adaptive_above_autoattack": ["1/255: stale"]}
    stale.pop("adaptive_counted_as_autoattack")
    path = tmp_path / "eps_curve.json"
    path.write_text(json.dumps(stale))
    assert redraw(path) == tmp_path / "eps_curve.png"
    again = json.loads(path.read_text())
    assert again["adaptive_above_autoattack"] == flagged.adaptive_above_autoattack()
    assert again["adaptive_counted_as_autoattack"]["points"][1]["accuracy"] == 0.5
    assert {k: v for k, v in again.items() if not k.startswith("adaptive_")} == {
        k: v for k, v in stale.items() if not k.startswith("adaptive_")
    }  # nothing else rewritten


def test_runs_are_checked_against_results_files_of_the_same_configuration(
    model, runs, state: Path, tmp_path: Path
) -> None:
    """The library's own results records (``to_dict()``, what benchmarks/results.py and benchmarks/adaptive.py write)
    of the same configuration agree image by image; a changed image, or another configuration, is told apart."""
    with stochastic_mode(model, True):
        autoattack = evaluate(model, N, "cifar10", "Linf", version="rand", eps=EPS, seed=0, batch_size=500,
                              attack_overrides=FAST_AA, interval="clopper-pearson", progress=False,
                              state_path=state / "autoattack")  # fmt: skip
    adaptive = adaptive_evaluate(
        model, N, "cifar10", "Linf", eps=EPS, seed=0, attacks=list(FAST_ADAPTIVE.attacks), autoattack=(),
        selection_draws=2, final_draws=2, tie_draws=4, fresh_draws=4, batch_size=N, state_dir=state, progress=False,
    )  # fmt: skip
    for run, result, robust_key in zip(runs, (autoattack, adaptive), ("robust_correct", "robust")):
        folder = tmp_path / run.name
        folder.mkdir()
        record = result.to_dict()
        (folder / "result.json").write_text(json.dumps(record))
        (folder / "other.json").write_text(json.dumps({**record, "seed": 1}))
        check = check_against_results(run, folder)
        assert check == {"results_file": "result.json", "compared": sorted(run.settings["fingerprint"]),
                         "differ": [], "agree": True}  # fmt: skip
        if robust_key == "robust_correct":  # AutoAttack: one more image robust than the run found
            record = {**record, "robust_correct": record["robust_correct"] + 1}
        else:  # adaptive: one more fresh hit on the first image
            hits = list(record["robust"]["fresh_hits"])
            hits[0] += 1
            record = {**record, "robust": {**record["robust"], "fresh_hits": hits}}
        (folder / "result.json").write_text(json.dumps(record))
        changed = check_against_results(run, folder)
        assert changed is not None and not changed["agree"] and len(changed["differ"]) == 1
        (folder / "result.json").write_text(json.dumps({**record, "eps": 4 / 255}))
        assert check_against_results(run, folder) is None  # no results file of this configuration


def test_command_defaults_are_the_library_defaults() -> None:
    """The parser (built without matplotlib) repeats the library's names and defaults: they must agree."""
    args = cli.build_parser().parse_args(["visualize", "X"])
    assert figure_settings(args) == FigureSettings()
    assert visualize_command.FIGURES == tuple(FIGURES) and visualize_command.CURVE_ATTACKS == CURVE_ATTACKS
    assert [e * 255 for e in default_eps_list("Linf")] == pytest.approx([1, 2, 4, 8, 16])
    with pytest.raises(SystemExit):  # an unknown AutoAttack setting is a usage error, before any model is loaded
        cli.build_parser().parse_args(["visualize", "X", "--autoattack-cut", "apgd.n_iters=3"])


def test_autoattack_runs_option_in_both_commands(tmp_path: Path) -> None:
    """``--autoattack-runs``: off by default; bare, AutoAttack's default state folder for ``adaptive`` and the
    figures' own runs for ``visualize`` (recorded as the bare flag); with DIR, that folder."""
    from eee_zoo.commands import default_state_dir
    from eee_zoo.commands.adaptive import attack_kwargs

    def parse(*words: str) -> Any:
        return cli.build_parser().parse_args(list(words))  # args._parser: the subcommand's (command_line reads it)

    assert attack_kwargs(parse("adaptive", "X"))["autoattack_runs"] is None
    assert attack_kwargs(parse("adaptive", "X", "--autoattack-runs"))["autoattack_runs"] == default_state_dir(
        "autoattack"
    )
    assert attack_kwargs(parse("adaptive", "X", "--autoattack-runs", str(tmp_path)))["autoattack_runs"] == str(tmp_path)
    args = parse("visualize", "X", "--autoattack-runs")
    assert figure_settings(args).adaptive.autoattack_runs is True
    assert figure_settings(args).adaptive.autoattack_chunk_size is None
    chunked = parse("visualize", "X", "--autoattack-runs", "--autoattack-chunk-size", "100")
    assert figure_settings(chunked).adaptive.autoattack_chunk_size == 100
    assert (
        attack_kwargs(parse("adaptive", "X", "--autoattack-runs", "--autoattack-chunk-size", "7"))[
            "autoattack_chunk_size"
        ]
        == 7
    )
    command = visualize_command.command_line(args)
    assert " --autoattack-runs " in command and "True" not in command


def test_visualize_command_offline_on_the_embedded_slice(
    model, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.delenv("EEE_ZOO_DATA", raising=False)  # the slice shipped in the package
    cards = tmp_path / "cards"
    export(model, "Tiny-Viz", card_folder("Tiny-Viz", cards_dir=cards), training={"recipe": "r.yaml", "seed": 1})
    out = tmp_path / "figures"
    cuts = [f"{k}={v}" for k, v in FAST_AA.items()]
    argv = [
        "visualize", "Tiny-Viz", "--cards-dir", str(cards), "--out", str(out), "--n", "6", "--k", "1",
        "--draws", "2", "--eps-list", "4/255", "8/255", "--autoattack-cut", *cuts, "--autoattack",
        "--preset", "quick", "--selection-draws", "2", "--fresh-draws", "2", "--final-draws", "0",
        "--batch-size", "6", "--starts", "1", "--steps", "2", "--max-draws", "1", "--enlarge", "cat",
        "--layer-iters", "2", "--layer-eval-draws", "2", "--state-dir", str(tmp_path / "state"),
        "--results-dir", str(tmp_path / "no-results"),
    ]  # fmt: skip
    assert cli.main(argv) == 0
    stems = ("successful_attacks", "class_maximisation", "per_layer", "eps_curve")
    first = {stem: (out / f"{stem}.png").read_bytes() for stem in stems}
    for stem in stems:
        assert first[stem].startswith(b"\x89PNG\r\n\x1a\n")
        record = json.loads((out / f"{stem}.json").read_text())
        assert record["model"] == "Tiny-Viz" and record["n"] == 6 and record["seed"] == 0
        assert record["command"].startswith("eee-zoo visualize Tiny-Viz --cards-dir")
        assert "--n 6 " in record["command"] and "--seed 0 " in record["command"]
        assert record["data"]["source"] == "eee_zoo.data.load_dataset" and len(record["data"]["sha256"]) == 64
    assert "--autoattack-cut apgd.n_iter=3 apgd.eot_iter=2" in record["command"]
    rand = json.loads((out / "successful_attacks.json").read_text())["attacks"][0]
    assert rand["settings"]["identity"]["data.sha256"] == record["data"]["sha256"]  # the same images throughout
    curve = json.loads((out / "eps_curve.json").read_text())["curves"]
    assert set(curve) == {"autoattack-rand", "autoattack-standard-det", "adaptive"}
    assert all(len(points) == 2 for points in curve.values())
    assert json.loads((out / "class_maximisation.json").read_text())["baseline"] is None
    assert str(out / "eps_curve.png") in capsys.readouterr().out
    assert cli.main(argv) == 0  # again, from the kept attack states: the same bytes
    assert {stem: (out / f"{stem}.png").read_bytes() for stem in stems} == first


def test_cards_show_the_figures_with_links_that_work_on_the_hub(model, tmp_path: Path) -> None:
    cards = tmp_path / "cards"
    folder = card_folder("Tiny-Fig", cards_dir=cards)
    export(model, "Tiny-Fig", folder, training={"recipe": "r.yaml", "seed": 1})
    before = (folder / "README.md").read_text()
    figures = tmp_path / "figures" / "Tiny-Fig"
    figures.mkdir(parents=True)
    for stem in ("eps_curve", "per_layer", "certified_cohen-sigma0.25"):
        (figures / f"{stem}.png").write_bytes(png_bytes(titled_figure(stem)))
        (figures / f"{stem}.json").write_text(json.dumps({"command": f"eee-zoo visualize Tiny-Fig --what {stem}"}))
    copies = set_figures(folder, figures)
    # the caption table's order; certified_<version> takes the place and caption of "certified"
    assert [c.name for c in copies] == ["per_layer.png", "eps_curve.png", "certified_cohen-sigma0.25.png"]
    assert FIGURE_CAPTIONS["certified"] in (folder / "README.md").read_text()
    assert all(c.read_bytes() == (figures / c.name).read_bytes() for c in copies)
    text = (folder / "README.md").read_text()
    assert "](figures/per_layer.png)" in text and "](figures/eps_curve.png)" in text  # relative to the card
    assert "eee-zoo visualize Tiny-Fig --what eps_curve" in text
    assert text.index("## Figures") < text.index("## Limitations")
    assert load_card(folder).name == "Tiny-Fig" and check_card(folder / "README.md", tmp_path) == []
    assert set_figures(folder, figures) == copies and (folder / "README.md").read_text() == text  # idempotent
    (figures / "eps_curve.png").unlink()
    set_figures(folder, figures)
    assert (
        not (folder / "figures" / "eps_curve.png").exists()
        and "eps_curve.png" not in (folder / "README.md").read_text()
    )
    set_figures(folder, None)  # no figures: no section, no copies
    assert (folder / "README.md").read_text() == before and not (folder / "figures").exists()


def titled_figure(title: str) -> Figure:
    figure = new_figure(2, 1)
    figure.suptitle(title)
    return figure


def test_zoo_cards_show_exactly_the_committed_figures() -> None:
    """A zoo card shows figures iff benchmarks/figures/<Name>/ holds them, with byte-identical copies beside it."""
    root = Path(__file__).resolve().parents[1]
    for card in sorted((root / "model_cards").glob("*/*/*/README.md")):
        source = root / "benchmarks" / "figures" / card.parent.name
        pngs = sorted(p.name for p in source.glob("*.png")) if source.is_dir() else []
        text = card.read_text()
        assert ("## Figures" in text) == bool(pngs), f"{card}: run python -m benchmarks.figures.cards"
        for name in pngs:
            copy = card.parent / "figures" / name
            assert f"](figures/{name})" in text and copy.read_bytes() == (source / name).read_bytes(), copy


def test_a_plain_baseline_is_shown_under_autoattack_standard(tmp_path: Path) -> None:
    """A model whose stack draws nothing gets AutoAttack standard where a self-ensemble gets rand (rand would run
    standard's APGD on 20 copies of one gradient): in the successful attacks and on the eps curve."""
    from tiny_model import TINY_CONFIG

    plain_config = {**TINY_CONFIG, "taps": [], "aggregator": "mean",
                    "stack": {"resolutions": [32], "jitter": 0, "down_noise": 0.0, "up_noise": 0.0,
                              "color_range": [1.0, 1.0]}}  # fmt: skip
    plain = train_tiny_model(plain_config)
    assert not plain.is_random
    settings = FigureSettings(n=6, k=1, draws=2, eps_list=(8 / 255,), autoattack_overrides=FAST_AA,
                              adaptive=FAST_ADAPTIVE)  # fmt: skip
    make_figures(plain, ["attacks", "eps-curve"], tmp_path, settings=settings, state_dir=tmp_path / "state")
    record = json.loads((tmp_path / "successful_attacks.json").read_text())
    attacks = record["attacks"]
    assert [a["name"] for a in attacks] == ["autoattack-standard-det", "adaptive"]
    # its probabilities are its one pass: no "mean over 2 draws", no "wrong k/2" (every draw would repeat it)
    assert record["probabilities"] == "the model's one pass (its stack draws nothing)"
    x, y = load_dataset("cifar10", 6)
    everything = torch.ones(6, dtype=torch.bool)
    run = AttackRun(name="clean", title="clean", eps=0.0, x_adv=x, clean_right=everything, broken=everything,
                    clean={}, robust={"accuracy": 0.0, "n": 6}, settings={})  # fmt: skip
    data = successful_attacks(plain, x, y, [run], dataset="cifar10", k=1, draws=5, seed=0, model_name="plain")
    assert data.draws == 1 and not data.random
    titles = [ax.get_title() for ax in successful_attacks_figure(data).axes if ax.get_title().startswith("adv pred")]
    assert titles and all("p(true)" in t and "wrong" not in t for t in titles)
    curves = json.loads((tmp_path / "eps_curve.json").read_text())["curves"]
    assert set(curves) == {"autoattack-standard-det", "adaptive"}


def test_a_curve_redraws_from_stored_counts_alone_and_the_successful_attacks_ask_for_the_examples(
    model, tmp_path: Path
) -> None:
    """A stored adaptive batch without its kept examples (they are not committed) still gives the eps curve, which
    needs only counts; the successful attacks, which show the examples, say in one line that they are missing."""
    settings = FigureSettings(n=N, k=1, draws=2, eps_list=(EPS,), curve_attacks=("autoattack-rand", "adaptive"),
                              autoattack_overrides=FAST_AA, adaptive=FAST_ADAPTIVE)  # fmt: skip
    state = tmp_path / "state"
    make_figures(model, ["eps-curve"], tmp_path / "first", settings=settings, state_dir=state)
    stored = list(state.glob("adaptive_*/batch*.examples.safetensors"))
    assert stored
    for path in stored:
        path.unlink()
    make_figures(model, ["eps-curve"], tmp_path / "again", settings=settings, state_dir=state)
    first, again = (json.loads((tmp_path / d / "eps_curve.json").read_text()) for d in ("first", "again"))
    for record in (first, again):  # the time a run took is not part of its result (a resumed one took none)
        for point in (p for points in record["curves"].values() for p in points):
            point["settings"].pop("wall_time_s")
    assert again["curves"] == first["curves"]
    x, y = load_dataset("cifar10", 2)
    everything = torch.ones(2, dtype=torch.bool)
    resumed = AttackRun(name="adaptive", title="adaptive", eps=EPS, x_adv=None, clean_right=everything,
                        broken=everything, clean={}, robust={"accuracy": 0.0, "n": 2}, settings={})  # fmt: skip
    with pytest.raises(RuntimeError, match="adaptive run's kept examples are not stored"):
        successful_attacks(model, x, y, [resumed], dataset="cifar10", k=1, draws=2)


def test_the_figures_adaptive_run_can_take_the_figures_own_autoattack_run(model, runs, tmp_path: Path) -> None:
    """``autoattack_runs=True``: the AutoAttack examples are those of the figure's own rand run (state_dir/autoattack,
    same cut), reused, not run again; named in the curve's label and the record."""
    settings = dataclasses.replace(FAST_ADAPTIVE, autoattack=("rand",), autoattack_overrides=FAST_AA,
                                   autoattack_runs=True)  # fmt: skip
    with pytest.raises(ValueError, match="state_dir"):
        adaptive_run(model, N, "cifar10", "Linf", eps=EPS, seed=0, settings=settings)
    kw = {"eps": EPS, "seed": 0, "state_dir": tmp_path}
    autoattack_run(model, "autoattack-rand", N, "cifar10", "Linf", overrides=FAST_AA, **kw)
    kept = sorted((tmp_path / "autoattack").iterdir())
    run = adaptive_run(model, N, "cifar10", "Linf", settings=settings, **kw)
    assert sorted((tmp_path / "autoattack").iterdir()) == kept  # the figure's rand run, resumed
    assert run.title.endswith("AutoAttack rand from its runs)")
    assert run.settings["autoattack_source"] == "run" == run.settings["identity"]["autoattack_source"]
    assert "autoattack_source" not in runs[1].settings and "autoattack_source" not in runs[1].settings["identity"]
