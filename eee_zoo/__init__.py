"""eee-zoo: a RobustBench-compatible model zoo of multi-resolution self-ensembles.

Fort & Lakshminarayanan, "Ensemble everything everywhere: Multi-scale aggregation for adversarial
robustness", arXiv:2408.05446.

    >>> from eee_zoo import load_model, benchmark
    >>> model = load_model("Name", dataset="cifar10", threat_model="Linf")

Public names are imported lazily, so ``import eee_zoo`` stays cheap and a CLI call such as
``eee-zoo list`` does not pay for AutoAttack or huggingface_hub imports it does not use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "MultiResolutionStack": "eee_zoo.models",
    "SelfEnsemble": "eee_zoo.models",
    "crossmax": "eee_zoo.models",
    "list_models": "eee_zoo.registry",
    "load_model": "eee_zoo.loading",
    "export": "eee_zoo.hub",
    "load_cifar10": "eee_zoo.data",
    "load_cifar100": "eee_zoo.data",
    "benchmark": "eee_zoo.evaluation",
    "evaluate": "eee_zoo.evaluation",
    "adaptive_evaluate": "eee_zoo.adaptive",
    "certify": "eee_zoo.certify",
}

__all__ = [*_EXPORTS, "__version__"]

if TYPE_CHECKING:  # for type checkers and IDEs; at run time the names resolve lazily below
    from .adaptive import adaptive_evaluate  # noqa: F401
    from .certify import certify  # noqa: F401
    from .data import load_cifar10, load_cifar100  # noqa: F401
    from .evaluation import benchmark, evaluate  # noqa: F401
    from .hub import export  # noqa: F401
    from .loading import load_model  # noqa: F401
    from .models import MultiResolutionStack, SelfEnsemble, crossmax  # noqa: F401
    from .registry import list_models  # noqa: F401


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'eee_zoo' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # cache: later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(list(globals()) + list(_EXPORTS))
