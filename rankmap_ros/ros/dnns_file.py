"""The DNNs a manager registers at start (parameter `dnns_file`), read before anything starts.

A robot's bring-up names its DNNs in a file beside its launch parameters instead of running a
node that calls the register service; each entry holds the fields of a `RegisterDnn` request,
so the file is checked as strictly as a request, and a mistake stops the manager at start.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from rankmap_ros.core import zoo
from rankmap_ros.core.files import load_yaml, yaml_problem
from rankmap_ros.core.numbers import finite_number
from rankmap_ros.ros.registry import Registration, Registry, RequestError

TEXT_FIELDS = ("name", "model", "input_topic", "output_kind")
NUMBER_FIELDS = ("priority", "min_rate", "period", "deadline")
REQUIRED = ("name", "model", "input_topic")


def read_dnns_file(path: str | Path) -> list[Registration]:
    """Every entry as a registration to validate (the registry does that, entry by entry).

    A relative model file is taken relative to this file, not to the manager's working directory.
    """
    try:
        path = Path(path).expanduser()
        data = load_yaml(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RequestError(f"dnns_file {path} does not exist") from None
    except yaml.YAMLError as exc:
        raise RequestError(f"dnns_file {path} is not valid YAML: {yaml_problem(exc)}") from exc
    except (OSError, RuntimeError, UnicodeDecodeError) as exc:
        raise RequestError(f"dnns_file {path} cannot be read: {exc}") from exc
    entries = data.get("dnns") if isinstance(data, Mapping) else None
    if not isinstance(entries, list) or not entries:
        raise RequestError(f"dnns_file {path}: expected a mapping with a non-empty 'dnns' list")
    # a misspelt second section would be left out; `x-...` keys hold YAML anchors (`x-defaults: &d`)
    if unknown := sorted(k for k in map(str, set(data) - {"dnns"}) if not k.startswith("x-")):
        shown = ", ".join(key[:40] for key in unknown[:5])
        raise RequestError(f"dnns_file {path}: unknown top-level keys {shown} (known: dnns, and x-... for anchors)")
    regs = [_entry(path, i, entry) for i, entry in enumerate(entries)]
    first: dict[str, int] = {}
    for index, reg in enumerate(regs):
        if reg.name in first:
            raise RequestError(f"dnns_file {path}: entries {first[reg.name]} and {index} are both named {reg.name!r}")
        first[reg.name] = index
    return regs


def register_file(registry: Registry, path: str | Path, allowed_dirs: Sequence[str]) -> list[Registration]:
    """Every entry through the registry's checks, in order; the first refusal names its entry.

    The manager does this at start, and `rankmap check-dnns` before a robot is started.
    """
    entries = read_dnns_file(path)
    stored = []
    with registry.unchanged_on_error():  # all or none
        for index, reg in enumerate(entries):
            try:
                stored.append(registry.register(reg, allowed_dirs, priorities=False))
            except RequestError as exc:
                raise RequestError(f"dnns_file {path}, entry {index} ({reg.name}): {exc}") from exc
        try:
            registry.check_priorities()  # of the whole set, whatever the order of its entries
        except RequestError as exc:
            raise RequestError(f"dnns_file {path}: {exc}") from exc
    return stored


def _entry(path: Path, index: int, entry: Any) -> Registration:
    where = f"dnns_file {path}, entry {index}"
    if not isinstance(entry, Mapping):
        raise RequestError(f"{where}: expected a mapping of RegisterDnn fields, got {entry!r}")
    unknown = set(entry) - {*TEXT_FIELDS, *NUMBER_FIELDS}
    if unknown:
        known = ", ".join((*TEXT_FIELDS, *NUMBER_FIELDS))
        raise RequestError(f"{where}: unknown fields {', '.join(sorted(map(str, unknown)))} (known: {known})")
    missing = [field for field in REQUIRED if field not in entry]
    if missing:
        raise RequestError(f"{where}: missing {', '.join(missing)}")
    for field in TEXT_FIELDS:
        if field in entry and not isinstance(entry[field], str):
            raise RequestError(f"{where}: {field} must be text, got {entry[field]!r}")
    for field in NUMBER_FIELDS:
        value = entry.get(field, 0.0)
        if not finite_number(value):
            raise RequestError(f"{where}: {field} must be a finite number, got {value!r}")
    model = entry["model"]
    if zoo.is_model_file(model) and not model.startswith(("/", "~")):
        model = str(path.parent / model)  # as the file's author sees it, wherever the manager runs
    return Registration(
        name=entry["name"],
        model=model,
        input_topic=entry["input_topic"],
        priority=float(entry.get("priority", 1.0)),
        min_rate=float(entry.get("min_rate", 0.0)),
        output_kind=entry.get("output_kind", ""),
        output_topic="",
        period=float(entry.get("period", 0.0)),
        deadline=float(entry.get("deadline", 0.0)),
    )
