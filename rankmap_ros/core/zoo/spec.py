"""What the zoo knows about a model before building it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from rankmap_ros.core.zoo.units import UnitNet

Task = Literal["classification", "detection"]


@dataclass(frozen=True)
class ModelSpec:
    """A zoo entry: a stable id, its published input size and a builder with random weights."""

    name: str
    title: str
    input_shape: tuple[int, int, int]
    build: Callable[[], UnitNet]
    task: Task = "classification"
    num_classes: int = 1000
    reference: str = ""
    aliases: tuple[str, ...] = field(default=())
