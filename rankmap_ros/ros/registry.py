"""The registered DNNs and every check a request must pass before anything changes.

Plain Python (no ROS): a request is validated against a *copy* of the registry, so a refused
request leaves the registry exactly as it was and the message says what is wrong.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from rankmap_ros.core import zoo
from rankmap_ros.core.files import not_a_file
from rankmap_ros.core.numbers import finite_number
from rankmap_ros.core.platform import Platform
from rankmap_ros.core.realtime import RealTimeError, TaskClass, infeasibility
from rankmap_ros.core.simulator import rate_bound
from rankmap_ros.core.workload import DnnSpec, Workload, WorkloadError
from rankmap_ros.ros import endpoints, planning, results
from rankmap_ros.ros.model_card import ModelCardError, read_card

# absolute or relative to the manager's namespace; no `~` or `{node}`: the executors that
# subscribe are other nodes than the one that asked
_TOPIC = re.compile(r"/?[A-Za-z_][A-Za-z0-9_]*(/[A-Za-z_][A-Za-z0-9_]*)*")
# A min_rate this far beyond what the model can reach is refused; the margin covers the platform
# model's prediction error (a calibrated host errs by up to 25-50%, docs/BENCHMARKS.md; a
# discovered, uncalibrated one runs on first guesses of its speed).
MIN_RATE_MARGIN = 2.0
MIN_RATE_MARGIN_UNCALIBRATED = 4.0
MAX_TOPIC_LENGTH = 200  # DDS topic names are limited to 256 bytes, with ROS's prefix and namespace


class RequestError(ValueError):
    """A request refused as given; nothing was changed."""


@dataclass(frozen=True)
class Registration:
    """One DNN as registered: `priority` is the raw static weight, `weights` a local model file.

    `period` > 0 makes it real-time, each job due `deadline` seconds after its image (0: the period).
    """

    name: str
    model: str
    input_topic: str
    priority: float
    min_rate: float
    output_kind: str
    output_topic: str
    weights: str | None = None
    period: float = 0.0
    deadline: float = 0.0

    def spec(self) -> DnnSpec:
        return DnnSpec(
            self.name, self.model, self.priority, self.min_rate or None, self.period or None, self.deadline or None
        )

    @property
    def task(self) -> TaskClass:
        return TaskClass(self.period or None, self.deadline or None)


def resolve_model(model: str, allowed_dirs: Sequence[str]) -> tuple[str, str | None]:
    """(zoo model, weights file or None) for a zoo name or a model file in an allowed directory.

    A model file is a state_dict named after its zoo architecture: `<zoo name>.pt` or
    `<zoo name>-<anything>.pt` (e.g. `squeezenet_v2-finetuned.pt`).
    """
    if not model.strip():
        raise RequestError("model is empty: give a zoo model name (see `rankmap zoo`) or a model file")
    if not zoo.is_model_file(model):
        try:
            return zoo.canonical_name(model), None
        except zoo.ZooError as exc:
            raise RequestError(str(exc)) from exc
    try:
        path = Path(model).expanduser().resolve()
        roots = [Path(d).expanduser().resolve() for d in allowed_dirs if d]
    except RuntimeError as exc:  # `~nobody/...`
        raise RequestError(f"model file {model}: {exc}") from exc
    if not any(path.is_relative_to(root) for root in roots):
        where = ", ".join(map(str, roots)) or "none are configured (parameter allowed_model_dirs)"
        raise RequestError(f"model file {path} is outside the allowed model directories: {where}")
    if not path.is_file():
        raise RequestError(f"model file {path} {not_a_file(path)}")
    arch = zoo.file_architecture(path)
    try:
        canonical = zoo.canonical_name(arch)
    except zoo.ZooError as exc:
        raise RequestError(f"model file {path.name}: name it '<zoo model>[-tag].pt'; {exc}") from exc
    try:
        zoo.build(canonical, path, check_finite=True)
        read_card(path, zoo.get_spec(canonical).num_classes)
    except (zoo.ZooError, ModelCardError) as exc:
        raise RequestError(str(exc)) from exc
    return canonical, str(path)


def check_topic(topic: str) -> None:
    if not topic.strip():
        raise RequestError("input_topic is empty: name the sensor_msgs/Image topic the DNN consumes")
    if len(topic) > MAX_TOPIC_LENGTH:  # before quoting it whole
        raise RequestError(f"input_topic is {len(topic)} characters long; at most {MAX_TOPIC_LENGTH}")
    if not _TOPIC.fullmatch(topic):
        raise RequestError(
            f"input_topic {topic!r} is not a valid ROS topic name: '/'-separated parts of letters, digits "
            "and '_', none starting with a digit (absolute, or relative to the manager's namespace)"
        )


def check_number(what: str, value: float) -> None:
    if not finite_number(value) or value < 0:
        raise RequestError(f"{what} must be a finite number >= 0, got {value!r}")


class Registry:
    """Registrations in registration order (the workload order) plus the priority mode."""

    def __init__(
        self, max_dnns: int, platform: Platform | None = None, resolve: Callable[[str], str] | None = None
    ) -> None:
        """`resolve` names topics as the manager node does (its namespace, its remappings)."""
        self.max_dnns = max_dnns
        self.platform = platform
        self.resolve = resolve
        self.dnns: dict[str, Registration] = {}
        self.mode = "static"

    def workload(self, dnns: dict[str, Registration] | None = None) -> Workload:
        dnns = self.dnns if dnns is None else dnns
        return Workload(tuple(r.spec() for r in dnns.values()), max_dnns=self.max_dnns)

    def weights(self) -> list[float]:
        return [r.priority for r in self.dnns.values()]

    def _checked(self, dnns: dict[str, Registration], priorities: bool = True) -> None:
        """The planner must accept the new set: workload rules, then priorities (static mode)."""
        try:
            workload = self.workload(dnns)
        except WorkloadError as exc:
            raise RequestError(str(exc)) from exc
        if self.mode == "static" and priorities:
            try:
                planning.check_priorities(workload, [r.priority for r in dnns.values()])
            except planning.planner_error() as exc:
                raise RequestError(str(exc)) from exc

    def precheck(self, reg: Registration) -> TaskClass:
        """The cheap checks, in the order refusals name them: room for it, topic, numbers, timing."""
        if reg.name in self.dnns:
            raise RequestError(f"a DNN named {reg.name!r} is already registered (unregister it first)")
        if len(self.dnns) >= self.max_dnns:
            raise RequestError(f"the manager runs at most {self.max_dnns} DNNs (parameter max_dnns); unregister one")
        check_topic(reg.input_topic)
        self._check_not_ours(reg.input_topic)
        check_number("priority", reg.priority)
        check_number("min_rate", reg.min_rate)
        check_number("period", reg.period)
        check_number("deadline", reg.deadline)
        try:
            return reg.task
        except RealTimeError as exc:
            raise RequestError(str(exc)) from exc

    def _check_not_ours(self, topic: str) -> None:
        """A DNN fed from the manager's own topics (another DNN's results) would wait for images
        that never come, as a type mismatch DDS reports nowhere."""
        if self.resolve is None:
            return
        ours, resolved = self.resolve(endpoints.NAMESPACE.lstrip("/")), self.resolve(topic)
        if resolved == ours or resolved.startswith(ours + "/"):
            raise RequestError(
                f"input_topic {topic!r} ({resolved}) is one of the manager's own topics under {ours}/ (results, "
                "mapping, throughput): name the camera's sensor_msgs/Image or CompressedImage topic"
            )

    def register(
        self,
        reg: Registration,
        allowed_dirs: Sequence[str],
        resolved: tuple[str, str | None] | None = None,
        priorities: bool = True,
    ) -> Registration:
        """Validate and add; returns the registration as stored (canonical model, weights file).

        `resolved` is `resolve_model(reg.model, allowed_dirs)` done already, after `precheck`
        and outside a lock: checking a model file builds the model, seconds for a large one.
        `priorities=False` leaves the priorities to `check_priorities` once a whole set is in
        (a file's first entry of priority 0 is not refused for lacking the others).
        """
        task = self.precheck(reg)
        model, weights = resolved or resolve_model(reg.model, allowed_dirs)
        if self.platform is not None:
            why = infeasibility(self.platform, model, task)
            if why is not None:
                raise RequestError(f"real-time {reg.name!r} refused: {why}")
            bound = rate_bound(self.platform, model)
            margin = MIN_RATE_MARGIN if self.platform.calibrated else MIN_RATE_MARGIN_UNCALIBRATED
            if reg.min_rate > margin * bound:
                raise RequestError(
                    f"min_rate {reg.min_rate:g}/s cannot be met: {model} is predicted to run at most "
                    f"{bound:.1f}/s on {self.platform.name} even split over every component"
                )
        kind = reg.output_kind or results.default_kind(model)
        if kind not in results.OUTPUT_KINDS:
            raise RequestError(f"output_kind {kind!r} is not one of {', '.join(results.OUTPUT_KINDS)} (or empty)")
        if kind == "detection" and results.default_kind(model) != "detection":
            raise RequestError(f"model {model} is not a detector the manager can decode; use output_kind 'tensor'")
        stored = replace(reg, model=model, weights=weights, output_kind=kind)
        self._checked({**self.dnns, reg.name: stored}, priorities)
        self.dnns[reg.name] = stored
        return stored

    @contextlib.contextmanager
    def unchanged_on_error(self) -> Iterator[None]:
        """A change that fails half way, for whatever reason, leaves the registrations as they were."""
        dnns, mode = dict(self.dnns), self.mode
        try:
            yield
        except BaseException:
            self.dnns, self.mode = dnns, mode
            raise

    def check_priorities(self) -> None:
        """The static priorities of the whole set, once `register(..., priorities=False)` filled it."""
        self._checked(self.dnns)

    def unregister(self, name: str) -> Registration:
        if name not in self.dnns:
            raise RequestError(f"no DNN named {name!r} is registered ({', '.join(self.dnns) or 'none'})")
        return self.dnns.pop(name)

    def set_priorities(self, mode: str, names: Sequence[str], values: Sequence[float]) -> None:
        """Static weights for the named DNNs (others keep theirs), or dynamic mode."""
        if mode not in planning.MODES:
            raise RequestError(f"mode {mode!r} is not one of {', '.join(planning.MODES)}")
        if len(names) != len(values):
            raise RequestError(f"{len(values)} priorities given for {len(names)} names")
        if mode == "dynamic" and names:
            raise RequestError("dynamic mode derives priorities from the DNNs' profiles; give no names")
        if len(set(names)) != len(names):
            raise RequestError("each DNN may appear only once")
        unknown = [n for n in names if n not in self.dnns]
        if unknown:
            raise RequestError(f"not registered: {', '.join(unknown)} (registered: {', '.join(self.dnns) or 'none'})")
        for name, value in zip(names, values, strict=True):
            check_number(f"priority of {name!r}", value)
        updated = dict(self.dnns)
        for name, value in zip(names, values, strict=True):
            updated[name] = replace(updated[name], priority=float(value))
        previous, self.mode = self.mode, mode
        try:
            if updated:
                self._checked(updated)
        except BaseException:
            self.mode = previous
            raise
        self.dnns = updated
