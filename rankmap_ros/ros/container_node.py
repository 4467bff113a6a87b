"""Component container: one process per component, hosting the stage nodes mapped to it.

ROS 2 composition for the component executor (`executor: component` on the manager). Each
stage is still its own node (`rankmap_<dnn>_s<k>`, its parameters, its image subscription or
result publisher), but the stages sharing a component live in this one process, and one loop
(runtime/component.py) runs all their jobs in one thread: under a preemptive policy a
preemption is a function return, not a hand-over between processes, which cost the preempted
job about a millisecond each on a shared core (`rankmap bench handover`).

The manager starts one container per component it uses and sends it stages to load through a
shared-memory command channel (the executor's command line, as JSON); a stage leaves when its
DNN's board says stop, between two jobs, and one whose computation raises fails alone. Threads:
the main thread spins the nodes (images in, parameters, logging), a loader thread builds new
stages (seconds for a large slice, which must not hold up the others' jobs), and the compute
thread runs the loop. The container dies with the manager and stops on SIGTERM.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import sys
import threading
from typing import Any

import torch

from rankmap_ros.core.realtime import parse_policy
from rankmap_ros.ros.executor_node import StageExecutor
from rankmap_ros.ros.rclpy_compat import (
    ExternalShutdownException,
    Node,
    ParameterDescriptor,
    SingleThreadedExecutor,
    rclpy,
)
from rankmap_ros.runtime import backends, worker
from rankmap_ros.runtime.board import StageState
from rankmap_ros.runtime.channel import Channel
from rankmap_ros.runtime.component import ComponentLoop, Hosted
from rankmap_ros.runtime.shm import Semaphore

PARAMETERS: tuple[tuple[str, Any, str], ...] = (
    ("component", "", "platform component the container runs"),
    ("cpus", "", "comma-separated CPU affinity of the container; empty: leave it"),
    ("threads", 1, "torch intra-op threads: every core of the component, one job runs at a time"),
    ("policy", "edf", "the components' scheduling policy (an arbitrated one)"),
    ("commands", "", "shared-memory channel the manager sends stages to load through"),
    ("doorbell", "", "semaphore rung after every frame put into one of the hosted stages' inputs"),
    ("owner_pid", 0, "the manager's pid; the container exits when it is gone"),
    ("compute_niceness", 5, "niceness of the compute thread, above the nodes' transport threads"),
)
COMMAND_POLL_S = 0.2


def encode_command(argv: list[str]) -> bytes:
    """A load command: the stage executor's command line."""
    return json.dumps({"load": argv}).encode()


class ComponentContainer(Node):
    """The container node: loads stage nodes on command and runs their jobs in one loop."""

    def __init__(self) -> None:
        super().__init__("rankmap_container")
        for name, default, text in PARAMETERS:
            self.declare_parameter(name, default, ParameterDescriptor(description=text, read_only=True))
        v = {name: self.get_parameter(name).value for name, _, _ in PARAMETERS}
        self.component = v["component"]
        self.niceness = int(v["compute_niceness"])
        backends.bind_process(tuple(int(c) for c in v["cpus"].split(",") if c.strip()), int(v["threads"]))
        self.commands = Channel.open(v["commands"])
        self.bell = Semaphore.open(v["doorbell"])
        self.stop = threading.Event()
        self.nodes: dict[int, StageExecutor] = {}  # id(hosted) -> its node
        self.retired: queue.SimpleQueue[StageExecutor] = queue.SimpleQueue()
        owner = int(v["owner_pid"]) or os.getppid()
        self.loop = ComponentLoop([], parse_policy(v["policy"]), self.bell, owner, self.stop.is_set, self._retire)
        self.executor: Any = None
        self.compute = threading.Thread(target=self._serve, name="component", daemon=True)
        self.loader = threading.Thread(target=self._load_loop, name="loader", daemon=True)
        self.get_logger().info(f"container of {self.component} ready (pid {os.getpid()})")

    def start(self, executor: Any) -> None:
        self.executor = executor
        self.compute.start()
        self.loader.start()

    def _serve(self) -> None:
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), self.niceness)
        with torch.inference_mode():
            self.loop.serve()

    def _load_loop(self) -> None:
        while not self.stop.is_set():
            frame = self.commands.get(timeout=COMMAND_POLL_S)
            if frame is None:
                continue
            try:
                argv = json.loads(bytes(frame.array).decode())["load"]
            except (ValueError, KeyError, TypeError) as exc:
                self.get_logger().error(f"malformed command ignored: {exc}")
                continue
            self._load(argv)

    def _load(self, argv: list[str]) -> None:
        """Build one stage node; a DNN stopped meanwhile (its memory gone) is skipped."""
        try:
            node = StageExecutor(cli_args=argv, bell=self.bell)
        except Exception as exc:  # the node marked its row FAILED when it got that far
            self.get_logger().error(f"stage not loaded: {type(exc).__name__}: {exc}")
            return
        assert node.hosted is not None
        if node.board.stopping:  # its DNN stopped while it was being built
            node.board.set_state(node.row, StageState.STOPPED)
            node.destroy_node()
            return
        self.nodes[id(node.hosted)] = node
        self.executor.add_node(node)
        self.loop.admit(node.hosted)

    def _retire(self, hosted: Hosted, error: str) -> None:
        """Called by the loop: the stage is out of it; the main thread destroys its node."""
        node = self.nodes.pop(id(hosted))
        if error:
            node.get_logger().error(f"{hosted.spec.label} failed: {error}")
        node.board.set_state(node.row, StageState.FAILED if error else StageState.STOPPED, error)
        self.retired.put(node)
        if self.executor is not None:
            self.executor.wake()

    def reap(self) -> None:
        """Destroy retired stage nodes (from the spinning thread: none of their callbacks runs)."""
        while not self.retired.empty():
            node = self.retired.get()
            self.executor.remove_node(node)
            node.destroy_node()

    def close(self) -> None:
        self.stop.set()
        for thread in (self.compute, self.loader):
            if thread.is_alive():
                thread.join(timeout=2.0)
        for node in self.nodes.values():
            node.board.set_state(node.row, StageState.STOPPED)
            self.retired.put(node)
        self.nodes.clear()
        self.reap()


def main(args: list[str] | None = None) -> None:
    worker.become_child()  # die with the manager; keep native libraries off stdout
    rclpy.init(args=args)
    try:
        node = ComponentContainer()
    except Exception as exc:
        print(f"rankmap container: {type(exc).__name__}: {exc}", file=sys.stderr)
        rclpy.try_shutdown()
        sys.exit(worker.EXIT_FAILED)
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    node.start(executor)
    try:
        # The loop ends when the manager is gone: then the container leaves too.
        while rclpy.ok() and node.compute.is_alive():
            executor.spin_once(timeout_sec=0.1)
            node.reap()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.close()
        executor.remove_node(node)
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    main()
