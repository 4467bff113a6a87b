"""`rankmap bench transport`: the ROS transport between processes on this host.

Two measurements, each between separate processes over DDS on loopback:
* service round trip of a status call (GetStatus answering a 3-DNN MappingState), timed in the
  calling process from `call_async` to the completed Future;
* a 640x480 rgb8 sensor_msgs/Image stream at a fixed rate, once with the sensor-data QoS and once
  with the default reliable QoS: frames lost, and latency from the header stamp to the moment the
  subscription callback runs (serialization, transport, deserialization and executor included).

The run uses an isolated random domain (100-200) and localhost discovery unless ROS_DOMAIN_ID /
a discovery range is set. `python -m rankmap_ros.ros.bench_transport server|camera` are the peers.
"""

from __future__ import annotations

import argparse
import array
import os
import platform
import random
import signal
import statistics
import subprocess
import sys
import time
from typing import Any

import numpy as np

IMAGE_TOPIC = "/bench/image"
STATUS_SERVICE = "/bench/status"
WIDTH, HEIGHT = 640, 480


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("ROS_DOMAIN_ID", str(random.randint(100, 200)))
    if "ROS_AUTOMATIC_DISCOVERY_RANGE" not in env and "ROS_LOCALHOST_ONLY" not in env:
        env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
        env["ROS_LOCALHOST_ONLY"] = "1"
    return env


def _peer(role: str, env: dict[str, str], *extra: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", __name__, role, *extra], env=env)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _stats_ms(values_s: list[float]) -> dict[str, float]:
    ordered = sorted(values_s)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1e3  # noqa: E731
    return {
        "median": round(statistics.median(ordered) * 1e3, 3),
        "p90": round(pick(0.9), 3),
        "p99": round(pick(0.99), 3),
        "max": round(ordered[-1] * 1e3, 3),
    }


def _time_service(node: Any, rclpy: Any, calls: int) -> dict[str, Any]:
    from rankmap_ros.ros.rclpy_compat import srv

    get_status = srv("rankmap_ros/srv/GetStatus")
    client = node.create_client(get_status, STATUS_SERVICE)
    if not client.wait_for_service(timeout_sec=20.0):
        raise RuntimeError("the bench server did not come up")
    samples = []
    for index in range(calls + 20):
        start = time.perf_counter()
        future = client.call_async(get_status.Request())
        rclpy.spin_until_future_complete(node, future, timeout_sec=5.0)
        if not future.done():
            raise RuntimeError("a status call got no reply within 5 s")
        if index >= 20:  # the first calls warm up caches
            samples.append(time.perf_counter() - start)
    node.destroy_client(client)
    return {"calls": calls, "round_trip_ms": _stats_ms(samples)}


def _time_images(node: Any, rclpy: Any, env: dict[str, str], qos_name: str, duration_s: float, rate_hz: float) -> Any:
    from rankmap_ros.ros.rclpy_compat import msg, qos_profile_sensor_data

    qos = qos_profile_sensor_data if qos_name == "sensor_data" else 10
    received: dict[int, float] = {}
    expected = [0]

    def on_image(image: Any) -> None:
        now = time.time_ns()
        index, _, total = image.header.frame_id.partition("/")
        expected[0] = int(total)
        stamp = image.header.stamp.sec * 1_000_000_000 + image.header.stamp.nanosec
        received[int(index)] = (now - stamp) / 1e9

    subscription = node.create_subscription(msg("sensor_msgs/msg/Image"), IMAGE_TOPIC, on_image, qos)
    camera = _peer("camera", env, "--qos", qos_name, "--duration", str(duration_s), "--rate", str(rate_hz))
    deadline = time.monotonic() + duration_s + 30
    while camera.poll() is None and time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.05)
    end = time.monotonic() + 0.5
    while time.monotonic() < end:
        rclpy.spin_once(node, timeout_sec=0.05)
    _stop(camera)
    node.destroy_subscription(subscription)
    sent = expected[0] or round(duration_s * rate_hz)
    return {
        "qos": qos_name,
        "rate_hz": rate_hz,
        "frames_sent": sent,
        "frames_received": len(received),
        "frames_lost": sent - len(received),
        "latency_ms": _stats_ms(list(received.values())) if received else None,
    }


def run(calls: int = 1000, duration_s: float = 10.0, rate_hz: float = 30.0) -> dict[str, Any]:
    env = _env()
    os.environ.update(
        {k: env[k] for k in ("ROS_DOMAIN_ID", "ROS_LOCALHOST_ONLY", "ROS_AUTOMATIC_DISCOVERY_RANGE") if k in env}
    )
    from rankmap_ros.ros.rclpy_compat import ROS_AVAILABLE, Node, rclpy

    server = _peer("server", env)
    rclpy.init(args=[])
    try:
        node = Node("bench_transport")
        service = _time_service(node, rclpy, calls)
        images = [_time_images(node, rclpy, env, q, duration_s, rate_hz) for q in ("sensor_data", "reliable")]
        node.destroy_node()
    finally:
        _stop(server)
        rclpy.try_shutdown()
    return {
        "label": "measured on this host, loopback",
        "host": platform.node(),
        "cpus": os.cpu_count(),
        "transport": "rclpy" if ROS_AVAILABLE else "rankmap_ros DDS transport (cyclonedds + rosbags)",
        "domain_id": int(env["ROS_DOMAIN_ID"]),
        "cyclonedds_uri": env.get("CYCLONEDDS_URI", ""),
        "load_average_1min": round(os.getloadavg()[0], 2),
        "status_service": service,
        "image_640x480_rgb8": images,
    }


def report(result: dict[str, Any]) -> str:
    rtt = result["status_service"]["round_trip_ms"]
    lines = [
        f"ROS transport ({result['label']}; {result['transport']}; {result['cpus']} CPUs, "
        f"load {result['load_average_1min']})",
        f"  status service round trip over {result['status_service']['calls']} calls: median {rtt['median']} ms, "
        f"p90 {rtt['p90']} ms, p99 {rtt['p99']} ms, max {rtt['max']} ms",
    ]
    for image in result["image_640x480_rgb8"]:
        lat = image["latency_ms"] or {}
        lines.append(
            f"  640x480 rgb8 at {image['rate_hz']:g} Hz, {image['qos']}: {image['frames_received']}/"
            f"{image['frames_sent']} frames ({image['frames_lost']} lost), latency median {lat.get('median')} ms, "
            f"p90 {lat.get('p90')} ms, max {lat.get('max')} ms"
        )
    return "\n".join(lines)


# --- the peer processes -----------------------------------------------------------------------


def _serve() -> None:
    from rankmap_ros.ros.rclpy_compat import ExternalShutdownException, Node, msg, rclpy, srv

    stage, dnn, state = (msg(f"rankmap_ros/msg/{n}") for n in ("Stage", "DnnMapping", "MappingState"))
    mapping = state(
        platform="host",
        planner="rankmap",
        priority_mode="static",
        plan_seconds=0.5,
        dnns=[
            dnn(
                name=f"dnn{i}",
                model=model,
                priority=1 / 3,
                stages=[
                    stage(unit_start=s * 4, unit_stop=s * 4 + 4, component=c, service_time=0.01)
                    for s, c in enumerate(("gpu", "big", "little"))
                ],
                predicted_rate=10.0,
                measured_rate=9.5,
                potential_throughput=0.4,
            )
            for i, model in enumerate(("mobilenet_v2", "resnet50", "yolo_v3"))
        ],
    )

    def on_status(_request: Any, response: Any) -> Any:
        response.state = mapping
        return response

    rclpy.init()
    node = Node("bench_server")
    node.create_service(srv("rankmap_ros/srv/GetStatus"), STATUS_SERVICE, on_status)
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


def _camera(qos_name: str, duration_s: float, rate_hz: float) -> None:
    from rankmap_ros.ros.rclpy_compat import ExternalShutdownException, Node, msg, qos_profile_sensor_data, rclpy

    image_type, header_type = msg("sensor_msgs/msg/Image"), msg("std_msgs/msg/Header")
    rclpy.init()
    node = Node("bench_camera")
    publisher = node.create_publisher(
        image_type, IMAGE_TOPIC, qos_profile_sensor_data if qos_name == "sensor_data" else 10
    )
    pixels = array.array("B", np.random.default_rng(0).integers(0, 255, HEIGHT * WIDTH * 3, dtype=np.uint8).tobytes())
    total = round(duration_s * rate_hz)
    deadline = time.monotonic() + 20
    while publisher.get_subscription_count() == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.2)
    sent = [0]

    def tick() -> None:
        if sent[0] >= total:
            raise SystemExit
        header = header_type(stamp=node.get_clock().now().to_msg(), frame_id=f"{sent[0]}/{total}")
        publisher.publish(
            image_type(header=header, height=HEIGHT, width=WIDTH, encoding="rgb8", step=WIDTH * 3, data=pixels)
        )
        sent[0] += 1

    node.create_timer(1.0 / rate_hz, tick)
    try:
        rclpy.spin(node)
    except (SystemExit, KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        time.sleep(0.3)
        node.destroy_node()
        rclpy.try_shutdown()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog=f"python -m {__name__}")
    parser.add_argument("role", choices=["server", "camera"])
    parser.add_argument("--qos", default="sensor_data", choices=["sensor_data", "reliable"])
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=30.0)
    args = parser.parse_args(argv)
    if args.role == "server":
        _serve()
    else:
        _camera(args.qos, args.duration, args.rate)


if __name__ == "__main__":
    main()
