"""rclpy's context: init/ok/shutdown, the process's DDS participant, and signal handling.

As in rcl there is one DDS participant per context. `init()` installs SIGINT and SIGTERM handlers
that shut the context down, which wakes every executor so `spin()` ends with
ExternalShutdownException; SIGINT then chains to the previous handler (KeyboardInterrupt), as
rclpy does.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable, Sequence
from enum import Enum
from types import FrameType
from typing import Any

from cyclonedds.core import Policy, Qos
from cyclonedds.domain import Domain, DomainParticipant

from rankmap_ros.ros.dds import discovery
from rankmap_ros.ros.dds import logging as ros_logging
from rankmap_ros.ros.dds.args import RosArgs, parse


class ExternalShutdownException(Exception):  # noqa: N818 - rclpy's name
    """The context was shut down (signal or another thread) while an executor was spinning."""


class SignalHandlerOptions(Enum):
    NO = 0
    SIGINT = 1
    SIGTERM = 2
    ALL = 3


_domains: dict[int, Domain] = {}


class Context:
    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._initialized = False
        self._shutdown = False
        self._callbacks: list[Callable[[], None]] = []
        self.args = RosArgs()
        self.domain_id = 0
        self.participant: DomainParticipant | None = None
        self.graph: discovery.Graph | None = None

    def init(self, args: Sequence[str] | None = None, *, domain_id: int | None = None) -> None:
        with self._lock:
            if self.ok():
                raise RuntimeError("Context.init() must only be called once")
            self.args = parse(sys.argv if args is None else args)
            for name, level in self.args.log_levels.items():
                if name is None:
                    ros_logging.set_default_level(level)
                else:
                    ros_logging.set_logger_level(name, level)
            ros_logging.set_console_output(self.args.stdout)
            self.domain_id = discovery.domain_id() if domain_id is None else domain_id
            if self.domain_id not in _domains:
                _domains[self.domain_id] = Domain(self.domain_id, discovery.domain_config())
            self.participant = DomainParticipant(
                self.domain_id, qos=Qos(Policy.Userdata(data=discovery.PARTICIPANT_USER_DATA))
            )
            self.graph = discovery.Graph(self.participant)
            self._initialized, self._shutdown = True, False

    def ok(self) -> bool:
        return self._initialized and not self._shutdown

    def shutdown(self) -> None:
        with self._lock:
            if not self.ok():
                raise RuntimeError("the context is not initialized or already shut down")
            self._shutdown = True
            callbacks = list(self._callbacks)
        for callback in callbacks:
            callback()

    def try_shutdown(self) -> None:
        if self.ok():
            self.shutdown()

    def on_shutdown(self, callback: Callable[[], None]) -> None:
        with self._lock:
            self._callbacks.append(callback)

    def remove_on_shutdown(self, callback: Callable[[], None]) -> None:
        with self._lock:
            if callback in self._callbacks:
                self._callbacks.remove(callback)

    def require_participant(self) -> DomainParticipant:
        if not self.ok() or self.participant is None:
            raise RuntimeError("call rclpy.init() before creating nodes or executors")
        return self.participant


_default_context = Context()
_previous_handlers: dict[int, Any] = {}


def get_default_context() -> Context:
    return _default_context


def _on_signal(signum: int, frame: FrameType | None) -> None:
    _default_context.try_shutdown()
    previous = _previous_handlers.get(signum)
    if signum == signal.SIGINT and callable(previous):
        previous(signum, frame)


def install_signal_handlers(options: SignalHandlerOptions = SignalHandlerOptions.ALL) -> None:
    if threading.current_thread() is not threading.main_thread() or options == SignalHandlerOptions.NO:
        return
    wanted = {
        SignalHandlerOptions.SIGINT: [signal.SIGINT],
        SignalHandlerOptions.SIGTERM: [signal.SIGTERM],
        SignalHandlerOptions.ALL: [signal.SIGINT, signal.SIGTERM],
    }[options]
    for signum in wanted:
        current = signal.getsignal(signum)
        if current is not _on_signal:
            _previous_handlers[signum] = current
            signal.signal(signum, _on_signal)
