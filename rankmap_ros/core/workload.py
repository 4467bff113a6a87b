"""A workload: the DNNs that run at once, with their priorities, minimum rates and task classes."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from rankmap_ros.core import zoo
from rankmap_ros.core.numbers import finite_number
from rankmap_ros.core.realtime import RealTimeError, TaskClass

DEFAULT_MAX_DNNS = 5
_INSTANCE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
MAX_NAME_LENGTH = 64  # names go into topic, node and shared-memory names, which have length limits


class WorkloadError(ValueError):
    """A workload that cannot be run as given; the message names the offending entry."""


_FIELDS = ("name", "model", "priority", "min_rate", "period", "rate", "deadline", "input_rate")
# a manager's dnns_file holds RegisterDnn's fields: planning it offline ignores these two
_MANAGER_FIELDS = ("input_topic", "output_kind")


@dataclass(frozen=True)
class DnnSpec:
    """One DNN of a workload: a unique instance name, a zoo model and what it asks for.

    A `period` (seconds between inputs) makes it real-time, each job due `deadline` seconds
    after its input (default: the period); without one it is best-effort. `input_rate` is how
    many inputs/s its sensor delivers, when known (the manager measures it): it cannot answer
    more, so planning gives it no more than that.
    """

    name: str
    model: str
    priority: float = 1.0
    min_rate: float | None = None
    period: float | None = None
    deadline: float | None = None
    input_rate: float | None = None

    def __post_init__(self) -> None:
        if isinstance(self.name, str) and len(self.name) > MAX_NAME_LENGTH:  # before quoting it whole
            raise WorkloadError(f"DNN name {self.name[:20]}... is too long: at most {MAX_NAME_LENGTH} characters")
        if not isinstance(self.name, str) or not _INSTANCE_NAME.fullmatch(self.name):
            raise WorkloadError(
                f"DNN name {self.name!r} must start with a letter and hold only letters, digits and '_'"
            )
        try:
            canonical = zoo.canonical_name(self.model)
        except zoo.ZooError as exc:
            raise WorkloadError(f"DNN {self.name!r}: {exc}") from exc
        object.__setattr__(self, "model", canonical)
        if not finite_number(self.priority) or self.priority < 0:
            raise WorkloadError(f"DNN {self.name!r}: priority must be a finite number >= 0, got {self.priority!r}")
        if self.min_rate is not None and (not finite_number(self.min_rate) or self.min_rate < 0):
            raise WorkloadError(f"DNN {self.name!r}: min_rate must be a finite number >= 0, got {self.min_rate!r}")
        if self.input_rate is not None and (not finite_number(self.input_rate) or not self.input_rate > 0):
            raise WorkloadError(f"DNN {self.name!r}: input_rate must be a finite number > 0, got {self.input_rate!r}")
        try:
            task = TaskClass(self.period, self.deadline)
        except RealTimeError as exc:
            raise WorkloadError(f"DNN {self.name!r}: {exc}") from exc
        object.__setattr__(self, "deadline", task.deadline)

    @property
    def task(self) -> TaskClass:
        return TaskClass(self.period, self.deadline)

    @property
    def realtime(self) -> bool:
        return self.period is not None


@dataclass(frozen=True)
class Workload:
    """DNNs in a fixed order: the order of the estimator's channels and of priority vectors."""

    dnns: tuple[DnnSpec, ...]
    max_dnns: int = field(default=DEFAULT_MAX_DNNS, compare=False)

    def __post_init__(self) -> None:
        if not self.dnns:
            raise WorkloadError("a workload needs at least one DNN")
        if len(self.dnns) > self.max_dnns:
            raise WorkloadError(f"a workload holds at most {self.max_dnns} DNNs, got {len(self.dnns)}")
        seen: set[str] = set()
        for dnn in self.dnns:
            if dnn.name in seen:
                raise WorkloadError(f"duplicate DNN name {dnn.name!r}")
            seen.add(dnn.name)

    def __len__(self) -> int:
        return len(self.dnns)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(d.name for d in self.dnns)

    @property
    def models(self) -> tuple[str, ...]:
        return tuple(d.model for d in self.dnns)

    def index(self, name: str) -> int:
        for i, dnn in enumerate(self.dnns):
            if dnn.name == name:
                return i
        raise WorkloadError(f"no DNN named {name!r} in the workload ({', '.join(self.names)})")

    @classmethod
    def from_models(
        cls,
        models: Iterable[str],
        priorities: Sequence[float] | None = None,
        min_rates: Sequence[float | None] | None = None,
        max_dnns: int = DEFAULT_MAX_DNNS,
    ) -> Workload:
        """Instances named after their models; a model given twice gets `_2`, `_3` suffixes."""
        models = list(models)
        if priorities is not None and len(priorities) != len(models):
            raise WorkloadError(f"{len(priorities)} priorities given for {len(models)} DNNs")
        if min_rates is not None and len(min_rates) != len(models):
            raise WorkloadError(f"{len(min_rates)} minimum rates given for {len(models)} DNNs")
        counts: dict[str, int] = {}
        dnns = []
        for i, model in enumerate(models):
            try:
                canonical = zoo.canonical_name(model)
            except zoo.ZooError as exc:
                raise WorkloadError(str(exc)) from exc
            counts[canonical] = counts.get(canonical, 0) + 1
            name = canonical if counts[canonical] == 1 else f"{canonical}_{counts[canonical]}"
            dnns.append(
                DnnSpec(
                    name=name,
                    model=canonical,
                    priority=1.0 if priorities is None else priorities[i],
                    min_rate=None if min_rates is None else min_rates[i],
                )
            )
        return cls(tuple(dnns), max_dnns=max_dnns)

    def to_dict(self) -> dict[str, Any]:
        entries = []
        for d in self.dnns:
            entry: dict[str, Any] = {"name": d.name, "model": d.model, "priority": d.priority, "min_rate": d.min_rate}
            if d.realtime:
                entry.update(period=d.period, deadline=d.deadline)
            if d.input_rate is not None:
                entry["input_rate"] = d.input_rate
            entries.append(entry)
        return {"dnns": entries}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], max_dnns: int = DEFAULT_MAX_DNNS) -> Workload:
        entries = data.get("dnns") if isinstance(data, Mapping) else None
        if not isinstance(entries, list):
            raise WorkloadError("a workload is a mapping with a 'dnns' list")
        dnns = []
        for i, item in enumerate(entries):
            entry = {"model": item} if isinstance(item, str) else item  # a bare model name is shorthand
            if not isinstance(entry, Mapping) or "model" not in entry:
                raise WorkloadError(f"workload entry {i} needs at least a 'model'")
            unknown = set(entry) - {*_FIELDS, *_MANAGER_FIELDS}
            if unknown:
                raise WorkloadError(f"workload entry {i} has unknown fields: {', '.join(sorted(unknown))}")
            model = str(entry["model"])
            if zoo.is_model_file(model):  # a manager's dnns_file may name weights: plan their architecture
                model = zoo.file_architecture(model)
            try:
                default_name = zoo.canonical_name(model)
            except zoo.ZooError as exc:
                raise WorkloadError(f"workload entry {i}: {exc}") from exc
            period = entry.get("period") or None  # 0: best-effort, as a RegisterDnn request says
            if "rate" in entry:
                if period is not None:
                    raise WorkloadError(f"workload entry {i}: give 'period' or 'rate', not both")
                rate = entry["rate"]
                if not finite_number(rate) or not rate > 0:
                    raise WorkloadError(f"workload entry {i}: rate must be a finite number of Hz > 0, got {rate!r}")
                period = 1.0 / rate
            if period is not None and entry.get("input_rate") is not None:
                raise WorkloadError(
                    f"workload entry {i}: input_rate is for best-effort DNNs (a real-time one's comes every period)"
                )
            dnns.append(
                DnnSpec(
                    name=entry.get("name", default_name),
                    model=model,
                    # values are checked by DnnSpec, whatever the file held
                    priority=entry.get("priority", 1.0),  # type: ignore[arg-type]
                    min_rate=entry.get("min_rate"),  # type: ignore[arg-type]
                    period=period,  # type: ignore[arg-type]
                    deadline=entry.get("deadline") or None,  # type: ignore[arg-type]
                    input_rate=entry.get("input_rate"),  # type: ignore[arg-type]
                )
            )
        return cls(tuple(dnns), max_dnns=max_dnns)
