"""Named attack suites: the zoo's own worst-case suite and the published attacks on this defence.

Each preset is a tuple of :class:`~eee_zoo.adaptive.attacks.Attack`; ``describe_preset`` prints their settings,
and the CLI's help shows them, so what a preset runs is what its help says (a test checks it).
"""

from __future__ import annotations

from .attacks import Attack

__all__ = ["AUTOATTACK_PROPOSALS", "PRESETS", "describe_preset"]

AUTOATTACK_PROPOSALS = ("rand", "standard-det")  # AutoAttack's own examples, judged like every other proposal

PRESETS: dict[str, tuple[Attack, ...]] = {
    # The zoo's suite: every gradient path around the stack's noise and CrossMax, sized for a 2-core CPU at n=500.
    "zoo": (
        Attack("apgd-ce-det", surrogate="deployed"),
        Attack("apgd-dlr-det", surrogate="deployed", loss="dlr"),
        Attack("apgd-ce-mean", surrogate="mean"),
        Attack("apgd-dlr-t-mean", surrogate="mean", loss="dlr-targeted", targets=3),
        Attack("apgd-ce-predictors", surrogate="predictors"),
        Attack("apgd-ce-mean-eot", surrogate="mean", draws=4),
        Attack("apgd-ce-deployed-eot", surrogate="deployed", draws=4, n_iter=50),
        Attack("pgd-mean-eot", surrogate="mean", draws=4, optimiser="pgd", n_iter=100, record_every=25),
    ),
    # A quick look (minutes on a CPU at n=100): the two attacks that do most of the work on these models, cut short.
    "quick": (
        Attack("apgd-ce-mean", surrogate="mean", n_iter=10),
        Attack("pgd-mean-eot", surrogate="mean", draws=2, optimiser="pgd", n_iter=10),
    ),
    # Zhang, Nikolic, Carlini, Tramer, Schlarmann, Croce, Hein (arXiv:2411.14834): PGD on the plain mean of the
    # predictors' logits with the randomness on (EOT), many steps, step-size decay, ball around the clean image.
    "zhang2024": (
        Attack("zhang2024-pgd-mean-eot", surrogate="mean", draws=10, optimiser="pgd", n_iter=400, record_every=100),
    ),
    # Hein et al. (public review): APGD-CE with CrossMax's top-k replaced by the mean for the gradient, EOT 100.
    "hein2024": (Attack("hein2024-apgd-ce-mean-eot", surrogate="mean", draws=100),),
    # Transfer from the plain-mean ensemble (deterministic mode) with targeted PGD, 100 steps, top 3 targets.
    "transfer-mean": (
        Attack(
            "transfer-mean-pgd-t",
            surrogate="mean",
            optimiser="pgd",
            loss="ce-targeted",
            targets=3,
            n_iter=100,
            record_every=25,
        ),
    ),  # fmt: skip
}


def describe_preset(name: str) -> str:
    """One line per attack of preset ``name``, the text the CLI's help shows."""
    return "; ".join(f"{a.name}: {a.describe()}" for a in PRESETS[name])
