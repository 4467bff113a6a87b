"""What every command module shares: errors, output, workload parsing."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

Handler = Callable[[argparse.Namespace], Any]


class CliError(Exception):
    """A user mistake worth one clear line, not a traceback."""


def emit(args: argparse.Namespace, data: Any, text: str) -> None:
    if getattr(args, "json", False):
        print(json.dumps(data, indent=2, sort_keys=True))
    else:
        print(text)


def table(rows: Sequence[Sequence[object]], header: Sequence[str]) -> str:
    cells = [list(map(str, header)), *[[str(c) for c in row] for row in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells)


def parse_workload(text: str) -> Any:
    from rankmap_ros.core.workload import Workload

    path = Path(text)
    if path.suffix in {".yaml", ".yml", ".json"}:
        import yaml

        if not path.is_file():
            raise CliError(f"workload file {path} does not exist")
        try:
            data = yaml.safe_load(path.read_text())
        except yaml.YAMLError as exc:
            raise CliError(f"workload file {path} is not valid YAML/JSON: {exc}") from exc
        return Workload.from_dict(data)
    return Workload.from_models([m.strip() for m in text.split(",") if m.strip()])


def add_command(parent: Any, name: str, handler: Handler, help_text: str) -> argparse.ArgumentParser:
    """A subcommand with --json, dispatching to `handler`."""
    p = parent.add_parser(name, help=help_text, description=help_text)
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(handler=handler)
    return p


def command_group(sub: Any, name: str, help_text: str) -> Any:
    """The subcommand group `name` (e.g. `bench`), created once and shared by every command module."""
    parser = sub.choices.get(name)
    if parser is None:
        parser = sub.add_parser(name, help=help_text, description=help_text)
        return parser.add_subparsers(dest=f"{name}_command", required=True)
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
