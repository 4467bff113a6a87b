"""Executor node: one pipeline stage of one DNN, on its component, through the runtime.

The manager starts one per stage (its own process, pinned to the stage's component) and owns the
shared memory it talks through: the stage's input channel, its output channel (absent for the last
stage), the DNN's status board and, for detectors, the source image size. The first stage
subscribes to the DNN's sensor_msgs/Image, or CompressedImage on a `.../compressed` topic
(sensor-data QoS), decodes it with OpenCV and drops it into its input channel (drop-oldest: a
camera never waits, the DNN sees the newest frame); the compute loop is the runtime's own stage
loop (`worker.serve`, or `worker.serve_units` unit by unit under the component's arbiter when the
manager's scheduling policy is not time-sharing; a real-time job's deadline counts from its
image's stamp); the last stage publishes the result message with the source header. The process
dies with the manager (PR_SET_PDEATHSIG and a poll of the manager's pid) and stops on SIGTERM.

Under the component executor the same node is one of several in its component's container
process (ros/container_node.py, ROS composition): it is built from its command line as before,
takes images in and publishes results as before, but has no compute thread of its own; the
container's single loop runs its jobs with those of every other stage on the component.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from rankmap_ros.core import zoo
from rankmap_ros.ros import image_codec, model_card, results
from rankmap_ros.ros.rclpy_compat import (
    ExternalShutdownException,
    Node,
    ParameterDescriptor,
    QoSProfile,
    ReliabilityPolicy,
    SingleThreadedExecutor,
    msg,
    qos_profile_sensor_data,
    rclpy,
)
from rankmap_ros.runtime import backends, component, worker
from rankmap_ros.runtime.board import Board, StageState
from rankmap_ros.runtime.channel import Channel, FrameHeader
from rankmap_ros.runtime.shm import Segment, Semaphore
from rankmap_ros.runtime.stage import StageSpec

Image = msg("sensor_msgs/msg/Image")
CompressedImage = msg("sensor_msgs/msg/CompressedImage")
GEOMETRY_BYTES = 16  # int64 width, int64 height of the latest source image


# Everything an executor needs, set by the manager on its command line (name, default, description).
PARAMETERS: tuple[tuple[str, Any, str], ...] = (
    ("dnn", "", "DNN instance name"),
    ("model", "", "zoo model name"),
    ("weights", "", "state_dict file; empty: the zoo's seeded weights"),
    ("unit_start", 0, "first unit of the stage"),
    ("unit_stop", 1, "one past the last unit of the stage"),
    ("stage_index", 0, "position of the stage in the DNN's pipeline"),
    ("component", "", "platform component running the stage"),
    ("backend", "cpu", "cpu, cuda or opencl"),
    ("cpus", "", "comma-separated CPU affinity; empty: leave it"),
    ("threads", 1, "torch intra-op threads"),
    ("device", "", "OpenCL or CUDA device of the component"),
    ("priority", 1.0, "the DNN's priority (CUDA stream priority)"),
    ("input_shape", "", "tensor shape entering the stage, e.g. 1,3,224,224"),
    ("output_shape", "", "tensor shape leaving the stage"),
    ("input_channel", "", "shared-memory channel the stage reads"),
    ("output_channel", "", "channel the stage writes; empty for the last stage"),
    ("output_ring", "", "doorbell of the component container reading output_channel (component executor)"),
    ("board", "", "shared-memory status board of the DNN"),
    ("board_row", 0, "this stage's row on the board"),
    ("geometry", "", "shared memory with the source image size (detectors)"),
    ("owner_pid", 0, "the manager's pid; the stage exits when it is gone"),
    ("input_topic", "", "the sensor_msgs/Image (or CompressedImage) topic, absolute (first stage only)"),
    ("input_compressed", False, "input_topic carries CompressedImage (image_transport's compressed)"),
    ("input_reliability", "best_effort", "best_effort (sensor data) or reliable"),
    ("input_depth", 5, "input queue depth"),
    ("output_topic", "", "result topic (last stage only)"),
    ("output_kind", "classification", "classification, detection or tensor"),
    ("results_depth", 10, "result publisher queue depth (reliable)"),
    ("period", 0.0, "real-time DNN: seconds between images (0: best-effort)"),
    ("deadline", 0.0, "real-time DNN: seconds from image capture to result (0: the period)"),
    ("policy", "time_sharing", "the components' scheduling policy (core.realtime.Policy)"),
    ("drop_late", True, "drop real-time jobs that can no longer meet their deadline"),
    ("arbiter", "", "the component's arbiter (arbitrated policies)"),
    ("arbiter_slot", -1, "this executor's slot in the arbiter"),
    ("compute_niceness", 5, "niceness of the compute thread, above the node's transport threads"),
)
# An image stamp further from now than this is not from this host's clock (simulated time, a
# bag): its job's deadline then counts from when the image arrived.
MAX_STAMP_AGE_S = 10.0


def _shape(text: str) -> tuple[int, ...]:
    """'1,3,224,224' → (1, 3, 224, 224): the manager traced the shapes once (it takes a second)."""
    return tuple(int(d) for d in text.split(","))


def input_qos(reliability: str, depth: int) -> Any:
    """Sensor-data QoS, unless the manager was told to use a reliable input."""
    if reliability == "reliable":
        return QoSProfile(depth=depth, reliability=ReliabilityPolicy.RELIABLE)
    return QoSProfile(depth=depth, reliability=qos_profile_sensor_data.reliability)


@dataclass
class _PublishSink:
    """The last stage's sink: publish the result message instead of writing a channel."""

    node: StageExecutor
    last_copy_s: float = 0.0
    last_copy_cpu_s: float = 0.0

    def put(self, array: np.ndarray, header: FrameHeader, timeout: float | None = None) -> bool:
        start, cpu = time.perf_counter(), time.thread_time()
        task = self.node.spec.task
        if task.deadline is not None and time.monotonic() - header.origin > task.deadline:
            self.node.board.rows["late"][self.node.row] += 1
        self.node.publish_result(array, header)
        self.last_copy_s = time.perf_counter() - start
        self.last_copy_cpu_s = time.thread_time() - cpu
        return True


class _BoardView:
    """The board as `worker.serve` sees it, stopping also when this node shuts down."""

    def __init__(self, board: Board, stop: threading.Event) -> None:
        self.rows = board.rows
        self._board = board
        self._stop = stop

    @property
    def stopping(self) -> bool:
        return self._stop.is_set() or self._board.stopping


class StageExecutor(Node):
    """One stage; all wiring comes as read-only parameters from the manager.

    With a `bell` it is hosted in a component container: `cli_args` carry its parameters (the
    container's own command line is not its), and `hosted` is what the container's loop runs.
    """

    def __init__(self, cli_args: list[str] | None = None, bell: Semaphore | None = None) -> None:
        super().__init__("rankmap_executor", cli_args=cli_args, use_global_arguments=cli_args is None)
        for name, default, text in PARAMETERS:
            self.declare_parameter(name, default, ParameterDescriptor(description=text, read_only=True))
        v = {name: self.get_parameter(name).value for name, _, _ in PARAMETERS}
        model, start, stop = v["model"], v["unit_start"], v["unit_stop"]
        self.spec = StageSpec(
            dnn=v["dnn"],
            model=model,
            index=v["stage_index"],
            start=start,
            stop=stop,
            component=v["component"],
            backend=v["backend"],
            cpus=tuple(int(c) for c in v["cpus"].split(",") if c.strip()),
            threads=v["threads"],
            device=v["device"],
            input_shape=_shape(v["input_shape"]),
            output_shape=_shape(v["output_shape"]),
            weights=v["weights"] or None,
            priority=v["priority"],
            period=v["period"] or None,
            deadline=v["deadline"] or None,
            policy=v["policy"],
            drop_late=v["drop_late"],
        )
        self.wiring = worker.StageWiring(
            "", "", "", v["board_row"], v["owner_pid"] or os.getppid(), v["arbiter"], v["arbiter_slot"]
        )
        self.arbitrated = bool(v["arbiter"]) and self.spec.scheduling.arbitrated
        self.niceness = int(v["compute_niceness"])
        self.row = v["board_row"]
        self.kind = v["output_kind"]
        self.board = Board.open(v["board"])
        self.board.rows["pid"][self.row] = os.getpid()
        self.source = Channel.open(v["input_channel"])
        self.source.ring = bell
        self.geometry = np.frombuffer(Segment.open(v["geometry"]).buffer, np.int64, 2) if v["geometry"] else None
        self.stop = threading.Event()
        self.sink: Any = Channel.open(v["output_channel"]) if v["output_channel"] else _PublishSink(self)
        if v["output_ring"] and isinstance(self.sink, Channel):
            self.sink.ring = Semaphore.open(v["output_ring"])
        self.hosted: component.Hosted | None = None
        try:
            # first: a card broken since registration fails the start before a model is built
            card = model_card.read_card(self.spec.weights, zoo.get_spec(model).num_classes)
            warm = np.zeros(self.spec.input_shape, np.float32)
            if bell is not None:  # the container is bound to the component already
                self.hosted = component.host_stage(self.spec, self.board, self.row, self.source, self.sink)
            elif self.arbitrated:
                backends.bind(self.spec)
                self.units, self.arbiter = worker.prepare_arbitrated(self.spec, self.wiring, warm)
            else:
                backends.bind(self.spec)
                self.run = backends.prepare(self.spec)
                self.run(warm)
            self.decoding = results.Decoding(labels=card.labels)
            if v["output_topic"]:
                result_type = msg(results.MESSAGE_TYPE[self.kind])
                self.publisher = self.create_publisher(result_type, v["output_topic"], v["results_depth"])
            if v["input_topic"]:
                _, _, height, width = self.spec.input_shape
                self.prep = image_codec.Preprocess(height=height, width=width, mean=card.mean, std=card.std)
                qos = input_qos(v["input_reliability"], v["input_depth"])
                kind = CompressedImage if v["input_compressed"] else Image
                self.create_subscription(kind, v["input_topic"], self.on_image, qos)
        except Exception as exc:  # any build, backend or topic failure is the manager's to report
            self.board.set_state(self.row, StageState.FAILED, f"{type(exc).__name__}: {exc}")
            raise
        self.compute = threading.Thread(target=self._serve_reporting, name="stage", daemon=True)
        self.failed = False
        self.board.set_state(self.row, StageState.READY)
        self.get_logger().info(f"{self.spec.label} ready (pid {os.getpid()})")

    def on_image(self, image: Any) -> None:
        """Decode and hand to the compute loop; a frame it has not taken yet is replaced."""
        try:
            rgb = image_codec.to_rgb(image)
            tensor = image_codec.to_tensor(rgb, self.prep)
        except image_codec.ImageError as exc:  # a bad frame must not end the stage (or its container)
            self.get_logger().error(f"dropped an image: {exc}", throttle_duration_sec=5.0)
            return
        if self.geometry is not None:
            self.geometry[:] = (rgb.shape[1], rgb.shape[0])
        stamp = image.header.stamp
        stamp_ns = stamp.sec * 1_000_000_000 + stamp.nanosec
        now = time.monotonic()
        age = time.time() - stamp_ns * 1e-9
        header = FrameHeader(
            seq=self.source.written,
            stamp_ns=stamp_ns,
            frame_id=image.header.frame_id,
            # deadlines count from capture when the stamp is from this host's clock
            origin=now - age if 0.0 <= age <= MAX_STAMP_AGE_S else now,
        )
        self.source.put(tensor, header)

    def publish_result(self, output: np.ndarray, header: FrameHeader) -> None:
        size = (int(self.geometry[0]), int(self.geometry[1])) if self.geometry is not None else (0, 0)
        ros_header = results.header_of(header.stamp_ns, header.frame_id)
        self.publisher.publish(
            results.result_message(self.kind, ros_header, self.spec.model, output, size, self.decoding)
        )

    def _serve_reporting(self) -> None:
        """A job that raises (CUDA out of memory) ends the stage with its text on the board, for the
        manager's log and diagnostics, not just an exit code.

        Not so once the stage was told to stop: the manager's SIGTERM follows its stop request at
        once, and rclpy's handler shuts the context down under a publish in flight, which then
        raises. That is the stop the manager asked for, not a failure to report.
        """
        try:
            self._serve()
        except Exception as exc:
            if self.stop.is_set() or self.board.stopping:
                return
            self.failed = True
            self.board.set_state(self.row, StageState.FAILED, f"{type(exc).__name__}: {exc}")
            self.get_logger().error(f"{self.spec.label} failed: {type(exc).__name__}: {exc}")

    def _serve(self) -> None:
        # Below the threads that take images in and publish results (and below the camera and
        # the manager): on saturated cores the transport then waits for a core far less. Torch's
        # OpenMP workers for this thread are created by it and inherit the niceness.
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), self.niceness)
        board = _BoardView(self.board, self.stop)
        convert = backends.input_converter(self.spec)
        if self.arbitrated:
            with torch.inference_mode():
                worker.serve_units(
                    self.spec,
                    self.units,
                    self.arbiter,
                    self.source,
                    self.sink,
                    board,  # type: ignore[arg-type]
                    self.wiring,
                    convert,
                )
        else:
            worker.serve(self.run, self.source, self.sink, board, self.wiring, convert)  # type: ignore[arg-type]

    def close(self) -> None:
        self.stop.set()
        if self.compute.is_alive():
            self.compute.join(timeout=2.0)
        if not self.failed:
            self.board.set_state(self.row, StageState.STOPPED)


def main(args: list[str] | None = None) -> None:
    worker.become_child()  # die with the manager; keep native libraries off stdout
    rclpy.init(args=args)
    try:
        node = StageExecutor()
    except Exception as exc:
        print(f"rankmap executor: {type(exc).__name__}: {exc}", file=sys.stderr)
        rclpy.try_shutdown()
        sys.exit(worker.EXIT_FAILED)
    node.compute.start()
    executor = SingleThreadedExecutor()  # one for the node's life: its wait set is built once
    executor.add_node(node)
    try:
        # The stage loop ends when the manager stops the DNN or is gone: then the node leaves too.
        while rclpy.ok() and node.compute.is_alive():
            executor.spin_once(timeout_sec=0.1)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.close()
        with contextlib.suppress(Exception):  # rclpy's SIGTERM handler may have shut the context down
            executor.remove_node(node)
        node.destroy_node()
        rclpy.try_shutdown()
    if node.failed:
        sys.exit(worker.EXIT_FAILED)


if __name__ == "__main__":
    main()
