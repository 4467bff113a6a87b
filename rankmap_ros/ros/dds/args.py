"""The `--ros-args` part of a command line, as rcl reads it.

Supported: `-p/--param [node:]name:=value` (value parsed as YAML), `--params-file FILE` (rcl's
`node: ros__parameters:` layout, wildcards `*` and `**`, nested namespaces), `-r/--remap
[node:]from:=to` including `__ns:=` and `__node:=`, `--log-level [name:=]LEVEL`,
`--enable/--disable-rosout-logs` and `--enable/--disable-stdout-logs`; `-e/--enclave` and the
external-lib logging switches are accepted and have no effect.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from rankmap_ros.core.files import load_yaml, not_a_file, yaml_problem

_ROSOUT_SWITCHES = {"--enable-rosout-logs": True, "--disable-rosout-logs": False}
_STDOUT_SWITCHES = {"--enable-stdout-logs": True, "--disable-stdout-logs": False}
_IGNORED_FLAGS = {"--enable-external-lib-logs", "--disable-external-lib-logs"}


class RosArgumentError(ValueError):
    """A malformed --ros-args section."""


@dataclass(frozen=True)
class Override:
    """One parameter value from the command line; `node` limits it to one node name."""

    node: str | None
    name: str
    value: Any


@dataclass(frozen=True)
class ParamsFile:
    path: Path


@dataclass
class RosArgs:
    unparsed: list[str] = field(default_factory=list)
    overrides: list[Override | ParamsFile] = field(default_factory=list)
    remaps: list[tuple[str | None, str, str]] = field(default_factory=list)
    log_levels: dict[str | None, str] = field(default_factory=dict)
    rosout: bool = True
    stdout: bool = True

    def node_name(self, name: str) -> str:
        return self._special(name, "__node", "__name") or name

    def namespace(self, name: str, namespace: str) -> str:
        return self._special(name, "__ns") or namespace

    def _special(self, node: str, *keys: str) -> str | None:
        found = None
        for target, source, dest in self.remaps:
            if source in keys and target in (None, node):
                found = dest
        return found

    def remap(self, fq_name: str, node: str, node_namespace: str) -> str:
        """Apply `from:=to` rules; relative rule names are relative to the node's namespace."""
        from rankmap_ros.ros.dds.names import expand

        for target, source, dest in self.remaps:
            if source.startswith("__") or target not in (None, node):
                continue
            if expand(source, node, node_namespace) == fq_name:
                return expand(dest, node, node_namespace)
        return fq_name

    def parameters_for(self, node: str, fq_name: str) -> dict[str, Any]:
        """Overrides that apply to a node, later ones winning, as rcl merges them."""
        values: dict[str, Any] = {}
        for item in self.overrides:
            if isinstance(item, ParamsFile):
                values.update(params_file_values(item.path, fq_name))
            elif item.node in (None, node, fq_name):
                values[item.name] = item.value
        return values


def parse_value(text: str) -> Any:
    try:
        return yaml.safe_load(text) if text else ""
    except yaml.YAMLError:
        return text


def _split_assignment(text: str, what: str) -> tuple[str | None, str, str]:
    if ":=" not in text:
        raise RosArgumentError(f"{what} {text!r} must look like name:=value")
    left, value = text.split(":=", 1)
    node, _, name = left.rpartition(":") if ":" in left else (None, "", left)
    if not name:
        raise RosArgumentError(f"{what} {text!r} has an empty name")
    return node or None, name, value


def parse(argv: Sequence[str] | None) -> RosArgs:
    result = RosArgs()
    tokens = list(argv or [])
    index = 0
    in_ros = False
    while index < len(tokens):
        token = tokens[index]
        index += 1
        if token == "--ros-args":
            in_ros = True
            continue
        if not in_ros:
            result.unparsed.append(token)
            continue
        if token == "--":
            in_ros = False
            continue
        if token in _ROSOUT_SWITCHES:
            result.rosout = _ROSOUT_SWITCHES[token]
            continue
        if token in _STDOUT_SWITCHES:
            result.stdout = _STDOUT_SWITCHES[token]
            continue
        if token in _IGNORED_FLAGS:
            continue
        if index >= len(tokens):
            raise RosArgumentError(f"{token} needs a value")
        value = tokens[index]
        index += 1
        if token in ("-p", "--param"):
            node, name, text = _split_assignment(value, "parameter")
            result.overrides.append(Override(node, name, parse_value(text)))
        elif token == "--params-file":
            path = Path(value)
            if not path.is_file():
                raise RosArgumentError(f"parameters file {path} {not_a_file(path)}")
            result.overrides.append(ParamsFile(path))
        elif token in ("-r", "--remap"):
            result.remaps.append(_split_assignment(value, "remapping"))
        elif token == "--log-level":
            if ":=" in value:
                name, level = value.split(":=", 1)
                result.log_levels[name] = level
            else:
                result.log_levels[None] = value
        elif token in ("-e", "--enclave"):
            continue
        else:
            raise RosArgumentError(f"unknown --ros-args option {token!r}")
    return result


def _flatten(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def _sections(data: dict[str, Any], prefix: str = "") -> list[tuple[str, dict[str, Any]]]:
    """(node pattern, ros__parameters) pairs, following nested namespace keys."""
    found = []
    for key, value in data.items():
        if not isinstance(value, dict):
            continue
        pattern = f"{prefix}/{str(key).strip('/')}"
        if "ros__parameters" in value:
            found.append((pattern, value["ros__parameters"] or {}))
        found.extend(_sections({k: v for k, v in value.items() if k != "ros__parameters"}, pattern))
    return found


def _matches(pattern: str, fq_name: str) -> bool:
    """rcl's node-name wildcards: `*` within one token, `**` any number of tokens."""
    regex = "".join(
        "(?:/[^/]+)*" if part == "**" else "/" + re.escape(part).replace(r"\*", "[^/]*")
        for part in pattern.strip("/").split("/")
    )
    return re.fullmatch(regex, fq_name) is not None


def params_file_values(path: Path, fq_name: str, named: set[str] | None = None) -> dict[str, Any]:
    """The values a parameters file gives the node `fq_name`, later sections winning, as rcl merges
    them; `named` collects the names given in sections that name the node itself (not `/**:`)."""
    try:
        data = load_yaml(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise RosArgumentError(f"parameters file {path} is not valid YAML: {yaml_problem(exc)}") from exc
    except UnicodeDecodeError:
        raise RosArgumentError(f"parameters file {path} is not a text file (not UTF-8)") from None
    except OSError as exc:
        raise RosArgumentError(f"parameters file {path} cannot be read: {exc.strerror or exc}") from None
    if not isinstance(data, dict):
        raise RosArgumentError(f"parameters file {path} must map node names to ros__parameters")
    values: dict[str, Any] = {}
    for pattern, params in _sections(data):
        if not isinstance(params, dict):
            raise RosArgumentError(f"parameters file {path}: {pattern} ros__parameters must be a mapping")
        if _matches(pattern, fq_name):
            flat = _flatten(params)
            values.update(flat)
            if named is not None and "*" not in pattern.rsplit("/", 1)[-1]:
                named.update(flat)
    return values
