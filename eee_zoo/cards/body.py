"""The card's markdown body: what the model is, how to load it, its randomness, training, results and
limitations, generated from the card's data (the results section between markers that rewrites replace)."""

from __future__ import annotations

import math
import re
from typing import Any

from .card import DATASET_TITLES, DEFAULT_STORAGE_DTYPE, ZooCard
from .results import best_known_result, format_eps, interval_text, is_worst_case, result_label, results_table

__all__ = [
    "LIMITATIONS_ADAPTIVE",
    "LIMITATIONS_PLAIN",
    "RESULTS_END",
    "RESULTS_SECTION_RE",
    "GLANCE_SECTION_RE",
    "RESULTS_START",
    "is_plain_classifier",
    "glance_section",
    "render_body",
    "results_section",
]

RESULTS_START = "<!-- eee-zoo:results:start -->"
RESULTS_END = "<!-- eee-zoo:results:end -->"
RESULTS_SECTION_RE = re.compile(re.escape(RESULTS_START) + r".*?" + re.escape(RESULTS_END), re.DOTALL)
# The headline at the top of the card (what a Hub visitor reads first), generated like the results section.
GLANCE_START = "<!-- eee-zoo:at-a-glance:start -->"
GLANCE_END = "<!-- eee-zoo:at-a-glance:end -->"
GLANCE_SECTION_RE = re.compile(re.escape(GLANCE_START) + r".*?" + re.escape(GLANCE_END), re.DOTALL)


# A single-resolution baseline's Limitations section.
LIMITATIONS_PLAIN = (
    "A plain deterministic classifier: no random stack and no aggregation that could mask its gradients, so "
    "AutoAttack's `standard` version is its reference evaluation (RobustBench's protocol). The zoo's adaptive suite "
    "runs on it too, judged on one draw (every draw of its stack is the same function), so that its rows compare "
    "with the self-ensembles' on the same images. Every robust accuracy here is an upper bound: a stronger attack "
    "may find less."
)
# The adaptive suite in the card's Limitations section (eee_zoo.adaptive; benchmarks.adaptive writes the results).
LIMITATIONS_ADAPTIVE = (
    "This zoo's own adaptive evaluation (`python -m benchmarks.adaptive`, `eee_zoo.adaptive`) takes, for every "
    "image, the worst case over many proposals: APGD-CE and APGD-DLR, untargeted and targeted, on the deterministic "
    "mode, on a mean-of-logits surrogate of CrossMax (with and without EOT over the stack's noise), on each single "
    "predictor and on the deployed model with EOT; PGD with step decay; AutoAttack's own `rand` and `standard` "
    "examples; and the clean image. The deployed model picks each image's worst proposal on *selection* draws and "
    "is then scored on other, *fresh* draws, so picking the minimum does not flatter the figure. Its robust "
    "accuracy per draw (one query of the deployed model) and on every fresh draw are in the results above when "
    "measured and in the zoo's leaderboard, `benchmarks/LEADERBOARD.md`, which also counts it as AutoAttack `rand` "
    "counts (right on all of rand's 3 single-draw checks) to hold it against rand like with like. Where one "
    "attack's own worst case counts fewer fresh image-draws right than the worst case over all (a near-tie among "
    "proposals that break an image on nearly every draw, which the selection draws cannot resolve), the figures "
    "above are that attack's, named: the lowest any attack reaches. The lowest robust accuracy measured is "
    "the model's best-known figure (RobustBench's `external`). It too is an upper bound: a stronger attack may "
    "find less."
)


def render_body(card: ZooCard, *, description: str | None = None) -> str:
    """The card's markdown body: what the model is, how to load it, randomness, training, results, caveats."""
    arch = card.architecture
    stack = arch.get("stack") or {}
    backbone = arch["backbone"]
    kwargs = ", ".join(f"{k}={v!r}" for k, v in (backbone.get("kwargs") or {}).items())
    predictors = [f"`{t}`" for t in arch["taps"]]
    if arch.get("include_backbone_head", True):
        predictors.append("the backbone's own classifier")
    aggregation = f"CrossMax, k = {arch.get('k', 3)}" if arch.get("aggregator", "crossmax") == "crossmax" else "mean"
    size = arch.get("input_size", 32)
    resolutions = ", ".join(str(r) for r in stack.get("resolutions", (32, 16, 8, 4)))
    hub_url = f"https://huggingface.co/{card.repo_id}"
    plain = is_plain_classifier(arch)
    if plain:
        intro = (
            f"A single-resolution baseline for {DATASET_TITLES[card.dataset]} under the {card.threat_model} threat "
            f"model, from the eee-zoo model zoo of multi-resolution self-ensembles (Fort & Lakshminarayanan 2024, "
            f"*Ensemble everything everywhere*, [arXiv:2408.05446](https://arxiv.org/abs/2408.05446)): a plain "
            f"classifier that reads the image as it is, with no stack of copies, no intermediate heads and no "
            f"aggregation, so its rows beside the self-ensembles' show what the method adds.\n"
        )
        stack_text, aggregation = f"none (the {size} px image as it is)", "none (one predictor)"
    else:
        intro = (
            f"A multi-resolution self-ensemble (Fort & Lakshminarayanan 2024, *Ensemble everything everywhere*, "
            f"[arXiv:2408.05446](https://arxiv.org/abs/2408.05446)) for {DATASET_TITLES[card.dataset]} under the "
            f"{card.threat_model} threat model, from the eee-zoo model zoo. Each image is turned into a stack of "
            f"noisy, jittered copies at several resolutions; a backbone reads the stack, linear heads on its "
            f"intermediate layers each predict the class, and their logits are aggregated.\n"
        )
        stack_text = f"{resolutions} px, `{stack.get('variant', 'code')}` variant"

    parts = [f"# {card.name}\n"]
    if description:
        parts.append(description.strip() + "\n")
    parts.append(intro)
    parts.append(glance_section(card) + "\n")
    parts.append(
        "## Model\n\n| | |\n|---|---|\n"
        f"| Input | float images `[B, 3, {size}, {size}]` in [0, 1] (normalisation happens inside the model) |\n"
        f"| Multi-resolution stack | {stack_text} |\n"
        f"| Backbone | `{backbone['name']}`{f' ({kwargs})' if kwargs else ''} |\n"
        f"| Predictors | {', '.join(predictors)} |\n"
        f"| Aggregation | {aggregation} |\n"
        f"| Classes | {arch['num_classes']} |\n"
        f"| Weights | {_weights_text(card)} |\n"
        f"| Hub | [`{card.repo_id}`]({hub_url}) at revision `{card.revision}` |\n"
    )
    parts.append(
        "## Usage\n\n```python\nfrom eee_zoo import load_model\n\n"
        f'model = load_model("{card.name}", dataset="{card.dataset}", threat_model="{card.threat_model}")\n'
        f"logits = model(images)  # images: float tensor [B, 3, {size}, {size}] in [0, 1]\n```\n\n"
        "`load_model` finds the weights (a RobustBench-style `model_dir`, this folder, or the Hugging Face Hub at "
        "the pinned revision; with `HF_HUB_OFFLINE=1` only the local cache), checks their sha256 *before* loading "
        "and loads them with safetensors and `strict=True`. The card data is attached as `model.eee_info`.\n"
    )
    randomness = _PLAIN_RANDOMNESS if plain else _randomness_text(card, stack)
    parts.append("## Inference randomness\n\n" + randomness + "\n")
    parts.append("## Training\n\n" + _training_text(card) + "\n")
    parts.append("## Results\n\n" + results_section(card) + "\n")
    if plain:
        parts.append("## Limitations\n\n" + LIMITATIONS_PLAIN + "\n")
        return "\n".join(parts)
    parts.append(
        "## Limitations: gradient masking and adaptive attacks\n\n"
        "Read the robust accuracy of this method with care. The random input stack and the max/sort inside "
        "CrossMax make input gradients noisy and partly uninformative (gradient masking), which weakens the "
        "gradient-based attacks of AutoAttack's `standard` version and can make a model look more robust than it "
        "is. The `rand` version (expectation over transformation) averages out the randomness but not the masking "
        "from the aggregation. Adaptive attacks designed against this defense have reported far lower robust "
        "accuracy than AutoAttack for the published models (Zhang et al. 2024, *Gradient Masking All-at-Once: "
        "Ensemble Everything Everywhere Is Not Robust*, [arXiv:2411.14834](https://arxiv.org/abs/2411.14834)). "
        "Treat AutoAttack's numbers above as upper bounds on the true robustness, not as certified or "
        "adaptive-attack-verified figures. " + LIMITATIONS_ADAPTIVE + "\n"
    )
    return "\n".join(parts)


_PLAIN_RANDOMNESS = (
    "Inference is **deterministic**, with no random mode: the model reads the image as it is, so the same images "
    "always give the same logits, and `load_model(..., stochastic=True)` changes nothing (its stack draws nothing)."
)


def is_plain_classifier(architecture: dict[str, Any]) -> bool:
    """A single-resolution baseline: one copy of the image at its own size, a stack that draws nothing, and the
    backbone's classifier as the only predictor (nothing to aggregate)."""
    from ..models.multires import MultiResolutionStack  # here, not at import: reading cards needs no torch

    stack = dict(architecture.get("stack") or {})
    size = architecture.get("input_size", 32)
    return (
        list(stack.get("resolutions", ())) == [size]
        and not MultiResolutionStack(**stack).is_random
        and not architecture.get("taps")
        and architecture.get("include_backbone_head", True)
    )


def _weights_text(card: ZooCard) -> str:
    text = f"`{card.filename}`, sha256 `{card.sha256}`"
    if card.shards:
        text += f"; {len(card.shards)} safetensors shards, each with its sha256 in this card's `eee_zoo.shards`"
    if card.storage_dtype != DEFAULT_STORAGE_DTYPE:
        text += f"; floating-point tensors stored in {card.storage_dtype} (loaded into float32)"
    return text


def _randomness_text(card: ZooCard, stack: dict[str, Any]) -> str:
    seed = stack.get("seed", 0)
    if card.stochastic_inference:
        return (
            "Inference is **stochastic**: every forward pass draws new jitter, contrast/colour factors and noise in "
            "the multi-resolution stack, so two calls on the same images can give different logits. The draws come "
            f"only from the model's own `torch.Generator` (seeded with {seed} when the model is built), never from "
            "PyTorch's global random state.\n\n"
            "- `model.manual_seed(s)` (or `load_model(..., seed=s)`) replays the same draws: same seed, same logits.\n"
            "- `model.set_stochastic(False)` (or `load_model(..., stochastic=False)`) switches to the deterministic "
            "mode: no jitter, contrast and colour factors 1, each noise term replaced by its mean.\n"
            "- Each result below records its seed and, where given, the inference mode it was measured in."
        )
    return (
        "Inference is **deterministic**: the stack uses no jitter, contrast and colour factors 1 and each noise "
        "term's mean, so the same images always give the same logits. `load_model(..., stochastic=True)` turns on "
        f"the random stack; its draws come only from the model's own `torch.Generator` (seed {seed}, or "
        "`load_model(..., seed=s)`)."
    )


def _training_text(card: ZooCard) -> str:
    training = card.training
    if not training:
        return "No training record in this card."
    lines = []
    if "recipe" in training:
        seed = f", seed {training['seed']}" if "seed" in training else ""
        lines.append(f"- Recipe: `{training['recipe']}`{seed}")
    if "command" in training:
        lines.append(f"- Reproduce with:\n\n  ```\n  {training['command']}\n  ```")
    for key, value in training.items():
        if key not in ("recipe", "seed", "command"):
            lines.append(f"- {key}: `{value}`")
    return "\n".join(lines)


def glance_section(card: ZooCard) -> str:
    """The card's headline, between its markers: the best-known robust accuracy at the threat model's default eps
    (the lowest any attack reached on the deployed model), the AutoAttack figure RobustBench would list and the
    deployed mode's clean accuracy, each with its 95 % interval, n and seed, from the card's results alone (so
    ``benchmarks.results.check_card`` holds its figures to the results files like any other line of the card)."""
    best = card.best_known()
    if best is None:
        return f"{GLANCE_START}\n**At a glance:** nothing measured yet (see *Results*).\n{GLANCE_END}"
    lines = [
        f"**At a glance** ({best['norm']}, eps = {format_eps(best['eps'], best['norm'])}; 95 % intervals in brackets; "
        "every robust figure is an upper bound, a stronger attack may find less):",
        "",
        f"- **Best-known robust accuracy: {best['value']:.2f} %** {interval_text(best)}, {result_label(best)}, seed "
        f"{best['seed']}: the lowest any of the zoo's attacks reached on the deployed model.",
    ]
    version = "rand" if card.stochastic_inference else "standard"
    aa = [
        r
        for r in card.results
        if r["metric"] == "robust_accuracy" and r["version"] == version and r["eps"] == best["eps"]
        and r.get("stochastic") in (None, card.stochastic_inference)
    ]  # fmt: skip
    top = max(aa, key=lambda r: r["n_examples"], default=None)
    if top is not None and top is not best:
        lines.append(
            f"- AutoAttack `{version}` (what RobustBench lists): {top['value']:.2f} % {interval_text(top)}, "
            f"n = {top['n_examples']}, seed {top['seed']}."
        )
    clean = card.deployed_clean()
    if clean is not None:
        lines.append(f"- Clean accuracy: {clean['value']:.2f} % {interval_text(clean)}, n = {clean['n_examples']}.")
    return GLANCE_START + "\n" + "\n".join(lines) + "\n" + GLANCE_END


def results_section(card: ZooCard) -> str:
    if card.results:
        inner = (
            f"Measured on the first n {DATASET_TITLES[card.dataset]} test images (unshuffled); every number comes "
            "from the results file named in its row, and so does its 95 % interval (Wilson for AutoAttack's counts, "
            "Clopper-Pearson for the adaptive suite's; widened outwards to 0.01).\n\n" + results_table(card.results)
        )
        if any(is_worst_case(r) for r in card.results):
            inner += (
                "\n\nAdaptive rows: for every image the worst of all the adaptive suite's proposals, chosen by the "
                "deployed model on selection draws and scored on other, fresh draws. *Per draw* is the mean over "
                "images and fresh draws (n counts image-draws): one query of the deployed model. AutoAttack `rand` "
                "counts more strictly, an image staying robust only if right on each of its single-draw checks (the "
                "clean check and one after each attack: 3 draws), so where images are wrong on some draws only "
                "(small eps) its figure can sit below the per-draw one; the leaderboard holds the two like with like. "
                "*Right on all F draws* falls as F grows."
            )
        budgets = sorted({(r["norm"], r["eps"]) for r in card.results if r["metric"] == "robust_accuracy"})
        for norm, eps in budgets:  # one best-known figure per threat budget
            same = [r for r in card.results if (r["norm"], r["eps"]) == (norm, eps)]
            best = best_known_result(same, card.stochastic_inference)
            if best is not None:
                inner += (
                    f"\n\nBest-known robust accuracy of the deployed model at {norm} eps = {format_eps(eps, norm)} "
                    f"(RobustBench's `external`): **{best['value']:.2f} %**{_interval_words(best)}, "
                    f"{result_label(best)}, seed "
                    f"{best['seed']}, from `{best['results_file']}`."
                )
    else:
        inner = (
            "No results yet. Measure clean accuracy and AutoAttack robust accuracy and write them into this card "
            f"with:\n\n```\neee-zoo benchmark {card.name} --dataset {card.dataset} "
            f"--threat-model {card.threat_model} --write-card\n```"
        )
    return f"{RESULTS_START}\n{inner}{_certified_section(card)}\n{RESULTS_END}"


def _interval_words(result: dict[str, Any]) -> str:
    return "" if result.get("interval") is None else f" (95 % interval {interval_text(result)})"


def _certified_section(card: ZooCard) -> str:
    """Certified (lower) bounds beside the empirical (upper) ones, from the card's results alone: every row is backed
    by a results file (``python -m benchmarks.certify --write-card``; checked by ``benchmarks.results.check_card``)."""
    certified = [r for r in card.results if r["metric"] == "certified_accuracy"]
    if not certified:
        return ""
    dim = 3 * card.architecture.get("input_size", 32) ** 2
    rows = [
        "| Bound | Classifier | Threat | Accuracy (%) | 95 % interval | Correct / n | Seed | Results file |",
        "|---|---|---|---:|---:|---:|---:|---|",
    ]
    for r in sorted(certified, key=lambda r: (r["version"], r["eps"], -r["n_examples"])):
        linf = 255 * float(r.get("radius_linf") or r["eps"] / math.sqrt(dim))
        rows.append(
            f"| lower: certified | smoothed, `{r['version']}` | L2 radius {r['eps']:g} (L-inf {linf:.2f}/255) "
            f"| {r['value']:.2f} | {interval_text(r)} | {r['correct']} / {r['n_examples']} | {r['seed']} "
            f"| `{r['results_file']}` |"
        )
    clean = card.deployed_clean()  # the row says "deployed"
    budgets = sorted({(r["norm"], r["eps"]) for r in card.results if r["metric"] == "robust_accuracy"})
    for norm, eps in budgets:
        best = best_known_result(
            [r for r in card.results if (r["norm"], r["eps"]) == (norm, eps)], card.stochastic_inference
        )
        if best is not None:
            rows.append(
                f"| upper: best-known attack | deployed, {result_label(best)} | {norm} eps {format_eps(eps, norm)} "
                f"| {best['value']:.2f} | {interval_text(best)} | {best['correct']} / {best['n_examples']} "
                f"| {best['seed']} | `{best['results_file']}` |"
            )
    if clean is not None:
        rows.append(
            f"| upper: clean | deployed | none | {clean['value']:.2f} | {interval_text(clean)} "
            f"| {clean['correct']} / {clean['n_examples']} "
            f"| {'-' if clean['seed'] is None else clean['seed']} | `{clean['results_file']}` |"
        )
    return (
        "\n\n### Certified (lower bound) beside empirical (upper bound)\n\n"
        "Randomized smoothing (`python -m benchmarks.certify`, `eee_zoo.certify`) certifies the *smoothed* classifier: "
        "the class this model (with its own random stack) returns most often on copies of the image with Gaussian "
        "noise of the sigma in the version's name. Its certified accuracy at an L2 radius is a lower bound on that "
        "classifier's accuracy against *every* attack within the radius (each image's certificate may fail with "
        "probability alpha). The attacks' figures are upper bounds for the deployed model, a different classifier. "
        f"An L2 ball of radius r holds the L-inf ball of radius r / {math.sqrt(dim):.1f}, so a radius also certifies "
        f"that L-inf radius (L-inf 8/255 would need L2 radius {8 / 255 * math.sqrt(dim):.2f}).\n\n" + "\n".join(rows)
    )
