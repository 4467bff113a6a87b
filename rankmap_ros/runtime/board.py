"""A shared-memory status board: one row per stage process, written by it, read by the owner.

Each field has a single writer, so no locks: a row's stage writes counters that only grow and
a state word, which the owner reads; the owner writes the DNN's priority, which the stage reads
for every job. The board also carries the pipeline's stop flag, which every stage polls.
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np

from rankmap_ros.runtime.shm import Segment, new_name

ROW = np.dtype(
    [
        ("state", "<i8"),
        ("pid", "<i8"),
        ("frames", "<i8"),
        ("busy_s", "<f8"),  # time in the stage's computation
        ("copy_s", "<f8"),  # time copying in and out of channels, waits excluded
        ("busy_cpu_s", "<f8"),  # CPU time of the computation (all threads of the process)
        ("copy_cpu_s", "<f8"),  # CPU time of the copies
        ("wait_in_s", "<f8"),  # time waiting for input
        ("wait_out_s", "<f8"),  # time blocked by a full output channel (back-pressure)
        ("last_service_s", "<f8"),
        ("queued_s", "<f8"),  # time frames waited in the stage's input channel (put to get)
        # arbitrated policies only (runtime/arbiter.py); zero under time-sharing
        ("wait_arb_s", "<f8"),  # time waiting for the component (first grant and after preemptions)
        ("dropped", "<i8"),  # real-time jobs dropped as late (not forwarded)
        ("preempted", "<i8"),  # jobs that gave the component away at least once
        ("yields", "<i8"),  # times a job gave the component away at a unit boundary
        ("late", "<i8"),  # real-time results delivered after their deadline (last stage)
        ("resume_extra_s", "<f8"),  # time units right after a preemption took beyond their usual time
        # the component executor only (runtime/component.py): its decisions, charged to the chosen stage
        ("decisions", "<i8"),  # jobs granted the component
        ("decide_s", "<f8"),  # time choosing them
        ("checks", "<i8"),  # unit boundaries where it looked for a more urgent job
        ("check_s", "<f8"),  # time looking for a more urgent job at unit boundaries
        ("beat_s", "<f8"),  # time.monotonic() of the loop's last stamp (ROS component containers)
        # written by the owner before the stage starts and whenever it changes: the DNN's priority
        # in force, which orders best-effort jobs under an arbitrated policy (core.realtime.job_key)
        ("priority", "<f8"),
        ("error", "S240"),
    ]
)
_HEAD = 64


class StageState(IntEnum):
    STARTING = 0
    READY = 1
    STOPPED = 2
    FAILED = 3


class Board:
    """Rows of stage statistics plus a stop flag, in one segment."""

    def __init__(self, segment: Segment, owner: bool) -> None:
        self.name = segment.name
        self._segment = segment
        self._owner = owner
        self._flags = np.frombuffer(segment.buffer, np.int64, 2, 0)
        rows = (segment.size - _HEAD) // ROW.itemsize
        self.rows = np.frombuffer(segment.buffer, ROW, rows, _HEAD)

    @classmethod
    def create(cls, rows: int) -> Board:
        return cls(Segment.create(new_name("board"), _HEAD + max(rows, 1) * ROW.itemsize), owner=True)

    @classmethod
    def open(cls, name: str) -> Board:
        return cls(Segment.open(name), owner=False)

    @property
    def stopping(self) -> bool:
        return bool(self._flags[0])

    def request_stop(self) -> None:
        self._flags[0] = 1

    def state(self, row: int) -> StageState:
        return StageState(int(self.rows["state"][row]))

    def set_state(self, row: int, state: StageState, error: str = "") -> None:
        if error:
            self.rows["error"][row] = error.encode(errors="ignore")[:240]
        self.rows["state"][row] = int(state)

    def set_priority(self, value: float, rows: slice = slice(None)) -> None:
        """The owner's: a running stage takes it for its next job, no restart needed."""
        self.rows["priority"][rows] = value

    def error(self, row: int) -> str:
        return bytes(self.rows["error"][row]).decode(errors="ignore")

    def snapshot(self) -> np.ndarray:
        """A copy of all rows (consistent enough for statistics: each field is one aligned word)."""
        return self.rows.copy()

    def detach(self) -> None:
        del self._flags, self.rows
        self._segment.close()

    def unlink(self) -> None:
        self._segment.unlink()
