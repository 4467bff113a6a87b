"""Run a mapping for real: every stage of every DNN as a process on its component, all at once.

Per DNN the owner process (this one) writes inputs into the DNN's input channel, the stages pass
frames along through shared-memory channels, and a collector thread here reads the results:

    feeder/submit -> [in] -> stage 0 -> [ch] -> stage 1 -> ... -> [out] -> collector

Inputs are synthetic tensors fed as fast as the pipeline takes them (`source="synthetic"`,
back-pressure all the way, which measures throughput), or frames handed to `submit`
(`source="external"`, drop-oldest input for real-time sources such as a camera). A real-time
DNN (a workload entry with a `period`) with a synthetic source gets one input per period
instead, through a drop-oldest input channel (a slow pipeline drops inputs, never builds a
backlog).

`policy` (core.realtime.Policy) orders the stage jobs on each component: `time_sharing`
leaves it to the operating system (no arbiter, stages run whole); every other policy gives each
component one arbiter (runtime/arbiter.py) and runs stages unit by unit, preempted at unit
boundaries under rms/dms/edf, and real-time jobs that can no longer meet their deadline are
dropped (`drop_late`). `measure_realtime` reports deadline misses, drops, preemptions and the
arbiters' cost per decision.

`executor` says what a process is: `stage` (the default) runs every stage in its own process;
`component` (arbitrated policies only) runs all the stages of one component in one process and
one thread (runtime/component.py), where a preemption is a function return instead of a switch
between processes. Restarting one DNN then restarts the whole mapping, as its stages share
processes with the other DNNs'.

Stage processes come from a fork server that has torch already imported, so a 9-stage mapping
starts in about a second instead of one interpreter start per stage. A monitor thread notices a
stage that dies (killed, crashed, failed to start) and reports it; `restart_dnn` rebuilds that
DNN's chain. `replace` swaps the whole mapping; nothing leaks: every process is joined or
killed, every segment and semaphore unlinked, also when the owner is interrupted.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from rankmap_ros.core.mapping import Mapping
from rankmap_ros.core.platform import Platform
from rankmap_ros.core.realtime import DnnRtStats, Policy, RtResult, TaskClass, parse_policy
from rankmap_ros.core.workload import Workload
from rankmap_ros.runtime import backends
from rankmap_ros.runtime.arbiter import Arbiter, ArbiterStats
from rankmap_ros.runtime.board import Board, StageState
from rankmap_ros.runtime.channel import Channel, Frame, FrameHeader
from rankmap_ros.runtime.component import component_main
from rankmap_ros.runtime.discover import unpinnable
from rankmap_ros.runtime.errors import HostRuntimeError
from rankmap_ros.runtime.shm import Semaphore, new_name, remove_stale
from rankmap_ros.runtime.stage import StageSpec, stage_specs, tensor_bytes
from rankmap_ros.runtime.worker import StageWiring, stage_context, stage_main

Source = Literal["synthetic", "external"]
Executor = Literal["stage", "component"]
EXECUTORS: tuple[str, ...] = ("stage", "component")
POLL_S = 0.05
STOP_GRACE_S = 3.0
_KEEP_RESULTS = 64
_COUNTERS = ("frames", "busy_s", "copy_s", "busy_cpu_s", "copy_cpu_s", "wait_in_s", "wait_out_s")
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class PipelineError(HostRuntimeError):
    """A pipeline that cannot start or run (a stage failed to start, a backend is missing)."""


@dataclass(frozen=True)
class StageFailure:
    """A stage process that ended while the pipeline was running."""

    dnn: str
    stage: int
    component: str
    pid: int
    exitcode: int | None
    reason: str


@dataclass(frozen=True)
class StageReport:
    index: int
    units: tuple[int, int]
    component: str
    frames: int
    service_time_s: float  # mean compute time per frame (wall clock, preemption included)
    compute_cpu_s: float  # mean CPU time of that compute per frame
    overhead_s: float  # mean channel copy and bookkeeping per frame
    wait_in_s: float  # mean time waiting for input per frame (starved by upstream)
    wait_out_s: float  # mean time blocked by downstream per frame (back-pressure)
    queue_depth: float  # mean unread frames in its input channel
    alive: bool


@dataclass(frozen=True)
class DnnReport:
    name: str
    model: str
    throughput: float  # inferences/s at the output
    frames: int
    latency_mean_s: float
    latency_p50_s: float
    latency_p95_s: float
    dropped_inputs: int
    overhead_fraction: float  # CPU time of channel copies (owner and stages) over CPU time of stage compute
    stages: tuple[StageReport, ...]


@dataclass(frozen=True)
class RunReport:
    """Measured over `seconds` on this host (never simulated).

    `host_busy` minus `utilisation` is what other programs took from a CPU cluster meanwhile:
    on a shared machine it says how far a measurement was disturbed.
    """

    seconds: float
    dnns: tuple[DnnReport, ...]
    utilisation: dict[str, float]  # share of each component's capacity our stages used
    host_busy: dict[str, float]  # busy share of each CPU cluster's cores, whoever used them
    failures: tuple[StageFailure, ...]
    measured: bool = True

    @property
    def throughput(self) -> dict[str, float]:
        return {d.name: d.throughput for d in self.dnns}

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["throughput"] = self.throughput
        return data


@dataclass
class _Stage:
    spec: StageSpec
    row: int
    process: Any  # multiprocessing Process of the fork-server context
    cpu_ticks: int = 0


@dataclass
class _Chain:
    """One DNN: its channels, stage processes and the owner-side threads."""

    name: str
    model: str
    channels: list[Channel]
    stages: list[_Stage]
    input_shape: tuple[int, ...]
    task: TaskClass = field(default_factory=TaskClass)
    running: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)
    done: deque[tuple[float, float]] = field(default_factory=lambda: deque(maxlen=100_000))  # (time, latency)
    results: deque[Frame] = field(default_factory=lambda: deque(maxlen=_KEEP_RESULTS))
    result_ready: threading.Condition = field(default_factory=threading.Condition)
    owner_copy_cpu_s: float = 0.0  # CPU time of the owner's copies into and out of the chain
    depth_sum: list[float] = field(default_factory=list)
    depth_samples: int = 0
    seq: int = 0
    released: deque[tuple[int, float]] = field(default_factory=lambda: deque(maxlen=100_000))  # (seq, origin)
    finished: deque[tuple[int, float]] = field(default_factory=lambda: deque(maxlen=100_000))  # (seq, time)


def _context() -> Any:
    return stage_context()


def _release(
    chains: dict[str, _Chain],
    board: list[Board],
    arbiters: dict[str, Arbiter] | None = None,
    bells: dict[str, Semaphore] | None = None,
) -> None:
    """Stop and remove everything (also the finaliser, at exit, for a pipeline never stopped:
    its running threads keep it alive until then, so use `with` or stop()).

    Without the board (one chain rebuilt while the others run on) its stages cannot be asked to
    stop, since the stop flag is the board's: they are terminated at once instead of after a grace
    period they could not use."""
    if board:
        board[0].request_stop()
    for chain in chains.values():
        chain.running.clear()
    # a component executor's stages have no process yet when one of its processes failed to start
    processes = [s.process for chain in chains.values() for s in chain.stages if s.process is not None]
    _stop_processes(processes, STOP_GRACE_S if board else 0.0)
    for chain in chains.values():
        for thread in chain.threads:
            thread.join(timeout=STOP_GRACE_S)
        for ch in chain.channels:
            ch.detach()
            ch.unlink()
    chains.clear()
    for arbiter in (arbiters or {}).values():
        arbiter.detach()
        arbiter.unlink()
    if arbiters:
        arbiters.clear()
    for bell in (bells or {}).values():
        bell.unlink()
    if bells:
        bells.clear()
    if board:
        board[0].detach()
        board[0].unlink()
        board.clear()


def _stop_processes(processes: list[Any], grace_s: float = STOP_GRACE_S) -> None:
    # stages may share a process; one closed already (a stop interrupted by a signal's) is done
    processes = [p for p in {id(p): p for p in processes}.values() if not _closed(p)]
    deadline = time.monotonic() + grace_s
    for p in processes:
        p.join(timeout=max(deadline - time.monotonic(), 0.01))
    for p in processes:
        if p.is_alive():
            p.terminate()
    for p in processes:
        p.join(timeout=1.0)
        if p.is_alive():
            p.kill()
            p.join(timeout=1.0)
    for p in processes:
        with contextlib.suppress(ValueError):
            p.close()


class Pipeline:
    """The engine under the ROS executors: start, feed, measure, replace and stop a mapping."""

    def __init__(
        self,
        platform: Platform,
        workload: Workload,
        *,
        source: Source = "synthetic",
        slots: int = 2,
        weights: dict[str, str] | None = None,
        seed: int = 0,
        on_result: Callable[[str, Frame], None] | None = None,
        on_failure: Callable[[StageFailure], None] | None = None,
        start_timeout_s: float = 180.0,
        policy: Policy | str = Policy.TIME_SHARING,
        drop_late: bool = True,
        executor: Executor = "stage",
    ) -> None:
        if source not in ("synthetic", "external"):
            raise PipelineError(f"unknown source {source!r} (synthetic or external)")
        self.policy = parse_policy(str(policy))
        if executor not in EXECUTORS:
            raise PipelineError(f"unknown executor {executor!r} (stage or component)")
        if executor == "component" and not self.policy.arbitrated:
            raise PipelineError(
                "the component executor runs a component's stages one job at a time; "
                "it needs an arbitrated policy, not time_sharing"
            )
        self.executor = executor
        self.drop_late = drop_late
        self.platform = platform
        self.workload = workload
        self.source = source
        self.slots = slots
        self.weights = weights
        self.seed = seed
        self.on_result = on_result
        self.on_failure = on_failure
        self.start_timeout_s = start_timeout_s
        self.mapping: Mapping | None = None
        self._chains: dict[str, _Chain] = {}
        self._board: list[Board] = []
        self._failures: list[StageFailure] = []
        self._reported: set[int] = set()
        self._monitor: threading.Thread | None = None
        self.stopping = False  # within stop(): a signal then waits for it (stop_on_signals)
        self._monitoring = threading.Event()
        self._lock = threading.Lock()
        self._arbiters: dict[str, Arbiter] = {}  # component -> its arbiter (arbitrated policies)
        self._slots: dict[tuple[str, int], tuple[str, int]] = {}  # (dnn, stage) -> (arbiter, slot)
        self._bells: dict[str, Semaphore] = {}  # component -> its process's doorbell (component executor)
        self._finalizer = weakref.finalize(self, _release, self._chains, self._board, self._arbiters, self._bells)

    # -- life cycle ---------------------------------------------------------------------------

    def check(self, mapping: Mapping) -> dict[str, tuple[StageSpec, ...]]:
        """Refuse a mapping that cannot run, before anything starts (MappingError, BackendError)."""
        mapping.validate(self.workload, self.platform.component_names)
        for backend in sorted({self.platform.component(c).backend for c in mapping.components_used}):
            backends.require(backend)
        for name in sorted(mapping.components_used):
            cpus = self.platform.component(name).cpus
            why = unpinnable(cpus)  # tried as a stage pins itself: isolated CPUs (isolcpus) are usable
            if why:
                raise backends.BackendError(f"component {name!r} is pinned to CPUs {sorted(cpus)}: {why}")
        return stage_specs(self.platform, self.workload, mapping, self.weights, self.seed, self.policy, self.drop_late)

    def start(self, mapping: Mapping) -> None:
        """Start every stage of every DNN and wait until all are ready (PipelineError if one fails)."""
        specs = self.check(mapping)
        if self._chains:
            raise PipelineError("pipeline already running; use replace() to change the mapping")
        remove_stale()
        total = sum(len(s) for s in specs.values())
        self._board.append(Board.create(total))
        self._failures.clear()
        self._reported.clear()
        self.mapping = mapping
        try:
            if self.executor == "stage":
                self._make_arbiters(specs)
            row = 0
            for name, stage_list in specs.items():
                self._make_chain(name, stage_list, row)
                row += len(stage_list)
            if self.executor == "component":
                self._start_components()
            self._wait_ready(list(self._chains.values()))
        except BaseException:
            _release(self._chains, self._board, self._arbiters, self._bells)
            self.mapping = None
            raise
        self._start_monitor()
        for chain in self._chains.values():
            self._start_threads(chain)

    def replace(self, mapping: Mapping) -> None:
        """Swap the running mapping for another (checked first: a bad one leaves the old running)."""
        self.check(mapping)
        self.stop()
        self.start(mapping)

    def restart_dnn(self, name: str) -> None:
        """Rebuild one DNN's chain (new channels and processes), e.g. after a stage died."""
        if name not in self._chains or not self._board:
            raise PipelineError(f"no running DNN named {name!r}")
        if self.executor == "component":
            mapping = self.mapping
            assert mapping is not None
            self.stop()
            self.start(mapping)
            return
        # out of the pipeline before it is torn down: a failure after this point finds only the new
        # chain (not running, released by stop(), rebuilt by another restart_dnn)
        old = self._chains.pop(name)
        _release({name: old}, [])
        rows = [s.row for s in old.stages]
        board = self._board[0]
        for row in rows:
            board.rows[row] = np.zeros((), board.rows.dtype)
        with self._lock:
            self._reported -= set(rows)
            self._failures = [f for f in self._failures if f.dnn != name]
        chain = self._make_chain(name, [s.spec for s in old.stages], rows[0])
        self._wait_ready([chain])
        self._start_threads(chain)

    def stop(self) -> None:
        """Stop every stage and thread and remove every shared-memory object."""
        self.stopping = True
        try:
            self._stop()
        finally:
            self.stopping = False

    def _stop(self) -> None:
        self._monitoring.clear()
        # on_failure runs on the monitor thread and may stop (or restart) the pipeline from there
        if self._monitor is not None and self._monitor is not threading.current_thread():
            self._monitor.join(timeout=STOP_GRACE_S)
        self._monitor = None
        _release(self._chains, self._board, self._arbiters, self._bells)
        self._slots.clear()
        self.mapping = None

    def __enter__(self) -> Pipeline:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return bool(self._chains)

    @property
    def failures(self) -> tuple[StageFailure, ...]:
        """Stage processes that died and whose DNN has not been restarted since."""
        with self._lock:
            return tuple(self._failures)

    def pids(self) -> dict[str, list[int]]:
        """Stage process ids per DNN, in pipeline order."""
        return {n: [s.process.pid for s in c.stages] for n, c in self._chains.items()}

    # -- data ---------------------------------------------------------------------------------

    def submit(self, dnn: str, array: np.ndarray, header: FrameHeader | None = None) -> FrameHeader:
        """Hand one input to a DNN (external source: never blocks; a full input drops its oldest)."""
        chain = self._chains.get(dnn)
        if chain is None:
            raise PipelineError(f"no running DNN named {dnn!r}")
        if tuple(array.shape) != chain.input_shape:
            raise PipelineError(f"DNN {dnn!r} takes inputs of shape {chain.input_shape}, got {tuple(array.shape)}")
        chain.seq += 1
        header = header or FrameHeader(seq=chain.seq, stamp_ns=time.time_ns())
        header = FrameHeader(header.seq, header.stamp_ns, header.frame_id, time.monotonic())
        chain.released.append((header.seq, header.origin))
        chain.channels[0].put(np.asarray(array, np.float32), header, timeout=STOP_GRACE_S)
        chain.owner_copy_cpu_s += chain.channels[0].last_copy_cpu_s
        return header

    def result(self, dnn: str, seq: int, timeout: float = 30.0) -> Frame:
        """The output frame of `dnn` for input `seq` (kept for the last few results)."""
        chain = self._chains[dnn]
        deadline = time.monotonic() + timeout
        with chain.result_ready:
            while True:
                for frame in chain.results:
                    if frame.header.seq == seq:
                        return frame
                left = deadline - time.monotonic()
                if left <= 0:
                    raise PipelineError(f"no result for {dnn!r} frame {seq} within {timeout} s")
                chain.result_ready.wait(min(left, POLL_S))

    # -- measurement --------------------------------------------------------------------------

    def measure(self, seconds: float, warmup_s: float = 0.5) -> RunReport:
        """Throughput, latency, per-stage service times, queue depths and utilisation over a window."""
        if not self._chains:
            raise PipelineError("pipeline is not running")
        time.sleep(warmup_s)
        before = self._board[0].snapshot()
        ticks0 = self._process_ticks()
        owner0 = {n: c.owner_copy_cpu_s for n, c in self._chains.items()}
        jiffies0 = _cpu_jiffies()
        for chain in self._chains.values():
            chain.depth_sum = [0.0] * len(chain.channels)
            chain.depth_samples = 0
        t0 = time.monotonic()
        time.sleep(seconds)
        t1 = time.monotonic()
        jiffies1 = _cpu_jiffies()
        after = self._board[0].snapshot()
        ticks1 = self._process_ticks()
        window = t1 - t0
        dnns = []
        cpu_time = _cpu_time(ticks0, ticks1)
        busy_time: dict[str, float] = {}
        for name, chain in self._chains.items():
            done = [(t, lat) for t, lat in list(chain.done) if t0 <= t <= t1]
            stages = []
            copy_total = chain.owner_copy_cpu_s - owner0[name]
            busy_total = 0.0
            samples = max(chain.depth_samples, 1)
            for s in chain.stages:
                d = {k: float(after[k][s.row] - before[k][s.row]) for k in _COUNTERS}
                frames = int(d["frames"])
                per = max(frames, 1)
                copy_total += d["copy_cpu_s"]
                busy_total += d["busy_cpu_s"]
                comp = s.spec.component
                busy_time[comp] = busy_time.get(comp, 0.0) + d["busy_s"]
                stages.append(
                    StageReport(
                        index=s.spec.index,
                        units=(s.spec.start, s.spec.stop),
                        component=comp,
                        frames=frames,
                        service_time_s=d["busy_s"] / per,
                        compute_cpu_s=d["busy_cpu_s"] / per,
                        overhead_s=d["copy_s"] / per,
                        wait_in_s=d["wait_in_s"] / per,
                        wait_out_s=d["wait_out_s"] / per,
                        queue_depth=chain.depth_sum[s.spec.index] / samples,
                        alive=s.process.is_alive(),
                    )
                )
            latencies = np.array([lat for _, lat in done]) if done else np.array([np.nan])
            dnns.append(
                DnnReport(
                    name=name,
                    model=chain.model,
                    throughput=_rate([t for t, _ in done], window),
                    frames=len(done),
                    latency_mean_s=float(np.mean(latencies)),
                    latency_p50_s=float(np.percentile(latencies, 50)),
                    latency_p95_s=float(np.percentile(latencies, 95)),
                    dropped_inputs=chain.channels[0].dropped,
                    overhead_fraction=copy_total / busy_total if busy_total > 0 else float("nan"),
                    stages=tuple(stages),
                )
            )
        utilisation = self._utilisation(busy_time, cpu_time, window)
        host_busy = {}
        for comp in self.platform.components:
            if comp.backend != "cpu":
                continue  # a GPU's cpus host its feeders: their load says nothing of the GPU's share
            cpus = [c for c in comp.cpus if c in jiffies0 and c in jiffies1]
            total = sum(jiffies1[c][1] - jiffies0[c][1] for c in cpus)
            if total > 0:
                host_busy[comp.name] = sum(jiffies1[c][0] - jiffies0[c][0] for c in cpus) / total
        return RunReport(window, tuple(dnns), utilisation, host_busy, self.failures)

    def measure_realtime(self, seconds: float, warmup_s: float = 0.5) -> RtResult:
        """Deadline misses, drops, preemptions, throughput and latency per DNN over a window.

        Jobs released in the window count; after it the measurement waits for the longest
        relative deadline, so each of them has completed or passed its deadline. A real-time
        job is missed when it completed after release + deadline, was dropped (by a stage as
        late, or replaced in the input channel), or was unfinished at its deadline. `completed`
        counts the window's released jobs that completed (in time or late) for real-time DNNs,
        completions in the window for best-effort ones; throughput is completions per second
        in the window; `dropped` and `preempted` (stage jobs that gave their component away at
        least once) are counted in the window. Utilisation is as in `measure`; decisions and
        overhead come from the arbiters (0 under time-sharing).
        """
        if not self._chains:
            raise PipelineError("pipeline is not running")
        time.sleep(warmup_s)
        board = self._board[0]
        before = board.snapshot()
        ticks0 = self._process_ticks()
        in0 = {n: c.channels[0].dropped for n, c in self._chains.items()}
        arb0 = self.arbiter_stats()
        t0 = time.monotonic()
        time.sleep(seconds)
        t1 = time.monotonic()
        after = board.snapshot()
        ticks1 = self._process_ticks()
        in1 = {n: c.channels[0].dropped for n, c in self._chains.items()}
        arb1 = self.arbiter_stats()
        window = t1 - t0
        grace = max((c.task.deadline or 0.0) for c in self._chains.values())
        if grace:
            time.sleep(grace + POLL_S)
        dnns = []
        busy_time: dict[str, float] = {}
        cpu_time = _cpu_time(ticks0, ticks1)
        for name, chain in self._chains.items():
            dropped = in1[name] - in0[name]
            preempted = 0
            busy = resume = 0.0
            for s in chain.stages:
                dropped += int(after["dropped"][s.row] - before["dropped"][s.row])
                preempted += int(after["preempted"][s.row] - before["preempted"][s.row])
                comp = s.spec.component
                stage_busy = float(after["busy_s"][s.row] - before["busy_s"][s.row])
                busy += stage_busy
                resume += float(after["resume_extra_s"][s.row] - before["resume_extra_s"][s.row])
                busy_time[comp] = busy_time.get(comp, 0.0) + stage_busy
            finished = dict(list(chain.finished))
            done_times = [t for _, t in list(chain.finished) if t0 <= t <= t1]
            if chain.task.realtime:
                assert chain.task.deadline is not None
                jobs = [(q, o) for q, o in list(chain.released) if t0 <= o < t1]
                latencies = [finished[q] - o for q, o in jobs if q in finished]
                met = sum(1 for lat in latencies if lat <= chain.task.deadline)
                released, completed, missed = len(jobs), len(latencies), len(jobs) - met
            else:
                released = sum(1 for _, o in list(chain.released) if t0 <= o < t1)
                latencies = [lat for t, lat in list(chain.done) if t0 <= t <= t1]
                completed, missed = len(done_times), 0
            lat = np.array(latencies) if latencies else np.array([np.nan])
            dnns.append(
                DnnRtStats(
                    name=name,
                    realtime=chain.task.realtime,
                    released=released,
                    completed=completed,
                    missed=missed,
                    dropped=dropped,
                    preempted=preempted,
                    throughput=_rate(done_times, window),
                    latency_p50_s=float(np.percentile(lat, 50)),
                    latency_p95_s=float(np.percentile(lat, 95)),
                    busy_s=busy,
                    resume_extra_s=resume,
                )
            )
        utilisation = self._utilisation(busy_time, cpu_time, window)
        spent = [arb1[n] - arb0[n] for n in arb1]
        decisions = sum(d.decisions for d in spent)
        overhead = sum(d.decide_s for d in spent) / decisions if decisions else 0.0
        return RtResult(
            policy=self.policy.value,
            seconds=window,
            dnns=tuple(dnns),
            utilisation=utilisation,
            decisions=decisions,
            overhead_s_per_decision=overhead,
            simulated=False,
        )

    def realtime_counters(self) -> dict[str, dict[str, Any]]:
        """Per DNN since its chain started: frames out, jobs dropped (by stages as late and at the
        input channel), stage jobs preempted, preemptions (yields at unit boundaries), and the time
        units right after a preemption took beyond their usual time (what resuming costs)."""
        rows = self._board[0].snapshot() if self._board else None
        out = {}
        for name, chain in self._chains.items():
            r = [s.row for s in chain.stages]
            out[name] = {
                "frames": int(rows["frames"][r[-1]]) if rows is not None else 0,
                "dropped": chain.channels[0].dropped + (int(rows["dropped"][r].sum()) if rows is not None else 0),
                "preempted": int(rows["preempted"][r].sum()) if rows is not None else 0,
                "yields": int(rows["yields"][r].sum()) if rows is not None else 0,
                "resume_extra_s": float(rows["resume_extra_s"][r].sum()) if rows is not None else 0.0,
            }
        return out

    def arbiter_stats(self) -> dict[str, ArbiterStats]:
        """Each component's arbiter counters since start (empty under time-sharing).

        Under the component executor the arbiter is the component process's loop: its counters
        are summed from the board rows of the component's stages (no lock, so no lock wait).
        """
        if self.executor == "stage":
            return {name: a.stats() for name, a in self._arbiters.items()}
        rows = self._board[0].snapshot() if self._board else None
        on: dict[str, list[int]] = {}
        for chain in self._chains.values():
            for s in chain.stages:
                on.setdefault(s.spec.component, []).append(s.row)
        if rows is None:
            return {}
        return {
            comp: ArbiterStats(
                int(rows["decisions"][r].sum()),
                float(rows["decide_s"][r].sum()),
                0.0,
                int(rows["checks"][r].sum()),
                float(rows["check_s"][r].sum()),
                0,
            )
            for comp, r in on.items()
        }

    # -- internals ----------------------------------------------------------------------------

    def _process_ticks(self) -> dict[tuple[str, int], int]:
        """CPU ticks so far of every stage process, by (component, pid): shared processes count once."""
        return {
            (s.spec.component, s.process.pid): _cpu_ticks(s.process.pid)
            for c in self._chains.values()
            for s in c.stages
        }

    def _utilisation(self, busy_time: dict[str, float], cpu_time: dict[str, float], window: float) -> dict[str, float]:
        """Busy fraction per component: CPU time over its cores for a CPU cluster, else time computing."""
        utilisation = {}
        for comp, busy in busy_time.items():
            c = self.platform.component(comp)
            if c.backend == "cpu" and c.cpus:
                utilisation[comp] = min(cpu_time[comp] / (window * len(c.cpus)), 1.0)
            else:
                utilisation[comp] = min(busy / window, 1.0)
        return utilisation

    def _make_arbiters(self, specs: dict[str, tuple[StageSpec, ...]]) -> None:
        """One arbiter per component that runs stages, one slot per stage (arbitrated policies)."""
        self._slots.clear()
        if not self.policy.arbitrated:
            return
        on: dict[str, list[tuple[str, int]]] = {}
        for name, stage_list in specs.items():
            for spec in stage_list:
                on.setdefault(spec.component, []).append((name, spec.index))
        for component, stages in on.items():
            arbiter = Arbiter.create(component, len(stages))
            self._arbiters[component] = arbiter
            for slot, stage in enumerate(stages):
                self._slots[stage] = (arbiter.name, slot)

    # -- internals (chains) -------------------------------------------------------------------

    def _make_chain(self, name: str, specs: list[StageSpec] | tuple[StageSpec, ...], first_row: int) -> _Chain:
        """Build and register a chain; each channel and process is in it as soon as it exists,
        so that releasing the pipeline after a failure half way releases them too."""
        board = self._board[0]
        first = specs[0]
        task = first.task
        chain = _Chain(name, first.model, [], [], first.input_shape, task)
        self._chains[name] = chain
        board.set_priority(first.priority, slice(first_row, first_row + len(specs)))
        channels = chain.channels
        policy = "drop_oldest" if self.source == "external" or task.realtime else "block"
        channels.append(Channel.create("in", self.slots, tensor_bytes(first.input_shape), policy))
        for s in specs:
            channels.append(Channel.create("ch", self.slots, tensor_bytes(s.output_shape), "block"))
        if self.executor == "component":  # its processes start with the other DNNs' (_start_components)
            chain.stages = [_Stage(spec, first_row + k, None) for k, spec in enumerate(specs)]
            return chain
        ctx = _context()
        for k, spec in enumerate(specs):
            arbiter, slot = self._slots.get((name, k), ("", -1))
            wiring = StageWiring(
                channels[k].name, channels[k + 1].name, board.name, first_row + k, os.getpid(), arbiter, slot
            )
            process = ctx.Process(target=stage_main, args=(spec, wiring), name=f"rankmap:{spec.label}", daemon=True)
            process.start()
            chain.stages.append(_Stage(spec, first_row + k, process))
        return chain

    def _start_components(self) -> None:
        """One process per component for the stages of every chain on it (component executor)."""
        board = self._board[0]
        hosted: dict[str, list[tuple[StageSpec, StageWiring]]] = {}
        for chain in self._chains.values():
            for s in chain.stages:
                hosted.setdefault(s.spec.component, [])
        for component in hosted:
            label = "".join(c if c.isalnum() else "_" for c in component)[:24] or "component"
            self._bells[component] = Semaphore.create(new_name(f"bell-{label}"), 0)
        for chain in self._chains.values():
            chain.channels[0].ring = self._bells[chain.stages[0].spec.component]
            for k, s in enumerate(chain.stages):
                ring = self._bells[chain.stages[k + 1].spec.component].name if k + 1 < len(chain.stages) else ""
                wiring = StageWiring(
                    chain.channels[k].name, chain.channels[k + 1].name, board.name, s.row, os.getpid(), ring=ring
                )
                hosted[s.spec.component].append((s.spec, wiring))
        ctx = _context()
        for component, stages in hosted.items():
            specs, wirings = [spec for spec, _ in stages], [w for _, w in stages]
            process = ctx.Process(
                target=component_main,
                args=(specs, wirings, self._bells[component].name),
                name=f"rankmap:{component}",
                daemon=True,
            )
            process.start()
            # known to its stages at once, so that a later component's failed start stops it too
            for chain in self._chains.values():
                for s in chain.stages:
                    if s.spec.component == component:
                        s.process = process

    def _wait_ready(self, chains: list[_Chain]) -> None:
        board = self._board[0]
        deadline = time.monotonic() + self.start_timeout_s
        pending = [s for c in chains for s in c.stages]
        while pending:
            for s in list(pending):
                state = board.state(s.row)
                if state == StageState.READY:
                    pending.remove(s)
                elif state == StageState.FAILED or not s.process.is_alive():
                    reason = board.error(s.row) or _exit_reason(s.process.exitcode)
                    raise PipelineError(f"stage {s.spec.label} failed to start: {reason}")
            if time.monotonic() > deadline:
                names = ", ".join(s.spec.label for s in pending)
                raise PipelineError(f"stages not ready after {self.start_timeout_s:.0f} s: {names}")
            time.sleep(0.02)

    def _start_threads(self, chain: _Chain) -> None:
        chain.running.set()
        collector = threading.Thread(target=self._collect, args=(chain,), name=f"collect:{chain.name}", daemon=True)
        chain.threads = [collector]
        if self.source == "synthetic":
            feed = self._feed_periodic if chain.task.realtime else self._feed
            chain.threads.append(threading.Thread(target=feed, args=(chain,), name=f"feed:{chain.name}", daemon=True))
        for thread in chain.threads:
            thread.start()

    def _feed(self, chain: _Chain) -> None:
        x = np.random.default_rng(self.seed).standard_normal(chain.input_shape).astype(np.float32)
        channel = chain.channels[0]
        while chain.running.is_set():
            chain.seq += 1
            header = FrameHeader(chain.seq, time.time_ns(), "synthetic", time.monotonic())
            chain.released.append((header.seq, header.origin))
            while chain.running.is_set() and not channel.put(x, header, timeout=POLL_S):
                pass
            chain.owner_copy_cpu_s += channel.last_copy_cpu_s

    def _feed_periodic(self, chain: _Chain) -> None:
        """A real-time source: one input per period into a drop-oldest channel (never blocks).

        A job's release (its header's `origin`) is when it is handed to the channel. A feeder
        that fell more than a period behind (the owner was not scheduled) skips the releases it
        missed rather than bursting them.
        """
        assert chain.task.period is not None
        period = chain.task.period
        x = np.random.default_rng(self.seed).standard_normal(chain.input_shape).astype(np.float32)
        channel = chain.channels[0]
        due = time.monotonic()
        while chain.running.is_set():
            now = time.monotonic()
            if now < due:
                time.sleep(min(due - now, POLL_S))
                continue
            if now - due > period:
                due = now
            chain.seq += 1
            header = FrameHeader(chain.seq, time.time_ns(), "synthetic", time.monotonic())
            chain.released.append((header.seq, header.origin))
            channel.put(x, header)
            chain.owner_copy_cpu_s += channel.last_copy_cpu_s
            due += period

    def _collect(self, chain: _Chain) -> None:
        channel = chain.channels[-1]
        while chain.running.is_set():
            frame = channel.get(timeout=POLL_S)
            if frame is None:
                continue
            now = time.monotonic()
            chain.owner_copy_cpu_s += channel.last_copy_cpu_s
            chain.done.append((now, now - frame.header.origin))
            chain.finished.append((frame.header.seq, now))
            with chain.result_ready:
                chain.results.append(frame)
                chain.result_ready.notify_all()
            if self.on_result is not None:
                self.on_result(chain.name, frame)

    def _start_monitor(self) -> None:
        # each monitor has its own flag: one that restarted the pipeline from on_failure ends
        # when its callback returns, beside the new pipeline's monitor
        self._monitoring = monitoring = threading.Event()
        monitoring.set()
        self._monitor = threading.Thread(target=self._watch, args=(monitoring,), name="rankmap-monitor", daemon=True)
        self._monitor.start()

    def _watch(self, monitoring: threading.Event) -> None:
        while monitoring.is_set():
            for chain in list(self._chains.values()):
                if not chain.running.is_set():
                    continue
                if len(chain.depth_sum) == len(chain.channels):
                    for i, ch in enumerate(chain.channels):
                        chain.depth_sum[i] += ch.depth
                    chain.depth_samples += 1
                for s in chain.stages:
                    try:
                        if s.row in self._reported or s.process.is_alive() or not chain.running.is_set():
                            continue
                    except ValueError:  # closed by a concurrent restart_dnn
                        continue
                    self._report_failure(chain, s)
                    if not monitoring.is_set():  # on_failure stopped or restarted the pipeline
                        return
            time.sleep(POLL_S / 2)

    def _report_failure(self, chain: _Chain, s: _Stage) -> None:
        board = self._board[0] if self._board else None
        reason = (board.error(s.row) if board else "") or _exit_reason(s.process.exitcode)
        failure = StageFailure(chain.name, s.spec.index, s.spec.component, s.process.pid, s.process.exitcode, reason)
        with self._lock:
            self._reported.add(s.row)
            self._failures.append(failure)
        if self.on_failure is not None:
            self.on_failure(failure)


def _closed(process: Any) -> bool:
    try:
        process.exitcode  # noqa: B018 - raises ValueError once the process object is closed
    except ValueError:
        return True
    return False


def _exit_reason(exitcode: int | None) -> str:
    if exitcode is None:
        return "still running"
    if exitcode < 0:
        try:
            return f"killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"killed by signal {-exitcode}"
    return f"exited with code {exitcode}"


def _rate(times: list[float], window: float) -> float:
    """Completions per second: from the spacing of completions when there are enough of them."""
    if len(times) >= 3 and times[-1] - times[0] >= window / 2:
        return (len(times) - 1) / (times[-1] - times[0])
    return len(times) / window


def _cpu_ticks(pid: int | None) -> int:
    """utime + stime of a process and all its threads, in clock ticks (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])
    except (OSError, IndexError, ValueError):
        return 0


def _cpu_time(before: dict[tuple[str, int], int], after: dict[tuple[str, int], int]) -> dict[str, float]:
    """CPU seconds each component's processes used between two `_process_ticks`."""
    out: dict[str, float] = {}
    for (comp, pid), ticks in after.items():
        out[comp] = out.get(comp, 0.0) + (ticks - before.get((comp, pid), ticks)) / _CLOCK_TICKS
    return out


def _cpu_jiffies() -> dict[int, tuple[int, int]]:
    """(busy, total) jiffies of every CPU since boot, from /proc/stat."""
    out = {}
    try:
        lines = Path("/proc/stat").read_text().splitlines()
    except OSError:
        return out
    for line in lines:
        name, *values = line.split()
        if name.startswith("cpu") and name[3:].isdigit():
            numbers = [int(v) for v in values]
            idle = numbers[3] + (numbers[4] if len(numbers) > 4 else 0)
            out[int(name[3:])] = (sum(numbers[:8]) - idle, sum(numbers[:8]))
    return out


@contextlib.contextmanager
def stop_on_signals(pipeline: Pipeline) -> Iterator[None]:
    """Within the block (around the pipeline's own `with`), SIGINT and SIGTERM end the program.

    The first signal raises SystemExit where the main thread is, and the pipeline's `with` stops
    it on the way out. A signal while the pipeline is stopping does not cut that stop short: the
    program ends once it is done.
    """
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    received: list[int] = []

    def handler(signum: int, _frame: object) -> None:
        received.append(signum)
        if len(received) == 1 and not pipeline.stopping:
            raise SystemExit(128 + signum)

    for sig in previous:
        signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
    if received:
        raise SystemExit(128 + received[0])
