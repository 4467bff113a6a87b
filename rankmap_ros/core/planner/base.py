"""What every planner shares: the Plan it returns, its budget, and the interface it offers.

A planner turns a workload into a mapping. RankMap and the five baselines all sit behind
`Planner.plan`, so the CLI, the experiments and the ROS manager swap them with one argument.
"""

from __future__ import annotations

import math
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rankmap_ros.core.mapping import Mapping
from rankmap_ros.core.throughput import ThroughputModel
from rankmap_ros.core.workload import Workload


class PlannerError(ValueError):
    """A request the planner cannot serve as given (bad priorities, budget, warm start...)."""


@dataclass(frozen=True)
class Budget:
    """How long a search may run: a count of evaluated mappings and, optionally, wall seconds.

    Whichever runs out first stops the search. Only the simulation count is deterministic, so a
    seeded run repeats exactly when `seconds` is None or never binds.
    """

    simulations: int = 3000
    seconds: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.simulations, int) or self.simulations < 1:
            raise PlannerError(f"budget: simulations must be a positive integer, got {self.simulations!r}")
        if self.seconds is not None and (not math.isfinite(self.seconds) or self.seconds <= 0):
            raise PlannerError(f"budget: seconds must be a positive number, got {self.seconds!r}")


DEFAULT_BUDGET = Budget()


@dataclass(frozen=True)
class Plan:
    """A planner's answer.

    `predicted_throughput` is what the planner's throughput model predicts per DNN (workload
    order, inferences/s); `reward` is the planner's own objective; `feasible` says whether every
    DNN met its threshold (always True for planners without thresholds). `simulations` counts
    mappings evaluated by the throughput model, `measurements` those run on the board (GA).
    `candidates` holds the search's best few (mapping, reward, predicted throughput), best first,
    so a caller can choose among near-equals on another criterion (deadlines, core.rtsim).
    """

    planner: str
    mapping: Mapping
    predicted_throughput: tuple[float, ...]
    reward: float
    feasible: bool
    plan_seconds: float
    simulations: int
    model: str
    measurements: int = 0
    priorities: tuple[float, ...] | None = None
    thresholds: tuple[float, ...] | None = None
    candidates: tuple[tuple[Mapping, float, tuple[float, ...]], ...] = field(default=(), compare=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        names = [d.name for d in self.mapping.dnns]

        def per_dnn(values: Sequence[float] | None) -> dict[str, float] | None:
            return None if values is None else dict(zip(names, map(float, values), strict=True))

        return {
            "planner": self.planner,
            "model": self.model,
            "mapping": self.mapping.to_dict(),
            "predicted_throughput": per_dnn(self.predicted_throughput),
            "reward": self.reward,
            "feasible": self.feasible,
            "plan_seconds": self.plan_seconds,
            "simulations": self.simulations,
            "measurements": self.measurements,
            "priorities": per_dnn(self.priorities),
            "thresholds": per_dnn(self.thresholds),
        }


class Planner(ABC):
    """Maps a workload onto the components of the model's platform."""

    name: str

    def __init__(self, model: ThroughputModel) -> None:
        self.model = model

    @property
    def components(self) -> tuple[str, ...]:
        return self.model.platform.component_names

    @abstractmethod
    def plan(
        self,
        workload: Workload,
        priorities: Sequence[float] | None = None,
        warm_start: Mapping | None = None,
    ) -> Plan:
        """The best mapping this planner finds; `priorities` and `warm_start` are hints it may ignore."""

    def one_shot(self, workload: Workload, mapping: Mapping, started: float) -> Plan:
        """The plan of a planner that picks one mapping without searching: its predicted rates."""
        rates = self.model.predict(workload, [mapping])[0]
        return Plan(
            planner=self.name,
            mapping=mapping,
            predicted_throughput=tuple(float(r) for r in rates),
            reward=float(np.mean(rates)),
            feasible=True,
            plan_seconds=time.perf_counter() - started,
            simulations=1,
            model=self.model.name,
        )
