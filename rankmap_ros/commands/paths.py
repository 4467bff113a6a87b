"""Output paths checked before a command starts: a long run must not end in a traceback because
its --out names a directory, or overwrite the workload or dataset it was given."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from rankmap_ros.commands.common import CliError

# a platform or warm-start mapping rewritten in place (calibrate again, re-plan) is read before it is written
INPUTS = ("workload", "dataset", "model", "mapping", "params_file", "file", "dnns_file")
FILE_OUTPUTS = ("out", "curve")
DIR_OUTPUTS = ("state_dir", "workdir")
FIGURES = (".png", ".pdf", ".svg")


def check_paths(args: argparse.Namespace) -> None:
    """Refuse outputs that cannot be written, or that are one of the command's input files."""
    out_is_dir = getattr(args, "out_is_dir", False)
    for name in (*FILE_OUTPUTS, *DIR_OUTPUTS):
        value = getattr(args, name, None)
        if not isinstance(value, str) or not value:
            continue
        option, path = "--" + name.replace("_", "-"), Path(value)
        directory = name in DIR_OUTPUTS or (name == "out" and out_is_dir)
        if directory and path.exists() and not path.is_dir():
            raise CliError(f"{option} {value} is a file; give a directory")
        if not directory and path.is_dir():
            raise CliError(f"{option} {value} is a directory; give a file name")
        _check_writable(option, path, directory)
        if name == "curve" and path.suffix.lower() not in FIGURES:
            raise CliError(f"{option} {value}: a figure ends in {', '.join(FIGURES)}")
        for source in INPUTS:
            given = getattr(args, source, None)
            if not (isinstance(given, str) and given and Path(given).is_file() and path.exists()):
                continue
            if path.resolve() == Path(given).resolve():
                flag = "--" + source.replace("_", "-")
                raise CliError(f"{option} {value} is also the {flag} file: it would be overwritten")


def _check_writable(option: str, path: Path, directory: bool) -> None:
    """The directory the output goes in (itself, for an existing output directory), or the nearest
    existing one above it (parents are made), must take new files."""
    ancestor = path.absolute() if directory and path.is_dir() else path.absolute().parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise CliError(f"{option} {path}: {ancestor} is not a directory")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise CliError(f"{option} {path}: cannot write in {ancestor}")
