"""rclpy's Future: a thread-safe result holder that executors and clients complete."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any


class Future:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._event = threading.Event()
        self._result: Any = None
        self._exception: BaseException | None = None
        self._cancelled = False
        self._callbacks: list[Callable[[Future], None]] = []

    def done(self) -> bool:
        return self._event.is_set()

    def cancelled(self) -> bool:
        return self._cancelled

    def result(self) -> Any:
        if self._exception is not None:
            raise self._exception
        return self._result

    def exception(self) -> BaseException | None:
        return self._exception

    def set_result(self, result: Any) -> None:
        self._finish(result=result)

    def set_exception(self, exception: BaseException) -> None:
        self._finish(exception=exception)

    def cancel(self) -> None:
        self._finish(cancelled=True)

    def _finish(self, result: Any = None, exception: BaseException | None = None, cancelled: bool = False) -> None:
        with self._lock:
            if self._event.is_set():
                return
            self._result, self._exception, self._cancelled = result, exception, cancelled
            self._event.set()
            callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            callback(self)

    def add_done_callback(self, callback: Callable[[Future], None]) -> None:
        """Runs at once if already done, else in the thread that completes the future."""
        with self._lock:
            if not self._event.is_set():
                self._callbacks.append(callback)
                return
        callback(self)

    def wait(self, timeout: float | None = None) -> bool:
        return self._event.wait(timeout)
