"""eee_zoo.certify: randomized smoothing (Cohen et al. 2019) and its multi-scale cascade (Jeong & Shin 2023).

Real tiny torch models: one constant on the noise ball (analytic radius), one that answers at random (abstains),
one that answers only when the noise is small (the cascade falls back), a tiny self-ensemble (its own stack noise,
out-of-range inputs), and a slow linear model killed with SIGKILL mid-run and resumed.
"""

from __future__ import annotations

import copy
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.nn as nn
from scipy.stats import beta, norm

import eee_zoo
from eee_zoo.certify import ABSTAIN, lower_bound, upper_bound

REPO_ROOT = Path(__file__).resolve().parents[1]
ALPHA = 0.001


def flat_images(n: int = 3, value: float = 0.5) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.full((n, 3, 32, 32), value), torch.full((n,), 3, dtype=torch.long)


class Constant(nn.Module):
    """Class 3 whatever the input: constant on every noise ball."""

    num_classes = 10

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.zeros(len(x), 10, device=x.device)
        out[:, 3] = 1.0
        return out


class RandomClass(nn.Module):
    """A uniformly random class per call, from the generator it is given."""

    num_classes = 10

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.rand(len(x), 10, generator=generator, device=x.device)


class SmallNoiseOnly(Constant):
    """Class 3 when the input is within mean |x - 0.5| < 0.4 of a flat grey image, else a random class."""

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        far = (x - 0.5).abs().mean(dim=(1, 2, 3)) > 0.4  # sigma 1: ~0.8; sigma 0.25: ~0.2
        random = torch.rand(len(x), 10, generator=generator, device=x.device)
        return torch.where(far.view(-1, 1), random, super().forward(x))


class SlowLinear(nn.Module):
    """A fixed random linear classifier that sleeps per forward pass, so a run can be killed in the middle."""

    num_classes = 10

    def __init__(self, delay_s: float = 0.0) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(0)
        self.weight = nn.Parameter(torch.randn(10, 3 * 32 * 32, generator=gen) * 0.05)
        self.delay_s = delay_s

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.delay_s:
            time.sleep(self.delay_s)
        return x.flatten(1) @ self.weight.T


def analytic_radius(sigma: float, n: int, alpha: float) -> float:
    """All n draws right: the lower bound is Beta(alpha; n, 1) = alpha^(1/n)."""
    return sigma * norm.ppf(alpha ** (1.0 / n))


# ---------------------------------------------------------------------------------------------- the statistics
@pytest.mark.parametrize("k, n", [(0, 50), (1, 50), (37, 50), (50, 50), (9_990, 10_000), (10_000, 10_000)])
def test_clopper_pearson_bounds_match_scipy(k: int, n: int) -> None:
    want_lo = 0.0 if k == 0 else beta.ppf(ALPHA, k, n - k + 1)
    want_hi = 1.0 if k == n else beta.ppf(1 - ALPHA, k + 1, n - k)
    assert lower_bound(k, n, ALPHA) == pytest.approx(want_lo, rel=1e-9, abs=1e-12)
    assert upper_bound(k, n, ALPHA) == pytest.approx(want_hi, rel=1e-9, abs=1e-12)


# ---------------------------------------------------------------------------------------------- CERTIFY
def test_constant_model_certifies_with_the_analytic_radius() -> None:
    x, y = flat_images()
    result = eee_zoo.certify(Constant().eval(), 3, sigma=0.25, n=2000, alpha=ALPHA, inputs=(x, y), progress=False)
    want = analytic_radius(0.25, 2000, ALPHA)
    assert result.predictions == [3, 3, 3] and result.correct == [True] * 3
    assert result.radius == pytest.approx([want] * 3, rel=1e-9)
    assert result.p_lower == pytest.approx([ALPHA ** (1 / 2000)] * 3, rel=1e-12)
    assert result.largest_radius == pytest.approx(want, rel=1e-9)
    at = {c.radius: c for c in result.certified}
    assert at[0.5].correct == 3 and at[0.75].correct == 0  # want ~0.67
    assert at[1.0].radius_linf == pytest.approx(1.0 / math.sqrt(3 * 32 * 32))
    assert at[0.5].interval == pytest.approx((beta.ppf(0.025, 3, 1), 1.0))


def test_random_model_abstains() -> None:
    x, y = flat_images(4)
    result = eee_zoo.certify(RandomClass().eval(), 4, sigma=0.5, n=500, inputs=(x, y), progress=False)
    assert result.predictions == [ABSTAIN] * 4 and result.radius == [0.0] * 4
    assert all(p < 0.5 for p in result.p_lower) and result.abstained == 4
    assert all(c.correct == 0 for c in result.certified) and result.at(0.0).correct == 0


def test_same_seed_same_result_other_seed_other_draws(tiny_model: nn.Module) -> None:
    """A tiny self-ensemble with its own stack noise on; noisy inputs leave [0, 1] and are taken unclamped."""
    tiny_model.set_stochastic(True)
    x = torch.rand(2, 3, 32, 32)
    y = torch.tensor([1, 2])
    kw = dict(sigma=0.5, n0=20, n=100, batch_size=64, inputs=(x, y), progress=False)
    a = eee_zoo.certify(tiny_model, 2, seed=1, **kw)
    b = eee_zoo.certify(tiny_model, 2, seed=1, **kw)
    assert a.scales == b.scales and a.predictions == b.predictions and a.radius == b.radius
    random = [eee_zoo.certify(RandomClass().eval(), 2, seed=s, **kw).scales for s in (1, 1, 2)]
    assert random[0] == random[1] != random[2]  # the seed alone fixes the draws
    assert a.stochastic is True and tiny_model.check_range is True  # the range check is back
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        tiny_model(x + 2.0)
    tiny_model.check_range = False  # what certify does during its run: any range, but never NaN
    try:
        assert tiny_model(x + 2.0).shape == (2, 10)
        with pytest.raises(ValueError, match="NaN"):
            tiny_model(torch.full_like(x, float("nan")))
    finally:
        tiny_model.check_range = True


def test_a_variant_with_the_same_weights_never_resumes_its_parents_images(tiny_model: nn.Module, tmp_path: Path):
    """Certified images are stored under a key of the model's config too: an inference-time variant
    (eee_zoo.models.variants.derive) shares the weights' hash but is certified afresh."""
    from eee_zoo.models.variants import derive

    x, y = torch.rand(2, 3, 32, 32), torch.tensor([1, 2])
    kw = dict(sigma=0.5, n0=20, n=100, batch_size=64, inputs=(x, y), progress=False, state_dir=tmp_path)
    eee_zoo.certify(tiny_model, 2, seed=1, model_name="same", **kw)
    variant = derive(tiny_model, aggregator="mean")
    stored = eee_zoo.certify(variant, 2, seed=1, model_name="same", **kw)
    assert len(list(tmp_path.iterdir())) == 2
    direct = eee_zoo.certify(variant, 2, seed=1, model_name="same", **{**kw, "state_dir": None})
    assert (stored.scales, stored.predictions, stored.radius) == (direct.scales, direct.predictions, direct.radius)


def test_package_and_function_are_both_callable() -> None:
    import eee_zoo.certify as package

    x, y = flat_images(1)
    kw = dict(sigma=0.25, n0=10, n=50, inputs=(x, y), progress=False)
    assert package(Constant().eval(), 1, **kw).predictions == eee_zoo.certify(Constant().eval(), 1, **kw).predictions


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"sigma": 0}, "sigma must be a positive number"),
        ({"sigma": -0.25}, "sigma must be a positive number"),
        ({"sigma": "0.25"}, "sigma must be a positive number"),
        ({"sigma": [0.5, 0.5]}, "sigma values must be distinct"),
        ({"sigma": 0.25, "n0": 0}, "n0 must be an integer >= 1"),
        ({"sigma": 0.25, "n": 1.5}, "n must be an integer >= 1"),
        ({"sigma": 0.25, "alpha": 0.7}, "alpha must be a number in (0, 0.5)"),
        ({"sigma": 0.25, "batch_size": 0}, "batch_size must be an integer >= 1"),
        ({"sigma": 0.25, "radii": [0.25, -1]}, "radii must be non-negative"),
        ({"sigma": 0.25, "seed": -1}, "seed must be an integer >= 0"),
        ({"sigma": 0.25, "n_examples": 0}, "n_examples must be an integer >= 1"),
        ({"sigma": 0.25, "n_examples": 5}, "inputs hold only 2 images"),
    ],
)
def test_bad_arguments_raise_one_clear_line(kwargs: dict, message: str) -> None:
    x, y = flat_images(2)
    n_examples = kwargs.pop("n_examples", 2)
    with pytest.raises(ValueError) as info:
        eee_zoo.certify(Constant().eval(), n_examples, inputs=(x, y), progress=False, **kwargs)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_training_mode_and_wrong_output_width_are_refused() -> None:
    x, y = flat_images(1)
    with pytest.raises(ValueError, match="training mode"):
        eee_zoo.certify(Constant().train(), 1, sigma=0.25, inputs=(x, y), progress=False)

    class Wide(Constant):
        num_classes = 12

    with pytest.raises(ValueError, match="12 classes but the dataset has 10"):
        eee_zoo.certify(Wide().eval(), 1, sigma=0.25, inputs=(x, y), progress=False)


# ---------------------------------------------------------------------------------------------- multi-scale
def test_cascade_answers_at_the_high_sigma_when_it_certifies() -> None:
    x, y = flat_images(2)
    result = eee_zoo.certify(Constant().eval(), 2, sigma=(0.25, 1.0), n=1000, inputs=(x, y), progress=False)
    assert result.method == "multiscale" and result.sigmas == [1.0, 0.25]
    assert result.answered_sigma == [1.0, 1.0] and [len(s) for s in result.scales] == [1, 1]
    # the highest scale spends alpha / (2K) on its lower bound; no higher scale limits the radius
    assert result.radius == pytest.approx([analytic_radius(1.0, 1000, ALPHA / 4)] * 2, rel=1e-9)


def test_cascade_falls_back_to_the_lower_sigma_when_the_high_one_abstains() -> None:
    x, y = flat_images(2)
    n = 1000
    result = eee_zoo.certify(SmallNoiseOnly().eval(), 2, sigma=(1.0, 0.25), n=n, inputs=(x, y), progress=False)
    assert result.answered_sigma == [0.25, 0.25] and result.predictions == [3, 3]
    assert [s[0]["sigma"] for s in result.scales] == [1.0, 1.0]
    # the radius: the low scale's (alpha / K), capped by the high scale staying off every other class
    own = analytic_radius(0.25, n, ALPHA / 2)
    for scales, r in zip(result.scales, result.radius):
        counts = scales[0]["counts"]
        pb = max(beta.ppf(1 - ALPHA / 40, c + 1, n - c) for i, c in enumerate(counts) if i != 3)
        assert r == pytest.approx(min(own, -1.0 * norm.ppf(pb)), rel=1e-9)
    single = eee_zoo.certify(SmallNoiseOnly().eval(), 2, sigma=1.0, n=n, inputs=(x, y), progress=False)
    assert single.predictions == [ABSTAIN, ABSTAIN]


# ---------------------------------------------------------------------------------------------- resuming
_CHILD = """
import sys
sys.path.insert(0, {tests!r})
import torch
import eee_zoo
from test_certify import SlowLinear, flat_images
torch.manual_seed(0)
x = torch.rand(6, 3, 32, 32)
y = torch.arange(6)
eee_zoo.certify(SlowLinear(delay_s={delay}).eval(), 6, sigma=0.5, n0=20, n=200, batch_size=50, seed=3,
                inputs=(x, y), state_dir={state!r}, progress=False)
"""


def _inputs() -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    return torch.rand(6, 3, 32, 32), torch.arange(6)


def test_kill_9_and_resume_gives_the_uninterrupted_result(tmp_path: Path) -> None:
    state = tmp_path / "state"
    code = _CHILD.format(tests=str(REPO_ROOT / "tests"), delay=0.2, state=str(state))
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    child = subprocess.Popen([sys.executable, "-c", code], env=env, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while not list(state.glob("*/image*.json")):  # wait for the first finished image, then kill
            assert child.poll() is None, child.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, "the child never finished an image"
            time.sleep(0.05)
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
    done = list(state.glob("*/image*.json"))
    assert 1 <= len(done) < 6, "killed too late to test a resume"
    kw = dict(sigma=0.5, n0=20, n=200, batch_size=50, seed=3, inputs=_inputs(), progress=False)
    resumed = eee_zoo.certify(SlowLinear().eval(), 6, state_dir=state, **kw)
    uninterrupted = eee_zoo.certify(SlowLinear().eval(), 6, **kw)
    for field in ("predictions", "p_lower", "radius", "scales", "certified", "outcome"):
        assert getattr(resumed, field) == getattr(uninterrupted, field), field
    assert len(list(state.glob("*/image*.json"))) == 6
    stored = [json.loads(f.read_text())["record"]["seconds"] for f in sorted(state.glob("*/image*.json"))]
    assert resumed.compute_s == round(sum(stored), 1)  # the killed run's images count too, not only this call's
    # a stored image that is not this image is refused, not mixed in
    first = sorted(state.glob("*/image*.json"))[0]
    record = json.loads(first.read_text())
    record["image_sha256"] = "0" * 64
    first.write_text(json.dumps(record))
    with pytest.raises(ValueError, match="another image or configuration"):
        eee_zoo.certify(SlowLinear().eval(), 6, state_dir=state, **kw)


# ---------------------------------------------------------------------------------------------- CLI, files, cards
@pytest.fixture
def zoo(tmp_path: Path, tiny_model: nn.Module) -> dict[str, Path]:
    """A checkout-like folder: one exported tiny card, and benchmarks/results beside it."""
    from eee_zoo.hub import export
    from eee_zoo.registry import card_folder

    cards = tmp_path / "model_cards"
    export(tiny_model.set_stochastic(True), "Tiny-C", card_folder("Tiny-C", cards_dir=cards))
    return {"cards": cards, "results": tmp_path / "benchmarks" / "results", "state": tmp_path / "state"}


SMALL = ["--n0", "10", "--n", "40", "--batch-size", "64", "--n-examples", "2", "--seed", "1"]


def test_eee_zoo_certify_prints_json_and_refuses_bad_usage(zoo: dict, capsys: pytest.CaptureFixture) -> None:
    from eee_zoo import cli

    argv = ["certify", "Tiny-C", "--cards-dir", str(zoo["cards"]), "--sigma", "0.25", "--state-dir", str(zoo["state"])]
    assert cli.main([*argv, *SMALL, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["suite"] == "certify" and out["model_name"] == "Tiny-C" and out["stochastic"] is True
    assert len(out["predictions"]) == 2 and out["n"] == 40 and list(zoo["state"].glob("certify_*/image*.json"))
    for bad, says in ((["--sigma", "0"], "expected a positive number"), (["--alpha", "0.7"], "in (0, 0.5)")):
        with pytest.raises(SystemExit) as info:
            cli.main(["certify", "Tiny-C", "--cards-dir", str(zoo["cards"]), "--sigma", "0.25", *bad])
        err = capsys.readouterr().err
        assert info.value.code == 2 and says in err and err.count("\n") == 1, err


def test_results_file_card_and_leaderboard_come_from_the_run(zoo: dict) -> None:
    from benchmarks.certify import iter_certified, main
    from benchmarks.leaderboard import render_certified
    from benchmarks.results import check_card
    from eee_zoo.cards import load_card

    argv = ["Tiny-C", "--cards-dir", str(zoo["cards"]), "--results-dir", str(zoo["results"]), "--sigma", "0.5", "0.25"]
    argv += [*SMALL, "--state-dir", str(zoo["state"]), "--write-card", "--no-leaderboard", "--no-progress"]
    assert main(argv) == 0
    [(path, data)] = iter_certified(zoo["results"])
    assert path.parent.name == "certified" and path.parts[-5:-2] == ("cifar10", "Linf", "Tiny-C")
    assert path.name.startswith("multiscale_sigma0.5+0.25_N40_n010_alpha0.001_n2_seed1_sto_bs64_")
    assert "command: python -m benchmarks.certify Tiny-C" in path.with_suffix(".log").read_text()
    assert main(argv) == 0  # a rerun reproduces the stored answers (from the state) and is accepted
    card = load_card(zoo["cards"] / "cifar10" / "Linf" / "Tiny-C")
    rows = [r for r in card.results if r["metric"] == "certified_accuracy"]
    assert sorted(r["eps"] for r in rows) == [0.25, 0.5, 0.75, 1.0] and all(r["norm"] == "L2" for r in rows)
    text = card.card_path.read_text()
    assert "### Certified (lower bound) beside empirical (upper bound)" in text and "L-inf 4.60/255" in text
    assert check_card(card.card_path, root=zoo["results"].parents[1]) == []
    assert all(r["interval"][0] <= r["value"] <= r["interval"][1] for r in rows)  # each with its 95 % interval
    lo, hi = rows[0]["interval"]
    assert f"| {rows[0]['value']:.2f} | [{lo:.2f}, {hi:.2f}] |" in text
    original = copy.deepcopy(data)
    data["certified"][0]["interval"] = [0.0, 1.0]  # an interval the file no longer backs is reported
    path.write_text(json.dumps(data))
    assert any("95 % interval" in p for p in check_card(card.card_path, root=zoo["results"].parents[1]))
    data = original
    data["certified"][0]["correct"] += 1  # a card number the file no longer backs is reported
    path.write_text(json.dumps(data))
    assert any("in the results file" in p for p in check_card(card.card_path, root=zoo["results"].parents[1]))
    table = render_certified([("ref.json", data)])
    assert table[0].startswith("## Certified robustness") and "| Tiny-C (`" in table[-2] and "`ref.json`" in table[-2]


# ---------------------------------------------------------------------------------------------- sharding
_FIELDS = ("predictions", "p_lower", "radius", "scales", "certified", "outcome", "correct")


def test_shards_in_separate_processes_give_the_unsharded_result(tmp_path: Path) -> None:
    kw = dict(sigma=0.5, n0=20, n=200, batch_size=50, seed=3, inputs=_inputs(), progress=False)
    whole = eee_zoo.certify(SlowLinear().eval(), 6, **kw)
    first = eee_zoo.certify(SlowLinear().eval(), 6, state_dir=tmp_path, shard=(1, 3), **kw)
    assert first is None  # its images are stored, the others are not yet
    assert sorted(p.name for p in tmp_path.glob("*/image*.json")) == ["image000001.json", "image000004.json"]
    assert eee_zoo.certify(SlowLinear().eval(), 6, state_dir=tmp_path, shard=(0, 3), **kw) is None
    last = eee_zoo.certify(SlowLinear().eval(), 6, state_dir=tmp_path, shard=(2, 3), **kw)  # finds every image
    for field in _FIELDS:
        assert getattr(last, field) == getattr(whole, field), field
    with pytest.raises(ValueError, match="needs state_dir"):
        eee_zoo.certify(SlowLinear().eval(), 6, shard=(0, 2), **kw)
    with pytest.raises(ValueError, match=r"0 <= k < N"):
        eee_zoo.certify(SlowLinear().eval(), 6, state_dir=tmp_path, shard=(2, 2), **kw)


_TORCHRUN = """
import json, sys
sys.path.insert(0, {tests!r})
import torch
import eee_zoo
from eee_zoo.evaluation import is_main_process
from test_certify import SlowLinear, _inputs
torch.set_num_threads(1)
r = eee_zoo.certify(SlowLinear().eval(), 6, sigma=0.5, n0=20, n=200, batch_size=50, seed=3, inputs=_inputs(),
                    state_dir={state!r}, progress=False)
if is_main_process():
    with open({out!r}, "w") as f:
        json.dump(r.to_dict(), f)
"""


@pytest.mark.slow
def test_torchrun_shards_by_rank_and_gives_the_unsharded_result(tmp_path: Path) -> None:
    script, out, state = tmp_path / "certify.py", tmp_path / "two.json", tmp_path / "state"
    script.write_text(_TORCHRUN.format(tests=str(REPO_ROOT / "tests"), state=str(state), out=str(out)))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO_ROOT)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(script)]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    two = json.loads(out.read_text())
    whole = eee_zoo.certify(
        SlowLinear().eval(), 6, sigma=0.5, n0=20, n=200, batch_size=50, seed=3, inputs=_inputs(), progress=False
    ).to_dict()
    for field in _FIELDS:
        assert two[field] == json.loads(json.dumps(whole[field])), field
