"""Two AutoAttack runs of one configuration, image by image: after each attack, which images one run still has
robust and the other not. A run is a results file (``benchmarks/results/...json``, its ``outcomes``) or an
AutoAttack state (``<state dir>/<name>.eee.json``, the flags before each attack and after the last).

    python -m benchmarks.reproducibility.compare_runs A B --out NAME

Writes ``benchmarks/reproducibility/results/NAME.{json,log}``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from benchmarks.perf.log import Log  # noqa: E402
from eee_zoo._io import atomic_write_json, atomic_write_text  # noqa: E402

RESULTS_DIR = REPO_ROOT / "benchmarks" / "reproducibility" / "results"


def robust_after(path: Path) -> tuple[list[str], list[list[bool]], dict[str, Any]]:
    """``(attacks, flags, about)``: ``flags[0]`` clean-correct, ``flags[j + 1]`` still robust after attack ``j``."""
    data = json.loads(path.read_text())
    if "outcomes" in data:  # a results file: '-' clean wrong, digit j broken by attack j, 'R' robust
        attacks = [a["attack"] for a in data["attacks"]]
        o = data["outcomes"]
        flags = [[c != "-" for c in o]] + [
            [c == "R" or (c.isdigit() and int(c) > j) for c in o] for j in range(len(attacks))
        ]
        about = {"kind": "results file", "created": data.get("created"), "versions": data.get("versions")}
        return attacks, flags, about
    if "boundaries" in data:  # an AutoAttack state: the flags before each attack, and after the last
        attacks = [b["attack"] for b in data["boundaries"]]
        bits = [b["flags"] for b in data["boundaries"]] + [data["final_flags"]]
        return (
            attacks,
            [[c == "1" for c in f] for f in bits],
            {"kind": "AutoAttack state", "finished": data["finished"]},
        )
    raise SystemExit(f"{path}: neither a results file (outcomes) nor an AutoAttack state (boundaries)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("a", type=Path)
    parser.add_argument("b", type=Path)
    parser.add_argument("--out", required=True, help="name of the written .json/.log under results/")
    args = parser.parse_args(argv)
    for p in (args.a, args.b):
        if not p.is_file():
            raise SystemExit(f"{p}: no such file")
    (attacks_a, flags_a, about_a), (attacks_b, flags_b, about_b) = robust_after(args.a), robust_after(args.b)
    if attacks_a != attacks_b or len(flags_a[0]) != len(flags_b[0]):
        raise SystemExit(f"not the same configuration: {attacks_a} on {len(flags_a[0])} images vs "
                         f"{attacks_b} on {len(flags_b[0])}")  # fmt: skip
    log = Log()
    log(f"A: {args.a}\nB: {args.b}")
    stages = []
    for name, fa, fb in zip(["clean", *attacks_a], flags_a, flags_b, strict=True):
        only_a = [i for i, (u, v) in enumerate(zip(fa, fb, strict=True)) if u and not v]
        only_b = [i for i, (u, v) in enumerate(zip(fa, fb, strict=True)) if v and not u]
        stages.append({"after": name, "robust_a": sum(fa), "robust_b": sum(fb), "only_a": only_a, "only_b": only_b})
        log(f"after {name:<9} A {sum(fa):>4}  B {sum(fb):>4}  robust in A only: {only_a}  in B only: {only_b}")
    payload = {"a": str(args.a), "b": str(args.b), "a_about": about_a, "b_about": about_b, "n": len(flags_a[0]),
               "stages": stages, "command": "python -m benchmarks.reproducibility.compare_runs " + " ".join(
                   [str(args.a), str(args.b), "--out", args.out])}  # fmt: skip
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    atomic_write_json(RESULTS_DIR / f"{args.out}.json", payload)
    atomic_write_text(RESULTS_DIR / f"{args.out}.log", "\n".join(log.lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
