"""Backbones (parametrised over the registry) and the SelfEnsemble built from them."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch
import torch.nn as nn

import eee_zoo
from eee_zoo.models import SelfEnsemble, TappedBackbone, create_backbone, crossmax, list_backbones, register_backbone
from eee_zoo.models.backbones import IMAGENET_MEAN, IMAGENET_STD

# ======================================================================================== backbones
# Small constructor arguments for the backbones that take them; every other registered backbone is built
# with its defaults, so a newly registered backbone is tested without new test code.
SMALL_KWARGS = {
    "airbench": {"widths": (8, 16, 16), "stem_width": 8},
    "resnet18": {"width": 8},
    "resnet34": {"width": 8},
    "resnet50": {"width": 8},
    "wide_resnet": {"depths": (1, 2, 1), "widths": (8, 16, 12), "stem_width": 8},
}
HEAVY = {"wrn_28_10", "wrn_34_10", "wrn_34_r", "imagenet_resnet152"}  # forward with batch 1 only


def _params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_registry_lists_the_contract_backbones() -> None:
    expected = {"airbench", "resnet18", "resnet34", "resnet50", "wide_resnet", "wrn_16_4"} | HEAVY
    assert expected <= set(list_backbones())
    assert list_backbones() == sorted(list_backbones())


@pytest.mark.parametrize("name", list_backbones())
def test_every_backbone_gives_logits_and_taps(name: str) -> None:
    torch.manual_seed(0)
    backbone = create_backbone(name, in_channels=12, num_classes=7, **SMALL_KWARGS.get(name, {})).eval()
    assert isinstance(backbone, TappedBackbone)
    assert backbone.num_classes == 7
    names = backbone.tap_names
    assert names[0] == "stem" and len(set(names)) == len(names) == len(backbone.blocks)
    batch = 1 if name in HEAVY else 2
    x = torch.rand(batch, 12, 32, 32)
    with torch.no_grad():
        logits = backbone(x)
        final, taps = backbone.forward_features(x, names)
        assert torch.equal(backbone.forward_head(final), logits)
    assert logits.shape == (batch, 7) and torch.isfinite(logits).all()
    assert list(taps) == list(names)  # in block order
    assert torch.equal(taps[names[-1]], final)
    for tensor in taps.values():
        assert tensor.ndim == 4 and tensor.shape[0] == batch
    with pytest.raises(ValueError, match=r"unknown taps \['nope'\]"):
        backbone.forward_features(x, ["stem", "nope"])


@pytest.mark.parametrize(
    "name,in_channels,params",
    [  # the well-known CIFAR-10 parameter counts of these architectures (3 input channels, 10 classes)
        ("wrn_28_10", 3, 36_479_194),
        ("wrn_34_10", 3, 46_160_474),
        ("wrn_34_r", 3, 68_116_698),  # Huang et al. 2021 report 68.1M for WRN-34-R
        ("wrn_16_4", 3, 2_748_890),
        ("resnet18", 3, 11_173_962),
        ("resnet34", 3, 21_282_122),
        ("resnet50", 3, 23_520_842),
        # torchvision's 60,192,808 minus its 1000-way fc plus a 10-way one; 12-channel conv1 adds 9 * 64 * 49
        ("imagenet_resnet152", 12, 60_192_808 - 2048 * 1000 - 1000 + 2048 * 10 + 10 + 9 * 64 * 49),
    ],
)
def test_parameter_counts(name: str, in_channels: int, params: int) -> None:
    assert _params(create_backbone(name, in_channels=in_channels, num_classes=10)) == params


def _wrn_taps(depths: tuple[int, ...]) -> list[str]:
    return ["stem"] + [f"stage{s + 1}.{i}" for s, d in enumerate(depths) for i in range(d)]


@pytest.mark.parametrize(
    "name,depths,widths",
    [
        ("wrn_16_4", (2, 2, 2), (64, 128, 256)),
        ("wrn_28_10", (4, 4, 4), (160, 320, 640)),
        ("wrn_34_10", (5, 5, 5), (160, 320, 640)),
        ("wrn_34_r", (5, 5, 5), (320, 640, 512)),  # RobustWRN: last stage reduced to 512 channels
    ],
)
def test_wrn_stage_depths_and_widths(name: str, depths: tuple[int, ...], widths: tuple[int, ...]) -> None:
    backbone = create_backbone(name, in_channels=12, num_classes=10)
    assert list(backbone.tap_names) == _wrn_taps(depths)
    for stage, (depth, width) in enumerate(zip(depths, widths)):
        for i in range(depth):
            block = backbone.blocks[f"stage{stage + 1}_{i}"]
            assert block.conv1.out_channels == block.conv2.out_channels == width
            assert block.conv1.stride == ((2, 2) if stage > 0 and i == 0 else (1, 1))
    assert backbone.blocks["stem"].in_channels == 12
    assert backbone.head[-1].in_features == widths[-1]


def test_wide_resnet_custom_stages_shapes() -> None:
    backbone = create_backbone("wide_resnet", in_channels=12, num_classes=10, **SMALL_KWARGS["wide_resnet"]).eval()
    with torch.no_grad():
        _, taps = backbone.forward_features(torch.rand(2, 12, 32, 32), backbone.tap_names)
    shapes = {name: tuple(t.shape[1:]) for name, t in taps.items()}
    assert shapes == {
        "stem": (8, 32, 32),
        "stage1.0": (8, 32, 32),
        "stage2.0": (16, 16, 16),
        "stage2.1": (16, 16, 16),
        "stage3.0": (12, 8, 8),
    }


def test_cifar_resnet_widths_and_taps() -> None:
    backbone = create_backbone("resnet18", in_channels=12, num_classes=10, width=8).eval()
    assert list(backbone.tap_names) == ["stem"] + [f"layer{s}.{i}" for s in range(1, 5) for i in range(2)]
    with torch.no_grad():
        _, taps = backbone.forward_features(torch.rand(1, 12, 32, 32), ["layer1.1", "layer4.1"])
    assert taps["layer1.1"].shape == (1, 8, 32, 32) and taps["layer4.1"].shape == (1, 64, 4, 4)
    r50 = create_backbone("resnet50", in_channels=12, num_classes=10, width=8)
    assert r50.head[-1].in_features == 8 * 8 * 4  # bottleneck expansion


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"depths": (1, 1), "widths": (8, 8, 8)}, "must be non-empty and equally long"),
        ({"depths": (), "widths": ()}, "must be non-empty"),
        ({"depths": (1, 0, 1), "widths": (8, 8, 8)}, "depth >= 1 and width >= 1"),
        ({"depths": (1, 1, 1), "widths": (8, 0, 8)}, "depth >= 1 and width >= 1"),
        ({"depth": 28}, r"bad arguments for backbone 'wide_resnet'.*depth"),
    ],
)
def test_wide_resnet_bad_arguments(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        create_backbone("wide_resnet", in_channels=12, num_classes=10, **kwargs)


def test_bad_backbone_arguments() -> None:
    with pytest.raises(ValueError, match=r"bad arguments for backbone 'wrn_28_10'.*widen"):
        create_backbone("wrn_28_10", in_channels=12, num_classes=10, widen=4)
    with pytest.raises(ValueError, match="must be positive"):
        create_backbone("airbench", in_channels=12, num_classes=10, widths=(8, 0))
    with pytest.raises(ValueError, match="multiple of 3 input channels, got 4"):
        create_backbone("imagenet_resnet152", in_channels=4, num_classes=10)


def test_unknown_backbone_lists_the_registered_names() -> None:
    with pytest.raises(ValueError, match="unknown backbone 'resnet9'") as info:
        create_backbone("resnet9", in_channels=12, num_classes=10)
    for name in list_backbones():
        assert name in str(info.value)


def test_register_twice_is_an_error() -> None:
    def airbench(**kwargs):  # same name as a registered backbone
        raise AssertionError("never called")

    with pytest.raises(ValueError, match="'airbench' registered twice"):
        register_backbone(airbench)


def test_imagenet_input_upsamples_and_normalises_each_group() -> None:
    backbone = create_backbone("imagenet_resnet152", in_channels=6, num_classes=10)
    prep = backbone.blocks["stem"][0]
    x = torch.tensor(IMAGENET_MEAN * 2).view(1, 6, 1, 1).expand(2, 6, 32, 32)
    out = prep(x)
    assert out.shape == (2, 6, 224, 224)
    torch.testing.assert_close(out, torch.zeros_like(out), rtol=0, atol=1e-5)  # the mean maps to 0
    one = prep(torch.ones(1, 6, 224, 224))  # already at size: only normalised
    expected = ((1 - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD)).repeat(2)
    torch.testing.assert_close(one[0, :, 0, 0], expected)


# ======================================================================================== SelfEnsemble
def _x(n: int = 3, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 3, 32, 32, generator=torch.Generator().manual_seed(seed))


def _build(config: dict) -> SelfEnsemble:
    torch.manual_seed(0)
    return SelfEnsemble.from_config(config).eval()


def test_forward_and_predictor_logits_shapes(tiny_model: SelfEnsemble) -> None:
    x = _x()
    assert tiny_model(x).shape == (3, 10)
    assert tiny_model.predictor_logits(x).shape == (3, 4, 10)
    assert tiny_model.predictor_names == ["stem", "block1", "block2", "backbone"]
    assert tiny_model.num_predictors == 4
    assert tiny_model.stack(x).shape == (3, 12, 32, 32)
    assert len(tiny_model.heads) == len(tiny_model.taps) == 3
    assert tiny_model.eee_info == {}
    assert eee_zoo.SelfEnsemble is SelfEnsemble


def test_aggregate_is_crossmax_of_predictor_logits(tiny_model: SelfEnsemble) -> None:
    x = _x()
    out = tiny_model(x, generator=torch.Generator().manual_seed(5))
    logits = tiny_model.predictor_logits(x, generator=torch.Generator().manual_seed(5))
    assert torch.equal(out, crossmax(logits, k=3))
    # the same through the model's own generator
    tiny_model.manual_seed(9)
    out = tiny_model(x)
    tiny_model.manual_seed(9)
    assert torch.equal(out, crossmax(tiny_model.predictor_logits(x), k=3))


def test_predictor_logits_are_the_heads_on_the_taps(tiny_model: SelfEnsemble) -> None:
    x = _x()
    gen_seed = 3
    logits = tiny_model.predictor_logits(x, generator=torch.Generator().manual_seed(gen_seed))
    with torch.no_grad():
        stacked = tiny_model.stack(x, generator=torch.Generator().manual_seed(gen_seed))
        final, taps = tiny_model.backbone.forward_features(stacked, tiny_model.taps)
        for p, (tap, head) in enumerate(zip(tiny_model.taps, tiny_model.heads)):
            torch.testing.assert_close(logits[:, p], head(taps[tap]))
        torch.testing.assert_close(logits[:, -1], tiny_model.backbone.forward_head(final))
        torch.testing.assert_close(logits[:, -1], tiny_model.backbone(stacked))


def test_config_round_trip_gives_identical_logits(tiny_model: SelfEnsemble) -> None:
    config = tiny_model.config
    assert json.loads(json.dumps(config)) == config  # JSON-able, nothing lost
    assert set(config) == {
        "format_version", "num_classes", "input_size", "stack", "backbone", "taps", "head_pool",
        "include_backbone_head", "aggregator", "k",
    }  # fmt: skip
    torch.manual_seed(123)  # different init: the weights must come from the state dict
    again = SelfEnsemble.from_config(json.loads(json.dumps(config))).eval()
    assert again.config == config
    again.load_state_dict(tiny_model.state_dict(), strict=True)
    x = _x()
    tiny_model.manual_seed(4)
    again.manual_seed(4)
    assert torch.equal(tiny_model(x), again(x))
    assert torch.equal(tiny_model.predictor_logits(x), again.predictor_logits(x))


def test_config_records_stack_settings(tiny_config: dict) -> None:
    tiny_config["stack"] = {"resolutions": [32, 8], "variant": "paper", "stochastic": False, "seed": 3}
    model = _build(tiny_config)
    assert model.stack.out_channels == 6 and not model.stochastic
    stack = model.config["stack"]
    assert stack["resolutions"] == [32, 8] and stack["variant"] == "paper" and stack["seed"] == 3
    assert model.backbone.blocks["stem"][0].in_channels == 6


class _NotATensor:
    shape = (2, 3, 32, 32)


@pytest.mark.parametrize(
    "x,error,match",
    [
        (torch.rand(3, 32, 32), ValueError, r"\[B, 3, 32, 32\], got \(3, 32, 32\)"),
        (torch.rand(2, 1, 32, 32), ValueError, r"got \(2, 1, 32, 32\)"),
        (torch.rand(2, 12, 32, 32), ValueError, r"got \(2, 12, 32, 32\)"),
        (torch.rand(2, 3, 28, 28), ValueError, r"\[B, 3, 32, 32\], got \(2, 3, 28, 28\)"),
        (torch.rand(2, 3, 32, 16), ValueError, r"got \(2, 3, 32, 16\)"),
        (torch.zeros(2, 3, 32, 32, dtype=torch.uint8), TypeError, r"torch.uint8.*x.float\(\) / 255"),
        (torch.zeros(2, 3, 32, 32, dtype=torch.int64), TypeError, "floating-point"),
        (torch.rand(2, 3, 32, 32) * 255, ValueError, r"pixel values in \[0, 1\]"),
        (torch.rand(2, 3, 32, 32) + 0.01, ValueError, r"pixel values in \[0, 1\]"),
        (torch.rand(2, 3, 32, 32) - 0.5, ValueError, r"pixel values in \[0, 1\], got range \[-"),
        (torch.full((2, 3, 32, 32), float("nan")), ValueError, r"pixel values in \[0, 1\].*nan"),
        (np.zeros((2, 3, 32, 32), dtype=np.float32), TypeError, "torch.Tensor of images, got ndarray"),
        (_NotATensor(), TypeError, "got _NotATensor"),
    ],
)
def test_input_validation(tiny_model: SelfEnsemble, x: object, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        tiny_model(x)
    with pytest.raises(error, match=match):
        tiny_model.predictor_logits(x)


def test_single_nan_pixel_is_refused(tiny_model: SelfEnsemble) -> None:
    x = _x()
    x[1, 2, 3, 4] = float("nan")
    with pytest.raises(ValueError, match="pixel values"):
        tiny_model(x)


def test_input_range_tolerance(tiny_model: SelfEnsemble) -> None:
    x = _x()
    x[0, 0, 0, 0], x[0, 0, 0, 1] = 1 + 1e-6, -1e-6  # float rounding of an attack's clamp: accepted
    assert tiny_model(x).shape == (3, 10)
    assert tiny_model(x.double().clamp(0, 1).float()).shape == (3, 10)


def test_float64_model(tiny_model: SelfEnsemble) -> None:
    model = tiny_model.double()
    assert model(_x().double()).dtype == torch.float64


def test_head_pool_bounds_head_size(tiny_config: dict) -> None:
    pooled = _build(tiny_config)  # head_pool 4
    tiny_config["head_pool"] = None
    flat = _build(tiny_config)
    # airbench 8/16/16: stem [8, 32, 32], block1 [8, 16, 16], block2 [16, 8, 8]
    assert [h.linear.in_features for h in pooled.heads] == [8 * 4 * 4, 8 * 4 * 4, 16 * 4 * 4]
    assert [h.linear.in_features for h in flat.heads] == [8 * 32 * 32, 8 * 16 * 16, 16 * 8 * 8]
    assert [h.norm.num_features for h in flat.heads] == [8 * 32 * 32, 8 * 16 * 16, 16 * 8 * 8]
    assert _params(flat) > _params(pooled)
    assert flat(_x()).shape == (3, 10) and flat.config["head_pool"] is None
    tiny_config["head_pool"] = 16  # larger than the late taps: those are not up-sampled
    assert [h.linear.in_features for h in _build(tiny_config).heads] == [8 * 16 * 16, 8 * 16 * 16, 16 * 8 * 8]


def test_without_backbone_head(tiny_config: dict) -> None:
    tiny_config["include_backbone_head"] = False
    model = _build(tiny_config)
    assert model.predictor_names == ["stem", "block1", "block2"]
    logits = model.predictor_logits(_x(), generator=torch.Generator().manual_seed(0))
    assert logits.shape == (3, 3, 10)
    assert torch.equal(model(_x(), generator=torch.Generator().manual_seed(0)), crossmax(logits, k=3))
    assert model.config["include_backbone_head"] is False


@pytest.mark.parametrize(
    "changes,match",
    [
        ({"k": 5}, r"k=5 must be between 1 and the number of predictors \(4\)"),
        ({"k": 0}, "k=0 must be between 1"),
        ({"include_backbone_head": False, "k": 4}, r"number of predictors \(3\)"),
        ({"taps": [], "include_backbone_head": False}, "at least one predictor"),
        ({"taps": ["stem", "block9"]}, r"unknown taps \['block9'\]"),
        ({"taps": ["stem", "stem"]}, "taps must be distinct"),
        ({"head_pool": 0}, "head_pool must be None or >= 1"),
        ({"aggregator": "median"}, "unknown aggregator 'median'"),
        ({"num_classes": 1}, "'num_classes' must be an int >= 2"),
        ({"num_classes": True}, "'num_classes' must be an int >= 2"),
        ({"format_version": 2}, "format_version 2 is not supported"),
        ({"backbone": {"name": "nonet"}}, "unknown backbone 'nonet'"),
        ({"backbone": {"name": "airbench", "kwargs": {"depth": 3}}}, "bad arguments for backbone 'airbench'"),
        ({"backbone": {"name": "airbench", "extra": 1}}, "config 'backbone' must be"),
        ({"backbone": "airbench"}, "config 'backbone' must be"),
        ({"stack": {"resolution": [32]}}, r"bad config 'stack'.*resolution"),
        ({"stack": {"variant": "fancy"}}, "unknown variant 'fancy'"),
        ({"depth": 3, "widen": 2}, r"unknown config keys \['depth', 'widen'\]"),
    ],
)
def test_bad_config(tiny_config: dict, changes: dict, match: str) -> None:
    tiny_config.update(changes)
    with pytest.raises(ValueError, match=match):
        SelfEnsemble.from_config(tiny_config)


@pytest.mark.parametrize("key", ["num_classes", "backbone", "taps"])
def test_missing_config_key(tiny_config: dict, key: str) -> None:
    del tiny_config[key]
    with pytest.raises(ValueError, match=rf"config is missing \['{key}'\]"):
        SelfEnsemble.from_config(tiny_config)


def test_config_must_be_a_dict() -> None:
    with pytest.raises(ValueError, match="config must be a dict, got list"):
        SelfEnsemble.from_config([("num_classes", 10)])  # type: ignore[arg-type]


def test_k_larger_than_predictors_at_aggregation(tiny_model: SelfEnsemble) -> None:
    with pytest.raises(ValueError, match="exceeds the number of predictors"):
        crossmax(tiny_model.predictor_logits(_x()), k=5)


def test_mean_aggregator(tiny_config: dict) -> None:
    tiny_config["aggregator"] = "mean"
    model = _build(tiny_config)
    x = _x()
    out = model(x, generator=torch.Generator().manual_seed(1))
    logits = model.predictor_logits(x, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(out, logits.mean(dim=1))
    assert model.config["aggregator"] == "mean"


def test_deterministic_mode(tiny_model: SelfEnsemble) -> None:
    x = _x(5)
    assert tiny_model.stochastic
    assert tiny_model.set_stochastic(False) is tiny_model
    assert not tiny_model.stochastic and tiny_model.config["stack"]["stochastic"] is False
    first = tiny_model(x)
    assert torch.equal(first, tiny_model(x))  # no randomness across calls
    tiny_model.manual_seed(77)
    assert torch.equal(first, tiny_model(x))  # and no dependence on the seed
    for i in range(5):  # nor on the batch composition (eval-mode BatchNorm, deterministic stack)
        torch.testing.assert_close(tiny_model(x[i : i + 1]), first[i : i + 1], rtol=0, atol=1e-5)
    torch.testing.assert_close(tiny_model(x.flip(0)), first.flip(0), rtol=0, atol=1e-5)
    tiny_model.set_stochastic(True)
    assert tiny_model.stochastic
    assert not torch.allclose(tiny_model(x), tiny_model(x))


def test_manual_seed_reproducibility(tiny_model: SelfEnsemble) -> None:
    x = _x()
    assert tiny_model.manual_seed(1) is tiny_model
    a1, a2 = tiny_model(x), tiny_model(x)
    assert not torch.equal(a1, a2)
    tiny_model.manual_seed(1)
    assert torch.equal(tiny_model(x), a1) and torch.equal(tiny_model(x), a2)
    tiny_model.manual_seed(2)
    assert not torch.equal(tiny_model(x), a1)
    assert tiny_model.config["stack"]["seed"] == 2


def test_inference_never_touches_global_rng(tiny_model: SelfEnsemble) -> None:
    torch.manual_seed(5)
    random.seed(5)
    np.random.seed(5)
    torch_state, py_state, np_state = torch.get_rng_state(), random.getstate(), np.random.get_state()
    x = _x()
    tiny_model(x)
    tiny_model.predictor_logits(x)
    tiny_model.set_stochastic(False)(x)
    assert torch.equal(torch.get_rng_state(), torch_state)
    assert random.getstate() == py_state
    assert np.array_equal(np.random.get_state()[1], np_state[1])


def test_training_step_reaches_every_parameter(tiny_model: SelfEnsemble) -> None:
    model = tiny_model.train()
    y = torch.arange(4) % 10
    logits = model.predictor_logits(_x(4))
    loss = nn.functional.cross_entropy(logits.flatten(0, 1), y.repeat_interleave(model.num_predictors))
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


def test_gradient_flows_to_input(tiny_model: SelfEnsemble) -> None:
    x = _x().requires_grad_()
    tiny_model(x).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_config_needs_a_backbone_spec() -> None:
    from eee_zoo.models import MultiResolutionStack

    backbone = create_backbone("airbench", in_channels=12, num_classes=10, widths=(8, 8, 8), stem_width=8)
    model = SelfEnsemble(backbone, MultiResolutionStack(), ["block1"], 10, k=2)
    assert model(_x(2)).shape == (2, 10)
    with pytest.raises(ValueError, match="built from a backbone object"):
        _ = model.config
    with pytest.raises(ValueError, match="backbone has 10 classes but num_classes=100"):
        SelfEnsemble(backbone, MultiResolutionStack(), ["block1"], 100, k=2)
