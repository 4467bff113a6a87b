"""rclpy's Time, Duration and Clocks; a node's ROS clock follows /clock while `use_sim_time` is true."""

from __future__ import annotations

import threading
import time as _time
from collections.abc import Callable
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
    def __init__(self, *, clock_type: ClockType = ClockType.SYSTEM_TIME) -> None:
        self.clock_type = clock_type

    def now(self) -> Time:
        source = _time.monotonic_ns if self.clock_type == ClockType.STEADY_TIME else _time.time_ns
        return Time(nanoseconds=source(), clock_type=self.clock_type)

    def _timer_ns(self) -> int:
        """What timers on this clock count in: monotonic, so a wall-clock step (NTP) moves no timer."""
        return _time.monotonic_ns()


JumpHandler = Callable[[int, int, bool], None]


class ROSClock(Clock):
    """System time, or the last /clock time while simulation time is active (time_source.py).

    Timers on this clock share its lock and register a jump handler, called under that lock with
    the timer time before and after a jump and whether simulation time was switched on or off, so
    a timer never compares one time base with a deadline in the other.
    """

    def __init__(self) -> None:
        super().__init__(clock_type=ClockType.ROS_TIME)
        self._lock = threading.RLock()
        self._active = False
        self._override_ns = 0  # zero: no /clock message yet, as in rcl
        self._jump_handlers: list[JumpHandler] = []

    @property
    def ros_time_is_active(self) -> bool:
        return self._active

    def now(self) -> Time:
        with self._lock:
            if self._active:
                return Time(nanoseconds=self._override_ns, clock_type=ClockType.ROS_TIME)
        return Time(nanoseconds=_time.time_ns(), clock_type=ClockType.ROS_TIME)

    def _timer_ns(self) -> int:
        with self._lock:
            return self._override_ns if self._active else _time.monotonic_ns()

    def _set_ros_time_is_active(self, enabled: bool) -> None:
        with self._lock:
            if enabled == self._active:
                return
            before = self._timer_ns()
            self._active = enabled
            after = self._timer_ns()
            for handler in self._jump_handlers:
                handler(before, after, True)

    def set_ros_time_override(self, time: Time) -> None:
        with self._lock:
            before, self._override_ns = self._override_ns, time.nanoseconds
            if self._active and time.nanoseconds < before:
                for handler in self._jump_handlers:
                    handler(before, time.nanoseconds, False)

    def _add_jump_handler(self, handler: JumpHandler) -> None:
        with self._lock:
            self._jump_handlers.append(handler)

    def _remove_jump_handler(self, handler: JumpHandler) -> None:
        with self._lock:
            if handler in self._jump_handlers:
                self._jump_handlers.remove(handler)
