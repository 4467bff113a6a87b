"""The per-step JSON files that let an interrupted experiment resume where it stopped.

A file is written whole or not at all (a temporary file, then a rename), and one that cannot be
read anyway (left by an older version, or damaged) counts as missing: that step runs again.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rankmap_ros.core.files import write_text_atomic


def read_cached(path: Path | None) -> Any | None:
    """The step's saved result, or None to compute it."""
    if path is None or not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None


def write_cached(path: Path | None, data: Any) -> None:
    if path is not None:
        write_text_atomic(path, json.dumps(data))


def write_report(out_dir: Path | None, stem: str, report: Any, plot: Callable[[Path, Any], None]) -> None:
    """`<stem>.json` and `<stem>.png` of a finished experiment in `out_dir` (nothing without one)."""
    if out_dir is not None:
        write_text_atomic(Path(out_dir) / f"{stem}.json", json.dumps(report, indent=2) + "\n")
        plot(Path(out_dir) / f"{stem}.png", report)
