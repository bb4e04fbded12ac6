"""Model components: the multi-resolution stack, backbones with taps, aggregators, the self-ensemble."""

from .backbones import TappedBackbone, create_backbone, list_backbones, register_backbone
from .crossmax import AGGREGATORS, crossmax, mean_logits
from .multires import MultiResolutionStack
from .self_ensemble import SelfEnsemble

__all__ = [
    "AGGREGATORS", "MultiResolutionStack", "SelfEnsemble", "TappedBackbone", "create_backbone", "crossmax",
    "list_backbones", "mean_logits", "register_backbone",
]  # fmt: skip
