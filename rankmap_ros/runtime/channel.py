"""Bounded shared-memory ring buffers that carry tensors between the stage processes of one host.

One writer process and one reader process per channel. A frame is a header (sequence, source
stamp, frame id, time it entered the pipeline) plus one contiguous array, copied into a slot of a
/dev/shm segment and out again: no pickling on the hot path, two memcpy per hop. A reader that
must convert the frame anyway (a CPU stage wants its input channels-last) converts it straight
out of the slot instead (`get(convert=...)`): one copy fewer.

Two policies, chosen by the creator:
- `block`: a full channel makes the writer wait (back-pressure between pipeline stages);
- `drop_oldest`: a full channel discards its oldest unread frame (real-time input: a camera
  must never wait for a slow DNN, and the DNN should see the newest image).

Synchronisation is three named semaphores: `items` counts unread frames, `space` free slots, and
`mutex` guards the indices and the slot being copied (needed because drop_oldest lets the writer
move the read index). Semaphore operations are memory barriers, so this is also correct on ARM.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from rankmap_ros.runtime.errors import HostRuntimeError
from rankmap_ros.runtime.shm import Segment, Semaphore, ShmError, new_name

Policy = Literal["block", "drop_oldest"]
POLICIES: tuple[str, ...] = ("block", "drop_oldest")
_MAGIC = 0x524B4D43  # "RKMC"
_MAX_DIMS = 8
_ALIGN = 64
_W, _R, _DROPPED, _SLOTS, _MAX_BYTES, _POLICY, _CLOSED, _MAGIC_AT = range(8)
_CONTROL_BYTES = 8 * 8
_READER_GRACE_S = 1.0
# A live holder keeps the lock for one copy (milliseconds); one killed mid-copy keeps it for ever,
# and a call with a timeout then gives up after at least this long instead of hanging with it.
_LOCK_WAIT_MIN_S = 0.5

HEADER = np.dtype(
    [
        ("seq", "<i8"),
        ("stamp_ns", "<i8"),
        ("origin", "<f8"),
        ("put_time", "<f8"),
        ("nbytes", "<i8"),
        ("ndim", "<i8"),
        ("shape", "<i8", (_MAX_DIMS,)),
        ("dtype", "S8"),
        ("frame_id", "S64"),
    ]
)


class ChannelError(HostRuntimeError):
    """A channel that cannot be used as asked (bad size, unknown policy, not a channel)."""


@dataclass(frozen=True)
class FrameHeader:
    """What travels with a tensor: the source's sequence number and stamp, and when it entered.

    `stamp_ns` and `frame_id` are the source image's header (a ROS stamp as nanoseconds);
    `origin` is time.monotonic() when the frame entered the pipeline (CLOCK_MONOTONIC is shared
    by all processes of a host, so any stage can compute the latency so far).
    """

    seq: int
    stamp_ns: int = 0
    frame_id: str = ""
    origin: float = 0.0


@dataclass(frozen=True)
class Frame:
    header: FrameHeader
    array: Any  # the np.ndarray, or what `get(convert=...)` made of it
    queued_s: float  # time between put and get


def _round_up(n: int) -> int:
    return (n + _ALIGN - 1) // _ALIGN * _ALIGN


class Channel:
    """One end of a channel (either end may call any method; exactly one writer and one reader)."""

    def __init__(self, name: str, segment: Segment, sems: tuple[Semaphore, Semaphore, Semaphore], owner: bool) -> None:
        self.name = name
        self._segment = segment
        self._mutex, self._items, self._space = sems
        self._owner = owner
        buf = segment.buffer
        self._ctl = np.frombuffer(buf, np.int64, 8, 0)
        if int(self._ctl[_MAGIC_AT]) != _MAGIC:
            raise ChannelError(f"shared memory {name} is not a rankmap channel")
        self.slots = int(self._ctl[_SLOTS])
        self.max_bytes = int(self._ctl[_MAX_BYTES])
        self.policy: Policy = POLICIES[int(self._ctl[_POLICY])]  # type: ignore[assignment]
        self._headers = np.frombuffer(buf, HEADER, self.slots, _CONTROL_BYTES)
        self._data_offset = _round_up(_CONTROL_BYTES + HEADER.itemsize * self.slots)
        self._stride = _round_up(self.max_bytes)
        # Wall and CPU time the last put/get spent copying and bookkeeping, waits excluded, and
        # what the last get spent in its `convert` (the reader's own work, not the channel's).
        self.last_copy_s = 0.0
        self.last_copy_cpu_s = 0.0
        self.last_convert_s = 0.0
        self.last_convert_cpu_s = 0.0
        # The reader's doorbell, if it waits on several channels at once (runtime/component.py):
        # released after every frame put, so one semaphore wakes it for any of them.
        self.ring: Semaphore | None = None

    @classmethod
    def create(cls, label: str, slots: int, max_bytes: int, policy: Policy = "block") -> Channel:
        """A new channel owned by this process (it unlinks the segment and semaphores)."""
        if slots < 1 or max_bytes < 1:
            raise ChannelError(f"a channel needs slots >= 1 and max_bytes >= 1, got {slots} and {max_bytes}")
        if policy not in POLICIES:
            raise ChannelError(f"unknown channel policy {policy!r} (expected one of {', '.join(POLICIES)})")
        name = new_name(label)
        size = _round_up(_CONTROL_BYTES + HEADER.itemsize * slots) + slots * _round_up(max_bytes)
        segment = Segment.create(name, size)
        ctl = np.frombuffer(segment.buffer, np.int64, 8, 0)
        ctl[:] = (0, 0, 0, slots, max_bytes, POLICIES.index(policy), 0, _MAGIC)
        del ctl
        made: list[Semaphore] = []
        try:
            for suffix, value in (("m", 1), ("i", 0), ("s", slots)):
                made.append(Semaphore.create(f"{name}-{suffix}", value))
        except ShmError:
            for sem in made:
                sem.unlink()
            segment.close()
            segment.unlink()
            raise
        return cls(name, segment, (made[0], made[1], made[2]), owner=True)

    @classmethod
    def open(cls, name: str) -> Channel:
        """The other end of a channel created by another process of this host."""
        segment = Segment.open(name)
        sems = tuple(Semaphore.open(f"{name}-{suffix}") for suffix in ("m", "i", "s"))
        return cls(name, segment, sems, owner=False)  # type: ignore[arg-type]

    @property
    def depth(self) -> int:
        """Unread frames right now."""
        return int(self._ctl[_W] - self._ctl[_R])

    @property
    def dropped(self) -> int:
        return int(self._ctl[_DROPPED])

    @property
    def written(self) -> int:
        return int(self._ctl[_W])

    @property
    def closed(self) -> bool:
        return bool(self._ctl[_CLOSED])

    def put(self, array: np.ndarray, header: FrameHeader, timeout: float | None = None) -> bool:
        """Write a frame; False if `block` found no space within `timeout` seconds (None: wait), or
        the channel's lock stayed held (by a peer killed mid-copy: see _LOCK_WAIT_MIN_S)."""
        array = np.ascontiguousarray(array)
        if array.nbytes > self.max_bytes or array.ndim > _MAX_DIMS:
            raise ChannelError(
                f"channel {self.name}: a {array.dtype} array of shape {array.shape} does not fit "
                f"(max {self.max_bytes} bytes, {_MAX_DIMS} dims)"
            )
        if self.policy == "drop_oldest":  # never waits long, whatever `timeout` says
            spaced, lock_wait = self._space.acquire(0), 0.0
            if not spaced:
                replaced = self._replace_oldest(array, header)
                if replaced is not False:  # True: done; None: the lock stays held, the frame is lost
                    return bool(replaced)
                # Not full after all: a reader has just freed a slot and is about to signal it.
                spaced = self._space.acquire(_READER_GRACE_S)
        elif not self._space.acquire(timeout):
            return False
        else:
            spaced, lock_wait = True, timeout
        start, cpu = time.perf_counter(), time.thread_time()
        if not self._lock(lock_wait):
            if spaced:
                self._space.release()
            return False
        try:
            self._write(array, header)
        except BaseException:
            if spaced:
                self._space.release()  # the slot was not written: still free
            raise
        finally:
            self._mutex.release()
        self._items.release()
        if self.ring is not None:
            self.ring.release()
        self.last_copy_s = time.perf_counter() - start
        self.last_copy_cpu_s = time.thread_time() - cpu
        return True

    def _lock(self, timeout: float | None) -> bool:
        """The channel's lock, waiting at most max(timeout, _LOCK_WAIT_MIN_S) (None: for ever)."""
        return self._mutex.acquire(None if timeout is None else max(timeout, _LOCK_WAIT_MIN_S))

    def _replace_oldest(self, array: np.ndarray, header: FrameHeader) -> bool | None:
        """In a full drop_oldest channel, overwrite the oldest unread frame; False if not full,
        None if its lock stays held (by a peer killed mid-copy)."""
        start, cpu = time.perf_counter(), time.thread_time()
        if not self._lock(0):
            return None
        try:
            if self._ctl[_W] - self._ctl[_R] < self.slots:
                return False
            self._write(array, header)  # full: the write slot is the oldest frame's; nothing moves if it raises
            self._ctl[_R] += 1
            self._ctl[_DROPPED] += 1
        finally:
            self._mutex.release()
        self.last_copy_s = time.perf_counter() - start
        self.last_copy_cpu_s = time.thread_time() - cpu
        return True

    def _write(self, array: np.ndarray, header: FrameHeader) -> None:
        slot = int(self._ctl[_W] % self.slots)
        shape = list(array.shape) + [0] * (_MAX_DIMS - array.ndim)
        self._headers[slot] = (
            header.seq,
            header.stamp_ns,
            header.origin,
            time.monotonic(),
            array.nbytes,
            array.ndim,
            shape,
            array.dtype.str.encode(),
            header.frame_id.encode()[:64],
        )
        offset = self._data_offset + slot * self._stride
        dst = np.frombuffer(self._segment.buffer, np.uint8, array.nbytes, offset)
        np.copyto(dst, array.reshape(-1).view(np.uint8))
        self._ctl[_W] += 1

    def get(
        self,
        timeout: float | None = None,
        out: np.ndarray | None = None,
        convert: Callable[[np.ndarray], Any] | None = None,
    ) -> Frame | None:
        """The oldest unread frame, or None once closed and empty, or after `timeout` seconds with
        no frame, or when the lock stays held (by a peer killed mid-copy) for max(timeout,
        _LOCK_WAIT_MIN_S) more: the frame then stays for the next call.

        `out`, if its shape and dtype fit, receives the data (no allocation per frame).
        `convert`, if given, is called with a view of the slot (valid only during the call, under
        the channel's lock) and returns the frame's data in the reader's own storage, or None
        to take the plain copy; its time is reported apart (`last_convert_s`).
        """
        if self.closed and self.depth == 0:
            return None
        if not self._items.acquire(timeout):
            return None
        start, cpu = time.perf_counter(), time.thread_time()
        convert_s = convert_cpu_s = 0.0
        if not self._lock(timeout):
            self._items.release()  # the frame stays for the next call
            return None
        try:
            if self._ctl[_W] == self._ctl[_R]:  # woken by close()
                self._items.release()
                return None
            slot = int(self._ctl[_R] % self.slots)
            h = self._headers[slot]
            ndim = int(h["ndim"])
            shape = tuple(int(s) for s in h["shape"][:ndim])
            dtype = np.dtype(h["dtype"].decode())
            nbytes = int(h["nbytes"])
            offset = self._data_offset + slot * self._stride
            data = None
            if convert is not None:
                c0, t0 = time.perf_counter(), time.thread_time()
                data = convert(
                    np.frombuffer(self._segment.buffer, dtype, nbytes // dtype.itemsize, offset).reshape(shape)
                )
                convert_s, convert_cpu_s = time.perf_counter() - c0, time.thread_time() - t0
            if data is None:
                convert_s = convert_cpu_s = 0.0
                if out is None or out.shape != shape or out.dtype != dtype or not out.flags.c_contiguous:
                    out = np.empty(shape, dtype)
                np.copyto(out.reshape(-1).view(np.uint8), np.frombuffer(self._segment.buffer, np.uint8, nbytes, offset))
                data = out
            frame_id = h["frame_id"].decode(errors="ignore")
            header = FrameHeader(int(h["seq"]), int(h["stamp_ns"]), frame_id, float(h["origin"]))
            queued = time.monotonic() - float(h["put_time"])
            self._ctl[_R] += 1
        finally:
            self._mutex.release()
        self._space.release()
        self.last_copy_s = time.perf_counter() - start - convert_s
        self.last_copy_cpu_s = time.thread_time() - cpu - convert_cpu_s
        self.last_convert_s, self.last_convert_cpu_s = convert_s, convert_cpu_s
        return Frame(header, data, queued)

    def close(self) -> None:
        """Mark the channel closed: the reader drains what is left, then get() returns None."""
        self._ctl[_CLOSED] = 1
        self._items.release()

    def detach(self) -> None:
        """Unmap this end (the segment lives on until the owner unlinks it); again: nothing."""
        if hasattr(self, "_ctl"):
            del self._ctl, self._headers
        self._segment.close()

    def unlink(self) -> None:
        """Remove the segment and semaphores from the system (the owner does this once)."""
        self._segment.unlink()
        for sem in (self._mutex, self._items, self._space):
            sem.unlink()
