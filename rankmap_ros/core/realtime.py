"""Real-time task classes and the component scheduling policies (the Pantheon method, issue 7).

A DNN is either real-time (released every `period` seconds, each job due `deadline` seconds
after its release) or best-effort (priority only). On every component one arbiter picks which
waiting stage job runs next. Every arbitrated policy orders jobs by a key, smallest first, that
the simulator (core/rtsim.py) and the runtime's arbiter (runtime/arbiter.py) share, so what the
planner predicts is what the runtime does:

- `time_sharing`: no arbiter; stages share the component through the operating system.
- `fifo`: arrival order at the component, real-time or not, never preempted.
- `rms` / `dms`: fixed priority by period / relative deadline, real-time before best-effort,
  preemptive at unit boundaries (the classic rate- and deadline-monotonic schedulers).
- `np_edf`: earliest absolute deadline first, real-time before best-effort, not preempted.
- `edf`: the same, preempted at every unit boundary when a more urgent job waits (ours).

Best-effort jobs rank after every real-time job, by priority (higher first), then by arrival.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from enum import Enum
from typing import TYPE_CHECKING

from rankmap_ros.core.numbers import finite_number

if TYPE_CHECKING:
    from rankmap_ros.core.platform import Platform


class Policy(str, Enum):
    """A policy's value is its name in parameters and JSON (str, Enum rather than 3.11's StrEnum:
    ROS 2 Humble runs Python 3.10)."""

    TIME_SHARING = "time_sharing"
    FIFO = "fifo"
    RMS = "rms"
    DMS = "dms"
    NP_EDF = "np_edf"
    EDF = "edf"

    def __str__(self) -> str:
        return self.value

    @property
    def arbitrated(self) -> bool:
        """Whether one arbiter per component orders the jobs (everything but time-sharing)."""
        return self is not Policy.TIME_SHARING

    @property
    def preemptive(self) -> bool:
        """Whether a running stage yields at unit boundaries to a more urgent waiting job."""
        return self in (Policy.RMS, Policy.DMS, Policy.EDF)


POLICIES: tuple[Policy, ...] = tuple(Policy)


class RealTimeError(ValueError):
    """A task class or policy that cannot be used as given; the message says which field."""


def parse_policy(text: str) -> Policy:
    try:
        return Policy(text.strip().lower())
    except ValueError:
        raise RealTimeError(f"unknown scheduling policy {text!r}; one of {', '.join(POLICIES)}") from None


@dataclass(frozen=True)
class TaskClass:
    """Real-time when `period` is set (seconds between releases); `deadline` defaults to the period."""

    period: float | None = None
    deadline: float | None = None

    def __post_init__(self) -> None:
        for field_name in ("period", "deadline"):
            value = getattr(self, field_name)
            if value is not None and (not finite_number(value) or value <= 0):
                raise RealTimeError(f"{field_name} must be a finite number of seconds > 0, got {value!r}")
        if self.deadline is not None and self.period is None:
            raise RealTimeError("a deadline needs a period (or input rate): best-effort DNNs have no deadline")
        if self.period is not None and self.deadline is None:
            object.__setattr__(self, "deadline", float(self.period))

    @property
    def realtime(self) -> bool:
        return self.period is not None

    @property
    def rate(self) -> float:
        """Releases per second (0 for best-effort)."""
        return 1.0 / self.period if self.period else 0.0

    @property
    def threshold_rate(self) -> float:
        """The planner's minimum rate: one job per relative deadline, so every job can finish in time."""
        if self.deadline is None or self.period is None:
            return 0.0
        return 1.0 / min(self.deadline, self.period)

    @classmethod
    def from_rate(cls, rate_hz: float, deadline: float | None = None) -> TaskClass:
        if isinstance(rate_hz, bool) or not isinstance(rate_hz, int | float) or not math.isfinite(rate_hz):
            raise RealTimeError(f"input rate must be a finite number of Hz > 0, got {rate_hz!r}")
        if rate_hz <= 0:
            raise RealTimeError(f"input rate must be a finite number of Hz > 0, got {rate_hz!r}")
        return cls(period=1.0 / rate_hz, deadline=deadline)


BEST_EFFORT = TaskClass()


def job_key(
    policy: Policy,
    task: TaskClass,
    release: float,
    arrival: float,
    priority: float = 1.0,
) -> tuple[float, float, float]:
    """Order of waiting jobs on a component, smallest first; three floats so it fits shared memory.

    `release` is when the job's input was captured (its frame stamp), `arrival` when it reached
    this component.
    """
    if policy in (Policy.TIME_SHARING, Policy.FIFO):
        return (0.0, arrival, 0.0)
    if not task.realtime:
        return (1.0, -float(priority), arrival)
    assert task.period is not None and task.deadline is not None
    if policy is Policy.RMS:
        return (0.0, task.period, arrival)
    if policy is Policy.DMS:
        return (0.0, task.deadline, arrival)
    return (0.0, release + task.deadline, arrival)


def late(task: TaskClass, release: float, now: float, remaining: float = 0.0) -> bool:
    """A real-time job that can no longer meet its deadline: `remaining` seconds of work left."""
    return task.realtime and task.deadline is not None and now + remaining > release + task.deadline


def fastest_job(platform: Platform, model: str) -> tuple[float, str]:
    """Seconds of one job of `model` alone on its fastest component, and that component."""
    from rankmap_ros.core.simulator import model_costs

    totals = [row[-1] for row in model_costs(platform, model).time]
    best = min(range(len(totals)), key=totals.__getitem__)
    return totals[best], platform.components[best].name


def infeasibility(platform: Platform, model: str, task: TaskClass) -> str | None:
    """Why a real-time DNN can never meet its deadline on this platform, or None if it may.

    Checked at registration: a job that takes longer than its deadline, or than its period, even
    alone on the platform's fastest component misses every deadline under any mapping and policy.
    """
    if not task.realtime:
        return None
    assert task.deadline is not None and task.period is not None
    seconds, component = fastest_job(platform, model)
    if seconds > task.deadline:
        return (
            f"deadline {task.deadline * 1e3:.1f} ms is shorter than one {model} job alone on "
            f"{platform.name}'s fastest component ({component}: {seconds * 1e3:.1f} ms)"
        )
    if seconds > task.period:
        return (
            f"period {task.period * 1e3:.1f} ms is shorter than one {model} job alone on "
            f"{platform.name}'s fastest component ({component}: {seconds * 1e3:.1f} ms)"
        )
    return None


@dataclass(frozen=True)
class DnnRtStats:
    """One DNN over a run. A real-time job counts as missed when it finished after its deadline,
    was dropped as late, or was still unfinished when its deadline passed before the run ended."""

    name: str
    realtime: bool
    released: int
    completed: int
    missed: int
    dropped: int
    preempted: int
    throughput: float
    latency_p50_s: float
    latency_p95_s: float
    # Measured runs only (0 when simulated): component time the DNN's stages computed in the
    # window, and the part of it spent in the first unit after each preemption over that
    # unit's usual time (what resuming on cold caches costs).
    busy_s: float = 0.0
    resume_extra_s: float = 0.0

    @property
    def miss_rate(self) -> float:
        return self.missed / self.released if self.realtime and self.released else 0.0

    def to_dict(self) -> dict[str, object]:
        return {**asdict(self), "miss_rate": self.miss_rate}


@dataclass(frozen=True)
class RtResult:
    """A workload under one policy, simulated (core/rtsim.py) or measured (runtime)."""

    policy: str
    seconds: float
    dnns: tuple[DnnRtStats, ...]
    utilisation: dict[str, float]
    decisions: int
    overhead_s_per_decision: float
    simulated: bool

    @property
    def miss_rate(self) -> float:
        """Missed over released jobs of all real-time DNNs together."""
        released = sum(d.released for d in self.dnns if d.realtime)
        return sum(d.missed for d in self.dnns if d.realtime) / released if released else 0.0

    @property
    def preempted(self) -> int:
        return sum(d.preempted for d in self.dnns)

    @property
    def best_effort_throughput(self) -> float:
        return sum(d.throughput for d in self.dnns if not d.realtime)

    def dnn(self, name: str) -> DnnRtStats:
        for d in self.dnns:
            if d.name == name:
                return d
        raise KeyError(name)

    def to_dict(self) -> dict[str, object]:
        return {
            "policy": self.policy,
            "seconds": self.seconds,
            "simulated": self.simulated,
            "miss_rate": self.miss_rate,
            "preempted": self.preempted,
            "best_effort_throughput": self.best_effort_throughput,
            "decisions": self.decisions,
            "overhead_s_per_decision": self.overhead_s_per_decision,
            "utilisation": self.utilisation,
            "dnns": {d.name: d.to_dict() for d in self.dnns},
        }
