"""The self-ensemble: multi-resolution stack -> backbone -> linear heads on taps -> aggregator.

Fort & Lakshminarayanan 2024 (arXiv:2408.05446), Sec. 3: every intermediate layer gets a linear
classifier (BatchNorm + Linear on its flattened activations) and their logits, together with the
backbone's own classifier, are aggregated with CrossMax.

The model is fully described by a JSON-able ``config`` (what ``config.json`` and the model card hold);
``SelfEnsemble.from_config(model.config)`` rebuilds the same architecture. ``huggingface_hub``'s
``PyTorchModelHubMixin`` adds ``save_pretrained`` / ``from_pretrained`` / ``push_to_hub`` on top of that config.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from huggingface_hub import PyTorchModelHubMixin

from .backbones import TappedBackbone, create_backbone
from .crossmax import get_aggregator
from .multires import MultiResolutionStack

__all__ = ["SelfEnsemble", "LinearHead", "CONFIG_FORMAT_VERSION"]

CONFIG_FORMAT_VERSION = 1
BACKBONE_PREDICTOR = "backbone"
_RANGE_TOLERANCE = 1e-5  # AutoAttack clamps to [0, 1]; allow float rounding, nothing more
_CONFIG_KEYS = {
    "format_version", "num_classes", "input_size", "stack", "backbone", "taps", "head_pool",
    "include_backbone_head", "aggregator", "k",
}  # fmt: skip


class LinearHead(nn.Module):
    """BatchNorm1d + Linear on the flattened (optionally average-pooled) activations of one tap."""

    def __init__(self, in_shape: Sequence[int], num_classes: int, pool: int | None = None) -> None:
        super().__init__()
        c, h, w = in_shape
        self.pool = pool
        if pool is not None:
            h, w = min(h, pool), min(w, pool)
        features = c * h * w
        self.norm = nn.BatchNorm1d(features)
        self.linear = nn.Linear(features, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pool is not None:
            x = F.adaptive_avg_pool2d(x, (min(x.shape[-2], self.pool), min(x.shape[-1], self.pool)))
        return self.linear(self.norm(x.flatten(1)))


class SelfEnsemble(
    nn.Module,
    PyTorchModelHubMixin,
    library_name="eee-zoo",
    license="mit",
    pipeline_tag="image-classification",
    tags=["eee-zoo", "self-ensemble", "adversarial-robustness"],
    paper_url="https://arxiv.org/abs/2408.05446",
):
    """A multi-resolution self-ensemble taking images ``[B, 3, H, W]`` in [0, 1] and returning logits.

    ``save_pretrained(dir)`` / ``from_pretrained(dir_or_repo_id)`` / ``push_to_hub(repo_id)`` come from
    ``huggingface_hub.PyTorchModelHubMixin`` and use :attr:`config` as ``config.json``: see :meth:`_from_pretrained`.

    Args:
        backbone: a :class:`TappedBackbone` whose input has ``stack.out_channels`` channels.
        stack: the :class:`MultiResolutionStack` (owns the model's randomness).
        taps: backbone blocks that get a linear head, in order.
        num_classes: number of classes.
        aggregator: ``"crossmax"`` (robust; uses ``k``) or ``"mean"``.
        k: CrossMax's k (the k-th largest over predictors).
        head_pool: if set, average-pool each tap to at most ``head_pool x head_pool`` before flattening
            (bounds the head size for big inputs); ``None`` flattens the full activation as in the paper.
        include_backbone_head: whether the backbone's own classifier is one of the predictors.
        input_size: the image side the heads were sized for.
        backbone_spec: ``{"name": ..., "kwargs": {...}}`` recorded in ``config`` (set by ``from_config``).
    """

    # Whether check_input refuses pixels outside [0, 1] (a guard against pre-normalised images). Randomized
    # smoothing (eee_zoo.certify) turns it off for its run: it feeds x + Gaussian noise, unclamped, by design.
    check_range: bool = True

    def __init__(
        self,
        backbone: TappedBackbone,
        stack: MultiResolutionStack,
        taps: Sequence[str],
        num_classes: int,
        *,
        aggregator: str = "crossmax",
        k: int = 3,
        head_pool: int | None = None,
        include_backbone_head: bool = True,
        input_size: int = 32,
        backbone_spec: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        taps = list(taps)
        unknown = [t for t in taps if t not in backbone.tap_names]
        if unknown:
            raise ValueError(f"unknown taps {unknown}; the backbone has {list(backbone.tap_names)}")
        if len(set(taps)) != len(taps):
            raise ValueError(f"taps must be distinct, got {taps}")
        if backbone.num_classes != num_classes:
            raise ValueError(f"backbone has {backbone.num_classes} classes but num_classes={num_classes}")
        n_predictors = len(taps) + int(include_backbone_head)
        if n_predictors == 0:
            raise ValueError("a self-ensemble needs at least one predictor (a tap or the backbone head)")
        self.aggregate_fn = get_aggregator(aggregator)
        if aggregator == "crossmax" and not 1 <= k <= n_predictors:
            raise ValueError(f"k={k} must be between 1 and the number of predictors ({n_predictors})")
        if aggregator == "crossmax" and k == 1:  # its second step makes each class's maximum over predictors 0
            raise ValueError("CrossMax with k=1 scores every class 0, a constant classifier: use k >= 2 or the mean")
        if head_pool is not None and head_pool < 1:
            raise ValueError(f"head_pool must be None or >= 1, got {head_pool}")

        self.stack = stack
        self.backbone = backbone
        self.taps = taps
        self.num_classes = int(num_classes)
        self.aggregator = aggregator
        self.k = int(k)
        self.head_pool = head_pool
        self.include_backbone_head = bool(include_backbone_head)
        self.input_size = int(input_size)
        self.backbone_spec = copy.deepcopy(backbone_spec) if backbone_spec is not None else None
        self.heads = nn.ModuleList(LinearHead(shape, num_classes, head_pool) for shape in self._tap_shapes().values())
        self.eee_info: dict[str, Any] = {}  # card data, attached by load_model / export

    # ------------------------------------------------------------------------------ construction
    @classmethod
    def from_config(cls, config: dict[str, Any]) -> SelfEnsemble:
        """Build the architecture described by ``config`` (weights are freshly initialised)."""
        if not isinstance(config, dict):
            raise ValueError(f"config must be a dict, got {type(config).__name__}")
        unknown = set(config) - _CONFIG_KEYS
        if unknown:
            raise ValueError(f"unknown config keys {sorted(unknown)}; allowed: {sorted(_CONFIG_KEYS)}")
        missing = {"num_classes", "backbone", "taps"} - set(config)
        if missing:
            raise ValueError(f"config is missing {sorted(missing)}")
        version = config.get("format_version", CONFIG_FORMAT_VERSION)
        if version != CONFIG_FORMAT_VERSION:
            raise ValueError(f"config format_version {version} is not supported (expected {CONFIG_FORMAT_VERSION})")
        spec = config["backbone"]
        if not isinstance(spec, dict) or "name" not in spec or set(spec) - {"name", "kwargs"}:
            raise ValueError(f"config 'backbone' must be {{'name': str, 'kwargs': dict}}, got {spec!r}")
        stack_cfg = dict(config.get("stack") or {})
        try:
            stack = MultiResolutionStack(**stack_cfg)
        except TypeError as e:
            raise ValueError(f"bad config 'stack': {e}") from None
        num_classes = config["num_classes"]
        if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 2:
            raise ValueError(f"config 'num_classes' must be an int >= 2, got {num_classes!r}")
        backbone = create_backbone(
            spec["name"], in_channels=stack.out_channels, num_classes=num_classes, **dict(spec.get("kwargs") or {})
        )
        return cls(
            backbone,
            stack,
            config["taps"],
            num_classes,
            aggregator=config.get("aggregator", "crossmax"),
            k=config.get("k", 3),
            head_pool=config.get("head_pool"),
            include_backbone_head=config.get("include_backbone_head", True),
            input_size=config.get("input_size", 32),
            backbone_spec={"name": spec["name"], "kwargs": dict(spec.get("kwargs") or {})},
        )

    @property
    def config(self) -> dict[str, Any]:
        """JSON-able description of the architecture; ``from_config(config)`` rebuilds it."""
        if self.backbone_spec is None:
            raise ValueError(
                "this SelfEnsemble was built from a backbone object; build it with from_config "
                "(or pass backbone_spec) so that it can be described and exported"
            )
        return {
            "format_version": CONFIG_FORMAT_VERSION,
            "num_classes": self.num_classes,
            "input_size": self.input_size,
            "stack": self.stack.config(),
            "backbone": copy.deepcopy(self.backbone_spec),
            "taps": list(self.taps),
            "head_pool": self.head_pool,
            "include_backbone_head": self.include_backbone_head,
            "aggregator": self.aggregator,
            "k": self.k,
        }

    @torch.no_grad()
    def _tap_shapes(self) -> dict[str, tuple[int, int, int]]:
        was_training = self.backbone.training
        self.backbone.eval()
        probe = torch.zeros(1, self.stack.out_channels, self.input_size, self.input_size)
        _, feats = self.backbone.forward_features(probe, self.taps)
        self.backbone.train(was_training)
        shapes = {}
        for tap in self.taps:
            if feats[tap].ndim != 4:
                raise ValueError(f"tap {tap!r} gives shape {tuple(feats[tap].shape)}; heads need [B, C, H, W]")
            shapes[tap] = tuple(feats[tap].shape[1:])
        return shapes

    # ------------------------------------------------------------------------------ randomness
    @property
    def stochastic(self) -> bool:
        return self.stack.stochastic

    @property
    def is_random(self) -> bool:
        """Whether the stochastic stack draws anything (see :attr:`MultiResolutionStack.is_random`)."""
        return self.stack.is_random

    def set_stochastic(self, stochastic: bool) -> SelfEnsemble:
        """Switch inference between the stochastic stack and its deterministic mode."""
        self.stack.stochastic = bool(stochastic)
        return self

    def manual_seed(self, seed: int) -> SelfEnsemble:
        """Reseed the model's own generator (the only source of randomness at inference)."""
        self.stack.manual_seed(seed)
        return self

    # ------------------------------------------------------------------------------ forward
    @property
    def predictor_names(self) -> list[str]:
        return list(self.taps) + ([BACKBONE_PREDICTOR] if self.include_backbone_head else [])

    @property
    def num_predictors(self) -> int:
        return len(self.predictor_names)

    def check_input(self, x: torch.Tensor) -> None:
        """Raise a clear error unless ``x`` is a float image batch ``[B, 3, S, S]`` in [0, 1] (any float dtype)."""
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"expected a torch.Tensor of images, got {type(x).__name__}")
        if not x.is_floating_point():
            raise TypeError(
                f"expected floating-point images in [0, 1], got dtype {x.dtype} "
                "(convert uint8 images with x.float() / 255)"
            )
        s = self.input_size
        if x.ndim != 4 or x.shape[1] != 3 or x.shape[2] != s or x.shape[3] != s:
            raise ValueError(f"expected images of shape [B, 3, {s}, {s}], got {tuple(x.shape)}")
        if x.numel() and not self.check_range:
            if torch.isnan(x.detach()).any():
                raise ValueError("expected images without NaN")
        elif x.numel():
            lo, hi = torch.aminmax(x.detach())
            if not (lo >= -_RANGE_TOLERANCE and hi <= 1 + _RANGE_TOLERANCE):  # written so that NaN fails too
                raise ValueError(
                    f"expected pixel values in [0, 1], got range [{lo.item():.4g}, {hi.item():.4g}] "
                    "(do not normalise inputs: the model does it)"
                )

    def predictor_logits(
        self,
        x: torch.Tensor,
        generator: torch.Generator | None = None,
        *,
        rows: torch.Tensor | None = None,
        micro_batch: int | None = None,
    ) -> torch.Tensor:
        """Every predictor's logits, ``[B, P, C]`` in the order of ``predictor_names``.

        Images of any floating-point dtype are accepted (float64 from NumPy, float16/bfloat16): they are cast to the
        model's own dtype (float32 unless the model was converted). The cast is differentiable, so an attack's
        gradient still reaches ``x`` (in ``x``'s dtype).

        ``rows`` (a ``[B]`` bool mask) classifies only those images, ``[rows.sum(), P, C]``: the stack still draws
        its randomness for the whole batch, so each row gets the very draw it gets in a full call (the outputs
        agree up to float rounding, which can depend on the batch size), for the cost of the backbone on the rows
        alone.

        ``micro_batch`` runs the backbone and heads on at most that many stacked images at a time (the stack still
        draws for the whole batch at once, so the draws are those of one call): on a CPU a pass over thousands of
        images is several times slower per image than small ones (``benchmarks/perf/judging_micro_batch.py``).
        For judging under ``torch.no_grad()``; with gradients every part's graph is kept until the backward pass.
        """
        self.check_input(x)
        dtype = self._parameter_dtype()
        if x.dtype != dtype:
            x = x.to(dtype)
        stacked = self.stack(x, generator=generator)
        if rows is not None:
            if rows.dtype != torch.bool or rows.shape != x.shape[:1]:
                raise ValueError(f"rows must be a bool mask of shape [{len(x)}], got {rows.dtype} {tuple(rows.shape)}")
            stacked = stacked[rows]
        if micro_batch is not None and len(stacked) > micro_batch:
            if micro_batch < 1:
                raise ValueError(f"micro_batch must be an integer >= 1, got {micro_batch}")
            parts = [self._classify_stacked(stacked[i : i + micro_batch]) for i in range(0, len(stacked), micro_batch)]
            return torch.cat(parts)
        return self._classify_stacked(stacked)

    def _classify_stacked(self, stacked: torch.Tensor) -> torch.Tensor:
        """``[N, P, C]``: the backbone and every head on stacked images (the deterministic part of the model)."""
        features, tapped = self.backbone.forward_features(stacked, self.taps)
        logits = [head(tapped[tap]) for tap, head in zip(self.taps, self.heads)]
        if self.include_backbone_head:
            logits.append(self.backbone.forward_head(features))
        return torch.stack(logits, dim=1)

    def _parameter_dtype(self) -> torch.dtype:
        for param in self.parameters():
            if param.is_floating_point():
                return param.dtype
        return torch.get_default_dtype()

    def aggregate(self, logits: torch.Tensor) -> torch.Tensor:
        return self.aggregate_fn(logits, self.k)

    def forward(
        self,
        x: torch.Tensor,
        generator: torch.Generator | None = None,
        *,
        rows: torch.Tensor | None = None,
        micro_batch: int | None = None,
    ) -> torch.Tensor:
        return self.aggregate(self.predictor_logits(x, generator=generator, rows=rows, micro_batch=micro_batch))

    def extra_repr(self) -> str:
        return f"predictors={self.predictor_names}, aggregator={self.aggregator!r}, k={self.k}"

    # ------------------------------------------------------------------------------ huggingface_hub mixin
    def save_pretrained(self, save_directory: str | os.PathLike, *, config: dict | None = None, **kwargs: Any) -> Any:
        """``PyTorchModelHubMixin.save_pretrained``: ``model.safetensors`` (shards + index above 5 GB), the
        ``config.json`` of :attr:`config` and, if the folder has none, huggingface_hub's generic ``README.md``.

        A folder holding an eee-zoo card is refused: its card pins the weights' sha256, so rewrite it with
        ``eee_zoo.hub.export(..., overwrite=True)`` instead.
        """
        if config is not None and config != self.config:
            raise ValueError("SelfEnsemble.save_pretrained writes model.config; pass no other config")
        readme = Path(save_directory) / "README.md"
        if readme.is_file() and _zoo_card(readme) is not None:
            raise ValueError(
                f"{save_directory} holds an eee-zoo checkpoint (its card pins the weights' sha256); "
                "use eee_zoo.hub.export(model, name, folder, overwrite=True) to rewrite it"
            )
        return super().save_pretrained(save_directory, config=self.config, **kwargs)

    def _save_pretrained(self, save_directory: Path) -> None:
        from huggingface_hub import save_torch_state_dict

        from .._io import atomic_write_json
        from ..cards import CONFIG_FILENAME, SHARD_PATTERN

        state = {k: v.detach().to("cpu").contiguous() for k, v in self.state_dict().items()}
        save_torch_state_dict(state, save_directory, filename_pattern=SHARD_PATTERN, safe_serialization=True)
        atomic_write_json(Path(save_directory) / CONFIG_FILENAME, self.config)

    @classmethod
    def from_pretrained(
        cls,
        pretrained_model_name_or_path: str | os.PathLike,
        *,
        cache_dir: str | os.PathLike | None = None,
        local_files_only: bool = False,
        **kwargs: Any,
    ) -> SelfEnsemble:
        """``PyTorchModelHubMixin.from_pretrained`` (see :meth:`_from_pretrained`), honouring ``HF_HUB_OFFLINE`` and
        ``HF_HUB_CACHE`` as set when called (as ``load_model`` does), not only as they were at import."""
        from ..hub.locate import hub_cache_dir, offline

        return super().from_pretrained(
            pretrained_model_name_or_path,
            cache_dir=hub_cache_dir(cache_dir),
            local_files_only=local_files_only or offline(),
            **kwargs,
        )

    @classmethod
    def _from_pretrained(
        cls,
        *,
        model_id: str,
        revision: str | None,
        cache_dir: str | Path | None,
        force_download: bool,
        local_files_only: bool,
        token: str | bool | None,
        config: dict[str, Any] | None = None,
        map_location: str | torch.device = "cpu",
        **model_kwargs: Any,
    ) -> SelfEnsemble:
        """Build ``from_config(config.json)`` and load the weights strictly (safetensors only), in eval mode.

        When the folder or repo is an eee-zoo checkpoint (its ``README.md`` is a zoo card), the weights are the
        card's (single file, or index + shards), each file's sha256 is checked before loading, the card's
        inference mode is applied and ``model.eee_info`` is set, as ``load_model`` does. Otherwise (a
        ``save_pretrained`` folder) ``model.safetensors`` or ``model.safetensors.index.json`` + shards are loaded;
        there is no card to check them against. From the Hub, every file comes from one commit.
        """
        from huggingface_hub import constants, hf_hub_download
        from huggingface_hub.errors import EntryNotFoundError

        from ..cards import INDEX_FILENAME, WEIGHTS_FILENAME
        from ..hub.integrity import read_index, verify_weights
        from ..hub.locate import card_info, download_weights, offline, require_shards, snapshot_commit
        from ..loading import load_weights

        if config is None:
            raise ValueError(
                f"{model_id}: no {constants.CONFIG_NAME}; SelfEnsemble.from_pretrained needs the architecture"
            )
        unknown = sorted(k for k, v in model_kwargs.items() if config.get(k, object()) != v)  # not just config's
        if unknown:
            raise TypeError(f"SelfEnsemble.from_pretrained got unexpected arguments {unknown}")
        model = cls.from_config(config)
        folder = Path(model_id)
        local = folder.is_dir()
        download = dict(cache_dir=cache_dir, force_download=force_download, token=token)
        download["local_files_only"] = local_files_only or offline()
        commit = None  # from the Hub: the commit the first file came from, and every later file too
        if local:
            readme = folder / "README.md"
        else:
            try:
                readme = Path(hf_hub_download(model_id, "README.md", revision=revision, **download))
                commit = snapshot_commit(readme, "README.md")
            except EntryNotFoundError:
                readme = None
        card = _zoo_card(readme) if readme is not None and readme.is_file() else None
        if card is not None:
            if card.architecture != config:
                raise ValueError(f"{model_id}: config.json differs from the architecture in its card {card.card_path}")
            if local:
                path = folder / card.filename
                if not path.is_file():
                    raise FileNotFoundError(
                        f"{folder}: the card names weights {card.filename!r} but there is no {path}"
                    )
                require_shards(card, path, str(folder))
            else:
                path = download_weights(card, commit or revision, **download)
            verify_weights(card, path)  # every file, before a tensor is read
        elif local:
            path = folder / WEIGHTS_FILENAME
            if not path.is_file() and (folder / INDEX_FILENAME).is_file():
                path = folder / INDEX_FILENAME
        else:
            try:
                path = Path(hf_hub_download(model_id, WEIGHTS_FILENAME, revision=commit or revision, **download))
            except EntryNotFoundError:
                path = Path(hf_hub_download(model_id, INDEX_FILENAME, revision=commit or revision, **download))
                at = snapshot_commit(path, INDEX_FILENAME) or commit or revision
                for shard in sorted(set(read_index(path)["weight_map"].values())):
                    hf_hub_download(model_id, shard, revision=at, **download)
        load_weights(model, path)
        model.to(map_location).eval()
        if card is not None:
            model.set_stochastic(card.stochastic_inference)
            source = "local_folder" if local else "hub"
            model.eee_info = card_info(card, weights_path=path, source=source, revision=commit or revision)
        return model


def _zoo_card(readme: Path) -> Any:
    """The eee-zoo card in ``readme``, or None when it is some other model card (huggingface_hub's generic one)."""
    from ..cards import CardError, load_card

    try:
        return load_card(readme)
    except CardError as e:
        if e.field == "eee_zoo":  # no eee_zoo block: not a zoo card; any other problem is a broken zoo card
            return None
        raise
