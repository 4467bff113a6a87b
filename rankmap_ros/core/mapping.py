"""Mappings: which component runs each unit of each DNN; contiguous runs are pipeline stages."""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping as MappingABC
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from rankmap_ros.core.unitvec import profile
from rankmap_ros.core.workload import Workload

FORMAT = "rankmap.mapping/1"


class MappingError(ValueError):
    """A mapping that does not fit its workload or platform; the message says where."""


def unit_count(model: str) -> int:
    return len(profile(model))


@dataclass(frozen=True)
class Stage:
    """Units [start, stop) of one DNN on one component."""

    start: int
    stop: int
    component: str

    @property
    def units(self) -> int:
        return self.stop - self.start


@dataclass(frozen=True)
class DnnMapping:
    """The component of every unit of one DNN."""

    name: str
    model: str
    assignment: tuple[str, ...]

    @property
    def stages(self) -> tuple[Stage, ...]:
        stages: list[Stage] = []
        start = 0
        for i in range(1, len(self.assignment) + 1):
            if i == len(self.assignment) or self.assignment[i] != self.assignment[start]:
                stages.append(Stage(start, i, self.assignment[start]))
                start = i
        return tuple(stages)

    @classmethod
    def from_stages(cls, name: str, model: str, stages: Sequence[Stage]) -> DnnMapping:
        assignment: list[str] = []
        for stage in stages:
            assignment.extend([stage.component] * stage.units)
        return cls(name, model, tuple(assignment))


@dataclass(frozen=True)
class Mapping:
    """One DnnMapping per DNN of a workload, in workload order."""

    dnns: tuple[DnnMapping, ...]

    def __getitem__(self, name: str) -> DnnMapping:
        for dnn in self.dnns:
            if dnn.name == name:
                return dnn
        raise KeyError(name)

    @property
    def components_used(self) -> frozenset[str]:
        return frozenset(c for dnn in self.dnns for c in dnn.assignment)

    def validate(self, workload: Workload, components: Sequence[str]) -> None:
        """Raise MappingError naming the first thing that does not fit."""
        if tuple(d.name for d in self.dnns) != workload.names:
            raise MappingError(
                f"mapping covers DNNs {[d.name for d in self.dnns]} but the workload is {list(workload.names)}"
            )
        known = set(components)
        for dnn, spec in zip(self.dnns, workload.dnns, strict=True):
            if dnn.model != spec.model:
                raise MappingError(
                    f"DNN {dnn.name!r}: mapping is for model {dnn.model!r}, workload runs {spec.model!r}"
                )
            expected = unit_count(spec.model)
            if len(dnn.assignment) != expected:
                raise MappingError(
                    f"DNN {dnn.name!r} ({spec.model}) has {expected} units, the mapping assigns {len(dnn.assignment)}"
                )
            for unit, component in enumerate(dnn.assignment):
                if component not in known:
                    raise MappingError(
                        f"DNN {dnn.name!r} unit {unit}: unknown component {component!r} "
                        f"(platform has {', '.join(components)})"
                    )

    def to_dict(self) -> dict[str, Any]:
        """The canonical JSON form: stages as half-open unit ranges."""
        return {
            "format": FORMAT,
            "dnns": [
                {
                    "name": d.name,
                    "model": d.model,
                    "stages": [{"units": [s.start, s.stop], "component": s.component} for s in d.stages],
                }
                for d in self.dnns
            ],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_dict(cls, data: Any) -> Mapping:
        """Parse the canonical form; a DNN may give `assignment` (one component per unit) instead of stages."""
        if not isinstance(data, MappingABC) or not isinstance(data.get("dnns"), list):
            raise MappingError("a mapping is an object with a 'dnns' list")
        _known_keys("a mapping", data, ("format", "dnns"))
        fmt = data.get("format", FORMAT)
        if fmt != FORMAT:
            raise MappingError(f"unsupported mapping format {fmt!r} (expected {FORMAT!r})")
        return cls(tuple(_parse_dnn(i, entry) for i, entry in enumerate(data["dnns"])))

    @classmethod
    def from_json(cls, text: str) -> Mapping:
        try:
            data = json.loads(text, object_pairs_hook=_unique_keys)
        except json.JSONDecodeError as exc:
            raise MappingError(f"mapping is not valid JSON: {exc}") from exc
        return cls.from_dict(data)

    @classmethod
    def all_on(cls, workload: Workload, component: str) -> Mapping:
        """Every unit of every DNN on one component (the paper's all-on-GPU baseline)."""
        return cls(tuple(DnnMapping(d.name, d.model, (component,) * unit_count(d.model)) for d in workload.dnns))

    @classmethod
    def random(
        cls,
        workload: Workload,
        components: Sequence[str],
        rng: np.random.Generator,
        max_stages: int = 3,
    ) -> Mapping:
        """Random contiguous stages on random components (the paper's random mappings)."""
        dnns = []
        for d in workload.dnns:
            n = unit_count(d.model)
            stages = int(rng.integers(1, min(max_stages, n) + 1))
            cuts = sorted(rng.choice(np.arange(1, n), size=stages - 1, replace=False).tolist()) if stages > 1 else []
            bounds = [0, *cuts, n]
            assignment: list[str] = []
            for a, b in itertools.pairwise(bounds):
                assignment.extend([components[int(rng.integers(len(components)))]] * (b - a))
            dnns.append(DnnMapping(d.name, d.model, tuple(assignment)))
        return cls(tuple(dnns))


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object, refusing a key given twice (json keeps the last: a first 'dnns' would vanish)."""
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise MappingError(f"mapping: key {key!r} is given twice in one object")
        seen[key] = value
    return seen


def _known_keys(where: str, data: MappingABC[str, Any], known: tuple[str, ...]) -> None:
    """A misspelt key ('stage', 'assigment') would be ignored; it is named instead."""
    unknown = sorted(str(k) for k in data if k not in known)
    if unknown:
        raise MappingError(f"{where} has unknown keys {', '.join(unknown)} (known: {', '.join(known)})")


def _parse_dnn(index: int, entry: Any) -> DnnMapping:
    where = f"mapping entry {index}"
    if not isinstance(entry, MappingABC):
        raise MappingError(f"{where} is not an object")
    _known_keys(where, entry, ("name", "model", "assignment", "stages"))
    for key in ("name", "model"):
        if not isinstance(entry.get(key), str):
            raise MappingError(f"{where} needs a string {key!r}")
    name, model = entry["name"], entry["model"]
    where = f"DNN {name!r}"
    if "assignment" in entry:
        assignment = entry["assignment"]
        if not isinstance(assignment, list) or not all(isinstance(c, str) for c in assignment):
            raise MappingError(f"{where}: 'assignment' must be a list of component names")
        if not assignment:
            raise MappingError(f"{where}: 'assignment' is empty")
        return DnnMapping(name, model, tuple(assignment))
    stages = entry.get("stages")
    if not isinstance(stages, list) or not stages:
        raise MappingError(f"{where} needs a non-empty 'stages' list or an 'assignment'")
    try:
        units_of_model = unit_count(model)
    except ValueError as exc:  # the zoo names the known models
        raise MappingError(f"{where}: {exc}") from exc
    parsed: list[Stage] = []
    expected_start = 0
    for k, stage in enumerate(stages):
        if not isinstance(stage, MappingABC):
            raise MappingError(f"{where} stage {k} is not an object")
        _known_keys(f"{where} stage {k}", stage, ("units", "component"))
        units = stage.get("units")
        component = stage.get("component")
        if (
            not isinstance(units, list)
            or len(units) != 2
            or not all(isinstance(u, int) and not isinstance(u, bool) for u in units)
        ):
            raise MappingError(f"{where} stage {k}: 'units' must be [start, stop] integers")
        if not isinstance(component, str):
            raise MappingError(f"{where} stage {k}: 'component' must be a string")
        start, stop = units
        if start != expected_start:
            raise MappingError(f"{where} stage {k} starts at unit {start}, expected {expected_start} (gap or overlap)")
        if stop <= start:
            raise MappingError(f"{where} stage {k}: empty or reversed unit range [{start}, {stop})")
        if stop > units_of_model:
            raise MappingError(f"{where} stage {k} ends at unit {stop}, but {model} has {units_of_model} units")
        parsed.append(Stage(start, stop, component))
        expected_start = stop
    return DnnMapping.from_stages(name, model, parsed)
