"""The demo of demo.launch.py without ROS 2: manager, camera and perception node as processes.

Each node is its own process started exactly as a launch file would start it (`--ros-args`), on
a private, localhost-only domain unless ROS_DOMAIN_ID is set. This process is a ROS node too: it
reads the manager's status service and /diagnostics once a second and reports a table per DNN.
"""

from __future__ import annotations

import contextlib
import math
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rankmap_ros.ros import endpoints
from rankmap_ros.ros.diagnostics import level_value, parse_value
from rankmap_ros.ros.parent import PARENT_ENV
from rankmap_ros.ros.share import find_share

LEVELS = ("OK", "WARN", "ERROR", "STALE")


@dataclass
class DemoOptions:
    duration_s: float = 60.0
    split: str = ""
    change_after_s: float | None = None
    rate_hz: float = 30.0
    params_file: str = ""
    policy: str = ""  # scheduling_policy over the parameters file's ("": the file's)
    executor: str = ""  # executor over the file's; "component" alone implies policy edf
    platform: str = ""  # the manager's platform over the file's, e.g. one `rankmap calibrate` wrote
    dnns_file: str = ""  # the manager registers these at start, instead of the perception node's three
    compressed: bool = False  # the camera also publishes image_raw/compressed (JPEG)


@dataclass
class DemoReport:
    """What the demo saw: the last status per DNN, and when the mapping changed."""

    domain_id: str
    platform: str = ""
    planner: str = ""
    priority_mode: str = ""
    dnns: dict[str, dict[str, Any]] = field(default_factory=dict)
    mapping_changes: list[dict[str, Any]] = field(default_factory=list)
    elapsed_s: float = 0.0
    memory: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "domain_id": self.domain_id,
            "platform": self.platform,
            "planner": self.planner,
            "priority_mode": self.priority_mode,
            "elapsed_s": round(self.elapsed_s, 1),
            "dnns": self.dnns,
            "mapping_changes": self.mapping_changes,
            "memory": self.memory,
        }


def auto_split() -> str:
    """Two clusters on a host whose CPUs form one (no cpufreq): 'big' and 'little' halves."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return ""
    half = len(cpus) // 2
    big, little = cpus[:half], cpus[half:]
    return f"big:{'+'.join(map(str, big))},little:{'+'.join(map(str, little))}"


# The usual Cyclone tuning for large messages (docs/BENCHMARKS.md "ROS transport"): with Linux's
# default 208 kB receive buffer a busy subscriber loses fragments of 640x480 images.
LARGE_MESSAGES_URI = (
    "<CycloneDDS><Domain><Internal><SocketReceiveBufferSize min='4MB'/></Internal></Domain></CycloneDDS>"
)


def demo_environment() -> dict[str, str]:
    """A private localhost-only domain unless the user chose one; Cyclone tuned for images."""
    env = dict(os.environ)
    env.setdefault("CYCLONEDDS_URI", LARGE_MESSAGES_URI)
    if "ROS_DOMAIN_ID" not in env:
        env["ROS_DOMAIN_ID"] = str(random.SystemRandom().randint(100, 200))
        env["ROS_LOCALHOST_ONLY"] = "1"
        env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def node_commands(options: DemoOptions) -> dict[str, list[str]]:
    """argv of the nodes, the same parameters demo.launch.py sets; with a dnns_file the manager
    registers its DNNs itself and no perception node runs."""
    python = [sys.executable, "-m"]
    config = find_share("config/rankmap.yaml")
    params = options.params_file or (str(config) if config is not None else "")
    manager = [*python, "rankmap_ros.ros.manager_node", "--ros-args"]
    if params:
        manager += ["--params-file", params]
    manager += ["-p", f"host_split:={options.split or auto_split()!r}"]
    policy = options.policy or ("edf" if options.executor == "component" else "")
    if policy:
        manager += ["-p", f"scheduling_policy:={policy}"]
    if options.executor:
        manager += ["-p", f"executor:={options.executor}"]
    if options.platform:
        manager += ["-p", f"platform:={options.platform!r}"]
    camera = [
        *python,
        "rankmap_ros.ros.camera_node",
        "--ros-args",
        "-r",
        "__ns:=/camera",
        "-p",
        f"rate:={options.rate_hz}",
    ]
    if options.compressed:
        camera += ["-p", "compressed:=jpeg"]
    if options.dnns_file:
        manager += ["-p", f"dnns_file:={str(Path(options.dnns_file).resolve())!r}"]
        return {"manager": manager, "camera": camera}
    change = options.change_after_s if options.change_after_s is not None else options.duration_s / 2
    perception = [*python, "rankmap_ros.ros.perception_demo_node", "--ros-args", "-p", f"change_after:={float(change)}"]
    return {"manager": manager, "camera": camera, "perception": perception}


def start_nodes(options: DemoOptions, env: dict[str, str], log: Any) -> dict[str, subprocess.Popen[bytes]]:
    return {
        # the nodes end with this process, however it ends (only they: not this process's env)
        name: subprocess.Popen(
            argv, env={**env, PARENT_ENV: str(os.getpid())}, stdout=log, stderr=log, stdin=subprocess.DEVNULL
        )
        for name, argv in node_commands(options).items()
    }


def stop_nodes(processes: dict[str, subprocess.Popen[bytes]], timeout: float = 15.0) -> dict[str, int]:
    """SIGINT (as ros2 launch does), then SIGKILL what is still there; the manager last."""
    order = [n for n in processes if n != "manager"] + [n for n in processes if n == "manager"]
    codes: dict[str, int] = {}
    for name in order:
        process = processes[name]
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
        try:
            codes[name] = process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            codes[name] = process.wait()
    return codes


def descendants(pids: list[int]) -> list[int]:
    """The processes and all their descendants (executors are children of the manager's fork server)."""
    children: dict[int, list[int]] = {}
    for status in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = status.read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(status.parent.name))
    out, todo = [], list(pids)
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo += children.get(pid, [])
    return out


def memory_of(pids: list[int]) -> dict[str, Any]:
    """Resident (RSS) and proportional (PSS: shared pages split among sharers) memory, in MB."""
    rss: dict[int, float] = {}
    pss: dict[int, float] = {}
    for pid in pids:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                key, _, value = line.partition(":")
                if key in ("Rss", "Pss"):
                    (rss if key == "Rss" else pss)[pid] = int(value.split()[0]) / 1024
    return {
        "processes": len(rss),
        "rss_mb_total": round(sum(rss.values()), 1),
        "pss_mb_total": round(sum(pss.values()), 1),
        "rss_mb_max_process": round(max(rss.values(), default=0.0), 1),
    }


def dnn_rows(state: Any, levels: dict[str, tuple[str, str, float]]) -> dict[str, dict[str, Any]]:
    """Each DNN's row: the status service's numbers, and the level, message and input rate of /diagnostics."""
    out = {}
    for d in state.dnns:
        level, message, arriving = levels.get(d.name, ("STALE", "no diagnostics yet", math.nan))
        out[d.name] = {
            "model": d.model,
            "priority": round(float(d.priority), 4),
            "min_rate": float(d.min_rate),
            "input_rate": _num(arriving),
            "measured_rate": _num(d.measured_rate),
            "predicted_rate": _num(d.predicted_rate),
            "potential_throughput": _num(d.potential_throughput),
            "stages": [{"units": [s.unit_start, s.unit_stop], "component": s.component} for s in d.stages],
            "status": level,
            "status_message": message,
        }
    return out


def _num(value: float) -> float | None:
    return None if math.isnan(value) else round(float(value), 3)


def run_demo(options: DemoOptions, on_update: Callable[[DemoReport], None], log: Any) -> DemoReport:
    """Start the nodes, report every second until `duration_s`, stop everything."""
    env = demo_environment()
    os.environ.update(
        {k: env[k] for k in ("ROS_DOMAIN_ID", "ROS_LOCALHOST_ONLY", "ROS_AUTOMATIC_DISCOVERY_RANGE") if k in env}
    )
    report = DemoReport(domain_id=env["ROS_DOMAIN_ID"])
    processes = start_nodes(options, env, log)
    try:
        _watch(options, report, processes, on_update)
        report.memory = memory_of(descendants([p.pid for p in processes.values()]))
    finally:
        stop_nodes(processes)
    return report


def _watch(
    options: DemoOptions,
    report: DemoReport,
    processes: dict[str, subprocess.Popen[bytes]],
    on_update: Callable[[DemoReport], None],
) -> None:
    from rankmap_ros.ros.rclpy_compat import Node, msg, rclpy, srv

    status_type = srv(endpoints.STATUS_TYPE)
    rclpy.init(args=[])
    try:
        node = Node(f"rankmap_demo_{os.getpid()}")
        levels: dict[str, tuple[str, str, float]] = {}

        def on_diagnostics(array: Any) -> None:
            for s in array.status:
                name = s.name.split(": ", 1)[-1]
                if name.startswith("dnn "):
                    values = {kv.key: kv.value for kv in s.values}
                    arriving = parse_value(values.get("input_rate", "-"))
                    levels[name[4:]] = (LEVELS[level_value(s.level)], s.message, arriving)

        def on_mapping(state: Any) -> None:
            stages = {d.name: [f"{s.unit_start}-{s.unit_stop - 1}@{s.component}" for s in d.stages] for d in state.dnns}
            planned = any(stages.values())  # not the manager's first state, DNNs registered but not planned yet
            if planned and (not report.mapping_changes or report.mapping_changes[-1]["stages"] != stages):
                report.mapping_changes.append({"at_s": round(time.monotonic() - started, 1), "stages": stages})

        started = time.monotonic()
        node.create_subscription(
            msg("diagnostic_msgs/msg/DiagnosticArray"), endpoints.DIAGNOSTICS_TOPIC, on_diagnostics, 10
        )
        from rankmap_ros.ros.manager_node import MAPPING_QOS

        node.create_subscription(msg(endpoints.MAPPING_TYPE), endpoints.MAPPING_TOPIC, on_mapping, MAPPING_QOS)
        client = node.create_client(status_type, endpoints.STATUS_SERVICE)
        next_poll = started
        while (now := time.monotonic()) - started < options.duration_s:
            dead = [n for n, p in processes.items() if p.poll() is not None]
            if dead:
                raise RuntimeError(f"demo node(s) exited early: {', '.join(dead)} (see the log)")
            rclpy.spin_once(node, timeout_sec=0.1)
            if now < next_poll or not client.service_is_ready():
                continue
            next_poll = now + 1.0
            future = client.call_async(status_type.Request())
            rclpy.spin_until_future_complete(node, future, timeout_sec=2.0)
            if future.done():
                state = future.result().state
                report.platform, report.planner, report.priority_mode = (
                    state.platform,
                    state.planner,
                    state.priority_mode,
                )
                report.dnns = dnn_rows(state, levels)
                report.elapsed_s = now - started
                on_update(report)
        node.destroy_node()
    finally:
        with contextlib.suppress(Exception):
            rclpy.try_shutdown()
