"""Datasets: simulator labels, round trip, determinism by seed, resume, bad files."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from rankmap_ros.core.dataset import Dataset, DatasetError, generate
from rankmap_ros.core.labels import SimulatorLabels, platform_fingerprint
from rankmap_ros.core.platform import load_platform
from rankmap_ros.core.simulator import ideal_throughput, simulate
from rankmap_ros.core.unitvec import zoo_fingerprint


@pytest.fixture(scope="module")
def source() -> SimulatorLabels:
    return SimulatorLabels(load_platform("orange_pi_5"))


def test_round_trip_rebuilds_workloads_mappings_and_labels(source: SimulatorLabels, tmp_path: Path) -> None:
    made = generate(source, 12, tmp_path / "d.npz", seed=3)
    loaded = Dataset.load(tmp_path / "d.npz")
    for name in ("models", "assign", "throughput"):
        assert np.array_equal(getattr(made, name), getattr(loaded, name), equal_nan=True)
    assert loaded.meta["platform"] == "orange_pi_5"
    assert loaded.meta["platform_fingerprint"] == platform_fingerprint(source.platform)
    assert loaded.meta["zoo_version"] == zoo_fingerprint()
    assert loaded.meta["label_source"] == "simulator"
    assert loaded.meta["ideal"]["vgg16"] == pytest.approx(ideal_throughput(source.platform, "vgg16"))
    for i in range(len(loaded)):
        workload, mapping = loaded.workload(i), loaded.mapping(i)
        mapping.validate(workload, source.components)
        truth = simulate(source.platform, workload, mapping).throughput
        labels = loaded.throughput[i, : len(workload)]
        assert labels == pytest.approx([truth[n] for n in workload.names], rel=1e-5)
        assert np.isnan(loaded.throughput[i, len(workload) :]).all()
        assert (loaded.models[i, len(workload) :] == -1).all()


def test_same_seed_same_samples_other_seed_other_samples(source: SimulatorLabels, tmp_path: Path) -> None:
    a = generate(source, 8, tmp_path / "a.npz", seed=5)
    b = generate(source, 8, tmp_path / "b.npz", seed=5)
    c = generate(source, 8, tmp_path / "c.npz", seed=6)
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()
    assert np.array_equal(a.assign, b.assign)
    assert not np.array_equal(a.assign, c.assign)
    # Sample i depends on (seed, i) only: a longer dataset starts with the shorter one.
    longer = generate(source, 10, tmp_path / "long.npz", seed=5)
    assert np.array_equal(longer.assign[:8], a.assign)


def test_mappings_per_workload_groups_samples(source: SimulatorLabels, tmp_path: Path) -> None:
    d = generate(source, 9, tmp_path / "g.npz", seed=1, mappings_per_workload=3)
    assert d.groups.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    for g in range(3):
        rows = d.models[3 * g : 3 * g + 3]
        assert (rows == rows[0]).all()
    assert len({d.mapping(i).to_json() for i in range(3)}) > 1


def ctrl_c_after(samples: int):
    """A progress hook that stops generation as Ctrl-C would, after `samples` samples."""

    def progress(indices: Iterator[int], total: int, done: int) -> Iterator[int]:
        for count, i in enumerate(indices):
            if count == samples:
                raise KeyboardInterrupt
            yield i

    return progress


def test_interrupted_generation_resumes_to_the_same_file(source: SimulatorLabels, tmp_path: Path) -> None:
    whole = tmp_path / "whole.npz"
    generate(source, 10, whole, seed=2, checkpoint_every=3)
    out = tmp_path / "resumed.npz"

    with pytest.raises(KeyboardInterrupt):
        generate(source, 10, out, seed=2, checkpoint_every=3, progress=ctrl_c_after(7))
    partial = tmp_path / "resumed.npz.partial.npz"
    assert partial.is_file() and len(Dataset.load(partial)) == 6
    started_at: list[int] = []

    def record(indices: Iterator[int], total: int, done: int) -> Iterator[int]:
        started_at.append(done)
        return indices

    generate(source, 10, out, seed=2, checkpoint_every=3, progress=record)
    assert started_at == [6]
    assert out.read_bytes() == whole.read_bytes()
    assert not partial.exists()


def test_a_partial_file_of_other_settings_is_named_not_thrown_away(source: SimulatorLabels, tmp_path: Path) -> None:
    # hours of labelling must not vanish because a rerun changed --seed; a smaller --samples
    # takes the partial file's first samples (sample i depends on the settings and i only)
    out = tmp_path / "d.npz"

    with pytest.raises(KeyboardInterrupt):
        generate(source, 10, out, seed=2, checkpoint_every=3, progress=ctrl_c_after(6))
    partial = tmp_path / "d.npz.partial.npz"
    before = partial.read_bytes()
    with pytest.raises(DatasetError, match=r"d\.npz\.partial\.npz holds 6 samples made with other settings \(seed\)"):
        generate(source, 10, out, seed=3)
    assert partial.read_bytes() == before
    fewer = generate(source, 4, out, seed=2)
    fresh = generate(source, 4, tmp_path / "fresh.npz", seed=2)
    assert np.array_equal(fewer.models, fresh.models)
    assert np.array_equal(fewer.throughput, fresh.throughput, equal_nan=True)  # NaN: no DNN in that slot
    assert partial.read_bytes() == before  # its two further samples stay for a larger run


def test_a_damaged_partial_or_another_measuring_window_is_refused_and_kept(
    source: SimulatorLabels, tmp_path: Path
) -> None:
    # a partial file of measured labels is hours of running mappings: never started over silently
    out = tmp_path / "d.npz"
    windowed = SimulatorLabels(source.platform)
    windowed.settings = {"seconds": 3.0, "warmup_s": 1.0}
    with pytest.raises(KeyboardInterrupt):
        generate(windowed, 10, out, seed=2, checkpoint_every=3, progress=ctrl_c_after(6))
    partial = tmp_path / "d.npz.partial.npz"
    before = partial.read_bytes()
    windowed.settings = {"seconds": 10.0, "warmup_s": 1.0}
    with pytest.raises(DatasetError, match=r"6 samples made with other settings \(label_settings\)"):
        generate(windowed, 10, out, seed=2)
    partial.write_bytes(before[: len(before) // 2])
    with pytest.raises(DatasetError, match=r"d\.npz\.partial\.npz is not a rankmap dataset.*delete it to start over"):
        generate(windowed, 10, out, seed=2)
    assert partial.read_bytes() == before[: len(before) // 2] and not out.exists()


def test_a_finished_dataset_of_the_same_settings_is_reused_only_when_asked(
    source: SimulatorLabels, tmp_path: Path
) -> None:
    # `estimator build` resumed after its data was made must not label 50,000 samples again
    out = tmp_path / "d.npz"
    generate(source, 6, out, seed=2)
    made = out.read_bytes()
    labelled: list[int] = []

    def record(indices: Iterator[int], total: int, done: int) -> Iterator[int]:
        for i in indices:
            labelled.append(i)
            yield i

    reused = generate(source, 6, out, seed=2, progress=record, reuse=True)
    assert labelled == [] and len(reused) == 6 and out.read_bytes() == made
    generate(source, 6, out, seed=3, progress=record, reuse=True)
    assert labelled == list(range(6))
    labelled.clear()
    generate(source, 4, out, seed=3, progress=record, reuse=True)
    assert labelled == list(range(4))
    labelled.clear()
    generate(source, 4, out, seed=3, progress=record)
    assert labelled == list(range(4))


def test_missing_corrupt_and_foreign_files_fail_clearly(source: SimulatorLabels, tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="does not exist"):
        Dataset.load(tmp_path / "nope.npz")
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip file at all")
    with pytest.raises(DatasetError, match="not a rankmap dataset"):
        Dataset.load(bad)
    good = tmp_path / "good.npz"
    generate(source, 3, good, seed=0)
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(good.read_bytes()[:200])
    with pytest.raises(DatasetError):
        Dataset.load(truncated)
    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, models=np.zeros((2, 5)), meta=np.frombuffer(b'{"format": "other"}', dtype=np.uint8))
    with pytest.raises(DatasetError):
        Dataset.load(foreign)
    with pytest.raises(DatasetError, match="samples must be positive"):
        generate(source, 0, tmp_path / "zero.npz")


def test_a_file_that_passes_for_a_dataset_but_is_not_one_fails_clearly(source: SimulatorLabels, tmp_path: Path) -> None:
    # every later use indexes with these: a bad one used to end in KeyError / IndexError far away
    good = tmp_path / "good.npz"
    generate(source, 3, good, seed=0)
    real = Dataset.load(good)
    bare = tmp_path / "bare.npy"
    np.save(bare, np.zeros(3))
    with pytest.raises(DatasetError, match=r"not an \.npz archive"):
        Dataset.load(bare)

    def saved(name: str, **change: object) -> Path:
        fields = {"models": real.models, "assign": real.assign, "throughput": real.throughput, "meta": real.meta}
        fields.update(change)
        path = tmp_path / name
        Dataset(**fields).save(path)  # type: ignore[arg-type]
        return path

    def labelled(value: float) -> np.ndarray:
        throughput = real.throughput.copy()
        throughput[0, 0] = value  # every sample has at least one DNN, in slot 0
        return throughput

    cases = {
        "meta.platform is missing": saved("a.npz", meta={k: v for k, v in real.meta.items() if k != "platform"}),
        "meta.model_names is not a list": saved("b.npz", meta={**real.meta, "model_names": "alexnet"}),
        "models holds indices outside": saved("c.npz", models=np.full_like(real.models, 99)),
        "assign holds indices outside": saved("d.npz", assign=np.full_like(real.assign, 7)),
        "must be integers": saved("e.npz", models=real.models.astype(np.float32)),
        "disagree in shape": saved("f.npz", assign=real.assign[:, :, 0]),
        # labels that trained to +-3.4e38 targets and evaluated to a NaN MAPE with exit 0
        "throughput labels are negative, NaN or infinite": saved("g.npz", throughput=labelled(np.nan)),
        "1 throughput labels are negative": saved("h.npz", throughput=labelled(-2.0)),
        "meta.max_units is missing": saved("i.npz", meta={k: v for k, v in real.meta.items() if k != "max_units"}),
        "meta.ideal lacks a positive rate": saved("j.npz", meta={**real.meta, "ideal": {"alexnet": 1.0}}),
    }
    for message, path in cases.items():
        with pytest.raises(DatasetError, match=message):
            Dataset.load(path)


def test_compatibility_check_names_the_mismatch(source: SimulatorLabels, tmp_path: Path) -> None:
    d = generate(source, 2, tmp_path / "d.npz", seed=0)
    d.check_compatible("orange_pi_5", platform_fingerprint(source.platform))
    with pytest.raises(DatasetError, match="not 'host'"):
        d.check_compatible("host")
    with pytest.raises(DatasetError, match="regenerate"):
        d.check_compatible("orange_pi_5", "0000000000000000")
