"""AutoAttack's versions, configured by AutoAttack itself, and its attack objects made ready to call.

``AutoAttack(model, norm=, eps=, version=, seed=)`` builds the four attack objects (APGD, APGD-T, FAB, Square)
and sets their parameters for the version; :func:`build_autoattack` does exactly that (plus the plumbing-test
overrides), :func:`attack_settings` records what it configured, and :func:`prepare_attack` sets an object up for
one attack of the sequence the way ``run_standard_evaluation`` does (loss, targeted flag, restarts, seed), so
that :mod:`.cascade` can call it on the images it chooses.

Versions (pyautoattack 0.2.0, Linf and L2): ``standard`` = APGD-CE, APGD-T (9 targets), FAB-T (9 targets),
Square (5000 queries), one restart each; ``rand`` = APGD-CE and APGD-DLR with 20 EOT samples per step and 100
iterations; ``plus`` and ``custom`` as AutoAttack defines them.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn as nn

__all__ = [
    "ATTACK_COMPONENT", "ATTACK_NAMES", "AUTOATTACK_LOGGER", "COMPONENTS", "VERSIONS", "attack_list",
    "attack_settings", "autoattack_checks", "build_autoattack", "check_overrides", "default_version", "prepare_attack",
    "quiet_autoattack_logger",
]  # fmt: skip

VERSIONS = ("standard", "rand", "plus", "custom")
ATTACK_NAMES = ("apgd-ce", "apgd-dlr", "fab", "square", "apgd-t", "fab-t")
AUTOATTACK_LOGGER = "auto-attack"
_VERSION_ATTACKS = {
    "standard": ["apgd-ce", "apgd-t", "fab-t", "square"],
    "rand": ["apgd-ce", "apgd-dlr"],
    "plus": ["apgd-ce", "apgd-dlr", "fab", "square", "apgd-t", "fab-t"],
}
# AutoAttack's components and the attributes we record / allow to override (plumbing tests only).
COMPONENTS = {
    "apgd": ("n_iter", "n_restarts", "eot_iter", "thr_decr", "use_largereps"),
    "apgd_targeted": ("n_iter", "n_restarts", "n_target_classes", "eot_iter", "thr_decr", "use_largereps"),
    "fab": ("n_iter", "n_restarts", "n_target_classes", "alpha_max", "eta", "beta"),
    "square": ("n_queries", "p_init", "n_restarts"),
}
ATTACK_COMPONENT = {
    "apgd-ce": "apgd", "apgd-dlr": "apgd", "apgd-t": "apgd_targeted", "fab": "fab", "fab-t": "fab", "square": "square",
}  # fmt: skip


def default_version(model: nn.Module) -> str:
    """``"rand"`` for a model whose inference is stochastic (``model.stochastic``), else ``"standard"``."""
    return "rand" if bool(getattr(model, "stochastic", False)) else "standard"


def attack_list(version: str, attacks: Sequence[str] | None) -> list[str]:
    """The attacks ``version`` runs, in order (``attacks`` only for ``custom``, checked)."""
    if version != "custom":
        if attacks is not None:
            raise ValueError(f"attacks= is only used with version='custom' (version {version!r} defines its own)")
        return list(_VERSION_ATTACKS[version])
    if not attacks:
        raise ValueError(f"version='custom' needs a non-empty attacks= list from {list(ATTACK_NAMES)}")
    attacks = list(attacks)
    unknown = [a for a in attacks if a not in ATTACK_NAMES]
    if unknown or len(set(attacks)) != len(attacks):
        raise ValueError(f"bad custom attacks {attacks}: each must be one of {list(ATTACK_NAMES)}, without repeats")
    return attacks


def autoattack_checks(attacks: Sequence[Any]) -> int:
    """How many single-draw checks AutoAttack makes of an image that stays robust to ``attacks`` (its list, in any
    form): the clean check, then one forward pass after each attack. On a stochastic model each check is one draw,
    and an image counts as broken as soon as one of them is wrong: ``rand`` counts images right on 3 draws."""
    return 1 + len(attacks)


def check_overrides(overrides: dict[str, Any] | None) -> dict[str, Any]:
    """``{"apgd.n_iter": 5, ...}`` checked against :data:`COMPONENTS` and sorted (empty: none)."""
    if not overrides:
        return {}
    out = {}
    for key, value in sorted(overrides.items()):
        component, _, attr = key.partition(".")
        if component not in COMPONENTS or attr not in COMPONENTS[component]:
            allowed = [f"{c}.{a}" for c, attrs in COMPONENTS.items() for a in attrs]
            raise ValueError(f"unknown attack override {key!r}; allowed: {allowed}")
        if isinstance(value, bool) and attr != "use_largereps" or not isinstance(value, (int, float)):
            raise ValueError(f"attack override {key!r} must be a number, got {value!r}")
        out[key] = value
    return out


@contextlib.contextmanager
def quiet_autoattack_logger() -> Iterator[None]:
    """AutoAttack's constructor announces its version on its logger: not a message for the caller's handlers."""
    aa_logger = logging.getLogger(AUTOATTACK_LOGGER)
    disabled, aa_logger.disabled = aa_logger.disabled, True
    try:
        yield
    finally:
        aa_logger.disabled = disabled


def build_autoattack(
    model: nn.Module,
    *,
    version: str,
    attacks: list[str],
    eps: float,
    norm: str,
    seed: int,
    device: torch.device,
    overrides: dict[str, Any] | None = None,
) -> Any:
    """``AutoAttack(model, norm=, eps=, version=, seed=, device=)``, then the plumbing-test ``overrides``."""
    from pyautoattack import AutoAttack

    with quiet_autoattack_logger():
        adversary = AutoAttack(
            model,
            attacks=list(attacks) if version == "custom" else None,
            device=device,
            eps=eps,
            norm=norm,
            seed=seed,
            version=version,
        )
    if version == "custom":
        adversary.attacks_to_run = list(attacks)
    for key, value in (overrides or {}).items():
        component, _, attr = key.partition(".")
        obj = getattr(adversary, component)
        setattr(obj, attr, value)
        if attr == "n_iter" and component.startswith("apgd"):  # APGD derives its checkpoints from n_iter
            obj.n_iter_orig = value
            obj.n_iter_2 = max(int(0.22 * value), 1)
            obj.n_iter_min = max(int(0.06 * value), 1)
            obj.size_decr = max(int(0.03 * value), 1)
    if list(adversary.attacks_to_run) != list(attacks):
        raise RuntimeError(f"AutoAttack {version} runs {adversary.attacks_to_run}, expected {attacks}")
    return adversary


def attack_settings(adversary: Any) -> dict[str, Any]:
    """The parameters of the attacks an ``AutoAttack`` object will run (what its version configured)."""
    attacks = list(adversary.attacks_to_run)
    out: dict[str, Any] = {"attacks": attacks, "norm": adversary.norm, "eps": float(adversary.epsilon)}
    objects = {"apgd": adversary.apgd, "apgd_targeted": adversary.apgd_targeted, "fab": adversary.fab}
    objects["square"] = adversary.square
    for component in dict.fromkeys(ATTACK_COMPONENT[a] for a in attacks):
        obj = objects[component]
        out[component] = {attr: _jsonable(getattr(obj, attr)) for attr in COMPONENTS[component] if hasattr(obj, attr)}
    if "fab-t" in attacks:
        out["fab"]["n_restarts"] = 1  # run_standard_evaluation sets this before FAB-T
    return out


def prepare_attack(adversary: Any, attack: str) -> Any:
    """The attack object for ``attack``, set up as ``run_standard_evaluation`` does before every batch.

    Its ``perturb(x, y)`` then runs the attack (pyautoattack 0.2.0: the loss of APGD, FAB's targeted flag and
    its single restart for FAB-T, and the seed from ``adversary.get_seed()``, which every ``perturb`` uses to
    reseed PyTorch's global generator).
    """
    if attack in ("apgd-ce", "apgd-dlr"):
        obj = adversary.apgd
        obj.loss = "ce" if attack == "apgd-ce" else "dlr"
    elif attack in ("fab", "fab-t"):
        obj = adversary.fab
        obj.targeted = attack == "fab-t"
        if attack == "fab-t":
            obj.n_restarts = 1
    elif attack == "square":
        obj = adversary.square
    elif attack == "apgd-t":
        obj = adversary.apgd_targeted
    else:
        raise ValueError(f"attack {attack!r} is not one of {list(ATTACK_NAMES)}")
    obj.seed = adversary.get_seed()
    return obj


def _jsonable(value: Any) -> Any:
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    if isinstance(value, np.generic):
        return value.item()
    return str(value)
