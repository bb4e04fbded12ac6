"""Class names of the zoo's datasets, in label order (the order of torchvision's CIFAR ``meta`` files).

CIFAR-10: ``batches.meta`` ``label_names``; CIFAR-100: ``meta`` ``fine_label_names`` (alphabetical), with the
underscores of the originals kept, so that names match the datasets' own files.
"""

from __future__ import annotations

from ..datasets import parse_dataset

__all__ = ["CLASS_NAMES", "class_index", "class_names"]

CLASS_NAMES: dict[str, tuple[str, ...]] = {
    "cifar10": ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"),
    "cifar100": (
        "apple", "aquarium_fish", "baby", "bear", "beaver", "bed", "bee", "beetle", "bicycle", "bottle",
        "bowl", "boy", "bridge", "bus", "butterfly", "camel", "can", "castle", "caterpillar", "cattle",
        "chair", "chimpanzee", "clock", "cloud", "cockroach", "couch", "crab", "crocodile", "cup", "dinosaur",
        "dolphin", "elephant", "flatfish", "forest", "fox", "girl", "hamster", "house", "kangaroo", "keyboard",
        "lamp", "lawn_mower", "leopard", "lion", "lizard", "lobster", "man", "maple_tree", "motorcycle", "mountain",
        "mouse", "mushroom", "oak_tree", "orange", "orchid", "otter", "palm_tree", "pear", "pickup_truck", "pine_tree",
        "plain", "plate", "poppy", "porcupine", "possum", "rabbit", "raccoon", "ray", "road", "rocket",
        "rose", "sea", "seal", "shark", "shrew", "skunk", "skyscraper", "snail", "snake", "spider",
        "squirrel", "streetcar", "sunflower", "sweet_pepper", "table", "tank", "telephone", "television", "tiger",
        "tractor", "train", "trout", "tulip", "turtle", "wardrobe", "whale", "willow_tree", "wolf", "woman", "worm",
    ),
}  # fmt: skip


def class_names(dataset: str) -> tuple[str, ...]:
    """The class names of ``dataset`` (``"cifar10"``, ``"CIFAR-100"``, ...), indexed by label."""
    return CLASS_NAMES[parse_dataset(dataset)]


def class_index(dataset: str, name_or_index: str | int) -> int:
    """A class given by name (``"apple"``, ``"aquarium fish"``) or by label, checked against ``dataset``."""
    names = class_names(dataset)
    if isinstance(name_or_index, int) or str(name_or_index).isdigit():
        index = int(name_or_index)
        if not 0 <= index < len(names):
            raise ValueError(f"class {index} is out of range for {dataset} ({len(names)} classes)")
        return index
    key = str(name_or_index).strip().lower().replace(" ", "_")
    if key not in names:
        raise ValueError(f"unknown {dataset} class {name_or_index!r}; choose one of {', '.join(names)}")
    return names.index(key)
