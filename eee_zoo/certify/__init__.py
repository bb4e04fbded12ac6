"""Certified L2 robustness by randomized smoothing: the lower bound beside the zoo's empirical (upper) bounds.

    >>> from eee_zoo import load_model, certify
    >>> model = load_model("Airbench_CPU_CrossMax")
    >>> result = certify(model, n_examples=100, sigma=0.25, n=10_000)       # Cohen et al. 2019, CERTIFY
    >>> result = certify(model, n_examples=100, sigma=(1.0, 0.5, 0.25))      # Jeong & Shin 2023's cascade
    >>> print(result.summary()); result.at(0.5).accuracy

Modules: one idea each, listed in :data:`MODULES`; each imports only modules listed before it.
"""

from __future__ import annotations

import sys
import types
from typing import Any

from .api import DEFAULT_BATCH_SIZE, DEFAULT_RADII, certify
from .bounds import largest_radius, lower_bound, radius, upper_bound
from .cohen import ABSTAIN, ScaleCounts, certify_counts
from .multiscale import ImageCertificate, cascade, scale_budgets
from .result import SUITE, CertifiedAccuracy, CertifyResult

MODULES = (
    "bounds",  # one-sided Clopper-Pearson bounds and the radius sigma * Phi^-1(pA_lower)
    "sampling",  # class counts of model(x + sigma * eps), batched, from one generator; unclamped inputs
    "cohen",  # CERTIFY at one scale: selection, estimation, abstain or radius
    "multiscale",  # the cascade over several scales, its radius and its alpha split
    "result",  # CertifyResult, certified accuracy at radii with intervals
    "state",  # finished images on disk, keyed by the configuration
    "api",  # certify
)

__all__ = [
    "ABSTAIN", "DEFAULT_BATCH_SIZE", "DEFAULT_RADII", "MODULES", "SUITE", "CertifiedAccuracy", "CertifyResult",
    "ImageCertificate", "ScaleCounts", "cascade", "certify", "certify_counts", "largest_radius", "lower_bound",
    "radius", "scale_budgets", "upper_bound",
]  # fmt: skip


class _CallablePackage(types.ModuleType):
    """``eee_zoo.certify`` is both this package and the function: importing a submodule binds the package to the
    name ``certify`` on ``eee_zoo``, so the package calls the function, and ``eee_zoo.certify(model, ...)`` works
    whichever import came first."""

    def __call__(self, *args: Any, **kwargs: Any) -> CertifyResult:
        return certify(*args, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage
