"""A small diagnostic updater: what `diagnostic_updater.Updater` does, over real rclpy and ours.

The apt `diagnostic_updater` is not installable without ROS 2, so this follows its conventions
(research/ros2-over-dds.md §6): DiagnosticArray on the absolute `/diagnostics`, reliable,
volatile, depth 1 (the aggregator subscribes reliable, so best effort would not match), one
array per period stamped with the node clock, status names prefixed `"<node name>: "`, and
`hardware_id` set on every status. Levels are rosidl `byte` values (`DiagnosticStatus.OK == b"\\x00"`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rankmap_ros.ros import endpoints
from rankmap_ros.ros.rclpy_compat import QoSProfile, msg

DiagnosticArray = msg("diagnostic_msgs/msg/DiagnosticArray")
DiagnosticStatus = msg("diagnostic_msgs/msg/DiagnosticStatus")
KeyValue = msg("diagnostic_msgs/msg/KeyValue")
OK, WARN, ERROR, STALE = DiagnosticStatus.OK, DiagnosticStatus.WARN, DiagnosticStatus.ERROR, DiagnosticStatus.STALE
DIAGNOSTICS_QOS = QoSProfile(depth=1)


def level_value(level: Any) -> int:
    """0-3 whether rosidl gave a one-byte `bytes` or an int."""
    return level[0] if isinstance(level, bytes | bytearray) else int(level)


@dataclass
class Status:
    """One status being built: its level, message and key/values (like DiagnosticStatusWrapper)."""

    name: str
    level: bytes = OK
    message: str = ""
    values: list[tuple[str, str]] = field(default_factory=list)

    def summary(self, level: bytes, message: str) -> None:
        self.level, self.message = level, message

    def add(self, key: str, value: object) -> None:
        self.values.append((key, value if isinstance(value, str) else format_value(value)))


def format_value(value: object) -> str:
    """Four significant digits: a GPU stage's 0.0004 s service time must not read 0.000; '-' for
    what is not known yet (NaN), which rqt would show as 'nan'."""
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        return f"{value:.4g}" if abs(value) < 1e4 else f"{value:.0f}"  # 12345, not 1.234e+04
    return str(value)


def parse_value(text: str) -> float:
    """A number `format_value` wrote, back: '-' (or any text that is no number) is NaN."""
    try:
        return float(text)
    except ValueError:
        return math.nan


class Updater:
    """Publishes the statuses that `collect()` returns, every `period` seconds of `clock`."""

    def __init__(
        self,
        node: Any,
        hardware_id: str,
        collect: Callable[[], list[Status]],
        period: float = 1.0,
        clock: Any = None,
    ) -> None:
        self._node = node
        self.hardware_id = hardware_id
        self._collect = collect
        # diagnostic_updater's `node: status`; in a namespace the node's full name, or two robots'
        # managers on one /diagnostics would overwrite each other's statuses in the aggregator
        self._prefix = f"{node.get_name() if node.get_namespace() == '/' else node.get_fully_qualified_name()}: "
        self._publisher = node.create_publisher(DiagnosticArray, endpoints.DIAGNOSTICS_TOPIC, DIAGNOSTICS_QOS)
        self._timer = node.create_timer(period, self.update, clock=clock)  # None: the node's clock

    def update(self) -> None:
        statuses = [self._message(s) for s in self._collect()]
        array = DiagnosticArray(status=statuses)
        array.header.stamp = self._node.get_clock().now().to_msg()
        self._publisher.publish(array)

    def _message(self, status: Status) -> Any:
        return DiagnosticStatus(
            level=status.level,
            name=self._prefix + status.name,
            message=status.message,
            hardware_id=self.hardware_id,
            values=[KeyValue(key=k, value=v) for k, v in status.values],
        )

    def destroy(self) -> None:
        self._node.destroy_timer(self._timer)
        self._node.destroy_publisher(self._publisher)
