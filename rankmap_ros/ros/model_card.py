"""A model file's card: what its training fixed that the zoo cannot know.

`<model file>.yaml` beside `<zoo model>[-tag].pt` gives the input normalisation the weights were
trained with and the names of their classes; without one, ImageNet's normalisation and class
indices apply. The manager reads it when the DNN is registered (a bad card is refused like a bad
model file) and each executor reads it again when it starts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from rankmap_ros.core.numbers import finite_number
from rankmap_ros.ros.image_codec import IMAGENET_MEAN, IMAGENET_STD

FIELDS = ("mean", "std", "labels", "labels_file")
MAX_LABEL_LENGTH = 256


class ModelCardError(ValueError):
    """A card that cannot be used as written; the message names the card and the field."""


@dataclass(frozen=True)
class ModelCard:
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    labels: tuple[str, ...] = ()  # class index -> name; empty: indices are the class ids


def card_path(weights: str | Path) -> Path:
    return Path(weights).with_suffix(".yaml")


def read_card(weights: str | Path | None, num_classes: int) -> ModelCard:
    """The card of a model file (defaults where it has none, or for the zoo's own weights)."""
    if weights is None or not card_path(weights).is_file():
        return ModelCard()
    path = card_path(weights)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
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
        source = path.parent / str(data["labels_file"])
        try:
            raw: Any = [line.strip() for line in source.read_text(encoding="utf-8").splitlines() if line.strip()]
        except (OSError, UnicodeDecodeError) as exc:
            raise ModelCardError(f"model card {path}: labels_file {source} cannot be read: {exc}") from exc
    else:
        raw = data.get("labels", [])
    if not isinstance(raw, list) or not all(isinstance(v, str) and v.strip() for v in raw):
        raise ModelCardError(f"model card {path}: labels must be a list of non-empty names")
    if raw and len(raw) != num_classes:
        raise ModelCardError(f"model card {path}: {len(raw)} labels for a model of {num_classes} classes")
    too_long = [v for v in raw if len(v) > MAX_LABEL_LENGTH]
    if too_long:
        raise ModelCardError(f"model card {path}: labels are at most {MAX_LABEL_LENGTH} characters")
    return tuple(v.strip() for v in raw)
