"""rclpy's logger: named loggers with severities, console output in rcutils' default format.

Lines look like rcutils' `[INFO] [1700000000.123456789] [node]: message` on stderr, so logs read
the same with and without ROS. Nothing is published on /rosout.
"""

from __future__ import annotations

import sys
import threading
import time
from enum import IntEnum
from typing import Any


class LoggingSeverity(IntEnum):
    UNSET = 0
    DEBUG = 10
    INFO = 20
    WARN = 30
    ERROR = 40
    FATAL = 50


_levels: dict[str, LoggingSeverity] = {}
_DEFAULT = ""  # key of the process-wide default level in _levels
_lock = threading.Lock()


def parse_severity(text: str | int) -> LoggingSeverity:
    if isinstance(text, int):
        return LoggingSeverity(text)
    name = text.strip().upper()
    name = "WARN" if name == "WARNING" else name
    try:
        return LoggingSeverity[name]
    except KeyError:
        raise ValueError(f"unknown log level {text!r} (DEBUG, INFO, WARN, ERROR, FATAL)") from None


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
        site = hash((sys._getframe(2).f_code, sys._getframe(2).f_lineno))
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
        label = "WARN" if severity == LoggingSeverity.WARN else severity.name
        line = f"[{label}] [{stamp // 1_000_000_000}.{stamp % 1_000_000_000:09d}] [{self.name}]: {message}\n"
        sys.stderr.write(line)
        sys.stderr.flush()
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
