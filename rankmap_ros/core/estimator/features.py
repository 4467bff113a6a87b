"""Unit vectors as the estimator sees them: log-scaled and standardized per feature.

Raw entries span six orders of magnitude (an index, a stride, 4096 channels, 10^5 biases), so
each of the 22 features is mapped through log1p and standardized with statistics taken over
every unit of the zoo; the statistics travel with the checkpoint.

The estimator never encodes a unit twice: `unit_table` holds every zoo model's (compressed)
unit vectors, padded to the Q tensor's rows, and Q is gathered from it (estimator/qbatch.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from rankmap_ros.core.unitvec import VECTOR_DIM, vectors


@dataclass(frozen=True)
class VectorScaler:
    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, models: Iterable[str]) -> VectorScaler:
        logs = np.log1p(np.concatenate([vectors(m) for m in models]).astype(np.float64))
        std = logs.std(axis=0)
        # A feature that never varies (the batch size) maps to 0 rather than to float noise.
        return cls(logs.mean(axis=0).astype(np.float32), np.where(std > 1e-3, std, 1.0).astype(np.float32))

    def transform(self, raw: np.ndarray) -> np.ndarray:
        return ((np.log1p(raw) - self.mean) / self.std).astype(np.float32)

    def inverse(self, normalized: np.ndarray) -> np.ndarray:
        return np.expm1(normalized * self.std + self.mean)

    def to_dict(self) -> dict[str, list[float]]:
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_dict(cls, data: dict[str, list[float]]) -> VectorScaler:
        mean = np.asarray(data["mean"], dtype=np.float32)
        std = np.asarray(data["std"], dtype=np.float32)
        if mean.shape != (VECTOR_DIM,) or std.shape != (VECTOR_DIM,):
            raise ValueError(f"vector scaler must hold {VECTOR_DIM} means and stds")
        return cls(mean, std)


def unit_table(models: Sequence[str], encode: Callable[[np.ndarray], np.ndarray], max_units: int) -> np.ndarray:
    """(len(models), max_units, dim) float32: every model's encoded unit vectors, zero-padded rows."""
    encoded = [np.asarray(encode(vectors(m)), dtype=np.float32) for m in models]
    table = np.zeros((len(models), max_units, encoded[0].shape[1]), dtype=np.float32)
    for i, rows in enumerate(encoded):
        table[i, : len(rows)] = rows
    return table
