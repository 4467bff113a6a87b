"""What every command module shares: errors, output, workload parsing."""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

Handler = Callable[[argparse.Namespace], Any]


class CliError(Exception):
    """A user mistake worth one clear line, not a traceback."""


def emit(args: argparse.Namespace, data: Any, text: str) -> None:
    """`--json`: strict JSON, with null where a value is NaN or infinite (nothing measured yet):
    jq and most parsers refuse Python's NaN."""
    if getattr(args, "json", False):
        from rankmap_ros.core.rtsim import json_safe

        print(json.dumps(json_safe(data), indent=2, sort_keys=True, allow_nan=False))
    else:
        print(text)


def host_split(platform: str, split: str | None) -> str | None:
    """`--split` for `--platform host` only: a platform file names its components' CPUs itself,
    and a split given beside one would be dropped without a word."""
    if split and platform != "host":
        raise CliError(f"--split applies to --platform host; {platform} names its components' CPUs itself")
    return split


def table(rows: Sequence[Sequence[object]], header: Sequence[str]) -> str:
    cells = [list(map(str, header)), *[[str(c) for c in row] for row in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells)


def parse_workload(text: str) -> Any:
    from rankmap_ros.core.workload import Workload

    path = Path(text)
    if path.suffix in {".yaml", ".yml", ".json"}:
        import yaml

        from rankmap_ros.core.files import load_yaml, not_a_file, yaml_problem

        if not path.is_file():
            raise CliError(f"workload file {path} {not_a_file(path)}")
        try:
            data = load_yaml(read_text(path, "workload file"))
        except yaml.YAMLError as exc:
            raise CliError(f"workload file {path} is not valid YAML/JSON: {yaml_problem(exc)}") from exc
        return Workload.from_dict(data)
    if "/" in text or path.exists():
        raise CliError(f"workload file {path}: must end in .yaml, .yml or .json (or give model names: a,b,c)")
    return Workload.from_models([m.strip() for m in text.split(",") if m.strip()])


def read_mapping(text: str, workload: Any, example: str = "all-big") -> Any:
    """`all-<component>` (every unit of every DNN there), or a mapping JSON file."""
    from rankmap_ros.core.mapping import Mapping

    if text.startswith("all-"):
        return Mapping.all_on(workload, text.removeprefix("all-"))
    path = Path(text)
    if not path.is_file():
        raise CliError(f"mapping file {path} does not exist (or use all-<component>, e.g. {example})")
    return Mapping.from_json(read_text(path, "mapping file"))


def read_text(path: Path, what: str) -> str:
    """A user's text file (`what`: e.g. 'mapping file'); unreadable or not UTF-8 is one clear line."""
    try:
        return path.read_text()
    except UnicodeDecodeError:
        raise CliError(f"{what} {path} is not a text file (not UTF-8)") from None
    except OSError as exc:
        raise CliError(f"{what} {path} cannot be read: {exc.strerror}") from None


def write_output(path: str, text: str) -> None:
    """A result file, whole or not at all, its directory made if need be (a missing one must not
    waste a long run)."""
    from rankmap_ros.core.files import write_text_atomic

    write_text_atomic(Path(path), text)


def integer(low: int, high: int | None = None) -> Callable[[str], int]:
    """An argparse type: an integer in [low, high]; argparse refuses anything else in one line."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < low or (high is not None and value > high):
            where = f"at least {low}" if high is None else f"from {low} to {high}"
            raise argparse.ArgumentTypeError(f"must be {where}, got {value}")
        return value

    return parse


def number(low: float = 0.0, *, above: bool = True, high: float = math.inf) -> Callable[[str], float]:
    """An argparse type: a finite number > low (>= low when `above` is False), at most `high`."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not math.isfinite(value) or value < low or (above and value == low) or value > high:
            bound = f"{'>' if above else '>='} {low:g}" + (f" and <= {high:g}" if math.isfinite(high) else "")
            raise argparse.ArgumentTypeError(f"must be a finite number {bound}, got {text}")
        return value

    return parse


POSITIVE = number(0.0)
NON_NEGATIVE = number(0.0, above=False)
# durations: a window past a year is a typo, and time.sleep() overflows long before 1e20 s
SECONDS = number(0.0, high=3.2e7)
SECONDS_OR_ZERO = number(0.0, above=False, high=3.2e7)
SEED = integer(0)
# a real-time period: below a millisecond no stage of the zoo keeps up, and nothing is measured
PERIOD = number(0.001, above=False, high=3600.0)


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
