"""One arbiter per component: which waiting stage job runs next (issue 7, the Pantheon method).

Every stage process on a component has a slot. A job asks for the component with its key
(`core.realtime.job_key`: three floats, smallest first) and computes only while it holds it;
a preemptive stage asks `should_yield` at each unit boundary and, when a waiting job has a
smaller key, releases the component and asks again with its own key (its intermediate tensor
stays in its process, so it resumes where it stopped).

Shared state is one /dev/shm segment (shm.Segment), plus one named semaphore per slot to wake
a waiter. Decisions are made under `fcntl.flock` on the segment's own file: each process opens
the file by name (nothing is inherited), and the kernel drops the lock if its holder dies. Who
holds the *component* is a field in the segment; a waiter that times out (WAIT_S) checks the
holder's and the other waiters' pids and clears dead ones, so a killed stage never hangs its
component for more than WAIT_S.

Protocol (all under the flock, except `should_yield`, which only reads):
- request(slot, key): mark the slot waiting with its key; it is granted when no live job holds
  the component and it is the smallest-key waiting slot (ties: lower slot); otherwise it sleeps
  on its semaphore (at most WAIT_S) and tries again.
- release(slot): the component is free; the smallest-key waiter, if any, is woken.

A decision is one grant; its cost is the time in the locked sections of `request` and
`release` (counted per component in the segment: `decisions`, `decide_s`), plus the holder's
lock-free `should_yield` checks (`checks`, `check_s`).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from rankmap_ros.runtime.errors import HostRuntimeError
from rankmap_ros.runtime.shm import SHM_DIR, Segment, Semaphore, ShmError, new_name, process_alive

WAIT_S = 0.01  # longest sleep of a waiter between two looks (dead holders are found this fast)
_MAGIC = 0x524B4152  # "RKAR"
# The head: eight int64 words, then eight float64 words.
_MAGIC_AT, _SLOTS, _HOLDER, _HOLDER_PID, _DECISIONS, _CLEARED, _CHECKS, _SECTIONS = range(8)
_DECIDE_S, _LOCK_WAIT_S, _CHECK_S = range(3)
_HEAD_BYTES = 128
SLOT = np.dtype([("waiting", "<i8"), ("pid", "<i8"), ("key", "<f8", (3,))])


class ArbiterError(HostRuntimeError):
    """An arbiter that cannot be created or opened, or a slot out of range."""


@dataclass(frozen=True)
class ArbiterStats:
    """Counters that only grow; subtract two snapshots for a window.

    `decide_s` is the time spent deciding inside the lock (the arbiter's own work), `lock_wait_s`
    the time spent waiting for the lock while another process decided, `check_s` the holder's
    `should_yield` reads; a decision is one grant of the component.
    """

    decisions: int
    decide_s: float
    lock_wait_s: float
    checks: int
    check_s: float
    cleared: int

    @property
    def overhead_s_per_decision(self) -> float:
        return self.decide_s / self.decisions if self.decisions else 0.0

    def __sub__(self, other: ArbiterStats) -> ArbiterStats:
        return ArbiterStats(
            self.decisions - other.decisions,
            self.decide_s - other.decide_s,
            self.lock_wait_s - other.lock_wait_s,
            self.checks - other.checks,
            self.check_s - other.check_s,
            self.cleared - other.cleared,
        )


class Arbiter:
    """One component's arbiter, attached in this process (`create` by the owner, `open` by stages).

    Open it by name in every process that uses it: a copy inherited through fork shares its
    parent's open file, hence its parent's lock.
    """

    def __init__(self, segment: Segment, sems: list[Semaphore], owner: bool, component: str = "") -> None:
        self.name = segment.name
        self.component = component
        self._segment = segment
        self._sems = sems
        self._owner = owner
        self._ints = np.frombuffer(segment.buffer, np.int64, 8, 0)
        self._floats = np.frombuffer(segment.buffer, np.float64, 8, 64)
        if int(self._ints[_MAGIC_AT]) != _MAGIC:
            raise ArbiterError(f"shared memory {segment.name} is not a rankmap arbiter")
        self.slots = int(self._ints[_SLOTS])
        table = np.frombuffer(segment.buffer, SLOT, self.slots, _HEAD_BYTES)
        self._waiting = table["waiting"]
        self._pid = table["pid"]
        self._key = table["key"]
        self._fd = os.open(SHM_DIR / segment.name, os.O_RDWR)
        self._me = os.getpid()

    @classmethod
    def create(cls, component: str, slots: int) -> Arbiter:
        """A new arbiter for `slots` stage processes, owned (and later unlinked) by this process."""
        if slots < 1:
            raise ArbiterError(f"an arbiter needs at least one slot, got {slots}")
        label = "".join(c if c.isalnum() else "_" for c in component)[:24] or "component"
        name = new_name(f"arb-{label}")
        segment = Segment.create(name, _HEAD_BYTES + slots * SLOT.itemsize)
        ints = np.frombuffer(segment.buffer, np.int64, 8, 0)
        ints[_SLOTS] = slots
        ints[_HOLDER] = -1
        ints[_MAGIC_AT] = _MAGIC
        del ints
        sems: list[Semaphore] = []
        try:
            for i in range(slots):
                sems.append(Semaphore.create(f"{name}-w{i}", 0))
        except ShmError:
            for sem in sems:
                sem.unlink()
            segment.close()
            segment.unlink()
            raise
        return cls(segment, sems, owner=True, component=component)

    @classmethod
    def open(cls, name: str) -> Arbiter:
        """The arbiter `name`, created by another process of this host."""
        segment = Segment.open(name)
        slots = int(np.frombuffer(segment.buffer, np.int64, 8, 0)[_SLOTS])
        try:
            sems = [Semaphore.open(f"{name}-w{i}") for i in range(slots)]
        except ShmError:
            segment.close()
            raise
        return cls(segment, sems, owner=False)

    # -- the protocol -------------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[list[int]]:
        """The lock; slots appended to the yielded list are woken once it is released."""
        wake: list[int] = []
        start = time.perf_counter()
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        got = time.perf_counter()
        try:
            yield wake
        finally:
            floats = self._floats
            floats[_LOCK_WAIT_S] += got - start
            floats[_DECIDE_S] += time.perf_counter() - got
            self._ints[_SECTIONS] += 1
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            # after the unlock: a woken waiter on the same core may run at once
            for slot in wake:
                self._sems[slot].release()

    def _check(self, slot: int) -> None:
        if not 0 <= slot < self.slots:
            raise ArbiterError(f"arbiter {self.name}: slot {slot} outside [0, {self.slots})")

    def _best_waiter(self, thorough: bool) -> int:
        """The smallest-key waiting slot (-1: none); `thorough` first clears dead waiters."""
        waiting = self._waiting.tolist()
        keys = self._key.tolist()
        best, best_key = -1, None
        for i, w in enumerate(waiting):
            if not w:
                continue
            if thorough and not process_alive(int(self._pid[i])):
                self._waiting[i] = 0
                self._ints[_CLEARED] += 1
                continue
            if best_key is None or keys[i] < best_key:
                best, best_key = i, keys[i]
        return best

    def _grant(self, slot: int, pid: int) -> None:
        ints = self._ints
        self._waiting[slot] = 0
        ints[_HOLDER_PID] = pid
        ints[_HOLDER] = slot
        ints[_DECISIONS] += 1

    def _mine(self, slot: int) -> bool:
        return int(self._ints[_HOLDER]) == slot and int(self._ints[_HOLDER_PID]) == self._me

    def _try_grant(self, slot: int, thorough: bool, wake: list[int]) -> bool:
        ints = self._ints
        if self._mine(slot):
            self._waiting[slot] = 0
            return True
        if int(ints[_HOLDER]) >= 0:
            if not thorough or process_alive(int(ints[_HOLDER_PID])):
                return False
            ints[_HOLDER] = -1  # the holder died: its component is free again
            ints[_CLEARED] += 1
        best = self._best_waiter(thorough)
        if best < 0:
            return False
        if best == slot:
            self._grant(slot, self._me)
            return True
        self._grant(best, int(self._pid[best]))  # hand it to the more urgent waiter
        wake.append(best)
        return False

    def request(
        self,
        slot: int,
        key: tuple[float, float, float],
        stop: Callable[[], bool] | None = None,
        timeout: float | None = None,
    ) -> bool:
        """Block until `slot` holds the component (True), or `stop()` / `timeout` ends the wait (False)."""
        self._check(slot)
        with self._locked() as wake:
            self._pid[slot] = self._me
            self._key[slot] = key
            self._waiting[slot] = 1
            if self._try_grant(slot, False, wake):
                return True
        end = None if timeout is None else time.monotonic() + timeout
        ints = self._ints
        while True:
            woken = self._sems[slot].acquire(WAIT_S)
            if self._mine(slot):  # handed over by a release (the semaphore orders the reads)
                return True
            if (stop is not None and stop()) or (end is not None and time.monotonic() > end):
                with self._locked() as wake:
                    self._waiting[slot] = 0
                    if self._mine(slot):  # handed over meanwhile: pass it on
                        self._release_locked(slot, wake)
                return False
            holder = int(ints[_HOLDER])
            if holder >= 0 and (woken or process_alive(int(ints[_HOLDER_PID]))):
                continue  # nothing to decide while a live job holds the component
            with self._locked() as wake:
                if self._try_grant(slot, not woken, wake):
                    return True

    def should_yield(self, slot: int) -> bool:
        """Whether a waiting job has a smaller key than `slot`'s (lock-free read; the holder asks)."""
        start = time.perf_counter()
        waiting = self._waiting.tolist()
        found = False
        if any(waiting):
            keys = self._key.tolist()
            mine = keys[slot]
            found = any(w and i != slot and keys[i] < mine for i, w in enumerate(waiting))
        ints, floats = self._ints, self._floats
        ints[_CHECKS] += 1
        floats[_CHECK_S] += time.perf_counter() - start
        return found

    def _release_locked(self, slot: int, wake: list[int]) -> None:
        if int(self._ints[_HOLDER]) == slot:
            self._ints[_HOLDER] = -1
            self._ints[_HOLDER_PID] = 0
        if int(self._ints[_HOLDER]) >= 0:
            return
        best = self._best_waiter(thorough=False)
        if best >= 0:
            self._grant(best, int(self._pid[best]))
            wake.append(best)

    def release(self, slot: int) -> None:
        """Give the component back: it goes straight to the most urgent waiter, if any."""
        self._check(slot)
        with self._locked() as wake:
            self._release_locked(slot, wake)

    # -- inspection and clean-up --------------------------------------------------------------

    @property
    def holder(self) -> int:
        """The slot holding the component now, -1 when free."""
        return int(self._ints[_HOLDER])

    def waiting(self) -> list[int]:
        return [i for i, w in enumerate(self._waiting.tolist()) if w]

    def stats(self) -> ArbiterStats:
        ints, floats = self._ints.tolist(), self._floats.tolist()
        return ArbiterStats(
            ints[_DECISIONS], floats[_DECIDE_S], floats[_LOCK_WAIT_S], ints[_CHECKS], floats[_CHECK_S], ints[_CLEARED]
        )

    def detach(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self._fd)
        del self._ints, self._floats, self._waiting, self._pid, self._key
        self._segment.close()

    def unlink(self) -> None:
        """Remove the segment and semaphores (the owner does this once)."""
        self._segment.unlink()
        for sem in self._sems:
            sem.unlink()


def _contend(name: str, slot: int, cycles: int, hold_s: float) -> None:
    arbiter = Arbiter.open(name)  # opened here: a forked copy would share the parent's lock
    for i in range(cycles):
        arbiter.request(slot, (0.0, float(i), float(slot)))
        end = time.perf_counter() + hold_s
        while time.perf_counter() < end:
            pass
        arbiter.should_yield(slot)
        arbiter.release(slot)
    arbiter.detach()


def bench(cycles: int = 2000, processes: int = 2, hold_s: float = 50e-6) -> dict[str, float]:
    """Cost of a decision with `processes` stage processes contending for one component."""
    import multiprocessing as mp

    arbiter = Arbiter.create("bench", processes)
    try:
        ctx = mp.get_context("fork")
        procs = [ctx.Process(target=_contend, args=(arbiter.name, i, cycles, hold_s)) for i in range(processes)]
        start = time.perf_counter()
        for p in procs:
            p.start()
        for p in procs:
            p.join()
        wall = time.perf_counter() - start
        stats = arbiter.stats()
    finally:
        arbiter.detach()
        arbiter.unlink()
    return {
        "processes": processes,
        "decisions": stats.decisions,
        "overhead_s_per_decision": stats.overhead_s_per_decision,
        "lock_wait_s_per_decision": stats.lock_wait_s / stats.decisions if stats.decisions else 0.0,
        "should_yield_s": stats.check_s / stats.checks if stats.checks else 0.0,
        "decisions_per_s": stats.decisions / wall,
    }


if __name__ == "__main__":
    import json
    import sys

    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    print(json.dumps([bench(n, processes=k) for k in (1, 2, 4)], indent=1))
