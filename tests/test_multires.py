"""MultiResolutionStack: shapes, seeding, the two variants' statistics, and its pieces against per-image code."""

from __future__ import annotations

import itertools
import random

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision.transforms.functional as TF

import eee_zoo
from eee_zoo.models import MultiResolutionStack
from eee_zoo.models.multires import _adjust_contrast, _resize, _roll_per_image

GRID = 100  # the reference draws factors from np.linspace(lo, hi, 100)


def images(n: int = 4, size: int = 32, seed: int = 0, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def bicubic(x: torch.Tensor, size: int) -> torch.Tensor:
    return F.interpolate(x, size=(size, size), mode="bicubic", align_corners=False)


def contrast_then_colour(img: torch.Tensor, contrast: float, colour: float) -> torch.Tensor:
    """The reference's per-image photometric transform, written with torchvision for one [3, H, W] image."""
    img = TF.adjust_contrast(img, contrast)
    return colour * img + img.mean(dim=0, keepdim=True) * (1 - colour)


# ----------------------------------------------------------------------------------------- shape / range
@pytest.mark.parametrize("variant", ["code", "paper"])
@pytest.mark.parametrize("resolutions", [(32, 16, 8, 4), (32, 8), (5,)])
def test_shape_and_range(variant: str, resolutions: tuple[int, ...]) -> None:
    stack = MultiResolutionStack(resolutions, variant=variant)
    x = images(3)
    out = stack(x)
    assert out.shape == (3, 3 * len(resolutions), 32, 32)
    assert stack.out_channels == 3 * len(resolutions)
    assert out.dtype == x.dtype
    assert out.min() >= 0 and out.max() <= 1
    assert torch.isfinite(out).all()


def test_non_square_and_other_sizes() -> None:
    x = torch.rand(2, 3, 24, 20, generator=torch.Generator().manual_seed(0))
    for stochastic in (True, False):
        out = MultiResolutionStack((24, 6), stochastic=stochastic)(x)
        assert out.shape == (2, 6, 24, 20)


def test_default_configuration_and_public_import() -> None:
    stack = eee_zoo.MultiResolutionStack()
    assert stack is not None and isinstance(stack, MultiResolutionStack)
    assert stack.config() == {
        "resolutions": [32, 16, 8, 4],
        "jitter": 3,
        "down_noise": 0.2,
        "up_noise": 0.2,
        "contrast_range": [0.7, 1.5],
        "color_range": [0.5, 1.0],
        "variant": "code",
        "stochastic": True,
        "seed": 0,
    }


def test_config_round_trip() -> None:
    stack = MultiResolutionStack((16, 4), jitter=1, down_noise=0.1, up_noise=0.05, variant="paper", seed=7)
    again = MultiResolutionStack(**stack.config())
    assert again.config() == stack.config()
    x = images(2)
    assert torch.equal(stack(x), again(x))


# ----------------------------------------------------------------------------------------- randomness
def test_same_seed_same_output_different_seed_different_output() -> None:
    x = images()
    a, b, c = MultiResolutionStack(seed=5), MultiResolutionStack(seed=5), MultiResolutionStack(seed=6)
    out_a = a(x)
    assert torch.equal(out_a, b(x))
    assert not torch.allclose(out_a, c(x))


def test_module_generator_advances_and_manual_seed_replays() -> None:
    x = images()
    stack = MultiResolutionStack(seed=1)
    first, second = stack(x), stack(x)
    assert not torch.allclose(first, second)  # fresh randomness per call
    stack.manual_seed(1)
    assert torch.equal(stack(x), first)
    assert torch.equal(stack(x), second)
    stack.manual_seed(2)
    assert stack.seed == 2 and stack.config()["seed"] == 2
    assert not torch.allclose(stack(x), first)


def test_generator_argument() -> None:
    x = images()
    stack = MultiResolutionStack(seed=0)
    out_a = stack(x, generator=torch.Generator().manual_seed(3))
    out_b = MultiResolutionStack(seed=99)(x, generator=torch.Generator().manual_seed(3))
    assert torch.equal(out_a, out_b)  # the argument, not the module's seed, decides
    # Using an external generator leaves the module's own generator untouched.
    assert torch.equal(stack(x), MultiResolutionStack(seed=0)(x))
    # The external generator is advanced.
    gen = torch.Generator().manual_seed(3)
    stack(x, generator=gen)
    assert not torch.allclose(stack(x, generator=gen), out_a)


def test_never_touches_global_rng() -> None:
    torch.manual_seed(1234)
    random.seed(1234)
    np.random.seed(1234)
    torch_state, py_state, np_state = torch.get_rng_state(), random.getstate(), np.random.get_state()
    x = images()
    for variant, stochastic in itertools.product(("code", "paper"), (True, False)):
        stack = MultiResolutionStack(variant=variant, stochastic=stochastic)
        stack(x)
        stack(x, generator=torch.Generator().manual_seed(0))
    assert torch.equal(torch.get_rng_state(), torch_state)
    assert random.getstate() == py_state
    assert np.array_equal(np.random.get_state()[1], np_state[1])


def test_output_does_not_depend_on_global_rng() -> None:
    x = images()
    torch.manual_seed(0)
    a = MultiResolutionStack(seed=3)(x)
    torch.manual_seed(1)
    b = MultiResolutionStack(seed=3)(x)
    assert torch.equal(a, b)


def test_stochastic_output_is_a_function_of_input_and_generator_state() -> None:
    # Different batches consume the generator differently, so per-image results depend on the batch;
    # what must hold is that the same (input, generator state) always gives the same output.
    x = images(5)
    outs = [MultiResolutionStack()(x, generator=torch.Generator().manual_seed(11)) for _ in range(2)]
    assert torch.equal(*outs)
    # and the copies of one image differ from each other (independent draws per image and resolution)
    out = MultiResolutionStack((32, 32, 32))(x)
    assert not torch.allclose(out[:, 0:3], out[:, 3:6])


# ----------------------------------------------------------------------------------------- deterministic mode
@pytest.mark.parametrize("variant,noise_mean", [("code", 0.5), ("paper", 0.0)])
def test_deterministic_mode_equals_noise_mean_formula(variant: str, noise_mean: float) -> None:
    x = images(3)
    stack = MultiResolutionStack(variant=variant, stochastic=False, down_noise=0.2, up_noise=0.1)
    out = stack(x)
    assert torch.equal(out, stack(x))  # no randomness at all
    expected = []
    for r in (32, 16, 8, 4):
        low = bicubic(x, r) + noise_mean * 0.2
        expected.append((bicubic(low, 32) + noise_mean * 0.1).clamp(0, 1))
    torch.testing.assert_close(out, torch.cat(expected, dim=1), rtol=0, atol=1e-6)


def test_deterministic_mode_is_batch_independent_and_generator_free() -> None:
    x = images(5)
    stack = MultiResolutionStack(stochastic=False)
    full = stack(x)
    for i in range(5):
        torch.testing.assert_close(stack(x[i : i + 1]), full[i : i + 1], rtol=0, atol=1e-6)
    gen = torch.Generator().manual_seed(0)
    state = gen.get_state()
    assert torch.equal(stack(x, generator=gen), full)
    assert torch.equal(gen.get_state(), state)  # nothing drawn
    assert stack._generators == {}


def test_switching_stochastic_flag() -> None:
    x = images()
    stack = MultiResolutionStack(seed=4)
    stack.stochastic = False
    det = stack(x)
    stack.stochastic = True
    assert not torch.allclose(stack(x), det)
    assert torch.equal(MultiResolutionStack(seed=4, stochastic=False)(x), det)


# ----------------------------------------------------------------------------------------- variant statistics
def test_code_variant_noise_is_nonnegative_uniform() -> None:
    # contrast = colour = 1 and no jitter: at r=32 the resizes are the identity, so out = 0.3 + 0.2 U + 0.2 U'.
    stack = MultiResolutionStack((32,), jitter=0, color_range=(1.0, 1.0), contrast_range=(1.0, 1.0), seed=0)
    out = stack(torch.full((8, 3, 32, 32), 0.3))
    assert out.min() >= 0.3 and out.max() < 0.7
    assert abs(out.mean().item() - 0.5) < 0.005  # 0.3 + 0.1 + 0.1: the uniform noise brightens
    assert abs(out.std().item() - (2 * 0.2**2 / 12) ** 0.5) < 0.003  # sum of two U[0, 0.2)
    # the distribution is triangular on [0.3, 0.7): both tails are populated
    assert (out < 0.35).any() and (out > 0.65).any()


def test_code_variant_down_noise_alone_is_uniform() -> None:
    stack = MultiResolutionStack((32,), jitter=0, up_noise=0.0, color_range=(1.0, 1.0), seed=1)
    out = stack(torch.full((8, 3, 32, 32), 0.3))
    assert out.min() >= 0.3 and out.max() < 0.5
    hist = torch.histc(out, bins=4, min=0.3, max=0.5) / out.numel()
    torch.testing.assert_close(hist, torch.full((4,), 0.25), rtol=0, atol=0.02)


def test_paper_variant_noise_is_zero_mean_gaussian() -> None:
    stack = MultiResolutionStack(
        (32,), jitter=0, down_noise=0.05, up_noise=0.05, contrast_range=(1, 1), color_range=(1, 1), variant="paper"
    )
    out = stack(torch.full((8, 3, 32, 32), 0.5))
    noise = out - 0.5
    assert abs(noise.mean().item()) < 0.003
    assert abs(noise.std().item() - 0.05 * 2**0.5) < 0.003
    assert (noise < 0).float().mean().item() == pytest.approx(0.5, abs=0.02)
    assert noise.abs().max() > 3 * 0.05  # unbounded tails (uniform noise of this size could not reach this)


def test_paper_variant_noise_mean_survives_down_and_up_sampling() -> None:
    stack = MultiResolutionStack((8,), jitter=0, contrast_range=(1, 1), color_range=(1, 1), variant="paper")
    out = stack(torch.full((16, 3, 32, 32), 0.5))
    assert abs(out.mean().item() - 0.5) < 0.01
    code = MultiResolutionStack((8,), jitter=0, color_range=(1, 1))(torch.full((16, 3, 32, 32), 0.5))
    assert code.mean().item() > 0.65  # code variant: 0.5 + 0.1 + 0.1 (minus a little clipping at 1)


def _photometric_candidates(x: torch.Tensor, contrasts: torch.Tensor, colours: torch.Tensor) -> torch.Tensor:
    """[n_contrast, n_colour, 3, H, W]: the transform of one image for every factor pair (torchvision contrast)."""
    contrasted = torch.stack([TF.adjust_contrast(x, float(a)) for a in contrasts]).unsqueeze(1)
    c = colours.view(1, -1, 1, 1, 1)
    return c * contrasted + contrasted.mean(dim=2, keepdim=True) * (1 - c)


def _grid(lo: float, hi: float) -> torch.Tensor:
    return torch.tensor(np.linspace(lo, hi, GRID), dtype=torch.float32)


def test_code_variant_contrast_is_the_colour_draw() -> None:
    # jitter 0, noise 0, resolution 32 (identity resizes): every copy must be T(c, c) for one grid value c.
    x = images(3, size=8)
    stack = MultiResolutionStack((8, 8, 8), jitter=0, down_noise=0, up_noise=0, variant="code", seed=3)
    out = stack(x).view(3, 3, 3, 8, 8)
    grid = _grid(0.5, 1.0)
    used = set()
    for i in range(3):
        cands = _photometric_candidates(x[i], grid, grid).clamp(0, 1)  # [100, 100, 3, 8, 8]
        for j in range(3):
            err = (cands - out[i, j]).abs().flatten(2).amax(dim=2)
            a, c = divmod(int(err.argmin()), GRID)
            assert err[a, c] < 1e-5
            assert a == c, f"contrast {grid[a]:.4f} differs from colour amount {grid[c]:.4f}"
            used.add(c)
    assert len(used) > 1  # really random


def test_code_variant_ignores_contrast_range_paper_variant_uses_it() -> None:
    x = images(2, size=8)
    kwargs = dict(jitter=0, down_noise=0, up_noise=0, contrast_range=(1.5, 1.5), color_range=(0.6, 0.6))
    code = MultiResolutionStack((8,), variant="code", **kwargs)(x)
    paper = MultiResolutionStack((8,), variant="paper", **kwargs)(x)
    for i in range(2):
        torch.testing.assert_close(code[i], contrast_then_colour(x[i], 0.6, 0.6).clamp(0, 1), rtol=0, atol=1e-6)
        torch.testing.assert_close(paper[i], contrast_then_colour(x[i], 1.5, 0.6).clamp(0, 1), rtol=0, atol=1e-6)


def test_paper_variant_draws_contrast_and_colour_independently_from_their_grids() -> None:
    x = images(4, size=8)
    stack = MultiResolutionStack((8, 8), jitter=0, down_noise=0, up_noise=0, variant="paper", seed=2)
    out = stack(x).view(4, 2, 3, 8, 8)
    contrasts, colours = _grid(0.7, 1.5), _grid(0.5, 1.0)
    pairs = []
    for i in range(4):
        cands = _photometric_candidates(x[i], contrasts, colours).clamp(0, 1)
        for j in range(2):
            err = (cands - out[i, j]).abs().flatten(2).amax(dim=2)
            a, c = divmod(int(err.argmin()), GRID)
            assert err[a, c] < 1e-5
            pairs.append((a, c))
    assert any(a != c for a, c in pairs)
    assert any(contrasts[a] > 1.0 for a, _ in pairs)  # contrast increases happen in the paper variant


def test_jitter_is_an_integer_roll_within_range() -> None:
    # Colour/contrast 1 and no noise: every copy is torch.roll(image, (dy, dx)) for some |dy|, |dx| <= 3.
    x = images(16, size=12)
    stack = MultiResolutionStack((12, 12), jitter=3, down_noise=0, up_noise=0, color_range=(1, 1), seed=0)
    out = stack(x).view(16, 2, 3, 12, 12)
    shifts = list(itertools.product(range(-3, 4), repeat=2))
    seen = []
    for i in range(16):
        cands = torch.stack([torch.roll(x[i], s, dims=(-2, -1)) for s in shifts])
        for j in range(2):
            err = (cands - out[i, j]).abs().flatten(1).amax(dim=1)
            assert err.min() < 1e-6
            seen.append(shifts[int(err.argmin())])
    dys, dxs = {s[0] for s in seen}, {s[1] for s in seen}
    assert min(dys) < 0 < max(dys) and min(dxs) < 0 < max(dxs)


# ----------------------------------------------------------------------------------------- vectorised pieces
def test_vectorised_roll_equals_per_image_torch_roll() -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(20, 3, 7, 9, generator=gen)
    shift_h = torch.randint(-9, 10, (20,), generator=gen)
    shift_w = torch.randint(-11, 12, (20,), generator=gen)  # also shifts beyond the image size
    expected = torch.stack([torch.roll(x[i], (int(shift_h[i]), int(shift_w[i])), dims=(-2, -1)) for i in range(20)])
    assert torch.equal(_roll_per_image(x, shift_h, shift_w), expected)


def test_vectorised_contrast_equals_torchvision_per_image() -> None:
    gen = torch.Generator().manual_seed(1)
    x = torch.rand(12, 3, 10, 10, generator=gen)
    factors = torch.cat([torch.tensor([0.0, 0.5, 1.0, 1.5, 2.0, 3.0]), torch.rand(6, generator=gen) * 2])
    out = _adjust_contrast(x, factors.view(-1, 1, 1, 1))
    expected = torch.stack([TF.adjust_contrast(x[i], float(factors[i])) for i in range(12)])
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-6)
    assert out.min() >= 0 and out.max() <= 1  # clamped like torchvision


@pytest.mark.parametrize("size", [(16, 16), (8, 8), (4, 4), (5, 12), (1, 1), (32, 32), (48, 40)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_matmul_resize_equals_bicubic_interpolate(size: tuple[int, int], dtype: torch.dtype) -> None:
    gen = torch.Generator().manual_seed(2)
    x = torch.rand(3, 3, 32, 24, generator=gen, dtype=dtype) * 1.4 - 0.2  # noisy images leave [0, 1]
    expected = F.interpolate(x, size=size, mode="bicubic", align_corners=False)
    out = _resize(x, size)
    assert out.shape == expected.shape and out.dtype == dtype
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-5 if dtype == torch.float32 else 1e-12)
    # and the gradient is the interpolation's gradient
    xg, xr = x.clone().requires_grad_(), x.clone().requires_grad_()
    weight = torch.rand(expected.shape, generator=gen, dtype=dtype)
    (_resize(xg, size) * weight).sum().backward()
    (F.interpolate(xr, size=size, mode="bicubic", align_corners=False) * weight).sum().backward()
    torch.testing.assert_close(xg.grad, xr.grad, rtol=0, atol=1e-5 if dtype == torch.float32 else 1e-12)


# ----------------------------------------------------------------------------------------- gradients / dtypes
@pytest.mark.parametrize("stochastic", [True, False])
def test_gradient_flows_to_input(stochastic: bool) -> None:
    x = images(2).requires_grad_()
    MultiResolutionStack(stochastic=stochastic)(x).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


@pytest.mark.parametrize("variant", ["code", "paper"])
def test_gradcheck_with_fixed_randomness(variant: str) -> None:
    x = images(1, size=8, dtype=torch.float64).mul(0.5).add(0.25).requires_grad_()  # away from the clamps
    stack = MultiResolutionStack((8, 4), variant=variant, down_noise=0.02, up_noise=0.02)
    fn = lambda inp: stack(inp, generator=torch.Generator().manual_seed(0))  # same draws every call
    assert torch.autograd.gradcheck(fn, (x,), eps=1e-6, atol=1e-5)


def test_float64() -> None:
    x = images(2, dtype=torch.float64)
    for stochastic in (True, False):
        out = MultiResolutionStack(stochastic=stochastic)(x)
        assert out.dtype == torch.float64 and out.min() >= 0 and out.max() <= 1
    # the deterministic mode is the same function in both precisions
    det = MultiResolutionStack(stochastic=False)
    torch.testing.assert_close(det(x).float(), det(x.float()), rtol=0, atol=1e-5)
    # and float64 inputs stay float64 through a forward and backward pass
    x.requires_grad_()
    MultiResolutionStack()(x).sum().backward()
    assert x.grad.dtype == torch.float64


# ----------------------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    "x,error,match",
    [
        (torch.rand(3, 32, 32), ValueError, r"\[B, 3, H, W\], got \(3, 32, 32\)"),
        (torch.rand(2, 1, 32, 32), ValueError, r"\[B, 3, H, W\], got \(2, 1, 32, 32\)"),
        (torch.rand(2, 4, 32, 32), ValueError, r"\[B, 3, H, W\]"),
        (torch.zeros(2, 3, 32, 32, dtype=torch.uint8), TypeError, "floating-point.*uint8"),
    ],
)
@pytest.mark.parametrize("stochastic", [True, False])
def test_bad_input(x: torch.Tensor, error: type[Exception], match: str, stochastic: bool) -> None:
    with pytest.raises(error, match=match):
        MultiResolutionStack(stochastic=stochastic)(x)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"resolutions": ()}, "non-empty sequence of positive ints"),
        ({"resolutions": (32, 0)}, "positive ints"),
        ({"variant": "gaussian"}, r"unknown variant 'gaussian'; choose one of \('code', 'paper'\)"),
        ({"jitter": -1}, "must be >= 0"),
        ({"down_noise": -0.1}, "must be >= 0"),
        ({"up_noise": -0.1}, "must be >= 0"),
        ({"contrast_range": (1.5, 0.7)}, r"contrast_range must satisfy 0 <= low <= high, got \(1.5, 0.7\)"),
        ({"color_range": (-0.1, 1.0)}, "color_range must satisfy"),
    ],
)
def test_bad_construction(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        MultiResolutionStack(**kwargs)


@pytest.mark.parametrize(
    "settings, differ",
    [
        ({"jitter": 0, "down_noise": 0.0, "up_noise": 0.0, "color_range": (1.0, 1.0)}, False),
        ({"jitter": 1, "down_noise": 0.0, "up_noise": 0.0, "color_range": (1.0, 1.0)}, True),
        ({"jitter": 0, "down_noise": 0.0, "up_noise": 0.1, "color_range": (1.0, 1.0)}, True),
        ({"jitter": 0, "down_noise": 0.0, "up_noise": 0.0, "color_range": (0.9, 1.0)}, True),
        # the code variant draws no contrast of its own (it reuses the colour draw)
        ({"jitter": 0, "down_noise": 0.0, "up_noise": 0.0, "color_range": (1.0, 1.0), "contrast_range": (0.7, 1.5)},
         False),
        ({"jitter": 0, "down_noise": 0.0, "up_noise": 0.0, "color_range": (1.0, 1.0), "contrast_range": (0.7, 1.5),
          "variant": "paper"}, True),
    ],
)  # fmt: skip
def test_is_random_says_whether_two_draws_can_differ(settings: dict, differ: bool) -> None:
    stack = MultiResolutionStack((32, 16), **settings)
    x = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    a, b = stack(x), stack(x)  # two draws from the stack's own generator
    assert stack.is_random is differ
    assert torch.equal(a, b) is not differ
