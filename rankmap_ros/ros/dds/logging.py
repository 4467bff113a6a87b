"""rclpy's logger: named loggers with severities, console output in rcutils' default format.

Lines look like rcutils' `[INFO] [1700000000.123456789] [node]: message` on stderr, so logs read
the same with and without ROS. As in rcl, a node's logger also goes to the node's /rosout
publisher, where rqt_console and `ros2 topic echo /rosout` read it; so does every logger named
below it (`get_child`, as since Iron, or any dotted name under the node's). Other loggers reach
the console only.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
from types import FrameType
from typing import Any


class LoggingSeverity(IntEnum):
    UNSET = 0
    DEBUG = 10
    INFO = 20
    WARN = 30
    ERROR = 40
    FATAL = 50


@dataclass(frozen=True)
class LogRecord:
    """One log call, with its caller, as rcl_interfaces/msg/Log carries it."""

    stamp_ns: int
    severity: LoggingSeverity
    name: str
    message: str
    file: str
    function: str
    line: int


RosoutSink = Callable[[LogRecord], None]

_levels: dict[str, LoggingSeverity] = {}
_DEFAULT = ""  # key of the process-wide default level in _levels
_lock = threading.Lock()


@dataclass
class _Output:
    console: bool = True  # `--disable-stdout-logs` turns it off
    sink_failed: bool = False  # said once on stderr


_output = _Output()
_sinks: dict[str, list[RosoutSink]] = {}
_publishing = threading.local()  # a sink that logs must not publish into itself


def set_console_output(enabled: bool) -> None:
    """`--disable-stdout-logs` (rcl's name; the lines go to stderr)."""
    _output.console = enabled


def add_rosout_sink(logger_name: str, sink: RosoutSink) -> None:
    with _lock:
        _sinks.setdefault(logger_name, []).append(sink)


def remove_rosout_sink(logger_name: str, sink: RosoutSink) -> None:
    with _lock:
        sinks = _sinks.get(logger_name, [])
        if sink in sinks:
            sinks.remove(sink)
        if not sinks:
            _sinks.pop(logger_name, None)


def _sink_for(name: str) -> RosoutSink | None:
    """The sink of the logger or of its nearest dotted parent; the first node of a name wins, as in rcl."""
    if not _sinks:  # no node in this process publishes logs: skip the lock
        return None
    parts = name.split(".")
    with _lock:
        for end in range(len(parts), 0, -1):
            sinks = _sinks.get(".".join(parts[:end]))
            if sinks:
                return sinks[0]
    return None


def _publish(record: LogRecord) -> None:
    sink = _sink_for(record.name)
    if sink is None or getattr(_publishing, "active", False):
        return
    _publishing.active = True
    try:
        sink(record)
    except Exception as error:  # logging never fails its caller; say so once, as rcl does on stderr
        if not _output.sink_failed:
            _output.sink_failed = True
            sys.stderr.write(f"[rankmap_ros] could not publish a log message on /rosout: {error}\n")
    finally:
        _publishing.active = False


def _caller() -> FrameType:
    """The first frame outside this module: the line that logged."""
    frame = sys._getframe(1)
    while frame.f_back is not None and frame.f_code.co_filename == __file__:
        frame = frame.f_back
    return frame


def parse_severity(text: str | int) -> LoggingSeverity:
    if isinstance(text, int):
        return LoggingSeverity(text)
    name = text.strip().upper()
    name = "WARN" if name == "WARNING" else name
    try:
        return LoggingSeverity[name]
    except KeyError:
        raise ValueError(f"unknown log level {text!r} (DEBUG, INFO, WARN, ERROR, FATAL)") from None


def console_line(severity: int, stamp_ns: int, name: str, message: str) -> str:
    """rcutils' default console format: `[INFO] [1700000000.123456789] [node]: message`."""
    label = LoggingSeverity(severity).name if severity in LoggingSeverity._value2member_map_ else str(severity)
    return f"[{label}] [{stamp_ns // 1_000_000_000}.{stamp_ns % 1_000_000_000:09d}] [{name}]: {message}"


def set_logger_level(name: str, level: LoggingSeverity | str | int) -> None:
    with _lock:
        _levels[name] = parse_severity(level)


def set_default_level(level: LoggingSeverity | str | int) -> None:
    with _lock:
        _levels[_DEFAULT] = parse_severity(level)


def get_logger_effective_level(name: str) -> LoggingSeverity:
    """A logger without its own level inherits from its dotted parents, then the default."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        level = _levels.get(".".join(parts[:end]), LoggingSeverity.UNSET)
        if level != LoggingSeverity.UNSET:
            return level
    return _levels.get(_DEFAULT, LoggingSeverity.INFO)


class RcutilsLogger:
    def __init__(self, name: str = "") -> None:
        self.name = name
        self._once: set[int] = set()
        self._last: dict[int, float] = {}
        self._skipped: set[int] = set()

    def get_child(self, name: str) -> RcutilsLogger:
        return RcutilsLogger(f"{self.name}.{name}" if self.name else name)

    def set_level(self, level: LoggingSeverity | str | int) -> None:
        set_logger_level(self.name, level)

    def get_effective_level(self) -> LoggingSeverity:
        return get_logger_effective_level(self.name)

    def is_enabled_for(self, severity: LoggingSeverity) -> bool:
        return severity >= self.get_effective_level()

    def log(self, message: Any, severity: LoggingSeverity, **kwargs: Any) -> bool:
        """Supports rclpy's `once`, `skip_first` and `throttle_duration_sec` filters."""
        if not self.is_enabled_for(severity):
            return False
        caller = _caller()
        site = hash((caller.f_code, caller.f_lineno))
        if kwargs.get("once"):
            if site in self._once:
                return False
            self._once.add(site)
        if kwargs.get("skip_first") and site not in self._skipped:
            self._skipped.add(site)
            return False
        throttle = kwargs.get("throttle_duration_sec")
        if throttle:
            now = time.monotonic()
            if now - self._last.get(site, -float("inf")) < throttle:
                return False
            self._last[site] = now
        stamp = time.time_ns()
        if _output.console:
            sys.stderr.write(console_line(severity, stamp, self.name, str(message)) + "\n")
            sys.stderr.flush()
        code = caller.f_code
        _publish(LogRecord(stamp, severity, self.name, str(message), code.co_filename, code.co_name, caller.f_lineno))
        return True

    def debug(self, message: Any, **kwargs: Any) -> bool:
        return self.log(message, LoggingSeverity.DEBUG, **kwargs)

    def info(self, message: Any, **kwargs: Any) -> bool:
        return self.log(message, LoggingSeverity.INFO, **kwargs)

    def warning(self, message: Any, **kwargs: Any) -> bool:
        return self.log(message, LoggingSeverity.WARN, **kwargs)

    warn = warning

    def error(self, message: Any, **kwargs: Any) -> bool:
        return self.log(message, LoggingSeverity.ERROR, **kwargs)

    def fatal(self, message: Any, **kwargs: Any) -> bool:
        return self.log(message, LoggingSeverity.FATAL, **kwargs)


def get_logger(name: str) -> RcutilsLogger:
    return RcutilsLogger(name)
