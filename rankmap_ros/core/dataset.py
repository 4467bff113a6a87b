"""Throughput datasets: random workloads and mappings with a throughput label per DNN.

A dataset is one compact .npz file: model indices (N, max_dnns), unit-to-component indices
(N, max_dnns, max_units), throughputs (N, max_dnns), padding -1 / NaN, and a JSON metadata
record (platform and its fingerprint, components, zoo fingerprint, seed, label source, every
model's ideal throughput). Sample i depends only on (seed, i), so a generation stopped half-way
and resumed gives the same file as one run.

Consecutive samples may share a workload (`mappings_per_workload`): a test set built that way
measures how well an estimator ranks the mappings of one workload, which is what a search needs.
"""

from __future__ import annotations

import json
import math
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rankmap_ros.core import zoo
from rankmap_ros.core.files import not_a_file, write_atomic
from rankmap_ros.core.labels import LabelSource
from rankmap_ros.core.mapping import DnnMapping, Mapping
from rankmap_ros.core.qtensor import DEFAULT_MAX_UNITS
from rankmap_ros.core.unitvec import zoo_fingerprint
from rankmap_ros.core.workload import DEFAULT_MAX_DNNS, Workload

FORMAT = "rankmap.dataset/1"
CHECKPOINT_EVERY = 500

Progress = Callable[[Iterator[int], int, int], Iterator[int]]


class DatasetError(ValueError):
    """A dataset file that is missing, corrupt or made for something else."""


@dataclass
class Dataset:
    """Samples in their compact form; `workload(i)` and `mapping(i)` rebuild one."""

    models: np.ndarray
    assign: np.ndarray
    throughput: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.models)

    @property
    def components(self) -> tuple[str, ...]:
        return tuple(self.meta["components"])

    @property
    def model_names(self) -> tuple[str, ...]:
        return tuple(self.meta["model_names"])

    @property
    def groups(self) -> np.ndarray:
        """Workload id of every sample: samples with the same id differ only in their mapping."""
        return np.arange(len(self)) // int(self.meta.get("mappings_per_workload", 1))

    def ideal(self) -> np.ndarray:
        """Ideal throughput of every model of `model_names`, in that order."""
        return np.asarray([self.meta["ideal"][m] for m in self.model_names], dtype=np.float64)

    def workload(self, i: int) -> Workload:
        names = [self.model_names[m] for m in self.models[i] if m >= 0]
        return Workload.from_models(names, max_dnns=self.models.shape[1])

    def mapping(self, i: int) -> Mapping:
        workload = self.workload(i)
        dnns = []
        for k, dnn in enumerate(workload.dnns):
            row = self.assign[i, k]
            dnns.append(DnnMapping(dnn.name, dnn.model, tuple(self.components[c] for c in row[row >= 0])))
        return Mapping(tuple(dnns))

    def subset(self, index: np.ndarray) -> Dataset:
        return Dataset(self.models[index], self.assign[index], self.throughput[index], dict(self.meta))

    def save(self, path: Path) -> None:
        meta = np.frombuffer(json.dumps(self.meta, sort_keys=True).encode(), dtype=np.uint8)
        write_atomic(
            Path(path),
            lambda fh: np.savez_compressed(
                fh, models=self.models, assign=self.assign, throughput=self.throughput, meta=meta
            ),
        )

    @classmethod
    def load(cls, path: Path) -> Dataset:
        path = Path(path)
        if not path.is_file():
            raise DatasetError(f"dataset {path} {not_a_file(path)}")
        if not zipfile.is_zipfile(path):  # numpy would take a text file for pickled data, and say so
            raise DatasetError(f"dataset {path} is not a rankmap dataset: not an .npz archive")
        try:
            data = np.load(path, allow_pickle=False)
            if not isinstance(data, np.lib.npyio.NpzFile):  # a .npy holds one bare array
                raise ValueError("not an .npz archive")
            with data:
                meta = json.loads(bytes(data["meta"]).decode())
                dataset = cls(data["models"], data["assign"], data["throughput"], meta)
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
            raise DatasetError(f"dataset {path} is not a rankmap dataset: {exc}") from exc
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            found = meta.get("format") if isinstance(meta, dict) else None
            raise DatasetError(f"dataset {path} has format {found!r}, expected {FORMAT!r}")
        dataset._check(path)
        return dataset

    def _check(self, path: Path) -> None:
        """What every later use indexes with: the metadata's lists, the arrays' shapes and ranges."""
        for key in ("platform", "zoo_version"):
            if not isinstance(self.meta.get(key), str):
                raise DatasetError(f"dataset {path} is corrupt: meta.{key} is missing or not a string")
        for key in ("components", "model_names"):
            names = self.meta.get(key)
            if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
                raise DatasetError(f"dataset {path} is corrupt: meta.{key} is not a list of names")
        n, dnns = self.models.shape if self.models.ndim == 2 else (-1, -1)
        if self.assign.ndim != 3 or self.assign.shape[:2] != (n, dnns) or self.throughput.shape != (n, dnns):
            raise DatasetError(f"dataset {path} is corrupt: its arrays disagree in shape")
        if self.models.dtype.kind != "i" or self.assign.dtype.kind != "i" or self.throughput.dtype.kind != "f":
            raise DatasetError(f"dataset {path} is corrupt: models and assign must be integers, throughput floats")
        for what, array, count in (
            ("models", self.models, len(self.model_names)),
            ("assign", self.assign, len(self.components)),
        ):
            if array.size and (array.min() < -1 or array.max() >= count):
                raise DatasetError(f"dataset {path} is corrupt: {what} holds indices outside -1..{count - 1}")
        labels = self.throughput[self.models >= 0]
        if not np.isfinite(labels).all() or (labels < 0).any():
            bad = labels[~np.isfinite(labels) | (labels < 0)]
            raise DatasetError(
                f"dataset {path} is corrupt: {bad.size} throughput labels are negative, NaN or infinite "
                f"(e.g. {bad[0]!r}); a DNN's label must be a rate >= 0"
            )
        if not isinstance(self.meta.get("max_units"), int) or self.meta["max_units"] < self.assign.shape[2]:
            raise DatasetError(f"dataset {path} is corrupt: meta.max_units is missing or below the arrays' units")
        ideal = self.meta.get("ideal")
        if not isinstance(ideal, dict) or not all(
            isinstance(ideal.get(m), int | float) and math.isfinite(ideal[m]) and ideal[m] > 0 for m in self.model_names
        ):
            raise DatasetError(f"dataset {path} is corrupt: meta.ideal lacks a positive rate for every model")

    def check_compatible(self, platform_name: str, fingerprint: str | None = None) -> None:
        """Raise DatasetError unless the samples were labelled on this platform and this zoo."""
        if self.meta["platform"] != platform_name:
            raise DatasetError(f"dataset is for platform {self.meta['platform']!r}, not {platform_name!r}")
        if fingerprint is not None and self.meta.get("platform_fingerprint") != fingerprint:
            raise DatasetError(
                f"dataset was labelled with platform {platform_name!r} fingerprint "
                f"{self.meta.get('platform_fingerprint')}, the platform is now {fingerprint}: regenerate it"
            )
        if self.meta["zoo_version"] != zoo_fingerprint():
            raise DatasetError(
                f"dataset was made for zoo version {self.meta['zoo_version']}, the zoo is {zoo_fingerprint()}"
            )


def random_workload(rng: np.random.Generator, pool: tuple[str, ...], max_dnns: int) -> Workload:
    """1..max_dnns DNNs drawn from the pool (a model may appear twice, as with two cameras)."""
    n = int(rng.integers(1, max_dnns + 1))
    return Workload.from_models([pool[int(i)] for i in rng.integers(len(pool), size=n)], max_dnns=max_dnns)


def _sample(
    seed: int, index: int, per_workload: int, source: LabelSource, pool: tuple[str, ...], max_dnns: int, max_stages: int
) -> tuple[Workload, Mapping, dict[str, float]]:
    workload = random_workload(np.random.default_rng([seed, index // per_workload]), pool, max_dnns)
    rng = np.random.default_rng([seed, index, 1])
    stages = int(rng.integers(1, max_stages + 1))
    mapping = Mapping.random(workload, source.components, rng, max_stages=stages)
    return workload, mapping, source.label(workload, mapping)


def _differing(saved: dict[str, Any], meta: dict[str, Any]) -> list[str]:
    """Settings that differ; the ideal rates are measurements (of a host), not settings."""
    return sorted(k for k in (meta.keys() | saved.keys()) - {"samples", "ideal"} if saved.get(k) != meta.get(k))


def _load_kept(path: Path, what: str) -> Dataset:
    try:
        return Dataset.load(path)
    except DatasetError as exc:
        raise DatasetError(f"{exc} (where {what} is kept): move it away or delete it to start over") from exc


def generate(
    source: LabelSource,
    samples: int,
    out: Path,
    seed: int = 0,
    mappings_per_workload: int = 1,
    max_dnns: int = DEFAULT_MAX_DNNS,
    max_units: int = DEFAULT_MAX_UNITS,
    max_stages: int = 4,
    progress: Progress | None = None,
    checkpoint_every: int = CHECKPOINT_EVERY,
    reuse: bool = False,
) -> Dataset:
    """Generate (or resume) a dataset at `out`; a partial file beside it holds finished samples.

    With `reuse`, a finished dataset already at `out` with these settings is returned as it is
    (a pipeline resumed after its data was made must not label it all again).
    """
    if samples <= 0:
        raise DatasetError(f"samples must be positive, got {samples}")
    if mappings_per_workload <= 0:
        raise DatasetError(f"mappings per workload must be positive, got {mappings_per_workload}")
    pool = zoo.names()
    meta: dict[str, Any] = {
        "format": FORMAT,
        "platform": source.platform_name,
        "platform_fingerprint": source.platform_fingerprint,
        "components": list(source.components),
        "label_source": source.name,
        "zoo_version": zoo_fingerprint(),
        "model_names": list(pool),
        "seed": seed,
        "mappings_per_workload": mappings_per_workload,
        "max_dnns": max_dnns,
        "max_units": max_units,
        "max_stages": max_stages,
    }
    if source.settings:  # a measured label's window: a resume with another one would mix them
        meta["label_settings"] = dict(source.settings)
    if reuse and Path(out).exists():
        finished = _load_kept(Path(out), "a finished dataset")
        if len(finished) == samples and not _differing(finished.meta, meta):
            return finished
    models = np.full((samples, max_dnns), -1, dtype=np.int16)
    assign = np.full((samples, max_dnns, max_units), -1, dtype=np.int8)
    throughput = np.full((samples, max_dnns), np.nan, dtype=np.float32)
    partial_path = Path(out).with_name(Path(out).name + ".partial.npz")
    done = 0
    # a partial that cannot be read is refused, not started over: it may hold hours of measurements
    partial = _load_kept(partial_path, "an interrupted run's samples") if partial_path.exists() else None
    if partial is not None:
        # Sample i depends on the settings and i only: a partial made with the same settings
        # gives its first samples, however many this run asks for. A resumed run keeps the
        # partial's ideal rates.
        differing = _differing(partial.meta, meta)
        if differing:
            raise DatasetError(
                f"{partial_path} holds {len(partial)} samples made with other settings ({', '.join(differing)}): "
                "run with the same settings to go on from it, or delete it to start over"
            )
        done = min(len(partial), samples)
        models[:done], assign[:done], throughput[:done] = (
            partial.models[:done],
            partial.assign[:done],
            partial.throughput[:done],
        )
    kept = partial.meta.get("ideal") if partial is not None else None
    meta["ideal"] = kept if isinstance(kept, dict) else {m: source.ideal(m) for m in pool}
    column = {c: i for i, c in enumerate(source.components)}
    model_index = {m: i for i, m in enumerate(pool)}
    indices: Iterator[int] = iter(range(done, samples))
    if progress is not None:
        indices = progress(indices, samples, done)
    for i in indices:
        workload, mapping, labels = _sample(seed, i, mappings_per_workload, source, pool, max_dnns, max_stages)
        for k, (dnn, dnn_map) in enumerate(zip(workload.dnns, mapping.dnns, strict=True)):
            models[i, k] = model_index[dnn.model]
            assign[i, k, : len(dnn_map.assignment)] = [column[c] for c in dnn_map.assignment]
            throughput[i, k] = labels[dnn.name]
        if (i + 1) % checkpoint_every == 0 and i + 1 < samples:
            Dataset(models[: i + 1], assign[: i + 1], throughput[: i + 1], {**meta, "samples": i + 1}).save(
                partial_path
            )
    dataset = Dataset(models, assign, throughput, {**meta, "samples": samples})
    dataset.save(Path(out))
    if partial is None or len(partial) <= samples:  # a longer partial keeps what a larger run may want
        partial_path.unlink(missing_ok=True)
    return dataset
