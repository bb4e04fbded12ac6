"""Bring what a GPU call returned into the repository, and advance the queue.

    python -m training.gpu.collect /work/.device/.../files     # the folder holding bundle.tgz.NN

The parts are joined and the archive is checked (relative paths under the folders a call may write, nothing
else) before anything is extracted; run records, cards, sharded weights, results files and logs land where
they belong, and ``training/gpu/queue.yaml`` is updated from every ``training/gpu/logs/*/status.json``:
an entry is ``trained`` once its card and run record are here, ``evaluated`` once every evaluation of the
queue has finished for it (a step a lease finished, or the evaluation's ``results`` file, wherever it was
made). Then rebuild the leaderboard: ``python -m benchmarks.leaderboard``.
"""

from __future__ import annotations

import argparse
import io
import sys
import tarfile
from pathlib import Path, PurePosixPath

import yaml

from eee_zoo._io import atomic_write_text

from .call import QUEUE_FILE, REPO, applies, committed_steps, finished_results, load_queue

__all__ = ["ALLOWED_PREFIXES", "collect", "update_queue"]

ALLOWED_PREFIXES = ("training/runs/", "model_cards/", "benchmarks/results/", "benchmarks/perf/results/",
                    "benchmarks/figures/", "benchmarks/state/", "training/gpu/logs/")  # fmt: skip


def read_bundle(folder: Path) -> tarfile.TarFile:
    parts = sorted(folder.glob("bundle.tgz.[0-9][0-9]"))
    if not parts:
        raise FileNotFoundError(f"{folder}: no bundle.tgz.NN parts (the files a GPU call leaves under $OUT)")
    numbers = [int(p.suffix[1:]) for p in parts]
    if numbers != list(range(len(parts))):
        raise ValueError(f"{folder}: bundle parts {numbers} are not 00..{len(parts) - 1:02d}; one is missing")
    return tarfile.open(fileobj=io.BytesIO(b"".join(p.read_bytes() for p in parts)), mode="r:gz")


def collect(folder: Path, repo: Path = REPO) -> list[str]:
    """Extract a call's bundle into ``repo``; returns the files written."""
    with read_bundle(folder) as tar:
        members = tar.getmembers()
        for m in members:
            path = PurePosixPath(m.name)
            if path.is_absolute() or ".." in path.parts or not (m.isfile() or m.isdir()):
                raise ValueError(f"bundle member {m.name!r}: only relative files and folders may be extracted")
            if not any(f"{m.name}/".startswith(p) or m.name.startswith(p) for p in ALLOWED_PREFIXES):
                if not any(p.startswith(f"{m.name}/") for p in ALLOWED_PREFIXES):
                    raise ValueError(f"bundle member {m.name!r} lies outside {', '.join(ALLOWED_PREFIXES)}")
        names = {m.name for m in members}
        # A run stopped mid-training comes back without results.json and without its (unreturned) checkpoint:
        # its records would only describe a run that cannot be resumed here, so they stay on the machine.
        unfinished = {
            "/".join(PurePosixPath(n).parts[:3])
            for n in names
            if n.startswith("training/runs/") and len(PurePosixPath(n).parts) >= 3
        }
        unfinished = {run for run in unfinished if f"{run}/results.json" not in names}
        members = [m for m in members if not any(m.name == r or m.name.startswith(f"{r}/") for r in unfinished)]
        tar.extractall(repo, members=members, filter="data")
    return [m.name for m in members if m.isfile()]


def update_queue(repo: Path = REPO, queue_file: Path = QUEUE_FILE) -> dict[str, str]:
    """Set every entry's state from what is in ``repo``; returns ``{recipe: state}``."""
    queue = load_queue(queue_file, repo)
    done = committed_steps(repo)
    states = {}
    for entry, recipe in queue.recipes():
        card = repo / "model_cards" / recipe.dataset / recipe.threat_model / recipe.name / "README.md"
        trained = card.is_file() and (repo / "training" / "runs" / recipe.name / "results.json").is_file()
        wanted = [ev for ev in queue.evaluations if applies(ev, recipe)]
        evaluated = trained and all(
            f"{ev['name']}-{recipe.name}" in done or finished_results(ev, recipe, repo) for ev in wanted
        )
        entry["state"] = "evaluated" if evaluated else "trained" if trained else "queued"
        states[entry["recipe"]] = entry["state"]
    # Rewrite only the state values, keeping the file's comments and layout.
    text = queue.path.read_text()
    lines = []
    for line in text.splitlines():
        for recipe, state in states.items():
            if f"recipe: {recipe}," in line and "state:" in line:
                line = line[: line.index("state:")] + f"state: {state}}}"
        lines.append(line)
    new = "\n".join(lines) + "\n"
    if yaml.safe_load(new) != {**yaml.safe_load(text), "entries": queue.entries}:
        raise ValueError(f"{queue.path}: could not update the states in place; edit it by hand")
    atomic_write_text(queue.path, new)
    return states


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.gpu.collect", description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path, help="folder holding bundle.tgz.00, .01, ... (a call's $OUT)")
    parser.add_argument("--repo", type=Path, default=REPO, help="repository root (default: this one)")
    parser.add_argument("--queue", type=Path, default=QUEUE_FILE, help=f"queue file (default: {QUEUE_FILE})")
    args = parser.parse_args(argv)
    if not args.folder.is_dir():
        parser.error(f"{args.folder} does not exist")
    try:
        files = collect(args.folder, args.repo)
        states = update_queue(args.repo, args.queue)
    except (FileNotFoundError, ValueError, tarfile.TarError) as e:
        print(f"{parser.prog}: error: {e}", file=sys.stderr)
        return 1
    print(f"{len(files)} files written under {args.repo}")
    for recipe, state in states.items():
        print(f"  {state:9s} {recipe}")
    print("next: python -m benchmarks.leaderboard, then commit")
    return 0


if __name__ == "__main__":
    sys.exit(main())
