"""The per-step JSON files that let an interrupted experiment resume where it stopped.

A file is written whole or not at all (a temporary file, then a rename), and one that cannot be
read anyway (left by an older version, or damaged) counts as missing: that step runs again.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def read_cached(path: Path | None) -> Any | None:
    """The step's saved result, or None to compute it."""
    if path is None or not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None


def write_cached(path: Path | None, data: Any) -> None:
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data))
    tmp.replace(path)
