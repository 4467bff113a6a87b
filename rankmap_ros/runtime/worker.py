"""The body of one stage process: bind to the component, build the stage, move frames through it.

The process dies with its owner: PR_SET_PDEATHSIG kills it when its parent goes, and it also
polls the owner's pid (a process started through a fork server has the server as parent).
Ctrl-C is ignored here because it reaches the whole process group; the owner stops stages
through the board's stop flag, then SIGTERM, then SIGKILL.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import time
from dataclasses import dataclass

import numpy as np

from rankmap_ros.runtime import backends
from rankmap_ros.runtime.board import Board, StageState
from rankmap_ros.runtime.channel import Channel
from rankmap_ros.runtime.stage import StageSpec

POLL_S = 0.1
_PR_SET_PDEATHSIG = 1
EXIT_FAILED = 3


@dataclass(frozen=True)
class StageWiring:
    """Where a stage process reads, writes and reports (names of shared-memory objects)."""

    input: str
    output: str
    board: str
    row: int
    owner_pid: int


def become_child() -> None:
    """Set up a runtime child process: die with the parent, keep stdout for the owner.

    PR_SET_PDEATHSIG makes the kernel SIGKILL this process when its parent exits (Linux; a no-op
    elsewhere). Native libraries (OpenCV prints OpenCL build logs) write to file descriptor 1;
    pointing it at stderr keeps the owner's stdout clean, e.g. for `rankmap ... --json`.
    """
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    sys.stdout.flush()
    os.dup2(2, 1)


def owner_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stage_main(spec: StageSpec, wiring: StageWiring) -> None:
    """Process entry point: run the stage until the board says stop or the owner disappears."""
    become_child()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if not owner_alive(wiring.owner_pid):
        sys.exit(0)
    board = Board.open(wiring.board)
    board.rows["pid"][wiring.row] = os.getpid()
    try:
        backends.bind(spec)
        run = backends.prepare(spec)
        source = Channel.open(wiring.input)
        sink = Channel.open(wiring.output)
        warm = np.zeros(spec.input_shape, np.float32)
        for _ in range(2):
            run(warm)
    except Exception as exc:  # reported to the owner, whatever it is
        board.set_state(wiring.row, StageState.FAILED, f"{type(exc).__name__}: {exc}")
        sys.exit(EXIT_FAILED)
    board.set_state(wiring.row, StageState.READY)
    serve(run, source, sink, board, wiring)
    board.set_state(wiring.row, StageState.STOPPED)


def serve(
    run: backends.Runner,
    source: Channel,
    sink: Channel,
    board: Board,
    wiring: StageWiring,
) -> None:
    """Get a frame, compute, put the result with the same header; account every second."""
    row = board.rows[wiring.row : wiring.row + 1]
    buffer: np.ndarray | None = None
    while not board.stopping:
        t0 = time.perf_counter()
        frame = source.get(timeout=POLL_S, out=buffer)
        t1 = time.perf_counter()
        if frame is None:
            row["wait_in_s"] += t1 - t0
            if not owner_alive(wiring.owner_pid):
                return
            continue
        buffer = frame.array
        cpu = time.process_time()
        y = run(frame.array)
        cpu = time.process_time() - cpu
        t2 = time.perf_counter()
        while not sink.put(y, frame.header, timeout=POLL_S):
            if board.stopping or not owner_alive(wiring.owner_pid):
                return
        t3 = time.perf_counter()
        copy = source.last_copy_s + sink.last_copy_s
        row["busy_s"] += t2 - t1
        row["copy_s"] += copy
        row["busy_cpu_s"] += cpu
        row["copy_cpu_s"] += source.last_copy_cpu_s + sink.last_copy_cpu_s
        row["wait_in_s"] += t1 - t0 - source.last_copy_s
        row["wait_out_s"] += t3 - t2 - sink.last_copy_s
        row["last_service_s"] = t2 - t1
        row["frames"] += 1
