"""Stage plans (one DNN's cut points and components), mapping assembly, and cached evaluation.

A stage plan is a tuple of (stop, component index) pairs: stage k covers units
[stop_{k-1}, stop_k) on that component; the last stop is the DNN's unit count. Within a plan
every component appears at most once: a second stage on the same component shares it with the
first and only adds a transfer (docs/PLANNER.md, "Search space").
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator, Sequence

import numpy as np

from rankmap_ros.core.mapping import DnnMapping, Mapping, unit_count
from rankmap_ros.core.planner.base import Budget, Plan, PlannerError
from rankmap_ros.core.planner.reward import Objective
from rankmap_ros.core.throughput import ThroughputModel
from rankmap_ros.core.workload import Workload

StagePlan = tuple[tuple[int, int], ...]
Key = tuple[StagePlan, ...]
# The best keys the Evaluator keeps in order (RankMap polishes from them).
LEADERS = 3


def routes(n_components: int, max_stages: int) -> tuple[tuple[int, ...], ...]:
    """Ordered sequences of distinct components, one to max_stages long (15 for 3 components, cap 3)."""
    return tuple(
        route
        for length in range(1, min(max_stages, n_components) + 1)
        for route in itertools.permutations(range(n_components), length)
    )


def plan_from_assignment(assignment: Sequence[str], components: Sequence[str]) -> StagePlan:
    """The stage plan of a DnnMapping's assignment (components may repeat: then it is outside the space)."""
    index = {name: c for c, name in enumerate(components)}
    return plan_from_indices([index[name] for name in assignment])


def plan_from_indices(assigned: Sequence[int]) -> StagePlan:
    """Contiguous runs of one component index per unit, as a stage plan."""
    return tuple(
        (i, assigned[i - 1])
        for i in range(1, len(assigned) + 1)
        if i == len(assigned) or assigned[i] != assigned[i - 1]
    )


def expand(plan: StagePlan) -> list[int]:
    """The component index of every unit."""
    out: list[int] = []
    for stop, comp in plan:
        out.extend([comp] * (stop - len(out)))
    return out


def random_plan(n_units: int, choices: Sequence[tuple[int, ...]], rng: np.random.Generator) -> StagePlan:
    """A random route among `choices` (each as likely), then uniformly random cut points."""
    route = choices[int(rng.integers(len(choices)))]
    cuts = sorted(rng.choice(np.arange(1, n_units), size=len(route) - 1, replace=False).tolist())
    return tuple(zip([*cuts, n_units], route, strict=True))


def enumerate_plans(n_units: int, choices: Sequence[tuple[int, ...]]) -> Iterator[StagePlan]:
    """Every plan of a DNN over the given routes (exhaustive search on small workloads, MOSAIC)."""
    for route in choices:
        for cuts in itertools.combinations(range(1, n_units), len(route) - 1):
            yield tuple(zip([*cuts, n_units], route, strict=True))


def single_component_keys(builder: MappingBuilder, limit: int, rng: np.random.Generator) -> list[Key]:
    """Mappings that put every DNN whole on one component: all of them, or `limit` drawn at random."""
    n_comps = len(builder.components)
    count = n_comps ** len(builder.units)
    picks = range(count) if count <= limit else sorted(rng.choice(count, size=limit, replace=False).tolist())
    shape = (n_comps,) * len(builder.units)
    return [
        tuple(((n, int(c)),) for n, c in zip(builder.units, np.unravel_index(index, shape), strict=True))
        for index in picks
    ]


def legal_routes(n_units: int, all_routes: Sequence[tuple[int, ...]]) -> tuple[tuple[int, ...], ...]:
    return tuple(r for r in all_routes if len(r) <= n_units)


class MappingBuilder:
    """Turns keys (one stage plan per DNN, workload order) into Mappings, reusing DnnMappings."""

    def __init__(self, workload: Workload, components: Sequence[str]) -> None:
        self.workload = workload
        self.components = tuple(components)
        self.units = tuple(unit_count(d.model) for d in workload.dnns)
        self._cache: dict[tuple[int, StagePlan], DnnMapping] = {}

    def dnn(self, i: int, plan: StagePlan) -> DnnMapping:
        found = self._cache.get((i, plan))
        if found is None:
            spec = self.workload.dnns[i]
            found = DnnMapping(spec.name, spec.model, tuple(self.components[c] for c in expand(plan)))
            self._cache[(i, plan)] = found
        return found

    def mapping(self, key: Key) -> Mapping:
        return Mapping(tuple(self.dnn(i, plan) for i, plan in enumerate(key)))

    def key(self, mapping: Mapping) -> Key:
        return tuple(plan_from_assignment(d.assignment, self.components) for d in mapping.dnns)


class Evaluator:
    """Scores keys with the throughput model in batches, caches them, keeps the best, counts the budget."""

    def __init__(
        self,
        model: ThroughputModel,
        builder: MappingBuilder,
        objective: Objective,
        budget: Budget,
    ) -> None:
        self.model = model
        self.builder = builder
        self.objective = objective
        self.budget = budget
        self.started = time.perf_counter()
        self.limit = budget.simulations
        self.deadline = None if budget.seconds is None else self.started + budget.seconds
        self.simulations = 0
        self.scores: dict[Key, float] = {}
        self.rates: dict[Key, np.ndarray] = {}
        self.leaders: list[Key] = []  # the LEADERS best keys, best first
        self.best_key: Key | None = None
        self.best_score = -np.inf
        self.low = np.inf
        self.high = -np.inf

    @property
    def remaining(self) -> int:
        return self.limit - self.simulations

    def exhausted(self) -> bool:
        return self.remaining <= 0 or (self.deadline is not None and time.perf_counter() >= self.deadline)

    def phase(self, share: float) -> None:
        """Limit the next phase to `share` of the whole budget (simulations and seconds); 1.0 lifts it."""
        self.limit = max(1, round(self.budget.simulations * share))
        if self.budget.seconds is not None:
            self.deadline = self.started + self.budget.seconds * share

    def evaluate(self, keys: Sequence[Key]) -> list[float]:
        """Scores of `keys`; the ones not seen before go to the model in one batch."""
        fresh = list(dict.fromkeys(k for k in keys if k not in self.scores))
        if fresh:
            rates = np.asarray(self.model.predict(self.builder.workload, [self.builder.mapping(k) for k in fresh]))
            for key, row, score in zip(fresh, rates, self.objective.scores(rates).tolist(), strict=True):
                self.scores[key] = score
                self.rates[key] = row
                self.low = min(self.low, score)
                self.high = max(self.high, score)
                if score > self.best_score:
                    self.best_key, self.best_score = key, score
            self.simulations += len(fresh)
            self.leaders = sorted([*self.leaders, *fresh], key=lambda k: -self.scores[k])[:LEADERS]
        return [self.scores[k] for k in keys]


def warm_key(builder: MappingBuilder, current: Mapping, max_stages: int, reference: str) -> Key:
    """The current mapping's plans for the DNNs it still covers; any other DNN starts all on `reference`.

    A plan that uses a component twice is kept (the key is then scored as a candidate, though the
    tree cannot follow it); one with more than `max_stages` stages starts on `reference` too.
    """
    by_name = {d.name: d for d in current.dnns}
    start = builder.components.index(reference)
    key = []
    for i, spec in enumerate(builder.workload.dnns):
        old = by_name.get(spec.name)
        plan = None
        if (
            old is not None
            and old.model == spec.model
            and len(old.assignment) == builder.units[i]
            and set(old.assignment) <= set(builder.components)
        ):
            candidate = plan_from_assignment(old.assignment, builder.components)
            plan = candidate if len(candidate) <= max_stages else None
        key.append(plan or ((builder.units[i], start),))
    return tuple(key)


def finish(name: str, evaluator: Evaluator, started: float, measurements: int = 0) -> Plan:
    """The Plan of the best mapping the evaluator has seen."""
    key = evaluator.best_key
    if key is None:
        raise PlannerError("the search ended before evaluating any mapping")
    rates = evaluator.rates[key]
    objective = evaluator.objective
    has_thresholds = bool(np.any(objective.thresholds > 0))
    leaders = [key, *(k for k in evaluator.leaders if k != key)]
    return Plan(
        planner=name,
        mapping=evaluator.builder.mapping(key),
        predicted_throughput=tuple(float(r) for r in rates),
        reward=float(evaluator.best_score),
        feasible=objective.feasible(rates),
        plan_seconds=time.perf_counter() - started,
        simulations=evaluator.simulations,
        model=getattr(evaluator.model, "name", type(evaluator.model).__name__),
        measurements=measurements,
        priorities=objective.priorities,
        thresholds=tuple(float(t) for t in objective.thresholds) if has_thresholds else None,
        candidates=tuple(
            (evaluator.builder.mapping(k), float(evaluator.scores[k]), tuple(float(r) for r in evaluator.rates[k]))
            for k in leaders
        ),
    )
