"""Model cards: one Hub-ready ``README.md`` per checkpoint, the zoo's single source of truth.

A card lives at ``model_cards/<dataset>/<threat_model>/<Name>/README.md`` and is read and written with
``huggingface_hub.ModelCard`` / ``ModelCardData`` / ``EvalResult`` (never hand-built YAML). Its front matter
holds the standard Hub keys, an ``eee_zoo`` block describing the checkpoint, and the results as
``model-index`` entries::

    library_name: eee-zoo
    datasets: [cifar10]
    eee_zoo:
      format_version: 1
      name: Tiny                 # == the card's folder name
      dataset: cifar10
      threat_model: Linf
      repo_id: eee-zoo/cifar10-Linf-Tiny
      revision: main             # or a 40-hex commit: what hf_hub_download fetches
      filename: model.safetensors
      sha256: 9f86d0...          # checked before the weights are loaded
      stochastic_inference: true
      storage_dtype: bfloat16    # optional; absent = float32 (floating-point tensors as stored in the file)
      architecture: {...}        # == model.config; SelfEnsemble.from_config rebuilds it
      training: {recipe: training/recipes/x.yaml, seed: 0, ...}
    model-index:
    - name: Tiny
      results:
      - task: {type: image-classification}
        dataset: {type: cifar10, name: CIFAR-10, split: test}
        metrics:
        - type: robust_accuracy  # or clean_accuracy
          value: 41.5            # percent, a number
          args: {correct: 415, n_examples: 1000, version: rand, norm: Linf, eps: 0.0313..., seed: 0,
                 results_file: benchmarks/results/....json}

A sharded checkpoint (``hub.export(..., max_shard_size=...)``) names the standard Hugging Face index instead,
whose sha256 is ``sha256``, and lists every shard (beside the index) with its own sha256::

      filename: model.safetensors.index.json
      sha256: 5e2b4c...
      shards: {model-00001-of-00002.safetensors: 3b1f07..., model-00002-of-00002.safetensors: 77c0aa...}

:func:`load_card` validates all of it and returns a typed :class:`ZooCard`; any problem raises
:class:`CardError` naming the file and the field. This package knows nothing about torch.

One idea per module: :mod:`~eee_zoo.cards.card` (the typed card, names, file-format constants),
:mod:`~eee_zoo.cards.fields` (:class:`CardError` and typed field access), :mod:`~eee_zoo.cards.results` (result
dicts: the contract, identity, labels, the best-known figure), :mod:`~eee_zoo.cards.body` (the markdown body),
:mod:`~eee_zoo.cards.validate` (text to a checked :class:`ZooCard`), :mod:`~eee_zoo.cards.files` (load, render,
write, atomic rewrites) and :mod:`~eee_zoo.cards.figures` (the Figures section).
"""

from ..datasets import THREAT_MODELS, parse_dataset, parse_threat_model
from .body import LIMITATIONS_ADAPTIVE, LIMITATIONS_PLAIN, is_plain_classifier, render_body
from .card import (
    CARD_FILENAME,
    CARD_FORMAT_VERSION,
    CONFIG_FILENAME,
    DATASET_TITLES,
    DATASETS,
    DEFAULT_ORG,
    DEFAULT_STORAGE_DTYPE,
    INDEX_FILENAME,
    ORG_ENV,
    SHARD_PATTERN,
    STORAGE_DTYPES,
    WEIGHTS_FILENAME,
    ZooCard,
    default_org,
    default_repo_id,
    is_valid_name,
)
from .fields import CardError
from .figures import FIGURE_CAPTIONS, FIGURES_FOLDER, set_figures
from .files import load_card, render_card, set_results, set_revision, write_card
from .results import (
    IDENTITY_KEYS,
    METRICS,
    NORMS,
    RESULT_KEYS,
    SUITES,
    best_known_result,
    format_eps,
    interval_text,
    result_identity,
    result_label,
    result_suite,
    results_table,
    validate_result,
)

__all__ = [
    "CARD_FILENAME", "CARD_FORMAT_VERSION", "CONFIG_FILENAME", "DATASETS", "DATASET_TITLES", "DEFAULT_ORG",
    "DEFAULT_STORAGE_DTYPE", "FIGURES_FOLDER", "FIGURE_CAPTIONS", "IDENTITY_KEYS", "INDEX_FILENAME",
    "LIMITATIONS_ADAPTIVE", "LIMITATIONS_PLAIN", "METRICS", "NORMS", "ORG_ENV", "RESULT_KEYS", "SHARD_PATTERN",
    "STORAGE_DTYPES", "SUITES", "THREAT_MODELS", "WEIGHTS_FILENAME", "CardError", "ZooCard", "best_known_result",
    "default_org", "default_repo_id", "format_eps", "interval_text", "is_plain_classifier", "is_valid_name",
    "load_card", "parse_dataset", "parse_threat_model", "render_body", "render_card", "result_identity",
    "result_label", "result_suite", "results_table", "set_figures", "set_results", "set_revision", "validate_result",
    "write_card",
]  # fmt: skip
