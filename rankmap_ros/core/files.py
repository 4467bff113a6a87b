"""Files a reader may open while they are written (a manager, a resumed run): whole or not at all;
the per-user cache those files may live in; what to say of a YAML file that does not parse."""

from __future__ import annotations

import contextlib
import os
import threading
from pathlib import Path

import yaml


def write_text_atomic(path: Path, text: str) -> None:
    """Write `text` to a temporary file beside `path`, then rename it over `path` (parents made).

    The temporary file is this thread's own, so that threads and processes writing the same file
    at once each rename a whole one; it is removed if writing fails.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        tmp.write_text(text)
        tmp.replace(path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def cache_root() -> Path:
    """Per-user cache of derived files ($RANKMAP_CACHE, else ~/.cache/rankmap_ros): safe to delete."""
    return Path(os.environ.get("RANKMAP_CACHE") or Path.home() / ".cache" / "rankmap_ros")


def yaml_problem(exc: yaml.YAMLError) -> str:
    """PyYAML's error on one line, with the place it names (its own text spans several lines)."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None)
    if mark is not None and problem:
        return f"line {mark.line + 1}, column {mark.column + 1}: {problem}"
    return " ".join(str(exc).split())
