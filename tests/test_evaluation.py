"""eee_zoo.evaluation: AutoAttack exactly as run directly (flags and x_adv), intervals, bad inputs, resume, sharding.

Models are the tiny airbench self-ensemble of conftest, trained for two seconds so that its predictions depend
on the input. Tests about plumbing (resume, sharding, flags) use reduced attack settings
(``attack_overrides``); the tests against AutoAttack run directly use the real ``standard`` and ``rand``.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn as nn
from conftest import FAST_STANDARD
from pyautoattack import AutoAttack
from safetensors.torch import load_file, save_file
from tiny_model import train_tiny_model

from eee_zoo import benchmark, evaluate
from eee_zoo._cpu import cpu_arithmetic
from eee_zoo.data import load_dataset
from eee_zoo.evaluation import (
    EvaluationResult,
    attack_settings,
    checkpoint_sha256,
    chunk_seed,
    clopper_pearson_interval,
    default_version,
    normal_quantile,
    wilson_interval,
)
from eee_zoo.models import SelfEnsemble

REPO = Path(__file__).resolve().parents[1]
FAST_RAND = {"apgd.n_iter": 4, "apgd.eot_iter": 2}


@pytest.fixture(scope="module")
def trained_weights(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    from conftest import TINY_CONFIG

    config = copy.deepcopy(TINY_CONFIG)
    path = tmp_path_factory.mktemp("tiny") / "model.safetensors"
    save_file(train_tiny_model(config).state_dict(), str(path))
    return config, path


@pytest.fixture
def model(trained_weights: tuple[dict, Path]) -> SelfEnsemble:
    """A fresh copy of the trained tiny model, stochastic inference (its default)."""
    config, path = trained_weights
    m = SelfEnsemble.from_config(config)
    m.load_state_dict(load_file(str(path)), strict=True)
    return m.eval()


@pytest.fixture(scope="module")
def images() -> tuple[torch.Tensor, torch.Tensor]:
    return load_dataset("cifar10", 16)


# ============================================================================================ intervals
# Newcombe (1998), Statistics in Medicine 17:857, Table I: method 3 (Wilson score) and method 5 (exact).
NEWCOMBE = [
    (81, 263, (0.2553, 0.3662), (0.2527, 0.3676)),
    (15, 148, (0.0624, 0.1605), (0.0578, 0.1617)),
    (0, 20, (0.0000, 0.1611), (0.0000, 0.1684)),
    (1, 29, (0.0061, 0.1718), (0.0009, 0.1776)),
]


@pytest.mark.parametrize("k,n,wilson,exact", NEWCOMBE)
def test_intervals_match_published_values(k: int, n: int, wilson: tuple, exact: tuple) -> None:
    assert wilson_interval(k, n) == pytest.approx(wilson, abs=5e-5)
    assert clopper_pearson_interval(k, n) == pytest.approx(exact, abs=5e-5)


# The hand-written implementation these replaced (bisection on the normal CDF; Lentz's continued fraction of the
# incomplete beta function), its values for (k, n): (Wilson, Clopper-Pearson), 95 %.
HAND_WRITTEN = [
    (0, 1, (0.0, 0.7934506856227624), (0.0, 0.9750000000000001)),
    (1, 3, (0.06149194472039632, 0.7923403991979521), (0.008403758659612404, 0.9057006759497539)),
    (36, 100, (0.2727122040140433, 0.4576459754839126), (0.26640842273323573, 0.46212189332742293)),
    (6, 100, (0.027786123963188185, 0.12476815445895914), (0.02233488607131706, 0.1260299345808229)),
    (93, 500, (0.1543339917500702, 0.22245409405978459), (0.15283509175767884, 0.22292818241098056)),
    (250, 500, (0.4563412653024843, 0.5436587346975157), (0.45528556932422903, 0.544714430675771)),
    (7123, 10000, (0.7033472350276563, 0.7210897192641544), (0.7033164950526847, 0.7211597141583028)),
    (10000, 10000, (0.9996160016293234, 1.0), (0.9996311800853825, 1.0)),
]


@pytest.mark.parametrize("k,n,wilson,exact", HAND_WRITTEN)
def test_scipy_intervals_equal_the_hand_written_ones(k: int, n: int, wilson: tuple, exact: tuple) -> None:
    assert wilson_interval(k, n) == pytest.approx(wilson, abs=1e-12)
    assert clopper_pearson_interval(k, n) == pytest.approx(exact, abs=1e-12)
    assert all(type(v) is float for v in (*wilson_interval(k, n), *clopper_pearson_interval(k, n)))


def test_interval_edges_and_closed_forms() -> None:
    assert normal_quantile(0.975) == pytest.approx(1.959963984540054, abs=1e-14)
    assert normal_quantile(0.5) == pytest.approx(0.0, abs=1e-14)
    for n in (1, 7, 1000):
        # Clopper-Pearson has closed forms at the ends: 1 - (a/2)^(1/n) and (a/2)^(1/n).
        assert clopper_pearson_interval(0, n) == pytest.approx((0.0, 1 - 0.025 ** (1 / n)), abs=1e-12)
        assert clopper_pearson_interval(n, n) == pytest.approx((0.025 ** (1 / n), 1.0), abs=1e-12)
        lo, hi = wilson_interval(0, n)
        assert lo == 0.0 and 0 < hi < 1
    lo, hi = wilson_interval(7123, 10000)
    assert lo < 0.7123 < hi and hi - lo < 0.02
    for bad in ((-1, 10), (11, 10), (0, 0), (1.5, 10)):
        with pytest.raises(ValueError):
            wilson_interval(*bad)


# ============================================================================================ configuration
def test_versions_are_configured_as_autoattack_defines_them(model: SelfEnsemble) -> None:
    standard = attack_settings(AutoAttack(model, norm="Linf", eps=8 / 255, version="standard", seed=0))
    assert standard["attacks"] == ["apgd-ce", "apgd-t", "fab-t", "square"]
    assert standard["apgd"]["n_restarts"] == 1 and standard["apgd"]["n_iter"] == 100
    assert standard["apgd_targeted"]["n_target_classes"] == 9 and standard["apgd_targeted"]["n_restarts"] == 1
    assert standard["fab"]["n_target_classes"] == 9 and standard["fab"]["n_restarts"] == 1
    assert standard["square"]["n_queries"] == 5000
    rand = attack_settings(AutoAttack(model, norm="Linf", eps=8 / 255, version="rand", seed=0))
    assert rand["attacks"] == ["apgd-ce", "apgd-dlr"]
    assert rand["apgd"] == {**rand["apgd"], "eot_iter": 20, "n_iter": 100, "n_restarts": 1}


def test_version_defaults_to_the_inference_mode(model: SelfEnsemble, images) -> None:
    x, y = images
    assert model.stochastic and default_version(model) == "rand"
    result = evaluate(model, 4, inputs=(x, y), attack_overrides=FAST_RAND, batch_size=4)
    assert result.version == "rand" and [a.attack for a in result.attacks] == ["apgd-ce", "apgd-dlr"]
    assert result.stochastic and result.attack_config["apgd"]["eot_iter"] == 2  # the override, recorded
    model.set_stochastic(False)
    assert default_version(model) == "standard"
    result = evaluate(model, 4, inputs=(x, y), attack_overrides=FAST_STANDARD, batch_size=4)
    assert result.version == "standard" and not result.stochastic
    assert [a.attack for a in result.attacks] == ["apgd-ce", "apgd-t", "fab-t", "square"]


def test_standard_on_a_stochastic_model_is_refused_unless_insisted(model: SelfEnsemble, images) -> None:
    x, y = images
    with pytest.raises(ValueError, match=r"stochastic.*rand.*set_stochastic\(False\).*allow_stochastic_standard"):
        evaluate(model, 4, inputs=(x, y), version="standard")
    result = evaluate(
        model, 4, inputs=(x, y), version="standard", allow_stochastic_standard=True, attack_overrides=FAST_STANDARD
    )
    # AutoAttack's own randomness check fires and is kept with the result.
    assert "randomized" in {w.check for w in result.warnings}
    assert "randomized" in result.unreliable_checks


# ============================================================================================ bad inputs
class _Softmax(nn.Module):
    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x).softmax(-1)


BAD = [
    ({"version": "fast"}, "unknown AutoAttack version 'fast'"),
    ({"eps": 8}, r"did you mean 8/255"),
    ({"eps": 0.0}, "out of range for Linf"),
    ({"threat_model": "L2", "eps": 100.0}, "out of range for L2"),
    ({"threat_model": "L1"}, "unknown threat model"),
    ({"dataset": "mnist"}, "unknown dataset"),
    ({"n_examples": 10001}, "larger than the cifar10 test split"),
    ({"n_examples": 0}, "n_examples must be an integer"),
    ({"batch_size": 0}, "batch_size must be an integer"),
    ({"version": "custom"}, "needs a non-empty attacks"),
    ({"attacks": ["apgd-ce"]}, "only used with version='custom'"),
    ({"version": "custom", "attacks": ["apgd-xx"]}, "bad custom attacks"),
    ({"attack_overrides": {"apgd.lr": 1}}, "unknown attack override"),
    ({"interval": "bayes"}, "unknown interval method"),
    ({"dataset": "cifar100"}, "returns 10 classes but the dataset has 100"),
    ({"probabilities": True}, "look like probabilities"),
    ({"train_mode": True}, "training mode"),
    ({"labels": 12}, r"labels must lie in \[0, 10\)"),
    ({"inputs_n": 2}, "inputs hold only 2 images"),
]


@pytest.mark.parametrize("case,match", BAD, ids=[m.split()[0] + str(i) for i, (_, m) in enumerate(BAD)])
def test_bad_input_gets_a_clear_error(model: SelfEnsemble, images, case: dict, match: str) -> None:
    x, y = images
    case = dict(case)
    n = case.pop("n_examples", 4)
    if case.pop("probabilities", False):
        model = _Softmax(model.set_stochastic(False)).eval()
    if case.pop("train_mode", False):
        model.train()
    if "labels" in case:
        y = y.clone()
        y[0] = case.pop("labels")
    x, y = x[: case.pop("inputs_n", 16)], y[: len(x)]
    with pytest.raises(ValueError, match=match):
        evaluate(model, n, inputs=(x, y[: len(x)]), **case)


# ============================================================================================ AutoAttack direct
def _direct(
    model: SelfEnsemble, n: int, version: str, seed: int, batch_size: int, state: Path
) -> tuple[float, float, torch.Tensor, torch.Tensor]:
    """AutoAttack run directly, the way the evaluation package documents its equivalent."""
    x, y = load_dataset("cifar10", n)
    model.manual_seed(seed)
    adversary = AutoAttack(model, norm="Linf", eps=8 / 255, version=version, seed=seed, device="cpu")
    x_adv, y_adv = adversary.run_standard_evaluation(x, y, batch_size=batch_size, state_path=state)
    saved = json.loads(state.read_text())  # AutoAttack's own state: its robust flags after the last attack
    robust = sum(saved["_robust_flags"]) / n
    assert robust == (y_adv == y).sum().item() / n
    return saved["_clean_accuracy"], robust, torch.tensor(saved["_robust_flags"]), x_adv


def _same_as_direct(model: SelfEnsemble, n: int, version: str, seed: int, batch_size: int, tmp_path: Path) -> None:
    state = tmp_path / "state"
    clean, robust = benchmark(model, n_examples=n, batch_size=batch_size, seed=seed, state_path=state)
    # The same configuration again: the finished state is reused, with its flags and examples.
    result = evaluate(model, n, version=version, batch_size=batch_size, seed=seed, state_path=state)
    assert result.notes and "reused the finished AutoAttack state" in result.notes[0]
    a = cpu_arithmetic()  # the note says where the reused run attacked (its state records it per session)
    assert f"attacked on cpu: {a['cpu']}, {a['cpu_capability']}, {a['threads']} thread(s))" in result.notes[0]
    clean_direct, robust_direct, flags_direct, x_adv_direct = _direct(
        model, n, version, seed, batch_size, tmp_path / "aa.json"
    )
    assert clean > 0, "the test needs images the model classifies correctly, so that attacks run"
    assert (clean, robust) == (clean_direct, robust_direct)
    assert torch.equal(result.robust_flags, flags_direct)
    assert torch.equal(result.x_adv, x_adv_direct)  # every image, bit for bit (the clean one where none broke it)


@pytest.mark.slow
def test_benchmark_equals_autoattack_direct_standard(model: SelfEnsemble, tmp_path: Path) -> None:
    model.set_stochastic(False)  # version=None then picks standard
    _same_as_direct(model, 6, "standard", 0, 4, tmp_path)


@pytest.mark.parametrize("version", ["standard", "rand"])
def test_reduced_settings_equal_autoattack_direct_with_the_same_settings(model: SelfEnsemble, images, version) -> None:
    """Several batches per attack, some images broken and some not: flags and examples as AutoAttack's own."""
    x, y = images
    model.set_stochastic(version == "rand")
    overrides = FAST_RAND if version == "rand" else FAST_STANDARD
    eps = 4 / 255 if version == "rand" else 3 / 255
    result = evaluate(
        model, 16, inputs=(x, y), version=version, attack_overrides=overrides, eps=eps, seed=3, batch_size=3
    )
    model.manual_seed(3)
    adversary = AutoAttack(model, norm="Linf", eps=eps, version=version, seed=3, device="cpu")
    for key, value in overrides.items():  # as evaluate applies them (APGD derives its schedule from n_iter)
        component, _, attr = key.partition(".")
        setattr(getattr(adversary, component), attr, value)
        if attr == "n_iter" and component.startswith("apgd"):
            apgd = getattr(adversary, component)
            apgd.n_iter_orig, apgd.n_iter_2 = value, max(int(0.22 * value), 1)
            apgd.n_iter_min, apgd.size_decr = max(int(0.06 * value), 1), max(int(0.03 * value), 1)
    x_adv, y_adv = adversary.run_standard_evaluation(x, y, batch_size=3)
    assert 0 < result.robust_correct < result.clean_correct, "the test needs images broken and images left"
    assert torch.equal(result.robust_flags, y_adv == y)
    assert torch.equal(result.x_adv, x_adv)


@pytest.mark.slow
def test_benchmark_equals_autoattack_direct_rand(model: SelfEnsemble, tmp_path: Path) -> None:
    assert model.stochastic  # version=None then picks rand
    _same_as_direct(model, 3, "rand", 1, 2, tmp_path)


# ============================================================================================ results
def test_result_is_complete_and_round_trips(model: SelfEnsemble, images) -> None:
    x, y = images
    model.eee_info = {"name": "Tiny", "sha256": "ab" * 32}
    r = evaluate(model, 8, inputs=(x, y), attack_overrides=FAST_RAND, batch_size=5, seed=3)
    assert (r.model_name, r.checkpoint_sha256, r.sha256_source) == ("Tiny", "ab" * 32, "checkpoint")
    assert r.n_examples == 8 and len(r.outcomes) == 8 and r.seed == 3 and r.eps == pytest.approx(8 / 255)
    assert r.clean_correct == sum(c != "-" for c in r.outcomes)
    assert r.robust_correct == r.outcomes.count("R") == r.attacks[-1].robust
    assert [a.robust for a in r.attacks] == sorted((a.robust for a in r.attacks), reverse=True)
    assert r.clean_interval == wilson_interval(r.clean_correct, 8)
    assert r.robust_interval == wilson_interval(r.robust_correct, 8)
    assert r.attacks[0].attacked == r.clean_correct
    assert {"torch", "pyautoattack", "python", "eee_zoo"} <= set(r.versions) and r.device == "cpu"
    # the CPU arithmetic the last bits of every float depend on (benchmarks/reproducibility/)
    assert r.versions["threads"] == str(torch.get_num_threads()) and r.versions["cpu_capability"]
    assert r.wall_time_s > 0 and r.data["source"] == "caller" and len(r.data["sha256"]) == 64
    assert r.model_config == model.config and any("running apgd-ce" in line for line in r.log)
    assert r.suite == "autoattack" and r.to_dict()["suite"] == "autoattack" and "x_adv" not in r.to_dict()
    assert r.x_adv.shape == x[:8].shape and torch.equal(r.robust_flags, torch.tensor([o == "R" for o in r.outcomes]))
    unbroken = torch.tensor([o in "-R" for o in r.outcomes])
    assert torch.equal(r.x_adv[unbroken], x[:8][unbroken])  # the clean image where no attack succeeded
    assert (r.x_adv - x[:8]).abs().max() <= 8 / 255 + 1e-6
    d = json.loads(json.dumps(r.to_dict(), allow_nan=False))
    assert EvaluationResult.from_dict(d).to_dict() == r.to_dict()
    del d["suite"]  # a results file written before the field existed: an AutoAttack result
    assert EvaluationResult.from_dict(d).suite == "autoattack"
    cp = evaluate(model, 8, inputs=(x, y), attack_overrides=FAST_RAND, batch_size=5, seed=3, interval="clopper-pearson")
    assert cp.outcomes == r.outcomes and cp.robust_interval == clopper_pearson_interval(r.robust_correct, 8)


def test_evaluation_leaves_model_seed_and_global_rng_alone(model: SelfEnsemble, images) -> None:
    x, y = images
    seed_before = model.config["stack"]["seed"]
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    evaluate(model, 4, inputs=(x, y), attack_overrides=FAST_RAND, seed=9)
    assert torch.equal(torch.rand(3), expected)  # AutoAttack reseeds the global generator; we restore it
    assert model.config["stack"]["seed"] == seed_before


def test_checkpoint_sha256_prefers_the_card_and_hashes_weights_otherwise(model: SelfEnsemble) -> None:
    sha, source = checkpoint_sha256(model)
    assert source == "state_dict" and checkpoint_sha256(model) == (sha, source)
    with torch.no_grad():
        model.heads[0].linear.bias[0] += 1e-3
    assert checkpoint_sha256(model)[0] != sha
    model.eee_info = {"sha256": "cd" * 32}
    assert checkpoint_sha256(model) == ("cd" * 32, "checkpoint")


def test_progress_bar_per_attack_with_robust_accuracy(model: SelfEnsemble, images, capfd) -> None:
    x, y = images
    evaluate(model, 4, inputs=(x, y), attack_overrides=FAST_RAND, progress=True)
    err = capfd.readouterr().err
    assert "apgd-ce" in err and "apgd-dlr" in err and "robust" in err


# ============================================================================================ resume
class _Killed(RuntimeError):
    pass


def _count_forwards(model: nn.Module) -> tuple[list[int], object]:
    calls = [0]

    def hook(*_):
        calls[0] += 1

    return calls, model.register_forward_hook(hook)


@pytest.mark.parametrize("stochastic", [True, False], ids=["rand-stochastic", "standard-deterministic"])
def test_killed_run_resumes_to_the_same_result(model: SelfEnsemble, images, tmp_path: Path, stochastic: bool) -> None:
    x, y = images
    model.set_stochastic(stochastic)
    # Settings where every attack changes some outcome, so that a resume that got the flags or the model's
    # random draws wrong would show (checked by mutating the resume code).
    kwargs = {"inputs": (x, y), "batch_size": 3, "seed": 3 if stochastic else 2, "eps": 4 / 255}
    kwargs["attack_overrides"] = FAST_RAND if stochastic else FAST_STANDARD
    calls, handle = _count_forwards(model)
    reference = evaluate(model, 16, state_path=tmp_path / "reference", **kwargs)
    handle.remove()
    total = calls[0]
    assert reference.sessions == 1 and total > 20

    resumed_mid_attack = 0
    for limit in (3, *(int(f * total) for f in (0.2, 0.4, 0.6, 0.8, 0.95))):  # 3: before the first attack
        state_dir = tmp_path / f"killed-{limit}"
        seen = [0]

        def bomb(*_, limit=limit, seen=seen):
            seen[0] += 1
            if seen[0] > limit:
                raise _Killed(f"killed after {limit} forward passes")

        handle = model.register_forward_hook(bomb)
        with pytest.raises(_Killed):
            evaluate(model, 16, state_path=state_dir, **kwargs)
        handle.remove()
        (checkpoint,) = state_dir.glob("*.eee.json")  # ours, beside AutoAttack's state file
        resumed_mid_attack += bool(json.loads(checkpoint.read_text())["boundaries"])
        resumed = evaluate(model, 16, state_path=state_dir, **kwargs)
        assert resumed.sessions == 2
        assert resumed.outcomes == reference.outcomes
        assert torch.equal(resumed.x_adv, reference.x_adv)
        assert [a.robust for a in resumed.attacks] == [a.robust for a in reference.attacks]
        assert (resumed.clean_correct, resumed.robust_correct) == (reference.clean_correct, reference.robust_correct)

    assert resumed_mid_attack >= 2

    # A finished state is reused: only the pre-flight forward pass runs again.
    calls, handle = _count_forwards(model)
    again = evaluate(model, 16, state_path=tmp_path / "reference", **kwargs)
    handle.remove()
    assert calls[0] == 1 and again.outcomes == reference.outcomes and torch.equal(again.x_adv, reference.x_adv)


def test_state_files_are_keyed_and_never_mixed(model: SelfEnsemble, images, tmp_path: Path) -> None:
    x, y = images
    kwargs = {"inputs": (x, y), "attack_overrides": FAST_RAND, "batch_size": 4}
    evaluate(model, 4, seed=0, state_path=tmp_path / "dir", **kwargs)
    evaluate(model, 4, seed=1, state_path=tmp_path / "dir", **kwargs)
    files = sorted(p.name for p in (tmp_path / "dir").iterdir())
    assert len([f for f in files if f.endswith(".eee.json")]) == 2 and len(files) == 4  # + the examples found
    assert len([f for f in files if f.endswith(".adv.safetensors")]) == 2
    state = json.loads(next((tmp_path / "dir").glob("*.eee.json")).read_text())
    assert state["identity"]["attacks"] == ["apgd-ce", "apgd-dlr"] and state["identity"]["seed"] in (0, 1)
    assert state["finished"] and len(state["final_flags"]) == 4

    explicit = tmp_path / "run.json"  # the state's name: run.eee.json and run.adv.safetensors beside it
    evaluate(model, 4, seed=0, state_path=explicit, **kwargs)
    assert (tmp_path / "run.eee.json").exists() and (tmp_path / "run.adv.safetensors").exists()
    with pytest.raises(ValueError, match=r"another configuration \(differs in \['seed'\]\)"):
        evaluate(model, 4, seed=5, state_path=explicit, **kwargs)

    foreign = tmp_path / "foreign.json"  # a state AutoAttack wrote on its own: its configuration is unknown
    adversary = AutoAttack(model, attacks=["square"], norm="Linf", eps=8 / 255, version="custom", seed=0)
    adversary.square.n_queries = 5
    adversary.run_standard_evaluation(x[:2], y[:2], batch_size=2, state_path=foreign)
    with pytest.raises(ValueError, match="not written by eee_zoo"):
        evaluate(model, 2, seed=0, state_path=foreign, **kwargs)

    # A state of an earlier eee_zoo (AutoAttack's file + ours, format 1, no examples): discarded, not resumed.
    old = tmp_path / "old.json"
    old.write_text(foreign.read_text())
    (tmp_path / "old.eee.json").write_text(json.dumps({"format_version": 1, "identity": {}, "boundaries": []}))
    result = evaluate(model, 4, seed=0, state_path=old, **kwargs)
    assert result.sessions == 1 and not old.exists() and (tmp_path / "old.adv.safetensors").exists()


def test_a_reconfigured_model_with_the_same_weights_and_name_never_resumes_the_others_state(
    model: SelfEnsemble, images, tmp_path: Path
) -> None:
    """The weights' hash does not tell a model's inference-time variants apart (eee_zoo.models.variants.derive):
    its config is part of the state's key, so the mean-of-predictors variant is attacked, not read back."""
    from eee_zoo.models.variants import derive

    x, y = images
    kwargs = {"inputs": (x, y), "attack_overrides": FAST_RAND, "batch_size": 4, "seed": 0, "model_name": "same"}
    crossmax = evaluate(model, 4, state_path=tmp_path / "dir", **kwargs)
    variant = derive(model, aggregator="mean")
    mean = evaluate(variant, 4, state_path=tmp_path / "dir", **kwargs)
    assert crossmax.checkpoint_sha256 == mean.checkpoint_sha256  # same weights, same name ...
    assert not any("reused the finished" in n for n in mean.notes)  # ... yet attacked afresh
    assert len(list((tmp_path / "dir").glob("*.eee.json"))) == 2
    assert mean.model_config["aggregator"] == "mean" and crossmax.model_config["aggregator"] == "crossmax"
    assert mean.identity()["model_config"] == variant.config
    again = evaluate(variant, 4, state_path=tmp_path / "dir", **kwargs)  # its own state is still resumed
    assert any("reused the finished" in n for n in again.notes) and again.outcomes == mean.outcomes

    explicit = tmp_path / "run.json"
    evaluate(model, 4, state_path=explicit, **kwargs)
    with pytest.raises(ValueError, match=r"another configuration \(differs in \['model_config'\]\)"):
        evaluate(variant, 4, state_path=explicit, **kwargs)


# ============================================================================================ sharding
SHARD_SCRIPT = """
import json, sys
import torch
from safetensors.torch import load_file, save_file
from eee_zoo.evaluation import evaluate, is_main_process
from eee_zoo.models import SelfEnsemble

config, weights, out, kwargs = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
torch.set_num_threads(1)
model = SelfEnsemble.from_config(config)
model.load_state_dict(load_file(weights), strict=True)
result = evaluate(model.eval(), 10, **kwargs)
if is_main_process():
    with open(out, "w") as f:
        json.dump(result.to_dict(), f)
    save_file({"x_adv": result.x_adv}, out + ".x_adv.safetensors")
"""


@pytest.mark.slow
def test_sharded_result_does_not_depend_on_the_number_of_processes(
    model: SelfEnsemble, trained_weights: tuple[dict, Path], tmp_path: Path
) -> None:
    config, weights = trained_weights
    kwargs = {"attack_overrides": FAST_RAND, "chunk_size": 4, "batch_size": 3, "seed": 5, "eps": 4 / 255}
    single = evaluate(model, 10, **kwargs)  # one process, chunks one after the other
    assert single.chunk_size == 4 and [c["seed"] for c in single.attack_config["chunks"]] == [
        chunk_seed(5, i) for i in range(3)
    ]

    script = tmp_path / "shard.py"
    script.write_text(SHARD_SCRIPT)
    out = tmp_path / "two.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(script)]
    cmd += [json.dumps(config), str(weights), str(out), json.dumps(kwargs)]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    two = json.loads(out.read_text())
    assert two["world_size"] == 2 and single.world_size == 1
    for key in ("outcomes", "clean_correct", "robust_correct", "checkpoint_sha256", "chunk_size"):
        assert two[key] == getattr(single, key), key
    assert [a["robust"] for a in two["attacks"]] == [a.robust for a in single.attacks]
    assert torch.equal(load_file(str(out) + ".x_adv.safetensors")["x_adv"], single.x_adv)
    assert [c["rank"] for c in two["attack_config"]["chunks"]] == [0, 1, 0]


# ============================================================================================ package layout
def test_the_package_is_small_modules_whose_imports_point_one_way() -> None:
    import ast

    import eee_zoo.evaluation as package

    folder = Path(package.__file__).parent
    assert sorted(p.stem for p in folder.glob("*.py")) == sorted([*package.MODULES, "__init__"])
    for index, name in enumerate(package.MODULES):
        source = (folder / f"{name}.py").read_text()
        assert len(source.splitlines()) <= 400, name
        tree = ast.parse(source)
        relative = [n for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.level >= 1]
        imported = {n.module for n in relative if n.level == 1 and n.module}
        private = [a.name for n in relative for a in n.names if a.name.startswith("_") and a.name != "__version__"]
        assert not private, f"{name} imports private names {private}"
        later = imported & set(package.MODULES[index:])
        assert not later, f"{name} imports {sorted(later)}, listed after it"
        assert "eee_zoo.adaptive" not in source and ".adaptive" not in imported


def test_a_generator_state_from_another_kind_of_device_resumes_only_a_run_that_never_draws(
    tiny_model: SelfEnsemble,
) -> None:
    """A chunk begun on a GPU (its generator states: seed and offset, 16 bytes) resumes on the CPU in the
    deterministic mode, which draws nothing; a stochastic run's draws cannot continue there, and it says so."""
    import base64
    import struct

    from eee_zoo.evaluation.seeds import model_generators, restore_generators, snapshot_generators

    cpu = torch.device("cpu")
    saved = snapshot_generators(tiny_model, cpu)
    assert saved, "the tiny self-ensemble owns a generator"
    cuda_written = [{**s, "state": base64.b64encode(struct.pack("<QQ", 155657491, 120)).decode()} for s in saved]
    tiny_model.manual_seed(3)
    before = [g.get_state().clone() for _, g in model_generators(tiny_model, cpu)]
    restore_generators(tiny_model, cpu, cuda_written, draws=False)
    assert all(torch.equal(b, g.get_state()) for b, (_, g) in zip(before, model_generators(tiny_model, cpu)))
    with pytest.raises(RuntimeError, match="another kind of device than cpu"):
        restore_generators(tiny_model, cpu, cuda_written)
    restore_generators(tiny_model, cpu, saved)  # the same kind of device: restored exactly
    assert [s["state"] for s in snapshot_generators(tiny_model, cpu)] == [s["state"] for s in saved]
