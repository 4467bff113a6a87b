"""Shared-memory channels: order, headers, drop-oldest, back-pressure, across processes, no leaks."""

from __future__ import annotations

import multiprocessing as mp
import os
import time

import numpy as np
import pytest
import torch

from rankmap_ros.runtime.backends import input_converter
from rankmap_ros.runtime.channel import Channel, ChannelError, FrameHeader
from rankmap_ros.runtime.shm import SHM_DIR, Segment, owned_entries, remove_stale
from rankmap_ros.runtime.stage import StageSpec


@pytest.fixture
def channels():
    made: list[Channel] = []

    def make(slots: int = 4, max_bytes: int = 4096, policy: str = "block") -> Channel:
        ch = Channel.create("test", slots, max_bytes, policy)  # type: ignore[arg-type]
        made.append(ch)
        return ch

    yield make
    for ch in made:
        ch.detach()
        ch.unlink()
    assert owned_entries(os.getpid()) == []


def frame(i: int) -> np.ndarray:
    return np.full((1, 3, 4, 4), i, np.float32)


def test_frames_come_out_in_order_with_their_headers(channels):
    ch = channels()
    for i in range(4):
        assert ch.put(frame(i), FrameHeader(seq=i, stamp_ns=1000 + i, frame_id=f"cam{i}", origin=float(i)))
    assert ch.depth == 4
    for i in range(4):
        got = ch.get(timeout=1)
        assert got is not None
        assert got.header == FrameHeader(seq=i, stamp_ns=1000 + i, frame_id=f"cam{i}", origin=float(i))
        np.testing.assert_array_equal(got.array, frame(i))
    assert ch.get(timeout=0.01) is None


def test_shapes_and_dtypes_may_change_per_frame_and_out_buffer_is_reused(channels):
    ch = channels(max_bytes=1000 * 8)
    ch.put(np.arange(1000, dtype=np.float64), FrameHeader(1))
    ch.put(np.arange(6, dtype=np.uint8).reshape(2, 3), FrameHeader(2))
    ch.put(np.arange(6, dtype=np.uint8).reshape(2, 3) + 1, FrameHeader(3))
    assert ch.get(timeout=1).array.dtype == np.float64
    first = ch.get(timeout=1).array
    second = ch.get(timeout=1, out=first).array
    assert second is first
    np.testing.assert_array_equal(second, np.arange(6).reshape(2, 3) + 1)


def test_a_reader_can_convert_frames_straight_out_of_the_slot(channels):
    ch = channels(slots=2, max_bytes=4 * 3 * 4 * 4)
    spec = StageSpec("d", "squeezenet_v2", 0, 0, 1, "big", "cpu", (), 1, "", (1, 3, 4, 4), (1, 8))
    convert = input_converter(spec)
    assert convert is not None
    ch.put(frame(1), FrameHeader(1))
    ch.put(frame(2)[:, :2], FrameHeader(2))  # another shape: the plain copy instead
    got = ch.get(timeout=1, convert=convert)
    assert isinstance(got.array, torch.Tensor) and got.array.is_contiguous(memory_format=torch.channels_last)
    np.testing.assert_array_equal(got.array.numpy(), frame(1))
    assert ch.last_convert_cpu_s >= 0 and ch.last_convert_s > 0
    plain = ch.get(timeout=1, convert=convert)
    assert isinstance(plain.array, np.ndarray) and plain.array.shape == (1, 2, 4, 4)
    assert ch.last_convert_s == 0
    # the slot is free again once converted: the writer reuses it without disturbing the tensor
    ch.put(frame(3), FrameHeader(3))
    np.testing.assert_array_equal(got.array.numpy(), frame(1))
    gpu = StageSpec("d", "squeezenet_v2", 0, 0, 1, "gpu", "opencl", (), 1, "", (1, 3, 4, 4), (1, 8))
    assert input_converter(gpu) is None


def test_drop_oldest_keeps_the_newest_frames(channels):
    ch = channels(slots=2, policy="drop_oldest")
    for i in range(5):
        assert ch.put(frame(i), FrameHeader(i), timeout=0)
    assert ch.dropped == 3
    assert [ch.get(timeout=1).header.seq for _ in range(2)] == [3, 4]
    assert ch.get(timeout=0.01) is None


def test_block_policy_applies_back_pressure(channels):
    ch = channels(slots=2)
    assert ch.put(frame(0), FrameHeader(0))
    assert ch.put(frame(1), FrameHeader(1))
    start = time.monotonic()
    assert not ch.put(frame(2), FrameHeader(2), timeout=0.1)
    assert time.monotonic() - start >= 0.09
    assert ch.get(timeout=1).header.seq == 0
    assert ch.put(frame(2), FrameHeader(2), timeout=0.1)
    assert [ch.get(timeout=1).header.seq for _ in range(2)] == [1, 2]
    assert ch.dropped == 0


def test_oversized_frames_and_bad_parameters_are_refused(channels):
    ch = channels(max_bytes=64)
    with pytest.raises(ChannelError, match="does not fit"):
        ch.put(np.zeros(100, np.float32), FrameHeader(0))
    with pytest.raises(ChannelError, match="policy"):
        Channel.create("bad", 2, 64, "newest")  # type: ignore[arg-type]
    with pytest.raises(ChannelError, match="slots"):
        Channel.create("bad", 0, 64)


def test_close_wakes_the_reader_after_it_drains(channels):
    ch = channels()
    ch.put(frame(7), FrameHeader(7))
    ch.close()
    assert ch.get(timeout=1).header.seq == 7
    start = time.monotonic()
    assert ch.get(timeout=5) is None
    assert time.monotonic() - start < 1


def _writer(name: str, count: int) -> None:
    ch = Channel.open(name)
    for i in range(count):
        ch.put(np.full((64, 56, 56), i, np.float32), FrameHeader(i, stamp_ns=i * 10), timeout=10)
    ch.detach()


def test_a_writer_process_is_read_in_order_without_loss(channels):
    ch = channels(slots=3, max_bytes=64 * 56 * 56 * 4)
    process = mp.get_context("spawn").Process(target=_writer, args=(ch.name, 200))
    process.start()
    try:
        seqs = []
        buffer = None
        for _ in range(200):
            got = ch.get(timeout=30, out=buffer)
            assert got is not None
            buffer = got.array
            assert got.array[0, 0, 0] == got.header.seq and got.array[-1, -1, -1] == got.header.seq
            assert got.header.stamp_ns == got.header.seq * 10
            seqs.append(got.header.seq)
        assert seqs == list(range(200))
    finally:
        process.join(timeout=30)
    assert process.exitcode == 0


def test_stale_segments_of_dead_owners_are_removed():
    dead = 2**22 + 12345  # above the default pid_max: never a live process
    name = f"rankmap-{dead}-0000-stale"
    Segment.create(name, 64).close()
    assert name in owned_entries()
    assert name in remove_stale()
    assert not (SHM_DIR / name).exists()


def test_entries_of_another_pid_namespace_are_not_judged_stale():
    """Containers sharing /dev/shm (`--ipc=host`): a pid of theirs may be free here while they run."""
    from rankmap_ros.runtime.shm import PID_NAMESPACE, new_name

    dead = 2**22 + 12347
    ours = new_name("x").replace(f"-{os.getpid()}-", f"-{dead}-", 1)
    theirs = f"rankmap-{dead}-p{PID_NAMESPACE + 1}-0003-live"
    for name in (ours, theirs):
        Segment.create(name, 64).close()
    try:
        removed = remove_stale()
        assert ours in removed and theirs not in removed and (SHM_DIR / theirs).exists()
    finally:
        (SHM_DIR / theirs).unlink(missing_ok=True)


def test_another_users_stale_segments_are_skipped_not_fatal(monkeypatch):
    """A killed run as root left entries a normal user cannot unlink: the next manager starts anyway."""
    from pathlib import Path

    from rankmap_ros.runtime.shm import stale_entries

    dead = 2**22 + 12346
    mine, foreign = f"rankmap-{dead}-0001-stale", f"rankmap-{dead}-0002-stale"
    for name in (mine, foreign):
        Segment.create(name, 64).close()
    unlink = Path.unlink

    def as_another_user(path: Path, missing_ok: bool = False) -> None:
        if path.name == foreign:
            raise PermissionError(1, "Operation not permitted", str(path))
        unlink(path, missing_ok=missing_ok)

    monkeypatch.setattr(Path, "unlink", as_another_user)
    removed = remove_stale()
    assert mine in removed and foreign not in removed
    assert foreign in stale_entries()  # what the manager warns about
    monkeypatch.undo()
    assert foreign in remove_stale()


def test_a_ring_wakes_one_reader_for_any_of_its_channels(channels):
    # a component process waits on one doorbell for all its stages' input channels
    from rankmap_ros.runtime.shm import Semaphore, new_name

    bell = Semaphore.create(new_name("bell"), 0)
    try:
        a, b, full = channels(), channels(), channels(slots=1)
        for ch in (a, b, full):
            ch.ring = bell
        assert not bell.acquire(0)
        a.put(frame(1), FrameHeader(1))
        b.put(frame(2), FrameHeader(2))
        assert full.put(frame(3), FrameHeader(3))
        assert not full.put(frame(4), FrameHeader(4), timeout=0), "a full block channel takes nothing"
        assert [bell.acquire(0) for _ in range(4)] == [True, True, True, False], "one ring per frame put"
        assert a.get(timeout=0).header.seq == 1 and b.get(timeout=0).header.seq == 2
    finally:
        bell.unlink()


def test_a_write_that_fails_leaves_its_slot_free(channels):
    ch = channels(slots=2)
    for _ in range(3):  # a header that does not fit its int64 field
        with pytest.raises(OverflowError):
            ch.put(frame(0), FrameHeader(seq=2**63, stamp_ns=0), timeout=0)
    assert ch.put(frame(1), FrameHeader(seq=1, stamp_ns=0), timeout=0)  # before: no slot left, False
    assert ch.put(frame(2), FrameHeader(seq=2, stamp_ns=0), timeout=0)
    assert [ch.get(timeout=0).header.seq for _ in range(2)] == [1, 2]
    camera = channels(slots=2, policy="drop_oldest")  # full, so a put replaces the oldest frame
    for seq in (1, 2):
        camera.put(frame(seq), FrameHeader(seq=seq, stamp_ns=0))
    with pytest.raises(OverflowError):
        camera.put(frame(0), FrameHeader(seq=2**63, stamp_ns=0))
    assert camera.depth == 2 and camera.dropped == 0  # the oldest frame is still there
    assert [camera.get(timeout=0).header.seq for _ in range(2)] == [1, 2]
    assert not camera._items.acquire(0)  # before: one item too many, so get() returned at once for ever


def test_a_peer_killed_holding_the_lock_costs_a_timeout_not_a_hang(channels):
    """A stage SIGKILLed mid-copy keeps the channel's lock for ever: its neighbours' calls with a
    timeout give up (and so get to see their stop flag and owner) instead of waiting with it."""
    import threading

    ch = channels(slots=2)
    assert ch.put(frame(1), FrameHeader(seq=1, stamp_ns=0))
    dead = Channel.open(ch.name)
    assert dead._mutex.acquire(0)  # the killed peer's hold
    results: list = []
    calls = threading.Thread(
        target=lambda: results.extend(
            [ch.get(timeout=0.2), ch.put(frame(2), FrameHeader(seq=2, stamp_ns=0), timeout=0.2)]
        )
    )
    calls.start()
    calls.join(timeout=5.0)
    assert not calls.is_alive() and results == [None, False]
    dead._mutex.release()
    got = ch.get(timeout=1.0)
    assert got is not None and got.header.seq == 1  # the frame was left for the next call
    dead.detach()
