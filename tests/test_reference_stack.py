"""The reference algorithm (benchmarks/perf/reference_stack.py) against the vectorised MultiResolutionStack."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from eee_zoo.models import MultiResolutionStack, SelfEnsemble

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # benchmarks/ is a repo directory, not an installed package
    sys.path.insert(0, str(REPO_ROOT))

from benchmarks.perf.reference_stack import (  # noqa: E402
    ReferenceStack,
    reference_apply_transformations,
    reference_multichannel_input,
)

GRID = np.linspace(0.5, 1.0, 100)


def images(n: int = 4, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 3, 32, 32, generator=torch.Generator().manual_seed(seed))


def _replay(tensors: list[torch.Tensor]) -> Iterator[torch.Tensor]:
    yield from tensors


def test_pipeline_matches_reference_given_the_same_draws() -> None:
    """Same random numbers in, same stack out: ordering, roll axes, factor grid and noise placement agree.

    The draws are replayed from a copy of the generator in the order MultiResolutionStack (variant "code")
    makes them: colour/contrast grid indices [B*R], shifts [2, B, R], then per resolution down- and
    up-noise. If that order is changed on purpose, update this replay.
    """
    b, resolutions, jitter = 6, (32, 16, 8, 4), 3
    x = images(b)
    gen = torch.Generator().manual_seed(42)
    replay = torch.Generator().manual_seed(42)
    out = MultiResolutionStack(resolutions, jitter=jitter)(x, generator=gen)

    n_res = len(resolutions)
    idx = torch.randint(0, 100, (b * n_res,), generator=replay).view(b, n_res)
    shifts = torch.randint(-jitter, jitter + 1, (2, b, n_res), generator=replay)
    expected = []
    for i, r in enumerate(resolutions):
        noise = [torch.rand(b, 3, r, r, generator=replay), torch.rand(b, 3, 32, 32, generator=replay)]
        factors = GRID[idx[:, i].numpy()]  # the same draw for contrast and colour, as in the reference
        source = _replay(noise)
        expected.append(
            reference_apply_transformations(
                x,
                down_res=r,
                up_res=32,
                jit_x=shifts[0, :, i].tolist(),
                jit_y=shifts[1, :, i].tolist(),
                contrast=factors,
                color_amount=factors,
                noise_fn=lambda shape, source=source: next(source),
            )
        )
    torch.testing.assert_close(out, torch.cat(expected, dim=1), rtol=0, atol=1e-5)
    assert shifts.unique().numel() > 1 and idx.unique().numel() > 1  # the replay really varied things


@pytest.mark.parametrize("factor", [0.5, 0.77, 1.0])
def test_same_factor_no_jitter_no_noise_match_exactly(factor: float) -> None:
    x = images(3)
    stack = MultiResolutionStack(jitter=0, down_noise=0, up_noise=0, color_range=(factor, factor))
    ref = torch.cat(
        [
            reference_apply_transformations(
                x,
                down_res=r,
                up_res=32,
                jit_x=[0] * 3,
                jit_y=[0] * 3,
                contrast=[factor] * 3,
                color_amount=[factor] * 3,
                down_noise=0,
                up_noise=0,
            )
            for r in (32, 16, 8, 4)
        ],
        dim=1,
    )
    torch.testing.assert_close(stack(x), ref, rtol=0, atol=1e-6)


def test_deterministic_modes_agree() -> None:
    x = images(3)
    torch.testing.assert_close(
        ReferenceStack(stochastic=False)(x), MultiResolutionStack(stochastic=False)(x), rtol=0, atol=1e-6
    )


def test_distributions_agree() -> None:
    # Independent of draw order: per-resolution moments over many copies of one image are the same.
    x = images(1).expand(96, 3, 32, 32).contiguous()
    np.random.seed(0)
    ref = reference_multichannel_input(x).view(96, 4, 3, 32, 32)
    vec = MultiResolutionStack(seed=0)(x).view(96, 4, 3, 32, 32)
    for i in range(4):
        assert abs(ref[:, i].mean() - vec[:, i].mean()) < 0.01
        assert abs(ref[:, i].std() - vec[:, i].std()) < 0.01
        # the per-pixel spread over copies (jitter, factors, noise) agrees too
        assert abs(ref[:, i].std(dim=0).mean() - vec[:, i].std(dim=0).mean()) < 0.01


def test_reference_function_uses_numpy_rng_only() -> None:
    x = images(2)
    torch_state = torch.get_rng_state()
    np.random.seed(3)
    a = reference_multichannel_input(x)
    np.random.seed(3)
    b = reference_multichannel_input(x)
    assert torch.equal(a, b)
    assert not torch.equal(a, reference_multichannel_input(x))  # the numpy state advanced
    assert torch.equal(torch.get_rng_state(), torch_state)
    assert a.shape == (2, 12, 32, 32) and a.min() >= 0 and a.max() <= 1
    assert reference_multichannel_input(x, resolutions=(32, 8), jit_size=0).shape == (2, 6, 32, 32)


def test_reference_stack_api() -> None:
    stack = ReferenceStack((32, 16, 8), jitter=2, down_noise=0.1, up_noise=0.05, seed=4)
    assert stack.out_channels == 9 and stack.stochastic
    config = stack.config()
    assert MultiResolutionStack(**config).config() == config  # describes the equivalent vectorised stack
    assert config["variant"] == "code" and config["seed"] == 4
    x = images(2)
    assert stack.manual_seed(7) is stack and stack.seed == 7
    a = stack(x)
    stack.manual_seed(7)
    assert torch.equal(stack(x), a)
    assert a.shape == (2, 9, 32, 32)
    with pytest.raises(ValueError, match="cannot use a torch.Generator"):
        stack(x, generator=torch.Generator())
    with pytest.raises(ValueError, match=r"\[B, 3, H, W\]"):
        stack(torch.rand(2, 32, 32))
    with pytest.raises(ValueError, match="jitter"):
        ReferenceStack(jitter=-1)
    stack.stochastic = False
    assert torch.equal(stack(x), stack(x))


def test_reference_stack_plugs_into_a_self_ensemble(tiny_model: SelfEnsemble) -> None:
    x = images(3)
    tiny_model.set_stochastic(False)
    expected = tiny_model(x)
    tiny_model.stack = ReferenceStack(stochastic=False)
    torch.testing.assert_close(tiny_model(x), expected, rtol=0, atol=1e-5)
    tiny_model.set_stochastic(True).manual_seed(0)
    a = tiny_model(x)
    tiny_model.manual_seed(0)
    assert torch.equal(tiny_model(x), a)
    assert tiny_model.config["stack"]["variant"] == "code"
