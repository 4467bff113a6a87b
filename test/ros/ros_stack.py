"""A manager, a camera and a client node as separate processes over real DDS, for ROS tests."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

FRAME_ID = "test_camera"
CAMERA_TOPIC = "/test_camera/image_raw"
MANAGER_PARAMS = {
    "host_split": "'big:0,little:1'",
    "search_simulations": "100",
    "search_time_limit": "0.5",
    "starvation_grace": "600.0",
    "max_dnns": "4",
    "hung_timeout": "5.0",
}


@dataclass
class Stack:
    manager: subprocess.Popen[bytes]
    camera: subprocess.Popen[bytes]
    node: Any
    executor: Any
    manager_command: list[str]
    results: dict[str, list[Any]] = field(default_factory=dict)
    camera_stamps: set[tuple[int, int]] = field(default_factory=set)
    diagnostics: list[tuple[float, Any]] = field(default_factory=list)
    mappings: list[Any] = field(default_factory=list)

    def spin_until(self, done: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not done():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
            assert self.manager.poll() is None, "the manager exited"
            self.executor.spin_once(timeout_sec=0.05)

    def call(self, type_name: str, service: str, **fill: Any) -> Any:
        from rankmap_ros.ros.rclpy_compat import srv

        service_type = srv(type_name)
        client = self.node.create_client(service_type, service)
        try:
            assert client.wait_for_service(timeout_sec=30.0), f"{service} never appeared"
            future = client.call_async(service_type.Request(**fill))
            self.spin_until(future.done, 10.0, f"the answer of {service}")
            return future.result()
        finally:
            self.node.destroy_client(client)

    def register(self, name: str, model: str, **fill: Any) -> Any:
        from rankmap_ros.ros import endpoints

        request = {"name": name, "model": model, "input_topic": CAMERA_TOPIC, "priority": 1.0, **fill}
        return self.call(endpoints.REGISTER_TYPE, endpoints.REGISTER_SERVICE, **request)

    def status(self) -> Any:
        from rankmap_ros.ros import endpoints

        return self.call(endpoints.STATUS_TYPE, endpoints.STATUS_SERVICE).state

    def latest_diagnostics(self) -> dict[str, Any]:
        return {s.name.split(": ", 1)[1]: s for s in self.diagnostics[-1][1].status} if self.diagnostics else {}

    def stage_pids(self, dnn: str) -> list[int]:
        pids = []
        for name, status in self.latest_diagnostics().items():
            if name.startswith(f"stage {dnn}["):
                pids.append(int(dict((kv.key, kv.value) for kv in status.values)["pid"]))
        return pids


def _ros_args(params: dict[str, str]) -> list[str]:
    out = ["--ros-args"]
    for key, value in params.items():
        out += ["-p", f"{key}:={value}"]
    return out


def start_stack(params: dict[str, str], encoding: str = "rgb8", remaps: tuple[str, ...] = ()) -> Stack:
    """Manager (with `params` over MANAGER_PARAMS, and `-r` `remaps`), a 15 Hz 320x240 camera, and a client node."""
    params = {**MANAGER_PARAMS, **params}
    python = [sys.executable, "-m"]
    manager_command = [*python, "rankmap_ros.ros.manager_node", *_ros_args(params)]
    for rule in remaps:
        manager_command += ["-r", rule]
    manager = subprocess.Popen(manager_command, stdin=subprocess.DEVNULL)
    camera_args = ["-r", "__ns:=/test_camera", "-p", "rate:=15.0", "-p", "width:=320", "-p", "height:=240"]
    camera_args += ["-p", f"frame_id:={FRAME_ID}", "-p", "step_padding:=8", "-p", "compressed:=jpeg"]
    camera_args += ["-p", f"encoding:={encoding}"]
    camera = subprocess.Popen([*python, "rankmap_ros.ros.camera_node", "--ros-args", *camera_args])
    from rankmap_ros.ros import endpoints
    from rankmap_ros.ros.dds import rclpy_api as dds
    from rankmap_ros.ros.dds.context import SignalHandlerOptions
    from rankmap_ros.ros.manager_node import MAPPING_QOS
    from rankmap_ros.ros.rclpy_compat import Node, SingleThreadedExecutor, msg, qos_profile_sensor_data

    dds.init(args=[], signal_handler_options=SignalHandlerOptions.NO)
    node = Node("rankmap_test_client")
    executor = SingleThreadedExecutor()  # its own: the global one may belong to an earlier test's context
    executor.add_node(node)
    s = Stack(manager, camera, node, executor, manager_command)
    node.create_subscription(
        msg("sensor_msgs/msg/Image"),
        CAMERA_TOPIC,
        lambda m: s.camera_stamps.add((m.header.stamp.sec, m.header.stamp.nanosec)),
        qos_profile_sensor_data,
    )
    node.create_subscription(
        msg("diagnostic_msgs/msg/DiagnosticArray"),
        endpoints.DIAGNOSTICS_TOPIC,
        lambda m: s.diagnostics.append((time.monotonic(), m)),
        10,
    )
    node.create_subscription(msg(endpoints.MAPPING_TYPE), endpoints.MAPPING_TOPIC, s.mappings.append, MAPPING_QOS)
    return s


def stop_stack(s: Stack) -> None:
    """SIGINT the camera and the manager (the manager stops its executors), then leave DDS."""
    from rankmap_ros.ros.dds import rclpy_api as dds

    for process in (s.camera, s.manager):
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    # A SIGKILLed manager's participant stays in discovery until its lease (Cyclone: 10 s) runs out;
    # the next module's clients would see its services as available and send requests nowhere.
    deadline = time.monotonic() + 15.0
    while "rankmap_manager" in s.node.get_node_names() and time.monotonic() < deadline:
        time.sleep(0.2)
    s.node.destroy_node()
    dds.try_shutdown()
