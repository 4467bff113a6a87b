"""Pipelines of real stage processes on this host: outputs, OpenCL, failures, refusals, leaks, signals."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from rankmap_ros.core.mapping import DnnMapping, Mapping, MappingError
from rankmap_ros.core.platform import Platform, parse_platform
from rankmap_ros.core.workload import Workload
from rankmap_ros.runtime import backends
from rankmap_ros.runtime.discover import cpu_clusters, parse_core_split
from rankmap_ros.runtime.host import host_platform
from rankmap_ros.runtime.pipeline import Pipeline, PipelineError
from rankmap_ros.runtime.shm import owned_entries, remove_stale
from rankmap_ros.runtime.stage import build_model

pytestmark = pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two usable CPUs for big/little")
HAS_OPENCL = backends.backend_status()["opencl"].available


@pytest.fixture(scope="module")
def platform() -> Platform:
    return host_platform("big:0,little:1", opencl_cpu_as_gpu=True)


def descendants(pid: int) -> set[int]:
    """Every process below `pid`, by walking /proc (the stage processes sit under a fork server)."""
    parent: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    found, frontier = set(), {pid}
    while frontier:
        frontier = {p for p, pp in parent.items() if pp in frontier} - found
        found |= frontier
    return found


def fail_process_starts(monkeypatch, after: int) -> list[int]:
    """Let the pipeline start `after` processes, then make process.start() raise (the pids of those started).

    As a script without the `if __name__ == "__main__"` guard, or a Ctrl-C during a start, does.
    """
    from rankmap_ros.runtime import pipeline as pipeline_module

    started: list[int] = []
    real_context = pipeline_module._context

    class Failing:
        def __init__(self, process) -> None:
            self.process = process

        def __getattr__(self, name: str):
            return getattr(self.process, name)

        def start(self) -> None:
            if len(started) >= after:
                raise RuntimeError("cannot start the process")
            self.process.start()
            started.append(self.process.pid)

    class Context:
        def __init__(self) -> None:
            self.ctx = real_context()

        def Process(self, **kwargs):  # noqa: N802 - multiprocessing's name
            return Failing(self.ctx.Process(**kwargs))

    monkeypatch.setattr(pipeline_module, "_context", Context)
    return started


def alive(pids) -> list[int]:
    out = []
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            out.append(pid)
    return out


def split(model: str, parts: list[tuple[int, str]]) -> DnnMapping:
    """A DNN mapping from (units, component) runs."""
    return DnnMapping(model, model, tuple(c for n, c in parts for _ in range(n)))


def whole_model(model: str, x: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        return build_model(model)(torch.from_numpy(x)).numpy()


@pytest.mark.parametrize(("policy", "executor"), [("time_sharing", "stage"), ("edf", "component")])
def test_pipelined_dnns_compute_what_the_whole_model_computes(platform, policy, executor):
    workload = Workload.from_models(["squeezenet_v2", "shufflenet"])
    squeeze = split("squeezenet_v2", [(7, "big"), (11, "little")])
    mapping = Mapping((squeeze, split("shufflenet", [(5, "little"), (6, "big"), (7, "little")])))
    rng = np.random.default_rng(3)
    with Pipeline(platform, workload, source="external", policy=policy, executor=executor) as pipeline:
        pipeline.start(mapping)
        # under the component executor little's process hosts three stages of two DNNs
        assert len({p for ps in pipeline.pids().values() for p in ps}) == (2 if executor == "component" else 5)
        for name, shape in (("squeezenet_v2", (1, 3, 227, 227)), ("shufflenet", (1, 3, 224, 224))):
            for _ in range(2):
                x = rng.standard_normal(shape).astype(np.float32)
                header = pipeline.submit(name, x)
                got = pipeline.result(name, header.seq, timeout=60)
                assert got.header.seq == header.seq and got.header.stamp_ns == header.stamp_ns
                np.testing.assert_allclose(got.array, whole_model(name, x), rtol=1e-4, atol=1e-5)
        report = pipeline.measure(0.5, warmup_s=0)
    assert {d.name for d in report.dnns} == {"squeezenet_v2", "shufflenet"}
    assert not report.failures
    assert owned_entries(os.getpid()) == []


@pytest.mark.skipif(not HAS_OPENCL, reason="no OpenCL device (install pyopencl + pocl-binary-distribution)")
def test_opencl_stage_matches_torch(platform):
    assert platform.component("gpu").backend == "opencl"
    workload = Workload.from_models(["squeezenet_v2"])
    mapping = Mapping((split("squeezenet_v2", [(10, "big"), (6, "gpu"), (2, "little")]),))
    x = np.random.default_rng(5).standard_normal((1, 3, 227, 227)).astype(np.float32)
    with Pipeline(platform, workload, source="external") as pipeline:
        pipeline.start(mapping)
        got = pipeline.result("squeezenet_v2", pipeline.submit("squeezenet_v2", x).seq, timeout=120).array
    ref = whole_model("squeezenet_v2", x)
    assert np.abs(got - ref).max() <= 1e-3 * np.abs(ref).max()


def test_check_close_refuses_a_wrong_backend_output():
    ref = np.ones((1, 10), np.float32)
    assert backends.check_close(ref + 1e-6, ref, "s") < 1e-5
    with pytest.raises(backends.BackendError, match="differs from torch"):
        backends.check_close(ref * 1.1, ref, "s")


def test_a_killed_stage_is_detected_reported_and_restarted(platform):
    workload = Workload.from_models(["squeezenet_v2"])
    mapping = Mapping((split("squeezenet_v2", [(9, "big"), (9, "little")]),))
    seen = []
    with Pipeline(platform, workload, on_failure=seen.append) as pipeline:
        pipeline.start(mapping)
        victim = pipeline.pids()["squeezenet_v2"][1]
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while not pipeline.failures and time.monotonic() < deadline:
            time.sleep(0.05)
        (failure,) = pipeline.failures
        assert (failure.dnn, failure.stage, failure.component, failure.pid) == ("squeezenet_v2", 1, "little", victim)
        assert "SIGKILL" in failure.reason
        assert seen == [failure]
        pipeline.restart_dnn("squeezenet_v2")
        report = pipeline.measure(1.0, warmup_s=0.5)
        assert report.throughput["squeezenet_v2"] > 0
        assert not report.failures
        # a stage's CPU per frame: spent, and within its wall-clock service time on its one core
        for stage in report.dnns[0].stages:
            assert 0 < stage.compute_cpu_s <= 1.05 * stage.service_time_s + 5e-4
    assert alive([victim]) == []
    assert owned_entries(os.getpid()) == []


def test_bad_mappings_are_refused_before_anything_starts(platform):
    workload = Workload.from_models(["squeezenet_v2"])
    pipeline = Pipeline(platform, workload)
    before = descendants(os.getpid())
    with pytest.raises(MappingError, match="unknown component 'npu'"):
        pipeline.start(Mapping.all_on(workload, "npu"))
    with pytest.raises(MappingError, match="has 18 units, the mapping assigns 20"):
        pipeline.start(Mapping((DnnMapping("squeezenet_v2", "squeezenet_v2", ("big",) * 20),)))
    if not torch.cuda.is_available():
        cuda_host = parse_platform(
            {**platform.to_dict(), "components": [*platform.to_dict()["components"], _cuda_component()]}
        )
        with pytest.raises(backends.BackendError, match="'cuda' is not available"):
            Pipeline(cuda_host, workload).start(Mapping.all_on(workload, "cuda"))
    assert not pipeline.running
    assert descendants(os.getpid()) <= before
    assert owned_entries(os.getpid()) == []


def _cuda_component() -> dict:
    return {
        "name": "cuda",
        "kind": "gpu",
        "backend": "cuda",
        "cores": 1,
        "frequency_ghz": 1.5,
        "gflops": {"conv": 1000, "dwconv": 100, "fc": 100, "other": 10},
        "memory_bandwidth_gbs": 500,
        "kernel_overhead_us": 10,
        "sharing": "round_robin",
        "timeslice_us": 1000,
        "concurrency_loss": 0.1,
        "device": "cuda:0",
    }


def test_a_stage_that_cannot_start_fails_the_start_cleanly(platform, tmp_path):
    workload = Workload.from_models(["squeezenet_v2"])
    missing = str(tmp_path / "missing.pt")
    pipeline = Pipeline(platform, workload, weights={"squeezenet_v2": missing})
    with pytest.raises(PipelineError, match=r"failed to start: ZooError: weights file .* does not exist"):
        pipeline.start(Mapping.all_on(workload, "big"))
    assert not pipeline.running
    assert owned_entries(os.getpid()) == []


def test_a_chain_that_fails_half_way_through_its_start_leaves_nothing(platform, monkeypatch):
    workload = Workload.from_models(["squeezenet_v2"])
    started = fail_process_starts(monkeypatch, after=1)
    pipeline = Pipeline(platform, workload)
    with pytest.raises(RuntimeError, match="cannot start the process"):
        pipeline.start(Mapping((split("squeezenet_v2", [(9, "big"), (9, "little")]),)))
    assert len(started) == 1 and alive(started) == []
    assert owned_entries(os.getpid()) == [] and not pipeline.running


def test_a_restart_that_fails_leaves_the_others_serving_and_the_pipeline_stoppable(platform, monkeypatch):
    workload = Workload.from_models(["squeezenet_v2", "shufflenet"])
    mapping = Mapping((split("squeezenet_v2", [(9, "big"), (9, "little")]), split("shufflenet", [(18, "little")])))
    pipeline = Pipeline(platform, workload)
    pipeline.start(mapping)
    before = [p for ps in pipeline.pids().values() for p in ps]
    started = fail_process_starts(monkeypatch, after=1)
    with pytest.raises(RuntimeError, match="cannot start the process"):
        pipeline.restart_dnn("squeezenet_v2")
    assert pipeline.running and alive(pipeline.pids()["shufflenet"])
    assert pipeline.measure(1.0, warmup_s=0.3).throughput["shufflenet"] > 0
    pipeline.stop()
    assert alive(before + started) == [] and owned_entries(os.getpid()) == []
    assert not pipeline.running


def test_repeated_replacement_leaks_nothing(platform):
    workload = Workload.from_models(["squeezenet_v2", "shufflenet"])
    a = Mapping.all_on(workload, "big")
    b = Mapping((split("squeezenet_v2", [(9, "big"), (9, "little")]), split("shufflenet", [(18, "little")])))
    started: set[int] = set()
    with Pipeline(platform, workload) as pipeline:
        pipeline.start(a)
        for i in range(6):
            started |= {p for pids in pipeline.pids().values() for p in pids}
            pipeline.replace(b if i % 2 == 0 else a)
            # board + 4 entries per channel (segment, 3 semaphores); a has 4 channels, b has 5
            assert len(owned_entries(os.getpid())) == 1 + 4 * (5 if i % 2 == 0 else 4)
        started |= {p for pids in pipeline.pids().values() for p in pids}
        assert pipeline.measure(0.5, warmup_s=0.2).throughput["shufflenet"] > 0
        with pytest.raises(MappingError):
            pipeline.replace(Mapping.all_on(workload, "npu"))
        assert pipeline.running, "a refused replacement leaves the old mapping running"
    assert alive(started) == []
    assert owned_entries(os.getpid()) == []


RUN = [sys.executable, "-m", "rankmap_ros", "run", "--workload", "squeezenet_v2,shufflenet"]
RUN += ["--split", "big:0,little:1"]


def _start_run(mapping: str) -> tuple[subprocess.Popen, set[int]]:
    """A `rankmap run` in the background, once its fork server and stage processes are up."""
    proc = subprocess.Popen([*RUN, "--mapping", mapping, "--seconds", "60"], stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while len(descendants(proc.pid)) < 3 or not owned_entries(proc.pid):
        assert proc.poll() is None and time.monotonic() < deadline, "rankmap run did not start its stages"
        time.sleep(0.2)
    time.sleep(1.0)
    return proc, descendants(proc.pid)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_the_run_command_leaves_no_orphans_when_signalled(sig):
    proc, children = _start_run("all-big")
    assert len(children) >= 3, "fork server and two stage processes"
    os.kill(proc.pid, sig)
    proc.wait(timeout=30)
    deadline = time.monotonic() + 10
    while alive(children) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert alive(children) == []
    if sig == signal.SIGTERM:
        assert proc.returncode == 128 + signal.SIGTERM
    else:  # the owner could not clean up; the next pipeline on this host removes what it left
        remove_stale()
    assert owned_entries(proc.pid) == []


def test_a_signal_while_the_pipeline_stops_waits_for_the_stop():
    # Ctrl-C at the end of `rankmap run`, or SIGTERM then SIGINT from a launcher: a second signal
    # cut the first one's cleanup short and left shared memory behind; now the stop runs to its
    # end and the program still ends with the first signal's status
    from rankmap_ros.runtime.pipeline import stop_on_signals

    class Stopping:
        stopping = False
        finished = False

        def __enter__(self):
            return self

        def __exit__(self, *exc: object) -> None:
            self.stopping = True
            os.kill(os.getpid(), signal.SIGTERM)  # the handler runs before kill returns
            self.finished = True
            self.stopping = False

    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    during_stop = Stopping()
    with pytest.raises(SystemExit) as ended, stop_on_signals(during_stop), during_stop:
        pass
    assert during_stop.finished and ended.value.code == 128 + signal.SIGTERM

    in_the_block = Stopping()
    with pytest.raises(SystemExit) as ended, stop_on_signals(in_the_block), in_the_block:
        os.kill(os.getpid(), signal.SIGINT)
        pytest.fail("the first signal ends the block")
    assert in_the_block.finished and ended.value.code == 128 + signal.SIGINT
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before


def test_a_stage_whose_job_raises_reports_its_error_not_an_exit_code(platform, monkeypatch):
    """A stage that fails mid-run (CUDA out of memory) leaves its error on the board for the owner."""
    import multiprocessing as mp

    from rankmap_ros.core.workload import DnnSpec
    from rankmap_ros.runtime.board import Board, StageState
    from rankmap_ros.runtime.channel import Channel, FrameHeader
    from rankmap_ros.runtime.stage import stage_specs
    from rankmap_ros.runtime.worker import EXIT_FAILED, StageWiring, stage_main

    workload = Workload((DnnSpec("a", "squeezenet_v2"),))
    (spec,) = stage_specs(platform, workload, Mapping.all_on(workload, "big"))["a"]
    calls = []

    def prepare(_spec):
        def run(x):
            calls.append(1)
            if len(calls) > 2:  # after the two warm-up runs
                raise RuntimeError("CUDA out of memory")
            return np.zeros(_spec.output_shape, np.float32)

        return run

    monkeypatch.setattr(backends, "prepare", prepare)  # inherited by the forked stage
    board = Board.create(1)
    source = Channel.create("in", 2, int(np.prod(spec.input_shape)) * 4, "block")
    sink = Channel.create("out", 2, int(np.prod(spec.output_shape)) * 4, "block")
    try:
        wiring = StageWiring(source.name, sink.name, board.name, 0, os.getpid())
        process = mp.get_context("fork").Process(target=stage_main, args=(spec, wiring))
        process.start()
        source.put(np.zeros(spec.input_shape, np.float32), FrameHeader(0, 0))
        process.join(timeout=60)
        assert process.exitcode == EXIT_FAILED
        assert board.state(0) == StageState.FAILED and board.error(0).startswith("RuntimeError: CUDA out of memory")
    finally:
        for segment in (source, sink):
            segment.detach()
            segment.unlink()
        board.detach()
        board.unlink()


def test_cpus_kept_out_of_the_affinity_but_pinnable_are_usable(platform):
    """A robot that isolates cores (isolcpus, taskset) starts its nodes without them in their
    affinity; a stage pins itself to them all the same, so a mapping on them is not refused."""
    workload = Workload.from_models(["squeezenet_v2"])
    pipeline = Pipeline(platform, workload)
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, set(platform.component("big").cpus))  # this thread only, as taskset would
    try:
        assert pipeline.check(Mapping.all_on(workload, "little"))["squeezenet_v2"][0].component == "little"
        little = ",".join(map(str, platform.component("little").cpus))
        assert [c.name for c in parse_core_split(f"little:{little}")] == ["little"]  # `--split` too
        assert [c.name for c in cpu_clusters(f"little:{little}")[0]] == ["little"]  # as discovery reads it
    finally:
        os.sched_setaffinity(0, before)
    components = [{**c, "cpus": [4096]} if c["name"] == "little" else c for c in platform.to_dict()["components"]]
    absent = parse_platform({**platform.to_dict(), "components": components})
    with pytest.raises(backends.BackendError, match=r"pinned to CPUs \[4096\]: this machine has no CPU 4096"):
        Pipeline(absent, workload).check(Mapping.all_on(workload, "little"))
