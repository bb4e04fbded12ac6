"""The worst-case adaptive evaluation (eee_zoo.adaptive): real APGD (pyautoattack), real models, cut settings.

The behaviour checked here (per-image worst case, monotone selection, separate selection and fresh draws, the
eps-ball, seeded determinism, resume after kill -9, presets matching their help) does not depend on attack strength,
so attacks run a few iterations on the tiny trained self-ensemble and on a hand-built two-class model.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
import torch.nn as nn
from conftest import FAST_STANDARD, adaptive_counts
from tiny_model import TINY_CONFIG, train_tiny_model

from benchmarks.perf.judging_rows import EveryRow
from eee_zoo.adaptive import PRESETS, AdaptiveResult, Attack, adaptive_evaluate, describe_preset
from eee_zoo.adaptive.autoattack_proposals import autoattack_examples
from eee_zoo.adaptive.evaluate import derive_seed
from eee_zoo.adaptive.result import per_draw_interval
from eee_zoo.adaptive.surrogates import Surrogate, stochastic_mode
from eee_zoo.adaptive.worst_case import WorstCase, count_hits, judge
from eee_zoo.data import load_cifar10
from eee_zoo.evaluation.examples import project
from eee_zoo.models import SelfEnsemble
from eee_zoo.models.multires import MultiResolutionStack

pytest.importorskip("pyautoattack")

FAST = (
    Attack("apgd-ce-det", surrogate="deployed", n_iter=3),
    Attack("pgd-mean-eot", surrogate="mean", draws=2, optimiser="pgd", n_iter=4, record_every=2),
)
DRAWS = {"selection_draws": 3, "final_draws": 6, "tie_draws": 12, "fresh_draws": 4, "batch_size": 8}
EPS = 8 / 255


@pytest.fixture(scope="module")
def weights() -> dict[str, torch.Tensor]:
    return train_tiny_model(copy.deepcopy(TINY_CONFIG)).state_dict()


def _model(weights: dict[str, torch.Tensor], config: dict | None = None) -> SelfEnsemble:
    m = SelfEnsemble.from_config(copy.deepcopy(config or TINY_CONFIG))
    m.load_state_dict(weights)
    return m.eval().set_stochastic(True)


@pytest.fixture
def model(weights: dict[str, torch.Tensor]) -> SelfEnsemble:
    return _model(weights)


@pytest.fixture(scope="module")
def data() -> tuple[torch.Tensor, torch.Tensor]:
    return load_cifar10(n_examples=16)


class MeanBrightness(nn.Module):
    """Two classes by mean brightness (class 1 above 0.5), plus seeded logit noise when stochastic."""

    def __init__(self, noise: float = 0.0) -> None:
        super().__init__()
        self.noise, self.stochastic = noise, True

    def set_stochastic(self, on: bool) -> MeanBrightness:
        self.stochastic = on
        return self

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        m = x.mean(dim=(1, 2, 3))
        logits = torch.stack([0.5 - m, m - 0.5], dim=1) * 100
        if self.stochastic and self.noise:
            logits = logits + self.noise * torch.randn(logits.shape, generator=generator)
        return logits


def _worst(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> WorstCase:
    return WorstCase(model, x, y, selection_draws=5, selection_seed=1, fresh_draws=7, fresh_seed=2)


def test_the_worst_case_is_per_image() -> None:
    x, y = torch.full((3, 3, 4, 4), 0.4), torch.zeros(3, dtype=torch.long)
    worst = _worst(MeanBrightness(), x, y)
    a, b = x.clone(), x.clone()
    a[0], b[1] = 0.6, 0.6  # attack A breaks image 0 only, attack B image 1 only
    worst.offer("A", "p", a)
    worst.offer("B", "p", b)
    worst.score()
    assert worst.overall.selection_hits.tolist() == [0, 0, 5]
    assert worst.overall.fresh_hits.tolist() == [0, 0, 7]
    assert worst.overall.source == ["A/p", "B/p", "clean"]
    assert worst.per_attack["A"].fresh_hits.tolist() == [0, 7, 7]
    assert worst.per_attack["B"].fresh_hits.tolist() == [7, 0, 7]


def test_offering_a_proposal_never_raises_an_images_selection_score(model: SelfEnsemble, data) -> None:
    x, y = data
    worst = _worst(model, x, y)
    gen = torch.Generator().manual_seed(0)
    before = (worst.overall.selection_hits.clone(), worst.overall.selection_p_true.clone())
    for k in range(6):
        noise = (torch.rand(x.shape, generator=gen) * 2 - 1) * EPS * (k + 1)
        worst.offer(f"noise{k}", "p", project(x, x + noise, EPS * (k + 1), "Linf"))
        hits, p_true = worst.overall.selection_hits, worst.overall.selection_p_true
        assert (hits <= before[0]).all()
        assert ((hits < before[0]) | (p_true <= before[1])).all()
        before = (hits.clone(), p_true.clone())


def test_adding_an_attack_never_raises_any_images_selection_score(model: SelfEnsemble, data) -> None:
    # 32/255: a few steps break the tiny model's noisy stochastic mode on any CPU (at 8/255 whether 4 steps break
    # an image depends on the float kernels the CPU runs: the test would be vacuous on some machines)
    eps = 32 / 255
    one = adaptive_evaluate(model, 16, inputs=data, eps=eps, attacks=FAST[:1], autoattack=(), progress=False, **DRAWS)
    two = adaptive_evaluate(model, 16, inputs=data, eps=eps, attacks=FAST, autoattack=(), progress=False, **DRAWS)
    assert one.per_attack[0].selection_hits == two.per_attack[0].selection_hits  # attack seeds do not depend on order
    assert all(b <= a for a, b in zip(one.robust.selection_hits, two.robust.selection_hits))
    assert all(sum(c.selection_hits) < sum(two.clean.selection_hits) for c in two.per_attack)  # both break images


def test_the_final_stage_keeps_the_finalist_with_fewest_final_hits(model: SelfEnsemble, data) -> None:
    x, y = data
    worst = WorstCase(model, x, y, selection_draws=2, selection_seed=1, fresh_draws=3, fresh_seed=2,
                      final_draws=9, final_seed=3)  # fmt: skip
    gen = torch.Generator().manual_seed(0)
    for k in range(3):
        worst.offer(f"noise{k}", "p", project(x, x + (torch.rand(x.shape, generator=gen) - 0.5) * 0.3, 0.15, "Linf"))
    worst.finalize()
    finalists = [x, *(t.x for t in worst.per_attack.values())]
    final_hits = torch.stack([count_hits(model, f, y, 9, 3) for f in finalists])
    assert torch.equal(worst.overall.selection_hits, final_hits.min(dim=0).values)
    with pytest.raises(ValueError, match="different seeds"):
        WorstCase(model, x, y, selection_draws=2, selection_seed=1, fresh_draws=3, fresh_seed=2, final_draws=4,
                  final_seed=2)  # fmt: skip


class RareOrNever(nn.Module):
    """Class 0 below mean brightness 0.5; from 0.5 to 0.7 right on about 11 % of draws with a low mean true-class
    probability (about 0.2); from 0.7 never right, though with true-class probability 0.45: the probability
    tie-break prefers the proposal the model gets right more often."""

    stochastic = True

    def set_stochastic(self, on: bool) -> RareOrNever:
        return self

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        m = x.mean(dim=(1, 2, 3))
        noise = 2 * torch.randn(len(x), generator=generator)
        rare = torch.stack([noise, torch.full_like(m, 2.5)], dim=1)
        never = torch.tensor([0.0, 0.2]).expand(len(x), 2)
        clean = torch.tensor([5.0, 0.0]).expand(len(x), 2)
        return torch.where((m < 0.5)[:, None], clean, torch.where((m < 0.7)[:, None], rare, never))


def test_ties_on_the_final_draws_are_settled_on_further_draws() -> None:
    x, y = torch.full((16, 3, 2, 2), 0.4), torch.zeros(16, dtype=torch.long)

    def chosen(tie_draws: int) -> WorstCase:
        worst = WorstCase(RareOrNever(), x, y, selection_draws=2, selection_seed=1, fresh_draws=3, fresh_seed=2,
                          final_draws=6, final_seed=3, tie_draws=tie_draws)  # fmt: skip
        worst.offer("rare", "p", torch.full_like(x, 0.6))
        worst.offer("never", "p", torch.full_like(x, 0.8))
        worst.offer("clean-again", "p", x.clone())  # the clean image again: not a second finalist
        worst.finalize()
        return worst

    coin, settled = chosen(0), chosen(60)
    assert "rare/p" in coin.overall.source  # 0 of 6 for both: the probability tie-break picks the rare one
    assert settled.overall.source == ["never/p"] * 16  # further draws tell the never-right one apart
    assert torch.equal(coin.overall.selection_hits, settled.overall.selection_hits)  # the first final draws' min
    assert (settled.overall.selection_hits == 0).all()


def test_judging_some_images_gives_them_their_draws_in_the_whole_batch(model: SelfEnsemble, data) -> None:
    x, y = data
    rows = torch.arange(len(x)) % 3 == 1
    logits = model.predictor_logits(x, torch.Generator().manual_seed(5))
    some = model.predictor_logits(x, torch.Generator().manual_seed(5), rows=rows)
    torch.testing.assert_close(some, logits[rows], rtol=0, atol=1e-5)
    assert not torch.allclose(some, model.predictor_logits(x[rows], torch.Generator().manual_seed(5)), atol=1e-3)
    hits, p_true = judge(model, x, y, 9, 3)
    hits_some, p_some = judge(model, x, y, 9, 3, rows=rows)
    assert torch.equal(hits_some[rows], hits[rows]) and (hits_some[~rows] == -1).all()
    torch.testing.assert_close(p_some[rows], p_true[rows])
    assert p_some[~rows].isnan().all()
    with pytest.raises(ValueError, match="rows must be a bool mask of shape"):
        model(x, rows=rows.nonzero().flatten())


def test_judging_in_micro_batches_keeps_the_draws_of_the_whole_pass(model: SelfEnsemble, data) -> None:
    """``micro_batch``: the backbone on a few images at a time after the stack drew for the whole pass, so each image
    gets the draw it gets in one pass (not that of a call on its part alone); judging on the CPU uses it."""
    x, y = data
    whole = model.predictor_logits(x, torch.Generator().manual_seed(5))
    gen = torch.Generator().manual_seed(5)
    parts = model.predictor_logits(x, gen, micro_batch=3)
    torch.testing.assert_close(parts, whole, rtol=0, atol=1e-5)
    # the generator advanced as by one pass: the next call draws what it draws after a whole pass
    again = torch.Generator().manual_seed(5)
    model.predictor_logits(x, again)
    torch.testing.assert_close(model(x, gen), model(x, again), rtol=0, atol=1e-5)
    assert not torch.allclose(parts[3:6], model.predictor_logits(x[3:6], torch.Generator().manual_seed(5)), atol=1e-3)
    rows = torch.arange(len(x)) % 2 == 0
    torch.testing.assert_close(model(x, torch.Generator().manual_seed(5), rows=rows, micro_batch=2),
                               model(x, torch.Generator().manual_seed(5), rows=rows), rtol=0, atol=1e-5)  # fmt: skip
    one_pass, micro = judge(model, x, y, 9, 3, micro_batch=None), judge(model, x, y, 9, 3, micro_batch=4)
    assert torch.equal(micro[0], one_pass[0])
    torch.testing.assert_close(micro[1], one_pass[1])
    assert torch.equal(judge(model, x, y, 9, 3)[0], one_pass[0])  # the default ("cpu") on this CPU
    with pytest.raises(ValueError, match="micro_batch must be an integer >= 1, None or 'cpu'"):
        judge(model, x, y, 9, 3, micro_batch="gpu")
    with pytest.raises(ValueError, match="micro_batch must be an integer >= 1"):
        model(x, micro_batch=0)


def test_each_image_and_proposal_is_judged_once_with_the_choice_of_judging_all(model: SelfEnsemble, data) -> None:
    x, y = data
    classified_rows = []
    model.heads[0].register_forward_hook(lambda module, args, out: classified_rows.append(len(args[0])))

    def run(judged: nn.Module) -> tuple[WorstCase, int]:
        classified_rows.clear()
        worst = WorstCase(judged, x, y, selection_draws=3, selection_seed=1, fresh_draws=5, fresh_seed=2,
                          final_draws=6, final_seed=3, tie_draws=12)  # fmt: skip
        gen = torch.Generator().manual_seed(0)
        for k in range(3):
            x_adv = project(x, x + (torch.rand(x.shape, generator=gen) - 0.5), 0.3, "Linf")
            worst.offer(f"noise{k}", "p", x_adv[k:], index=torch.arange(k, len(x)))  # images below k: the clean one
        worst.offer("clean-again", "p", x.clone())
        worst.finalize()
        worst.score()
        return worst, sum(classified_rows)

    (skipping, cost), (every, cost_every) = run(model), run(EveryRow(model))
    assert skipping.overall.source == every.overall.source
    assert torch.equal(skipping.overall.selection_hits, every.overall.selection_hits)
    for name in ["worst case", *every.per_attack]:
        column = skipping.overall if name == "worst case" else skipping.per_attack[name]
        expected = every.overall if name == "worst case" else every.per_attack[name]
        assert torch.equal(column.fresh_hits, expected.fresh_hits), name
    assert cost < 0.8 * cost_every  # repeats (the clean image kept, the worst case's choice) are not judged again


def test_selection_and_fresh_draws_differ(model: SelfEnsemble, data) -> None:
    x, y = data
    with pytest.raises(ValueError, match="different seeds"):
        WorstCase(model, x, y, selection_draws=3, selection_seed=5, fresh_draws=3, fresh_seed=5)
    assert derive_seed(0, 0, "selection") != derive_seed(0, 0, "fresh")
    noisy = MeanBrightness(noise=60.0)
    xs = torch.full((64, 3, 4, 4), 0.45)
    ys = torch.zeros(64, dtype=torch.long)
    assert not torch.equal(count_hits(noisy, xs, ys, 9, 1), count_hits(noisy, xs, ys, 9, 2))
    assert torch.equal(count_hits(noisy, xs, ys, 9, 1), count_hits(noisy, xs, ys, 9, 1))  # common random numbers


@pytest.mark.parametrize("norm, eps", [("Linf", 8 / 255), ("L2", 0.5)])
def test_every_proposal_lies_in_the_ball_around_the_clean_image(
    model: SelfEnsemble, data, norm: str, eps: float
) -> None:
    x, y = data
    attacks = [
        *FAST,
        Attack("t", surrogate="predictors", loss="dlr-targeted", targets=2, n_iter=2),
        Attack("pgd-t", optimiser="pgd", loss="ce-targeted", targets=1, n_iter=3, step_size=5.0),
    ]
    count = 0
    for attack in attacks:
        for label, x_adv in attack.proposals(model, x, y, eps=eps, norm=norm, seed=0):
            count += 1
            delta = (x_adv - x).flatten(1)
            size = delta.abs().amax(dim=1) if norm == "Linf" else delta.norm(dim=1)
            assert (size <= eps * (1 + 1e-6)).all(), label
            assert x_adv.min() >= 0 and x_adv.max() <= 1, label
    # apgd: 2 per run; pgd: every 2 steps and the last; one targeted run per predictor and target
    assert count == 2 + 2 + model.num_predictors * 2 * 2 + 1


def test_a_model_without_randomness_is_judged_on_one_draw_with_the_figures_of_many(weights, data) -> None:
    config = copy.deepcopy(TINY_CONFIG)
    config["stack"] = {"jitter": 0, "down_noise": 0.0, "up_noise": 0.0, "color_range": (1.0, 1.0)}
    model = _model(weights, config)
    assert not model.is_random and _model(weights).is_random
    aa = {"autoattack_overrides": FAST_STANDARD, "progress": False, **DRAWS}
    r = adaptive_evaluate(model, 16, inputs=data, eps=EPS, attacks=FAST, autoattack=("rand", "standard-det"), **aa)
    assert (r.selection_draws, r.fresh_draws, r.final_draws, r.tie_draws) == (1, 1, 0, 0)
    assert [c.name for c in r.per_attack] == ["autoattack-standard-det", "apgd-ce-det", "pgd-mean-eot"]
    assert [a["draws"] for a in r.attacks] == [0, 1]  # EOT over copies of one function is one draw
    for column in (r.clean, r.robust, *r.per_attack):
        assert column.per_draw == column.every_draw and set(column.fresh_hits) <= {0, 1}

    # the same run judged on the draws a random model needs gives the same figures
    class PretendRandom(MultiResolutionStack):
        is_random = True

    model.stack.__class__ = PretendRandom
    one_draw = [dataclasses.replace(a, draws=min(a.draws, 1)) for a in FAST]
    full = adaptive_evaluate(model, 16, inputs=data, eps=EPS, attacks=one_draw, autoattack=("standard-det",), **aa)
    assert full.fresh_draws == DRAWS["fresh_draws"]
    for mine, theirs in zip((r.clean, r.robust, *r.per_attack), (full.clean, full.robust, *full.per_attack)):
        assert [h * DRAWS["fresh_draws"] for h in mine.fresh_hits] == theirs.fresh_hits, mine.name
        assert mine.per_draw == theirs.per_draw


def test_same_seed_same_result_and_the_callers_rng_is_left_alone(model: SelfEnsemble, data) -> None:
    torch.manual_seed(123)
    state = torch.get_rng_state()
    seed_before, mode_before = model.stack.seed, model.stochastic
    a = adaptive_evaluate(model, 16, inputs=data, eps=EPS, attacks=FAST, autoattack=(), seed=3, progress=False, **DRAWS)
    assert torch.equal(torch.get_rng_state(), state)
    assert model.stack.seed == seed_before and model.stochastic == mode_before
    torch.manual_seed(456)
    b = adaptive_evaluate(model, 16, inputs=data, eps=EPS, attacks=FAST, autoattack=(), seed=3, progress=False, **DRAWS)
    assert a.to_dict()["robust"] == b.to_dict()["robust"] and a.chosen == b.chosen


def test_autoattack_examples_are_proposals(model: SelfEnsemble, data) -> None:
    r = adaptive_evaluate(
        model, 8, inputs=data, eps=EPS, attacks=(), autoattack=("rand", "standard-det"),
        autoattack_overrides={**FAST_STANDARD, "apgd.eot_iter": 2}, progress=False, **{**DRAWS, "final_draws": 0},
    )  # fmt: skip
    assert [c.name for c in r.per_attack] == ["autoattack-rand", "autoattack-standard-det"]
    rand, standard = r.per_attack
    assert [min(a, b) for a, b in zip(rand.selection_hits, standard.selection_hits)] == r.robust.selection_hits
    assert r.autoattack_overrides["apgd.n_iter"] == 4
    # the proposals are AutoAttack's adversarial examples: standard's break the deterministic mode they attacked
    # (whether they transfer to the stochastic mode depends on the tiny model, so that is not asserted)
    x, y = data[0][:8], data[1][:8]
    overrides = {**FAST_STANDARD, "apgd.eot_iter": 2}
    x_adv = autoattack_examples(model, x, y, "standard-det", eps=EPS, norm="Linf", seed=0, overrides=overrides)
    assert (x_adv - x).abs().max() <= EPS + 1e-6 and 0 <= x_adv.min() and x_adv.max() <= 1
    with stochastic_mode(model, False), torch.no_grad():
        right, right_adv = (model(x).argmax(1) == y), (model(x_adv).argmax(1) == y)
    assert right.any() and not right_adv.any()


def test_presets_run_what_their_help_says() -> None:
    from eee_zoo.cli import build_parser

    # argparse wraps lines at spaces and hyphens: compare with all whitespace removed
    help_text = "".join(build_parser()._subparsers._group_actions[0].choices["adaptive"].format_help().split())
    for name, attacks in PRESETS.items():
        assert name in help_text
        for attack in attacks:
            assert "".join(f"{attack.name}: {attack.describe()}".split()) in help_text
    zhang = PRESETS["zhang2024"][0]
    assert (zhang.surrogate, zhang.optimiser, zhang.n_iter, zhang.draws) == ("mean", "pgd", 400, 10)
    hein = PRESETS["hein2024"][0]
    assert (hein.surrogate, hein.optimiser, hein.draws, hein.loss) == ("mean", "apgd", 100, "ce")
    assert "400 iterations" in describe_preset("zhang2024") and "EOT 100 draws" in describe_preset("hein2024")


def test_batched_eot_is_the_mean_probability_over_draws(model: SelfEnsemble, data) -> None:
    x = data[0][:4]
    model.manual_seed(7)
    batched = Surrogate(model, head="mean", draws=3)(x)
    model.manual_seed(7)
    with torch.no_grad():
        z = Surrogate(model, head="mean", draws=1)(x.repeat(3, 1, 1, 1)).view(3, 4, -1)
    expected = z.softmax(-1).mean(0).log()
    assert torch.allclose(batched.log_softmax(-1), expected, atol=1e-5)


def test_eot_in_micro_batches_has_the_draws_and_gradient_of_one_pass(model: SelfEnsemble, data) -> None:
    x, y = data[0][:5], data[1][:5]

    def gradient(micro_batch: int | str | None) -> tuple[torch.Tensor, torch.Tensor]:
        model.manual_seed(7)
        xg = x.clone().requires_grad_(True)
        z = Surrogate(model, head="mean", draws=3, micro_batch=micro_batch)(xg)
        nn.functional.cross_entropy(z, y).backward()
        return z.detach(), xg.grad

    (z, g), (z_micro, g_micro) = gradient(None), gradient(4)  # 15 copies in passes of 4, 4, 4, 3
    torch.testing.assert_close(z_micro, z, rtol=0, atol=1e-5)
    torch.testing.assert_close(g_micro, g, rtol=1e-4, atol=1e-7)
    torch.testing.assert_close(gradient("cpu")[1], g, rtol=1e-4, atol=1e-7)
    with pytest.raises(ValueError, match="micro_batch must be an integer >= 1, None or 'cpu'"):
        Surrogate(model, head="mean", draws=3, micro_batch=0)


def test_per_draw_interval_is_clopper_pearson_for_one_draw() -> None:
    from scipy.stats import binomtest

    ci = binomtest(7, 20).proportion_ci(0.95, method="exact")
    lo, hi = per_draw_interval([1] * 7 + [0] * 13, 1)
    assert lo == pytest.approx(ci.low) and hi == pytest.approx(ci.high)
    assert per_draw_interval([0] * 10, 4)[0] == 0.0 and per_draw_interval([4] * 10, 4)[1] == 1.0


_RESUME_SCRIPT = textwrap.dedent(
    """
    import copy, sys, torch
    from tiny_model import TINY_CONFIG, train_tiny_model
    from eee_zoo.adaptive import Attack, adaptive_evaluate
    from eee_zoo.data import load_cifar10
    model = train_tiny_model(copy.deepcopy(TINY_CONFIG)).set_stochastic(True)
    attacks = (Attack("pgd-mean-eot", surrogate="mean", draws=2, optimiser="pgd", n_iter=int(sys.argv[2])),)
    r = adaptive_evaluate(model, 16, inputs=load_cifar10(n_examples=16), eps=8 / 255, attacks=attacks, autoattack=(),
                          selection_draws=3, fresh_draws=4, batch_size=4, state_dir=sys.argv[1], progress=False)
    print(sum(r.robust.fresh_hits), r.chosen, r.x_adv.sum().item())
    """
)


def test_resume_after_kill_gives_the_uninterrupted_result(tmp_path: Path) -> None:
    here = Path(__file__).resolve().parent  # tiny_model lives beside the tests
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(here.parent), str(here)])}
    script = tmp_path / "run.py"
    script.write_text(_RESUME_SCRIPT)
    whole = subprocess.run([sys.executable, str(script), str(tmp_path / "a"), "30"], env=env, capture_output=True,
                           text=True, check=True).stdout  # fmt: skip
    proc = subprocess.Popen([sys.executable, str(script), str(tmp_path / "b"), "30"], env=env,
                            stdout=subprocess.PIPE, text=True)  # fmt: skip
    deadline = time.time() + 900  # generous: a loaded 2-core machine trains the tiny model slowly
    while not list((tmp_path / "b").glob("*/batch*.json")) and time.time() < deadline:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done = list((tmp_path / "b").glob("*/batch*.json"))
    assert 1 <= len(done) < 4, "the kill should land between the first and the last batch"
    resumed = subprocess.run([sys.executable, str(script), str(tmp_path / "b"), "30"], env=env, capture_output=True,
                             text=True, check=True).stdout  # fmt: skip
    assert resumed == whole
    assert len(list((tmp_path / "b").glob("*/batch*.examples.safetensors"))) == 4  # kept examples, per batch


def test_a_longer_run_reuses_the_batches_of_a_shorter_one(model: SelfEnsemble, data, tmp_path: Path) -> None:
    kw = {"inputs": data, "eps": EPS, "attacks": FAST, "autoattack": (), "progress": False, "state_dir": tmp_path}
    short = adaptive_evaluate(model, 8, **kw, **{**DRAWS, "batch_size": 4})
    files = sorted(tmp_path.glob("*/batch*.json"))
    assert len(files) == 2
    stamps = [f.stat().st_mtime_ns for f in files]
    long = adaptive_evaluate(model, 16, **kw, **{**DRAWS, "batch_size": 4})
    assert [f.stat().st_mtime_ns for f in files] == stamps  # the first two batches were read, not recomputed
    assert long.robust.fresh_hits[:8] == short.robust.fresh_hits and long.chosen[:8] == short.chosen
    record = json.loads(files[0].read_text())
    files[0].write_text(json.dumps({**record, "images_sha256": "0" * 64}))
    with pytest.raises(ValueError, match="another batch of images"):
        adaptive_evaluate(model, 8, **kw, **{**DRAWS, "batch_size": 4})


def test_a_resumed_run_writes_its_headline_examples_without_the_large_examples_file(
    model: SelfEnsemble, data, tmp_path: Path
) -> None:
    """The per-attack examples files stay local (not committed); each judged batch's small kept file carries the
    headline's examples, so a run resumed in another checkout has the same ``x_adv``, and a kept file of other
    images is refused."""
    kw = {"inputs": data, "eps": EPS, "attacks": FAST, "autoattack": (), "progress": False, "state_dir": tmp_path}
    whole = adaptive_evaluate(model, 8, **kw, **{**DRAWS, "batch_size": 4})
    kept = sorted(tmp_path.glob("*/batch*.kept.safetensors"))
    assert [p.name.split(".")[0] for p in kept] == ["batch000000", "batch000004"]
    for path in tmp_path.glob("*/batch*.examples.safetensors"):
        path.unlink()
    stamps = [p.stat().st_mtime_ns for p in kept]
    resumed = adaptive_evaluate(model, 8, **kw, **{**DRAWS, "batch_size": 4})
    assert whole.x_adv is not None and torch.equal(resumed.x_adv, whole.x_adv)
    assert [p.stat().st_mtime_ns for p in kept] == stamps  # read, not written again
    assert resumed.robust.fresh_hits == whole.robust.fresh_hits and resumed.chosen == whole.chosen
    kept[0].unlink()  # neither file: the run still reports its counts, without examples
    assert adaptive_evaluate(model, 8, **kw, **{**DRAWS, "batch_size": 4}).x_adv is None
    kept[1].rename(kept[0])  # the second batch's examples under the first batch's name
    with pytest.raises(ValueError, match="other images"):
        adaptive_evaluate(model, 8, **kw, **{**DRAWS, "batch_size": 4})


def test_batches_record_where_they_were_attacked_and_judged(model: SelfEnsemble, data, tmp_path: Path) -> None:
    """Each stored batch names the machine and layout its attacks and judgement ran on (their floats decide which
    images break); the result lists them, and says how many batches were stored before batches recorded it."""
    kw = {"inputs": data, "eps": EPS, "attacks": FAST[:1], "autoattack": (), "progress": False, "state_dir": tmp_path}
    draws = {**DRAWS, "batch_size": 4, "final_draws": 0}
    nchw = adaptive_evaluate(model, 8, **kw, **draws)
    files = sorted(tmp_path.glob("*/batch*.json"))
    records = [json.loads(f.read_text())["batch"] for f in files]
    (judged,) = records[0]["judged"].values()
    assert records[0]["arithmetic"] == judged["arithmetic"] and records[0]["arithmetic"]["device"] == "cpu"
    assert "layout" not in records[0]["arithmetic"]  # PyTorch's default layout: unrecorded, as before the option
    assert len(nchw.attacked_on) == 1 and nchw.attacked_on[0].startswith("cpu: ")

    # the second batch attacked again with the convolutions stored NHWC: two entries, and the summary names both
    files[1].unlink()
    model.to(memory_format=torch.channels_last)
    mixed = adaptive_evaluate(model, 8, **kw, **draws)
    assert json.loads(files[1].read_text())["batch"]["arithmetic"]["layout"] == "channels_last"
    assert mixed.attacked_on[0] == nchw.attacked_on[0] and mixed.attacked_on[1].endswith(" thread(s), channels_last")
    assert "attacked on " + "; ".join(mixed.attacked_on) in mixed.summary()

    # a batch stored before the records: counted, not guessed
    for f in files:
        stored = json.loads(f.read_text())
        stored["batch"].pop("arithmetic")
        f.write_text(json.dumps(stored))
    older = adaptive_evaluate(model, 8, **kw, **draws)
    assert older.attacked_on[-1] == "not recorded for 2 of 2 batches (stored before the record)"
    assert AdaptiveResult.from_dict(older.to_dict()).attacked_on == older.attacked_on


def test_a_variant_with_the_same_weights_never_resumes_its_parents_batches(model, data, tmp_path: Path) -> None:
    """The weights' hash does not tell a model's inference-time variants apart: the config is in the batches' key."""
    from eee_zoo.models.variants import derive

    kw = {"inputs": data, "eps": EPS, "attacks": FAST, "autoattack": (), "progress": False, "state_dir": tmp_path}
    adaptive_evaluate(model, 8, model_name="same", **kw, **DRAWS)
    variant = derive(model, aggregator="mean")
    mean = adaptive_evaluate(variant, 8, model_name="same", **kw, **DRAWS)
    folders = sorted(p.name for p in tmp_path.iterdir())
    assert len(folders) == 2  # attacked afresh into its own folder
    assert json.loads(next((tmp_path / folders[0]).glob("*.json")).read_text())["config"]["model_config"] in (
        model.config,
        variant.config,
    )
    direct = adaptive_evaluate(variant, 8, model_name="same", **{**kw, "state_dir": None}, **DRAWS)
    assert adaptive_counts(mean) == adaptive_counts(direct)


def test_judging_again_on_other_draws_reuses_the_attacks(model: SelfEnsemble, data, tmp_path: Path) -> None:
    kw = {"inputs": data, "eps": EPS, "attacks": FAST, "autoattack": (), "progress": False, **DRAWS}
    first = adaptive_evaluate(model, 16, state_dir=tmp_path, **kw)
    files = sorted(tmp_path.glob("*/batch*.json"))
    more = {"final_draws": DRAWS["final_draws"] + 5, "fresh_draws": DRAWS["fresh_draws"] + 3}
    again = adaptive_evaluate(model, 16, state_dir=tmp_path, **{**kw, **more})
    assert sorted(tmp_path.glob("*/batch*.json")) == files  # the same attack stage: no new state folder
    keys = {"final6_tie12_fresh4", "final11_tie12_fresh7"}  # one judgement per draws
    assert all(set(json.loads(f.read_text())["batch"]["judged"]) == keys for f in files)
    direct = adaptive_evaluate(model, 16, **{**kw, **more})  # no state: attacks run anew
    assert adaptive_counts(again) == adaptive_counts(direct)
    assert torch.equal(again.x_adv, direct.x_adv) and not torch.equal(first.x_adv, first.x_adv.new_zeros(()))
    assert first.per_attack[0].selection_hits == again.per_attack[0].selection_hits


def test_the_headline_examples_are_each_images_kept_proposal(model: SelfEnsemble, data) -> None:
    x, y = data
    r = adaptive_evaluate(model, 16, inputs=data, eps=EPS, attacks=FAST, autoattack=(), progress=False, **DRAWS)
    assert r.x_adv.shape == x.shape and "x_adv" not in r.to_dict()
    assert (r.x_adv - x).abs().max() <= EPS + 1e-7 and r.x_adv.min() >= 0 and r.x_adv.max() <= 1
    clean_kept = torch.tensor([c == "clean" for c in r.chosen])
    assert torch.equal(r.x_adv[clean_kept], x[clean_kept])
    b = DRAWS["batch_size"]
    for start in range(0, 16, b):  # what is kept is what was scored: the batch's fresh draws give its fresh hits
        seed = derive_seed(derive_seed(0, start), "fresh")
        hits = count_hits(model, r.x_adv[start : start + b], y[start : start + b], DRAWS["fresh_draws"], seed)
        assert hits.tolist() == r.robust.fresh_hits[start : start + b]


def test_a_results_file_is_replaced_only_by_a_run_that_reproduces_it(model: SelfEnsemble, tmp_path: Path) -> None:
    from benchmarks.adaptive import save_adaptive
    from benchmarks.results import ResultsError

    kw = {"eps": EPS, "attacks": FAST[:1], "autoattack": (), "progress": False, "model_name": "Tiny", **DRAWS}
    result = adaptive_evaluate(model, 8, state_dir=tmp_path / "state", **kw)  # the shipped test images
    path = save_adaptive(result, tmp_path)
    assert save_adaptive(adaptive_evaluate(model, 8, state_dir=tmp_path / "state", **kw), tmp_path) == path
    stored = json.loads(path.read_text())
    stored["robust"]["fresh_hits"][0] += 1
    path.write_text(json.dumps(stored))
    with pytest.raises(ResultsError, match="did not reproduce"):
        save_adaptive(result, tmp_path)
    stored.pop("tie_draws")  # a file from before ties were settled: the same attacks judged otherwise
    path.write_text(json.dumps(stored))
    assert save_adaptive(result, tmp_path) == path  # superseded by the new judgement, not compared with it
    assert json.loads(path.read_text())["robust"] == json.loads(json.dumps(result.to_dict()["robust"]))


def test_autoattack_examples_can_come_from_its_full_run_the_one_benchmark_keeps(
    model: SelfEnsemble, data, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from benchmarks.adaptive import adaptive_path
    from eee_zoo import evaluate

    x, y = data[0][:8], data[1][:8]
    cut = {**FAST_STANDARD, "apgd.eot_iter": 2}
    kw = {"eps": EPS, "attacks": (), "autoattack": ("standard-det",), "autoattack_overrides": cut, "progress": False,
          **{**DRAWS, "final_draws": 0}}  # fmt: skip
    runs = tmp_path / "autoattack"
    # no run there yet: the adaptive evaluation runs AutoAttack on the 8 images and keeps it where benchmark looks
    first = adaptive_evaluate(model, 8, inputs=(x, y), autoattack_runs=runs, state_dir=tmp_path / "a", **kw)
    assert first.autoattack_source == "run" and "of its runs on the 8 images" in first.summary()
    kept = sorted(runs.iterdir())
    with stochastic_mode(model, False):  # standard-det: AutoAttack standard on the deterministic mode
        run = evaluate(model, 8, inputs=(x, y), version="standard", eps=EPS, attack_overrides=cut, state_path=runs)
    assert sorted(runs.iterdir()) == kept  # the same configuration: resumed, not run again
    # the worst case was offered exactly that run's examples: where they were kept, they are the kept proposal
    from_run = torch.tensor([c.startswith("autoattack-standard-det/") for c in first.chosen])
    assert from_run.any()
    assert torch.equal(first.x_adv[from_run], project(x, run.x_adv, EPS, "Linf")[from_run])
    # a second evaluation reuses the finished run and gives the same result; per-batch AutoAttack is another config
    with caplog.at_level(logging.INFO, logger="eee_zoo.adaptive"):
        again = adaptive_evaluate(model, 8, inputs=(x, y), autoattack_runs=runs, state_dir=tmp_path / "b", **kw)
    # the log names the figure of the run the proposals came from (a rerun elsewhere may differ from a results file)
    assert f"AutoAttack standard-det's run: {run.robust_correct}/8 robust ({run.clean_correct} clean-correct)" in (
        caplog.text
    )
    assert again.to_dict() | {"wall_time_s": 0, "created": ""} == first.to_dict() | {"wall_time_s": 0, "created": ""}
    per_batch = adaptive_evaluate(model, 8, inputs=(x, y), state_dir=tmp_path / "a", **kw)
    assert per_batch.autoattack_source == "batch" and "autoattack_source" not in per_batch.to_dict()
    assert len(list((tmp_path / "a").iterdir())) == 2  # its own state folder: never the other's batches
    names = [adaptive_path(r.to_dict()).name for r in (first, per_batch)]
    assert "_aa-run_" in names[0] and "_aa-run" not in names[1]


def test_autoattack_examples_can_come_from_a_run_made_in_chunks(model: SelfEnsemble, data, tmp_path: Path) -> None:
    """``autoattack_chunk_size``: the examples are those of ``evaluate(chunk_size=...)`` (``benchmarks.run
    --chunk-size``), a run of its own (per-chunk seeds), recorded in the result, its file name and its state key."""
    from benchmarks.adaptive import adaptive_path
    from benchmarks.results import worst_case_configuration
    from eee_zoo import evaluate

    x, y = data[0][:8], data[1][:8]
    cut = {**FAST_STANDARD, "apgd.eot_iter": 2}
    kw = {"eps": EPS, "attacks": (), "autoattack": ("standard-det",), "autoattack_overrides": cut, "progress": False,
          **{**DRAWS, "final_draws": 0}}  # fmt: skip
    runs = tmp_path / "autoattack"
    with pytest.raises(ValueError, match="autoattack_chunk_size names how AutoAttack's runs were made"):
        adaptive_evaluate(model, 8, inputs=(x, y), autoattack_chunk_size=4, **kw)
    with pytest.raises(ValueError, match="autoattack_chunk_size must be an integer >= 1"):
        adaptive_evaluate(model, 8, inputs=(x, y), autoattack_runs=runs, autoattack_chunk_size=0, **kw)
    with stochastic_mode(model, False):  # the chunked run made first, as benchmarks.run --chunk-size 4 makes it
        run = evaluate(model, 8, inputs=(x, y), version="standard", eps=EPS, attack_overrides=cut, state_path=runs,
                       chunk_size=4)  # fmt: skip
    assert run.chunk_size == 4 and run.x_adv is not None
    kept = sorted(p for p in runs.rglob("*") if p.is_file())
    state = tmp_path / "adaptive"
    chunked = adaptive_evaluate(model, 8, inputs=(x, y), autoattack_runs=runs, autoattack_chunk_size=4,
                                state_dir=state, **kw)  # fmt: skip
    assert sorted(p for p in runs.rglob("*") if p.is_file()) == kept  # the chunked run was reused, not made again
    from_run = torch.tensor([c.startswith("autoattack-standard-det/") for c in chunked.chosen])
    assert from_run.any()
    assert torch.equal(chunked.x_adv[from_run], project(x, run.x_adv, EPS, "Linf")[from_run])
    assert chunked.autoattack_chunk_size == 4 and chunked.to_dict()["autoattack_chunk_size"] == 4
    assert "in chunks of 4" in chunked.summary()
    assert type(chunked).from_dict(chunked.to_dict()).to_dict() == chunked.to_dict()
    # the unchunked run is another configuration: another AutoAttack run, its own batches, name and key
    whole = adaptive_evaluate(model, 8, inputs=(x, y), autoattack_runs=runs, state_dir=state, **kw)
    assert whole.autoattack_chunk_size is None and "autoattack_chunk_size" not in whole.to_dict()
    assert len(list(state.iterdir())) == 2
    names = [adaptive_path(r.to_dict()).name for r in (chunked, whole)]
    assert "_aa-run-chunk4_" in names[0] and "_aa-run_" in names[1]
    assert worst_case_configuration(chunked.to_dict()) != worst_case_configuration(whole.to_dict())


ADAPTIVE_BAD = [
    ({"n_examples": 10001}, "larger than the cifar10 test split"),
    ({"selection_draws": 0}, "selection_draws must be an integer >= 1"),
    ({"final_draws": -1}, "final_draws must be an integer >= 0"),
    ({"tie_draws": 1.5}, "tie_draws must be an integer >= 0"),
    ({"preset": "pgd", "attacks": None}, "preset must be one of"),
    ({"dataset": "cifar100"}, "returns 10 classes but the dataset has 100"),
    ({"train_mode": True}, "training mode"),
]


@pytest.mark.parametrize(
    "case,match", ADAPTIVE_BAD, ids=[m.split()[0] + str(i) for i, (_, m) in enumerate(ADAPTIVE_BAD)]
)
def test_adaptive_bad_input_gets_the_entry_points_clear_error(model: SelfEnsemble, case: dict, match: str) -> None:
    """The argument and model checks are the ones evaluate() and certify() use, with the same messages, and they
    fail before any data is read or any attack runs (no data_dir is needed to get them)."""
    case = dict(case)
    if case.pop("train_mode", False):
        model.train()
    case = {"n_examples": 4, "attacks": FAST, **case}
    with pytest.raises(ValueError, match=match):
        adaptive_evaluate(model, data_dir="/nonexistent/eee-zoo-data", progress=False, **case)
