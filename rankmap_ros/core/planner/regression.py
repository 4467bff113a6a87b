"""MOSAIC and ODMDEF: planners built on regression models of single-DNN measurements.

Both learn from every zoo model profiled alone on the board (here the simulator of the
platform): the latency of each unit on each component. Neither sees contention, priorities
or thresholds, which is why the paper finds them overloading the GPU.

- MOSAIC [21]: per component, a linear regression of unit latency on the unit's input size;
  each DNN in turn greedily takes the pipeline (cut points and components) with the lowest
  predicted bottleneck stage, transfers included, as if it ran alone.
- ODMDEF [22]: a linear regression of unit latency on input size, output size, MACs and
  parameters, and a k-nearest-neighbour classifier that picks each unit's component; the
  classifier learns from the best standalone pipeline of every other zoo model (measured),
  and the regression merges the classifier's runs into at most `max_stages` stages.
"""

from __future__ import annotations

import time
from abc import abstractmethod
from collections.abc import Callable, Sequence
from functools import cache

import numpy as np

from rankmap_ros.core import zoo
from rankmap_ros.core.mapping import Mapping
from rankmap_ros.core.planner.base import Plan, Planner
from rankmap_ros.core.planner.plans import (
    MappingBuilder,
    StagePlan,
    enumerate_plans,
    expand,
    legal_routes,
    plan_from_indices,
    routes,
)
from rankmap_ros.core.platform import Platform
from rankmap_ros.core.simulator import throughputs, unit_time
from rankmap_ros.core.throughput import ThroughputModel
from rankmap_ros.core.unitvec import UnitInfo, profile, vectors
from rankmap_ros.core.workload import Workload

KNN_NEIGHBOURS = 5
Features = Callable[[UnitInfo], list[float]]


def _mosaic_features(u: UnitInfo) -> list[float]:
    return [1.0, float(np.prod(u.ifm))]


def _odmdef_features(u: UnitInfo) -> list[float]:
    return [1.0, float(np.prod(u.ifm)), float(np.prod(u.ofm)), float(u.macs), float(u.params)]


@cache
def _measured_units(platform: Platform) -> tuple[tuple[UnitInfo, ...], np.ndarray]:
    """Every unit of every zoo model and its measured latency alone on each component (units, components)."""
    units = tuple(u for name in zoo.names() for u in profile(name))
    return units, np.stack([unit_time(platform, u) for u in units])


@cache
def latency_regression(platform: Platform, features: Features) -> np.ndarray:
    """Least-squares weights (features, components) of unit latency, fitted on single-DNN measurements."""
    units, latency = _measured_units(platform)
    x = np.array([features(u) for u in units])
    weights, *_ = np.linalg.lstsq(x, latency, rcond=None)
    return weights


def _predicted_prefix(platform: Platform, model: str, features: Features) -> np.ndarray:
    """(components, units + 1) prefix sums of predicted unit latency, clipped at zero per unit."""
    x = np.array([features(u) for u in profile(model)])
    per_unit = np.clip(x @ latency_regression(platform, features), 0.0, None).T
    return np.concatenate([np.zeros((per_unit.shape[0], 1)), np.cumsum(per_unit, axis=1)], axis=1)


def _bottleneck(platform: Platform, model: str, plan: StagePlan, prefix: np.ndarray) -> float:
    """Predicted time of the slowest stage of a DNN running alone, input transfers included."""
    names = platform.component_names
    units = profile(model)
    worst = 0.0
    start = 0
    previous = -1
    for stop, comp in plan:
        busy = prefix[comp, stop] - prefix[comp, start]
        if previous >= 0:
            busy += platform.transfer(names[previous], names[comp]).seconds(units[start].in_bytes)
        worst = max(worst, busy)
        start, previous = stop, comp
    return worst


class _RegressionPlanner(Planner):
    """Plans each DNN on its own with a fixed rule; the throughput model only reports the result."""

    def __init__(self, model: ThroughputModel, max_stages: int = 3) -> None:
        super().__init__(model)
        self.max_stages = max_stages

    @abstractmethod
    def dnn_plan(self, workload: Workload, i: int) -> StagePlan:
        """The plan of DNN i, chosen without regard to the others."""

    def plan(
        self,
        workload: Workload,
        priorities: Sequence[float] | None = None,
        warm_start: Mapping | None = None,
    ) -> Plan:
        started = time.perf_counter()
        builder = MappingBuilder(workload, self.components)
        mapping = builder.mapping(tuple(self.dnn_plan(workload, i) for i in range(len(workload))))
        return self.one_shot(workload, mapping, started)


class MosaicPlanner(_RegressionPlanner):
    """MOSAIC: input-size latency regression, each DNN greedily takes its own best pipeline."""

    name = "mosaic"

    def dnn_plan(self, workload: Workload, i: int) -> StagePlan:
        platform = self.model.platform
        model = workload.dnns[i].model
        prefix = _predicted_prefix(platform, model, _mosaic_features)
        n = len(profile(model))
        choices = legal_routes(n, routes(len(self.components), self.max_stages))
        return min(enumerate_plans(n, choices), key=lambda plan: _bottleneck(platform, model, plan, prefix))


class OdmdefPlanner(_RegressionPlanner):
    """ODMDEF: k-NN picks each unit's component; the latency regression merges runs into stages."""

    name = "odmdef"

    def dnn_plan(self, workload: Workload, i: int) -> StagePlan:
        platform = self.model.platform
        model = workload.dnns[i].model
        x_train, y_train = _knn_training_set(platform, model, self.max_stages)
        x = _knn_features(model)
        votes = np.zeros((len(x), len(self.components)))
        for row, point in enumerate(x):
            nearest = np.argsort(((x_train - point) ** 2).sum(axis=1), kind="stable")[:KNN_NEIGHBOURS]
            np.add.at(votes[row], y_train[nearest], 1.0)
        prefix = _predicted_prefix(platform, model, _odmdef_features)
        per_unit = np.diff(prefix, axis=1).T  # (units, components)
        labels = [int(np.lexsort((per_unit[j], -votes[j]))[0]) for j in range(len(x))]
        return _merge_runs(labels, per_unit, self.max_stages)


def _knn_features(model: str) -> np.ndarray:
    """Log unit vectors plus the unit's relative depth in its DNN."""
    raw = vectors(model)
    depth = np.arange(len(raw)) / max(len(raw) - 1, 1)
    return np.column_stack([np.log1p(raw), depth])


@cache
def _standalone_best(platform: Platform, model: str, max_stages: int) -> StagePlan:
    """The measured best pipeline of one model alone on the board (all plans tried)."""
    workload = Workload.from_models([model])
    builder = MappingBuilder(workload, platform.component_names)
    n = builder.units[0]
    plans = list(enumerate_plans(n, legal_routes(n, routes(len(platform.components), max_stages))))
    rates = throughputs(platform, workload, [builder.mapping((plan,)) for plan in plans])[:, 0]
    return plans[int(np.argmax(rates))]


def _knn_training_set(platform: Platform, exclude: str, max_stages: int) -> tuple[np.ndarray, np.ndarray]:
    """Units of every other zoo model labelled with their component in that model's best standalone pipeline."""
    xs, ys = [], []
    for name in zoo.names():
        if name == exclude:
            continue
        xs.append(_knn_features(name))
        ys.append(expand(_standalone_best(platform, name, max_stages)))
    return np.concatenate(xs), np.concatenate(ys)


def _merge_runs(labels: list[int], per_unit: np.ndarray, max_stages: int) -> StagePlan:
    """Relabel the run with the least predicted time to a neighbour's component until the runs form valid stages."""
    labels = list(labels)
    while True:
        plan = plan_from_indices(labels)
        comps = [c for _, c in plan]
        if len(plan) <= max_stages and len(set(comps)) == len(comps):
            return plan
        starts = [0, *(stop for stop, _ in plan[:-1])]
        cost = [per_unit[a:stop, comp].sum() for a, (stop, comp) in zip(starts, plan, strict=True)]
        k = int(np.argmin(cost))
        a, b = starts[k], plan[k][0]
        j = min((j for j in (k - 1, k + 1) if 0 <= j < len(plan)), key=lambda j: per_unit[a:b, plan[j][1]].sum())
        labels[a:b] = [plan[j][1]] * (b - a)
