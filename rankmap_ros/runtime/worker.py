"""The body of one stage process: bind to the component, build the stage, move frames through it.

The process dies with its owner: PR_SET_PDEATHSIG kills it when its parent goes, and every pass
of its loop asks, at most every OWNER_CHECK_S, whether the owner's pid is still there. The ask
is what counts: a process started through a fork server has the server as parent, and the server
outlives the owner while any process it forked lives.
Ctrl-C is ignored here because it reaches the whole process group; the owner stops stages
through the board's stop flag, then SIGTERM, then SIGKILL.

Under time-sharing a stage runs as one call (`serve`). Under an arbitrated policy
(core.realtime.Policy) it runs unit by unit while holding its component's arbiter
(`serve_units`): it asks for the component with the job's key, runs units, yields at unit
boundaries to a more urgent job when the policy is preemptive, drops real-time jobs that can no
longer meet their deadline (when `spec.drop_late`), and gives the component back before
forwarding the result (a full output channel must never block a component).
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import functools
import math
import multiprocessing as mp
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from rankmap_ros.core.realtime import TaskClass, job_key, late
from rankmap_ros.runtime import backends
from rankmap_ros.runtime.arbiter import Arbiter
from rankmap_ros.runtime.board import Board, StageState
from rankmap_ros.runtime.channel import Channel
from rankmap_ros.runtime.lifetime import parent_death_signal
from rankmap_ros.runtime.shm import process_alive
from rankmap_ros.runtime.stage import StageSpec

POLL_S = 0.1
OWNER_CHECK_S = 0.25  # how often a stage asks whether its owner is still there, frames or not
# libgomp's default spin (about 300k iterations) keeps a stage's OpenMP threads busy for
# milliseconds after each parallel region; with several stage processes on one CPU cluster that
# time is taken from whichever stage runs next (docs/RUNTIME.md, "OpenMP spinning"). 10k spins
# keep the back-to-back operators of one job as fast and let the threads sleep right after it.
GOMP_SPINCOUNT = "10000"
ESTIMATE_WINDOW = 16  # recent timings per unit behind a stage's work estimate
PROBE_AFTER = 4  # drops on the estimate alone in a row before a job runs anyway...
PROBE_STALE_S = 1.0  # ...if no unit was timed for this long: a fresh estimate is trusted
EXIT_FAILED = 3


@dataclass(frozen=True)
class StageWiring:
    """Where a stage process reads, writes and reports (names of shared-memory objects)."""

    input: str
    output: str
    board: str
    row: int
    owner_pid: int
    arbiter: str = ""  # the component's arbiter under an arbitrated policy ("" under time-sharing)
    slot: int = -1
    ring: str = ""  # the doorbell of the output's reader, if it is a component process


def stage_context(preload: str = "rankmap_ros.runtime.worker") -> Any:
    """The fork server stage processes come from (torch preloaded), with their OpenMP settings.

    The server is a fresh interpreter started on first use: it inherits the environment then,
    so a GOMP_SPINCOUNT the user set wins. It is stopped when this process exits.
    """
    os.environ.setdefault("GOMP_SPINCOUNT", GOMP_SPINCOUNT)
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload([preload])
    _stop_forkserver_at_exit()
    return ctx


@functools.cache
def _stop_forkserver_at_exit() -> None:
    atexit.register(stop_forkserver)


def stop_forkserver() -> None:
    """Stop this process's fork server, then the resource tracker it started, and wait for both.

    Left alone, each notices its owner is gone only after the owner exited, and then takes a
    second or two to shut down (the fork server has torch loaded): processes outliving the node
    or command that started them, reparented to init. Python stops them this way in its own
    tests; the methods are private, so where one is missing that helper stops by itself.
    """
    from multiprocessing import forkserver, resource_tracker

    for helper in (forkserver._forkserver, resource_tracker._resource_tracker):
        stop = getattr(helper, "_stop", None)
        if stop is not None:
            with contextlib.suppress(OSError):
                stop()


def become_child() -> None:
    """Set up a runtime child process: die with the parent, keep stdout for the owner.

    PR_SET_PDEATHSIG makes the kernel SIGKILL this process when its parent exits (Linux; a no-op
    elsewhere). Native libraries (OpenCV prints OpenCL build logs) write to file descriptor 1;
    pointing it at stderr keeps the owner's stdout clean, e.g. for `rankmap ... --json`.
    """
    parent_death_signal(signal.SIGKILL)
    sys.stdout.flush()
    os.dup2(2, 1)


@dataclass
class OwnerWatch:
    """Whether the owner (the manager, `rankmap run`) is gone, asked at most every OWNER_CHECK_S.

    The stage loops ask on every pass, not only when no frame comes: a camera goes on feeding a
    first stage after the owner died. PR_SET_PDEATHSIG does not end such a stage either, because
    its parent is the fork server, which outlives the owner while any stage it forked lives.
    """

    pid: int
    _next: float = field(default=0.0, init=False)
    _gone: bool = field(default=False, init=False)

    def gone(self) -> bool:
        now = time.monotonic()
        if not self._gone and now >= self._next:
            self._gone = not process_alive(self.pid)
            self._next = now + OWNER_CHECK_S
        return self._gone


def stage_main(spec: StageSpec, wiring: StageWiring) -> None:
    """Process entry point: run the stage until the board says stop or the owner disappears."""
    become_child()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if not process_alive(wiring.owner_pid):
        sys.exit(0)
    board = Board.open(wiring.board)
    board.rows["pid"][wiring.row] = os.getpid()
    arbitrated = bool(wiring.arbiter) and spec.scheduling.arbitrated
    try:
        backends.bind(spec)
        source = Channel.open(wiring.input)
        sink = Channel.open(wiring.output)
        warm = np.zeros(spec.input_shape, np.float32)
        if arbitrated:
            units, arbiter = prepare_arbitrated(spec, wiring, warm)
        else:
            run = backends.prepare(spec)
            for _ in range(2):
                run(warm)
    except Exception as exc:  # reported to the owner, whatever it is
        board.set_state(wiring.row, StageState.FAILED, f"{type(exc).__name__}: {exc}")
        sys.exit(EXIT_FAILED)
    board.set_state(wiring.row, StageState.READY)
    convert = backends.input_converter(spec)
    try:
        if arbitrated:
            with torch.inference_mode():  # one guard for every step of every job
                serve_units(spec, units, arbiter, source, sink, board, wiring, convert)
        else:
            serve(run, source, sink, board, wiring, convert)
    except Exception as exc:  # a job that raises (CUDA out of memory): the owner reports this, not an exit code
        board.set_state(wiring.row, StageState.FAILED, f"{type(exc).__name__}: {exc}")
        sys.exit(EXIT_FAILED)
    board.set_state(wiring.row, StageState.STOPPED)


def prepare_arbitrated(spec: StageSpec, wiring: StageWiring, warm: np.ndarray) -> tuple[backends.UnitRunner, Arbiter]:
    """Build the stage unit by unit and warm it up holding the component, as any job would."""
    units = backends.prepare_units(spec)
    arbiter = Arbiter.open(wiring.arbiter)
    if not arbiter.request(wiring.slot, (0.0, 0.0, 0.0), lambda: not process_alive(wiring.owner_pid)):
        sys.exit(0)
    try:
        with torch.inference_mode():
            for _ in range(2):
                units.leave(functools.reduce(lambda state, step: step(state), units.steps, units.enter(warm)))
    finally:
        arbiter.release(wiring.slot)
    return units, arbiter


class WorkEstimate:
    """A lower bound of a job's remaining work on this stage: each unit's fastest recent time.

    Only served jobs are timed (warm-up runs while other stages still build their models and
    would inflate the times); a unit not timed yet counts 0. A job dropped on the estimate alone
    is never timed, so once the estimate is stale (no unit timed for `PROBE_STALE_S`) and has
    dropped `PROBE_AFTER` jobs in a row, one job runs anyway, and is then dropped only once really
    late, at every later unit check too (the job is known by its release time): an inflated
    estimate, e.g. from units timed while another stage was being built on the same core, cannot
    drop every job forever. A fresh estimate is trusted: a probe that ends late wastes the core.
    """

    def __init__(self, units: int) -> None:
        self._recent = [collections.deque[float](maxlen=ESTIMATE_WINDOW) for _ in range(units)]
        self._fastest = [0.0] * units  # min of each unit's window, kept so checks per unit stay O(units)
        self._estimated_drops = 0
        self._probe: float | None = None  # release time of the job let through to be timed
        self._timed_at = -math.inf  # time.monotonic() of the last timing

    def record(self, unit: int, seconds: float) -> None:
        self._timed_at = time.monotonic()
        self._recent[unit].append(seconds)
        self._fastest[unit] = min(self._recent[unit])

    def typical(self, unit: int, default: float) -> float:
        """The unit's median recent time without a preemption before it (`default` if none yet)."""
        recent = sorted(self._recent[unit])
        return recent[len(recent) // 2] if recent else default

    def remaining(self, first: int) -> float:
        return sum(self._fastest[first:])

    def drop(self, task: TaskClass, release: float, now: float, first: int) -> bool:
        """Whether a real-time job at unit `first` can no longer meet its deadline."""
        if late(task, release, now):
            return True
        if release == self._probe:
            return False
        if not late(task, release, now, self.remaining(first)):
            self._estimated_drops = 0
            return False
        self._estimated_drops += 1
        if self._estimated_drops > PROBE_AFTER and now - self._timed_at > PROBE_STALE_S:
            self._estimated_drops = 0
            self._probe = release
            return False
        return True


def serve(
    run: backends.Runner,
    source: Channel,
    sink: Channel,
    board: Board,
    wiring: StageWiring,
    convert: backends.Converter | None = None,
) -> None:
    """Get a frame, compute, put the result with the same header; account every second.

    `convert` (backends.input_converter) takes the frame out of the channel in the layout the
    stage computes in; that conversion is the stage's work, so it counts as busy, not as copying.
    """
    row = board.rows[wiring.row : wiring.row + 1]
    owner = OwnerWatch(wiring.owner_pid)
    buffer: np.ndarray | None = None
    while not board.stopping and not owner.gone():
        t0 = time.perf_counter()
        frame = source.get(timeout=POLL_S, out=buffer, convert=convert)
        t1 = time.perf_counter()
        if frame is None:
            row["wait_in_s"] += t1 - t0
            continue
        if isinstance(frame.array, np.ndarray):
            buffer = frame.array
        t1 -= source.last_convert_s
        cpu = time.process_time() - source.last_convert_cpu_s
        y = run(frame.array)
        cpu = time.process_time() - cpu
        t2 = time.perf_counter()
        while not sink.put(y, frame.header, timeout=POLL_S):
            if board.stopping or owner.gone():
                return
        t3 = time.perf_counter()
        copy = source.last_copy_s + sink.last_copy_s
        row["busy_s"] += t2 - t1
        row["copy_s"] += copy
        row["busy_cpu_s"] += cpu
        row["copy_cpu_s"] += source.last_copy_cpu_s + sink.last_copy_cpu_s
        row["wait_in_s"] += t1 - t0 - source.last_copy_s
        row["wait_out_s"] += t3 - t2 - sink.last_copy_s
        row["last_service_s"] = t2 - t1
        row["queued_s"] += frame.queued_s
        row["frames"] += 1


def serve_units(
    spec: StageSpec,
    units: backends.UnitRunner,
    arbiter: Arbiter,
    source: Channel,
    sink: Channel,
    board: Board,
    wiring: StageWiring,
    convert: backends.Converter | None = None,
) -> None:
    """`serve` under an arbitrated policy: hold the component per job, unit by unit.

    A real-time job is dropped once even the lower bound of its remaining work (WorkEstimate)
    cannot end by its deadline (core.realtime.late). The input's conversion (`convert`) happens
    before the component is requested and counts as busy.
    """
    row = board.rows[wiring.row : wiring.row + 1]
    policy, task, slot = spec.scheduling, spec.task, wiring.slot
    preemptive = policy.preemptive
    drop = spec.drop_late and task.realtime
    steps = units.steps
    owner = OwnerWatch(wiring.owner_pid)
    estimate = WorkEstimate(len(steps))

    def stop() -> bool:
        return board.stopping or owner.gone()

    buffer: np.ndarray | None = None
    while not stop():
        t0 = time.perf_counter()
        frame = source.get(timeout=POLL_S, out=buffer, convert=convert)
        t1 = time.perf_counter()
        if frame is None:
            row["wait_in_s"] += t1 - t0
            continue
        if isinstance(frame.array, np.ndarray):
            buffer = frame.array
        converted_s, converted_cpu_s = source.last_convert_s, source.last_convert_cpu_s
        row["wait_in_s"] += t1 - t0 - source.last_copy_s - converted_s
        row["copy_s"] += source.last_copy_s
        row["copy_cpu_s"] += source.last_copy_cpu_s
        origin = frame.header.origin
        now = time.monotonic()
        if drop and estimate.drop(task, origin, now, 0):
            row["dropped"] += 1
            continue
        key = job_key(policy, task, origin, now - frame.queued_s, float(row["priority"][0]))
        if not arbiter.request(slot, key, stop):
            return
        t2 = time.perf_counter()
        waited, busy, cpu, yields, dropped = t2 - t1, converted_s, converted_cpu_s, 0, False
        c0 = time.process_time()
        state = units.enter(frame.array)
        busy += time.perf_counter() - t2
        for i, step in enumerate(steps):
            resumed = False
            if i and preemptive and arbiter.should_yield(slot):
                arbiter.release(slot)
                cpu += time.process_time() - c0
                w = time.perf_counter()
                if not arbiter.request(slot, key, stop):
                    return
                c0 = time.process_time()
                waited += time.perf_counter() - w
                yields += 1
                resumed = True
            if drop and estimate.drop(task, origin, time.monotonic(), i):
                dropped = True
                break
            s0 = time.perf_counter()
            state = step(state)
            dt = time.perf_counter() - s0
            busy += dt
            if resumed:
                # what resuming costs: this unit against its usual time in this process
                row["resume_extra_s"] += dt - estimate.typical(i, dt)
            else:
                estimate.record(i, dt)
        if dropped:
            arbiter.release(slot)
            cpu += time.process_time() - c0
        else:
            s0 = time.perf_counter()
            y = units.leave(state)
            busy += time.perf_counter() - s0
            cpu += time.process_time() - c0
            arbiter.release(slot)
        row["wait_arb_s"] += waited
        row["busy_s"] += busy
        row["busy_cpu_s"] += cpu
        row["yields"] += yields
        row["preempted"] += 1 if yields else 0
        if dropped:
            row["dropped"] += 1
            continue
        t3 = time.perf_counter()
        while not sink.put(y, frame.header, timeout=POLL_S):
            if stop():
                return
        t4 = time.perf_counter()
        row["copy_s"] += sink.last_copy_s
        row["copy_cpu_s"] += sink.last_copy_cpu_s
        row["wait_out_s"] += t4 - t3 - sink.last_copy_s
        row["last_service_s"] = busy
        row["queued_s"] += frame.queued_s
        row["frames"] += 1
