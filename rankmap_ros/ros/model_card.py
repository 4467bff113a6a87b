"""A model file's card: what its training fixed that the zoo cannot know.

A YAML file named like the model file (`squeezenet_v2-parts.yaml` beside `squeezenet_v2-parts.pt`)
gives the input normalisation the weights were trained with and the names of their classes;
without one, ImageNet's normalisation and class indices apply. The manager reads it when the DNN
is registered (a bad card is refused like a bad model file) and each executor reads it again
when it starts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from rankmap_ros.core.files import load_yaml, yaml_problem
from rankmap_ros.core.numbers import finite_number
from rankmap_ros.ros.image_codec import IMAGENET_MEAN, IMAGENET_STD

FIELDS = ("mean", "std", "labels", "labels_file")
MAX_LABEL_LENGTH = 256


class ModelCardError(ValueError):
    """A card that cannot be used as written; the message names the card and the field."""


@dataclass(frozen=True)
class ModelCard:
    """Normalisation of RGB pixels scaled to [0, 1], and the class names (index -> name)."""

    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    labels: tuple[str, ...] = ()  # class index -> name; empty: indices are the class ids


def card_path(weights: str | Path) -> Path:
    """`squeezenet_v2-parts.pt` -> `squeezenet_v2-parts.yaml`, beside it."""
    return Path(weights).with_suffix(".yaml")


def read_card(weights: str | Path | None, num_classes: int) -> ModelCard:
    """The card of a model file (defaults where it has none, or for the zoo's own weights)."""
    if weights is None or not card_path(weights).is_file():
        return ModelCard()
    path = card_path(weights)
    try:
        data = load_yaml(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ModelCardError(f"model card {path} is not valid YAML: {yaml_problem(exc)}") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ModelCardError(f"model card {path} cannot be read: {exc}") from exc
    if data is None:
        return ModelCard()
    if not isinstance(data, Mapping):
        raise ModelCardError(f"model card {path}: expected a mapping of {', '.join(FIELDS)}")
    unknown = set(data) - set(FIELDS)
    if unknown:
        raise ModelCardError(f"model card {path}: unknown fields {', '.join(sorted(map(str, unknown)))}")
    if "labels" in data and "labels_file" in data:
        raise ModelCardError(f"model card {path}: give labels or labels_file, not both")
    return ModelCard(
        mean=_triple(path, "mean", data.get("mean", IMAGENET_MEAN), positive=False),
        std=_triple(path, "std", data.get("std", IMAGENET_STD), positive=True),
        labels=_labels(path, data, num_classes),
    )


def _triple(path: Path, field: str, value: Any, positive: bool) -> tuple[float, float, float]:
    """Per RGB channel, of pixel values scaled to [0, 1]."""
    if not isinstance(value, Sequence) or isinstance(value, str) or len(value) != 3:
        raise ModelCardError(f"model card {path}: {field} must be 3 numbers (R, G, B), got {value!r}")
    if not all(finite_number(v) and (v > 0 or not positive) for v in value):
        kind = "finite numbers > 0" if positive else "finite numbers"
        raise ModelCardError(f"model card {path}: {field} must be {kind}, got {value!r}")
    return (float(value[0]), float(value[1]), float(value[2]))


def _labels(path: Path, data: Mapping[str, Any], num_classes: int) -> tuple[str, ...]:
    if "labels_file" in data:
        raw = _labels_file(path, data["labels_file"])
    else:
        raw = data.get("labels", [])
        if not isinstance(raw, list):
            raise ModelCardError(f"model card {path}: labels must be a list of class names, got {raw!r}")
    for index, label in enumerate(raw):
        if not isinstance(label, str) or not label.strip():
            # YAML reads `- 1`, `- no` or `- null` as numbers, booleans and nothing
            raise ModelCardError(f"model card {path}: label {index} is {label!r}, not a name (quote it)")
        if len(label) > MAX_LABEL_LENGTH:
            raise ModelCardError(f"model card {path}: label {index} is longer than {MAX_LABEL_LENGTH} characters")
    if raw and len(raw) != num_classes:
        raise ModelCardError(f"model card {path}: {len(raw)} labels for a model of {num_classes} classes")
    return tuple(label.strip() for label in raw)


def _labels_file(card: Path, name: Any) -> list[str]:
    """One name per line; a file beside the card (or below it), so a card names nothing else."""
    if not isinstance(name, str) or not name.strip():
        raise ModelCardError(f"model card {card}: labels_file must be a file name, got {name!r}")
    source = (card.parent / name).resolve()
    if not source.is_relative_to(card.parent.resolve()):
        raise ModelCardError(f"model card {card}: labels_file {name} is not in the card's directory")
    try:
        lines = source.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ModelCardError(f"model card {card}: labels_file {source} cannot be read: {exc}") from exc
    while lines and not lines[-1].strip():
        lines.pop()
    blank = [i + 1 for i, line in enumerate(lines) if not line.strip()]
    if blank:  # a class with no name would shift every name after it
        raise ModelCardError(f"model card {card}: labels_file {source} line {blank[0]} is blank")
    return [line.strip() for line in lines]
