"""Priority vectors: static (a user's ranking, RankMap_S) and dynamic (from the DNNs' profiles, RankMap_D).

A priority vector has one entry per DNN in workload order, is non-negative, finite, not all
zero, and is normalized to sum to 1 so that rewards of different requests compare.

The dynamic vector weighs each DNN by its computational demand: the seconds one inference
takes alone on the platform's reference component (the GPU), summed over its units' profiled
costs. Heavier DNNs weigh more, in proportion to what they cost, so that O(M)ᵀp counts every
DNN by the fraction of its isolated rate it gets: a balanced share (docs/PLANNER.md).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from rankmap_ros.core.numbers import finite_number
from rankmap_ros.core.planner.base import PlannerError
from rankmap_ros.core.platform import Platform
from rankmap_ros.core.simulator import ideal_throughput
from rankmap_ros.core.workload import Workload


def normalize(values: Sequence[float], workload: Workload) -> tuple[float, ...]:
    """Validate a priority vector against a workload and scale it to sum 1."""
    values = list(values)
    if len(values) != len(workload):
        raise PlannerError(f"{len(values)} priorities given for {len(workload)} DNNs ({', '.join(workload.names)})")
    for name, value in zip(workload.names, values, strict=True):
        if not finite_number(value):
            raise PlannerError(f"priority of {name!r} must be a finite number, got {value!r}")
        if value < 0:
            raise PlannerError(f"priority of {name!r} must be >= 0, got {value!r}")
    peak = max(values, default=0.0)
    if peak <= 0:
        raise PlannerError("priorities are all zero: at least one DNN needs a positive priority")
    scaled = [v / peak for v in values]  # two weights near the float maximum must not add up to inf
    total = math.fsum(scaled)
    return tuple(v / total for v in scaled)


def static_priorities(workload: Workload, values: Sequence[float] | None = None) -> tuple[float, ...]:
    """RankMap_S: the given vector, else each DnnSpec's own priority."""
    return normalize([d.priority for d in workload.dnns] if values is None else values, workload)


def dynamic_priorities(workload: Workload, platform: Platform) -> tuple[float, ...]:
    """RankMap_D: each DNN's computational demand (seconds per inference alone on the reference component)."""
    return normalize([1.0 / ideal_throughput(platform, d.model) for d in workload.dnns], workload)


def parse_priorities(text: str, workload: Workload) -> tuple[float, ...]:
    """'0.7,0.2,0.1' in workload order, or 'name=0.7,other=0.3' naming every DNN."""
    items = [item.strip() for item in text.split(",") if item.strip()]
    if not items:
        raise PlannerError("priorities are empty")
    if all("=" in item for item in items):
        given: dict[str, float] = {}
        for item in items:
            name, _, value = item.partition("=")
            name = name.strip()
            if name not in workload.names:
                raise PlannerError(f"priority for unknown DNN {name!r} (workload: {', '.join(workload.names)})")
            if name in given:
                raise PlannerError(f"priority for {name!r} given twice")
            given[name] = _number(value, name)
        missing = [n for n in workload.names if n not in given]
        if missing:
            raise PlannerError(f"no priority given for {', '.join(missing)}")
        return normalize([given[n] for n in workload.names], workload)
    if any("=" in item for item in items):
        raise PlannerError("priorities: use either plain numbers or name=value for every entry, not both")
    return normalize([_number(item, f"entry {i}") for i, item in enumerate(items)], workload)


def _number(text: str, where: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise PlannerError(f"priority {where}: {text.strip()!r} is not a number") from None
    if not math.isfinite(value):
        raise PlannerError(f"priority {where} must be finite, got {text.strip()!r}")
    return value
