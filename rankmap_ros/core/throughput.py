"""The one interface every throughput model offers the planner: predict(workload, mappings)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np

from rankmap_ros.core.mapping import Mapping
from rankmap_ros.core.platform import Platform
from rankmap_ros.core.simulator import throughputs
from rankmap_ros.core.workload import Workload


class ThroughputModel(Protocol):
    """Predicts every DNN's inferences/s for each mapping of one workload."""

    name: str
    platform: Platform

    def predict(self, workload: Workload, mappings: Sequence[Mapping]) -> np.ndarray:
        """(len(mappings), len(workload)) inferences/s, DNNs in workload order."""
        ...


class SimulatorModel:
    """The analytic simulator: ground truth where no board is here."""

    name = "simulator"

    def __init__(self, platform: Platform) -> None:
        self.platform = platform

    def predict(self, workload: Workload, mappings: Sequence[Mapping]) -> np.ndarray:
        return throughputs(self.platform, workload, mappings)
