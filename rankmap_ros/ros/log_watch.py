"""`rankmap logs`: the ROS nodes' log lines from /rosout, for a machine without rqt_console.

A late start still shows the last 10 s: /rosout writers keep their lines that long (transient
local, 10 s lifespan), so a manager's lines from just before appear first.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rankmap_ros.ros.dds.logging import console_line
from rankmap_ros.ros.rclpy_compat import DurabilityPolicy, ExternalShutdownException, Node, QoSProfile, msg, rclpy


@dataclass(frozen=True)
class LogLine:
    stamp_ns: int
    level: int
    name: str
    text: str
    file: str
    function: str
    line: int

    def console(self) -> str:
        """As the node itself prints it."""
        return console_line(self.level, self.stamp_ns, self.name, self.text)


def wanted(line: LogLine, level: int, names: tuple[str, ...]) -> bool:
    """At or above `level`, from one of `names` or a logger below it (all when none is given)."""
    below = any(line.name == n or line.name.startswith(n + ".") for n in names)
    return line.level >= level and (not names or below)


def watch(seconds: float, level: int, names: tuple[str, ...], show: Callable[[LogLine], None]) -> None:
    """Show /rosout for `seconds` (0: until Ctrl-C)."""
    rclpy.init(args=[])
    node = None
    try:
        node = Node(f"rankmap_logs_{os.getpid()}", enable_rosout=False)
        qos = QoSProfile(depth=1000, durability=DurabilityPolicy.TRANSIENT_LOCAL)  # rcl's, to get the history

        def take(message: Any) -> None:
            stamp = message.stamp.sec * 1_000_000_000 + message.stamp.nanosec
            got = LogLine(
                stamp, int(message.level), message.name, message.msg, message.file, message.function, message.line
            )
            if wanted(got, level, names):
                show(got)

        node.create_subscription(msg("rcl_interfaces/msg/Log"), "/rosout", take, qos)
        end = time.monotonic() + seconds if seconds > 0 else float("inf")
        while rclpy.ok() and time.monotonic() < end:
            rclpy.spin_once(node, timeout_sec=min(0.2, max(end - time.monotonic(), 0.0)))
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
