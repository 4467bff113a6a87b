"""Calibration of a simulated platform against published anchor figures.

Anchors live in `rankmap_ros/data/calibration/<platform>.yaml`: single-model throughputs alone on
a component and latency ratios between components. `evaluate` gives simulated vs target per
anchor; `fit` adjusts chosen platform parameters to the anchors (a log-space pattern search,
deterministic and dependency-free). Reproduce the table in docs/SIMULATOR.md with
``python -m rankmap_ros.core.calibration orange_pi_5``.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml

from rankmap_ros.core.files import load_yaml
from rankmap_ros.core.platform import Platform, PlatformError, load_platform, parse_platform
from rankmap_ros.core.simulator import costs_of_units, model_costs, units_at
from rankmap_ros.core.zoo import ZooError, get_spec

AnchorKind = Literal["throughput", "latency_ratio"]


@dataclass(frozen=True)
class Anchor:
    """A published figure: a throughput alone on `component`, or latency(component) / latency(reference)."""

    kind: AnchorKind
    model: str
    component: str
    target: float
    low: float
    high: float
    source: str
    reference: str = ""
    input_shape: tuple[int, int, int] | None = None

    @property
    def label(self) -> str:
        what = (
            f"{self.component}/{self.reference} latency"
            if self.kind == "latency_ratio"
            else f"inf/s on {self.component}"
        )
        size = f" @{self.input_shape[1]}x{self.input_shape[2]}" if self.input_shape else ""
        return f"{self.model}{size} {what}"


@dataclass(frozen=True)
class AnchorResult:
    anchor: Anchor
    simulated: float

    @property
    def rel_error(self) -> float:
        return self.simulated / self.anchor.target - 1.0

    @property
    def ok(self) -> bool:
        return self.anchor.low <= self.simulated <= self.anchor.high


class AnchorError(ValueError):
    """An anchors file that cannot be used as given; the message names the file and the entry."""


def load_anchors(name_or_path: str | Path) -> tuple[Anchor, ...]:
    """Anchors of a built-in platform by name, or from a YAML file."""
    path = Path(name_or_path)
    try:
        if path.suffix in (".yaml", ".yml"):
            text = path.read_text()
        else:
            text = resources.files("rankmap_ros").joinpath(f"data/calibration/{name_or_path}.yaml").read_text()
        data = load_yaml(text)
    except FileNotFoundError:
        raise AnchorError(f"no anchors for {str(name_or_path)!r}: give an anchors YAML file") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise AnchorError(f"anchors {str(name_or_path)!r} cannot be read: {exc}") from None
    entries = data.get("anchors") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise AnchorError(f"anchors {str(name_or_path)!r}: expected a mapping with an 'anchors' list")
    out = []
    for i, entry in enumerate(entries):
        try:
            out.append(_anchor(entry))
        except (KeyError, TypeError, ValueError) as exc:
            raise AnchorError(f"anchors {str(name_or_path)!r}, entry {i}: {type(exc).__name__}: {exc}") from None
    return tuple(out)


def _anchor(entry: dict[str, Any]) -> Anchor:
    if entry["kind"] not in ("throughput", "latency_ratio"):
        raise ValueError(f"kind {entry['kind']!r} is not throughput or latency_ratio")
    target = float(entry["target"])
    if entry["kind"] == "throughput":
        tol = float(entry["tolerance"])
        low, high = target * (1 - tol), target * (1 + tol)
    else:
        low, high = float(entry["low"]), float(entry["high"])
    shape = entry.get("input_shape")
    return Anchor(
        kind=entry["kind"],
        model=entry["model"],
        component=entry["component"],
        target=target,
        low=low,
        high=high,
        source=entry.get("source", ""),
        reference=entry.get("reference", ""),
        input_shape=tuple(shape) if shape else None,
    )


def _latency(platform: Platform, anchor: Anchor, component: str) -> float:
    if anchor.input_shape and anchor.input_shape != get_spec(anchor.model).input_shape:
        costs = costs_of_units(platform, units_at(anchor.model, anchor.input_shape))
    else:
        costs = model_costs(platform, anchor.model)
    return costs.time[platform.index(component)][-1]


def evaluate(platform: Platform, anchors: Sequence[Anchor]) -> tuple[AnchorResult, ...]:
    """Simulated value of every anchor (inferences/s or a latency ratio), in anchor order."""
    results = []
    for a in anchors:
        if a.kind == "throughput":
            value = 1.0 / _latency(platform, a, a.component)
        else:
            value = _latency(platform, a, a.component) / _latency(platform, a, a.reference)
        results.append(AnchorResult(a, value))
    return tuple(results)


def set_param(platform: Platform, path: str, value: float) -> Platform:
    """A copy of the platform with one numeric field changed; path like 'gpu.gflops.conv'."""
    data = platform.to_dict()
    name, *keys = path.split(".")
    node = next((c for c in data["components"] if c["name"] == name), None)
    if node is None:
        node = data["transfers"][keys.pop(0)] if name == "transfers" else None
    if node is None or not keys:
        raise PlatformError(f"{path}: no such platform parameter")
    for key in keys[:-1]:
        node = node[key]
    if keys[-1] not in node:
        raise PlatformError(f"{path}: no such platform parameter")
    node[keys[-1]] = float(value)
    return parse_platform(data, source=platform.name)


def get_param(platform: Platform, path: str) -> float:
    name, *keys = path.split(".")
    node: Any = next(c for c in platform.to_dict()["components"] if c["name"] == name)
    for key in keys:
        node = node[key]
    return float(node)


def loss(results: Sequence[AnchorResult]) -> float:
    """Squared log errors to the targets, plus a 10x heavier penalty for leaving the passing range.

    Log errors make a factor 2 too fast cost as much as a factor 2 too slow; the range term lets
    anchors from different sources (ARM-CL figures, ncnn ratios) all pass when they can.
    """
    total = 0.0
    for r in results:
        total += math.log(r.simulated / r.anchor.target) ** 2
        outside = max(math.log(r.anchor.low / r.simulated), math.log(r.simulated / r.anchor.high), 0.0)
        total += 10.0 * outside**2
    return total


def fit(platform: Platform, anchors: Sequence[Anchor], free: Sequence[str], rounds: int = 400) -> Platform:
    """Adjust the `free` parameters (multiplicatively) to minimise `loss` over the anchors."""
    best = platform
    best_loss = loss(evaluate(best, anchors))
    step = 0.5
    for _ in range(rounds):
        moves = [
            set_param(best, path, get_param(best, path) * factor)
            for path in free
            for factor in (1 + step, 1 / (1 + step))
        ]
        scored = min(((loss(evaluate(m, anchors)), i) for i, m in enumerate(moves)), default=(best_loss, -1))
        if scored[0] < best_loss - 1e-12:
            best_loss, best = scored[0], moves[scored[1]]
        else:
            step /= 2
            if step < 1e-3:
                break
    return best


def table(results: Sequence[AnchorResult]) -> str:
    """Markdown table of the anchors: target (and the range that passes), simulated, error."""
    lines = [
        "| anchor | target | passes in | simulated | error | ok |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        a = r.anchor
        lines.append(
            f"| {a.label} | {a.target:.3g} | [{a.low:.3g}, {a.high:.3g}] | {r.simulated:.3g} | {r.rel_error:+.1%} | "
            f"{'yes' if r.ok else 'NO'} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Compare a platform with its calibration anchors (simulated).")
    parser.add_argument("platform", nargs="?", default="orange_pi_5", help="built-in platform name or YAML file")
    parser.add_argument("--anchors", help="anchors YAML (default: the built-in set of the platform's name)")
    args = parser.parse_args(argv)
    try:
        platform = load_platform(args.platform)
        results = evaluate(platform, load_anchors(args.anchors or platform.name))
    except (PlatformError, AnchorError, ZooError) as exc:  # ZooError: an anchor names an unknown model
        print(f"calibration: error: {exc}", file=sys.stderr)
        return 2
    print(f"Calibration of {platform.name} (simulated values)\n")
    print(table(results))
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
