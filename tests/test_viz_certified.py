"""The certified-accuracy curve (eee_zoo.viz.certified) and its script (benchmarks.figures.certified).

The result is a real run of :func:`eee_zoo.certify` (about 3 s) on a tiny real model whose answer depends on one
pixel, so that images get different radii, some are wrong and some abstain.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn as nn

import eee_zoo
from eee_zoo.evaluation.intervals import clopper_pearson_interval

pytest.importorskip("matplotlib")

from eee_zoo.viz import (  # noqa: E402  (after the importorskip of the optional dependency)
    CertifiedCurve,
    certified_curve,
    certified_curve_figure,
    png_bytes,
    redraw,
    write_json,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
# pixel (0, 0, 0) of each image: above 0.5 the model says class 3, below class 5; the margin sets the radius
PIXELS = [1.0, 0.9, 0.8, 0.7, 0.6, 0.55, 0.51, 0.2, 0.8, 0.5]
LABELS = [3] * 8 + [5, 3]  # 0.2: wrong (class 5); 0.8 labelled 5: wrong; 0.51 and 0.5: abstain
LINF_POINT = {
    "label": "AutoAttack rand, 10 images", "norm": "Linf", "eps": 8 / 255, "accuracy": 0.3,
    "interval": list(clopper_pearson_interval(3, 10)), "n_examples": 10, "results_file": "rand.json",
}  # fmt: skip
L2_POINT = {**LINF_POINT, "label": "an L2 attack", "norm": "L2", "eps": 0.5, "results_file": "l2.json"}


class OnePixel(nn.Module):
    """Class 3 when pixel (0, 0, 0) is above 0.5, else class 5."""

    num_classes = 10

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.zeros(len(x), 10, device=x.device)
        out[:, 3] = x[:, 0, 0, 0] - 0.5
        out[:, 5] = 0.5 - x[:, 0, 0, 0]
        return out


@pytest.fixture(scope="module")
def result() -> eee_zoo.certify.CertifyResult:
    x = torch.full((len(PIXELS), 3, 32, 32), 0.5)
    x[:, 0, 0, 0] = torch.tensor(PIXELS)
    y = torch.tensor(LABELS)
    kw = dict(sigma=0.25, n0=20, n=400, alpha=0.001, batch_size=200, seed=0, radii=(0.1, 0.25, 0.3, 0.5))
    return eee_zoo.certify(OnePixel().eval(), len(PIXELS), inputs=(x, y), progress=False, **kw)


@pytest.fixture(scope="module")
def curve(result) -> CertifiedCurve:
    return certified_curve(result.to_dict(), results_file="certified/r.json", empirical=[LINF_POINT, L2_POINT])


def test_the_run_has_varied_answers(result) -> None:
    assert 0 < sum(result.correct) < len(PIXELS) and result.abstained >= 1
    assert len({round(r, 6) for r, ok in zip(result.radius, result.correct) if ok}) >= 4


def test_curve_is_cohen_analyze_with_clopper_pearson_intervals(result, curve: CertifiedCurve) -> None:
    n = len(PIXELS)
    assert curve.radii[0] == 0.0 and curve.accuracy[0] == sum(result.correct) / n
    assert all(a >= b for a, b in zip(curve.accuracy, curve.accuracy[1:])), "not non-increasing"
    assert all(a < b for a, b in zip(curve.radii, curve.radii[1:]))
    assert curve.radii[-1] > max(result.largest_radius, *result.radius) and curve.accuracy[-1] == 0.0
    for r, k, acc, interval in zip(curve.radii, curve.correct, curve.accuracy, curve.interval):
        assert k == result.at(r).correct and acc == k / n
        assert tuple(interval) == clopper_pearson_interval(k, n)
    for point in result.certified:  # the result's own reported radii lie on the curve
        i = curve.radii.index(point.radius)
        assert (curve.correct[i], curve.accuracy[i]) == (point.correct, point.accuracy)
        assert tuple(curve.interval[i]) == point.interval
    assert [p["radius"] for p in curve.reported] == [0.1, 0.25, 0.3, 0.5]
    assert curve.abstained == result.abstained and curve.results_file == "certified/r.json"
    assert curve.largest_radius == result.largest_radius and curve.input_dim == 3 * 32 * 32
    # a CertifyResult and its dict give the same curve; the grid has its points plus the reported radii
    assert certified_curve(result, results_file="certified/r.json", empirical=[LINF_POINT, L2_POINT]) == curve
    assert len(certified_curve(result, grid_points=11).radii) == 11 + 4


def test_bad_input_is_one_clear_error(result) -> None:
    data = result.to_dict()
    with pytest.raises(ValueError, match=r"missing \['radius'\]"):
        certified_curve({k: v for k, v in data.items() if k != "radius"})
    with pytest.raises(ValueError, match="norm must be"):
        certified_curve(data, empirical=[{**LINF_POINT, "norm": "L1"}])
    with pytest.raises(ValueError, match="grid_points"):
        certified_curve(data, grid_points=1)


def _texts(ax) -> list[str]:
    return [t.get_text() for t in ax.texts] + [t.get_text() for t in ax.get_legend().get_texts()]


def test_figure_panels_titles_and_legends(curve: CertifiedCurve, result) -> None:
    figure = certified_curve_figure(curve)
    left, right = figure.axes
    assert left.get_title() == "certified accuracy against the L2 radius"
    assert "L-inf" in right.get_title() and "upper bound" in right.get_title()
    assert left.get_xlabel() == "L2 radius" and right.get_xlabel().startswith("L-inf radius (/255)")
    assert left.get_ylabel() == right.get_ylabel() == "accuracy (%)"
    suptitle = figure._suptitle.get_text()
    for part in ("OnePixel", "sigma 0.25", "N=400", "alpha=0.001", "first 10 test images", "seed 0"):
        assert part in suptitle, part
    left_texts, right_texts = " ".join(_texts(left)), " ".join(_texts(right))
    assert "largest certifiable radius" in left_texts and "an L2 attack" in left_texts
    assert "certified (lower bound)" in right_texts and "attack (upper bound)" in right_texts
    assert "AutoAttack rand" in right_texts and "an L2 attack" not in right_texts
    assert right.get_xlim()[1] >= 8  # the L-inf point at 8/255 is in view
    bare = certified_curve_figure(certified_curve(result))
    assert any("no empirical" in t.get_text() for t in bare.axes[1].texts)
    assert not any("attack (upper bound)" in t for t in _texts(bare.axes[1]))


def test_same_input_same_png_and_the_record_round_trips(curve: CertifiedCurve, tmp_path: Path) -> None:
    first = png_bytes(certified_curve_figure(curve))
    assert first == png_bytes(certified_curve_figure(curve))
    record = json.loads(json.dumps(curve.record()))
    assert record["figure"] == "certified_curve"
    again = CertifiedCurve.from_record({**record, "command": "anything"})
    assert again == curve and png_bytes(certified_curve_figure(again)) == first
    path = write_json(curve.record(), tmp_path / "certified.json")
    assert redraw(path) == tmp_path / "certified.png" and (tmp_path / "certified.png").read_bytes() == first


def test_script_writes_png_and_json_with_card_points(result, tmp_path: Path) -> None:
    from benchmarks.certify import certified_version
    from benchmarks.figures.certified import main
    from eee_zoo.cards import best_known_result, result_label
    from eee_zoo.registry import UnknownModelError, get_card

    try:
        card = get_card("Airbench_CPU_CrossMax", "cifar10", "Linf")
    except UnknownModelError:
        pytest.skip("the zoo's Airbench_CPU_CrossMax card is not here")
    data = result.to_dict()  # as if of the zoo checkpoint: the script takes the card's attacks for it
    data.update(model_name=card.name, checkpoint_sha256=card.sha256, card_threat_model="Linf", dataset="cifar10")
    results = tmp_path / "certified.json"
    results.write_text(json.dumps(data))
    out = tmp_path / "figures"
    assert main([str(results), "--out", str(out), "--empirical-from-card"]) == 0
    stem = f"certified_{certified_version(data)}"
    assert stem == "certified_cohen-sigma0.25-n020-N400-alpha0.001"
    record = json.loads((out / f"{stem}.json").read_text())
    assert record["command"].startswith("python -m benchmarks.figures.certified ")
    assert "--empirical-from-card" in record["command"] and record["results_file"] == str(results)
    robust = [r for r in card.results if r["metric"] == "robust_accuracy"]
    budgets = sorted({(r["norm"], r["eps"]) for r in robust})
    assert [(p["norm"], p["eps"]) for p in record["empirical"]] == budgets
    for point in record["empirical"]:
        best = best_known_result([r for r in robust if (r["norm"], r["eps"]) == (point["norm"], point["eps"])],
                                 card.stochastic_inference)  # fmt: skip
        assert point["results_file"] == best["results_file"] and result_label(best) in point["label"]
        assert point["accuracy"] == best["correct"] / best["n_examples"]
        assert point["interval"][0] <= point["accuracy"] <= point["interval"][1]
    curve = CertifiedCurve.from_record(record)
    assert (out / f"{stem}.png").read_bytes() == png_bytes(certified_curve_figure(curve))
    # another checkpoint's card is refused
    data["checkpoint_sha256"] = "0" * 64
    results.write_text(json.dumps(data))
    with pytest.raises(SystemExit, match="another checkpoint"):
        main([str(results), "--out", str(out), "--empirical-from-card"])


def test_script_errors_in_one_line(tmp_path: Path) -> None:
    from benchmarks.figures.certified import main

    missing = tmp_path / "nope.json"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.figures.certified", str(missing), "--out", str(tmp_path)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr == f"error: certified results file not found: {missing}\n", proc.stderr
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(SystemExit, match="cannot read certified results file") as info:
        main([str(broken)])
    assert "\n" not in str(info.value)
    broken.write_text(json.dumps({"suite": "autoattack"}))
    with pytest.raises(SystemExit, match="not a certification results file"):
        main([str(broken)])
    broken.write_text(json.dumps({"suite": "certify", "method": "cohen"}))
    with pytest.raises(SystemExit, match="not a usable certification result"):
        main([str(broken)])
    assert not list(tmp_path.glob("*.png"))
