"""RobustBench's own code on eee-zoo's outputs: models, model_info JSON, data loaders.

robustbench 1.1.1 is imported through ``eee_zoo._robustbench.import_robustbench`` (it imports ``autoattack``
and ``pkg_resources``, neither of which exists here as such); these tests are skipped where robustbench is
not installed (install: see ``eee_zoo._robustbench.INSTALL``).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from benchmarks.leaderboard import model_info, render_html
from eee_zoo._robustbench import INSTALL, import_robustbench, robustbench_available
from eee_zoo.data import load_dataset
from eee_zoo.evaluation import evaluate
from eee_zoo.models import SelfEnsemble

pytestmark = pytest.mark.skipif(not robustbench_available(), reason=f"robustbench not installed ({INSTALL})")

FAST_STANDARD = {
    "apgd.n_iter": 2,
    "apgd_targeted.n_iter": 2,
    "apgd_targeted.n_target_classes": 1,
    "fab.n_iter": 2,
    "fab.n_target_classes": 1,
    "square.n_queries": 5,
}


@pytest.fixture(scope="module")
def rb():
    return import_robustbench()


def test_shim_aliases_autoattack_to_pyautoattack(rb) -> None:
    import pyautoattack
    import pyautoattack.state
    import robustbench.eval

    assert sys.modules["autoattack"] is pyautoattack
    assert robustbench.eval.AutoAttack is pyautoattack.AutoAttack
    assert robustbench.eval.EvaluationState is pyautoattack.state.EvaluationState
    # A fresh interpreter (nothing imported before) gets a working robustbench through the shim.
    shimmed = subprocess.run(
        [sys.executable, "-c", "from eee_zoo._robustbench import import_robustbench; import_robustbench()"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert shimmed.returncode == 0, shimmed.stderr[-2000:]


def test_robustbench_clean_accuracy_accepts_an_eee_zoo_model(rb, tiny_model: SelfEnsemble) -> None:
    from robustbench.utils import clean_accuracy

    model = tiny_model.set_stochastic(False)
    x, y = load_dataset("cifar10", 12)
    theirs = clean_accuracy(model, x, y, batch_size=5, device=torch.device("cpu"))
    ours = evaluate(model, 12, inputs=(x, y), attack_overrides=FAST_STANDARD, batch_size=5)
    assert theirs == ours.clean_accuracy
    with torch.no_grad():
        assert theirs == (model(x).argmax(1) == y).float().mean().item()


def test_robustbench_leaderboard_code_reads_our_model_info(
    rb, tiny_model: SelfEnsemble, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from robustbench.utils import ModelInfo, get_leaderboard_bibtex, get_leaderboard_latex

    x, y = load_dataset("cifar10", 6)
    result = evaluate(tiny_model.set_stochastic(False), 6, inputs=(x, y), attack_overrides=FAST_STANDARD)
    folder = tmp_path / "model_info" / "cifar10" / "Linf"
    folder.mkdir(parents=True)
    infos = {}
    for name, robust in (("TinyA", 1), ("TinyB", 3)):
        info = model_info({**result.to_dict(), "model_name": name, "robust_correct": robust})
        (folder / f"{name}.json").write_text(json.dumps(info))
        infos[name] = info
    # Every RobustBench ModelInfo field is present (plus unreliable and our own block).
    assert {f.name for f in dataclasses.fields(ModelInfo)} - set(infos["TinyA"]) <= {
        "corruptions_acc", "corruptions_acc_3d", "corruptions_mce", "corruptions_mce_3d",
    }  # fmt: skip

    monkeypatch.chdir(tmp_path)  # RobustBench reads ./model_info/<dataset>/<threat_model>/*.json
    latex = get_leaderboard_latex("cifar10", "Linf")
    rows = latex.splitlines()
    assert len(rows) == 2 and "TinyB" in rows[0] and "TinyA" in rows[1]  # sorted by robust accuracy
    assert f"{infos['TinyB']['clean_acc']} & {infos['TinyB']['autoattack_acc']} & N" in rows[0]
    _, bibtex = get_leaderboard_bibtex("cifar10", "Linf")
    assert "@article{TinyA," in bibtex and "Fort and Balaji Lakshminarayanan" in bibtex

    html = render_html("cifar10", "Linf", tmp_path / "model_info")
    template = Path(rb.__file__).parent / "leaderboard" / "leaderboard.html.j2"
    if template.exists():
        assert html is not None and "TinyA" in html
    else:
        assert html is None  # the 1.1.1 wheel ships no template: no HTML, and no crash


@pytest.fixture(scope="session")
def torchvision_cifar100(tmp_path_factory: pytest.TempPathFactory) -> Path:
    shared = Path(__file__).resolve().parents[2] / "shared" / "data"
    script = shared / "make_torchvision_cifar100.py"
    if not script.exists():
        pytest.skip(f"{script} not found")
    root = tmp_path_factory.mktemp("cifar100")
    subprocess.run([sys.executable, str(script), str(root)], check=True, capture_output=True, timeout=600)
    return root


@pytest.mark.slow
def test_robustbench_cifar100_loader_runs_offline_and_matches_ours(rb, torchvision_cifar100: Path, tiny_config) -> None:
    from robustbench.data import load_cifar100
    from robustbench.utils import clean_accuracy

    x_rb, y_rb = load_cifar100(n_examples=16, data_dir=str(torchvision_cifar100))
    x, y = load_dataset("cifar100", 16, data_dir=torchvision_cifar100)
    assert torch.equal(x_rb, x) and torch.equal(y_rb, y)
    assert y[:10].tolist() == [49, 33, 72, 51, 71, 92, 15, 14, 23, 0]

    config = copy.deepcopy(tiny_config)
    config["num_classes"] = 100
    torch.manual_seed(0)
    model = SelfEnsemble.from_config(config).eval().set_stochastic(False)
    result = evaluate(
        model, 16, "cifar100", data_dir=torchvision_cifar100, attack_overrides=FAST_STANDARD, batch_size=8
    )
    assert result.dataset == "cifar100" and result.data["source"] == "eee_zoo.data.load_dataset"
    assert result.clean_accuracy == clean_accuracy(model, x_rb, y_rb, batch_size=8)
