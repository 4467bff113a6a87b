"""Where throughput labels come from: the simulator here, measurements on a real host later.

A label source also gives each model's isolated rate on the reference component (the paper's
ideal throughput), because the estimator learns throughput relative to it (docs/ESTIMATOR.md).
Datasets and checkpoints record the source's platform fingerprint so that labels made under
one calibration are never silently mixed with another.
"""

from __future__ import annotations

import hashlib
import json
from typing import Protocol

from rankmap_ros.core.mapping import Mapping
from rankmap_ros.core.platform import Platform
from rankmap_ros.core.simulator import ideal_throughput, simulate
from rankmap_ros.core.workload import Workload


def platform_fingerprint(platform: Platform) -> str:
    """Short hash of everything the platform file says; a recalibration changes it."""
    text = json.dumps(platform.to_dict(), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class LabelSource(Protocol):
    """Throughput labels for (workload, mapping) pairs on one platform."""

    name: str
    platform_name: str
    platform_fingerprint: str
    components: tuple[str, ...]
    settings: dict[str, float]  # what the labels depend on besides the platform (a measuring window)

    def label(self, workload: Workload, mapping: Mapping) -> dict[str, float]:
        """Inferences/s of every DNN of the workload, by instance name."""
        ...

    def ideal(self, model: str) -> float:
        """Inferences/s of the model alone on the platform's reference component."""
        ...


class SimulatorLabels:
    """Labels from the analytic simulator (every number it gives is simulated)."""

    name = "simulator"

    def __init__(self, platform: Platform) -> None:
        self.platform = platform
        self.platform_name = platform.name
        self.platform_fingerprint = platform_fingerprint(platform)
        self.components = platform.component_names
        self.settings: dict[str, float] = {}

    def label(self, workload: Workload, mapping: Mapping) -> dict[str, float]:
        return dict(simulate(self.platform, workload, mapping).throughput)

    def ideal(self, model: str) -> float:
        return ideal_throughput(self.platform, model)
