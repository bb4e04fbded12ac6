"""training/: the tiny recipe end to end (train -> export -> load_model -> predictions), exact resume,
recipe validation, the attacks, augmentation, and a 2-process DDP run (gloo)."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # training/ is a repository folder, not an installed package
    sys.path.insert(0, str(REPO_ROOT))

from eee_zoo.commands import train as train_command  # noqa: E402
from training import adversarial  # noqa: E402
from training.augment import crop_flip, gaussian_noise  # noqa: E402
from training.recipe import RecipeError, ScheduleSpec, load_recipe, parse_recipe  # noqa: E402
from training.train import CHECKPOINT_NAME, evaluate_clean, lr_factor, main  # noqa: E402

TINY = REPO_ROOT / "training" / "recipes" / "tiny.yaml"
TINY_NAME = "Tiny_Airbench_CrossMax"
STEPS_PER_STAGE = 4  # 256 images / batch 64


def train(run_dir: Path, data_dir: Path, *extra: str, recipe: Path = TINY) -> int:
    return main(["--recipe", str(recipe), "--out", str(run_dir), "--data-dir", str(data_dir), "--no-progress", *extra])


def model_state(run_dir: Path) -> dict[str, torch.Tensor]:
    return torch.load(run_dir / CHECKPOINT_NAME, map_location="cpu", weights_only=True)["model"]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory, cifar_npz_dir: Path) -> Path:
    """One uninterrupted run of the tiny recipe with export (a few seconds)."""
    run_dir = tmp_path_factory.mktemp("tiny") / "run"
    assert train(run_dir, cifar_npz_dir) == 0
    return run_dir


# ------------------------------------------------------------------------------------------- end to end
def test_tiny_recipe_trains_exports_and_loads(tiny_run: Path, cifar_npz_dir: Path) -> None:
    from eee_zoo import load_cifar10, load_model
    from eee_zoo.data import load_uint8

    results = json.loads((tiny_run / "results.json").read_text())
    assert results["steps"] == 2 * STEPS_PER_STAGE
    assert [h["stage"] for h in results["history"]] == ["backbone", "heads"]
    assert all(h["loss"] > 0 and "monitor" in h for h in results["history"])
    stochastic, deterministic = results["clean_accuracy"]
    assert stochastic["mode"] == "stochastic" and deterministic["mode"] == "deterministic"
    assert stochastic["n_examples"] == 200
    assert set(stochastic["per_predictor"]) == {"stem", "block1", "block2", "backbone"}

    # records beside the checkpoint
    assert (tiny_run / "recipe.yaml").read_bytes() == TINY.read_bytes()
    info = json.loads((tiny_run / "run_info.json").read_text())
    assert info["recipe"] == "training/recipes/tiny.yaml" and info["seed"] == 0
    assert info["versions"]["torch"] and "commit" in info["git"] and info["device"]["type"] == "cpu"
    assert info["sessions"][-1]["status"] == "done" and info["wall_time_s"] > 0
    # the recipe's channels_last applies on the CPU too; bfloat16 autocast is CUDA-only
    assert info["sessions"][-1]["runtime"] == {"amp_bfloat16": False, "channels_last": True}
    assert (tiny_run / "train.log").read_text().count("epoch 1/1") == 2
    state = torch.load(tiny_run / CHECKPOINT_NAME, map_location="cpu", weights_only=True)
    assert state["position"]["stage"] == "done"

    # the Hub-ready folder loads through the registry, bit for bit, and predicts
    cards = tiny_run / "model_cards"
    folder = cards / "cifar10" / "Linf" / TINY_NAME
    assert {p.name for p in folder.iterdir()} >= {"README.md", "config.json", "model.safetensors"}
    model = load_model(TINY_NAME, "cifar10", "Linf", cards_dir=cards)
    assert model.eee_info["name"] == TINY_NAME and model.stochastic
    loaded = model.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in state["model"].items()) and set(loaded) == set(state["model"])
    x, y = load_cifar10(8)
    with torch.no_grad():
        assert model(x).shape == (8, 10)

    # the loaded model reproduces the run's accuracy exactly (same images, same stack seed)
    xu, yu = load_uint8("cifar10", "test", cifar_npz_dir, n_examples=200)
    again = evaluate_clean(
        model,
        torch.from_numpy(xu).permute(0, 3, 1, 2).contiguous(),
        torch.from_numpy(yu),
        batch_size=200,
        stochastic=True,
        seed=model.config["stack"]["seed"],
    )
    assert again["aggregated"]["correct"] == stochastic["aggregated"]["correct"]
    assert again["per_predictor"] == stochastic["per_predictor"]


def test_reproduce_checks_a_checkpoint_against_its_run(tiny_run: Path, cifar_npz_dir: Path, tmp_path: Path) -> None:
    """training.reproduce loads the exported checkpoint as users do and re-measures the run's clean accuracy
    (every predictor, both modes) exactly on the run's device type; a record that does not match fails."""
    from training.reproduce import main as reproduce_main

    cards = str(tiny_run / "model_cards")
    argv = [TINY_NAME, "--cards-dir", cards, "--data-dir", str(cifar_npz_dir)]
    assert reproduce_main(argv) == 0
    record = json.loads((tiny_run / "reproduced.json").read_text())
    assert record["ok"] and record["same_device"] and [c["mode"] for c in record["checks"]] == [
        "stochastic", "deterministic",
    ]  # fmt: skip
    assert all(c["exact"] and set(c["difference"]) >= {"backbone", "aggregate"} for c in record["checks"])

    results = tiny_run / "results.json"
    original = results.read_text()
    tampered = json.loads(original)
    tampered["clean_accuracy"][1]["per_predictor"]["backbone"]["correct"] += 1
    try:
        results.write_text(json.dumps(tampered))
        assert reproduce_main(argv) == 1
        record = json.loads((tiny_run / "reproduced.json").read_text())
        assert not record["ok"] and record["checks"][1]["difference"]["backbone"] == -1
    finally:
        results.write_text(original)
    with pytest.raises(SystemExit):
        reproduce_main(["Nobody", "--cards-dir", cards])


def test_card_records_the_training(tiny_run: Path) -> None:
    from eee_zoo.registry import get_card

    card = get_card(TINY_NAME, "cifar10", "Linf", cards_dir=tiny_run / "model_cards")
    assert card.training["recipe"] == "training/recipes/tiny.yaml"
    assert card.training["seed"] == 0 and card.training["run_dir"]
    assert card.results == []  # metrics live in the run's results.json, not in the card
    assert card.stochastic_inference is True


# ------------------------------------------------------------------------------------------- resume
def test_interrupted_and_resumed_run_ends_with_identical_weights(
    tiny_run: Path, cifar_npz_dir: Path, tmp_path: Path
) -> None:
    run_dir = tmp_path / "run"
    assert train(run_dir, cifar_npz_dir, "--no-export", "--stop-after-steps", "2") == 0  # mid backbone epoch
    partial = torch.load(run_dir / CHECKPOINT_NAME, map_location="cpu", weights_only=True)
    assert partial["position"] == {"stage": "backbone", "epoch": 0, "step": 2} and partial["steps_done"] == 2
    assert not (run_dir / "results.json").exists()
    # mid heads epoch (FGSM adversarial training there)
    assert train(run_dir, cifar_npz_dir, "--no-export", "--resume", "--stop-after-steps", "6") == 0
    assert torch.load(run_dir / CHECKPOINT_NAME, weights_only=True)["position"] == {
        "stage": "heads",
        "epoch": 0,
        "step": 2,
    }
    assert train(run_dir, cifar_npz_dir, "--no-export", "--resume") == 0
    resumed, uninterrupted = model_state(run_dir), model_state(tiny_run)
    assert set(resumed) == set(uninterrupted)
    assert all(torch.equal(resumed[k], uninterrupted[k]) for k in uninterrupted)
    a = json.loads((run_dir / "results.json").read_text())["clean_accuracy"]
    b = json.loads((tiny_run / "results.json").read_text())["clean_accuracy"]
    assert a == b
    assert len(json.loads((run_dir / "run_info.json").read_text())["sessions"]) == 3
    assert train(run_dir, cifar_npz_dir, "--no-export", "--resume") == 0  # a finished run: nothing to do
    assert all(torch.equal(model_state(run_dir)[k], v) for k, v in resumed.items())
    assert json.loads((run_dir / "run_info.json").read_text())["sessions"][-1]["steps_done"] == 2 * STEPS_PER_STAGE


def test_hard_killed_run_resumes_to_identical_weights(tiny_run: Path, cifar_npz_dir: Path, tmp_path: Path) -> None:
    import signal
    import time

    recipe = tmp_path / "every_step.yaml"  # same training, a checkpoint after every step
    recipe.write_text(yaml.safe_dump(_mutate("runtime.checkpoint_every_s", 1e-6)))
    run_dir = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    cmd = [sys.executable, "-m", "training.train", "--recipe", str(recipe), "--out", str(run_dir)]
    cmd += ["--data-dir", str(cifar_npz_dir), "--no-progress", "--no-export"]
    cmd += ["--threads", str(torch.get_num_threads())]  # CPU results are bit-exact for one thread count
    proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not (run_dir / CHECKPOINT_NAME).exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)  # no clean-up of any kind
    finally:
        proc.wait(timeout=60)
    killed_at = torch.load(run_dir / CHECKPOINT_NAME, weights_only=True)["position"]
    assert killed_at["stage"] in ("backbone", "heads"), killed_at  # killed mid-way, not after the end
    assert main(["--recipe", str(recipe), "--out", str(run_dir), "--data-dir", str(cifar_npz_dir), "--resume"]
                + ["--no-progress", "--no-export"]) == 0  # fmt: skip
    resumed, uninterrupted = model_state(run_dir), model_state(tiny_run)
    assert all(torch.equal(resumed[k], uninterrupted[k]) for k in uninterrupted)


def test_training_never_draws_from_the_global_rng(tiny_run: Path, cifar_npz_dir: Path, tmp_path: Path) -> None:
    # Every draw comes from a step-indexed generator; weight init runs in a forked global RNG seeded explicitly.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(12345)  # another global state than tiny_run's
        before = torch.get_rng_state()
        assert train(tmp_path / "run", cifar_npz_dir) == 0  # with the export
        assert torch.equal(torch.get_rng_state(), before), "training drew from the global RNG"
    trained, uninterrupted = model_state(tmp_path / "run"), model_state(tiny_run)
    assert all(torch.equal(trained[k], uninterrupted[k]) for k in uninterrupted)
    assert "torch_cpu" not in torch.load(tmp_path / "run" / CHECKPOINT_NAME, weights_only=True)["rng"]


def test_a_checkpoint_holding_the_global_rng_state_still_resumes(
    tiny_run: Path, cifar_npz_dir: Path, tmp_path: Path
) -> None:
    run_dir = tmp_path / "run"
    assert train(run_dir, cifar_npz_dir, "--no-export", "--stop-after-steps", "2") == 0
    state = torch.load(run_dir / CHECKPOINT_NAME, weights_only=True)
    state["rng"]["torch_cpu"] = torch.Generator().manual_seed(7).get_state()  # as checkpoints before it was dropped
    torch.save(state, run_dir / CHECKPOINT_NAME)
    assert train(run_dir, cifar_npz_dir, "--no-export", "--resume") == 0
    resumed, uninterrupted = model_state(run_dir), model_state(tiny_run)
    assert all(torch.equal(resumed[k], uninterrupted[k]) for k in uninterrupted)


def test_resume_refuses_another_recipe_and_fresh_run_refuses_old_dir(
    tiny_run: Path, cifar_npz_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    changed = tmp_path / "changed.yaml"
    data = yaml.safe_load(TINY.read_text())
    data["backbone_stage"]["optimizer"]["lr"] = 0.07
    changed.write_text(yaml.safe_dump(data))
    assert train(tiny_run, cifar_npz_dir, "--resume", recipe=changed) == 1
    assert "backbone_stage.optimizer.lr" in capsys.readouterr().err
    assert train(tiny_run, cifar_npz_dir) == 1  # no --resume on a directory holding a run
    assert "--resume" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------- recipes
def _mutate(path: str, value) -> dict:
    data = yaml.safe_load(TINY.read_text())
    *parents, last = path.split(".")
    node = data
    for key in parents:
        node = node[key]
    node[last] = value
    return data


@pytest.mark.parametrize(
    "path, value, key, problem",
    [
        ("backbone_stage.optimizer.lrr", 0.1, "backbone_stage.optimizer.lrr", "unknown key"),
        ("seeed", 1, "seeed", "did you mean 'seed'"),
        ("backbone_stage.epochs", "ten", "backbone_stage.epochs", "expected an integer"),
        ("backbone_stage.epochs", 1.5, "backbone_stage.epochs", "expected an integer"),
        ("heads_stage.optimizer.lr", "fast", "heads_stage.optimizer.lr", "expected a number"),
        ("backbone_stage.augment.flip", "yes", "backbone_stage.augment.flip", "true or false"),
        ("heads_stage.augment.gaussian_noise", -0.25, "heads_stage.augment.gaussian_noise", "between 0 and 4"),
        ("model.stack.resolutions", [32, "16"], "model.stack.resolutions[1]", "expected an integer"),
        ("model.taps", "stem", "model.taps", "expected a list"),
        ("dataset", "mnist", "dataset", "not one of"),
        ("backbone_stage.epochs", 0, "backbone_stage.epochs", ">= 1"),
        ("backbone_stage.optimizer.lr", -0.1, "backbone_stage.optimizer.lr", "> 0"),
        ("backbone_stage.batch_size", 1000, "backbone_stage.batch_size", "256 training images"),
        ("heads_stage.adversarial.eps", 0, "heads_stage.adversarial.eps", "(0, 1]"),
        ("model.k", 9, "model.k", "number of predictors"),
        ("model.taps", ["stem", "block9"], "model.taps", "block9"),
        ("model.backbone.name", "vgg", "model.backbone.name", "unknown backbone"),
        ("model.backbone.kwargs", {"depth": 3}, "model.backbone.kwargs", "depth"),
        ("model.stack.contrast_range", [1.5, 0.7], "model.stack.contrast_range", "low <= high"),
        ("data.n_test", 20000, "data.n_test", "between 1 and 10000"),
        ("evaluation.monitor_examples", 500, "evaluation.monitor_examples", "data.n_test"),
        ("name", "bad name/x", "name", "letters"),
    ],
)
def test_bad_recipes_fail_naming_the_key(path: str, value, key: str, problem: str) -> None:
    with pytest.raises(RecipeError) as info:
        parse_recipe(_mutate(path, value), source="tiny.yaml")
    message = str(info.value)
    assert f"'{key}'" in message and problem in message, message


def test_missing_keys_duplicates_and_cli_exit(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    data = yaml.safe_load(TINY.read_text())
    del data["backbone_stage"]["optimizer"]["lr"]
    with pytest.raises(RecipeError, match="missing required key 'backbone_stage.optimizer.lr'"):
        parse_recipe(data)
    dup = tmp_path / "dup.yaml"
    dup.write_text(TINY.read_text() + "\nseed: 3\n")
    with pytest.raises(RecipeError, match="duplicate key 'seed'"):
        load_recipe(dup)
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(_mutate("backbone_stage.label_smoothing", 1.0)))
    run_dir = tmp_path / "never"
    assert main(["--recipe", str(bad), "--out", str(run_dir)]) == 1
    assert "backbone_stage.label_smoothing" in capsys.readouterr().err
    assert not run_dir.exists()  # failed before anything was written or trained


def test_numbers_in_recipes() -> None:
    r = parse_recipe(_mutate("heads_stage.adversarial.eps", "8/255"))
    assert r.heads_stage.adversarial.eps == pytest.approx(8 / 255)
    assert r.backbone_stage.optimizer.weight_decay == pytest.approx(5e-4)  # written 5e-4: a string to YAML 1.1
    assert r.model_config()["num_classes"] == 10


def test_real_recipes_validate() -> None:
    for path in sorted((REPO_ROOT / "training" / "recipes").glob("*.yaml")):
        load_recipe(path)


def test_lr_schedules() -> None:
    linear = ScheduleSpec(name="linear", warmup=0.25, final_lr=0.0)
    factors = [lr_factor(s, total=8, schedule=linear) for s in range(8)]
    assert factors[:2] == [0.5, 1.0] and factors[-1] == pytest.approx(1 / 6)
    assert all(a >= b for a, b in zip(factors[1:], factors[2:]))
    cosine = ScheduleSpec(name="cosine", warmup=0.0, final_lr=0.1)
    assert lr_factor(0, total=10, schedule=cosine) == 1.0
    assert lr_factor(10, total=10, schedule=cosine) == pytest.approx(0.1)
    assert lr_factor(5, total=10, schedule=ScheduleSpec(name="constant", warmup=0.0)) == 1.0


# ------------------------------------------------------------------------------------------- attacks, augmentation
@pytest.mark.parametrize("method", ["fgsm", "pgd"])
def test_attacks_stay_in_the_ball_and_raise_the_loss(tiny_model, method: str) -> None:
    from eee_zoo import load_cifar10

    x, y = load_cifar10(16)
    eps = 8 / 255

    def loss_fn(x_adv: torch.Tensor) -> torch.Tensor:  # the whole stochastic model, a fresh stack draw per call
        return F.cross_entropy(tiny_model(x_adv, generator=torch.Generator().manual_seed(1)), y, reduction="sum")

    def attack(seed: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(seed)
        return adversarial.perturb(method, loss_fn, x, eps=eps, steps=3, step_size=None, random_start=True, generator=g)

    x_adv = attack(0)
    assert (x_adv - x).abs().max() <= eps + 1e-6 and x_adv.min() >= 0 and x_adv.max() <= 1
    assert not torch.equal(x_adv, x)
    with torch.no_grad():
        assert loss_fn(x_adv) > loss_fn(x)
    assert torch.equal(attack(0), x_adv)  # explicit generators: reproducible
    assert all(p.grad is None for p in tiny_model.parameters())  # attacks touch no parameter gradient


def test_evaluation_keeps_every_module_mode(tiny_model) -> None:
    from eee_zoo import load_cifar10

    x, y = load_cifar10(20)
    tiny_model.eval()
    tiny_model.heads.train()  # stage 2: heads train on a frozen (eval-mode) backbone
    result = evaluate_clean(
        tiny_model, (x * 255).round().to(torch.uint8), y, batch_size=8, stochastic=False, seed=0
    )  # fmt: skip
    assert result["n_examples"] == 20 and set(result["per_predictor"]) == set(tiny_model.predictor_names)
    assert all(m.training for m in tiny_model.heads.modules())
    assert not any(m.training for m in tiny_model.backbone.modules()) and tiny_model.stochastic


def test_crop_flip_is_seeded_and_moves_pixels() -> None:
    x = torch.rand(6, 3, 32, 32)
    a = crop_flip(x, 2, True, torch.Generator().manual_seed(0))
    b = crop_flip(x, 2, True, torch.Generator().manual_seed(0))
    assert a.shape == x.shape and torch.equal(a, b) and not torch.equal(a, x)
    flipped_only = crop_flip(x, 0, True, torch.Generator().manual_seed(3))
    for img, out in zip(x, flipped_only):
        assert torch.equal(out, img) or torch.equal(out, img.flip(-1))
    shifted = crop_flip(x, 2, False, torch.Generator().manual_seed(4))
    padded = F.pad(x, (2, 2, 2, 2), mode="reflect")
    for img, pad in zip(shifted, padded):  # every output is a 32x32 window of the reflect-padded image
        windows = [pad[:, dy : dy + 32, dx : dx + 32] for dy in range(5) for dx in range(5)]
        assert any(torch.equal(img, w) for w in windows)


def test_gaussian_noise_is_seeded_unclamped_and_off_at_zero() -> None:
    x = torch.rand(8, 3, 32, 32)
    gen = torch.Generator().manual_seed(0)
    assert gaussian_noise(x, 0.0, gen) is x and torch.equal(
        gen.get_state(), torch.Generator().manual_seed(0).get_state()
    )
    a = gaussian_noise(x, 0.25, torch.Generator().manual_seed(1))
    b = gaussian_noise(x, 0.25, torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and (a.min() < 0 or a.max() > 1)  # randomized smoothing's inputs: not clamped
    assert (a - x).std().item() == pytest.approx(0.25, rel=0.05) and abs((a - x).mean().item()) < 0.01
    r = parse_recipe(_mutate("backbone_stage.augment.gaussian_noise", 0.25))
    assert r.backbone_stage.augment.gaussian_noise == 0.25 and r.heads_stage.augment.gaussian_noise == 0.0


# ------------------------------------------------------------------------------------------- CLI, DDP
def test_eee_zoo_train_command(cifar_npz_dir: Path, tmp_path: Path) -> None:
    parser = argparse.ArgumentParser(prog="eee-zoo train")
    train_command.add_arguments(parser)
    args = parser.parse_args(
        ["--recipe", str(TINY), "--out", str(tmp_path / "run"), "--data-dir", str(cifar_npz_dir), "--no-progress"]
        + ["--no-export", "--stop-after-steps", "1"]
    )
    assert train_command.run(args) == 0
    assert torch.load(tmp_path / "run" / CHECKPOINT_NAME, weights_only=True)["steps_done"] == 1
    with pytest.raises(SystemExit):
        parser.parse_args(["--recipe", str(TINY), "--threads", "0"])


def test_cli_reports_a_bad_recipe_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from eee_zoo.cli import main as cli_main

    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(_mutate("heads_stage.optimizer.momentum", 1.5)))
    assert cli_main(["train", "--recipe", str(bad), "--out", str(tmp_path / "run")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("eee-zoo: error:") and "heads_stage.optimizer.momentum" in err and "\n" not in err


def test_two_process_ddp_run_exports_one_consistent_checkpoint(cifar_npz_dir: Path, tmp_path: Path) -> None:
    from eee_zoo import load_model
    from eee_zoo.hub import export  # noqa: F401  (the export path must exist for rank 0)

    run_dir = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO_ROOT)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    cmd += ["-m", "training.train", "--recipe", str(TINY), "--out", str(run_dir), "--data-dir", str(cifar_npz_dir)]
    cmd += ["--no-progress"]
    proc = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = (run_dir / "train.log").read_text()
    assert "all 2 ranks hold the same weights" in log and "gloo" in log
    results = json.loads((run_dir / "results.json").read_text())
    assert results["world_size"] == 2 and results["steps"] == 2 * STEPS_PER_STAGE
    cards = run_dir / "model_cards"
    assert [p.name for p in (cards / "cifar10" / "Linf").iterdir()] == [TINY_NAME]
    model = load_model(TINY_NAME, cards_dir=cards)
    state = model_state(run_dir)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in state.items())
    assert json.loads((run_dir / "run_info.json").read_text())["device"]["backend"] == "gloo"
