"""How much of the adaptive suite's attack time AutoAttack's own examples take, from the committed results files.

Every adaptive results file records each column's seconds of its attack stage (``per_attack[].seconds``, summed
over its batches). With ``--autoattack-runs`` the AutoAttack columns come from AutoAttack's full runs instead (the
runs the zoo reports beside the worst case): where those runs exist, this share is the time saved. Nothing is run;
the figures are the files' own, so the ratio of each row is measured within one run.

    python -m benchmarks.perf.autoattack_share      # writes results/autoattack_share.{json,log}
"""

from __future__ import annotations

import json
from pathlib import Path

from eee_zoo._io import atomic_write_json, atomic_write_text

from ..results import RESULTS_DIR
from .log import Log

OUT = Path(__file__).parent / "results"


def shares(results_dir: Path = RESULTS_DIR) -> list[dict]:
    """One row per results file that ran AutoAttack's examples inside its batches and recorded its seconds."""
    rows = []
    for path in sorted(results_dir.glob("*/*/*/adaptive/*.json")):
        r = json.loads(path.read_text())
        seconds = {c["name"]: c.get("seconds") or 0.0 for c in r.get("per_attack", [])}
        autoattack = sum(s for name, s in seconds.items() if name.startswith("autoattack-"))
        total = sum(seconds.values())
        if not autoattack or r.get("autoattack_source", "batch") != "batch":
            continue
        rows.append({
            "file": str(path.relative_to(results_dir)), "model": r["model_name"], "preset": r["preset"],
            "n": r["n_examples"], "autoattack": r["autoattack"], "autoattack_s": round(autoattack, 1),
            "attack_stage_s": round(total, 1), "share": autoattack / total,
        })  # fmt: skip
    return rows


def main() -> None:
    log = Log()
    rows = shares()
    log("AutoAttack's columns' share of the adaptive attack stage's seconds, per committed results file")
    log(f"{'model':<36} {'preset':<7} {'n':>4} {'AutoAttack s':>12} {'all attacks s':>13} {'share':>6}")
    for row in rows:
        log(f"{row['model']:<36} {row['preset']:<7} {row['n']:>4} {row['autoattack_s']:>12.0f} "
            f"{row['attack_stage_s']:>13.0f} {row['share']:>6.1%}")  # fmt: skip
    if rows:
        low, high = min(r["share"] for r in rows), max(r["share"] for r in rows)
        log(f"range over {len(rows)} files: {low:.1%} to {high:.1%}")
    OUT.mkdir(parents=True, exist_ok=True)
    atomic_write_json(OUT / "autoattack_share.json", {"command": "python -m benchmarks.perf.autoattack_share",
                                                      "rows": rows})  # fmt: skip
    atomic_write_text(OUT / "autoattack_share.log", "\n".join(log.lines) + "\n")


if __name__ == "__main__":
    main()
