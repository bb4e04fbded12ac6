"""The leaderboard, built from results files only.

    python -m benchmarks.leaderboard [--results-dir DIR] [--model-info-dir DIR] [--markdown FILE] [--html-dir DIR]

For each checkpoint the headline result is chosen (a full AutoAttack evaluation, ``suite`` ``autoattack``, on
loaded test images, the version that matches its inference mode first — ``rand`` for a stochastic model,
``standard`` otherwise — then the largest n, then the smallest seed), and written as

* RobustBench ``model_info`` JSON, ``benchmarks/model_info/<dataset>/<threat_model>/<Name>.json``: the fields
  RobustBench's own leaderboard code reads (``clean_acc``, ``autoattack_acc``, ``external``, ``additional_data``,
  ``number_forward_passes``, ``unreliable``, ``footnote``, ``link``, ``name``, ``authors``, ``venue``,
  ``architecture``, ``eps``, ...; accuracies in percent, as numbers) plus an ``eee_zoo`` block (n, intervals,
  checkpoint hash, results file). ``external`` is the best-known (lowest) robust accuracy of the checkpoint at that
  eps: the headline AutoAttack figure or an adaptive suite's per-draw worst case, whichever is lower; the footnote
  names the evaluation it comes from;
* ``benchmarks/LEADERBOARD.md``: every number with its n and 95 % interval, the AutoAttack checks that fired,
  and the results file it comes from; then the adaptive suite's table (:func:`render_adaptive`), one row per
  worst-case results file, with its checks against AutoAttack ``rand`` and against each single attack;
* HTML through RobustBench's own template (``robustbench.leaderboard.template.generate_leaderboard``) when
  robustbench imports and ships the template (the 1.1.1 wheel does not; then no HTML is written).

One idea per module: :mod:`.model_info` (the headline and the best-known figure of a checkpoint),
:mod:`.autoattack_table`, :mod:`.adaptive_table` and :mod:`.certified_table` (the three tables), :mod:`.formatting`,
and :mod:`.build` (writing it all; ``python -m benchmarks.leaderboard`` runs its ``main``).
"""

from .adaptive_table import EXCESS_ALPHA, adaptive_checks, as_autoattack_counts, matching_autoattack, render_adaptive
from .autoattack_table import render_markdown
from .build import HTML_DIR, LEADERBOARD_MD, MODEL_INFO_DIR, build, main, render_html
from .certified_table import CERTIFIED_RADII, render_certified
from .model_info import PAPER, best_known, headline, model_info

__all__ = [
    "CERTIFIED_RADII", "EXCESS_ALPHA", "HTML_DIR", "LEADERBOARD_MD", "MODEL_INFO_DIR", "PAPER", "adaptive_checks",
    "as_autoattack_counts", "best_known", "build", "headline", "main", "matching_autoattack", "model_info",
    "render_adaptive", "render_certified", "render_html", "render_markdown",
]  # fmt: skip
