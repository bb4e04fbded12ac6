"""Figures quoted in the README's prose are the committed ones: each quote is checked against its source.

The leaderboard, cards and model_info are generated (and rebuilt byte for byte in test_benchmarks), but prose that
explains them quotes a few numbers; these tests fail when a re-run changes a source and the prose is not updated.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from eee_zoo._percent import floor_percent

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()
LEADERBOARD = (REPO / "benchmarks" / "LEADERBOARD.md").read_text()


def _one_line(text: str) -> str:
    return re.sub(r"\s+", " ", text)


def _quote(pattern: str, text: str = README) -> re.Match[str]:
    match = re.search(pattern, _one_line(text))
    assert match, f"the quote {pattern!r} is gone: update this test with the prose"
    return match


def test_the_worked_example_quotes_the_leaderboards_adaptive_row() -> None:
    quote = _quote(
        r"On `(\w+)` \(n = (\d+), 8/255\): rand ([\d.]+) %, the worst case counted as rand counts ([\d.]+) %, "
        r"per draw ([\d.]+) %"
    )
    name, n, rand, as_rand, per_draw = quote.groups()
    rows = [
        line
        for line in LEADERBOARD.splitlines()
        if line.startswith(f"| {name} (") and f"| {n} | 0 |" in line and "AutoAttack rand" in line
    ]
    assert len(rows) == 1, rows
    cells = [cell.strip() for cell in rows[0].split("|")]
    assert f"{rand} (rand)" in cells
    assert any(cell.startswith(f"{as_rand} [") and cell.endswith("(3 draws)") for cell in cells)
    assert any(cell.startswith(f"**{per_draw}**") for cell in cells)


def test_the_eps_curve_flag_quotes_the_figures_data() -> None:
    quote = _quote(
        r"\[`(\w+_FGSM)`\]\(benchmarks/figures/\1/eps_curve\.png\), were drawn.*?The FGSM twin's figure shows a "
        r"flagged point: at (\d+)/255 its worst case counted as rand counts is ([\d.]+) % against rand's own "
        r"([\d.]+) %\..*?give ([\d.]+) %"
    )
    twin, eps, adaptive, rand, rescored = quote.groups()
    data = json.loads((REPO / "benchmarks" / "figures" / twin / "eps_curve.json").read_text())
    expected = (
        f"{eps}/255: adaptive {adaptive} % on 3 draws > autoattack-rand {rand} % "
        f"(its examples counted so on these fresh draws: {rescored} %)"
    )
    assert data["adaptive_above_autoattack"] == [expected]


def test_the_autoattack_share_range_is_the_committed_measurements() -> None:
    rows = json.loads((REPO / "benchmarks" / "perf" / "results" / "autoattack_share.json").read_text())["rows"]
    stochastic = [row["share"] for row in rows if "rand" in row["autoattack"]]
    low, high = f"{min(stochastic):.1%}"[:-1], f"{max(stochastic):.1%}"[:-1]
    assert _quote(r"They were ([\d.]+)-([\d.]+) % of the attack stage's").groups() == (low, high)
    perf_readme = (REPO / "benchmarks" / "perf" / "README.md").read_text()
    assert _quote(r"\): ([\d.]+) % to ([\d.]+) % for the stochastic self-ensembles", perf_readme).groups() == (
        low,
        high,
    )


def test_the_reproducibility_finding_quotes_the_committed_comparisons() -> None:
    readme = (REPO / "benchmarks" / "reproducibility" / "README.md").read_text()
    results = REPO / "benchmarks" / "reproducibility" / "results"

    def stages(name: str) -> list[dict]:
        data = json.loads((results / f"{name}.json").read_text())
        if data["a"].startswith("benchmarks/results/"):  # compared with the results file as committed now
            assert data["stages"][-1]["robust_a"] == json.loads((REPO / data["a"]).read_text())["robust_correct"]
        return data["stages"]

    def differ(stage: dict) -> str:
        return str(len(stage["only_a"]) + len(stage["only_b"]))

    rand, standard, n100 = stages("fgsm_rand_n500"), stages("fgsm_standard_n500"), stages("fgsm_rand_n100")
    quote = _quote(r"`rand` differs on (\d+) images after APGD-CE and on (\d+) after APGD-DLR", readme)
    assert quote.groups() == (differ(rand[1]), differ(rand[2]))
    quote = _quote(r"\((\d+) vs (\d+) robust for the `rand` run above, (\d+) vs (\d+) for `standard`\)", readme)
    assert quote.groups() == tuple(str(s[-1][k]) for s in (rand, standard) for k in ("robust_a", "robust_b"))
    quote = _quote(r"the n = 100 `rand` file holds (\d+), the reruns here (\d+)\)", readme)
    assert quote.groups() == (str(n100[-1]["robust_a"]), str(n100[-1]["robust_b"]))
    assert _quote(r"`AutoAttack rand's run: (\d+)/500 robust`", readme).group(1) == str(rand[-1]["robust_b"])
    quote = _quote(r"changed which image survived: image (\d+) instead of image (\d+), on 2 threads and on 1", readme)
    survived, instead_of = int(quote[1]), int(quote[2])
    for threads in (2, 1):  # B, the AVX2 run, against A, the default run here
        avx2 = stages(f"fgsm_rand_n100_avx2_t{threads}")[-1]
        assert (avx2["only_b"], avx2["only_a"]) == ([survived], [instead_of])
    stored = json.loads((REPO / json.loads((results / "fgsm_rand_n100.json").read_text())["a"]).read_text())
    assert stored["outcomes"][survived] == stored["outcomes"][instead_of] == "R"  # "the run of 2026-11-23 kept both"


@pytest.mark.parametrize(
    "name, small_eps",
    [
        ("ResNet18_GPU_CrossMax", r"(\d+)/255 and (\d+)/255"),
        ("ResNet18_GPU_CrossMax_FGSM", r"(\d+)/255, (\d+)/255 and (\d+)/255"),
    ],
)
def test_the_full_width_eps_curves_quote_their_figures_data(name: str, small_eps: str) -> None:
    quote = _quote(
        rf"\[`({name})`\]\(benchmarks/figures/\1/eps_curve\.png\)[^[]*?widest at (\d+)/255: "
        r"AutoAttack `rand` ([\d.]+) %, the per-draw worst case ([\d.]+) % and, counted as rand counts, ([\d.]+) %, "
        rf"near `standard` on the deterministic mode \(([\d.]+) %\); at {small_eps} its per-draw worst "
        r"case is above rand's own figure and counted as rand counts below it,( as on the CPU models,)? so no point "
        r"is flagged"
    )
    name, eps, rand, per_draw, as_rand, standard, *small = quote.groups()
    small = small[:-1]  # the optional "as on the CPU models"
    data = json.loads((REPO / "benchmarks" / "figures" / name / "eps_curve.json").read_text())

    def at_eps(points: list[dict], eps: str = eps) -> float:
        (point,) = [p for p in points if p["eps_255"] == float(eps)]
        return point["robust"]["accuracy"] if "robust" in point else point["accuracy"]

    curves = data["curves"]
    assert f"{floor_percent(at_eps(curves['autoattack-rand'])):.2f}" == rand
    assert f"{floor_percent(at_eps(curves['adaptive'])):.2f}" == per_draw
    assert f"{floor_percent(at_eps(data['adaptive_counted_as_autoattack']['points'])):.2f}" == as_rand
    assert f"{floor_percent(at_eps(curves['autoattack-standard-det'])):.2f}" == standard
    assert data["adaptive_above_autoattack"] == []
    gaps = {
        r["eps_255"]: r["robust"]["accuracy"] - a["robust"]["accuracy"]
        for r, a in zip(curves["autoattack-rand"], curves["adaptive"], strict=True)
    }
    assert max(gaps, key=gaps.get) == float(eps)  # "widest at"
    for e in small:  # "above rand's own figure and counted as rand counts below it"
        rand_at = at_eps(curves["autoattack-rand"], e)
        assert at_eps(curves["adaptive"], e) > rand_at > at_eps(data["adaptive_counted_as_autoattack"]["points"], e)
