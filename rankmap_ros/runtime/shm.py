"""Named shared-memory segments and POSIX semaphores that any process of this host can open.

Why not `multiprocessing.shared_memory`: its resource tracker (Python 3.11) registers a segment
in every process that attaches and may unlink it when one of them exits, and it cannot be opened
by a process that was not started by the owner (a ROS executor node). Here a segment is a plain
file in /dev/shm mapped with mmap, and a semaphore is a named POSIX semaphore (CPython's own
`_multiprocessing.SemLock`, which also backs `multiprocessing.Semaphore`). Every name carries
the owner's pid and its pid namespace, so `remove_stale()` can delete what a killed owner left
behind, and only that: containers sharing /dev/shm (`docker run --ipc=host`, common with ROS 2)
see each other's entries, whose pids mean nothing in this namespace.
"""

from __future__ import annotations

import _multiprocessing
import contextlib
import mmap
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from rankmap_ros.runtime.errors import HostRuntimeError

SHM_DIR = Path("/dev/shm")
PREFIX = "rankmap"
_SEMAPHORE = 1  # _multiprocessing's kind for a counting semaphore
_SEM_MAX = 2**30
# rankmap-<pid>-p<pid namespace>-...; names without the namespace (before 2026-12-08) count as this one's
_OWNED = re.compile(rf"^(?:sem\.)?{PREFIX}-(\d+)-(?:p(\d+)-)?")


def _pid_namespace() -> int:
    try:
        return Path("/proc/self/ns/pid").stat().st_ino
    except OSError:
        return 0


PID_NAMESPACE = _pid_namespace()


class ShmError(HostRuntimeError):
    """A segment or semaphore that cannot be created or opened."""


def new_name(label: str) -> str:
    """A fresh name owned by this process: rankmap-<pid>-p<pid namespace>-<random>-<label>."""
    return f"{PREFIX}-{os.getpid()}-p{PID_NAMESPACE}-{secrets.token_hex(4)}-{label}"


@dataclass
class Segment:
    """A shared memory segment mapped into this process."""

    name: str
    size: int
    buffer: mmap.mmap

    @classmethod
    def create(cls, name: str, size: int) -> Segment:
        path = SHM_DIR / name
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
        except OSError as exc:
            raise ShmError(f"cannot create shared memory {path}: {exc}") from exc
        try:
            os.ftruncate(fd, size)
            buffer = mmap.mmap(fd, size)
        except OSError as exc:  # e.g. /dev/shm full: no empty segment is left behind
            path.unlink(missing_ok=True)
            raise ShmError(f"cannot size shared memory {path} to {size} bytes: {exc}") from exc
        finally:
            os.close(fd)
        return cls(name, size, buffer)

    @classmethod
    def open(cls, name: str) -> Segment:
        path = SHM_DIR / name
        try:
            fd = os.open(path, os.O_RDWR)
        except OSError as exc:
            raise ShmError(f"cannot open shared memory {path}: {exc}") from exc
        try:
            size = os.fstat(fd).st_size
            buffer = mmap.mmap(fd, size)
        finally:
            os.close(fd)
        return cls(name, size, buffer)

    def close(self) -> None:
        # numpy views may still reference the buffer; the mapping then goes with them.
        with contextlib.suppress(BufferError):
            self.buffer.close()

    def unlink(self) -> None:
        (SHM_DIR / self.name).unlink(missing_ok=True)


class Semaphore:
    """A named counting semaphore: acquire with a timeout, release; its operations are memory barriers."""

    def __init__(self, lock: _multiprocessing.SemLock, name: str) -> None:
        self._lock = lock
        self.name = name

    @classmethod
    def create(cls, name: str, value: int) -> Semaphore:
        try:
            return cls(_multiprocessing.SemLock(_SEMAPHORE, value, _SEM_MAX, "/" + name, False), name)
        except OSError as exc:
            raise ShmError(f"cannot create semaphore {name}: {exc}") from exc

    @classmethod
    def open(cls, name: str) -> Semaphore:
        try:
            return cls(_multiprocessing.SemLock._rebuild(0, _SEMAPHORE, _SEM_MAX, "/" + name), name)
        except OSError as exc:
            raise ShmError(f"cannot open semaphore {name}: {exc}") from exc

    def acquire(self, timeout: float | None = None) -> bool:
        """True once acquired; False after `timeout` seconds (0: do not wait)."""
        if timeout is not None and timeout <= 0:
            return bool(self._lock.acquire(False))
        return bool(self._lock.acquire(True, timeout))

    def release(self) -> None:
        self._lock.release()

    def unlink(self) -> None:
        with contextlib.suppress(OSError):
            _multiprocessing.sem_unlink("/" + self.name)


def _owner(entry: str) -> int | None:
    """The pid that made `entry`, if this package did in this pid namespace."""
    match = _OWNED.match(entry)
    return int(match[1]) if match and int(match[2] or PID_NAMESPACE) == PID_NAMESPACE else None


def owned_entries(pid: int | None = None) -> list[str]:
    """Names in /dev/shm made by this package (by process `pid` of this pid namespace, or by anyone)."""
    found = []
    for path in SHM_DIR.iterdir() if SHM_DIR.is_dir() else ():
        if _OWNED.match(path.name) and (pid is None or _owner(path.name) == pid):
            found.append(path.name)
    return sorted(found)


def process_alive(pid: int) -> bool:
    """A live, non-zombie process (a killed child stays a zombie until its parent reaps it)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True  # no /proc: trust kill()
    return state not in ("Z", "X")


def stale_entries() -> list[str]:
    """Segments and semaphores of this pid namespace whose owner process is gone."""
    return [e for e in owned_entries() if (pid := _owner(e)) is not None and not process_alive(pid)]


def remove_stale() -> list[str]:
    """Delete segments and semaphores whose owner process is gone; returns what was removed.

    Another user's leftovers (a killed run as root) cannot be removed and are skipped: names carry
    their owner's pid and a random token, so they never stand in the way of ours.
    """
    removed = []
    for entry in stale_entries():
        try:
            (SHM_DIR / entry).unlink(missing_ok=True)
        except PermissionError:
            continue
        removed.append(entry)
    return removed
