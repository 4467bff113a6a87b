"""Files a reader may open while they are written (a manager, a resumed run): whole or not at all,
and the per-user cache those files may live in."""

from __future__ import annotations

import os
from pathlib import Path


def write_text_atomic(path: Path, text: str) -> None:
    """Write `text` to a temporary file beside `path`, then rename it over `path` (parents made)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


def cache_root() -> Path:
    """Per-user cache of derived files ($RANKMAP_CACHE, else ~/.cache/rankmap_ros): safe to delete."""
    return Path(os.environ.get("RANKMAP_CACHE") or Path.home() / ".cache" / "rankmap_ros")
