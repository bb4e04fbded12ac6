"""The adaptive suite's worst case (results format 2) in cards, the leaderboard, ``model_info`` and ``eee-zoo list``.

Results dicts are built here in the shape of ``eee_zoo.adaptive.AdaptiveResult.to_dict()`` (columns from
``Column.from_hits``), beside a committed AutoAttack ``rand`` results file of the same checkpoint, n and seed.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from benchmarks.leaderboard import build, model_info
from benchmarks.results import (
    ResultsError,
    adaptive_card_results,
    check_card,
    interval_percent,
    iter_adaptive_results,
    results_file_reference,
)
from eee_zoo._percent import floor_percent, interval_percent_text, percent_text
from eee_zoo.adaptive.result import Column
from eee_zoo.cards import best_known_result, load_card, results_table, set_results, validate_result, write_card
from eee_zoo.cli import main as cli_main
from eee_zoo.evaluation import EvaluationResult

REPO = Path(__file__).resolve().parents[1]
NAME = "Airbench_CPU_CrossMax"
RAND = REPO / "benchmarks/results/cifar10/Linf" / NAME / "rand_sto_eps8-255_n100_seed0_4c839c7c3a29.json"
RESULT_AA = dict(
    metric="robust_accuracy", n_examples=100, norm="Linf", eps=8 / 255, seed=0, results_file="x.json",
    suite="autoattack",
)  # fmt: skip


def worst_case(
    robust: list[int],
    per_attack: dict[str, list[int]],
    *,
    fresh_draws: int,
    clean: list[int] | None = None,
    preset: str = "zoo",
    **extra: Any,
) -> dict[str, Any]:
    """A format-2 results dict of NAME at the committed rand file's n, seed and eps; hits are per-image fresh hits."""
    aa = json.loads(RAND.read_text())
    n = len(robust)

    def column(name: str, hits: list[int]) -> dict[str, Any]:
        selection = [min(h, 2) for h in hits]
        return dataclasses.asdict(Column.from_hits(name, selection, hits, fresh_draws, proposals=3))

    return {
        "model_name": NAME, "checkpoint_sha256": aa["checkpoint_sha256"], "dataset": "cifar10",
        "threat_model": "Linf", "eps": aa["eps"], "n_examples": n, "seed": 0, "batch_size": 250, "preset": preset,
        "attacks": [{"name": a, "description": a} for a in per_attack], "autoattack": ["rand", "standard-det"],
        "autoattack_overrides": {}, "selection_draws": 2, "fresh_draws": fresh_draws, "cascade": False,
        "clean": column("clean", clean or [fresh_draws] * n), "robust": column("worst case", robust),
        "per_attack": [column(a, h) for a, h in per_attack.items()], "chosen": ["clean"] * n,
        "data": {"source": "eee_zoo.data.load_dataset", "dataset": "cifar10", "split": "test"}, "versions": {},
        "device": "cpu", "wall_time_s": 1.0, "created": "2026-11-30T00:00:00+00:00", "confidence": 0.95,
        "format_version": 2, "suite": "adaptive", "kind": "adaptive", "stochastic": True, **extra,
    }  # fmt: skip


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A checkout-shaped folder: the committed rand n=100 file and an empty card of the same checkpoint."""
    results = tmp_path / "benchmarks" / "results" / "cifar10" / "Linf" / NAME
    results.mkdir(parents=True)
    shutil.copy(RAND, results / RAND.name)
    card = load_card(REPO / "model_cards" / "cifar10" / "Linf" / NAME)
    path = tmp_path / "model_cards" / "cifar10" / "Linf" / NAME / "README.md"
    path.parent.mkdir(parents=True)
    write_card(dataclasses.replace(card, results=[], card_path=path))
    return tmp_path


def save(root: Path, result: dict[str, Any], stem: str = "zoo_eps8-255_n100_seed0") -> str:
    path = root / "benchmarks" / "results" / "cifar10" / "Linf" / NAME / "adaptive" / f"{stem}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result))
    return results_file_reference(path, root / "benchmarks" / "results")


# ============================================================================================ cards
def test_card_results_count_image_draws_and_validate() -> None:
    # 3 images x 3 fresh draws: 5 of 9 image-draws right = 55.555...% (floored, not rounded), 1 image right on all 3.
    result = worst_case([3, 2, 0], {"apgd-ce-det": [3, 3, 0]}, fresh_draws=3)
    per_draw, every_draw = adaptive_card_results(result, "benchmarks/results/x.json")
    assert (per_draw["version"], per_draw["correct"], per_draw["n_examples"]) == ("zoo/per-draw", 5, 9)
    assert (per_draw["images"], per_draw["fresh_draws"], per_draw["value"]) == (3, 3, 55.55)
    assert per_draw["value"] == pytest.approx(100 * result["robust"]["per_draw"], abs=0.01)
    assert (every_draw["version"], every_draw["correct"], every_draw["n_examples"]) == ("zoo/every-draw-3", 1, 3)
    assert every_draw["value"] == 33.33
    for r in (per_draw, every_draw):
        assert (r["metric"], r["suite"], r["stochastic"]) == ("robust_accuracy", "adaptive", True)
        assert validate_result(r, threat_model="Linf")["value"] == r["value"]  # the card contract holds exactly
    table = results_table([validate_result(per_draw), validate_result(every_draw)])
    assert "worst case over adaptive attacks, per draw (3 images x 3 draws)" in table
    assert "worst case over adaptive attacks, right on all 3 draws" in table

    old = {**result, "format_version": 1}  # the retired cascade's files do not go into cards
    with pytest.raises(ResultsError, match="format 1"):
        adaptive_card_results(old, "benchmarks/results/x.json")
    with pytest.raises(ResultsError, match="caller-provided"):
        adaptive_card_results({**result, "data": {"source": "tensors"}}, "benchmarks/results/x.json")


def test_card_figures_are_backed_by_the_results_file_and_replace_the_retired_cascade(checkout: Path) -> None:
    card_path = checkout / "model_cards" / "cifar10" / "Linf" / NAME / "README.md"
    hits = [4] * 10 + [0] * 80 + [1] * 10  # 50 of 400 image-draws: 12.50 % per draw; 10 images right on all 4
    result = worst_case(hits, {"apgd-ce-det": [4] * 20 + [0] * 80}, fresh_draws=4)
    ref = save(checkout, result)
    retired = dict(
        metric="robust_accuracy", value=1.0, correct=1, n_examples=100, version="adaptive", norm="Linf",
        eps=result["eps"], seed=0, stochastic=True, suite="adaptive", eval_draws=10, results_file="gone.json",
    )  # fmt: skip
    set_results(card_path, [retired])
    entries = adaptive_card_results(result, ref)
    set_results(card_path, entries)
    card = load_card(card_path)
    assert [r["version"] for r in card.results] == ["zoo/per-draw", "zoo/every-draw-4"]  # the cascade is gone
    assert check_card(card_path, checkout) == []
    text = card_path.read_text()
    assert (
        "Best-known robust accuracy of the deployed model at Linf eps = 8/255 (RobustBench's `external`): **12.50 %**"
        in text
    )
    limitations = text[text.index("## Limitations") :]  # names the new suite, not the retired cascade's attacks
    assert "*selection* draws" in limitations and "*fresh* draws" in limitations
    assert "each single predictor" in limitations and "transfer from the deterministic mode" not in limitations

    set_results(card_path, [dict(entries[0], correct=51, value=12.75)])  # a count the file does not hold
    assert any("51 correct in the card but 50" in p for p in check_card(card_path, checkout))
    set_results(card_path, [dict(entries[0], value=12.51)])  # rounded up, in the model's favour: refused
    assert any("is not 50/400 from the results file (floored" in p for p in check_card(card_path, checkout))
    set_results(card_path, [dict(entries[1], version="zoo/every-draw-5", fresh_draws=5)])
    assert any("none of this adaptive results file's figures" in p for p in check_card(card_path, checkout))


def test_best_known_is_the_lowest_figure_on_the_deployed_model() -> None:
    rand = validate_result(dict(RESULT_AA, version="rand", correct=25, value=25.0, stochastic=True))
    det = validate_result(dict(RESULT_AA, version="standard", correct=2, value=2.0, stochastic=False))
    per_draw, every_draw = (
        validate_result(r) for r in adaptive_card_results(worst_case([1] * 100, {}, fresh_draws=5), "x.json")
    )
    assert best_known_result([rand, det], stochastic_inference=True) is rand  # another inference mode
    assert per_draw["value"] == 20.0 and every_draw["value"] == 0.0
    assert best_known_result([rand, det, per_draw, every_draw], stochastic_inference=True) is per_draw
    larger, _ = (  # 22 % on 200 images, the first 100 being per_draw's: the larger run is the figure
        validate_result(r) for r in adaptive_card_results(worst_case([1] * 180 + [2] * 20, {}, fresh_draws=5), "y.json")
    )
    assert best_known_result([rand, per_draw, larger], stochastic_inference=True) is larger


def test_a_larger_run_of_the_same_configuration_replaces_its_first_images() -> None:
    from benchmarks.leaderboard import best_known

    rand = json.loads(RAND.read_text())
    small = worst_case([1] * 100, {}, fresh_draws=5)  # 20 % per draw on the first 100 images
    large = worst_case([1] * 180 + [2] * 20, {}, fresh_draws=5)  # 22 % on 200 images (rand: 25 %), first 100 same
    best = best_known(rand, [("small.json", small), ("large.json", large)])
    assert best["results_file"] == "large.json" and best["adaptive_results"] == 2
    other = worst_case([1] * 100, {}, fresh_draws=5, preset="quick")  # another configuration still counts
    assert best_known(rand, [("quick.json", other), ("large.json", large)])["results_file"] == "quick.json"


def test_the_card_and_the_leaderboard_agree_on_which_run_is_the_same_configuration() -> None:
    """A smaller run of another batch size (or AutoAttack source) is a second measurement, the lower of the two
    counts; one of the same configuration is the larger run's first images. Both places decide it alike."""
    from benchmarks.leaderboard import best_known

    rand = json.loads(RAND.read_text())
    large = worst_case([1] * 180 + [2] * 20, {}, fresh_draws=5)  # 22 %
    for extra, same in (({}, True), ({"batch_size": 50}, False), ({"autoattack_source": "run"}, False)):
        small = worst_case([1] * 100, {}, fresh_draws=5, **extra)  # 20 %
        board = best_known(rand, [("small.json", small), ("large.json", large)])["results_file"]
        entries = [validate_result(r) for f, x in (("small.json", small), ("large.json", large))
                   for r in adaptive_card_results(x, f)]  # fmt: skip
        card = best_known_result(entries, stochastic_inference=True)["results_file"]
        assert board == card == ("large.json" if same else "small.json"), extra


def test_another_autoattack_run_below_the_headline_one_is_the_best_known_on_the_card_and_the_leaderboard() -> None:
    """Another n is another draw of AutoAttack's randomness (not the larger run's first images): the lower of the
    two counts, in model_info as on the card; other inference modes and cut settings never do."""
    from benchmarks.leaderboard import best_known, model_info

    rand = json.loads(RAND.read_text())
    lower = dict(rand, robust_correct=rand["robust_correct"] - 5)
    deterministic = dict(rand, robust_correct=0, stochastic=False, version="standard")
    cut = dict(rand, robust_correct=0, attack_overrides={"apgd.n_iter": 4})
    runs = [("rand.json", rand), ("lower.json", lower), ("det.json", deterministic), ("cut.json", cut)]
    best = best_known(rand, results_file="rand.json", autoattack=runs)
    assert (best["results_file"], best["suite"]) == ("lower.json", "autoattack")
    assert best["value"] == rand["robust_correct"] - 5  # n = 100: percent
    info = model_info(rand, results_file="rand.json", autoattack=runs)
    assert info["external"] == best["value"] and "another AutoAttack rand run" in info["footnote"]
    assert best_known(rand, results_file="rand.json", autoattack=runs[2:])["results_file"] == "rand.json"
    card = [
        validate_result(dict(RESULT_AA, version="rand", correct=c, value=float(c), stochastic=True, results_file=f))
        for f, c in (("rand.json", rand["robust_correct"]), ("lower.json", lower["robust_correct"]))
    ]
    assert best_known_result(card, stochastic_inference=True)["results_file"] == "lower.json"


def test_a_tie_goes_to_the_larger_run_on_the_leaderboard_as_on_the_card() -> None:
    """One rule (:func:`eee_zoo.cards.best_known_result`) in both places: the same figure at a larger n is the
    tighter measurement, whichever run the leaderboard's row shows."""
    from benchmarks.leaderboard import best_known

    rand = json.loads(RAND.read_text())
    larger = dict(rand, n_examples=2 * rand["n_examples"], robust_correct=2 * rand["robust_correct"])
    best = best_known(rand, results_file="rand.json", autoattack=[("larger.json", larger)])
    assert (best["results_file"], best["n_examples"]) == ("larger.json", larger["n_examples"])
    assert best_known(rand, results_file="rand.json", autoattack=[("same.json", dict(rand))])["results_file"] == (
        "rand.json"
    )  # an exact tie keeps the row's own run


# ============================================================================================ leaderboard
def _build(root: Path) -> tuple[str, dict[str, Any]]:
    written = build(
        root / "benchmarks" / "results", model_info_dir=root / "mi", markdown_path=root / "LB.md", html=False
    )
    (info,) = written["model_info"]
    return (root / "LB.md").read_text(), json.loads(info.read_text())


def _adaptive_row(markdown: str) -> str:
    (row,) = [line for line in markdown.splitlines() if line.startswith(f"| {NAME} ")]
    return row


def test_leaderboard_row_shows_the_headline_rand_and_per_attack_columns(checkout: Path) -> None:
    hits = [4] * 10 + [0] * 80 + [1] * 10  # 12.50 % per draw, below rand's 25.00 % and below each attack
    attacks = {"apgd-ce-det": [4] * 20 + [0] * 80, "autoattack-rand": [4] * 30 + [0] * 70}
    ref = save(checkout, worst_case(hits, attacks, fresh_draws=4))
    save(checkout, worst_case([2] * 100, {"pgd-mean-eot": [2] * 100}, fresh_draws=4, preset="quick"), "quick")
    markdown, info = _build(checkout)
    assert "Checks" in markdown and "selection* draws" in markdown and "`ok`" in markdown  # the columns explained
    header = next(line for line in markdown.splitlines() if line.startswith("| Model | Dataset / threat"))
    names = [c.strip() for c in header.split("|")[1:-1]]
    assert {"apgd-ce-det", "autoattack-rand", "pgd-mean-eot"} < set(names)  # the union of the rows' attacks
    row = next(line for line in markdown.splitlines() if ref in line and line.startswith(f"| {NAME} "))
    cells = dict(zip(names, (c.strip() for c in row.split("|")[1:-1])))
    assert (cells["Clean, per draw"], cells["AutoAttack"]) == ("100.00", "25.00 (rand)")
    assert cells["**Headline, per draw**"] == "**12.50** [6.73, 20.62]"  # (0.067304, 0.206153) widened
    assert cells["Worst case, per draw"] == "12.50 [6.73, 20.62]"  # the headline is the worst case here
    assert cells["As AutoAttack counts"].startswith("10.00 [") and cells["As AutoAttack counts"].endswith("(3 draws)")
    assert cells["Every draw"].startswith("10.00 [") and cells["Every draw"].endswith("(all 4)")
    assert (cells["apgd-ce-det"], cells["autoattack-rand"], cells["pgd-mean-eot"]) == ("20.00", "30.00", "-")
    assert cells["Checks"] == "ok" and cells["n"] == "100" and cells["Seed"] == "0"

    # model_info: external is the lowest figure, and its footnote says where it comes from.
    assert (info["autoattack_acc"], info["external"]) == (25.0, 12.5)
    assert info["eee_zoo"]["external"]["results_file"] == ref
    assert (
        "12.50%, worst case over the adaptive suite's 'zoo' attacks, per draw, first 100 test images x 4 "
        in (info["footnote"])
    )
    assert "seed 0, 95% interval 6.73-20.62%" in info["footnote"] and ref in info["footnote"]

    # the leaderboard opens with it: one row per checkpoint, the best-known figure beside AutoAttack's
    lines = markdown.splitlines()
    assert lines.index("## Headline: the best-known robust accuracy of each checkpoint") < lines.index(
        "## AutoAttack: every measured configuration"
    )
    (top,) = [line for line in lines if line.startswith(f"| 1 | {NAME} ") and ref in line]
    assert "| 25.00 [" in top and "(rand, n 100) | **12.50** [6.73, 20.62] |" in top
    assert "adaptive 'zoo' worst case, per draw: 100 images x 4 fresh draws" in top


def test_the_attacks_cell_says_where_autoattack_s_examples_came_from(checkout: Path) -> None:
    hits = [0] * 100
    save(checkout, worst_case(hits, {"apgd-ce-det": hits}, fresh_draws=4, autoattack_source="run"), "a")
    save(checkout, worst_case(hits, {"apgd-ce-det": hits}, fresh_draws=4, autoattack_source="run",
                              autoattack_chunk_size=100), "b")  # fmt: skip
    markdown, _ = _build(checkout)
    assert "zoo + AutoAttack rand, standard-det (its runs' examples) |" in markdown
    assert "zoo + AutoAttack rand, standard-det (its runs' examples, runs in chunks of 100) |" in markdown


def test_checks_flag_a_worst_case_above_rand_or_a_single_attack(checkout: Path) -> None:
    hits = [4] * 30 + [0] * 70  # 30.00 % per draw: above rand's 25.00 %, and 10 images above apgd-ce-det's 20.00 %
    save(checkout, worst_case(hits, {"apgd-ce-det": [4] * 20 + [0] * 80, "apgd-dlr": hits}, fresh_draws=4))
    markdown, info = _build(checkout)
    # not noise (all 10 differing images up: p = 2**-10): a defect, shown; the headline is apgd-ce-det's column
    assert "| above apgd-ce-det | `benchmarks/results/" in _adaptive_row(markdown)
    assert (info["autoattack_acc"], info["external"]) == (25.0, 20.0)
    assert "lowest column (apgd-ce-det), per draw" in info["footnote"]
    save(checkout, worst_case(hits, {"apgd-dlr": hits}, fresh_draws=4))  # nothing lower: the worst case vs rand
    markdown, info = _build(checkout)
    assert "| above rand | `benchmarks/results/" in _adaptive_row(markdown)
    assert (info["autoattack_acc"], info["external"]) == (25.0, 25.0)  # rand is still the best known
    assert "none of the 1 adaptive worst-case evaluations of this checkpoint found less" in info["footnote"]


def test_a_worst_case_a_few_image_draws_above_one_attack_reports_that_attack(checkout: Path) -> None:
    """The Airbench_CPU_CrossMax_Gauss025 case (issue 8): proposals that break an image on nearly every draw tie on
    the selection draws, and the fresh draws put the worst case 2 image-draws above pgd-mean-eot's own column (4
    images up by one, 2 down by one). The headline, card figures, best-known figure and AutoAttack comparison take
    pgd-mean-eot's column, named; the check names the excess and its p-value without calling it a defect."""
    base = [0] * 6 + [10] * 20 + [0] * 74
    worst = [1] * 4 + [0] * 2 + base[6:]  # 204 of 1000 image-draws
    attack = [0] * 4 + [1] * 2 + base[6:]  # 202
    result = worst_case(worst, {"pgd-mean-eot": attack, "apgd-ce-det": base[:50] + [10] * 50}, fresh_draws=10)
    ref = save(checkout, result)
    markdown, info = _build(checkout)
    header = next(line for line in markdown.splitlines() if line.startswith("| Model | Dataset / threat"))
    cells = dict(
        zip((c.strip() for c in header.split("|")[1:-1]), (c.strip() for c in _adaptive_row(markdown).split("|")[1:-1]))
    )
    assert cells["**Headline, per draw**"].startswith("**20.20** [") and cells["**Headline, per draw**"].endswith(
        "(pgd-mean-eot)"
    )
    assert cells["Worst case, per draw"].startswith("20.40 [") and cells["pgd-mean-eot"] == "20.20"
    assert cells["Checks"] == "ok; worst case +2 image-draws over pgd-mean-eot (p = 0.34)"
    assert (info["external"], info["eee_zoo"]["external"]["column"]) == (20.2, "pgd-mean-eot")
    per_draw, every_draw = adaptive_card_results(result, ref)
    assert (per_draw["correct"], per_draw["column"], every_draw["column"]) == (202, "pgd-mean-eot", "pgd-mean-eot")
    label = "adaptive attacks, lowest column: pgd-mean-eot, per draw (100 images x 10 draws)"
    assert label in results_table([validate_result(per_draw)])
    card_path = checkout / "model_cards" / "cifar10" / "Linf" / NAME / "README.md"
    set_results(card_path, [per_draw, every_draw])
    assert check_card(card_path, checkout) == []  # the card's figures are the results file's headline column


def test_rand_is_held_against_the_worst_case_counted_as_rand_counts(checkout: Path) -> None:
    """AutoAttack rand keeps an image robust only if it is right on each of its 3 single-draw checks (clean, after
    APGD-CE, after APGD-DLR): where images are wrong on some draws only, its figure sits below the per-draw one by
    construction. The check holds it against the worst case right on all of 3 draws; per draw, the worst case is
    held against rand's examples re-scored per draw (their column)."""
    hits = [3] * 100  # every image right on 3 of 4 fresh draws: 75 % per draw, 25 % right on 3 draws
    save(checkout, worst_case(hits, {"autoattack-rand": [4] * 100}, fresh_draws=4))
    markdown, _ = _build(checkout)
    header = next(line for line in markdown.splitlines() if line.startswith("| Model | Dataset / threat"))
    cells = dict(
        zip((c.strip() for c in header.split("|")[1:-1]), (c.strip() for c in _adaptive_row(markdown).split("|")[1:-1]))
    )
    assert (cells["AutoAttack"], cells["**Headline, per draw**"][:9]) == ("25.00 (rand)", "**75.00**")
    assert cells["As AutoAttack counts"].startswith("25.00 [") and cells["Checks"] == "ok"  # 25 % is not above 25 %
    save(checkout, worst_case([4] * 26 + [0] * 74, {"autoattack-rand": [4] * 30 + [0] * 70}, fresh_draws=4))
    assert _adaptive_row(_build(checkout)[0]).split("|")[-3].strip() == "above rand"  # 26 % on 3 draws > 25 %
    save(checkout, worst_case([3] * 100, {"autoattack-rand": [2] * 100}, fresh_draws=4))
    assert _adaptive_row(_build(checkout)[0]).split("|")[-3].strip() == "above autoattack-rand"  # per draw 75 > 50


def test_right_on_k_draws_is_unbiased_from_per_draw_to_every_draw() -> None:
    """The mean of C(h, k) / C(F, k) over images: exactly p**k in expectation for h ~ Binomial(F, p), the per-draw
    figure at k = 1 and the every-draw figure at k = F."""
    from fractions import Fraction
    from math import comb

    from eee_zoo.adaptive.result import right_on_k_draws

    p, draws = Fraction(2, 5), 6
    for k in (1, 2, 3, 6):
        expected = sum(comb(draws, h) * p**h * (1 - p) ** (draws - h) * right_on_k_draws([h], draws, k)
                       for h in range(draws + 1))  # fmt: skip
        assert expected == p**k
    hits = [6, 5, 0, 3, 6, 1]
    column = Column.from_hits("c", hits, hits, draws)
    assert right_on_k_draws(hits, draws, 1) == Fraction(sum(hits), len(hits) * draws)
    assert float(right_on_k_draws(hits, draws, 1)) == column.per_draw
    assert right_on_k_draws(hits, draws, draws) == Fraction(column.every_draw_correct, len(hits))
    share, (lo, hi) = column.on_k_draws(3, draws)
    assert lo < share < hi and share == float(Fraction(20 + 10 + 0 + 1 + 20 + 0, 6 * 20))
    for k in (0, 7):
        with pytest.raises(ValueError, match="k must be between 1 and the number of draws"):
            right_on_k_draws(hits, draws, k)


def test_a_model_that_draws_nothing_is_checked_against_autoattack_standard() -> None:
    """Its worst case is judged on one draw and compared with AutoAttack standard (rand would repeat standard's APGD
    on copies of one gradient); a random model's with rand, never with its deterministic mode's standard."""
    from benchmarks.leaderboard import adaptive_checks, matching_autoattack

    rand = json.loads(RAND.read_text())  # 25 / 100
    standard = {**rand, "version": "standard", "stochastic": False, "robust_correct": 5, "robust_accuracy": 0.05}
    random = worst_case([1] * 10 + [0] * 90, {}, fresh_draws=1)
    plain = worst_case([1] * 10 + [0] * 90, {}, fresh_draws=1, stochastic=False, autoattack=["standard-det"])
    assert matching_autoattack(random, [standard, rand]) is rand and adaptive_checks(random, rand) == "ok"
    assert matching_autoattack(plain, [rand, standard]) is standard
    assert adaptive_checks(plain, standard) == "above standard"  # 10 % above standard's 5 %: a defect, named
    assert matching_autoattack(plain, [rand]) is None


def test_a_larger_autoattack_run_is_held_against_the_worst_case_on_its_first_images() -> None:
    """A worst case on the first n images is checked against a larger AutoAttack run of the same seed restricted to
    those images (its per-image outcomes), named so; a run of exactly n wins, another seed never matches."""
    from benchmarks.leaderboard import adaptive_checks, matching_autoattack, render_adaptive

    rand = json.loads(RAND.read_text())  # 100 images, 25 robust
    n = 40
    robust_first = rand["outcomes"][:n].count("R")
    assert 0 < robust_first < n
    r = worst_case([0] * n, {}, fresh_draws=4)
    reference = matching_autoattack(r, [rand])
    assert reference is not None and reference["n_examples"] == n and reference["first_of"] == 100
    assert reference["robust_correct"] == robust_first and reference["outcomes"] == rand["outcomes"][:n]
    assert reference["clean_correct"] == n - rand["outcomes"][:n].count("-")
    assert "robust_interval" not in reference and rand["n_examples"] == 100  # the file's own dict is untouched
    assert adaptive_checks(r, reference) == "ok"
    above = worst_case([4] * (robust_first + 1) + [0] * (n - robust_first - 1), {}, fresh_draws=4)
    assert adaptive_checks(above, matching_autoattack(above, [rand])) == "above rand"  # held against the subset
    row = "\n".join(render_adaptive([("x.json", r)], [rand]))
    assert f"{100 * robust_first / n:.2f} (rand, first {n} of 100)" in row
    exact = {**rand, "n_examples": n, "outcomes": rand["outcomes"][:n]}
    assert matching_autoattack(r, [rand, exact]) is exact
    assert matching_autoattack(r, [{**rand, "seed": 1}]) is None
    assert matching_autoattack(worst_case([0] * 101, {}, fresh_draws=4), [rand]) is None  # never a smaller run


def test_retired_cascade_files_are_named_not_shown(checkout: Path) -> None:
    old = REPO / "benchmarks/results/cifar10/Linf" / NAME / "adaptive/adaptive_eps8-255_n500_seed0_4c839c7c3a29.json"
    target = checkout / "benchmarks/results/cifar10/Linf" / NAME / "adaptive" / old.name
    target.parent.mkdir(parents=True)
    shutil.copy(old, target)
    assert list(iter_adaptive_results(checkout / "benchmarks" / "results")) == []
    markdown, info = _build(checkout)
    assert "No worst-case results yet." in markdown and f"/adaptive/{old.name}`" in markdown
    assert info["external"] == info["autoattack_acc"] == 25.0
    assert "no adaptive worst-case evaluation of this checkpoint at this eps yet" in info["footnote"]


def test_no_stated_figure_is_rounded_up() -> None:
    """Summaries, logs and figure labels floor an accuracy and widen its interval (eee_zoo._percent)."""
    assert floor_percent(0.09788) == 9.78 and floor_percent(0.1234) == 12.34  # not 9.79; no float dust
    assert floor_percent(0.0998, 0) == 9.0 and floor_percent(0.99999) == 99.99
    assert percent_text(0.09788, 7) == "  9.78%" and interval_percent_text((0.07327, 0.12735), "-") == "7.32%-12.74%"
    e = EvaluationResult.from_dict(json.loads(RAND.read_text()))
    e = dataclasses.replace(e, clean_interval=(0.12349, 0.369612))
    assert "CI 12.34%-36.97%" in e.summary().splitlines()[1]  # rounding would give 12.35%-36.96%


def test_intervals_are_widened_outwards() -> None:
    assert interval_percent((0.12349, 0.369612)) == [12.34, 36.97]  # rounding would give 12.35 and 36.96
    assert interval_percent((0.1234, 0.37)) == [12.34, 37.0]  # exact ends stay (no float dust)
    aa = json.loads(RAND.read_text())
    info = model_info({**aa, "clean_interval": [0.12349, 0.369612], "robust_interval": [0.0, 0.369612]})
    assert "clean 12.34-36.97%, robust 0.00-36.97%" in info["footnote"]
    assert info["eee_zoo"]["clean_interval"] == [12.34, 36.97]


# ============================================================================================ eee-zoo list
def test_list_names_images_and_draws_of_the_per_draw_figure(checkout: Path, capsys: pytest.CaptureFixture) -> None:
    card_path = checkout / "model_cards" / "cifar10" / "Linf" / NAME / "README.md"
    result = worst_case([4] * 10 + [0] * 90, {}, fresh_draws=4)
    set_results(card_path, adaptive_card_results(result, save(checkout, result)))
    assert cli_main(["list", "--cards-dir", str(checkout / "model_cards"), "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["robust"]["zoo/per-draw"] == {
        "value": 10.0, "n_examples": 400, "stochastic": True, "images": 100, "fresh_draws": 4, "interval": [4.9, 17.63],
    }  # fmt: skip
    assert cli_main(["list", "--cards-dir", str(checkout / "model_cards")]) == 0
    assert "zoo/per-draw 10.00 [4.90, 17.63] (n=100 x 4 draws, stochastic)" in capsys.readouterr().out


def test_recard_writes_a_results_file_into_its_card_again(checkout: Path) -> None:
    """``python -m benchmarks.recard``: a results file's card entries derived again (the headline column rule),
    without running anything; the summary beside a worst-case file is written again and names the headline."""
    from benchmarks.recard import main as recard_main
    from benchmarks.recard import recard

    hits = [1] * 4 + [0] * 2 + [0] * 94
    result = worst_case(hits, {"pgd-mean-eot": [0] * 4 + [1] * 3 + [0] * 93}, fresh_draws=10)
    ref = save(checkout, result)
    card_path = recard(
        checkout / ref, cards_dir=checkout / "model_cards", results_dir=checkout / "benchmarks" / "results"
    )
    assert card_path == checkout / "model_cards" / "cifar10" / "Linf" / NAME / "README.md"
    card = load_card(card_path)
    assert [(r["version"], r["correct"], r.get("column")) for r in card.results] == [
        ("zoo/per-draw", 3, "pgd-mean-eot"),
        ("zoo/every-draw-10", 0, "pgd-mean-eot"),
    ]
    assert check_card(card_path, checkout) == []
    log = (checkout / ref).with_suffix(".log").read_text()
    assert "HEADLINE" in log and "pgd-mean-eot: the worst case counted 1 image-draw more" in log
    with pytest.raises(SystemExit):  # an explicit path that does not exist is an error
        recard_main([str(checkout / "missing.json"), "--no-leaderboard"])


def test_headline_column_is_the_lowest_and_ties_keep_the_worst_case() -> None:
    from eee_zoo.adaptive.result import excess_over, headline_column

    tied = worst_case([2, 0, 1], {"a": [1, 1, 1], "b": [0, 2, 1]}, fresh_draws=2)  # all three count 3
    assert headline_column(tied) is tied["robust"]
    lower = worst_case([2, 0, 1], {"a": [1, 1, 1], "b": [0, 1, 1]}, fresh_draws=2)
    assert headline_column(lower)["name"] == "b"
    assert excess_over([2, 0, 1], [0, 1, 1]) == (1, pytest.approx(0.5))  # +2 and -1: as likely as not
    assert excess_over([0, 1, 1], [2, 0, 1]) == (-1, 1.0)  # not above: nothing to test
    assert excess_over([3] * 12, [2] * 12)[1] < 0.001  # every image up: far beyond fresh-draw noise
    with pytest.raises(ValueError, match="3 and 2 images"):
        excess_over([1, 1, 1], [1, 1])


def test_a_worst_case_results_file_reads_back_into_its_result() -> None:
    """``AdaptiveResult.from_dict`` inverts ``to_dict`` (what ``benchmarks.recard`` rewrites the summary from)."""
    from eee_zoo.adaptive.result import AdaptiveResult

    path = REPO / "benchmarks/results/cifar10/Linf/Airbench_CPU_CrossMax_Gauss025/adaptive"
    data = json.loads((path / "zoo_eps8-255_n100_seed0_a64877b1a61a.json").read_text())
    result = AdaptiveResult.from_dict(data)
    assert json.loads(json.dumps(result.to_dict())) == data
    assert result.headline().name == "pgd-mean-eot"
    assert (path / "zoo_eps8-255_n100_seed0_a64877b1a61a.log").read_text() == result.summary() + "\n"
    with pytest.raises(ValueError, match="unknown result fields"):
        AdaptiveResult.from_dict({**data, "surprise": 1})
