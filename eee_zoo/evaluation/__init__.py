"""Clean and AutoAttack robust accuracy, measured the way RobustBench measures it: resumable, shardable, checked.

    >>> from eee_zoo import load_model, benchmark, evaluate
    >>> model = load_model("Name")
    >>> clean_acc, robust_acc = benchmark(model, n_examples=1000)        # RobustBench's call shape
    >>> result = evaluate(model, n_examples=1000, progress=True)        # everything: per attack, intervals, ...
    >>> result.x_adv                                                    # every image's adversarial example

What is measured
    The first ``n_examples`` test images in canonical order (:func:`eee_zoo.data.load_dataset`), attacked by
    AutoAttack's own attack objects (the ``pyautoattack`` package), configured by AutoAttack exactly as its
    versions define them (:mod:`.autoattack`). ``version=None`` picks ``rand`` for a stochastic model and
    ``standard`` otherwise; ``standard`` on a stochastic model is refused unless the model is switched to its
    deterministic mode (``model.set_stochastic(False)``) or the caller insists (``allow_stochastic_standard=True``).

Identical to AutoAttack run directly
    eee_zoo drives AutoAttack's cascade itself (:mod:`.cascade`: its checks, the clean pass, every attack on the
    images still robust, in its batches and with its seeds) and keeps every image's robust flag and adversarial
    example. The unsharded path is, operation for operation, this (same images, batches, seeds, random draws)::

        x, y = eee_zoo.data.load_dataset(dataset, n_examples, data_dir)
        model.manual_seed(seed)                          # models that own a generator (stochastic eee_zoo models)
        adversary = AutoAttack(model, norm=threat_model, eps=eps, version=version, seed=seed, device=device)
        x_adv, y_adv = adversary.run_standard_evaluation(x, y, batch_size=batch_size)

    so ``benchmark`` returns exactly the robust accuracy that code gives, and ``evaluate(...).x_adv`` its
    ``x_adv``. Clean accuracy is AutoAttack's own first pass over the images (for a stochastic model: one
    stochastic forward pass per image). AutoAttack's checks (randomness, softmax outputs, dynamic defenses, the
    number of classes, zero gradients, Square beating the white-box attacks) are kept with the result.

Resuming (:mod:`.runner`, :mod:`.state`)
    The state is kept under a name keyed by the full configuration (model, checkpoint sha256, dataset, threat
    model, version, eps, n, seed, batch size, chunking, inference mode, images) and records, at the start of
    every attack, the robust flags, the examples found so far and the state of the model's own generators. A
    run that is killed and started again with the same arguments continues from the start of the interrupted
    attack with the same batches and random draws, so it ends with exactly the result of an uninterrupted run.
    A state of another configuration is refused, never mixed in; a finished one is reused without attacking
    again. Either reuse is announced with the state's path (a warning, and a note in ``summary()``);
    ``fresh=True`` (``--fresh`` on the command line) discards the state and starts over.

Scaling out (:mod:`.distributed`)
    Under ``torchrun`` (or with ``chunk_size=``) the images are cut into fixed chunks with seeds of their own,
    spread over the processes and merged in chunk order, so the result does not depend on the number of
    processes; "identical to AutoAttack run directly" then holds per chunk.

Randomness (:mod:`.seeds`)
    AutoAttack reseeds PyTorch's global generator at the start of every attack; the caller's global RNG state
    is saved and restored around the run. Stochastic eee_zoo models draw only from their own generators, which
    are reseeded from ``seed``. A model that draws from global RNG state cannot be evaluated reproducibly.

Modules: one idea each, listed in :data:`MODULES`; each imports only modules listed before it.
"""

from __future__ import annotations

from .._progress import ProgressEvent
from ..datasets import DEFAULT_EPS, THREAT_MODELS
from .api import DEFAULT_BATCH_SIZE, DEFAULT_CHUNK_SIZE, benchmark, evaluate
from .autoattack import VERSIONS, attack_settings, default_version
from .distributed import chunk_seed, is_main_process
from .examples import load_adversarial_examples, save_adversarial_examples
from .inputs import checkpoint_sha256
from .intervals import CONFIDENCE, clopper_pearson_interval, normal_quantile, wilson_interval
from .results import SUITE, AttackStep, CheckWarning, EvaluationResult, versions
from .state import state_key

MODULES = (
    "intervals",  # Wilson and Clopper-Pearson intervals (scipy.stats)
    "checks",  # argument checks
    "seeds",  # the model's generators, their snapshots, the run lock
    "inputs",  # images, device, model identity, pre-flight checks of the model
    "examples",  # adversarial examples beside results files (safetensors)
    "autoattack",  # AutoAttack's versions built by AutoAttack; its attack objects set up per attack
    "autoattack_checks",  # AutoAttack's checks, called directly and kept
    "progress",  # the progress meter of the attacks, APGD iterations
    "cascade",  # AutoAttack's cascade driven here: flags and x_adv per image
    "state",  # resumable state files keyed by the configuration
    "results",  # EvaluationResult, summaries, versions
    "runner",  # one resumable run: cascade + state + progress
    "distributed",  # torchrun chunks, per-chunk seeds, merge
    "api",  # benchmark, evaluate
)

__all__ = [
    "CONFIDENCE", "DEFAULT_BATCH_SIZE", "DEFAULT_CHUNK_SIZE", "DEFAULT_EPS", "MODULES", "SUITE", "THREAT_MODELS",
    "VERSIONS",
    "AttackStep", "CheckWarning", "EvaluationResult", "ProgressEvent", "attack_settings", "benchmark",
    "checkpoint_sha256", "chunk_seed", "clopper_pearson_interval", "default_version", "evaluate", "is_main_process",
    "load_adversarial_examples", "normal_quantile", "save_adversarial_examples", "state_key", "versions",
    "wilson_interval",
]  # fmt: skip
