"""The adaptive worst case judged row by row as needed, against judging every row of every batch, on the CPU.

Judging (the deployed model on many draws of every proposal) is nearly all of a worst case's cost once the attacks
are short. :func:`eee_zoo.adaptive.worst_case.judge` classifies only the images whose result is used (the offered
images, each finalist's tied images while it is still in the running) and a proposal equal to one already judged
takes its judgement. The baseline is the same code with a model whose forward takes no ``rows``
(:class:`EveryRow`): every image of every batch classified, as judging was before. Both sides judge the same
proposals in the same process, alternating: the ``quick`` preset's and, with ``--autoattack-rand``, AutoAttack
``rand``'s examples at the eps curves' cut (the workload of ``make_figures.sh``'s curves), made once; the figures are
the ratio every-row / as-needed per stage (mean and median over the repeats), the rows each side classified, and
whether both chose the same proposals with the same hits.

    python -m benchmarks.perf.judging_rows [--model cifar10/Airbench_CPU_CrossMax] [--n 100]   (EEE_ZOO_DATA)

Writes ``benchmarks/perf/results/judging_rows.{json,log}``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn as nn

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from benchmarks.perf.log import Log  # noqa: E402
from eee_zoo.adaptive.worst_case import WorstCase, count_hits  # noqa: E402

RESULTS_DIR = REPO_ROOT / "benchmarks" / "perf" / "results"
STAGES = ("offer", "final", "fresh")
# benchmarks/figures/make_figures.sh's EPS_CURVE_CUT, the part rand uses
EPS_CURVE_CUT = {"apgd.n_iter": 50, "apgd.eot_iter": 5}


class EveryRow(nn.Module):
    """``model`` classifying every image of each batch (its forward takes no ``rows``): judging without skipping."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    @property
    def stochastic(self) -> bool:
        return self.model.stochastic

    def set_stochastic(self, on: bool) -> EveryRow:
        self.model.set_stochastic(on)
        return self

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.model(x, generator=generator)


def judge_all(judged: nn.Module, x: torch.Tensor, y: torch.Tensor, proposals: list, draws: dict) -> tuple:
    """(the worst case, seconds per stage): every proposal offered, the finalists judged, the kept ones scored."""
    seconds = {}
    start = time.perf_counter()
    worst = WorstCase(judged, x, y, **draws)
    for attack, label, index, x_adv in proposals:
        worst.offer(attack, label, x_adv, index)
    seconds["offer"] = time.perf_counter() - start
    start = time.perf_counter()
    worst.finalize()
    seconds["final"] = time.perf_counter() - start
    start = time.perf_counter()
    worst.score()
    seconds["fresh"] = time.perf_counter() - start
    return worst, seconds


def same_outcome(a: WorstCase, b: WorstCase) -> bool:
    columns = [(a.overall, b.overall), *((a.per_attack[c], b.per_attack[c]) for c in b.per_attack)]
    return a.overall.source == b.overall.source and all(
        torch.equal(s.selection_hits, t.selection_hits) and torch.equal(s.fresh_hits, t.fresh_hits) for s, t in columns
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.perf.judging_rows", description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="cifar10/Airbench_CPU_CrossMax", help="DATASET/NAME (default: %(default)s)")
    ap.add_argument("--n", type=int, default=100, help="images, one batch (default: %(default)s)")
    ap.add_argument("--eps", type=float, default=8.0, help="Linf radius in 1/255 (default: %(default)s)")
    ap.add_argument("--selection-draws", type=int, default=10, help="(default: %(default)s)")
    ap.add_argument("--final-draws", type=int, default=50, help="(default: %(default)s)")
    ap.add_argument("--tie-draws", type=int, default=200, help="(default: %(default)s)")
    ap.add_argument("--fresh-draws", type=int, default=20, help="(default: %(default)s)")
    ap.add_argument("--autoattack-rand", action="store_true", help="AutoAttack rand's examples (cut) as proposals too")
    ap.add_argument("--repeats", type=int, default=2, help="alternating timed repeats per side (default: %(default)s)")
    ap.add_argument("--threads", type=int, default=2, help="torch threads (default: %(default)s)")
    ap.add_argument("--out", default=str(RESULTS_DIR), help="results folder (default: benchmarks/perf/results)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    from eee_zoo import load_model
    from eee_zoo.adaptive import PRESETS
    from eee_zoo.data import load_dataset
    from eee_zoo.evaluation.seeds import derive_seed

    dataset, _, name = args.model.rpartition("/")
    model = load_model(name, dataset=dataset or "cifar10").set_stochastic(True)
    x, y = load_dataset(dataset or "cifar10", n_examples=args.n)
    eps = args.eps / 255
    draws = {
        "selection_draws": args.selection_draws, "selection_seed": 1, "final_draws": args.final_draws,
        "final_seed": 2, "tie_draws": args.tie_draws, "fresh_draws": args.fresh_draws, "fresh_seed": 3,
    }  # fmt: skip
    log = Log()
    log(f"judging as needed vs every row, CPU, {args.threads} threads, {name}, n={args.n}, eps={args.eps:g}/255, "
        f"draws {draws}, repeats={args.repeats}, load average before: {os.getloadavg()[0]:.2f}")  # fmt: skip
    # as the adaptive evaluation attacks: the images the model gets right on some selection draw
    index = torch.nonzero(count_hits(model, x, y, args.selection_draws, draws["selection_seed"])).flatten()
    proposals = [
        (attack.name, label, index, x_adv)
        for attack in PRESETS["quick"]
        for label, x_adv in attack.proposals(
            model, x[index], y[index], eps=eps, norm="Linf", seed=derive_seed(0, attack.name) % 2**31
        )
    ]
    attacks = f"the quick preset ({', '.join(a.name for a in PRESETS['quick'])})"
    if args.autoattack_rand:
        from eee_zoo.adaptive.autoattack_proposals import autoattack_examples
        from eee_zoo.evaluation.examples import project

        x_rand = autoattack_examples(
            model, x[index], y[index], "rand", eps=eps, norm="Linf", seed=0, overrides=EPS_CURVE_CUT
        )
        x_rand = project(x[index], x_rand, eps, "Linf")  # as the adaptive evaluation offers them
        proposals.insert(0, ("autoattack-rand", "examples", index, x_rand))
        attacks = f"AutoAttack rand (cut {EPS_CURVE_CUT}) and " + attacks
    log(f"{len(proposals)} proposals on {len(index)} images from {attacks}")

    classified: list[int] = []
    model.heads[0].register_forward_hook(lambda module, inputs, out: classified.append(len(inputs[0])))
    sides = {"as needed": model, "every row": EveryRow(model)}
    times: dict[str, list[dict[str, float]]] = {side: [] for side in sides}
    rows_classified, outcomes = {}, {}
    for repeat in range(args.repeats):
        for side in sides if repeat % 2 == 0 else reversed(sides):
            classified.clear()
            worst, seconds = judge_all(sides[side], x, y, proposals, draws)
            times[side].append(seconds)
            rows_classified[side], outcomes[side] = sum(classified), worst
    same = same_outcome(outcomes["as needed"], outcomes["every row"])

    log(f"{'stage':<7} {'every row s':>11} {'as needed s':>11} {'speed-up mean':>13} {'median':>7}")
    result = {"stages": {}}
    for stage in (*STAGES, "total"):

        def stage_s(side: str, stage: str = stage) -> list[float]:
            return [sum(t.values()) if stage == "total" else t[stage] for t in times[side]]

        every, needed = stage_s("every row"), stage_s("as needed")
        ratios = [a / b for a, b in zip(every, needed)]
        result["stages"][stage] = {
            "every_row_s": every, "as_needed_s": needed,
            "speedup_mean": statistics.mean(ratios), "speedup_median": statistics.median(ratios),
        }  # fmt: skip
        log(f"{stage:<7} {statistics.mean(every):11.2f} {statistics.mean(needed):11.2f} "
            f"{statistics.mean(ratios):13.2f} {statistics.median(ratios):7.2f}")  # fmt: skip
    log(
        f"rows classified (one run): every row {rows_classified['every row']}, as needed "
        f"{rows_classified['as needed']} ({rows_classified['as needed'] / rows_classified['every row']:.3f}x)"
    )
    log(f"same proposals chosen, same selection and fresh hits on both sides: {same}")
    log(f"load average after: {os.getloadavg()[0]:.2f}")
    command = "python -m benchmarks.perf.judging_rows " + " ".join(argv if argv is not None else sys.argv[1:])
    result.update({
        "command": command.strip(), "threads": args.threads, "model": args.model, "n": args.n, "eps_255": args.eps,
        "draws": draws, "proposals": attacks, "rows_classified": rows_classified, "same_outcome": same,
    })  # fmt: skip
    out = Path(args.out)
    log.save(out, "judging_rows", result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
