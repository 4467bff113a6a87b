"""rclpy's Time, Duration and Clock (system time; no /clock simulation time)."""

from __future__ import annotations

import time as _time
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from rankmap_ros.ros.dds.types import get_message

NS = 1_000_000_000


class ClockType(IntEnum):
    UNINITIALIZED = 0
    ROS_TIME = 1
    SYSTEM_TIME = 2
    STEADY_TIME = 3


@dataclass(frozen=True, order=True, init=False)
class Duration:
    nanoseconds: int

    def __init__(self, *, seconds: float = 0, nanoseconds: int = 0) -> None:
        object.__setattr__(self, "nanoseconds", round(seconds * NS) + int(nanoseconds))

    def to_msg(self) -> Any:
        sec, nanosec = divmod(self.nanoseconds, NS)
        return get_message("builtin_interfaces/msg/Duration")(sec=sec, nanosec=nanosec)

    @classmethod
    def from_msg(cls, msg: Any) -> Duration:
        return cls(seconds=msg.sec, nanoseconds=msg.nanosec)

    def __add__(self, other: Duration) -> Duration:
        return Duration(nanoseconds=self.nanoseconds + other.nanoseconds)

    def __sub__(self, other: Duration) -> Duration:
        return Duration(nanoseconds=self.nanoseconds - other.nanoseconds)


@dataclass(frozen=True, init=False)
class Time:
    nanoseconds: int
    clock_type: ClockType

    def __init__(self, *, seconds: float = 0, nanoseconds: int = 0, clock_type: ClockType = ClockType.SYSTEM_TIME):
        total = round(seconds * NS) + int(nanoseconds)
        if total < 0:
            raise ValueError("time cannot be negative")
        object.__setattr__(self, "nanoseconds", total)
        object.__setattr__(self, "clock_type", clock_type)

    def seconds_nanoseconds(self) -> tuple[int, int]:
        return divmod(self.nanoseconds, NS)

    def to_msg(self) -> Any:
        sec, nanosec = self.seconds_nanoseconds()
        return get_message("builtin_interfaces/msg/Time")(sec=sec, nanosec=nanosec)

    @classmethod
    def from_msg(cls, msg: Any, clock_type: ClockType = ClockType.ROS_TIME) -> Time:
        return cls(seconds=msg.sec, nanoseconds=msg.nanosec, clock_type=clock_type)

    def __add__(self, other: Duration) -> Time:
        return Time(nanoseconds=self.nanoseconds + other.nanoseconds, clock_type=self.clock_type)

    def __sub__(self, other: Any) -> Any:
        if isinstance(other, Time):
            return Duration(nanoseconds=self.nanoseconds - other.nanoseconds)
        return Time(nanoseconds=self.nanoseconds - other.nanoseconds, clock_type=self.clock_type)

    def __lt__(self, other: Time) -> bool:
        return self.nanoseconds < other.nanoseconds

    def __le__(self, other: Time) -> bool:
        return self.nanoseconds <= other.nanoseconds

    def __gt__(self, other: Time) -> bool:
        return self.nanoseconds > other.nanoseconds

    def __ge__(self, other: Time) -> bool:
        return self.nanoseconds >= other.nanoseconds


class Clock:
    """ROS_TIME follows the system clock here: there is no /clock subscription."""

    def __init__(self, *, clock_type: ClockType = ClockType.SYSTEM_TIME) -> None:
        self.clock_type = clock_type

    def now(self) -> Time:
        source = _time.monotonic_ns if self.clock_type == ClockType.STEADY_TIME else _time.time_ns
        return Time(nanoseconds=source(), clock_type=self.clock_type)


class ROSClock(Clock):
    def __init__(self) -> None:
        super().__init__(clock_type=ClockType.ROS_TIME)

    @property
    def ros_time_is_active(self) -> bool:
        return False
