"""The executor processes of one DNN (its chain): start, watch, measure, stop — no ROS here.

The manager owns every piece of shared memory a chain uses (one input channel per stage, the
status board, the image size for detectors), so names carry the manager's pid and a killed
manager's leftovers are removed by the next one (`shm.remove_stale`). Executors are forked from a
server that has already imported torch, OpenCV and the node code (a fresh interpreter spends
seconds on those imports: that is most of the time to replace a killed executor), run in their
own session (a Ctrl-C on the terminal reaches the manager only, which stops them in order) and
die with the manager: they check its pid while they run, frames or not (their server, their
parent, outlives a killed manager while they live, so PR_SET_PDEATHSIG alone would not do).

Under the component executor the stages are not processes of their own: each component the
manager uses has one container process (ros/container_node.py, `Containers` here) that loads a
chain's stage nodes on command and unloads them when the chain's board says stop. A chain then
stops without signals, and a dead or hung container fails every chain with a stage on it.
"""

from __future__ import annotations

import collections
import contextlib
import json
import math
import multiprocessing as mp
import os
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rankmap_ros.core.platform import Platform
from rankmap_ros.core.realtime import parse_policy
from rankmap_ros.runtime.arbiter import Arbiter, ArbiterStats
from rankmap_ros.runtime.board import Board, StageState
from rankmap_ros.runtime.channel import Channel, FrameHeader, Policy
from rankmap_ros.runtime.shm import Segment, Semaphore, new_name
from rankmap_ros.runtime.stage import boundary_shapes, tensor_bytes, threads_for
from rankmap_ros.runtime.worker import stage_context

INPUT_SLOTS = 1  # a camera frame waits for the first stage in one slot: newest wins
BETWEEN_SLOTS = 2
RATE_WINDOW_S = 3.0
# A DNN answering this share of the images that reach it keeps up with its input: its rate is
# the sensor's, which says how fast the sensor is, not how fast the mapping could go.
KEEPS_UP = 0.9
STOP_GRACE_S = 3.0
ARBITER_SLOTS = 24  # executors one component can hold at once: 5 DNNs with a few stages each
COMMAND_SLOTS = 16  # stages waiting to be loaded by one container
COMMAND_BYTES = 16384  # one load command: an executor's command line as JSON
EXECUTORS = ("stage", "component")

StageKey = tuple[int, int, str]  # unit_start, unit_stop, component


@dataclass(frozen=True)
class ChainConfig:
    """What the manager tells every executor of a DNN besides its stage."""

    dnn: str
    model: str
    weights: str | None
    priority: float
    input_topic: str
    output_topic: str
    output_kind: str
    namespace: str
    input_reliability: str = "best_effort"
    input_depth: int = 5
    results_depth: int = 10
    compute_niceness: int = 5
    period: float = 0.0  # real-time: seconds between images (0: best-effort)
    deadline: float = 0.0
    policy: str = "time_sharing"
    drop_late: bool = True
    threads: tuple[tuple[str, int], ...] = ()  # (component, torch threads) of the plan (stage_threads)
    # by the registered name (`.../compressed`), which the manager's remapping may have renamed
    input_compressed: bool = False
    log_level: str = ""  # the manager's own (launch's log_level), for its executors; "" keeps info


class Arbiters:
    """The components' arbiters under an arbitrated policy, each with a slot per running executor.

    The manager owns them for its lifetime: chains come and go, slots are taken and given back.
    Under time-sharing there are none and executors run whole stages as before.
    """

    def __init__(self, platform: Platform, policy: str) -> None:
        self.policy = parse_policy(policy)
        self._arbiters: dict[str, Arbiter] = {}
        self._free: dict[str, list[int]] = {}
        if self.policy.arbitrated:
            try:
                for component in platform.component_names:
                    self._arbiters[component] = Arbiter.create(component, ARBITER_SLOTS)
                    self._free[component] = list(range(ARBITER_SLOTS))
            except BaseException:
                self.close()
                raise

    def take(self, component: str) -> tuple[str, int]:
        """(arbiter name, slot) for a new executor on `component`; ("", -1) under time-sharing."""
        if component not in self._arbiters:
            return "", -1
        if not self._free[component]:
            raise RuntimeError(f"all {ARBITER_SLOTS} arbiter slots of {component} are in use")
        return self._arbiters[component].name, self._free[component].pop(0)

    def give(self, component: str, slot: int) -> None:
        if component in self._free and slot >= 0 and slot not in self._free[component]:
            self._free[component].append(slot)

    def stats(self) -> dict[str, tuple[ArbiterStats, int]]:
        """Per component: the arbiter's counters since the manager started, and stages waiting now."""
        return {name: (a.stats(), len(a.waiting())) for name, a in self._arbiters.items()}

    def close(self) -> None:
        for arbiter in self._arbiters.values():
            with contextlib.suppress(Exception):
                arbiter.detach()
                arbiter.unlink()
        self._arbiters.clear()
        self._free.clear()


def _executor_entry(argv: list[str]) -> None:
    os.setsid()
    from rankmap_ros.ros import executor_node

    executor_node.main(argv)


def _container_entry(argv: list[str]) -> None:
    os.setsid()
    from rankmap_ros.ros import container_node

    container_node.main(argv)


class ExecutorProcess:
    """One executor (or container) forked from the preloaded server, with the Popen methods we use."""

    _context: mp.context.ForkServerContext | None = None

    def __init__(self, argv: list[str], container: bool = False) -> None:
        if ExecutorProcess._context is None:
            ExecutorProcess._context = stage_context("rankmap_ros.ros.container_node")
        target = _container_entry if container else _executor_entry
        self._process = ExecutorProcess._context.Process(target=target, args=(argv,), daemon=False)
        self._process.start()
        self.pid: int = self._process.pid  # type: ignore[assignment]

    def poll(self) -> int | None:
        return self._process.exitcode

    def send_signal(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, sig)

    def kill(self) -> None:
        if self.poll() is None:  # once reaped, its pid may be another process's
            self.send_signal(signal.SIGKILL)

    def wait(self, timeout: float | None = None) -> int:
        self._process.join(timeout)
        if self._process.exitcode is None:
            raise subprocess.TimeoutExpired("rankmap executor", timeout or 0.0)
        return self._process.exitcode


@dataclass
class Container:
    """A component's container process, with the channel it takes stages from and its doorbell."""

    process: ExecutorProcess
    commands: Channel
    bell: Semaphore


class Containers:
    """The component executor's containers, one per component in use, for the manager's lifetime.

    A container is started on the first stage mapped to its component and replaced when found
    dead (the chains it ran fail on their own and are restarted into the new one).
    """

    def __init__(self, policy: str, namespace: str, niceness: int, log_level: str = "") -> None:
        self.policy = policy
        self.namespace = namespace
        self.niceness = niceness
        self.log_level = log_level
        self.running: dict[str, Container] = {}
        self.starts: collections.Counter[str] = collections.Counter()

    def get(self, component: str, platform: Platform) -> Container:
        """The live container of `component`, started (or replaced) now if needed."""
        current = self.running.get(component)
        if current is not None and current.process.poll() is None:
            return current
        if current is not None:
            self._dispose(current)
        spec = platform.component(component)
        label = "".join(ch if ch.isalnum() else "_" for ch in component)[:24] or "component"
        commands = Channel.create(f"cmd-{label}", COMMAND_SLOTS, COMMAND_BYTES)
        try:
            bell = Semaphore.create(new_name(f"bell-{label}"), 0)
        except BaseException:
            _unlink(commands)
            raise
        params: dict[str, object] = {
            "component": component,
            "cpus": ",".join(map(str, spec.cpus)),
            "threads": threads_for(spec),
            "policy": self.policy,
            "commands": commands.name,
            "doorbell": bell.name,
            "owner_pid": os.getpid(),
            "compute_niceness": self.niceness,
        }
        argv = node_argv("rankmap_container", f"rankmap_{label}_container", self.namespace, params, self.log_level)
        try:
            process = ExecutorProcess(argv, container=True)
        except BaseException:
            _unlink(commands)
            bell.unlink()
            raise
        self.starts[component] += 1
        container = Container(process, commands, bell)
        self.running[component] = container
        return container

    def load(self, component: str, platform: Platform, argv: list[str]) -> Container:
        """Send a stage to its component's container (the stage reports READY on its board)."""
        from rankmap_ros.ros.container_node import encode_command

        container = self.get(component, platform)
        command = np.frombuffer(encode_command(argv), np.uint8)
        if not container.commands.put(command, FrameHeader(0, 0, ""), timeout=STOP_GRACE_S):
            raise RuntimeError(f"the container of {component} takes no more stages")
        return container

    def discard(self, component: str) -> None:
        """Stop `component`'s container for good (the component was dropped from the platform)."""
        container = self.running.pop(component, None)
        if container is not None:
            self._dispose(container)

    def _dispose(self, container: Container, deadline: float | None = None) -> None:
        if container.process.poll() is None:
            container.process.send_signal(signal.SIGTERM)
            wait = STOP_GRACE_S if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                container.process.wait(timeout=wait)
            except subprocess.TimeoutExpired:
                container.process.kill()
                container.process.wait()
        _unlink(container.commands)
        container.bell.unlink()

    def close(self) -> None:
        """Stop every container (after the chains: they unload first) and free their memory."""
        for container in self.running.values():
            if container.process.poll() is None:
                container.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_S  # one grace period for all, not one each
        for container in self.running.values():
            self._dispose(container, deadline)
        self.running.clear()


def _unlink(channel: Channel) -> None:
    with contextlib.suppress(Exception):
        channel.close()
        channel.detach()
        channel.unlink()


@dataclass
class StageProcess:
    index: int
    key: StageKey
    node_name: str
    process: ExecutorProcess
    started: float
    progress: float = -1.0
    progress_at: float = 0.0


@dataclass
class Failure:
    dnn: str
    stage: int
    component: str
    pid: int
    reason: str


@dataclass
class Chain:
    """The running pipeline of one DNN."""

    config: ChainConfig
    stages: tuple[StageKey, ...]
    board: Board
    channels: list[Channel]
    geometry: Segment | None
    processes: list[StageProcess]
    started: float
    restarts: int = 0
    # (time, results of the last stage, images that reached the first stage)
    samples: collections.deque[tuple[float, int, int]] = field(default_factory=lambda: collections.deque(maxlen=64))
    # (time, images taken by the first stage, results on time) behind the deadline miss rate
    deadline_samples: collections.deque[tuple[float, int, int]] = field(
        default_factory=lambda: collections.deque(maxlen=64)
    )
    slots: list[tuple[str, int]] = field(default_factory=list)  # (component, arbiter slot) per stage
    arbiters: Arbiters | None = None
    containers: Containers | None = None  # the component executor's: stages are hosted, not processes
    stopped: bool = False  # its processes are stopped and its shared memory is gone
    retry_at: float = 0.0  # a stopped chain that kept failing starts again then (the manager's backoff)

    def ready(self) -> bool:
        return all(self.board.state(p.index) == StageState.READY for p in self.processes)

    def frames(self) -> int:
        return int(self.board.rows["frames"][len(self.stages) - 1])

    def sample(self, now: float) -> None:
        if self.ready():
            self.samples.append((now, self.frames(), self.channels[0].written))
            if self.config.period > 0:
                late = int(self.board.rows["late"][len(self.stages) - 1])
                self.deadline_samples.append((now, self.channels[0].written, self.frames() - late))

    def miss_rate(self, now: float) -> float:
        """Real-time DNNs: share of images of the last RATE_WINDOW_S not answered by their deadline.

        An image counts as missed when the first stage's newest-wins slot dropped it, a stage
        dropped it as late, or its result came after the deadline; NaN until a second has passed.
        """
        recent = [s for s in self.deadline_samples if now - s[0] <= RATE_WINDOW_S]
        if len(recent) < 2 or recent[-1][0] - recent[0][0] < 1.0:
            return math.nan
        taken = recent[-1][1] - recent[0][1]
        on_time = recent[-1][2] - recent[0][2]
        return min(max(1.0 - on_time / taken, 0.0), 1.0) if taken > 0 else math.nan

    def rate(self, now: float) -> float:
        """Results/s over the last RATE_WINDOW_S (NaN until the chain has run for a second)."""
        return self._per_second(now, 1)

    def input_rate(self, now: float) -> float:
        """Images/s reaching the first stage over the last RATE_WINDOW_S, taken or dropped (NaN as rate)."""
        return self._per_second(now, 2)

    def keeps_up(self, now: float) -> bool:
        """Whether the DNN answers (nearly) every image that reaches it."""
        arriving, answered = self.input_rate(now), self.rate(now)
        return arriving > 0 and answered >= KEEPS_UP * arriving

    def measuring(self, now: float) -> bool:
        """Started (perhaps still loading its model) but not measured over a whole RATE_WINDOW_S."""
        return not self.stopped and not self.full_window(now)

    def full_window(self, now: float) -> bool:
        """Whether it has been measured over a whole RATE_WINDOW_S (its rates are not of a start)."""
        return bool(self.samples) and now - self.samples[0][0] >= RATE_WINDOW_S

    def _per_second(self, now: float, column: int) -> float:
        recent = [(s[0], s[column]) for s in self.samples if now - s[0] <= RATE_WINDOW_S]
        if len(recent) < 2 or recent[-1][0] - recent[0][0] < 1.0:
            return math.nan
        (t0, n0), (t1, n1) = recent[0], recent[-1]
        return (n1 - n0) / (t1 - t0)

    def stage_stats(self, index: int) -> dict[str, Any]:
        row = self.board.rows[index]
        frames = int(row["frames"])
        channel = self.channels[index]
        return {
            "frames": frames,
            "service_time_s": float(row["busy_s"]) / frames if frames else math.nan,
            "compute_cpu_s": float(row["busy_cpu_s"]) / frames if frames else math.nan,
            "queue_wait_s": float(row["queued_s"]) / frames if frames else math.nan,
            "received": channel.written,
            "last_service_s": float(row["last_service_s"]),
            "queue_depth": channel.depth,
            "drops": channel.dropped,
            "late_drops": int(row["dropped"]),
            "preempted": int(row["preempted"]),
            "state": StageState(int(row["state"])).name.lower(),
        }

    def pids(self) -> list[int]:
        return [p.process.pid for p in self.processes]


def executor_command(
    config: ChainConfig, platform: Platform, key: StageKey, index: int, last: bool, wiring: dict[str, str | int]
) -> tuple[str, list[str]]:
    """Node name and argv of one executor."""
    start, stop, component_name = key
    component = platform.component(component_name)
    shapes = boundary_shapes(config.model)
    node_name = f"rankmap_{config.dnn}_s{index}"
    params: dict[str, object] = {
        "dnn": config.dnn,
        "model": config.model,
        "weights": config.weights or "",
        "unit_start": start,
        "unit_stop": stop,
        "stage_index": index,
        "component": component.name,
        "backend": component.backend,
        "cpus": ",".join(map(str, component.cpus)),
        "threads": dict(config.threads).get(component.name) or threads_for(component),
        "device": component.device,
        "priority": float(config.priority),
        "input_shape": ",".join(map(str, shapes[start])),
        "output_shape": ",".join(map(str, shapes[stop])),
        "input_topic": config.input_topic if index == 0 else "",
        "input_compressed": config.input_compressed,
        "input_reliability": config.input_reliability,
        "input_depth": config.input_depth,
        "output_topic": config.output_topic if last else "",
        "output_kind": config.output_kind,
        "results_depth": config.results_depth,
        "compute_niceness": config.compute_niceness,
        "period": float(config.period),
        "deadline": float(config.deadline),
        "policy": config.policy,
        "drop_late": config.drop_late,
        **wiring,
    }
    return node_name, node_argv("rankmap_executor", node_name, config.namespace, params, config.log_level)


def node_argv(
    executable: str, node_name: str, namespace: str, params: dict[str, object], log_level: str = ""
) -> list[str]:
    """A node's command line: its name, namespace, `-p` values as JSON (which YAML reads back
    exactly) and the manager's log level: a launch's `log_level:=debug` is meant for them too."""
    argv = [executable, "--ros-args", "-r", f"__node:={node_name}"]
    if namespace not in ("", "/"):
        argv += ["-r", f"__ns:={namespace}"]
    for name, value in params.items():
        argv += ["-p", f"{name}:={json.dumps(value)}"]
    if log_level:
        argv += ["--log-level", log_level]
    return argv


def start_chain(
    config: ChainConfig,
    platform: Platform,
    stages: tuple[StageKey, ...],
    restarts: int = 0,
    arbiters: Arbiters | None = None,
    containers: Containers | None = None,
) -> Chain:
    """Create the chain's shared memory and start one executor per stage (returns at once).

    With `containers` each stage is loaded into its component's container instead.
    """
    shapes = boundary_shapes(config.model)
    taken: list[tuple[str, int]] = []
    board = Board.create(len(stages))
    board.set_priority(config.priority)
    channels: list[Channel] = []
    geometry = None
    chain: Chain | None = None
    try:
        for k, (start, _, _) in enumerate(stages):
            policy: Policy = "drop_oldest" if k == 0 else "block"
            slots = INPUT_SLOTS if k == 0 else BETWEEN_SLOTS
            channels.append(Channel.create(f"{config.dnn}-in{k}", slots, tensor_bytes(shapes[start]), policy))
        if config.output_kind == "detection":
            geometry = Segment.create(new_name(f"{config.dnn}-size"), 16)
        chain = Chain(
            config,
            stages,
            board,
            channels,
            geometry,
            [],
            time.monotonic(),
            restarts,
            slots=taken,
            arbiters=arbiters,
            containers=containers,
        )
        for k, key in enumerate(stages):
            last = k == len(stages) - 1
            arbiter, slot = arbiters.take(key[2]) if arbiters is not None else ("", -1)
            ring = "" if last or containers is None else containers.get(stages[k + 1][2], platform).bell.name
            taken.append((key[2], slot))
            wiring: dict[str, str | int] = {
                "input_channel": channels[k].name,
                "output_channel": "" if last else channels[k + 1].name,
                "board": board.name,
                "board_row": k,
                "geometry": geometry.name if geometry else "",
                "owner_pid": os.getpid(),
                "arbiter": arbiter,
                "arbiter_slot": slot,
                "output_ring": ring,
            }
            node_name, argv = executor_command(config, platform, key, k, last, wiring)
            if containers is None:
                process = ExecutorProcess(argv)
            else:
                process = containers.load(key[2], platform, argv[1:]).process
            chain.processes.append(StageProcess(k, key, node_name, process, time.monotonic()))
    except BaseException:
        board.request_stop()
        started = chain.processes if chain is not None and containers is None else []
        release(board, channels, geometry, started)
        _give_slots(taken, arbiters)
        raise
    return chain


def _give_slots(slots: list[tuple[str, int]], arbiters: Arbiters | None) -> None:
    if arbiters is not None:
        for component, slot in slots:
            arbiters.give(component, slot)


def release(board: Board, channels: list[Channel], geometry: Segment | None, processes: list[StageProcess]) -> None:
    for p in processes:
        p.process.kill()
        p.process.wait()
    for channel in channels:
        _unlink(channel)
    if geometry is not None:
        with contextlib.suppress(Exception):
            geometry.close()
            geometry.unlink()
    with contextlib.suppress(Exception):
        board.detach()
        board.unlink()


def stop_chain(chain: Chain, grace_s: float = STOP_GRACE_S) -> None:
    """SIGTERM every executor (they shut down as ROS nodes), SIGKILL the late ones, free the memory.

    Hosted stages are unloaded by their containers instead, between two jobs; a container that
    has not let go of a stage after `grace_s` is hung and killed (its other chains fail and restart).
    """
    stop_chains([chain], grace_s)


def stop_chains(chains: Sequence[Chain], grace_s: float = STOP_GRACE_S) -> None:
    """`stop_chain` for many at once: every executor is told first, then all share one grace
    period, so that a manager shutting down N DNNs waits one period, not N (launch escalates to
    SIGTERM and SIGKILL after a few seconds)."""
    stopping = [chain for chain in chains if not chain.stopped]
    for chain in stopping:
        chain.stopped = True
        chain.board.request_stop()
        if chain.containers is None:
            for p in chain.processes:
                p.process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    errors = []
    for chain in stopping:  # one chain's failure must not leak the others'
        try:
            if chain.containers is not None:
                _unload(chain, deadline)
                release(chain.board, chain.channels, chain.geometry, [])
                continue
            for p in chain.processes:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    p.process.wait(timeout=max(0.0, deadline - time.monotonic()))
            release(chain.board, chain.channels, chain.geometry, chain.processes)
            _give_slots(chain.slots, chain.arbiters)
            chain.slots.clear()
        except Exception as exc:
            errors.append(exc)
    if errors:
        raise errors[0]


def _unload(chain: Chain, deadline: float) -> None:
    """Wait until no container runs one of the chain's stages; kill one that does not let go by
    `deadline` (time.monotonic()).

    A stage still waiting to be loaded is not waited for: its container finds the chain's memory
    gone, or its board stopping, and skips it.
    """
    while True:
        held = [
            p for p in chain.processes if chain.board.state(p.index) == StageState.READY and p.process.poll() is None
        ]
        if not held:
            return
        if time.monotonic() > deadline:
            for p in held:
                p.process.kill()
            return
        time.sleep(0.01)


def check_chain(chain: Chain, now: float, hung_s: float, start_s: float) -> Failure | None:
    """A dead executor, one stuck starting, or one that stopped making progress (then killed).

    A stage whose output channel is full is waiting for its successor (back-pressure, e.g. while
    that one starts), not hung.
    """
    for p in chain.processes:
        code = p.process.poll()
        state = chain.board.state(p.index)
        component = p.key[2]
        if code is not None:
            error = chain.board.error(p.index).strip("\x00")
            reason = error or (f"killed by {signal.Signals(-code).name}" if code < 0 else f"exited with code {code}")
            return Failure(chain.config.dnn, p.index, component, p.process.pid, reason)
        if state == StageState.FAILED:  # a hosted stage fails alone; its container lives on
            reason = chain.board.error(p.index).strip("\x00") or "failed"
            return Failure(chain.config.dnn, p.index, component, p.process.pid, reason)
        if state == StageState.STARTING and now - p.started > start_s:
            p.process.kill()
            return Failure(chain.config.dnn, p.index, component, p.process.pid, f"not ready after {start_s:g} s")
        if state != StageState.READY:
            continue
        row = chain.board.rows[p.index]
        # A serving stage moves one of these at least every poll period, idle or busy.
        progress = float(row["frames"]) + float(row["wait_in_s"]) + float(row["wait_out_s"]) + float(row["busy_s"])
        progress += float(row["beat_s"])  # a container's loop stamps its stages while it turns
        blocked = (
            p.index + 1 < len(chain.channels) and chain.channels[p.index + 1].depth >= chain.channels[p.index + 1].slots
        )
        if progress != p.progress or blocked:
            p.progress, p.progress_at = progress, now
        elif now - p.progress_at > hung_s:
            p.process.kill()
            return Failure(chain.config.dnn, p.index, component, p.process.pid, f"no progress for {hung_s:g} s (hung)")
    return None
