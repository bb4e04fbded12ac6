"""eee_zoo.evaluation.examples: adversarial examples beside results files, float16 deltas, refused for other images."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from eee_zoo.evaluation import load_adversarial_examples, save_adversarial_examples
from eee_zoo.evaluation.examples import project

META = {"model_sha256": "ab" * 32, "dataset": "cifar10", "version": "rand", "seed": "0", "mode": "stochastic"}


def _images(n: int = 12, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, 32, 32, generator=g)
    x[0, 0, :4] = 0.0  # pixels on the edges of [0, 1], where a perturbation must be clipped
    x[0, 1, :4] = 1.0
    return x


def _examples(x: torch.Tensor, eps: float, threat_model: str, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    delta = torch.rand(x.shape, generator=g) * 2 - 1
    if threat_model == "Linf":
        delta = delta * eps
    else:
        delta = delta * (eps / delta.flatten(1).norm(dim=1)).view(-1, 1, 1, 1)  # on the sphere: rounding crosses it
    x_adv = (x + delta).clamp(0, 1)
    x_adv[1::3] = x[1::3]  # images no attack broke: their example is the clean image
    return x_adv


def _norms(delta: torch.Tensor, threat_model: str) -> torch.Tensor:
    flat = delta.flatten(1)
    return flat.abs().max(dim=1)[0] if threat_model == "Linf" else flat.norm(dim=1)


@pytest.mark.parametrize("threat_model,eps", [("Linf", 8 / 255), ("L2", 0.5)])
def test_round_trip_stays_close_inside_the_ball_and_the_image_range(
    tmp_path: Path, threat_model: str, eps: float
) -> None:
    x = _images()
    x_adv = _examples(x, eps, threat_model)
    kwargs = {"eps": eps, "threat_model": threat_model, "metadata": META}
    path = save_adversarial_examples(tmp_path / "r.adv.safetensors", x, x_adv, **kwargs)
    loaded, metadata = load_adversarial_examples(path, x)
    assert (loaded - x_adv).abs().max() <= 1e-3
    assert _norms(loaded - x, threat_model).max() <= eps * (1 + 1e-6)
    assert loaded.min() >= 0 and loaded.max() <= 1
    unchanged = torch.zeros(len(x), dtype=torch.bool)
    unchanged[1::3] = True
    assert torch.equal(loaded[unchanged], x[unchanged])
    assert {k: metadata[k] for k in META} == META
    assert (metadata["threat_model"], float(metadata["eps"]), metadata["n_examples"]) == (threat_model, eps, "12")

    with safe_open(str(path), framework="pt") as f:  # only the images that differ, as float16 deltas
        indices, delta = f.get_tensor("indices"), f.get_tensor("delta")
    assert indices.dtype == torch.int64 and delta.dtype == torch.float16
    assert indices.tolist() == [i for i in range(len(x)) if not unchanged[i]]
    assert delta.shape == (len(indices), 3, 32, 32)


def test_examples_outside_the_ball_are_projected_back(tmp_path: Path) -> None:
    x = _images(4)
    eps = 4 / 255
    too_far = (x + 3 * eps).clamp(0, 1)  # an earlier attack's bug: a perturbation that grew past eps
    path = save_adversarial_examples(tmp_path / "a.adv", x, too_far, eps=eps, threat_model="Linf", metadata={})
    loaded, _ = load_adversarial_examples(path, x)
    assert _norms(loaded - x, "Linf").max() <= eps + 1e-7 and loaded.max() <= 1
    l2 = project(x, x + 1.0, 0.5, "L2")
    assert _norms(l2 - x, "L2").max() <= 0.5 + 1e-6 and l2.max() <= 1


def test_other_images_are_refused_with_one_clear_error(tmp_path: Path) -> None:
    x = _images()
    x_adv = _examples(x, 8 / 255, "Linf")
    path = save_adversarial_examples(tmp_path / "r.adv", x, x_adv, eps=8 / 255, threat_model="Linf", metadata=META)
    for other in (_images(seed=1), x[:6], x.flip(0)):
        with pytest.raises(ValueError, match=r"computed on other images \(12 images, sha256 .*load them with the"):
            load_adversarial_examples(path, other)


def test_bad_arguments_are_refused(tmp_path: Path) -> None:
    x = _images(3)
    with pytest.raises(ValueError, match="same shape"):
        save_adversarial_examples(tmp_path / "a", x, x[:2], eps=0.1, threat_model="Linf", metadata={})
    with pytest.raises(ValueError, match="unknown threat model"):
        save_adversarial_examples(tmp_path / "a", x, x, eps=0.1, threat_model="L1", metadata={})
    with pytest.raises(ValueError, match="strings to strings"):
        save_adversarial_examples(tmp_path / "a", x, x, eps=0.1, threat_model="Linf", metadata={"seed": 0})
    with pytest.raises(ValueError, match="strings to strings"):
        save_adversarial_examples(tmp_path / "a", x, x, eps=0.1, threat_model="Linf", metadata={"eps": "1"})
    assert not (tmp_path / "a").exists()
    nothing = save_adversarial_examples(tmp_path / "b", x, x, eps=0.1, threat_model="Linf", metadata={})
    assert torch.equal(load_adversarial_examples(nothing, x)[0], x)  # no image broken: an empty file, still valid
