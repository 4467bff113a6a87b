"""rclpy's executors over one Cyclone WaitSet.

Each round attaches the read conditions of the subscriptions, services and clients whose callback
group may run now (plus the executor's guard condition), waits until one triggers or the next
timer is due, and takes one unit of work per ready entity, as rclpy takes one message per
execution. SingleThreadedExecutor runs the work in the spinning thread; MultiThreadedExecutor
hands it to a thread pool and honours MutuallyExclusive / Reentrant groups. Waits in the main
thread are capped so SIGINT is handled promptly.
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from cyclonedds.core import DDSException, GuardCondition, WaitSet

from rankmap_ros.ros.dds.context import Context, ExternalShutdownException, get_default_context
from rankmap_ros.ros.dds.logging import get_logger
from rankmap_ros.ros.dds.task import Future

_LOGGER = get_logger("rclpy.executor")

MAIN_THREAD_WAIT_CAP_S = 0.1

Work = tuple[Any, Callable[[], Any]]


class ShutdownException(Exception):  # noqa: N818 - rclpy's name
    """The executor itself was shut down."""


class Executor:
    def __init__(self, *, context: Context | None = None) -> None:
        self._context = context or get_default_context()
        participant = self._context.require_participant()
        self._nodes: list[Any] = []
        self._lock = threading.RLock()
        self._waitset = WaitSet(participant)
        self._guard = GuardCondition(participant)
        self._waitset.attach(self._guard)
        self._attached: dict[int, Any] = {}
        self._ready: deque[Work] = deque()
        self._is_shutdown = False
        self._context.on_shutdown(self.wake)

    @property
    def context(self) -> Context:
        return self._context

    def wake(self) -> None:
        self._guard.set(True)

    def add_node(self, node: Any) -> bool:
        with self._lock:
            if node in self._nodes:
                return False
            self._nodes.append(node)
            node.executor = self
        self.wake()
        return True

    def remove_node(self, node: Any) -> None:
        with self._lock:
            if node in self._nodes:
                self._nodes.remove(node)
                node.executor = None
        self.wake()

    def get_nodes(self) -> list[Any]:
        with self._lock:
            return list(self._nodes)

    def create_task(self, callback: Callable[..., Any], *args: Any) -> Future:
        """Run `callback(*args)` in the executor; the returned Future holds its result."""
        future = Future()

        def run() -> None:
            try:
                future.set_result(callback(*args))
            except Exception as exc:
                future.set_exception(exc)

        with self._lock:
            self._ready.append((None, run))
        self.wake()
        return future

    def shutdown(self, timeout_sec: float | None = None) -> bool:
        self._is_shutdown = True
        self._context.remove_on_shutdown(self.wake)
        self.wake()
        with self._lock:
            for node in list(self._nodes):
                node.executor = None
            self._nodes = []
        return True

    # --- waiting ------------------------------------------------------------------------------

    def _eligible(self) -> list[Any]:
        with self._lock:
            nodes = list(self._nodes)
        return [w for node in nodes for w in node.waitables if w.callback_group.can_execute()]

    def _sync_waitset(self, entities: list[Any]) -> None:
        wanted = {id(e.condition): e.condition for e in entities if e.condition is not None}
        for key in list(self._attached):
            if key not in wanted:
                try:
                    self._waitset.detach(self._attached.pop(key))
                except DDSException:
                    continue
        for key, condition in wanted.items():
            if key not in self._attached:
                self._waitset.attach(condition)
                self._attached[key] = condition

    def _collect(self, timeout_sec: float | None) -> None:
        """Wait for work and queue one unit per ready entity."""
        entities = self._eligible()
        self._sync_waitset(entities)
        timers = [e for e in entities if e.condition is None]
        due = [t.wait_ns() for t in timers]
        wait_s = [d / 1e9 for d in due if d is not None]
        if timeout_sec is not None and timeout_sec >= 0:
            wait_s.append(timeout_sec)
        if threading.current_thread() is threading.main_thread():
            wait_s.append(MAIN_THREAD_WAIT_CAP_S)
        wait = max(0.0, min(wait_s)) if wait_s else None
        if wait is None or wait > 0:
            self._waitset.wait(int(wait * 1e9) if wait is not None else 2**63 - 1)
        self._guard.take()
        for entity in entities:
            try:
                work = entity.take()
            except Exception as exc:  # a sample that does not decode (a broken or foreign peer): drop it, serve on
                name = getattr(entity, "topic_name", None) or getattr(entity, "srv_name", "an entity")
                _LOGGER.error(
                    f"dropped a sample on {name} that does not decode: {type(exc).__name__}: {exc}",
                    throttle_duration_sec=5.0,
                )
                continue
            if work is not None:
                self._ready.append((entity, work))

    def _pop_runnable(self) -> Work | None:
        """The oldest queued work whose callback group may run now (others wait for their group)."""
        with self._lock:
            for index, work in enumerate(self._ready):
                group = getattr(work[0], "callback_group", None)
                if group is None or group.can_execute():
                    del self._ready[index]
                    return work
        return None

    def _next_work(self, timeout_sec: float | None, until: Callable[[], bool] | None = None) -> Work | None:
        """The next runnable work, waiting up to `timeout_sec` (None: for ever) like rclpy, or
        None as soon as `until()` holds (a future being waited for is done).

        A wake-up without work (a node added or removed: the guard condition) only rebuilds what
        is waited on and waits again for the time left. Returning instead turned
        `while ...: rclpy.spin_once(node, timeout_sec=0.1)` into a busy loop, since
        `rclpy.spin_once` adds and removes the node, which wakes the executor every time.
        """
        deadline = None if timeout_sec is None or timeout_sec < 0 else time.monotonic() + timeout_sec
        while True:
            if not self._context.ok():
                raise ExternalShutdownException
            if self._is_shutdown:
                raise ShutdownException
            work = self._pop_runnable()
            if work is not None or (until is not None and until()):
                return work
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left < 0:
                return None
            self._collect(left)
            if not self._context.ok():
                raise ExternalShutdownException
            work = self._pop_runnable()
            if work is not None or (left is not None and left <= 0) or (until is not None and until()):
                return work

    # --- spinning -----------------------------------------------------------------------------

    def spin_once(self, timeout_sec: float | None = None) -> None:
        self._spin_once(timeout_sec)

    def _spin_once(self, timeout_sec: float | None, until: Callable[[], bool] | None = None) -> None:
        raise NotImplementedError

    def spin(self) -> None:
        try:
            while not self._is_shutdown:
                self.spin_once()
        except ShutdownException:
            return

    def spin_until_future_complete(self, future: Future, timeout_sec: float | None = None) -> None:
        future.add_done_callback(lambda _: self.wake())
        deadline = None if timeout_sec is None or timeout_sec < 0 else time.monotonic() + timeout_sec
        while not future.done():
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return
            try:
                self._spin_once(remaining, future.done)
            except ShutdownException:
                return

    def spin_once_until_future_complete(self, future: Future, timeout_sec: float | None = None) -> None:
        future.add_done_callback(lambda _: self.wake())
        self._spin_once(timeout_sec, future.done)


class SingleThreadedExecutor(Executor):
    def _spin_once(self, timeout_sec: float | None, until: Callable[[], bool] | None = None) -> None:
        work = self._next_work(timeout_sec, until)
        if work is not None:
            work[1]()


class MultiThreadedExecutor(Executor):
    def __init__(self, num_threads: int | None = None, *, context: Context | None = None) -> None:
        super().__init__(context=context)
        self._pool = ThreadPoolExecutor(max_workers=num_threads or os.cpu_count() or 2)
        self._errors: deque[BaseException] = deque()

    def _spin_once(self, timeout_sec: float | None, until: Callable[[], bool] | None = None) -> None:
        """Dispatch every runnable unit of work to the pool; callback errors surface here."""
        if self._errors:
            raise self._errors.popleft()
        work = self._next_work(timeout_sec, until)
        while work is not None:
            entity, run = work
            group = getattr(entity, "callback_group", None)
            if group is not None and not group.beginning_execution():
                with self._lock:
                    self._ready.appendleft(work)
                return
            self._pool.submit(self._run, group, run)
            work = self._pop_runnable()

    def _run(self, group: Any, run: Callable[[], Any]) -> None:
        try:
            run()
        except Exception as exc:
            self._errors.append(exc)
        finally:
            if group is not None:
                group.ending_execution()
            self.wake()

    def shutdown(self, timeout_sec: float | None = None) -> bool:
        done = super().shutdown(timeout_sec)
        self._pool.shutdown(wait=timeout_sec is None or timeout_sec > 0)
        return done
