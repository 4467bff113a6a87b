"""rclpy's callback groups: which callbacks a multi-threaded executor may run at the same time."""

from __future__ import annotations

import threading


class CallbackGroup:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running = 0

    def can_execute(self) -> bool:
        raise NotImplementedError

    def beginning_execution(self) -> bool:
        with self._lock:
            if not self._can_execute_locked():
                return False
            self._running += 1
            return True

    def ending_execution(self) -> None:
        with self._lock:
            self._running -= 1

    def _can_execute_locked(self) -> bool:
        raise NotImplementedError


class MutuallyExclusiveCallbackGroup(CallbackGroup):
    """One callback of the group at a time (the default group of every node)."""

    def can_execute(self) -> bool:
        with self._lock:
            return self._can_execute_locked()

    def _can_execute_locked(self) -> bool:
        return self._running == 0


class ReentrantCallbackGroup(CallbackGroup):
    """Any number of callbacks of the group at once, including the same one twice."""

    def can_execute(self) -> bool:
        return True

    def _can_execute_locked(self) -> bool:
        return True
