"""Pipelines under arbitrated policies (issue 7): preempted outputs, late drops, measurement, no leaks."""

from __future__ import annotations

import contextlib
import math
import os
import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest
import torch
from test_pipeline import alive

from rankmap_ros.core.mapping import DnnMapping, Mapping
from rankmap_ros.core.platform import Platform
from rankmap_ros.core.realtime import Policy
from rankmap_ros.core.workload import DnnSpec, Workload
from rankmap_ros.runtime import backends
from rankmap_ros.runtime.host import host_platform
from rankmap_ros.runtime.pipeline import Pipeline
from rankmap_ros.runtime.realtime import run_realtime
from rankmap_ros.runtime.shm import owned_entries
from rankmap_ros.runtime.stage import build_model, stage_specs

pytestmark = pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two usable CPUs for big/little")


@pytest.fixture(scope="module")
def platform() -> Platform:
    return host_platform("big:0,little:1", opencl_cpu_as_gpu=False)


def whole_model(model: str, x: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        return build_model(model)(torch.from_numpy(x)).numpy()


@contextlib.contextmanager
def camera(pipeline: Pipeline, dnn: str, frame: np.ndarray, period: float) -> Iterator[None]:
    """Submit `frame` to `dnn` every `period` seconds from a thread while the block runs."""
    stop = threading.Event()

    def feed() -> None:
        while not stop.is_set():
            pipeline.submit(dnn, frame)
            time.sleep(period)

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    try:
        yield
    finally:
        stop.set()
        feeder.join()


def test_a_stage_run_unit_by_unit_with_other_work_between_units_is_bit_identical(platform):
    workload = Workload.from_models(["squeezenet_v2", "shufflenet"])
    mapping = Mapping(
        (DnnMapping("squeezenet_v2", "squeezenet_v2", ("big",) * 18), *Mapping.all_on(workload, "big").dnns[1:])
    )
    specs = stage_specs(platform, workload, mapping, policy=Policy.EDF)
    spec, other = specs["squeezenet_v2"][0], specs["shufflenet"][0]
    whole, units, intruder = backends.prepare(spec), backends.prepare_units(spec), backends.prepare_units(other)
    assert len(units.steps) == 18
    x = np.random.default_rng(2).standard_normal(spec.input_shape).astype(np.float32)
    y = np.random.default_rng(3).standard_normal(other.input_shape).astype(np.float32)
    with torch.inference_mode():
        state = units.enter(x)
        for i, step in enumerate(units.steps):
            if i % 5 == 4:  # "preempted": another DNN's job runs here, then this one resumes
                intruder(y)
            state = step(state)
        got = units.leave(state)
    np.testing.assert_array_equal(got, whole(x))
    np.testing.assert_array_equal(units(x), whole(x))


@pytest.mark.parametrize("executor", ["stage", "component"])
def test_preempted_jobs_compute_what_the_whole_model_computes(platform, executor):
    # a best-effort MobileNet-V2 (20 units) shares the big core with a 50 Hz real-time SqueezeNet
    workload = Workload((DnnSpec("bg", "mobilenet_v2"), DnnSpec("det", "squeezenet_v2", period=0.02, deadline=0.5)))
    mapping = Mapping.all_on(workload, "big")
    rng = np.random.default_rng(11)
    with Pipeline(platform, workload, source="external", policy=Policy.EDF, executor=executor) as pipeline:
        pipeline.start(mapping)
        pids = [p for ps in pipeline.pids().values() for p in ps]
        assert len(set(pids)) == (1 if executor == "component" else 2), "a process per component or per stage"
        frame = rng.standard_normal((1, 3, 227, 227)).astype(np.float32)
        with camera(pipeline, "det", frame, 0.02):
            for _ in range(4):
                x = rng.standard_normal((1, 3, 224, 224)).astype(np.float32)
                got = pipeline.result("bg", pipeline.submit("bg", x).seq, timeout=60).array
                np.testing.assert_allclose(got, whole_model("mobilenet_v2", x), rtol=1e-4, atol=1e-5)
            y = pipeline.result("det", pipeline.submit("det", frame).seq, timeout=60).array
        np.testing.assert_allclose(y, whole_model("squeezenet_v2", frame), rtol=1e-4, atol=1e-5)
        counters = pipeline.realtime_counters()
    assert counters["bg"]["frames"] == 4
    assert counters["bg"]["preempted"] >= 1, "the real-time DNN never preempted the best-effort one"
    assert counters["det"]["preempted"] == 0 and counters["det"]["frames"] > 0
    assert alive(pids) == []
    assert owned_entries(os.getpid()) == []


def test_edf_measures_misses_drops_preemptions_and_leaves_nothing_behind(platform):
    workload = Workload(
        (
            DnnSpec("det", "squeezenet_v2", period=0.05, deadline=0.05),  # feasible: ~8 ms a job here
            DnnSpec("hopeless", "shufflenet", period=0.05, deadline=0.002),  # no job fits in 2 ms
            DnnSpec("bg", "mobilenet_v2"),
        )
    )
    half = DnnMapping("hopeless", "shufflenet", ("big",) * 9 + ("little",) * 9)
    mapping = Mapping((*Mapping.all_on(workload, "big").dnns[:1], half, Mapping.all_on(workload, "big").dnns[2]))
    with Pipeline(platform, workload, policy="edf") as pipeline:
        pipeline.start(mapping)
        result = pipeline.measure_realtime(2.0, warmup_s=0.5)
        pids = [p for ps in pipeline.pids().values() for p in ps]
        arbiters = pipeline.arbiter_stats()
        # one arbiter per component: big (3 stages) and little (1); each a segment and a semaphore per slot
        assert set(arbiters) == {"big", "little"}
        assert len(owned_entries(os.getpid())) == 1 + 4 * 7 + (1 + 3) + (1 + 1)
    assert alive(pids) == []
    assert owned_entries(os.getpid()) == []
    assert result.policy == "edf" and not result.simulated

    det, hopeless, bg = (result.dnn(n) for n in ("det", "hopeless", "bg"))
    assert 30 <= det.released <= 45, "one input per 50 ms period"
    assert det.completed >= det.released * 0.8
    assert det.latency_p95_s < 0.05 or det.missed > 0
    # every job of the hopeless DNN is dropped as late by its first stage, none forwarded
    assert 30 <= hopeless.released <= 45
    assert hopeless.completed == 0 and hopeless.missed == hopeless.released
    assert hopeless.dropped >= hopeless.released - 2
    assert hopeless.miss_rate == 1.0
    # the best-effort DNN saturates, gives the core away at unit boundaries, never misses
    assert not bg.realtime and bg.throughput > 5 and bg.missed == 0 and bg.dropped == 0
    assert bg.preempted > 0
    assert result.decisions > 0 and 0 < result.overhead_s_per_decision < math.inf
    assert result.utilisation["big"] > 0.5
    # compute time per DNN: the best-effort one ran most of the window on big, the dropped none
    assert 0.3 * 2.0 < bg.busy_s < 2.0 and hopeless.busy_s < 0.05 and det.busy_s > 0
    # what resuming cost (units after a preemption against their usual time) is a small part of it
    assert all(abs(d.resume_extra_s) < 0.2 * d.busy_s for d in (bg, det))


def test_without_drop_late_a_late_job_completes_and_counts_as_missed(platform):
    workload = Workload((DnnSpec("hopeless", "squeezenet_v2", period=0.05, deadline=0.002),))
    result = run_realtime(
        platform, workload, Mapping.all_on(workload, "big"), Policy.NP_EDF, 1.0, warmup_s=0.3, drop_late=False
    )
    (d,) = result.dnns
    assert d.released >= 10
    assert d.dropped == 0 and d.completed >= d.released - 1
    assert d.missed == d.released
    assert d.latency_p50_s > 0.002
    assert owned_entries(os.getpid()) == []


def test_time_sharing_runs_without_arbiters(platform):
    workload = Workload((DnnSpec("det", "squeezenet_v2", period=0.05),))
    with Pipeline(platform, workload) as pipeline:
        pipeline.start(Mapping.all_on(workload, "big"))
        assert pipeline.arbiter_stats() == {}
        assert len(owned_entries(os.getpid())) == 1 + 4 * 2  # board and two channels, as before
        result = pipeline.measure_realtime(1.0, warmup_s=0.3)
    (d,) = result.dnns
    assert result.policy == "time_sharing" and result.decisions == 0 and result.overhead_s_per_decision == 0
    assert 15 <= d.released <= 25 and d.completed >= d.released - 1
    assert owned_entries(os.getpid()) == []


def test_a_stale_estimate_lets_a_probe_job_run_through_and_then_recovers():
    # Units timed while another stage was being built on the same core: 3 x 12 ms, against a
    # 30 ms deadline, so every job looks too late at its first unit. While that estimate is
    # fresh it is trusted; once stale, after PROBE_AFTER such drops one job must run to the end
    # (not be dropped again at its unit checks), so its real 3 x 4 ms get timed, and the next
    # jobs are not dropped any more.
    from rankmap_ros.core.realtime import TaskClass
    from rankmap_ros.runtime.worker import PROBE_AFTER, PROBE_STALE_S, WorkEstimate

    task = TaskClass(period=0.066, deadline=0.03)
    estimate = WorkEstimate(3)
    for unit in range(3):
        estimate.record(unit, 0.012)
    fresh = time.monotonic()
    assert all(estimate.drop(task, fresh + k * 0.066, fresh + k * 0.066 + 0.002, 0) for k in range(PROBE_AFTER + 3))
    base = time.monotonic() + PROBE_STALE_S + 1.0  # releases once nothing has been timed for long
    released = [base + k * 0.066 for k in range(4)]
    probe = released[0]  # the streak of drops is long already: the first stale job is let through
    assert not estimate.drop(task, probe, probe + 0.002, 0)
    for unit in range(3):  # the probe's unit checks: still "too late" by the stale estimate
        assert not estimate.drop(task, probe, probe + 0.002 + unit * 0.004, unit)
        estimate.record(unit, 0.004)
    for r in released[1:]:
        assert not estimate.drop(task, r, r + 0.002, 0)
    assert estimate.drop(task, probe, probe + 0.031, 2), "a probe that is really late is still dropped"


def test_overheads_skip_rounds_where_a_dnn_completed_nothing() -> None:
    """A starved best-effort DNN (a period too short for the host) measured a service time of 0:
    its round has no ratio, instead of a ZeroDivisionError after the whole benchmark."""
    from rankmap_ros.runtime.realtime import _paired

    runs = [{"service_time_s": 0.012}, {"service_time_s": 0.0}, {"service_time_s": 0.011}]
    base = [{"service_time_s": 0.010}, {"service_time_s": 0.010}, {"service_time_s": 0.0}]
    assert _paired(runs, base) == pytest.approx(0.2)
    assert math.isnan(_paired(runs[1:2], base[1:2]))
