"""One device call of the GPU queue: install carried data, train and evaluate what the queue asks, bundle.

Run on the GPU machine from the repository root, the same command every call (training/gpu/README.md):

    PYTHONPATH=$PWD:$PWD/.gpu/pylib python3 -m training.gpu.call --budget-s 540 [--carry .gpu/data/call1] [--perf]

What it does, within ``--budget-s`` seconds (a step still running at the deadline is stopped; every step is
resumable, so the next call, while the machine is warm, continues it):

1. restores what earlier calls on this machine produced (kept in ``--work``, outside the copied tree);
2. decodes the data parts in ``--carry`` and assembles complete splits (:mod:`training.gpu.data_parts`);
3. with ``--perf``, measures GPU throughput once (``benchmarks.perf.gpu_throughput``) and smoke-tests the CUDA
   paths on the tiny recipe;
4. trains every queued entry whose dataset is complete (``python -m training.train --device cuda --resume``)
   and publishes its exported folder into ``model_cards/``;
5. runs the queue's evaluations (``python -m benchmarks.run`` / ``python -m benchmarks.adaptive`` with
   ``--device cuda --write-card``): the first, the headline figure, right after each entry's training; the
   others then, each over every trained entry; one whose ``results`` file is committed (run elsewhere) is skipped;
6. writes everything produced (run records, cards, weights it trained, results files, what the evaluations wrote
   under their ``--state-dir`` so that an unfinished one resumes elsewhere, logs; no training checkpoints, no
   weights that came with the tree) as ``$OUT/bundle.tgz.NN`` parts of at most 15 MiB, for
   ``python -m training.gpu.collect``. A trained entry whose weights are not on the machine waits (they are
   carried: ``training/gpu/travel.sh``).

Steps run as subprocesses, exactly the commands a user would type, so their logs are the usual ones.
"""

from __future__ import annotations

import argparse
import datetime
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
QUEUE_FILE = Path("training/gpu/queue.yaml")  # relative to the repository root
BUNDLE_PART_BYTES = 15 * 2**20  # the device tool returns files of at most 16 MiB
BUNDLE_RESERVE_S = 25.0  # kept back from the budget for bundling
MIN_STEP_S = 20.0  # a step is not started with less time than this left
# a job's command: a benchmarks module run on the checkpoint, or `visualize` (eee-zoo visualize, its figures)
JOB_COMMANDS = ("benchmarks.run", "benchmarks.adaptive", "benchmarks.certify", "visualize")
RESULTS_FIELDS = ("dataset", "threat_model", "name", "sha12")  # what an evaluation's `results` path may name

__all__ = ["Queue", "finished_results", "load_queue", "main"]


# ------------------------------------------------------------------------------------------------ queue
class Queue:
    """``training/gpu/queue.yaml``: ordered entries (recipe, state), ordered evaluations, and jobs: runs on
    checkpoints already in the zoo (``{name, command, checkpoint, dataset, threat_model, args}``), after the
    evaluations, each once (a finished job's step is in a committed ``status.json``)."""

    STATES = ("queued", "trained", "evaluated")

    def __init__(self, data: dict[str, Any], path: Path, repo: Path) -> None:
        self.path, self.repo = path, repo
        self.entries: list[dict[str, Any]] = list(data.get("entries") or [])
        self.evaluations: list[dict[str, Any]] = list(data.get("evaluations") or [])
        self.jobs: list[dict[str, Any]] = list(data.get("jobs") or [])
        for i, e in enumerate(self.entries):
            if set(e) - {"recipe", "state"} or "recipe" not in e or e.get("state", "queued") not in self.STATES:
                raise ValueError(f"{path}: entries[{i}] must be {{recipe: PATH, state: {'|'.join(self.STATES)}}}")
        for i, ev in enumerate(self.evaluations):
            if ev.get("command") not in ("benchmarks.run", "benchmarks.adaptive") or not ev.get("name"):
                raise ValueError(
                    f"{path}: evaluations[{i}] needs a name and command benchmarks.run|benchmarks.adaptive"
                )
            try:
                str(ev.get("results", "")).format(**dict.fromkeys(RESULTS_FIELDS, "x"))
            except (KeyError, IndexError, ValueError):
                raise ValueError(
                    f"{path}: evaluations[{i}].results may use only {', '.join('{' + f + '}' for f in RESULTS_FIELDS)}"
                ) from None
        for i, job in enumerate(self.jobs):
            if job.get("command") not in JOB_COMMANDS or not job.get("name") or not job.get("checkpoint"):
                raise ValueError(f"{path}: jobs[{i}] needs a name, a checkpoint and a command {'|'.join(JOB_COMMANDS)}")

    def recipes(self) -> list[tuple[dict[str, Any], Any]]:
        from training.recipe import load_recipe

        return [(e, load_recipe(self.repo / e["recipe"])) for e in self.entries]


def committed_steps(repo: Path) -> set[str]:
    """Steps that earlier leases finished, from their committed ``training/gpu/logs/*/status.json``."""
    done: set[str] = set()
    for status in sorted((repo / "training" / "gpu" / "logs").glob("*/status.json")):
        done |= {k for k, v in json.loads(status.read_text())["steps"].items() if v == "done"}
    return done


def finished_results(evaluation: dict[str, Any], recipe: Any, repo: Path) -> Path | None:
    """The results file that ``evaluation`` wrote for ``recipe``'s published checkpoint, if ``repo`` holds it.

    An evaluation's ``results`` names its file (``{dataset}``, ``{threat_model}``, ``{name}`` and ``{sha12}``, the
    first 12 hex digits of the card's weights sha256, as the benchmarks name them), so one finished outside a lease
    (on the CPU, ``benchmarks/cpu_n500.sh``) counts as done and is not run again."""
    card = repo / "model_cards" / recipe.dataset / recipe.threat_model / recipe.name / "README.md"
    if not evaluation.get("results") or not card.is_file():
        return None
    from eee_zoo.cards import load_card

    fields = {"dataset": recipe.dataset, "threat_model": recipe.threat_model, "name": recipe.name}
    path = repo / evaluation["results"].format(**fields, sha12=load_card(card).sha256[:12])
    return path if path.is_file() else None


def applies(evaluation: dict[str, Any], recipe: Any) -> bool:
    """``stochastic_only`` evaluations (AutoAttack ``rand``: EOT) are for models with stochastic inference."""
    return not evaluation.get("stochastic_only") or recipe.model.stack.stochastic


def load_queue(path: Path = QUEUE_FILE, repo: Path = REPO) -> Queue:
    """The queue file ``path`` (relative paths from ``repo``), its recipes resolved from ``repo``."""
    path = repo / path
    return Queue(yaml.safe_load(path.read_text()) or {}, path, repo)


# ------------------------------------------------------------------------------------------------ a call
class Call:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.repo: Path = args.repo
        self.start = time.monotonic()
        self.deadline = self.start + args.budget_s - BUNDLE_RESERVE_S
        self.work: Path = args.work
        self.mirror = self.work / "mirror"  # what this machine produced, relative to the repo root
        self.done_dir = self.work / "done"
        for d in (self.mirror, self.done_dir, self.work / "state"):
            d.mkdir(parents=True, exist_ok=True)
        n = len(list(self.work.glob("call-*.started"))) + 1
        (self.work / f"call-{n}.started").touch()
        self.lease = (self.work / "lease").read_text().strip() if (self.work / "lease").exists() else _stamp()
        (self.work / "lease").write_text(self.lease)
        self.log_dir = Path("training/gpu/logs") / self.lease
        (self.repo / self.log_dir).mkdir(parents=True, exist_ok=True)
        self.log_path = self.repo / self.log_dir / f"call{n}.log"
        self.produced: set[str] = {str(self.log_dir)}
        self.status: dict[str, str] = {}  # step -> done | stopped | failed | not started (status.json)
        self.committed = committed_steps(self.repo)  # finished by earlier leases: never run again
        self.env = dict(os.environ, PYTHONUNBUFFERED="1", EEE_ZOO_STATE_DIR=str(self.work / "state"))
        self.env["PYTHONPATH"] = os.pathsep.join([str(self.repo), *filter(None, [os.environ.get("PYTHONPATH")])])
        # Weights that came with the tree (carried), not made on this machine: the bundle leaves them out, since
        # they are committed already; what an earlier call of the lease trained is in the mirror and goes back.
        # The record is kept on the machine: a later call restores them from the mirror without carrying them.
        record = self.work / "arrived.json"
        self.arrived: set[str] = set(json.loads(record.read_text())) if record.exists() else set()
        self.arrived |= {
            p.relative_to(self.repo).as_posix()
            for p in (self.repo / "model_cards").glob("*/*/*/*.safetensors")
            if not (self.mirror / p.relative_to(self.repo)).exists()
        }
        record.write_text(json.dumps(sorted(self.arrived)))

    def log(self, message: str) -> None:
        line = f"{datetime.datetime.now().strftime('%H:%M:%S')} [{self.elapsed():6.1f}s] {message}"
        print(line, flush=True)
        with open(self.log_path, "a") as fh:
            fh.write(line + "\n")

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def left(self) -> float:
        return self.deadline - time.monotonic()

    # -------------------------------------------------------------------------------------------- steps
    def step(self, key: str, cmd: list[str], produces: list[str]) -> bool:
        """Run ``cmd`` (from the repo root) unless done; stop it at the deadline. True when it has finished."""
        marker = self.done_dir / key
        self.produced.update(produces)
        if marker.exists() or key in self.committed:
            self.status[key] = "done"
            return True
        if self.left() < MIN_STEP_S:
            self.log(f"{key}: not started, {self.left():.0f} s left")
            self.status[key] = "not started"
            return False
        self.log(f"{key}: {' '.join(cmd)}")
        started = time.time()
        step_log = self.repo / self.log_dir / f"{key}.log"
        with open(step_log, "a") as out:
            proc = subprocess.Popen(cmd, cwd=self.repo, env=self.env, stdout=out, stderr=subprocess.STDOUT)
            try:
                rc = proc.wait(timeout=max(1.0, self.left()))
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGTERM)  # training records its stop; evaluations keep their state
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
                self.log(f"{key}: stopped at the deadline; the next call resumes it")
                self.status[key] = "stopped"
                self.produced.update(_state_written(self.repo, cmd, started))
                self.save_mirror()
                return False
        tail = step_log.read_text(errors="replace").splitlines()[-3:]
        self.log(f"{key}: exit {rc}; " + " | ".join(t.strip()[-160:] for t in tail))
        if rc == 0:
            marker.touch()
        self.status[key] = "done" if rc == 0 else "failed"
        self.produced.update(_state_written(self.repo, cmd, started))
        self.save_mirror()
        return rc == 0

    def python(self, module: str, *args: str) -> list[str]:
        return [sys.executable, "-m", module, *args]

    # -------------------------------------------------------------------------------------------- mirror
    def restore_mirror(self) -> None:
        """Put back what earlier calls produced (the tree is copied afresh each call; the machine keeps /root)."""
        if any(self.mirror.iterdir()):
            shutil.copytree(self.mirror, self.repo, dirs_exist_ok=True)
            self.log(f"restored earlier calls' files from {self.mirror}")

    def save_mirror(self) -> None:
        for rel in sorted(self.produced):
            src = self.repo / rel
            if src.is_dir():
                shutil.copytree(src, self.mirror / rel, dirs_exist_ok=True)
            elif src.is_file():
                (self.mirror / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, self.mirror / rel)

    # -------------------------------------------------------------------------------------------- bundle
    def bundle(self, out: Path) -> None:
        """Everything produced, minus resumable checkpoints, as a tar.gz cut into parts of 15 MiB."""
        path = self.repo / self.log_dir / "status.json"  # the lease's, restored from its earlier calls
        steps = {**(json.loads(path.read_text())["steps"] if path.exists() else {}), **self.status}
        path.write_text(json.dumps({"lease": self.lease, "steps": dict(sorted(steps.items()))}, indent=2) + "\n")
        self.save_mirror()  # the mirror holds every call's products on this machine: each bundle has them all
        buf = io.BytesIO()

        def leave_out(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
            return None if info.name in self.arrived else _skip_checkpoints(info)

        with tarfile.open(fileobj=buf, mode="w:gz", compresslevel=1) as tar:
            for top in sorted(self.mirror.iterdir()):
                tar.add(top, arcname=top.name, filter=leave_out)
        data = buf.getvalue()
        out.mkdir(parents=True, exist_ok=True)
        for i in range(0, len(data), BUNDLE_PART_BYTES):
            (out / f"bundle.tgz.{i // BUNDLE_PART_BYTES:02d}").write_bytes(data[i : i + BUNDLE_PART_BYTES])
        self.log(f"bundle: {len(data) / 2**20:.1f} MiB in {-(-len(data) // BUNDLE_PART_BYTES)} parts under {out}")


def _state_written(repo: Path, cmd: list[str], since: float) -> list[str]:
    """Files a step wrote under its ``--state-dir`` (relative to ``repo``), so that an evaluation the lease did not
    finish goes back resumable: AutoAttack's chunk states, the worst case's finished batches with their headline's
    examples (``*.kept.safetensors``). Each attack's examples stay behind (13 MB a batch; a batch resumes without
    them, as their committed counts do)."""
    if "--state-dir" not in cmd:
        return []
    root = repo / cmd[cmd.index("--state-dir") + 1]
    return [
        p.relative_to(repo).as_posix()
        for p in root.rglob("*")
        if p.is_file() and p.stat().st_mtime >= since - 1 and not p.name.endswith(".examples.safetensors")
    ]


def _skip_checkpoints(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
    name = Path(info.name)
    if name.name == "checkpoint.pt" or "model_cards" in name.parts[2:] and name.parts[0] == "training":
        return None  # resumable state, and the run's own export copy (published under model_cards/)
    return info


def _stamp() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")


# ------------------------------------------------------------------------------------------------ the plan
def smoke_test(call: Call, device: str) -> None:
    """The tiny recipe through every CUDA path (train, rand, standard, adaptive) in about a minute."""
    import numpy as np

    from eee_zoo.data import SHIPPED_SLICE

    smoke = call.work / "smoke"
    data = smoke / "data" / "cifar10"
    parts = sorted((call.work / "data" / "parts").glob("cifar10_train_00000-*.part.npz"))
    if not parts:
        call.log("smoke test skipped: no decoded CIFAR-10 training part on the machine")
        return
    if not (data / "test.npz").exists():  # a prefix of each split is enough for the tiny recipe
        data.mkdir(parents=True, exist_ok=True)
        with np.load(parts[0]) as d:
            np.savez(data / "train.npz", x=d["x"][:1024], y=d["y"][:1024])
        shutil.copy(SHIPPED_SLICE, data / "test.npz")
    tiny = ["Tiny_Airbench_CrossMax", "--cards-dir", str(smoke / "run" / "model_cards"), "--data-dir", str(data.parent)]
    common = ["--results-dir", str(smoke / "results"), "--n-examples", "16", "--device", device, "--no-leaderboard"]
    train = ["--recipe", "training/recipes/tiny.yaml", "--device", device, "--out", str(smoke / "run"), "--no-progress"]
    train += ["--data-dir", str(data.parent)]
    call.step("smoke-train-tiny", call.python("training.train", *train), [])
    call.step("smoke-rand-tiny", call.python("benchmarks.run", *tiny, *common, "--version", "rand"), [])
    call.step(
        "smoke-standard-tiny",
        call.python("benchmarks.run", *tiny, *common, "--version", "standard", "--deterministic"),
        [],
    )
    call.step("smoke-adaptive-tiny", call.python("benchmarks.adaptive", *tiny, *common), [])


def run_call(args: argparse.Namespace) -> int:
    call = Call(args)
    call.restore_mirror()
    call.log(f"GPU queue call: budget {args.budget_s:.0f} s, work {call.work}, python {sys.version.split()[0]}")
    if shutil.which("nvidia-smi"):
        query = ["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"]
        smi = subprocess.run(query, capture_output=True, text=True, check=False)
        call.log(f"nvidia-smi: {smi.stdout.strip() or smi.stderr.strip()}")

    from training.gpu.data_parts import install

    data_dir = call.work / "data"
    for carry in args.carry:
        for path in install(carry, data_dir):
            call.log(f"data ready: {path.relative_to(data_dir)}")
    tested = {p.parent.name for p in data_dir.glob("*/test.npz")}  # evaluations need the test split only
    complete = {d for d in tested if (data_dir / d / "train.npz").exists()}

    if args.perf:
        call.step(
            "perf-gpu-throughput",
            call.python("benchmarks.perf.gpu_throughput", "--device", args.device),
            ["benchmarks/perf/results/gpu_throughput.json", "benchmarks/perf/results/gpu_throughput.log"],
        )
        smoke_test(call, args.device)

    queue = load_queue(args.queue, args.repo)
    first, *rest = queue.evaluations or [None]

    def run_on(run: dict[str, Any], name: str, dataset: str, threat_model: str) -> bool:
        """One evaluation or job (``{name, command, args}``) on checkpoint ``name``, writing its results and card
        (a ``visualize`` job: its figures, under ``benchmarks/figures/<name>/``)."""
        where = ["--dataset", dataset, "--threat-model", threat_model, "--device", args.device]
        where += ["--data-dir", str(data_dir)]
        if run["command"] == "visualize":  # eee-zoo visualize: PNG + JSON figures, no results file or card
            out = f"benchmarks/figures/{name}"
            command = call.python("eee_zoo.cli", "visualize", name, *map(str, run.get("args", [])), *where)
            return call.step(f"{run['name']}-{name}", [*command, "--out", out], [out])
        where += ["--write-card", "--no-leaderboard"]
        command = call.python(run["command"], name, *map(str, run.get("args", [])), *where)
        produces = [f"{root}/{dataset}/{threat_model}/{name}" for root in ("benchmarks/results", "model_cards")]
        return call.step(f"{run['name']}-{name}", command, produces)

    waiting: set[str] = set()

    def evaluate(evaluation: dict[str, Any], recipe: Any) -> bool:
        if recipe.dataset not in tested or not applies(evaluation, recipe):
            return False
        finished = finished_results(evaluation, recipe, call.repo)
        if finished is not None:  # e.g. on the CPU: its results file is committed, so it is not run again
            call.log(f"{evaluation['name']}-{recipe.name}: finished already ({finished.relative_to(call.repo)})")
            return True
        card = call.repo / "model_cards" / recipe.dataset / recipe.threat_model / recipe.name
        if not any(card.glob("*.safetensors")):  # a trained entry's weights travel in the call that evaluates it
            if recipe.name not in waiting:
                call.log(f"{recipe.name}: waiting for its weights on the machine (carry {card.relative_to(call.repo)})")
                waiting.add(recipe.name)
            return False
        return run_on(evaluation, recipe.name, recipe.dataset, recipe.threat_model)

    trained = []
    for entry, recipe in queue.recipes():
        state = entry.get("state", "queued")
        if state == "evaluated":
            continue
        if state == "queued":
            if recipe.dataset not in complete:
                call.log(f"{recipe.name}: waiting for {recipe.dataset} data on the machine")
                continue
            card_rel = f"model_cards/{recipe.dataset}/{recipe.threat_model}/{recipe.name}"
            train = ["--recipe", entry["recipe"], "--device", args.device, "--resume", "--data-dir", str(data_dir)]
            if not call.step(
                f"train-{recipe.name}",
                call.python("training.train", *train, "--no-progress"),
                [f"training/runs/{recipe.name}", card_rel],
            ):
                break  # later entries wait: the queue's order is its priority
            exported = call.repo / "training" / "runs" / recipe.name / card_rel
            if exported.is_dir() and not (call.repo / card_rel).exists():
                shutil.copytree(exported, call.repo / card_rel)
                call.log(f"{recipe.name}: published {card_rel}")
        trained.append(recipe)
        if first is not None:  # the queue's first evaluation, the headline figure, comes right after training
            evaluate(first, recipe)

    for evaluation in rest:
        for recipe in trained:
            evaluate(evaluation, recipe)
            if call.left() < MIN_STEP_S:
                break
    for job in queue.jobs:  # zoo checkpoints' runs that want a GPU (e.g. certification at the anchor's N)
        dataset, threat = job.get("dataset", "cifar10"), job.get("threat_model", "Linf")
        if dataset in tested and call.left() >= MIN_STEP_S:
            run_on(job, job["checkpoint"], dataset, threat)
    call.bundle(args.out)
    call.log(f"call done in {call.elapsed():.0f} s")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.gpu.call", description=__doc__.split("\n\n")[0])
    parser.add_argument("--budget-s", type=float, required=True, help="seconds this call may take, bundling included")
    parser.add_argument("--carry", type=Path, action="append", default=[], help="a folder of data parts carried")
    parser.add_argument("--perf", action="store_true", help="measure GPU throughput and smoke-test the CUDA paths")
    parser.add_argument("--queue", type=Path, default=QUEUE_FILE, help=f"queue file (default: {QUEUE_FILE})")
    parser.add_argument("--repo", type=Path, default=REPO, help="repository root to work in (default: this one)")
    parser.add_argument("--device", default="cuda", help="torch device for every step (default: cuda)")
    work = Path(os.environ.get("EEE_GPU_WORK", "/root/eee_gpu"))
    parser.add_argument("--work", type=Path, default=work, help=f"machine-side folder kept between calls ({work})")
    out = Path(os.environ["OUT"]) if os.environ.get("OUT") else None
    parser.add_argument("--out", type=Path, default=out, help="where the bundle goes (default: $OUT)")
    args = parser.parse_args(argv)
    if args.out is None:
        parser.error("--out is required when $OUT is not set")
    for carry in args.carry:
        if not carry.is_dir():
            parser.error(f"--carry {carry} does not exist")
    return run_call(args)


if __name__ == "__main__":
    sys.exit(main())
