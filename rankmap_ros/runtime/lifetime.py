"""Ending with the process that started us: the kernel's parent-death signal.

Kept apart from worker.py so that light processes (the camera node) can use it without
importing torch.
"""

from __future__ import annotations

import contextlib
import ctypes

_PR_SET_PDEATHSIG = 1


def parent_death_signal(signum: int) -> None:
    """Ask the kernel for `signum` when the thread that started this process exits (Linux only)."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signum, 0, 0, 0)
