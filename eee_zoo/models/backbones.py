"""Backbones with named feature taps, registered by name (architectures are code; checkpoints are cards).

Every backbone is a :class:`TappedBackbone`: an ordered set of named blocks (``stem``, ``layer1.0``, ...)
followed by a classifier head. ``forward_features(x, taps)`` returns the last block's output and the
outputs of the requested blocks, so a :class:`~eee_zoo.models.self_ensemble.SelfEnsemble` can put linear
heads on intermediate layers without hooks.

Architectures:

* ``resnet18/34/50``: CIFAR-style ResNets (3x3 stem, no max-pool; He et al. 2016).
* ``wide_resnet``: pre-activation WideResNet with depth *and width per stage* (Zagoruyko & Komodakis 2016),
  including the RobustWRN configurations of Huang et al. 2021 (arXiv:2110.03825) that shrink the last stage:
  ``wrn_34_r`` = depths (5, 5, 5), widths (320, 640, 512).
* ``imagenet_resnet152``: torchvision's ResNet-152 taking the 3R-channel stack up-sampled to 224 px with
  ImageNet normalisation per 3-channel group: the paper's setup, for when pretrained weights can be had.
* ``airbench``: a small fast conv net after airbench (Jordan 2024), sized for CPU training.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["TappedBackbone", "register_backbone", "create_backbone", "list_backbones"]

_BACKBONES: dict[str, Callable[..., TappedBackbone]] = {}


def register_backbone(fn: Callable[..., TappedBackbone]) -> Callable[..., TappedBackbone]:
    if fn.__name__ in _BACKBONES:
        raise ValueError(f"backbone {fn.__name__!r} registered twice")
    _BACKBONES[fn.__name__] = fn
    return fn


def list_backbones() -> list[str]:
    return sorted(_BACKBONES)


def create_backbone(name: str, *, in_channels: int, num_classes: int, **kwargs: Any) -> TappedBackbone:
    """Build a registered backbone; unknown names or arguments raise a ``ValueError`` naming them."""
    if name not in _BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; registered backbones: {list_backbones()}")
    try:
        return _BACKBONES[name](in_channels=in_channels, num_classes=num_classes, **kwargs)
    except TypeError as e:  # unexpected keyword argument -> a config error, not a crash
        raise ValueError(f"bad arguments for backbone {name!r}: {e}") from None


class TappedBackbone(nn.Module):
    """Ordered named blocks + a classifier head; any block's output can be tapped."""

    def __init__(self, blocks: Sequence[tuple[str, nn.Module]], head: nn.Module, num_classes: int) -> None:
        super().__init__()
        # ModuleDict keys may not contain '.', so blocks are stored under '_'-names and tapped by public names.
        self.tap_names: tuple[str, ...] = tuple(name for name, _ in blocks)
        self.blocks = nn.ModuleDict((name.replace(".", "_"), block) for name, block in blocks)
        self.head = head
        self.num_classes = num_classes

    def forward_features(
        self, x: torch.Tensor, taps: Sequence[str] = ()
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        unknown = set(taps) - set(self.tap_names)
        if unknown:
            raise ValueError(f"unknown taps {sorted(unknown)}; this backbone has {list(self.tap_names)}")
        wanted = set(taps)
        tapped: dict[str, torch.Tensor] = {}
        for name, block in zip(self.tap_names, self.blocks.values()):
            x = block(x)
            if name in wanted:
                tapped[name] = x
        return x, tapped

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x)[0])


class _PoolLinearHead(nn.Sequential):
    def __init__(self, channels: int, num_classes: int, pre: nn.Module | None = None) -> None:
        layers: list[nn.Module] = [pre] if pre is not None else []
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, num_classes)]
        super().__init__(*layers)


def _conv_bn_relu(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


# --------------------------------------------------------------------------------------- CIFAR ResNets
class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, c_in: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = _projection(c_in, planes, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, c_in: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        c_out = planes * self.expansion
        self.conv1 = nn.Conv2d(c_in, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, c_out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(c_out)
        self.shortcut = _projection(c_in, c_out, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        return F.relu(self.bn3(self.conv3(out)) + self.shortcut(x))


def _projection(c_in: int, c_out: int, stride: int) -> nn.Module:
    if stride == 1 and c_in == c_out:
        return nn.Identity()
    return nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))


def _cifar_resnet(
    block: type[BasicBlock] | type[Bottleneck],
    depths: Sequence[int],
    *,
    in_channels: int,
    num_classes: int,
    width: int = 64,
) -> TappedBackbone:
    blocks: list[tuple[str, nn.Module]] = [("stem", _conv_bn_relu(in_channels, width))]
    c_in = width
    for stage, depth in enumerate(depths):
        planes = width * 2**stage
        for i in range(depth):
            stride = 2 if (stage > 0 and i == 0) else 1
            blocks.append((f"layer{stage + 1}.{i}", block(c_in, planes, stride)))
            c_in = planes * block.expansion
    return TappedBackbone(blocks, _PoolLinearHead(c_in, num_classes), num_classes)


@register_backbone
def resnet18(*, in_channels: int, num_classes: int, width: int = 64) -> TappedBackbone:
    return _cifar_resnet(BasicBlock, (2, 2, 2, 2), in_channels=in_channels, num_classes=num_classes, width=width)


@register_backbone
def resnet34(*, in_channels: int, num_classes: int, width: int = 64) -> TappedBackbone:
    return _cifar_resnet(BasicBlock, (3, 4, 6, 3), in_channels=in_channels, num_classes=num_classes, width=width)


@register_backbone
def resnet50(*, in_channels: int, num_classes: int, width: int = 64) -> TappedBackbone:
    return _cifar_resnet(Bottleneck, (3, 4, 6, 3), in_channels=in_channels, num_classes=num_classes, width=width)


# --------------------------------------------------------------------------------------- WideResNets
class PreActBlock(nn.Module):
    """Pre-activation WRN block: BN-ReLU-Conv-BN-ReLU-Conv + shortcut."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.shortcut = None if (stride == 1 and c_in == c_out) else nn.Conv2d(c_in, c_out, 1, stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        act = F.relu(self.bn1(x))
        shortcut = x if self.shortcut is None else self.shortcut(act)
        out = self.conv2(F.relu(self.bn2(self.conv1(act))))
        return out + shortcut


@register_backbone
def wide_resnet(
    *,
    in_channels: int,
    num_classes: int,
    depths: Sequence[int] = (4, 4, 4),
    widths: Sequence[int] = (160, 320, 640),
    stem_width: int = 16,
) -> TappedBackbone:
    """WideResNet with per-stage block counts ``depths`` and channel counts ``widths``.

    WRN-d-k is ``depths = ((d - 4) / 6,) * 3`` and ``widths = (16k, 32k, 64k)``.
    """
    if len(depths) != len(widths) or not depths:
        raise ValueError(f"depths {tuple(depths)} and widths {tuple(widths)} must be non-empty and equally long")
    if any(d < 1 for d in depths) or any(w < 1 for w in widths):
        raise ValueError("every stage needs depth >= 1 and width >= 1")
    blocks: list[tuple[str, nn.Module]] = [("stem", nn.Conv2d(in_channels, stem_width, 3, 1, 1, bias=False))]
    c_in = stem_width
    for stage, (depth, width) in enumerate(zip(depths, widths)):
        for i in range(depth):
            stride = 2 if (stage > 0 and i == 0) else 1
            blocks.append((f"stage{stage + 1}.{i}", PreActBlock(c_in, width, stride)))
            c_in = width
    pre = nn.Sequential(nn.BatchNorm2d(c_in), nn.ReLU(inplace=True))
    return TappedBackbone(blocks, _PoolLinearHead(c_in, num_classes, pre=pre), num_classes)


def _wrn(depth: int, widen: int) -> dict[str, Any]:
    n = (depth - 4) // 6
    return {"depths": (n, n, n), "widths": (16 * widen, 32 * widen, 64 * widen)}


@register_backbone
def wrn_16_4(*, in_channels: int, num_classes: int) -> TappedBackbone:
    return wide_resnet(in_channels=in_channels, num_classes=num_classes, **_wrn(16, 4))


@register_backbone
def wrn_28_10(*, in_channels: int, num_classes: int) -> TappedBackbone:
    return wide_resnet(in_channels=in_channels, num_classes=num_classes, **_wrn(28, 10))


@register_backbone
def wrn_34_10(*, in_channels: int, num_classes: int) -> TappedBackbone:
    return wide_resnet(in_channels=in_channels, num_classes=num_classes, **_wrn(34, 10))


@register_backbone
def wrn_34_r(*, in_channels: int, num_classes: int) -> TappedBackbone:
    """WRN-34-R of Huang et al. 2021: WRN-34-20 with the last stage reduced to 512 channels."""
    return wide_resnet(in_channels=in_channels, num_classes=num_classes, depths=(5, 5, 5), widths=(320, 640, 512))


# --------------------------------------------------------------------------------------- ImageNet ResNet-152
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class _ImageNetInput(nn.Module):
    """Up-sample the stack to ``size`` px and normalise each 3-channel group with ImageNet statistics."""

    def __init__(self, in_channels: int, size: int) -> None:
        super().__init__()
        if in_channels % 3:
            raise ValueError(f"imagenet_resnet152 needs a multiple of 3 input channels, got {in_channels}")
        groups = in_channels // 3
        self.size = size
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN * groups).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD * groups).view(1, -1, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.size or x.shape[-2] != self.size:
            x = F.interpolate(x, size=(self.size, self.size), mode="bicubic", align_corners=False)
        return (x - self.mean) / self.std


@register_backbone
def imagenet_resnet152(*, in_channels: int, num_classes: int, image_size: int = 224) -> TappedBackbone:
    """torchvision's ResNet-152 with a ``in_channels``-wide first conv (the paper's backbone).

    Pretrained ImageNet weights can be copied in by the caller (the first conv's RGB kernel repeated over
    the stack's groups, as in the paper); this zoo trains from scratch because none can be downloaded here.
    """
    from torchvision.models import resnet152

    net = resnet152(weights=None, num_classes=num_classes)
    net.conv1 = nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False)
    stem = nn.Sequential(_ImageNetInput(in_channels, image_size), net.conv1, net.bn1, net.relu, net.maxpool)
    blocks: list[tuple[str, nn.Module]] = [("stem", stem)]
    for stage in range(1, 5):
        for i, block in enumerate(getattr(net, f"layer{stage}")):
            blocks.append((f"layer{stage}.{i}", block))
    return TappedBackbone(blocks, _PoolLinearHead(net.fc.in_features, num_classes), num_classes)


# --------------------------------------------------------------------------------------- airbench-like
class _AirbenchBlock(nn.Sequential):
    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__(
            nn.Conv2d(c_in, c_out, 3, 1, 1, bias=False),
            nn.MaxPool2d(2),
            nn.BatchNorm2d(c_out),
            nn.GELU(),
            nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False),
            nn.BatchNorm2d(c_out),
            nn.GELU(),
        )


class _ScaledMaxPoolHead(nn.Module):
    def __init__(self, channels: int, num_classes: int, scale: float) -> None:
        super().__init__()
        self.linear = nn.Linear(channels, num_classes, bias=False)
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(F.adaptive_max_pool2d(x, 1).flatten(1)) * self.scale


@register_backbone
def airbench(
    *, in_channels: int, num_classes: int, widths: Sequence[int] = (64, 256, 256), stem_width: int = 32
) -> TappedBackbone:
    """A small fast CIFAR net after airbench94: conv stem, three conv-pool-conv blocks, max-pool head."""
    if len(widths) < 1 or any(w < 1 for w in widths) or stem_width < 1:
        raise ValueError(f"widths {tuple(widths)} and stem_width {stem_width} must be positive")
    stem = nn.Sequential(nn.Conv2d(in_channels, stem_width, 3, 1, 1, bias=False), nn.BatchNorm2d(stem_width), nn.GELU())
    blocks: list[tuple[str, nn.Module]] = [("stem", stem)]
    c_in = stem_width
    for i, width in enumerate(widths):
        blocks.append((f"block{i + 1}", _AirbenchBlock(c_in, width)))
        c_in = width
    return TappedBackbone(blocks, _ScaledMaxPoolHead(c_in, num_classes, scale=1 / 9), num_classes)
