"""rclpy's timers and guard conditions, driven by the executor's wait."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from cyclonedds.core import GuardCondition as DdsGuardCondition

from rankmap_ros.ros.dds.pubsub import delete_entity

if TYPE_CHECKING:
    from cyclonedds.domain import DomainParticipant

    from rankmap_ros.ros.dds.callback_groups import CallbackGroup


class Timer:
    """Fires every period on the monotonic clock; a late timer skips missed periods, as rcl's does."""

    condition = None

    def __init__(
        self, callback: Callable[[], None], period_sec: float, callback_group: CallbackGroup, autostart: bool = True
    ):
        if period_sec < 0:
            raise ValueError("a timer period cannot be negative")
        self.callback = callback
        self.callback_group = callback_group
        self.timer_period_ns = int(period_sec * 1e9)
        self._lock = threading.Lock()
        self._canceled = not autostart
        self._next = time.monotonic_ns() + self.timer_period_ns

    def time_until_next_call(self) -> int | None:
        """Nanoseconds until due (<= 0 when due), None when canceled."""
        return None if self._canceled else self._next - time.monotonic_ns()

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
            self._next = time.monotonic_ns() + self.timer_period_ns

    def take(self) -> Callable[[], None] | None:
        with self._lock:
            now = time.monotonic_ns()
            if self._canceled or now < self._next:
                return None
            period = max(self.timer_period_ns, 1)
            missed = (now - self._next) // period
            self._next += (missed + 1) * period
        return self.callback

    def destroy(self) -> None:
        self.cancel()


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
