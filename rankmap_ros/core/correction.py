"""A throughput model corrected by the rates that mappings measured when they ran.

Why: every model errs (the calibrated host simulator by up to ~30% on some mappings,
docs/BENCHMARKS.md), and a planner that believes it keeps choosing a mapping that measured
worse than predicted. The manager measures each DNN's rate on the mapping that runs; this
module turns those measurements into a correction that holds for that mapping, weakens for
mappings unlike it, and keeps a DNN's systematic error everywhere.

For DNN d and a mapping M the corrected rate is base(M) · exp(c), where, in log space,

    c = b + Σ_j w_j (e_j − b) / (W + LOCAL_PRIOR) − PESSIMISM · s · DOUBT_PRIOR / (W + DOUBT_PRIOR)
    e_j = log(measured_j / base(M_j))                       the error on observed mapping M_j
    b   = Σ_j e_j / (n + BIAS_PRIOR)                        d's systematic error, shrunk to 0
    s   = sqrt(mean of e_j²)                                how wrong the model has been for d
    w_j = exp(−(own_j + OTHERS_WEIGHT · others_j) / SCALE), W = Σ_j w_j   how alike M and M_j are

`own_j` is the share of d's units that M_j places on another component than M does; `others_j`
the same, averaged over the other DNNs (a DNN present in only one of the two counts as moved).
At an observed mapping c is nearly its measured error. Far from every observation it is b less
the doubt term: a mapping no measurement vouches for is taken as a little worse than the model
says, so the planner does not trade a measured mapping for one the model merely flatters (the
oscillation a single factor per DNN shows). The constants were chosen on one set of mixes and
the gain is reported on another, in `rankmap experiment correction` (docs/PLANNER.md,
"Re-planning with measured rates").
"""

from __future__ import annotations

import math
from collections.abc import Mapping as MappingABC
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from rankmap_ros.core.labels import platform_fingerprint
from rankmap_ros.core.mapping import Mapping
from rankmap_ros.core.platform import Platform
from rankmap_ros.core.throughput import ThroughputModel
from rankmap_ros.core.workload import Workload

SCALE = 0.08
OTHERS_WEIGHT = 0.5
LOCAL_PRIOR = 0.05
BIAS_PRIOR = 1.0
PESSIMISM = 1.0
DOUBT_PRIOR = 0.2
MAX_OBSERVATIONS = 32
# A measured rate more than this many times off the model is taken as a fault, not an error.
MAX_LOG_ERROR = math.log(20.0)
FORMAT = "rankmap.measurements/1"


class MeasurementsError(ValueError):
    """Saved measurements that cannot be used; the message says which entry and why."""


def platform_key(platform: Platform) -> str:
    """What saved measurements were taken on: they hold for that exact platform only.

    Its free-text description is left out: a discovered host's notes may change wording while
    its components and figures stay the same.
    """
    return platform_fingerprint(replace(platform, description=""))


@dataclass(frozen=True)
class Observation:
    """What one mapping measured: per DNN its (model, unit components) and its log error against `base`."""

    base: str
    assignments: dict[str, tuple[str, tuple[str, ...]]]
    errors: dict[str, float]


class Observations:
    """The newest MAX_OBSERVATIONS measurements, for one platform's component names."""

    def __init__(self, components: Sequence[str], limit: int = MAX_OBSERVATIONS) -> None:
        self.components = tuple(components)
        self.limit = limit
        self.items: list[Observation] = []

    def __len__(self) -> int:
        return len(self.items)

    def record(
        self, base: str, mapping: Mapping, base_predicted: MappingABC[str, float], measured: MappingABC[str, float]
    ) -> dict[str, float]:
        """Note how far model `base`'s prediction of `mapping` was from what it measured.

        Both map DNN names to inferences/s. Only DNNs whose rate is their mapping's capacity
        belong in `measured` (not one held back by its sensor). Rates that are not positive and
        finite, or absurdly far from the model, are left out. Returns the log errors noted.
        An error belongs to the model it was measured against: another model's predictions
        (the manager falls back to the simulator when a component is dropped) ignore it.
        """
        errors: dict[str, float] = {}
        for dnn in mapping.dnns:
            rate, predicted = measured.get(dnn.name, math.nan), base_predicted.get(dnn.name, math.nan)
            if not (math.isfinite(rate) and rate > 0 and math.isfinite(predicted) and predicted > 0):
                continue
            error = math.log(rate / predicted)
            if abs(error) <= MAX_LOG_ERROR:
                errors[dnn.name] = error
        if errors:
            assignments = {d.name: (d.model, d.assignment) for d in mapping.dnns}
            self.items.append(Observation(base, assignments, errors))
            del self.items[: -self.limit]
        return errors

    def to_dict(self, platform: str) -> dict[str, Any]:
        """The JSON form, for `platform` (a platform_key)."""
        return {
            "format": FORMAT,
            "platform": platform,
            "components": list(self.components),
            "observations": [
                {
                    "base": obs.base,
                    "assignments": {n: [m, list(a)] for n, (m, a) in obs.assignments.items()},
                    "errors": obs.errors,
                }
                for obs in self.items
            ],
        }

    @classmethod
    def from_dict(cls, data: Any, platform: str, components: Sequence[str]) -> Observations:
        """Measurements saved by to_dict, for this platform (a platform_key); MeasurementsError otherwise."""
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise MeasurementsError(f"not a {FORMAT} file")
        if data.get("platform") != platform or data.get("components") != list(components):
            raise MeasurementsError("taken on another platform description (a recalibrated or edited platform file?)")
        entries = data.get("observations")
        if not isinstance(entries, list):
            raise MeasurementsError("observations: expected a list")
        out = cls(components)
        first = max(0, len(entries) - out.limit)  # the newest `limit`, as record keeps them
        for i, entry in enumerate(entries[first:], start=first):
            try:
                out.items.append(_observation(entry, set(components)))
            except (KeyError, TypeError, ValueError) as exc:
                raise MeasurementsError(f"observations[{i}]: {exc}") from None
        return out

    def snapshot(self) -> Observations:
        """A copy that later records do not change (the planner's thread reads it)."""
        copy = Observations(self.components, self.limit)
        copy.items = list(self.items)
        return copy

    def forget(self, name: str) -> bool:
        """Drop what was measured of DNN `name` (it left; a DNN that now runs another model is told apart
        anyway). Returns whether there was any."""
        before = sum(len(obs.errors) for obs in self.items)
        kept = []
        for obs in self.items:
            errors = {k: v for k, v in obs.errors.items() if k != name}
            assignments = {k: v for k, v in obs.assignments.items() if k != name}
            if errors:
                kept.append(Observation(obs.base, assignments, errors))
        self.items = kept
        return sum(len(obs.errors) for obs in kept) < before

    def log_corrections(self, base: str, workload: Workload, mappings: Sequence[Mapping]) -> np.ndarray:
        """c per (mapping, DNN) for model `base`: the log-space correction of the formula above."""
        out = np.zeros((len(mappings), len(workload)))
        items = [obs for obs in self.items if obs.base == base]
        if not items or not mappings:
            return out
        index = {c: i for i, c in enumerate(self.components)}
        # (DNNs, mappings, observations): share of each DNN's units placed elsewhere
        pairs = zip(workload.names, workload.models, strict=True)
        moved = np.stack([self._moved(d, name, model, mappings, index, items) for d, (name, model) in enumerate(pairs)])
        names = set(workload.names)
        absent = np.array([sum(1 for k in obs.assignments if k not in names) for obs in items], dtype=float)
        total = moved.sum(axis=0)
        for d, (name, model) in enumerate(zip(workload.names, workload.models, strict=True)):
            seen = np.array([name in obs.errors and obs.assignments[name][0] == model for obs in items])
            if not seen.any():
                continue
            errors = np.array([obs.errors.get(name, 0.0) for obs in items])[seen]
            others_count = len(workload) - 1 + absent[seen]
            others = np.divide(
                total[:, seen] - moved[d][:, seen] + absent[seen],
                others_count,
                out=np.zeros_like(moved[d][:, seen]),
                where=others_count > 0,
            )
            w = np.exp(-(moved[d][:, seen] + OTHERS_WEIGHT * others) / SCALE)
            bias = errors.sum() / (len(errors) + BIAS_PRIOR)
            near = w.sum(axis=1)
            spread = math.sqrt(float(np.mean(errors**2)))
            doubt = PESSIMISM * spread * DOUBT_PRIOR / (near + DOUBT_PRIOR)
            out[:, d] = bias + (w @ (errors - bias)) / (near + LOCAL_PRIOR) - doubt
        return out

    @staticmethod
    def _moved(
        d: int,
        name: str,
        model: str,
        mappings: Sequence[Mapping],
        index: dict[str, int],
        items: Sequence[Observation],
    ) -> np.ndarray:
        """(mappings, observations): share of DNN `d`'s units on another component (1: not observed)."""
        current = np.array([[index.get(c, -1) for c in m.dnns[d].assignment] for m in mappings])
        out = np.ones((len(mappings), len(items)))
        for j, obs in enumerate(items):
            seen = obs.assignments.get(name)
            if seen is None or seen[0] != model or len(seen[1]) != current.shape[1]:
                continue
            ran = np.array([index.get(c, -2) for c in seen[1]])
            out[:, j] = (current != ran).mean(axis=1)
        return out


def _observation(entry: Any, components: set[str]) -> Observation:
    base, assignments, errors = entry["base"], entry["assignments"], entry["errors"]
    if not isinstance(base, str) or not isinstance(assignments, dict) or not isinstance(errors, dict) or not errors:
        raise TypeError("expected base (text), assignments and errors (mappings, errors not empty)")
    placed: dict[str, tuple[str, tuple[str, ...]]] = {}
    for name, (model, units) in assignments.items():
        if not isinstance(model, str) or not units or not all(isinstance(c, str) and c in components for c in units):
            raise ValueError(f"assignments.{name}: expected [model, [component, ...]] of this platform's components")
        placed[name] = (model, tuple(units))
    for name, error in errors.items():
        if name not in placed:
            raise ValueError(f"errors.{name}: no assignment for it")
        if isinstance(error, bool) or not isinstance(error, (int, float)) or not abs(error) <= MAX_LOG_ERROR:
            raise ValueError(f"errors.{name}: expected a finite log error within ±log(20), got {error!r}")
    return Observation(base, placed, {n: float(e) for n, e in errors.items()})


class CorrectedModel:
    """`base` with every prediction corrected by `observations` (see the module's formula)."""

    def __init__(self, base: ThroughputModel, observations: Observations) -> None:
        self.base = base
        self.observations = observations
        self.platform: Platform = base.platform
        self.name = f"{base.name}+measured"

    def predict(self, workload: Workload, mappings: Sequence[Mapping]) -> np.ndarray:
        rates = self.base.predict(workload, mappings)
        return rates * np.exp(self.observations.log_corrections(self.base.name, workload, mappings))
