"""One process per component that runs every stage mapped to it in a single thread (issue 7).

Under the stage executor each stage is its own process and the component's arbiter hands the
component from process to process; every hand-over at a unit boundary costs the preempted job
about a millisecond on a shared core (`rankmap bench handover`: switching processes, not
refilling caches). Here the arbiter is a loop in the component's own thread, so a preemption is
a function return: the preempted job's intermediate tensor stays in this process's memory and
the preempting job runs at once, in the same thread.

The loop, until the board says stop:
- forward finished outputs whose channel has room (a full channel never blocks the component:
  the result waits here and the other stages go on);
- give every idle stage a job from its input channel (with `core.realtime.job_key`'s key); a
  real-time frame already too late is dropped and the next one taken;
- run the job with the smallest key unit by unit; under a preemptive policy, at every unit
  boundary look for new frames and hand over to a more urgent job; drop real-time jobs that can
  no longer meet their deadline (`spec.drop_late`);
- with nothing to run, sleep on the component's doorbell, a semaphore every writer into one of
  its stages' input channels rings after each frame (`Channel.ring`).

Each stage keeps its own board row, so the owner measures stages as it does under the stage
executor; a decision's cost (choosing the next job) is counted in the chosen stage's row.

The ROS manager's component containers (ros/container_node.py) run the same loop over stages
that come and go: new stages arrive through `admit`, a stage whose board says stop is retired
between jobs, and a stage whose computation raises fails alone while the others go on.
"""

from __future__ import annotations

import os
import queue
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from rankmap_ros.core.realtime import Policy, job_key
from rankmap_ros.runtime import backends
from rankmap_ros.runtime.board import Board, StageState
from rankmap_ros.runtime.channel import Channel, FrameHeader
from rankmap_ros.runtime.shm import Semaphore, process_alive
from rankmap_ros.runtime.stage import StageSpec
from rankmap_ros.runtime.worker import (
    EXIT_FAILED,
    POLL_S,
    OwnerWatch,
    StageWiring,
    WorkEstimate,
    become_child,
)

OUTPUT_RETRY_S = 0.002  # sleep between tries while a result waits for room downstream
BEAT_S = 0.5  # how often the loop stamps its stages' rows (`beat_s`) for the owner's hang check


@dataclass
class _Job:
    """A frame taken into a stage: where it is (next unit, state) and what it has cost so far."""

    header: FrameHeader
    state: Any
    key: tuple[float, float, float]
    queued_s: float
    ready_at: float  # since when it waits for the component (taken in, or preempted)
    next_unit: int = 0
    entered: bool = False
    busy_s: float = 0.0
    cpu_s: float = 0.0
    waited_s: float = 0.0
    yields: int = 0


@dataclass
class Hosted:
    """One stage in the component's process, with its channels, runner and board row."""

    spec: StageSpec
    board: Board
    row: np.ndarray
    units: backends.UnitRunner
    source: Channel
    sink: Channel
    convert: backends.Converter | None
    estimate: WorkEstimate
    idle_since: float  # time.monotonic() when it last had neither job nor result
    buffer: np.ndarray | None = None
    job: _Job | None = None
    result: tuple[np.ndarray, FrameHeader, float] | None = None  # (output, header, queued_s) to forward
    blocked_since: float = 0.0


def component_main(specs: list[StageSpec], wirings: list[StageWiring], doorbell: str) -> None:
    """Process entry point: build every stage of the component, then serve them in one thread."""
    become_child()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    owner = wirings[0].owner_pid
    if not process_alive(owner):
        sys.exit(0)
    board = Board.open(wirings[0].board)
    for w in wirings:
        board.rows["pid"][w.row] = os.getpid()
    hosted: list[Hosted] = []
    current = wirings[0].row
    try:
        backends.bind(specs[0])
        bell = Semaphore.open(doorbell)
        with torch.inference_mode():
            for spec, w in zip(specs, wirings, strict=True):
                current = w.row
                sink = Channel.open(w.output)
                if w.ring:
                    sink.ring = Semaphore.open(w.ring)
                hosted.append(host_stage(spec, board, w.row, Channel.open(w.input), sink))
    except Exception as exc:  # reported to the owner, whatever it is
        for w in wirings:
            reason = f"{type(exc).__name__}: {exc}" if w.row == current else "another stage of its component failed"
            board.set_state(w.row, StageState.FAILED, reason)
        sys.exit(EXIT_FAILED)
    for w in wirings:
        board.set_state(w.row, StageState.READY)
    with torch.inference_mode():  # one guard for every step of every job
        ComponentLoop(hosted, specs[0].scheduling, bell, owner, lambda: board.stopping).serve()
    for w in wirings:
        board.set_state(w.row, StageState.STOPPED)


def host_stage(spec: StageSpec, board: Board, row: int, source: Channel, sink: Any) -> Hosted:
    """Build a stage unit by unit for the loop, warmed up with two zero inputs.

    `sink` is the output channel, or anything with the same `put` (the ROS face publishes).
    """
    units = backends.prepare_units(spec)
    warm = np.zeros(spec.input_shape, np.float32)
    with torch.inference_mode():
        for _ in range(2):
            state = units.enter(warm)
            for step in units.steps:
                state = step(state)
            units.leave(state)
    view = board.rows[row : row + 1]
    convert = backends.input_converter(spec)
    return Hosted(spec, board, view, units, source, sink, convert, WorkEstimate(len(units.steps)), time.monotonic())


class ComponentLoop:
    """The component's arbiter and executor in one: which job runs next, and running it."""

    def __init__(
        self,
        hosted: list[Hosted],
        policy: Policy,
        bell: Semaphore,
        owner: int,
        stopping: Callable[[], bool],
        retire: Callable[[Hosted, str], None] | None = None,
    ) -> None:
        """`retire`, when given, makes the stage set dynamic: stages come through `admit`, leave
        when their board says stop (reason "") or their computation raises (the error), and
        `retire` is told; without it a raising stage ends the process, as a crash would."""
        self.hosted = hosted
        self.policy = policy
        self.preemptive = policy.preemptive
        self.bell = bell
        self.owner = OwnerWatch(owner)
        self.stopping = stopping
        self.retire = retire
        self.incoming: queue.SimpleQueue[Hosted] = queue.SimpleQueue()
        self.beat_at = 0.0

    def admit(self, stage: Hosted) -> None:
        """Hand a built stage to the loop (from another thread); it joins at the next round."""
        self.incoming.put(stage)
        self.bell.release()

    def serve(self) -> None:
        while not self.stopping() and not self.owner.gone():
            if self.retire is not None:
                self._membership()
            self._forward()
            self._take_inputs()
            start = time.perf_counter()
            chosen = self._choose()
            if chosen is None:
                waiting = any(h.result is not None for h in self.hosted)
                self.bell.acquire(OUTPUT_RETRY_S if waiting else POLL_S)
                continue
            chosen.row["decisions"] += 1
            chosen.row["decide_s"] += time.perf_counter() - start
            if self.retire is None:
                self._run(chosen)
                continue
            try:
                self._run(chosen)
            except Exception as exc:  # this stage fails; the component's other stages go on
                self._leave(chosen, f"{type(exc).__name__}: {exc}")

    def _membership(self) -> None:
        """Admit new stages, retire stopped ones, and stamp the rows the owner watches for hangs."""
        while not self.incoming.empty():
            self.hosted.append(self.incoming.get())
        for h in [h for h in self.hosted if h.board.stopping]:
            self._leave(h, "")
        now = time.monotonic()
        if now - self.beat_at >= BEAT_S:
            self.beat_at = now
            for h in self.hosted:
                h.row["beat_s"] = now

    def _leave(self, h: Hosted, error: str) -> None:
        self.hosted.remove(h)
        assert self.retire is not None
        self.retire(h, error)

    # -- inputs and outputs -------------------------------------------------------------------

    def _take_inputs(self) -> None:
        """Give every stage that has no job and no result waiting a job, if a frame is there."""
        for h in self.hosted:
            self._fill(h)

    def _fill(self, h: Hosted) -> None:
        """Take frames until one makes a job: a late real-time frame is dropped for the next one."""
        while h.job is None and h.result is None and h.source.depth:
            if not self._take(h):  # the channel's lock stays held (a peer killed mid-copy): next round
                return

    def _take(self, h: Hosted) -> bool:
        """Take one frame (a job, or a late real-time frame dropped); False if none could be read."""
        frame = h.source.get(timeout=0, out=h.buffer, convert=h.convert)
        if frame is None:
            return False
        now_pc, now = time.perf_counter(), time.monotonic()
        row, source = h.row, h.source
        if isinstance(frame.array, np.ndarray):
            h.buffer = frame.array
        row["wait_in_s"] += max(now - h.idle_since - source.last_copy_s - source.last_convert_s, 0.0)
        row["copy_s"] += source.last_copy_s
        row["copy_cpu_s"] += source.last_copy_cpu_s
        spec = h.spec
        origin = frame.header.origin
        if spec.drop_late and spec.task.realtime and h.estimate.drop(spec.task, origin, now, 0):
            row["dropped"] += 1
            h.idle_since = time.monotonic()
            return True
        # When the job reached the component, as the simulator (core/rtsim.py) orders them: a
        # frame from a drop-oldest input (a camera, a real-time release) when it was put; a frame
        # from a back-pressured channel (a saturating source, the stage before) when the stage is
        # free to take it, for it was put early only because the channel has room.
        put = now - frame.queued_s
        arrival = put if source.policy == "drop_oldest" else max(put, h.idle_since)
        key = job_key(self.policy, spec.task, origin, arrival, float(row["priority"][0]))
        h.job = _Job(frame.header, frame.array, key, frame.queued_s, now_pc)
        h.job.busy_s, h.job.cpu_s = source.last_convert_s, source.last_convert_cpu_s
        return True

    def _forward(self) -> None:
        for h in self.hosted:
            if h.result is not None:
                self._forward_stage(h)

    def _forward_stage(self, h: Hosted) -> None:
        """Put `h`'s result into its output channel if there is room now."""
        assert h.result is not None
        y, header, queued = h.result
        if not h.sink.put(y, header, timeout=0):
            return
        row = h.row
        row["wait_out_s"] += max(time.perf_counter() - h.blocked_since - h.sink.last_copy_s, 0.0)
        row["copy_s"] += h.sink.last_copy_s
        row["copy_cpu_s"] += h.sink.last_copy_cpu_s
        row["queued_s"] += queued
        row["frames"] += 1
        h.result = None
        h.idle_since = time.monotonic()

    # -- scheduling -----------------------------------------------------------------------------

    def _choose(self) -> Hosted | None:
        """The stage whose job has the smallest key (ties: the first stage), None when idle."""
        best: Hosted | None = None
        for h in self.hosted:
            if h.job is not None and (best is None or h.job.key < best.job.key):  # type: ignore[union-attr]
                best = h
        return best

    def _more_urgent(self, h: Hosted) -> bool:
        """At a unit boundary: take new frames in, and say whether one of them should run first."""
        mine = h.job.key  # type: ignore[union-attr]
        for other in self.hosted:
            if other is not h:
                self._fill(other)
        return any(o.job is not None and o is not h and o.job.key < mine for o in self.hosted)

    def _run(self, h: Hosted) -> None:
        """Run `h`'s job until it ends, is dropped, or yields to a more urgent one."""
        job = h.job
        assert job is not None
        spec, row, units, estimate = h.spec, h.row, h.units, h.estimate
        drop = spec.drop_late and spec.task.realtime
        origin = job.header.origin
        job.waited_s += time.perf_counter() - job.ready_at
        resumed = job.next_unit > 0 and job.yields > 0
        first = job.next_unit
        c0 = time.process_time()
        if not job.entered:
            s0 = time.perf_counter()
            job.state = units.enter(job.state)
            job.entered = True
            job.busy_s += time.perf_counter() - s0
        for i in range(first, len(units.steps)):
            if i > first and self.preemptive:
                check = time.perf_counter()
                urgent = self._more_urgent(h)
                row["checks"] += 1
                row["check_s"] += time.perf_counter() - check
                if urgent:
                    job.next_unit = i
                    job.yields += 1
                    job.ready_at = time.perf_counter()
                    job.cpu_s += time.process_time() - c0
                    return
            if drop and estimate.drop(spec.task, origin, time.monotonic(), i):
                job.cpu_s += time.process_time() - c0
                self._account(h, job)
                row["dropped"] += 1
                h.job = None
                h.idle_since = time.monotonic()
                return
            s0 = time.perf_counter()
            job.state = units.steps[i](job.state)
            dt = time.perf_counter() - s0
            job.busy_s += dt
            if resumed and i == first:
                row["resume_extra_s"] += dt - estimate.typical(i, dt)
            else:
                estimate.record(i, dt)
        s0 = time.perf_counter()
        y = units.leave(job.state)
        job.busy_s += time.perf_counter() - s0
        job.cpu_s += time.process_time() - c0
        self._account(h, job)
        row["last_service_s"] = job.busy_s
        h.job = None
        h.result = (y, job.header, job.queued_s)
        h.blocked_since = time.perf_counter()
        self._forward_stage(h)

    @staticmethod
    def _account(h: Hosted, job: _Job) -> None:
        row = h.row
        row["wait_arb_s"] += job.waited_s
        row["busy_s"] += job.busy_s
        row["busy_cpu_s"] += job.cpu_s
        row["yields"] += job.yields
        row["preempted"] += 1 if job.yields else 0
