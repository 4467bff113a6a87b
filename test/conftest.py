"""Shared test setup: deterministic torch on few threads (CI has 2 cores), and a cache of its own.

The suite's ONNX exports and unit profiles go to a fresh directory, so that no test passes only
because of a file an earlier run (or the user) left in ~/.cache/rankmap_ros.
"""

import atexit
import os
import shutil
import tempfile

import torch

torch.set_num_threads(2)

os.environ["RANKMAP_CACHE"] = _CACHE = tempfile.mkdtemp(prefix="rankmap-test-cache-")
_OWNER = os.getpid()


@atexit.register
def _remove_cache() -> None:
    if os.getpid() == _OWNER:  # not a forked child that happens to exit through atexit
        shutil.rmtree(_CACHE, ignore_errors=True)
