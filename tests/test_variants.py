"""Inference-time variants (eee_zoo.models.variants.derive): the same weights, other knobs."""

from __future__ import annotations

import pytest
import torch

from eee_zoo.models import SelfEnsemble, crossmax, mean_logits
from eee_zoo.models.variants import derive


def _images(n: int = 6) -> torch.Tensor:
    return torch.rand(n, 3, 32, 32, generator=torch.Generator().manual_seed(1))


def test_no_change_is_the_same_function(tiny_model: SelfEnsemble) -> None:
    tiny_model.eee_info = {"name": "tiny", "sha256": "a" * 64, "card_path": "/nowhere/README.md"}
    variant = derive(tiny_model)
    x = _images()
    for stochastic in (False, True):
        tiny_model.set_stochastic(stochastic).manual_seed(5)
        variant.set_stochastic(stochastic).manual_seed(5)
        torch.testing.assert_close(variant(x), tiny_model(x), rtol=0, atol=0)
    assert variant.eee_info["variant_of"] == "tiny" and variant.eee_info["changes"] == {}
    assert variant.eee_info["sha256"] == "a" * 64 and "card_path" not in variant.eee_info
    assert not variant.training


def test_predictor_subset_keeps_those_predictors_logits(tiny_model: SelfEnsemble) -> None:
    tiny_model.set_stochastic(False)
    names = tiny_model.predictor_names  # stem, block1, block2, backbone
    keep = [names[1], "backbone"]
    variant = derive(tiny_model, predictors=keep[::-1], k=2)  # order given does not matter: the model's is kept
    assert variant.predictor_names == keep and variant.k == 2
    x = _images()
    full = tiny_model.predictor_logits(x)
    torch.testing.assert_close(variant.predictor_logits(x), full[:, [1, 3]], rtol=0, atol=0)
    torch.testing.assert_close(variant(x), crossmax(full[:, [1, 3]], 2), rtol=0, atol=0)
    only_heads = derive(tiny_model, predictors=names[:3])
    assert not only_heads.include_backbone_head and only_heads.k == 3


def test_aggregator_and_k(tiny_model: SelfEnsemble) -> None:
    tiny_model.set_stochastic(False)
    x = _images()
    logits = tiny_model.predictor_logits(x)
    torch.testing.assert_close(derive(tiny_model, k=2)(x), crossmax(logits, 2), rtol=0, atol=0)
    torch.testing.assert_close(derive(tiny_model, aggregator="mean")(x), mean_logits(logits), rtol=0, atol=0)
    assert tiny_model.k == 3 and tiny_model.aggregator == "crossmax"  # the original is left as it was


def test_stack_knobs(tiny_model: SelfEnsemble) -> None:
    quiet = derive(tiny_model, stack={"down_noise": 0.0, "up_noise": 0.0, "jitter": 0})
    assert (quiet.stack.down_noise, quiet.stack.up_noise, quiet.stack.jitter) == (0.0, 0.0, 0)
    assert tiny_model.stack.down_noise > 0 and quiet.eee_info["changes"]["stack"]["jitter"] == 0
    deterministic = derive(tiny_model, stack={"stochastic": False})
    x = _images()
    tiny_model.set_stochastic(False)
    torch.testing.assert_close(deterministic(x), tiny_model(x), rtol=0, atol=0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"predictors": ["block9"]}, "unknown predictors ['block9']"),
        ({"predictors": []}, "at least one predictor"),
        ({"predictors": ["backbone"]}, "k=3 must be between 1 and the number of predictors (1)"),
        ({"k": 1}, "CrossMax with k=1 scores every class 0"),  # a constant classifier, not a variant
        ({"k": 9}, "k=9 must be between 1"),
        ({"aggregator": "median"}, "unknown aggregator 'median'"),
        ({"stack": {"resolutions": [32]}}, "stack settings ['resolutions'] cannot change at inference"),
    ],
)
def test_bad_variants_fail_with_one_clear_line(tiny_model: SelfEnsemble, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError) as err:
        derive(tiny_model, **kwargs)
    assert message in str(err.value) and "\n" not in str(err.value)
