"""The per-step JSON files that let an interrupted experiment resume where it stopped.

A file is written whole or not at all (a temporary file, then a rename), and one that cannot be
read anyway (left by an older version, damaged, or edited: its row lacks a key it was written
with) counts as missing: that step runs again.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rankmap_ros.core.files import write_text_atomic

FORMAT = "rankmap.cache/1"


def read_cached(path: Path | None) -> Any | None:
    """The step's saved result, or None to compute it."""
    if path is None or not path.is_file():
        return None
    try:
        saved = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(saved, dict) or saved.get("format") != FORMAT or "row" not in saved:
        return None
    row = saved["row"]
    if isinstance(row, dict) and sorted(row) != saved.get("keys"):
        return None
    return row


def write_cached(path: Path | None, data: Any) -> None:
    if path is not None:
        saved = {"format": FORMAT, "row": data}
        if isinstance(data, dict):
            saved["keys"] = sorted(data)
        write_text_atomic(path, json.dumps(saved))


def cache_dir(out_dir: Path, depends_on: list[Any]) -> Path:
    """A directory per set of what the cached rows depend on, so other settings never reuse a row."""
    text = json.dumps(depends_on, sort_keys=True)
    return Path(out_dir) / "cache" / hashlib.sha256(text.encode()).hexdigest()[:16]


def source_digest(*files: str) -> str:
    """The digest of source files: a change to the code a row came from must not reuse it."""
    return hashlib.sha256(b"".join(Path(f).read_bytes() for f in files)).hexdigest()


def core_digest() -> str:
    """The digest of every core and experiment module (zoo, simulator, planner, estimator code,
    the experiments' own mixes and scenarios): rows computed before a change to any of them are
    not mixed with rows computed after it."""
    package = Path(__file__).resolve().parent.parent
    files = [*(package / "core").rglob("*.py"), *(package / "experiments").rglob("*.py")]
    return source_digest(*sorted(str(f) for f in files))


def write_report(out_dir: Path | None, stem: str, report: Any, plot: Callable[[Path, Any], None]) -> None:
    """`<stem>.json` and `<stem>.png` of a finished experiment in `out_dir` (nothing without one)."""
    if out_dir is not None:
        write_text_atomic(Path(out_dir) / f"{stem}.json", json.dumps(report, indent=2) + "\n")
        plot(Path(out_dir) / f"{stem}.png", report)
