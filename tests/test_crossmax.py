"""CrossMax (arXiv:2408.05446, Alg. 1) and the mean aggregator, checked against straightforward loop code."""

from __future__ import annotations

import pytest
import torch

from eee_zoo.models import AGGREGATORS, crossmax, mean_logits
from eee_zoo.models.crossmax import get_aggregator


def crossmax_loops(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Independent CrossMax on Python floats: the three steps of the algorithm written out with loops."""
    batch, predictors, classes = logits.shape
    out = torch.empty(batch, classes, dtype=torch.float64)
    for b in range(batch):
        z = [[float(logits[b, p, c]) for c in range(classes)] for p in range(predictors)]
        # 1. subtract each predictor's max over classes
        z = [[v - max(row) for v in row] for row in z]
        # 2. subtract each class's max over predictors
        class_max = [max(z[p][c] for p in range(predictors)) for c in range(classes)]
        z = [[z[p][c] - class_max[c] for c in range(classes)] for p in range(predictors)]
        # 3. the k-th largest value over predictors
        for c in range(classes):
            out[b, c] = sorted((z[p][c] for p in range(predictors)), reverse=True)[k - 1]
    return out


# Four predictors, four classes. Class 3 is nobody's favourite, yet it is everybody's close second.
HAND_LOGITS = torch.tensor(
    [
        [3.0, 1.0, 0.0, 2.0],  # step 1 -> [ 0, -2, -3, -1]
        [1.0, 4.0, 2.0, 3.0],  # step 1 -> [-3,  0, -2, -1]
        [2.0, 2.0, 6.0, 5.0],  # step 1 -> [-4, -4,  0, -1]
        [5.0, 0.0, 1.0, 1.0],  # step 1 -> [ 0, -5, -4, -4]
    ]
).unsqueeze(0)
# Step 2: class maxima over predictors are [0, 0, 0, -1], so only column 3 moves: [0, 0, 0, -3].
HAND_EXPECTED = {
    1: [0.0, 0.0, 0.0, 0.0],
    2: [0.0, -2.0, -2.0, 0.0],
    3: [-3.0, -4.0, -3.0, 0.0],  # k=3 picks class 3: robust to the single confident predictor per class
    4: [-4.0, -5.0, -4.0, -3.0],
}


@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_hand_computed_example(k: int) -> None:
    out = crossmax(HAND_LOGITS, k=k)
    assert out.shape == (1, 4)
    assert out[0].tolist() == HAND_EXPECTED[k]
    assert torch.equal(crossmax_loops(HAND_LOGITS, k).float(), out)


def test_hand_example_prediction_flips_with_k() -> None:
    # The max-vote (k=1) ties everywhere; k=3 prefers the class that every predictor ranks highly.
    assert crossmax(HAND_LOGITS, k=3).argmax(dim=1).item() == 3


@pytest.mark.parametrize("shape,k", [((5, 7, 10), 3), ((3, 2, 4), 1), ((2, 6, 3), 6), ((1, 1, 5), 1)])
def test_matches_loop_implementation_on_random_logits(shape: tuple[int, int, int], k: int) -> None:
    gen = torch.Generator().manual_seed(sum(shape) + k)
    logits = torch.randn(shape, generator=gen, dtype=torch.float64) * 3
    torch.testing.assert_close(crossmax(logits, k=k), crossmax_loops(logits, k), rtol=0, atol=1e-12)


def test_k_th_largest_semantics() -> None:
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(4, 5, 6, generator=gen)
    z = logits - logits.amax(dim=2, keepdim=True)
    z = z - z.amax(dim=1, keepdim=True)
    # k=1 is the max over predictors, which step 2 made exactly 0; k=P is the min over predictors.
    assert torch.equal(crossmax(logits, k=1), torch.zeros(4, 6))
    assert torch.equal(crossmax(logits, k=5), z.amin(dim=1))
    # k-th largest == (P - k + 1)-th smallest
    for k in range(1, 6):
        assert torch.equal(crossmax(logits, k=k), z.sort(dim=1).values[:, 5 - k, :])
    # and it is monotone in k
    for k in range(1, 5):
        assert (crossmax(logits, k=k) >= crossmax(logits, k=k + 1)).all()


def test_ties_are_counted_as_separate_predictors() -> None:
    # Two predictors with identical logits: the 2nd largest is the tied value, not the next distinct one.
    logits = torch.tensor([[[0.0, 1.0], [0.0, 1.0], [1.0, 0.0]]])
    # step 1: [[-1, 0], [-1, 0], [0, -1]]; step 2 (class maxima [0, 0]) leaves it unchanged
    assert crossmax(logits, k=2)[0].tolist() == [-1.0, 0.0]


def test_invariant_to_per_predictor_constants_and_predictor_order() -> None:
    gen = torch.Generator().manual_seed(1)
    logits = torch.randn(3, 5, 10, generator=gen, dtype=torch.float64)
    shift = torch.randn(3, 5, 1, generator=gen, dtype=torch.float64) * 100
    torch.testing.assert_close(crossmax(logits + shift, k=3), crossmax(logits, k=3))
    perm = torch.randperm(5, generator=gen)
    torch.testing.assert_close(crossmax(logits[:, perm], k=3), crossmax(logits, k=3))


def test_not_invariant_to_per_class_constants() -> None:
    # Sanity check that the invariance test above can fail: a per-class shift does change the result.
    gen = torch.Generator().manual_seed(2)
    logits = torch.randn(3, 5, 10, generator=gen)
    class_shift = torch.arange(10.0).view(1, 1, 10)
    assert not torch.allclose(crossmax(logits + class_shift, k=3), crossmax(logits, k=3))


def test_batch_rows_are_independent() -> None:
    gen = torch.Generator().manual_seed(3)
    logits = torch.randn(6, 4, 5, generator=gen)
    full = crossmax(logits, k=2)
    for i in range(6):
        assert torch.equal(crossmax(logits[i : i + 1], k=2), full[i : i + 1])


def test_gradient_flows() -> None:
    gen = torch.Generator().manual_seed(4)
    logits = torch.randn(2, 5, 7, generator=gen, dtype=torch.float64, requires_grad=True)
    crossmax(logits, k=3).sum().backward()
    assert logits.grad is not None and torch.isfinite(logits.grad).all()
    assert logits.grad.abs().sum() > 0
    # Piecewise linear and tie-free on random inputs: finite differences agree with autograd.
    assert torch.autograd.gradcheck(lambda z: crossmax(z, k=3), (logits.detach().requires_grad_(),))


@pytest.mark.parametrize("k", [4, 10])
def test_k_larger_than_predictors_is_a_clear_error(k: int) -> None:
    with pytest.raises(ValueError, match=rf"k={k} exceeds the number of predictors \(3\)"):
        crossmax(torch.zeros(2, 3, 5), k=k)


@pytest.mark.parametrize("k", [0, -1, 1.5, True, "3", None])
def test_bad_k(k: object) -> None:
    with pytest.raises(ValueError, match="k must be a positive integer"):
        crossmax(torch.zeros(2, 3, 5), k=k)  # type: ignore[arg-type]


@pytest.mark.parametrize("aggregate", [crossmax, mean_logits])
@pytest.mark.parametrize(
    "logits,error,match",
    [
        (torch.zeros(3, 5), ValueError, r"\[batch, predictors, classes\], got \(3, 5\)"),
        (torch.zeros(1, 2, 3, 4), ValueError, r"\[batch, predictors, classes\]"),
        (torch.zeros(2, 3, 5, dtype=torch.int64), TypeError, "floating point"),
        (torch.zeros(2, 3, 5, dtype=torch.bool), TypeError, "floating point"),
        ([[[0.0, 1.0]]], TypeError, "torch.Tensor, got list"),
    ],
)
def test_bad_logits(aggregate, logits: object, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        aggregate(logits, 1)


def test_float64_and_float16_keep_dtype() -> None:
    logits = torch.randn(2, 3, 4, dtype=torch.float64)
    assert crossmax(logits, k=2).dtype == torch.float64
    assert crossmax(logits.half(), k=2).dtype == torch.float16


def test_mean_aggregator() -> None:
    gen = torch.Generator().manual_seed(5)
    logits = torch.randn(3, 4, 6, generator=gen, dtype=torch.float64)
    expected = torch.stack([sum(logits[b, p] for p in range(4)) / 4 for b in range(3)])
    torch.testing.assert_close(mean_logits(logits), expected)
    torch.testing.assert_close(mean_logits(logits, k=99), expected)  # k is ignored
    assert mean_logits(logits).shape == (3, 6)


def test_aggregator_registry() -> None:
    assert set(AGGREGATORS) == {"crossmax", "mean"}
    assert get_aggregator("crossmax") is crossmax and get_aggregator("mean") is mean_logits
    with pytest.raises(ValueError, match=r"unknown aggregator 'max'; choose one of \['crossmax', 'mean'\]"):
        get_aggregator("max")


def test_public_import() -> None:
    import eee_zoo

    assert eee_zoo.crossmax is crossmax
