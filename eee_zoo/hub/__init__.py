"""Weights on disk and on the Hugging Face Hub: finding them, checking them, exporting and pushing them.

Where ``load_model`` looks for a checkpoint's weights, in order:

1. an explicit ``model_dir`` in RobustBench's layout: ``<model_dir>/<dataset>/<threat_model>/<name>.safetensors``;
   when one is given it is the only place looked at (a missing folder or file is an error naming the path, never
   a silent fall-back to the card's folder or the Hub);
2. the card's own folder (``model_cards/<dataset>/<threat_model>/<Name>/<filename>``), when the weights ship there;
3. ``huggingface_hub.hf_hub_download(repo_id, filename, revision=<the card's pinned revision>)``, which with
   ``HF_HUB_OFFLINE=1`` serves the file from the local cache without touching the network.

A sharded checkpoint (``export(..., max_shard_size=...)``) is the standard Hugging Face layout: an index
``model.safetensors.index.json`` and shards ``model-00001-of-0000N.safetensors`` beside it. It is found the same
way, by its index (``<model_dir>/<dataset>/<threat_model>/<name>.safetensors.index.json`` with the shards beside
it; the card's folder; or the Hub, the index and then every shard at the commit the index came from).

Whatever the source, every file's sha256 (the single file's, or the index's and each shard's) must equal the card's
before a single tensor is read.

One idea per module: :mod:`~eee_zoo.hub.locate` (finding the weights), :mod:`~eee_zoo.hub.integrity` (checking
them), :mod:`~eee_zoo.hub.exporting` (writing a checkpoint folder), :mod:`~eee_zoo.hub.pushing` (publishing it) and
:mod:`~eee_zoo.hub.errors`.
"""

from .errors import HubConnectionError, WeightsChecksumError, WeightsNotFoundError
from .exporting import checkpoint_files, export
from .integrity import read_index, verify_folder, verify_sha256, verify_weights
from .locate import HF_CACHE_ENV, card_info, hub_cache_dir, resolve_weights, robustbench_path
from .pushing import push, stale_patterns, upload_patterns

__all__ = [
    "HF_CACHE_ENV", "HubConnectionError", "WeightsChecksumError", "WeightsNotFoundError", "card_info",
    "checkpoint_files", "export", "hub_cache_dir", "push", "read_index", "resolve_weights", "robustbench_path",
    "stale_patterns", "upload_patterns", "verify_folder", "verify_sha256", "verify_weights",
]  # fmt: skip
