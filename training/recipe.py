"""Training recipes: one YAML file per zoo checkpoint, parsed into typed dataclasses and validated strictly.

A recipe holds every choice that shapes a checkpoint: dataset, the model (backbone and its arguments,
stack settings, head taps, aggregator and k), and per stage the optimiser, schedule, epochs, batch size,
augmentation and adversarial training, plus the seed. Validation happens before any training: unknown
keys, wrong types and impossible values raise :class:`RecipeError` naming the key
(``backbone_stage.optimizer.lr``), and the model is built once to check the architecture.

Numbers: floats may be written as YAML numbers, as ``5e-4`` (which YAML 1.1 reads as a string) or as a
fraction ``8/255``. Fields without a default must be present; the run directory keeps the fully resolved
recipe (``recipe.resolved.json``) beside the file itself, so a change of defaults is visible.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union

import yaml

from eee_zoo.datasets import NUM_CLASSES, SPLIT_SIZES, THREAT_MODELS

__all__ = [
    "AdversarialSpec", "AugmentSpec", "BackboneSpec", "DataSpec", "EvaluationSpec", "ExportSpec", "ModelSpec",
    "OptimizerSpec", "Recipe", "RecipeError", "RuntimeSpec", "ScheduleSpec", "StackSpec", "StageSpec", "load_recipe",
    "parse_recipe",
]  # fmt: skip

TRAIN_SIZE = {name: sizes["train"] for name, sizes in SPLIT_SIZES.items()}
TEST_SIZE = {name: sizes["test"] for name, sizes in SPLIT_SIZES.items()}
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_FRACTION_RE = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*/\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*$")


class RecipeError(ValueError):
    """A recipe is malformed; the message names the file and the key."""


# ----------------------------------------------------------------------------------------------- schema
@dataclass
class DataSpec:
    """Which images to train and evaluate on (the first ``n`` of each split, canonical order)."""

    data_dir: str | None = None  # else --data-dir, else $EEE_ZOO_DATA (see eee_zoo.data)
    n_train: int | None = None  # None: the whole training split
    n_test: int | None = None  # None: the whole test set (the final accuracy is measured on it)


@dataclass
class StackSpec:
    """``eee_zoo.models.MultiResolutionStack`` arguments (the model's stack; ``seed`` seeds its inference RNG)."""

    resolutions: list[int] = field(default_factory=lambda: [32, 16, 8, 4])
    jitter: int = 3
    down_noise: float = 0.2
    up_noise: float = 0.2
    contrast_range: list[float] = field(default_factory=lambda: [0.7, 1.5])
    color_range: list[float] = field(default_factory=lambda: [0.5, 1.0])
    variant: Literal["code", "paper"] = "code"
    stochastic: bool = True  # the inference mode of the exported model (the final accuracy uses it)
    seed: int = 0


@dataclass
class BackboneSpec:
    name: str
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass
class ModelSpec:
    """The self-ensemble (``SelfEnsemble.from_config`` keys; ``num_classes`` follows the dataset)."""

    backbone: BackboneSpec
    taps: list[str]
    stack: StackSpec = field(default_factory=StackSpec)
    head_pool: int | None = 4
    include_backbone_head: bool = True
    aggregator: Literal["crossmax", "mean"] = "crossmax"
    k: int = 3


@dataclass
class OptimizerSpec:
    """SGD (momentum, Nesterov) or AdamW; weight decay applies to conv/linear weights, not to norms or biases."""

    lr: float
    name: Literal["sgd", "adamw"] = "sgd"
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])


@dataclass
class ScheduleSpec:
    """Learning-rate factor over a stage's steps: linear warm-up from 0, then constant / linear / cosine decay."""

    name: Literal["constant", "linear", "cosine"] = "linear"
    warmup: float = 0.2  # fraction of the stage's steps
    final_lr: float = 0.0  # fraction of the peak lr reached at the last step


@dataclass
class AugmentSpec:
    """Per-batch augmentation on the device, before the multi-resolution stack."""

    crop_padding: int = 2  # random translation by up to this many pixels (reflect padding); 0: off
    flip: bool = True  # random horizontal flip
    gaussian_noise: float = 0.0  # std of N(0, sigma^2) added per pixel, unclamped (randomized smoothing); 0: off


@dataclass
class AdversarialSpec:
    """Optional adversarial training against the stochastic model (Linf): ``fgsm`` (random start) or ``pgd``."""

    method: Literal["none", "fgsm", "pgd"] = "none"
    eps: float = 8 / 255
    steps: int = 10  # PGD steps (FGSM takes one)
    step_size: float | None = None  # None: 1.25 eps for FGSM (Wong et al. 2020), 2.5 eps / steps for PGD
    random_start: bool = True


@dataclass
class StageSpec:
    """One training stage: the backbone on the stack, or the heads on the frozen backbone."""

    epochs: int
    batch_size: int  # global batch (split evenly over DDP ranks); the last partial batch of an epoch is dropped
    optimizer: OptimizerSpec
    schedule: ScheduleSpec = field(default_factory=ScheduleSpec)
    label_smoothing: float = 0.0
    augment: AugmentSpec = field(default_factory=AugmentSpec)
    adversarial: AdversarialSpec = field(default_factory=AdversarialSpec)


@dataclass
class EvaluationSpec:
    batch_size: int = 500
    monitor_examples: int = 0  # first n test images scored after every epoch (log only); 0: off
    also_deterministic: bool = True  # also report the deterministic-stack accuracy of a stochastic model


@dataclass
class RuntimeSpec:
    amp: bool = True  # bfloat16 autocast for training steps, CUDA only (never for evaluation)
    channels_last: bool = True  # NHWC memory layout for training steps, on every device
    checkpoint_every_s: float = 300.0  # besides every epoch end


@dataclass
class ExportSpec:
    """How the exported weights are stored (the model is evaluated as stored: see ``training.train``)."""

    storage_dtype: Literal["float32", "bfloat16"] = "float32"  # bfloat16 halves the files of large backbones
    max_shard_size: int | None = None  # bytes per safetensors shard (Hugging Face index); None: one file


@dataclass
class Recipe:
    """A whole training recipe (see ``training/recipes/*.yaml``)."""

    name: str  # the checkpoint's zoo name (export folder and card)
    dataset: str  # a key of eee_zoo.datasets.NUM_CLASSES (checked with the values)
    seed: int
    model: ModelSpec
    backbone_stage: StageSpec
    heads_stage: StageSpec
    threat_model: str = "Linf"  # one of eee_zoo.datasets.THREAT_MODELS (checked with the values)
    description: str | None = None
    data: DataSpec = field(default_factory=DataSpec)
    evaluation: EvaluationSpec = field(default_factory=EvaluationSpec)
    runtime: RuntimeSpec = field(default_factory=RuntimeSpec)
    export: ExportSpec = field(default_factory=ExportSpec)

    @property
    def num_classes(self) -> int:
        return NUM_CLASSES[self.dataset]

    def model_config(self) -> dict[str, Any]:
        """The ``SelfEnsemble.from_config`` dict of this recipe's model."""
        m = self.model
        return {
            "num_classes": self.num_classes,
            "backbone": {"name": m.backbone.name, "kwargs": dict(m.backbone.kwargs)},
            "stack": dataclasses.asdict(m.stack),
            "taps": list(m.taps),
            "head_pool": m.head_pool,
            "include_backbone_head": m.include_backbone_head,
            "aggregator": m.aggregator,
            "k": m.k,
        }

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# ----------------------------------------------------------------------------------------------- loading
class _StrictLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses duplicate keys (PyYAML silently keeps the last one)."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    keys = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in keys:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
        keys.add(key)
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_recipe(path: str | Path) -> Recipe:
    """Read and validate a recipe file; raises :class:`RecipeError` (or ``FileNotFoundError``)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"recipe {path} not found")
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_StrictLoader)  # a SafeLoader subclass
    except yaml.YAMLError as e:
        raise RecipeError(f"{path}: not valid YAML: {e}") from None
    return parse_recipe(data, source=str(path))


def parse_recipe(data: Any, source: str = "<recipe>") -> Recipe:
    """Build a :class:`Recipe` from a parsed YAML mapping, checking keys, types and values."""
    if not isinstance(data, dict):
        raise RecipeError(f"{source}: a recipe must be a mapping of keys, got {type(data).__name__}")
    recipe = _build(Recipe, data, "", source)
    _check_values(recipe, source)
    return recipe


def _build(cls: type, data: Any, path: str, source: str) -> Any:
    where = path or "<top level>"
    if not isinstance(data, dict):
        raise RecipeError(f"{source}: key '{where}': expected a mapping, got {_show(data)}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key in data:
        if key not in fields:
            close = difflib.get_close_matches(str(key), list(fields), n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            raise RecipeError(f"{source}: unknown key '{_join(path, key)}'{hint} (allowed here: {', '.join(fields)})")
    values = {}
    for name, f in fields.items():
        key = _join(path, name)
        if name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise RecipeError(f"{source}: missing required key '{key}'")
            continue
        values[name] = _coerce(hints[name], data[name], key, source)
    return cls(**values)


def _coerce(tp: Any, value: Any, key: str, source: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(inner[0], value, key, source)
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, key, source)
    if origin is Literal:
        if value not in args:
            raise RecipeError(f"{source}: key '{key}': {_show(value)} is not one of {', '.join(map(repr, args))}")
        return value
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise RecipeError(f"{source}: key '{key}': expected a list, got {_show(value)}")
        return [_coerce(args[0], v, f"{key}[{i}]", source) for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            raise RecipeError(f"{source}: key '{key}': expected a mapping with string keys, got {_show(value)}")
        return dict(value)
    if tp is Any:
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise RecipeError(f"{source}: key '{key}': expected true or false, got {_show(value)}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise RecipeError(f"{source}: key '{key}': expected an integer, got {_show(value)}")
        return value
    if tp is float:
        number = _as_float(value)
        if number is None:
            raise RecipeError(f"{source}: key '{key}': expected a number (e.g. 0.1, 5e-4 or 8/255), got {_show(value)}")
        if number != number or number in (float("inf"), float("-inf")):
            raise RecipeError(f"{source}: key '{key}': expected a finite number, got {_show(value)}")
        return number
    if tp is str:
        if not isinstance(value, str):
            raise RecipeError(f"{source}: key '{key}': expected a string, got {_show(value)}")
        return value
    raise TypeError(f"recipe schema: unsupported type {tp!r} for '{key}'")  # a bug in the schema, not the recipe


def _as_float(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        m = _FRACTION_RE.match(value)
        if m:
            den = float(m.group(2))
            return float(m.group(1)) / den if den else None
        try:
            return float(value.strip())
        except ValueError:
            return None
    return None


def _join(path: str, key: Any) -> str:
    return f"{path}.{key}" if path else str(key)


def _show(value: Any) -> str:
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{text} ({type(value).__name__})"


# ----------------------------------------------------------------------------------------------- values
def _check_values(r: Recipe, source: str) -> None:
    def fail(key: str, problem: str) -> None:
        raise RecipeError(f"{source}: key '{key}': {problem}")

    for key, value, allowed in (("dataset", r.dataset, NUM_CLASSES), ("threat_model", r.threat_model, THREAT_MODELS)):
        if value not in allowed:
            fail(key, f"{_show(value)} is not one of {', '.join(map(repr, allowed))}")
    if not _NAME_RE.match(r.name):
        fail("name", f"{r.name!r} must start with a letter or digit and hold only letters, digits, '_', '.', '-'")
    if r.seed < 0:
        fail("seed", f"must be >= 0, got {r.seed}")
    if r.data.n_train is not None and not 1 <= r.data.n_train <= TRAIN_SIZE[r.dataset]:
        fail("data.n_train", f"must be between 1 and {TRAIN_SIZE[r.dataset]} (or null), got {r.data.n_train}")
    if r.data.n_test is not None and not 1 <= r.data.n_test <= TEST_SIZE[r.dataset]:
        fail("data.n_test", f"must be between 1 and {TEST_SIZE[r.dataset]} (or null), got {r.data.n_test}")
    n_train = r.data.n_train or TRAIN_SIZE[r.dataset]

    s = r.model.stack
    if not s.resolutions or any(res < 1 for res in s.resolutions):
        fail("model.stack.resolutions", f"must be a non-empty list of positive sizes, got {s.resolutions}")
    if s.jitter < 0:
        fail("model.stack.jitter", f"must be >= 0, got {s.jitter}")
    for name in ("down_noise", "up_noise"):
        if getattr(s, name) < 0:
            fail(f"model.stack.{name}", f"must be >= 0, got {getattr(s, name)}")
    for name in ("contrast_range", "color_range"):
        lo_hi = getattr(s, name)
        if len(lo_hi) != 2 or not 0 <= lo_hi[0] <= lo_hi[1]:
            fail(f"model.stack.{name}", f"must be [low, high] with 0 <= low <= high, got {lo_hi}")
    if r.model.head_pool is not None and r.model.head_pool < 1:
        fail("model.head_pool", f"must be >= 1 or null, got {r.model.head_pool}")
    n_predictors = len(r.model.taps) + int(r.model.include_backbone_head)
    if n_predictors == 0:
        fail("model.taps", "the model needs at least one predictor (a tap or include_backbone_head: true)")
    if len(set(r.model.taps)) != len(r.model.taps):
        fail("model.taps", f"taps must be distinct, got {r.model.taps}")
    if r.model.aggregator == "crossmax" and not 1 <= r.model.k <= n_predictors:
        fail("model.k", f"must be between 1 and the number of predictors ({n_predictors}), got {r.model.k}")

    for stage in ("backbone_stage", "heads_stage"):
        st: StageSpec = getattr(r, stage)
        if st.epochs < 1:
            fail(f"{stage}.epochs", f"must be >= 1, got {st.epochs}")
        if not 1 <= st.batch_size <= n_train:
            fail(f"{stage}.batch_size", f"must be between 1 and the {n_train} training images, got {st.batch_size}")
        o = st.optimizer
        if o.lr <= 0:
            fail(f"{stage}.optimizer.lr", f"must be > 0, got {o.lr}")
        if not 0 <= o.momentum < 1:
            fail(f"{stage}.optimizer.momentum", f"must be in [0, 1), got {o.momentum}")
        if o.weight_decay < 0:
            fail(f"{stage}.optimizer.weight_decay", f"must be >= 0, got {o.weight_decay}")
        if o.name == "sgd" and o.nesterov and o.momentum == 0:
            fail(f"{stage}.optimizer.nesterov", "Nesterov momentum needs momentum > 0")
        if len(o.betas) != 2 or not all(0 <= b < 1 for b in o.betas):
            fail(f"{stage}.optimizer.betas", f"must be two numbers in [0, 1), got {o.betas}")
        if not 0 <= st.schedule.warmup <= 1:
            fail(f"{stage}.schedule.warmup", f"must be a fraction in [0, 1], got {st.schedule.warmup}")
        if not 0 <= st.schedule.final_lr <= 1:
            fail(f"{stage}.schedule.final_lr", f"must be a fraction of the peak in [0, 1], got {st.schedule.final_lr}")
        if not 0 <= st.label_smoothing < 1:
            fail(f"{stage}.label_smoothing", f"must be in [0, 1), got {st.label_smoothing}")
        if not 0 <= st.augment.crop_padding <= 16:
            fail(f"{stage}.augment.crop_padding", f"must be between 0 and 16 pixels, got {st.augment.crop_padding}")
        if not 0 <= st.augment.gaussian_noise <= 4:
            fail(f"{stage}.augment.gaussian_noise", f"must be a std between 0 and 4, got {st.augment.gaussian_noise}")
        a = st.adversarial
        if a.method != "none":
            if r.threat_model != "Linf":
                fail(
                    f"{stage}.adversarial.method",
                    f"adversarial training is Linf only, not {r.threat_model}",
                )
            if not 0 < a.eps <= 1:
                fail(f"{stage}.adversarial.eps", f"must be in (0, 1] (pixel scale [0, 1]), got {a.eps}")
            if a.steps < 1:
                fail(f"{stage}.adversarial.steps", f"must be >= 1, got {a.steps}")
            if a.step_size is not None and a.step_size <= 0:
                fail(f"{stage}.adversarial.step_size", f"must be > 0 or null, got {a.step_size}")

    if r.evaluation.batch_size < 1:
        fail("evaluation.batch_size", f"must be >= 1, got {r.evaluation.batch_size}")
    if r.evaluation.monitor_examples < 0:
        fail("evaluation.monitor_examples", f"must be >= 0, got {r.evaluation.monitor_examples}")
    if r.evaluation.monitor_examples > (r.data.n_test or TEST_SIZE[r.dataset]):
        fail("evaluation.monitor_examples", "must not exceed the number of test images (data.n_test)")
    if r.runtime.checkpoint_every_s <= 0:
        fail("runtime.checkpoint_every_s", f"must be > 0 seconds, got {r.runtime.checkpoint_every_s}")
    if r.export.max_shard_size is not None and r.export.max_shard_size < 1:
        fail("export.max_shard_size", f"must be a positive number of bytes or null, got {r.export.max_shard_size}")

    # Build the architecture once (on the CPU, no training) so that backbone names/arguments and taps fail now.
    import torch

    from eee_zoo.models import SelfEnsemble, list_backbones

    if r.model.backbone.name not in list_backbones():
        fail("model.backbone.name", f"unknown backbone {r.model.backbone.name!r}; registered: {list_backbones()}")
    try:
        with torch.random.fork_rng(devices=[]):  # weight init draws from the global RNG: leave it untouched
            SelfEnsemble.from_config(r.model_config())
    except (ValueError, TypeError) as e:
        key = "model.taps" if "tap" in str(e) else "model.backbone.kwargs" if "backbone" in str(e) else "model"
        fail(key, str(e))
