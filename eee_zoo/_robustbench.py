"""Import RobustBench 1.1.1 on this stack, deliberately.

RobustBench 1.1.1 from PyPI does not import as shipped here, for two reasons:

* it imports AutoAttack as ``autoattack`` (``from autoattack import AutoAttack``,
  ``from autoattack.state import EvaluationState``), but AutoAttack on PyPI is the ``pyautoattack``
  distribution, whose import name is ``pyautoattack``;
* ``robustbench.loaders`` does ``import pkg_resources`` at module level, and setuptools >= 81 no longer ships
  ``pkg_resources``.

:func:`import_robustbench` fixes both, only where they are broken, and then imports ``robustbench``:
``autoattack`` and its submodules are aliased to ``pyautoattack``'s in ``sys.modules`` when no real
``autoattack`` module is installed, and a minimal ``pkg_resources`` with the one function RobustBench uses
(``resource_filename``, for ImageNet class lists) is provided when setuptools lacks it.

Install (what CI does)::

    pip install --no-deps robustbench==1.1.1
    pip install timm==1.0.9 gdown==5.1.0 geotorch torchdiffeq pandas

(``--no-deps`` keeps pip from resolving torch/torchvision again; the second line is the rest of RobustBench's
declared requirements that are not already dependencies of eee-zoo. ``import robustbench`` needs all of them:
its package ``__init__`` imports the data loaders (timm), the model zoo (timm, geotorch, torchdiffeq), the utils
(gdown, requests) and the evaluation module (pandas).)

What works then: ``robustbench.utils.clean_accuracy``, ``robustbench.data.load_cifar10/100``, the leaderboard
helpers in ``robustbench.utils`` and ``robustbench.leaderboard.template``. What does not:
``robustbench.eval.benchmark`` calls ``AutoAttack(..., log_path=...)`` and
``run_standard_evaluation(x, y, bs=...)``, which pyautoattack 0.2.0 no longer accepts: use
:func:`eee_zoo.benchmark`, which has the same call shape and runs ``rand`` as well. The wheel also lacks the
Jinja template that ``robustbench.leaderboard.template.generate_leaderboard`` renders.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

__all__ = ["ROBUSTBENCH_VERSION", "INSTALL", "import_robustbench", "robustbench_available"]

ROBUSTBENCH_VERSION = "1.1.1"
INSTALL = "pip install --no-deps robustbench==1.1.1 && pip install timm==1.0.9 gdown==5.1.0 geotorch torchdiffeq pandas"
_AUTOATTACK_SUBMODULES = (
    "autoattack", "autopgd_base", "checks", "fab_base", "fab_projections", "fab_pt", "other_utils", "square", "state",
)  # fmt: skip


def robustbench_available() -> bool:
    """Whether the ``robustbench`` distribution is installed (it may still need :func:`import_robustbench`)."""
    return importlib.util.find_spec("robustbench") is not None


def import_robustbench() -> ModuleType:
    """Import and return ``robustbench`` after aliasing ``autoattack`` and providing ``pkg_resources`` if needed."""
    if not robustbench_available():
        raise ImportError(f"robustbench is not installed; install it with: {INSTALL}")
    _alias_autoattack()
    _ensure_pkg_resources()
    module = importlib.import_module("robustbench")
    importlib.import_module("robustbench.utils")
    importlib.import_module("robustbench.data")
    importlib.import_module("robustbench.leaderboard.template")
    return module


def _alias_autoattack() -> None:
    existing = sys.modules.get("autoattack")
    if existing is not None or importlib.util.find_spec("autoattack") is not None:
        return  # a real ``autoattack`` (e.g. the GitHub package) is there: leave it alone
    import pyautoattack

    sys.modules["autoattack"] = pyautoattack
    for name in _AUTOATTACK_SUBMODULES:
        sys.modules[f"autoattack.{name}"] = importlib.import_module(f"pyautoattack.{name}")


def _ensure_pkg_resources() -> None:
    if "pkg_resources" in sys.modules or importlib.util.find_spec("pkg_resources") is not None:
        return
    shim = ModuleType("pkg_resources")
    shim.__doc__ = "eee_zoo's stand-in for the part of setuptools' pkg_resources that RobustBench uses."

    def resource_filename(package_or_requirement: str, resource_name: str) -> str:
        """Path of ``resource_name`` beside module/package ``package_or_requirement`` (pkg_resources semantics)."""
        spec = importlib.util.find_spec(package_or_requirement)
        if spec is None or spec.origin is None:
            raise ImportError(f"cannot locate {package_or_requirement!r}")
        return str(Path(spec.origin).parent / resource_name)

    shim.resource_filename = resource_filename  # type: ignore[attr-defined]
    sys.modules["pkg_resources"] = shim
