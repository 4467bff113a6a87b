"""rclpy's timers and guard conditions, driven by the executor's wait."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from cyclonedds.core import GuardCondition as DdsGuardCondition

from rankmap_ros.ros.dds.pubsub import delete_entity
from rankmap_ros.ros.dds.time import Clock, ROSClock

if TYPE_CHECKING:
    from cyclonedds.domain import DomainParticipant

    from rankmap_ros.ros.dds.callback_groups import CallbackGroup


class Timer:
    """Fires every period of its clock; a late timer skips missed periods, as rcl's does.

    On a node's ROS clock (rclpy's default) it counts simulation time while `use_sim_time` is
    true: a paused simulation pauses it, and the executor waits for /clock (each message wakes
    it) rather than for the simulated time left. Time going back before its last call (a bag
    played in a loop) starts its period again from there, as in rcl; switching simulation time on
    or off keeps the time left (rcl waits a period less the time left, or, with no /clock yet,
    stays on the old time base).
    """

    condition = None

    def __init__(
        self,
        callback: Callable[[], None],
        period_sec: float,
        callback_group: CallbackGroup,
        clock: Clock,
        autostart: bool = True,
    ):
        if period_sec < 0:
            raise ValueError("a timer period cannot be negative")
        self.callback = callback
        self.callback_group = callback_group
        self.clock = clock
        self.timer_period_ns = int(period_sec * 1e9)
        self._canceled = not autostart
        self._ros_clock = clock if isinstance(clock, ROSClock) else None
        # on a ROS clock, its lock: a jump and a read of this timer never interleave
        self._lock: threading.Lock | threading.RLock = self._ros_clock._lock if self._ros_clock else threading.Lock()
        with self._lock:
            self._last = clock._timer_ns()
            self._next = self._last + self.timer_period_ns
            if self._ros_clock:
                self._ros_clock._add_jump_handler(self._on_jump)

    def _on_jump(self, before_ns: int, after_ns: int, clock_change: bool) -> None:
        """Called under the clock's lock, which is this timer's."""
        if clock_change:
            self._next += after_ns - before_ns
            self._last += after_ns - before_ns
        elif after_ns < self._last:
            self._last, self._next = after_ns, after_ns + self.timer_period_ns

    def wait_ns(self) -> int | None:
        """How long the executor may wait for this timer: None while only /clock can make it due."""
        with self._lock:
            due = self.time_until_next_call()
            if due is not None and due > 0 and self._ros_clock and self._ros_clock.ros_time_is_active:
                return None
            return due

    def time_until_next_call(self) -> int | None:
        """Nanoseconds until due (<= 0 when due), None when canceled."""
        return None if self._canceled else self._next - self.clock._timer_ns()

    def is_ready(self) -> bool:
        due = self.time_until_next_call()
        return due is not None and due <= 0

    def is_canceled(self) -> bool:
        return self._canceled

    def cancel(self) -> None:
        self._canceled = True

    def reset(self) -> None:
        with self._lock:
            self._canceled = False
            self._last = self.clock._timer_ns()
            self._next = self._last + self.timer_period_ns

    def take(self) -> Callable[[], None] | None:
        with self._lock:
            now = self.clock._timer_ns()
            if self._canceled or now < self._next:
                return None
            period = max(self.timer_period_ns, 1)
            missed = (now - self._next) // period
            self._last = now
            self._next += (missed + 1) * period
        return self.callback

    def destroy(self) -> None:
        self.cancel()
        if self._ros_clock:
            self._ros_clock._remove_jump_handler(self._on_jump)


class GuardCondition:
    """`trigger()` from any thread runs the callback once in the executor."""

    def __init__(self, participant: DomainParticipant, callback: Callable[[], None], callback_group: CallbackGroup):
        self.callback = callback
        self.callback_group = callback_group
        self.condition = DdsGuardCondition(participant)

    def trigger(self) -> None:
        self.condition.set(True)

    def take(self) -> Callable[[], None] | None:
        return self.callback if self.condition.take() else None

    def destroy(self) -> None:
        delete_entity(self.condition)
