"""training/gpu: data parts across calls, one queue call end to end on the CPU at toy size, collect, the queue."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from training.gpu.call import finished_results, load_queue  # noqa: E402
from training.gpu.collect import collect, update_queue  # noqa: E402
from training.gpu.data_parts import install, split_packs  # noqa: E402

# where the toy adaptive evaluation writes its results (benchmarks.adaptive names the settings that differ)
ADAPTIVE_RESULTS = (
    "benchmarks/results/{dataset}/{threat_model}/{name}/adaptive/"
    "quick_eps8-255_n4_seed0_selectiondraws2_freshdraws2_aa-none_{sha12}.json"
)
TOY_QUEUE = """
evaluations:
  - name: rand
    command: benchmarks.run
    args: [--version, rand, --n-examples, 4, --seed, 0, --chunk-size, 2, --state-dir, benchmarks/state/autoattack]
    results: benchmarks/results/{dataset}/{threat_model}/{name}/rand_sto_eps8-255_n4_seed0_{sha12}_chunk2.json
  - name: adaptive
    command: benchmarks.adaptive
    args: [--n-examples, 4, --seed, 0, --preset, quick, --autoattack, --selection-draws, 2, --fresh-draws, 2]
    results: ADAPTIVE_RESULTS
entries:
  - {recipe: training/recipes/tiny.yaml, state: queued}
jobs:
  - name: certify
    command: benchmarks.certify
    checkpoint: Tiny_Airbench_CrossMax
    args: [--sigma, "0.25", --n, 40, --n0, 10, --n-examples, 2, --batch-size, 20]
  - name: figures
    command: visualize
    checkpoint: Tiny_Airbench_CrossMax
    args: [--what, class-max, --starts, "1", --steps, "2", --seed, "0"]
""".replace("ADAPTIVE_RESULTS", ADAPTIVE_RESULTS)


def test_data_parts_split_install_assemble(shared_data_dir: Path, tmp_path: Path) -> None:
    budget = 7 * 2**20  # the 17 MB CIFAR-10 test pack in three calls
    calls = split_packs(shared_data_dir, ["cifar10"], tmp_path / "carry", budget, splits=("test",))
    assert split_packs.__defaults__ == (("test", "train"),)  # the test split first: a first call can evaluate
    assert len(calls) == 3
    assert all(sum(f.stat().st_size for f in c.iterdir()) <= budget + 4096 for c in calls)  # + npz headers
    work = tmp_path / "work"
    for i, folder in enumerate(calls):
        ready = install(folder, work, workers=2)
        if i < len(calls) - 1:
            assert ready == [] and not (work / "cifar10" / "test.npz").exists()  # incomplete: not assembled
    assert ready == [work / "cifar10" / "test.npz"]  # assembled and checked against the canonical sha256
    with np.load(ready[0]) as d:
        assert d["x"].shape == (10000, 32, 32, 3) and d["y"][:10].tolist() == [3, 8, 8, 0, 6, 6, 1, 6, 3, 1]


def _repo_copy(dest: Path) -> Path:
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    for rel in files:
        src = REPO_ROOT / rel
        if src.suffix == ".safetensors" or not src.is_file():  # zoo weights: not needed by the toy queue
            continue
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        (dest / rel).write_bytes(src.read_bytes())
    (dest / "training" / "gpu" / "toy_queue.yaml").write_text(TOY_QUEUE)
    return dest


def _call(repo: Path, work: Path, out: Path, budget: float) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "training.gpu.call", "--repo", str(repo), "--queue", "training/gpu/toy_queue.yaml"]
    cmd += ["--device", "cpu", "--budget-s", str(budget), "--work", str(work), "--out", str(out)]
    return subprocess.run(cmd, cwd=repo, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def toy_call(cifar_npz_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One queue call at toy size on the CPU: the tiny recipe trained, then rand and adaptive evaluations."""
    root = tmp_path_factory.mktemp("gpu_queue")
    repo = _repo_copy(root / "repo")
    work = root / "work"
    (work / "data" / "cifar10").mkdir(parents=True)
    for split in ("train", "test"):  # as data_parts.install leaves them (prefixes suffice for the tiny recipe)
        (work / "data" / "cifar10" / f"{split}.npz").symlink_to(cifar_npz_dir / "cifar10" / f"{split}.npz")
    proc = _call(repo, work, root / "out1", budget=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return {"root": root, "repo": repo, "work": work, "out": root / "out1", "stdout": proc.stdout}


def _names(out: Path) -> set[str]:
    with tarfile.open(fileobj=io.BytesIO(b"".join(p.read_bytes() for p in sorted(out.iterdir())))) as tar:
        return set(tar.getnames())


def test_call_trains_evaluates_and_bundles(toy_call: dict) -> None:
    names = _names(toy_call["out"])
    name = "Tiny_Airbench_CrossMax"
    # the chunked rand run's state (--state-dir) comes back, so an unfinished evaluation resumes elsewhere
    chunks = [n for n in names if n.startswith(f"benchmarks/state/autoattack/{name}_cifar10_Linf_rand_")]
    assert {Path(n).name for n in chunks} >= {"chunk-00000.eee.json", "chunk-00001.eee.json"}, sorted(names)
    assert f"training/runs/{name}/results.json" in names
    assert f"model_cards/cifar10/Linf/{name}/README.md" in names
    assert f"model_cards/cifar10/Linf/{name}/model.safetensors" in names
    assert any(n.startswith(f"benchmarks/results/cifar10/Linf/{name}/rand_") for n in names)
    assert any(n.startswith(f"benchmarks/results/cifar10/Linf/{name}/adaptive/") for n in names)
    assert any(n.startswith(f"benchmarks/results/cifar10/Linf/{name}/certified/") for n in names)  # the job
    assert f"benchmarks/figures/{name}/class_maximisation.png" in names  # the visualize job's figure
    assert f"benchmarks/figures/{name}/class_maximisation.json" in names
    assert any(
        n.startswith(f"benchmarks/results/cifar10/Linf/{name}/adaptive/") and n.endswith(".adv.safetensors")
        for n in names
    )  # fmt: skip  (each image's worst-case example comes back beside its result)
    assert not any(n.endswith("checkpoint.pt") for n in names)  # resumable state stays on the machine
    assert all(p.stat().st_size <= 15 * 2**20 for p in toy_call["out"].iterdir())
    status = json.loads((toy_call["repo"] / next(n for n in names if n.endswith("status.json"))).read_text())
    steps = {f"train-{name}": "done", f"rand-{name}": "done", f"adaptive-{name}": "done", f"certify-{name}": "done"}
    assert status["steps"] == {**steps, f"figures-{name}": "done"}


def test_next_call_resumes_from_the_machine_and_respects_its_budget(toy_call: dict, tmp_path: Path) -> None:
    # The tree is copied afresh on every call; what the machine produced comes back from its work folder.
    fresh = _repo_copy(tmp_path / "fresh")
    proc = _call(fresh, toy_call["work"], tmp_path / "out", budget=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "restored earlier calls' files" in proc.stdout
    assert (fresh / "model_cards" / "cifar10" / "Linf" / "Tiny_Airbench_CrossMax" / "README.md").is_file()
    assert "exit" not in proc.stdout  # every step was done already: nothing re-run
    # every bundle holds all of the lease's products: the weights trained by the first call too
    assert "model_cards/cifar10/Linf/Tiny_Airbench_CrossMax/model.safetensors" in _names(tmp_path / "out")
    # A fresh machine with too little time starts nothing, and says so.
    (tmp_path / "bare").mkdir()
    (tmp_path / "bare" / "data").symlink_to(toy_call["work"] / "data")
    proc = _call(_repo_copy(tmp_path / "other"), tmp_path / "bare", tmp_path / "out2", budget=30)
    assert proc.returncode == 0 and "not started" in proc.stdout, proc.stdout


def test_collect_extracts_and_advances_the_queue(toy_call: dict, tmp_path: Path) -> None:
    repo = _repo_copy(tmp_path / "repo")
    written = collect(toy_call["out"], repo)
    assert "model_cards/cifar10/Linf/Tiny_Airbench_CrossMax/model.safetensors" in written
    assert any(n.startswith("benchmarks/state/autoattack/") for n in written)
    states = update_queue(repo, Path("training/gpu/toy_queue.yaml"))
    assert states == {"training/recipes/tiny.yaml": "evaluated"}
    queue = yaml.safe_load((repo / "training" / "gpu" / "toy_queue.yaml").read_text())
    assert queue["entries"][0]["state"] == "evaluated"
    # A later lease on a fresh machine re-runs nothing that a committed status.json says is done.
    (tmp_path / "fresh_work").mkdir()
    (tmp_path / "fresh_work" / "data").symlink_to(toy_call["work"] / "data")
    proc = _call(repo, tmp_path / "fresh_work", tmp_path / "out", budget=120)
    assert proc.returncode == 0 and " exit " not in proc.stdout, proc.stdout
    # weights that came with the tree are committed already: the bundle leaves them out
    assert not any(n.endswith(".safetensors") and n.startswith("model_cards/") for n in _names(tmp_path / "out"))


def test_an_evaluation_finished_elsewhere_counts_by_its_results_file(toy_call: dict, tmp_path: Path) -> None:
    """An evaluation run outside a lease (on the CPU) leaves only its results file: the queue counts it finished,
    a call does not run it again; without the file the entry stays ``trained``."""
    repo = _repo_copy(tmp_path / "repo")
    collect(toy_call["out"], repo)  # the weights, results files and the lease's status.json
    for status in (repo / "training" / "gpu" / "logs").glob("*/status.json"):
        status.unlink()  # no lease finished anything: only the results files say so
    queue_file = Path("training/gpu/toy_queue.yaml")
    assert update_queue(repo, queue_file) == {"training/recipes/tiny.yaml": "evaluated"}
    queue = repo / queue_file
    queue.write_text(queue.read_text().split("jobs:")[0].replace("state: evaluated", "state: trained"))
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "data").symlink_to(toy_call["work"] / "data")
    proc = _call(repo, tmp_path / "work", tmp_path / "out", budget=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for step in ("rand-Tiny_Airbench_CrossMax", "adaptive-Tiny_Airbench_CrossMax"):
        assert f"{step}: finished already (benchmarks/results/cifar10/Linf/Tiny_Airbench_CrossMax/" in proc.stdout
    assert " exit " not in proc.stdout, proc.stdout  # nothing was run
    adaptive = load_queue(queue_file, repo).evaluations[1]
    found = finished_results(adaptive, load_queue(queue_file, repo).recipes()[0][1], repo)
    assert found is not None and found.parent.name == "adaptive"
    # Run by hand again from the batches stored on the machine: the stored files are kept as they are.
    kept = {p: p.stat().st_mtime_ns for p in found.parent.glob(found.stem + ".*")}
    cmd = [sys.executable, "-m", "benchmarks.adaptive", "Tiny_Airbench_CrossMax", *map(str, adaptive["args"])]
    cmd += ["--data-dir", str(toy_call["work"] / "data"), "--state-dir", str(toy_call["work"] / "state")]
    cmd += ["--no-leaderboard"]
    proc = subprocess.run(cmd, cwd=repo, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0 and "reproduced; the stored file and its examples are kept" in proc.stdout, proc
    assert len(kept) == 3 and {p: p.stat().st_mtime_ns for p in kept} == kept  # .json, .log, .adv.safetensors
    found.unlink()
    assert update_queue(repo, queue_file) == {"training/recipes/tiny.yaml": "trained"}


def test_a_trained_entry_waits_for_its_weights(toy_call: dict, tmp_path: Path) -> None:
    """A trained entry is evaluated in the call that carries its shards; without them it waits, running nothing."""
    repo = _repo_copy(tmp_path / "repo")  # no weights: _repo_copy leaves *.safetensors out
    queue = repo / "training" / "gpu" / "toy_queue.yaml"
    queue.write_text(queue.read_text().replace("state: queued", "state: trained"))
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "data").symlink_to(toy_call["work"] / "data")
    proc = _call(repo, tmp_path / "work", tmp_path / "out", budget=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Tiny_Airbench_CrossMax: waiting for its weights" in proc.stdout
    assert "rand-Tiny_Airbench_CrossMax" not in proc.stdout and "adaptive-Tiny" not in proc.stdout


def _bundle(folder: Path, members: dict[str, bytes]) -> Path:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "bundle.tgz.00").write_bytes(buf.getvalue())
    return folder


@pytest.mark.parametrize("member", ["eee_zoo/__init__.py", "../outside.txt", "/etc/passwd"])
def test_collect_refuses_members_outside_its_folders(tmp_path: Path, member: str) -> None:
    folder = _bundle(tmp_path / "b", {"training/gpu/logs/x/call1.log": b"ok", member: b"x"})
    with pytest.raises(ValueError, match="bundle member"):
        collect(folder, tmp_path / "repo")
    assert not (tmp_path / "repo").exists()  # checked before anything is written


def test_collect_leaves_out_runs_stopped_mid_training(tmp_path: Path) -> None:
    folder = _bundle(tmp_path / "b", {"training/runs/A/results.json": b"{}", "training/runs/B/train.log": b"..."})
    written = collect(folder, tmp_path / "repo")
    assert written == ["training/runs/A/results.json"]


def test_collect_names_a_missing_part(tmp_path: Path) -> None:
    folder = _bundle(tmp_path / "b", {"training/gpu/logs/x/call1.log": b"ok"})
    (folder / "bundle.tgz.00").rename(folder / "bundle.tgz.01")
    with pytest.raises(ValueError, match="missing"):
        collect(folder, tmp_path / "repo")


def test_the_committed_queue_is_valid() -> None:
    queue = load_queue()
    recipes = queue.recipes()
    assert [r.name for _, r in recipes][:2] == ["ResNet18_GPU_CrossMax", "ResNet18_GPU_CrossMax_FGSM"]
    assert [e["name"] for e in queue.evaluations] == ["rand-n500", "standard-det-n500", "adaptive-n500"]
    for job in queue.jobs:  # runs on checkpoints already in the zoo
        card = REPO_ROOT / "model_cards" / job.get("dataset", "cifar10") / job.get("threat_model", "Linf")
        assert (card / job["checkpoint"] / "README.md").is_file(), job
    for entry, recipe in recipes:
        card = REPO_ROOT / "model_cards" / recipe.dataset / recipe.threat_model / recipe.name / "README.md"
        assert (entry["state"] != "queued") == card.is_file(), entry  # trained entries have their card here
    # every evaluation names the file it writes: ResNet18_GPU_CrossMax's all ran (GPU and CPU) and are found
    clean = recipes[0][1]
    assert all(finished_results(ev, clean, REPO_ROOT) for ev in queue.evaluations)
    assert recipes[0][0]["state"] == "evaluated"


def test_the_queue_s_adaptive_runs_can_reuse_its_autoattack_runs() -> None:
    """--autoattack-runs finds AutoAttack runs of its own configuration (eee_zoo.evaluate's default batch size, the
    same n and seed): every AutoAttack run before such an adaptive run on the same checkpoint must be one."""
    from eee_zoo.evaluation import DEFAULT_BATCH_SIZE

    def option(args: list, flag: str, default: object = None) -> object:
        return args[args.index(flag) + 1] if flag in args else default

    queue = load_queue()
    runs = [(None, e) for e in queue.evaluations] + [(j["checkpoint"], j) for j in queue.jobs]
    reusing = [
        (who, r) for who, r in runs if r["command"] == "benchmarks.adaptive" and "--autoattack-runs" in r["args"]
    ]
    assert reusing, "the queue's adaptive runs take AutoAttack's examples from its runs"
    for who, adaptive in reusing:
        n, seed = option(adaptive["args"], "--n-examples"), option(adaptive["args"], "--seed")
        feeding = [r for w, r in runs if w == who and r["command"] == "benchmarks.run"]
        feeding = [r for r in feeding if option(r["args"], "--n-examples") == n and option(r["args"], "--seed") == seed]
        if who is None:  # every entry's: its own rand and standard-det evaluations feed it
            assert {option(r["args"], "--version") for r in feeding} == {"rand", "standard"}
        for r in feeding:
            assert int(option(r["args"], "--batch-size", DEFAULT_BATCH_SIZE)) == DEFAULT_BATCH_SIZE, (who, r)
            # where the adaptive run looks, in chunks of the size it names (None: unchunked, the default state dir)
            assert option(r["args"], "--state-dir") == option(adaptive["args"], "--autoattack-runs"), (who, r)
            assert option(r["args"], "--chunk-size") == option(adaptive["args"], "--autoattack-chunk-size"), (who, r)
