"""Discrete-event simulation of a workload and mapping under a component scheduling policy (issue 7).

The analytic simulator (core/simulator.py) predicts steady-state rates; deadlines depend on the
order in which jobs run, so this one replays individual jobs. Every number it returns is simulated.

- A stage's work is its units' times on its component (the analytic simulator's unit costs),
  with the transfer of the stage's input from the previous component added to its first unit.
- A real-time DNN releases a job every period from a seeded phase in [0, period); the job is
  due `deadline` after its release. A best-effort DNN is a saturating source with the runtime's
  back-pressure: each of its stages holds one job, a finished job waits until the next stage is
  empty, and a new job is released when the previous one leaves stage 0.
- A real-time DNN's input holds `input_slots` unread frames, like the runtime's drop-oldest
  camera channel: a release that finds it full discards the oldest unread job (dropped, so
  missed). Between stages real-time jobs queue without limit. A stage serves its jobs in order,
  as one stage process does.
- Arbitrated policies run one stage job per component at a time, the one with the smallest
  `core.realtime.job_key` among the stages' head jobs; units are atomic. Preemptive policies
  choose again at every unit boundary (the preempted job keeps its progress), the others only
  when a stage job finishes. A job granted a component runs at full speed (no concurrency loss:
  it has all the cores, or the GPU queue, to itself).
- Time-sharing is processor sharing among the resident stage jobs, as the operating system
  does it: weight 1 on a `fair` CPU cluster, timeslice + mean kernel duration on a
  `round_robin` GPU (the analytic simulator's weights), every share slowed by the component's
  concurrency loss for each other resident job.
- Late dropping (arbitrated policies, on by default): a real-time job about to run a unit whose
  remaining work on this stage would end past its deadline is dropped, and counts as missed.
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from collections.abc import Mapping as MappingABC
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rankmap_ros.core.mapping import Mapping, MappingError
from rankmap_ros.core.platform import Platform
from rankmap_ros.core.realtime import DnnRtStats, Policy, RtResult, TaskClass, job_key
from rankmap_ros.core.simulator import interference_factors, model_costs
from rankmap_ros.core.workload import Workload

DEFAULT_HORIZON = 10.0
# Unread frames a real-time DNN's input channel holds (the runtime's default `slots`).
INPUT_SLOTS = 2
# Horizon of the planner's predictions: long enough for a few hundred jobs at camera rates.
PREDICT_HORIZON = 5.0
# Time-sharing: a stage job with less than this much work left (seconds) has finished.
_DONE = 1e-9
_RELEASE, _UNIT_END, _SHARE_END = 0, 1, 2


@dataclass
class JobTrace:
    """What happened to one job: when each stage first started, and its finish or drop time."""

    dnn: str
    release: float
    deadline: float | None  # absolute; None for best-effort
    stage_starts: list[float] = field(default_factory=list)
    finish: float | None = None
    dropped: bool = False
    preemptions: int = 0

    @property
    def missed(self) -> bool:
        return self.deadline is not None and (self.dropped or self.finish is None or self.finish > self.deadline)


@dataclass(eq=False)
class _Job:
    dnn: int
    release: float
    due: float  # absolute deadline; inf for best-effort
    counted: bool  # real-time: its deadline falls inside the horizon
    trace: JobTrace
    stage: int = 0
    unit: int = 0
    left: float = 0.0  # time-sharing: work left in the current stage
    key: tuple[float, ...] = ()
    blocked: bool = False  # best-effort: done with its stage, the next one is full


@dataclass(eq=False)
class _Stage:
    dnn: int
    index: int
    component: int
    units: tuple[float, ...]
    rest: tuple[float, ...]  # rest[u]: work from unit u to the end of the stage
    weight: float
    queue: deque[_Job] = field(default_factory=deque)

    def head(self) -> _Job | None:
        """The job this stage offers its component: the first in line, unless it is blocked."""
        if self.queue and not self.queue[0].blocked:
            return self.queue[0]
        return None


@dataclass(eq=False)
class _Component:
    loss: float
    stages: list[_Stage] = field(default_factory=list)
    running: _Job | None = None  # arbitrated: the job running a unit now
    current: _Job | None = None  # arbitrated: the job that ran the last unit, while mid-stage
    token: int = 0  # time-sharing: id of the one valid completion event
    heads: tuple[_Job | None, ...] = ()  # time-sharing: the resident jobs the token was planned for
    updated: float = 0.0  # time-sharing: when `left` was last brought up to date
    busy: float = 0.0


def stage_units(platform: Platform, workload: Workload, mapping: Mapping) -> list[list[tuple[int, list[float]]]]:
    """Per DNN, per stage: (component index, seconds of each unit, the input transfer on the first)."""
    if len(mapping.dnns) != len(workload.dnns):
        raise MappingError(f"mapping has {len(mapping.dnns)} DNNs, the workload {len(workload.dnns)}")
    where = {name: c for c, name in enumerate(platform.component_names)}
    used = {stage.component for dnn in mapping.dnns for stage in dnn.stages}
    stretch = interference_factors(platform, [name in used for name in platform.component_names])
    out = []
    for spec, dnn in zip(workload.dnns, mapping.dnns, strict=True):
        costs = model_costs(platform, spec.model)
        if dnn.model != spec.model or len(dnn.assignment) != len(costs.in_bytes):
            raise MappingError(f"DNN {spec.name!r}: the mapping does not fit model {spec.model}")
        stages: list[tuple[int, list[float]]] = []
        previous = -1
        for stage in dnn.stages:
            c = where.get(stage.component, -1)
            if c < 0:
                raise MappingError(f"DNN {spec.name!r}: unknown component {stage.component!r} on {platform.name}")
            row = costs.time[c]
            units = [row[u + 1] - row[u] for u in range(stage.start, stage.stop)]
            if previous >= 0:
                src, dst = platform.components[previous].name, platform.components[c].name
                units[0] += platform.transfer(src, dst).seconds(costs.in_bytes[stage.start])
            stages.append((c, [u * stretch[c] for u in units]))
            previous = c
        out.append(stages)
    return out


def _weight(platform: Platform, model: str, c: int, start: int, stop: int) -> float:
    """Time-sharing weight of a stage: the analytic simulator's (1, or timeslice + mean kernel)."""
    component = platform.components[c]
    if component.sharing != "round_robin":
        return 1.0
    costs = model_costs(platform, model)
    kernels = max(costs.kernels[stop] - costs.kernels[start], 1)
    return component.timeslice_us * 1e-6 + (costs.compute[c][stop] - costs.compute[c][start]) / kernels


class _Sim:
    """One run: events (time, sequence, kind, argument, token) in a heap; the model is the module's docstring."""

    def __init__(
        self,
        platform: Platform,
        workload: Workload,
        mapping: Mapping,
        policy: Policy,
        horizon: float,
        drop_late: bool,
        phases: Sequence[float],
        input_slots: int,
    ) -> None:
        self.workload = workload
        self.input_slots = input_slots
        self.policy = policy
        self.horizon = horizon
        self.drop_late = drop_late
        self.tasks: list[TaskClass] = [d.task for d in workload.dnns]
        self.comps = [_Component(loss=c.concurrency_loss) for c in platform.components]
        self.pipes: list[list[_Stage]] = []
        for i, (spec, dnn, stages) in enumerate(
            zip(workload.dnns, mapping.dnns, stage_units(platform, workload, mapping), strict=True)
        ):
            pipe = []
            for k, ((c, units), cut) in enumerate(zip(stages, dnn.stages, strict=True)):
                rest = (*(float(x) for x in np.cumsum(units[::-1])[::-1]), 0.0)
                stage = _Stage(i, k, c, tuple(units), rest, _weight(platform, spec.model, c, cut.start, cut.stop))
                self.comps[c].stages.append(stage)
                pipe.append(stage)
            self.pipes.append(pipe)
        self.phases = phases
        self.events: list[tuple[float, int, int, int, int]] = []
        self.sequence = 0
        self.jobs: list[list[_Job]] = [[] for _ in workload.dnns]
        self.preempted = [0] * len(workload.dnns)
        self.decisions = 0
        self.shared = policy is Policy.TIME_SHARING

    # -- events -----------------------------------------------------------------------------
    def push(self, when: float, kind: int, arg: int, token: int = 0) -> None:
        self.sequence += 1
        heapq.heappush(self.events, (when, self.sequence, kind, arg, token))

    def run(self) -> None:
        for i, task in enumerate(self.tasks):
            if task.realtime:
                self.push(self.phases[i], _RELEASE, i)
            else:
                self.release(i, 0.0)
        self.settle(0.0)
        while self.events and self.events[0][0] <= self.horizon:
            now, _, kind, arg, token = heapq.heappop(self.events)
            if self.shared:
                self.advance(now)
            if kind == _RELEASE:
                self.release(arg, now)
                period = self.tasks[arg].period
                assert period is not None
                self.push(now + period, _RELEASE, arg)
            elif kind == _UNIT_END:
                self.unit_end(arg, now)
            elif not self.share_end(arg, token, now):
                continue  # superseded: nothing changed
            self.settle(now)
        if self.shared:
            self.advance(self.horizon)

    # -- jobs through stages ----------------------------------------------------------------
    def release(self, i: int, now: float) -> None:
        task = self.tasks[i]
        due = now + task.deadline if task.deadline is not None else math.inf
        trace = JobTrace(self.workload.dnns[i].name, now, due if task.realtime else None)
        job = _Job(i, now, due, counted=due <= self.horizon or not task.realtime, trace=trace)
        self.jobs[i].append(job)
        first = self.pipes[i][0]
        self.enter(job, first, now)
        if task.realtime and len(first.queue) > self.input_slots + 1:
            # The head has been taken by the stage; the channel behind it drops its oldest frame.
            old = first.queue[1]
            del first.queue[1]
            old.trace.dropped = True

    def enter(self, job: _Job, stage: _Stage, now: float) -> None:
        job.stage, job.unit, job.blocked = stage.index, 0, False
        job.left = stage.rest[0]
        spec = self.workload.dnns[job.dnn]
        job.key = (*job_key(self.policy, self.tasks[job.dnn], job.release, now, spec.priority), job.dnn, job.release)
        stage.queue.append(job)

    def leave(self, stage: _Stage, now: float) -> None:
        """The head of `stage` has gone: pull a blocked job from upstream, or release the next job."""
        if self.tasks[stage.dnn].realtime:
            return
        if stage.index == 0:
            if now < self.horizon:
                self.release(stage.dnn, now)
            return
        upstream = self.pipes[stage.dnn][stage.index - 1]
        if upstream.queue and upstream.queue[0].blocked:
            self.enter(upstream.queue.popleft(), stage, now)
            self.leave(upstream, now)

    def stage_done(self, job: _Job, now: float) -> None:
        pipe = self.pipes[job.dnn]
        stage = pipe[job.stage]
        if job.stage + 1 == len(pipe):
            stage.queue.popleft()
            job.trace.finish = now
            self.leave(stage, now)
            return
        nxt = pipe[job.stage + 1]
        if not self.tasks[job.dnn].realtime and nxt.queue:
            job.blocked = True  # back-pressure: the next stage holds a job already
            return
        stage.queue.popleft()
        self.enter(job, nxt, now)
        self.leave(stage, now)

    def drop(self, job: _Job, now: float) -> None:
        stage = self.pipes[job.dnn][job.stage]
        stage.queue.popleft()
        job.trace.dropped = True
        job.trace.finish = None
        self.leave(stage, now)

    # -- arbitrated components --------------------------------------------------------------
    def settle(self, now: float) -> None:
        """Give every idle component its next unit (arbitrated) or re-plan its shares (time-sharing)."""
        for c, comp in enumerate(self.comps):
            if self.shared:
                self.reshare(c, now)
            elif comp.running is None:
                self.dispatch(comp, c, now)

    def dispatch(self, comp: _Component, c: int, now: float) -> None:
        while True:
            current = comp.current
            if current is not None and not self.policy.preemptive:
                job = current  # non-preemptive: the stage job runs to its end
            else:
                heads = [j for s in comp.stages if (j := s.head()) is not None]
                if not heads:
                    return
                job = min(heads, key=lambda j: j.key)
                self.decisions += 1
            stage = self.pipes[job.dnn][job.stage]
            # core.realtime.late(), inlined: this stage's remaining work would end past the deadline.
            if self.drop_late and now + stage.rest[job.unit] > job.due:
                if comp.current is job:
                    comp.current = None
                self.drop(job, now)
                continue
            if current is not None and job is not current:  # preempted mid-stage; it keeps its progress
                if not current.trace.preemptions and current.counted:
                    self.preempted[current.dnn] += 1
                current.trace.preemptions += 1
            if len(job.trace.stage_starts) <= job.stage:
                job.trace.stage_starts.append(now)
            seconds = stage.units[job.unit]
            comp.running = comp.current = job
            comp.busy += min(seconds, self.horizon - now)
            self.push(now + seconds, _UNIT_END, c)
            return

    def unit_end(self, c: int, now: float) -> None:
        comp = self.comps[c]
        job = comp.running
        assert job is not None
        comp.running = None
        job.unit += 1
        if job.unit == len(self.pipes[job.dnn][job.stage].units):
            comp.current = None
            self.stage_done(job, now)

    # -- time-sharing components ------------------------------------------------------------
    def resident(self, comp: _Component) -> list[tuple[_Job, float]]:
        """Resident stage jobs and the share of the component each gets (weights, concurrency loss)."""
        heads = [(j, s.weight) for s in comp.stages if (j := s.head()) is not None]
        if not heads:
            return []
        total = sum(w for _, w in heads)
        slow = 1.0 + comp.loss * (len(heads) - 1)
        return [(j, w / total / slow) for j, w in heads]

    def advance(self, now: float) -> None:
        for comp in self.comps:
            dt = now - comp.updated
            if dt <= 0:
                continue
            shares = self.resident(comp)
            for job, share in shares:
                job.left -= dt * share
            if shares:
                comp.busy += dt
            comp.updated = now

    def reshare(self, c: int, now: float) -> None:
        """Plan the component's next stage completion, if its resident jobs changed."""
        comp = self.comps[c]
        heads = tuple(s.head() for s in comp.stages)
        if heads == comp.heads:
            return
        comp.heads = heads
        comp.token += 1
        shares = self.resident(comp)
        for job, _ in shares:
            if len(job.trace.stage_starts) <= job.stage:
                job.trace.stage_starts.append(now)
        if shares:
            wait = min(max(job.left, 0.0) / share for job, share in shares)
            self.push(now + wait, _SHARE_END, c, comp.token)

    def share_end(self, c: int, token: int, now: float) -> bool:
        """Finish the stage jobs with no work left; False if a later plan superseded this event."""
        comp = self.comps[c]
        if token != comp.token:
            return False
        comp.heads = ()  # re-plan even if the same jobs stay resident
        for job, _ in self.resident(comp):
            if job.left <= _DONE:
                self.stage_done(job, now)
        return True

    # -- results ----------------------------------------------------------------------------
    def result(self, platform: Platform) -> RtResult:
        stats = []
        for i, spec in enumerate(self.workload.dnns):
            realtime = self.tasks[i].realtime
            jobs = [j for j in self.jobs[i] if j.counted]
            done = [j for j in jobs if j.trace.finish is not None and j.trace.finish <= self.horizon]
            latency = np.array([j.trace.finish - j.release for j in done if j.trace.finish is not None])
            stats.append(
                DnnRtStats(
                    name=spec.name,
                    realtime=realtime,
                    released=len(jobs),
                    completed=len(done),
                    missed=sum(j.trace.missed for j in jobs) if realtime else 0,
                    dropped=sum(j.trace.dropped for j in jobs),
                    preempted=self.preempted[i],
                    throughput=len(done) / self.horizon,
                    latency_p50_s=float(np.percentile(latency, 50)) if latency.size else math.nan,
                    latency_p95_s=float(np.percentile(latency, 95)) if latency.size else math.nan,
                )
            )
        return RtResult(
            policy=str(self.policy),
            seconds=self.horizon,
            dnns=tuple(stats),
            utilisation={
                name: min(comp.busy / self.horizon, 1.0)
                for name, comp in zip(platform.component_names, self.comps, strict=True)
            },
            decisions=self.decisions,
            overhead_s_per_decision=0.0,
            simulated=True,
        )


def simulate_rt(
    platform: Platform,
    workload: Workload,
    mapping: Mapping,
    policy: Policy | str = Policy.EDF,
    *,
    horizon: float = DEFAULT_HORIZON,
    seed: int = 0,
    drop_late: bool | None = None,
    phases: MappingABC[str, float] | None = None,
    input_slots: int = INPUT_SLOTS,
    trace: list[JobTrace] | None = None,
) -> RtResult:
    """Replay `horizon` seconds of the workload under `policy` (simulated, deterministic per seed).

    `drop_late` defaults to on for arbitrated policies; time-sharing never drops. `phases` gives
    real-time DNNs' first release (seconds) by name; the others draw theirs from `seed`.
    `input_slots` bounds a real-time DNN's unread inputs. With `trace`, one JobTrace per job is
    appended to it.
    """
    policy = Policy(policy)
    if not (math.isfinite(horizon) and horizon > 0):
        raise ValueError(f"horizon must be a positive number of seconds, got {horizon!r}")
    if drop_late and not policy.arbitrated:
        raise ValueError("time-sharing has no arbiter to drop late jobs")
    if input_slots < 1:
        raise ValueError(f"input_slots must be at least 1, got {input_slots!r}")
    rng = np.random.default_rng(seed)
    given = dict(phases or {})
    unknown = set(given) - set(workload.names)
    if unknown:
        raise ValueError(f"phases for DNNs not in the workload: {', '.join(sorted(unknown))}")
    offsets = []
    for d in workload.dnns:
        draw = float(rng.uniform(0.0, d.period)) if d.period is not None else 0.0
        offsets.append(float(given.get(d.name, draw)))
    sim = _Sim(
        platform,
        workload,
        mapping,
        policy,
        float(horizon),
        policy.arbitrated if drop_late is None else drop_late,
        offsets,
        input_slots,
    )
    sim.run()
    if trace is not None:
        trace.extend(j.trace for jobs in sim.jobs for j in jobs)
    return sim.result(platform)


def predict(
    platform: Platform,
    workload: Workload,
    mapping: Mapping,
    policy: Policy | str,
    horizon: float = PREDICT_HORIZON,
    seed: int = 0,
) -> RtResult:
    """The planner's view of a policy: a short seeded replay of the mapping under it."""
    return simulate_rt(platform, workload, mapping, policy, horizon=horizon, seed=seed)


def chain_seconds(platform: Platform, workload: Workload, mapping: Mapping) -> dict[str, float]:
    """Seconds one job of each DNN takes through its stages alone on the platform (transfers included)."""
    stages = stage_units(platform, workload, mapping)
    return {d.name: float(sum(sum(units) for _, units in s)) for d, s in zip(workload.dnns, stages, strict=True)}


def deadline_feasible(platform: Platform, workload: Workload, mapping: Mapping) -> dict[str, bool]:
    """Per real-time DNN: can one job meet its deadline with the platform to itself under this mapping?

    A necessary condition only: contention can still make it miss. Best-effort DNNs are left out.
    """
    chains = chain_seconds(platform, workload, mapping)
    return {d.name: chains[d.name] <= d.deadline for d in workload.dnns if d.realtime and d.deadline is not None}


def realtime_density(platform: Platform, workload: Workload, mapping: Mapping) -> dict[str, float]:
    """Per component: the sum over real-time stages on it of stage time / min(deadline, period)."""
    density = dict.fromkeys(platform.component_names, 0.0)
    for d, stages in zip(workload.dnns, stage_units(platform, workload, mapping), strict=True):
        if d.period is None or d.deadline is None:
            continue
        for c, units in stages:
            density[platform.component_names[c]] += sum(units) / min(d.deadline, d.period)
    return density


def edf_schedulable(platform: Platform, workload: Workload, mapping: Mapping) -> dict[str, bool]:
    """Per component: the classic sufficient test for preemptive EDF with non-preemptible sections.

    Real-time stages on the component sorted by relative deadline D; for each i,
    sum_{k<=i} C_k / min(D_k, T_k) + B_i / D_i <= 1, where B_i is the longest unit (units are
    never interrupted) of any stage with a later deadline or of a best-effort DNN. It treats each
    stage as owning its DNN's whole deadline, so across a pipeline's components it is optimistic;
    every real-time DNN's chain must also fit its deadline (`deadline_feasible`).
    """
    per_component: list[list[tuple[float, float, float]]] = [[] for _ in platform.components]  # (D, C/D', unit)
    for d, stages in zip(workload.dnns, stage_units(platform, workload, mapping), strict=True):
        for c, units in stages:
            if d.period is None or d.deadline is None:
                per_component[c].append((math.inf, 0.0, max(units)))
            else:
                per_component[c].append((d.deadline, sum(units) / min(d.deadline, d.period), max(units)))
    out = {}
    for name, rows in zip(platform.component_names, per_component, strict=True):
        rows.sort()
        load, ok = 0.0, True
        for i, (deadline, share, _) in enumerate(rows):
            if math.isinf(deadline):
                break
            load += share
            blocking = max((unit for later, _, unit in rows[i + 1 :] if later > deadline), default=0.0)
            ok = ok and load + blocking / deadline <= 1.0
        out[name] = ok
    return out


def schedulable(platform: Platform, workload: Workload, mapping: Mapping) -> bool:
    """Whether preemptive EDF can meet every deadline: each chain fits, and every component passes."""
    return all(deadline_feasible(platform, workload, mapping).values()) and all(
        edf_schedulable(platform, workload, mapping).values()
    )


def json_safe(value: Any) -> Any:
    """`RtResult.to_dict()` (or anything holding one) with NaN, e.g. no latency measured, as None."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


def choose_for_policy(
    platform: Platform,
    workload: Workload,
    candidates: Sequence[tuple[Mapping, float]],
    policy: Policy | str,
    horizon: float = PREDICT_HORIZON,
    seed: int = 0,
) -> tuple[int, list[RtResult]]:
    """Among (mapping, objective score) candidates, the index of the lowest predicted miss rate.

    Ties (equal to 0.1 percentage point) go to the higher score. Returns the predictions too.
    """
    if not candidates:
        raise ValueError("no candidate mappings")
    results = [predict(platform, workload, m, policy, horizon, seed) for m, _ in candidates]
    best = min(range(len(candidates)), key=lambda k: (round(results[k].miss_rate, 3), -candidates[k][1], k))
    return best, results
