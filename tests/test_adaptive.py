"""Adaptive attacks (eee_zoo.adaptive): real APGD from pyautoattack on the tiny trained self-ensemble.

Attack settings are cut (a few iterations, few draws) so that the tests take seconds; the behaviour they check
(seeded determinism, the cascade's bookkeeping, breaking everything at a large budget, clear errors) does not
depend on the attack's strength.
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn as nn

from benchmarks.perf.tiny_model import TINY_CONFIG, train_tiny_model
from eee_zoo.adaptive import ADAPTIVE_ATTACKS, adaptive_evaluate
from eee_zoo.data import load_cifar10
from eee_zoo.models import SelfEnsemble

pytest.importorskip("pyautoattack")

FAST = {"n_iter": 4, "eot_iter": 2, "eval_draws": 3, "batch_size": 8}


@pytest.fixture(scope="module")
def weights() -> dict[str, torch.Tensor]:
    return train_tiny_model(copy.deepcopy(TINY_CONFIG)).state_dict()


@pytest.fixture
def model(weights: dict[str, torch.Tensor]) -> SelfEnsemble:
    m = SelfEnsemble.from_config(copy.deepcopy(TINY_CONFIG))
    m.load_state_dict(weights)
    return m.eval().set_stochastic(True)


@pytest.fixture(scope="module")
def data() -> tuple[torch.Tensor, torch.Tensor]:
    return load_cifar10(n_examples=20)


def test_same_seed_same_result_and_state_restored(model: SelfEnsemble, data) -> None:
    torch.manual_seed(123)
    global_state = torch.get_rng_state()
    seed_before = model.stack.seed
    a = adaptive_evaluate(model, 20, inputs=data, eps=8 / 255, seed=1, **FAST)
    assert torch.equal(torch.get_rng_state(), global_state), "the caller's global RNG must be left alone"
    assert model.stack.seed == seed_before and model.stochastic
    torch.manual_seed(456)  # the caller's global RNG state must not matter (APGD draws its start from it)
    b = adaptive_evaluate(model, 20, inputs=data, eps=8 / 255, seed=1, **FAST)
    assert a.outcomes == b.outcomes
    assert (a.clean_correct, a.robust_correct) == (b.clean_correct, b.robust_correct)
    assert a.robust_accuracy_mean_over_draws == b.robust_accuracy_mean_over_draws


def test_bookkeeping_is_consistent(model: SelfEnsemble, data) -> None:
    r = adaptive_evaluate(model, 20, inputs=data, eps=8 / 255, seed=0, **FAST)
    assert r.attacks == list(ADAPTIVE_ATTACKS)
    assert len(r.outcomes) == 20 and set(r.outcomes) <= {"-", "R", "1", "2", "3"}
    assert r.clean_correct == 20 - r.outcomes.count("-")
    assert r.robust_correct == r.outcomes.count("R") <= r.clean_correct
    remaining = [s.robust for s in r.steps]
    assert remaining == sorted(remaining, reverse=True) and remaining[-1] == r.robust_correct
    assert r.steps[0].attacked == r.clean_correct  # the first attack sees every image right on all clean draws
    lo, hi = r.robust_interval
    assert lo <= r.robust_accuracy <= hi
    assert 0.0 <= r.robust_accuracy_mean_over_draws <= r.clean_accuracy_mean_over_draws <= 1.0
    assert "robust accuracy" in r.summary() and r.to_dict()["kind"] == "adaptive"


def test_a_large_budget_breaks_every_image(model: SelfEnsemble, data) -> None:
    r = adaptive_evaluate(model, 20, inputs=data, eps=0.5, attacks=["transfer-det-mean"], seed=0, **FAST)
    assert r.clean_correct > 0
    assert r.robust_correct == 0, r.outcomes


def test_perturbations_stay_in_the_budget(model: SelfEnsemble, data) -> None:
    from eee_zoo.adaptive import _run_attack

    x, y = data
    eps = 4 / 255
    for attack in ADAPTIVE_ATTACKS:
        x_adv = _run_attack(attack, model, x[:8], y[:8], eps, "Linf", 3, 2, seed=0)
        assert x_adv.shape == x[:8].shape
        assert float((x_adv - x[:8]).abs().max()) <= eps + 1e-6
        assert float(x_adv.min()) >= 0.0 and float(x_adv.max()) <= 1.0


def test_bad_arguments_are_named(model: SelfEnsemble, data) -> None:
    with pytest.raises(ValueError, match="attacks must be distinct names"):
        adaptive_evaluate(model, 4, inputs=data, attacks=["pgd"], **FAST)
    with pytest.raises(TypeError, match="self-ensemble"):
        adaptive_evaluate(nn.Sequential(nn.Flatten(), nn.Linear(3072, 10)).eval(), 4, inputs=data, **FAST)
    with pytest.raises(ValueError, match="training mode"):
        adaptive_evaluate(model.train(), 4, inputs=data, **FAST)
    model.eval()
    with pytest.raises(ValueError, match="eval_draws"):
        adaptive_evaluate(model, 4, inputs=data, **{**FAST, "eval_draws": 0})


def test_results_file_round_trip_and_leaderboard_table(model: SelfEnsemble, tmp_path) -> None:
    import json

    from benchmarks.adaptive import adaptive_path, iter_adaptive, save_adaptive
    from benchmarks.leaderboard import render_adaptive
    from benchmarks.results import ResultsError

    result = adaptive_evaluate(model, 8, eps=8 / 255, seed=0, **FAST)  # the shipped slice, via load_dataset
    path = save_adaptive(result, tmp_path)
    assert path == adaptive_path(result.to_dict(), tmp_path)
    assert path.parent.name == "adaptive" and "_niter4_eotiter2_evaldraws3_" in path.name
    assert path.with_suffix(".log").read_text().startswith(result.model_name)
    assert save_adaptive(result, tmp_path) == path  # a rerun that reproduces the file is accepted
    stored = json.loads(path.read_text())
    stored["outcomes"] = "R" * 8 if result.outcomes != "R" * 8 else "-" * 8
    path.write_text(json.dumps(stored))
    with pytest.raises(ResultsError, match="did not reproduce"):
        save_adaptive(result, tmp_path)
    [(found, data)] = iter_adaptive(tmp_path)
    assert found == path
    table = "\n".join(render_adaptive([("ref.json", result.to_dict())]))
    assert "## Adaptive attacks" in table and f"| {result.n_examples} | `ref.json` |" in table

    caller_inputs = adaptive_evaluate(model, 4, inputs=load_cifar10(n_examples=4), seed=0, **FAST)
    with pytest.raises(ResultsError, match="load_dataset"):
        save_adaptive(caller_inputs, tmp_path)


def test_attacks_do_not_depend_on_the_callers_global_rng(model: SelfEnsemble, data) -> None:
    from eee_zoo.adaptive import _run_attack

    x, y = data
    runs = []
    for global_seed in (1, 2):
        torch.manual_seed(global_seed)
        runs.append(_run_attack("eot-mean", model, x[:8], y[:8], 8 / 255, "Linf", 3, 2, seed=0))
    assert torch.equal(runs[0], runs[1])


def test_card_entry_is_backed_by_its_results_file(model: SelfEnsemble, tmp_path) -> None:
    from benchmarks.adaptive import save_adaptive
    from benchmarks.results import ResultsError, adaptive_card_results, load_result
    from eee_zoo.cards import results_table, validate_result

    result = adaptive_evaluate(model, 8, eps=8 / 255, seed=0, **FAST)
    data = load_result(save_adaptive(result, tmp_path))  # readable by the AutoAttack results tools too
    assert data["version"] == "adaptive" and data["stochastic"] is True
    [entry] = adaptive_card_results(data, "benchmarks/results/x.json")
    entry = validate_result(entry, threat_model="Linf")
    assert entry["correct"] == result.robust_correct and entry["eval_draws"] == FAST["eval_draws"]
    assert "adaptive attacks, right on all 3 draws" in results_table([entry])
    with pytest.raises(ResultsError, match="not an adaptive"):
        adaptive_card_results({**data, "kind": None}, "x.json")
