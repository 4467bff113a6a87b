"""The estimator's target: standardized log potential throughput, y = (log(t / t_ideal) - mu) / sigma.

Throughput is heavy-tailed and its scale differs by model (a YOLO-V3 alone runs 2.4 inf/s on the
simulated GPU, a SqueezeNet-V2 120): dividing by the model's isolated GPU rate (the paper's
potential throughput P) removes the per-model scale, the log turns the tail (P from 0.01 to 2)
into a range of a few units and makes an L2 error a relative error, and standardizing with the
training split's statistics gives unit-variance targets. L2 in this space is the `l2` metric.
A measured label of 0 (a DNN that completed nothing in its window) counts as MIN_POTENTIAL, not
as log 0.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

MIN_POTENTIAL = 1e-6  # far below any simulated P; keeps a starved DNN's log finite


def _log_potential(throughput: np.ndarray, ideal: np.ndarray) -> np.ndarray:
    return np.log(np.maximum(throughput / ideal, MIN_POTENTIAL))  # NaN padding stays NaN


@dataclass(frozen=True)
class TargetScaler:
    mean: float
    std: float
    kind: str = "log_potential_throughput"

    @classmethod
    def fit(cls, throughput: np.ndarray, ideal: np.ndarray) -> TargetScaler:
        """From (N, D) throughputs (NaN padding) and the ideal rate of each entry (same shape)."""
        logs = _log_potential(throughput, ideal)
        logs = logs[np.isfinite(logs)]
        return cls(float(logs.mean()), float(max(logs.std(), 1e-6)))

    def transform(self, throughput: np.ndarray, ideal: np.ndarray) -> np.ndarray:
        return ((_log_potential(throughput, ideal) - self.mean) / self.std).astype(np.float32)

    def inverse(self, y: np.ndarray, ideal: np.ndarray) -> np.ndarray:
        return np.exp(y * self.std + self.mean) * ideal

    def to_dict(self) -> dict[str, float | str]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, float | str]) -> TargetScaler:
        return cls(float(data["mean"]), float(data["std"]), str(data["kind"]))
