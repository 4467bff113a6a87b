"""Files a reader may open while they are written (a manager, a resumed run): whole or not at all;
the per-user cache those files may live in; YAML read strictly, and what to say when it fails."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import yaml


def write_text_atomic(path: Path, text: str) -> None:
    """Write `text` to a temporary file beside `path`, then rename it over `path` (parents made)."""
    write_atomic(path, lambda fh: fh.write(text.encode()))


def write_atomic(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """Let `write` fill a temporary file beside `path`, flush it to disk, rename it over `path`.

    The temporary file is this thread's own, so that threads and processes writing the same file
    at once each rename a whole one; it is removed if writing fails. The flush before the rename
    keeps a power cut from leaving a torn file under the final name (hours of training state).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with tmp.open("wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        tmp.replace(path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def temp_files(directory: Path) -> list[Path]:
    """The temporary files `write_atomic` left in `directory` when its process was killed mid-write."""
    return list(Path(directory).glob(".*.tmp")) if Path(directory).is_dir() else []


def not_a_file(path: Path) -> str:
    """Why `path` cannot be read as a file, for a message: a directory is not 'missing'."""
    return "is a directory, not a file" if Path(path).is_dir() else "does not exist"


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


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice in one mapping (PyYAML keeps the last silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[object, object]:
        seen: set[object] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *base`: keys it brings may be overridden
                continue
            key = self.construct_object(key_node, deep=deep)
            try:
                duplicate = key in seen
            except TypeError:  # an unhashable key: SafeLoader refuses it with its own message
                continue
            if duplicate:
                raise yaml.constructor.ConstructorError(
                    "while reading a mapping", node.start_mark, f"key {key!r} is given twice", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def load_yaml(text: str) -> object:
    """`yaml.safe_load`, refusing duplicate keys: in a hand-written file the first of two `dnns:`
    or `name:` would otherwise vanish without a word."""
    return yaml.load(text, Loader=_StrictLoader)  # a SafeLoader: no arbitrary objects
