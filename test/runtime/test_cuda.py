"""The CUDA backend (issues 5 and 7): discovery, pipelined outputs, stream priorities, preemption.

Skipped where torch sees no CUDA device, as on CI; run on a GPU machine with
`python -m pytest test/runtime/test_cuda.py`.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from test_handover import run_handover
from test_pipeline import alive, split, whole_model
from test_rt_pipeline import camera

from rankmap_ros.core.mapping import Mapping
from rankmap_ros.core.platform import Platform
from rankmap_ros.core.realtime import Policy
from rankmap_ros.core.workload import DnnSpec, Workload
from rankmap_ros.runtime import backends
from rankmap_ros.runtime.host import host_platform
from rankmap_ros.runtime.pipeline import Pipeline
from rankmap_ros.runtime.shm import owned_entries
from rankmap_ros.runtime.stage import stage_specs

pytestmark = [
    pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device"),
    pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two usable CPUs for big/little"),
]

# cuDNN may run float32 convolutions in TF32 (10-bit mantissa); outputs are compared relative to their scale.
CUDA_TOLERANCE = 2e-2


@pytest.fixture(scope="module")
def platform() -> Platform:
    return host_platform("big:0,little:1", opencl_cpu_as_gpu=False)


def relative_error(got: np.ndarray, want: np.ndarray) -> float:
    return float(np.abs(got - want).max() / max(np.abs(want).max(), 1e-12))


def test_the_discovered_host_lists_the_cuda_device(platform):
    cuda = platform.component("cuda")
    assert (cuda.kind, cuda.backend, cuda.device) == ("gpu", "cuda", "cuda:0")
    assert cuda.cores == torch.cuda.get_device_properties(0).multi_processor_count


def test_dnns_pipelined_across_cpu_and_cuda_compute_what_the_whole_model_computes(platform):
    workload = Workload.from_models(["squeezenet_v2", "shufflenet"])
    mapping = Mapping(
        (
            split("squeezenet_v2", [(7, "big"), (6, "cuda"), (5, "little")]),
            split("shufflenet", [(18, "cuda")]),
        )
    )
    rng = np.random.default_rng(7)
    with Pipeline(platform, workload, source="external") as pipeline:
        pipeline.start(mapping)
        for name, shape in (("squeezenet_v2", (1, 3, 227, 227)), ("shufflenet", (1, 3, 224, 224))):
            for _ in range(3):
                x = rng.standard_normal(shape).astype(np.float32)
                got = pipeline.result(name, pipeline.submit(name, x).seq, timeout=120).array
                error = relative_error(got, whole_model(name, x))
                assert error < CUDA_TOLERANCE, f"{name}: CUDA output differs from the CPU model by {error:.2e}"
        assert not pipeline.failures
        pids = [p for ps in pipeline.pids().values() for p in ps]
    assert alive(pids) == []
    assert owned_entries(os.getpid()) == []


def test_dnns_sharing_the_gpu_are_measured(platform):
    workload = Workload.from_models(["squeezenet_v2", "shufflenet", "mobilenet_v2"])
    with Pipeline(platform, workload) as pipeline:
        pipeline.start(Mapping.all_on(workload, "cuda"))
        report = pipeline.measure(1.5, warmup_s=0.5)
    assert not report.failures
    assert all(report.throughput[n] > 0 for n in workload.names)
    assert report.utilisation["cuda"] > 0
    assert owned_entries(os.getpid()) == []


class StreamProbe(torch.nn.Module):
    """A one-unit stage that records the CUDA stream it runs on."""

    def __init__(self) -> None:
        super().__init__()
        self.priorities: list[int] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.priorities.append(torch.cuda.current_stream().priority)
        return x * 2


@pytest.mark.parametrize("policy", [Policy.EDF, Policy.TIME_SHARING])
def test_urgent_stages_run_on_the_high_priority_stream(platform, policy):
    # under edf the task class decides (real-time high), under time-sharing the priority (above 1 high)
    workload = Workload(
        (
            DnnSpec("det", "squeezenet_v2", period=0.05, deadline=0.05, priority=2.0),
            DnnSpec("bg", "shufflenet", priority=0.5),
        )
    )
    specs = stage_specs(platform, workload, Mapping.all_on(workload, "cuda"), policy=policy)
    x = np.ones((1, 4), dtype=np.float32)
    seen = {}
    for name in ("det", "bg"):
        (spec,) = specs[name]
        for prepare in (backends.prepare, backends.prepare_units):
            probe = StreamProbe()
            np.testing.assert_array_equal(prepare(spec, module=probe)(x), 2 * x)
            seen[name, prepare.__name__] = probe.priorities[0]
    high, low = torch.cuda.Stream(priority=-1).priority, torch.cuda.Stream(priority=0).priority
    assert high < low, "this device has no stream priorities"
    assert seen == {
        ("det", "prepare"): high,
        ("det", "prepare_units"): high,
        ("bg", "prepare"): low,
        ("bg", "prepare_units"): low,
    }


def test_preempted_cuda_jobs_compute_what_the_whole_model_computes(platform):
    workload = Workload((DnnSpec("bg", "mobilenet_v2"), DnnSpec("det", "squeezenet_v2", period=0.005, deadline=0.5)))
    rng = np.random.default_rng(13)
    frame = rng.standard_normal((1, 3, 227, 227)).astype(np.float32)
    with Pipeline(platform, workload, source="external", policy=Policy.EDF) as pipeline:
        pipeline.start(Mapping.all_on(workload, "cuda"))
        with camera(pipeline, "det", frame, 0.005):
            for _ in range(20):
                x = rng.standard_normal((1, 3, 224, 224)).astype(np.float32)
                got = pipeline.result("bg", pipeline.submit("bg", x).seq, timeout=120).array
                error = relative_error(got, whole_model("mobilenet_v2", x))
                assert error < CUDA_TOLERANCE, f"preempted CUDA job differs from the CPU model by {error:.2e}"
        counters = pipeline.realtime_counters()
        pids = [p for ps in pipeline.pids().values() for p in ps]
    assert counters["bg"]["frames"] == 20 and counters["det"]["frames"] > 0
    assert alive(pids) == []
    assert owned_entries(os.getpid()) == []


def test_handover_benchmark_runs_both_models_on_the_gpu():
    """`bench handover --device cuda`: the same three ways and the one-thread pair, on the GPU."""
    data = run_handover("--device", "cuda", "--rounds", "1", "--period", "0.005", "--seconds", "0.5")
    assert data["device"] == "cuda:0" and data["one_thread_pair"]["device"] == "cuda:0"
    assert 0 < data["job_s"] < 1
    assert set(data["ways"]) == {"same_thread", "other_thread", "other_process"}
    assert data["one_thread_pair"]["preemptions_per_job"] > 0


def test_gpu_units_are_profiled_on_the_device(platform):
    """Units timed with their input on the GPU, the chain as one whole-model stage (profiler)."""
    from rankmap_ros.runtime.profiler import profile_components

    measured = profile_components(platform, ["cuda"], ["squeezenet_v2"], passes=1)["cuda"]
    times = measured.times["squeezenet_v2"]
    assert measured.errors == {} and all(t is not None and 0 < t < 0.1 for t in times)
    # one whole-model stage: copies in and out once, no host round trip between units
    assert 0 < measured.chains["squeezenet_v2"] < 3 * sum(times)
