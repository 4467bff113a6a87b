"""The component executor (issue 7): one process and one thread per component runs all its stages."""

from __future__ import annotations

import contextlib
import math
import os
import signal
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from test_pipeline import alive, fail_process_starts

from rankmap_ros.core.mapping import DnnMapping, Mapping
from rankmap_ros.core.platform import Platform
from rankmap_ros.core.realtime import Policy
from rankmap_ros.core.workload import DnnSpec, Workload
from rankmap_ros.runtime.host import host_platform
from rankmap_ros.runtime.pipeline import Pipeline, PipelineError
from rankmap_ros.runtime.shm import owned_entries

pytestmark = pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two usable CPUs for big/little")


@pytest.fixture(scope="module")
def platform() -> Platform:
    return host_platform("big:0,little:1", opencl_cpu_as_gpu=False)


def halves(name: str, model: str, units: int) -> DnnMapping:
    return DnnMapping(name, model, ("big",) * (units // 2) + ("little",) * (units - units // 2))


def test_a_real_time_job_does_not_wait_for_a_long_best_effort_job(platform):
    # ResNet-50 runs tens of ms per job on one core; SqueezeNet-V2's jobs start at the next unit
    # boundary under edf, while under np_edf they wait for the ResNet-50 job in progress
    workload = Workload((DnnSpec("bg", "resnet50"), DnnSpec("det", "squeezenet_v2", period=0.05, deadline=1.0)))
    mapping = Mapping.all_on(workload, "big")
    results = {}
    for policy in (Policy.EDF, Policy.NP_EDF):
        with Pipeline(platform, workload, policy=policy, executor="component") as pipeline:
            pipeline.start(mapping)
            results[policy] = pipeline.measure_realtime(3.0, warmup_s=0.5)
    edf, np_edf = results[Policy.EDF], results[Policy.NP_EDF]
    det, bg = edf.dnn("det"), edf.dnn("bg")
    bg_job_s = bg.busy_s / max(bg.completed, 1)
    det_job_s = det.busy_s / max(det.completed, 1)
    assert det.missed == 0 and bg.preempted > 0 and np_edf.dnn("bg").preempted == 0
    # under edf det waits at most one ResNet-50 unit, far less than a ResNet-50 job
    assert det.latency_p95_s < det_job_s + 0.5 * bg_job_s
    assert det.latency_p95_s < np_edf.dnn("det").latency_p95_s
    assert edf.decisions > 0 and 0 < edf.overhead_s_per_decision < math.inf


def test_fifo_takes_jobs_in_the_order_they_reach_the_component(platform):
    # the saturating best-effort DNN's next frames wait in its channel during each of its jobs;
    # they reach the component only when the stage is free again, after a real-time job that
    # arrived meanwhile, which therefore waits for the one best-effort job in progress at most
    workload = Workload((DnnSpec("bg", "resnet50"), DnnSpec("det", "squeezenet_v2", period=0.1, deadline=1.0)))
    with Pipeline(platform, workload, policy=Policy.FIFO, executor="component") as pipeline:
        pipeline.start(Mapping.all_on(workload, "big"))
        result = pipeline.measure_realtime(2.5, warmup_s=0.5)
    det, bg = result.dnn("det"), result.dnn("bg")
    assert det.released >= 15 and det.completed >= det.released - 1 and bg.completed > 5
    bg_job_s, det_job_s = bg.busy_s / bg.completed, det.busy_s / det.completed
    assert det.latency_p95_s < det_job_s + 1.5 * bg_job_s
    assert det.preempted == bg.preempted == 0


def test_misses_drops_and_decisions_are_measured_and_nothing_is_left_behind(platform):
    workload = Workload(
        (
            DnnSpec("det", "squeezenet_v2", period=0.05, deadline=0.05),
            DnnSpec("hopeless", "shufflenet", period=0.05, deadline=0.002),  # no job fits in 2 ms
            DnnSpec("bg", "mobilenet_v2"),
        )
    )
    mapping = Mapping(
        (
            *Mapping.all_on(workload, "big").dnns[:1],
            halves("hopeless", "shufflenet", 18),
            *Mapping.all_on(workload, "big").dnns[2:],
        )
    )
    with Pipeline(platform, workload, policy="edf", executor="component") as pipeline:
        pipeline.start(mapping)
        result = pipeline.measure_realtime(2.0, warmup_s=0.5)
        pids = {p for ps in pipeline.pids().values() for p in ps}
        stats = pipeline.arbiter_stats()
        # no arbiter segments: the board, 7 channels (a segment and 3 semaphores each), 2 doorbells
        assert len(owned_entries(os.getpid())) == 1 + 4 * 7 + 2
    assert len(pids) == 2 and alive(pids) == []
    assert owned_entries(os.getpid()) == []
    assert set(stats) == {"big", "little"} and stats["big"].decisions > 0 and stats["big"].checks > 0
    det, hopeless, bg = (result.dnn(n) for n in ("det", "hopeless", "bg"))
    assert 30 <= det.released <= 45 and det.completed >= det.released * 0.8
    assert hopeless.completed == 0 and hopeless.miss_rate == 1.0
    assert hopeless.dropped >= hopeless.released - 2
    assert bg.throughput > 5 and bg.missed == 0 and bg.dropped == 0 and bg.preempted > 0
    assert result.decisions > 0 and 0 < result.overhead_s_per_decision < math.inf
    assert result.utilisation["big"] > 0.3  # 0.48 seen in a full run on a busy shared host; idle: ~0


def test_a_killed_component_process_fails_every_stage_on_it_and_restart_brings_them_back(platform):
    workload = Workload.from_models(["squeezenet_v2", "shufflenet"])
    mapping = Mapping((halves("squeezenet_v2", "squeezenet_v2", 18), *Mapping.all_on(workload, "little").dnns[1:]))
    with Pipeline(platform, workload, policy="fifo", executor="component") as pipeline:
        pipeline.start(mapping)
        victim = pipeline.pids()["shufflenet"][0]
        assert pipeline.pids()["squeezenet_v2"][1] == victim
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while len(pipeline.failures) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        failed = {(f.dnn, f.stage, f.component) for f in pipeline.failures}
        assert failed == {("squeezenet_v2", 1, "little"), ("shufflenet", 0, "little")}
        assert all("SIGKILL" in f.reason for f in pipeline.failures)
        pipeline.restart_dnn("shufflenet")
        assert victim not in {p for ps in pipeline.pids().values() for p in ps}
        report = pipeline.measure(1.0, warmup_s=0.5)
        assert min(report.throughput.values()) > 0 and not report.failures
    assert alive([victim]) == []
    assert owned_entries(os.getpid()) == []


def test_the_component_executor_refuses_time_sharing_and_unknown_executors(platform):
    workload = Workload.from_models(["squeezenet_v2"])
    with pytest.raises(PipelineError, match="arbitrated policy"):
        Pipeline(platform, workload, executor="component")
    with pytest.raises(PipelineError, match="unknown executor"):
        Pipeline(platform, workload, policy="edf", executor="thread")  # type: ignore[arg-type]


def test_preemption_cost_compares_the_executors_side_by_side(platform):
    from rankmap_ros.runtime.realtime import preemption_cost

    costs = preemption_cost(
        platform, "mobilenet_v2", "squeezenet_v2", period=0.02, seconds=0.8, rounds=1, executors=("stage", "component")
    )
    assert set(costs) == {"stage", "component"}
    for executor, cost in costs.items():
        runs = cost["runs"]
        assert [len(runs[k]) for k in ("alone", "not_preempted", "preempted")] == [1, 1, 1]
        assert runs["preempted"][0]["yields"] > 0 and runs["not_preempted"][0]["yields"] == 0, executor
        assert cost["yields_per_job"] > 0 and cost["service_time_alone_s"] > 0
        assert cost["preemption_overhead"] == pytest.approx(
            runs["preempted"][0]["service_time_s"] / runs["not_preempted"][0]["service_time_s"] - 1
        )


def job_seconds(pipeline: Pipeline, dnn: str, shape: tuple[int, ...], times: int = 3) -> float:
    """The fastest of a few jobs of `dnn`, from submit to result, on an otherwise idle pipeline."""
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    seconds = []
    for _ in range(times):
        t0 = time.monotonic()
        pipeline.result(dnn, pipeline.submit(dnn, x).seq, timeout=60)
        seconds.append(time.monotonic() - t0)
    return min(seconds)


@pytest.mark.parametrize("policy", [Policy.NP_EDF, Policy.FIFO])
def test_a_late_real_time_frame_is_dropped_for_the_newest_one_at_once(platform, policy):
    # While a ResNet-50 job (b s) holds the core, two SqueezeNet frames wait: A, older than the
    # deadline (0.8 b) when the core is free, and B, put 0.55 b into the job, in time if it runs
    # next. A is dropped and B runs in the same turn, before the ResNet-50 frame waiting too
    # (under fifo as well: B reached the component first). Were B left for after that ResNet-50
    # job, or ranked after it, it would be late as well, and no job would meet its deadline.
    # The frames are submitted by hand, so no period can lock in phase with the jobs; a round
    # whose ResNet-50 job overran (a busy host) so far that B could no longer make it proves
    # nothing about B and is not judged on it. Rounds go on (up to 12) until 4 are judged, and one
    # of them may go wrong: on a shared host a stall between two submissions can reorder them
    # (seen once under fifo in a full run); a policy that does not serve B next fails them all.
    # The timing rests on b, the fastest of a few ResNet-50 jobs measured first; a host that slows
    # down after that measurement (seen in a fresh-clone run: 0 of 12 rounds judged) gets one more
    # trial, with b measured again. A is judged in the rounds where it was late when the core was
    # free: a ResNet-50 job faster than b (the host sped up) leaves it in time, and it may run.
    for _ in range(2):
        judged, rounds, dropped, late_a = _late_frame_trial(platform, policy)
        if len(judged) >= 2:
            break
    assert late_a and dropped >= late_a, f"every late A dropped: {dropped} drops, {late_a} late of {rounds}"
    assert len(judged) >= 2, f"the host was too busy: B could make it in {len(judged)} of {rounds} rounds"
    assert sum(served_next for served_next, _ in judged) >= len(judged) - 1, f"B served next: {judged}"
    assert sum(in_time for _, in_time in judged) >= len(judged) / 2, f"B in time: {judged}"


def _late_frame_trial(platform, policy) -> tuple[list[tuple[bool, bool]], int, int, int]:
    """Rounds of the test above: (per judged round: B served next, B in time), rounds run, drops,
    and rounds whose A was late when the core was free."""
    big, small = (1, 3, 224, 224), (1, 3, 227, 227)
    probe = Workload((DnnSpec("bg", "resnet50"), DnnSpec("det", "squeezenet_v2")))
    with Pipeline(platform, probe, source="external", policy=policy, executor="component") as pipeline:
        pipeline.start(Mapping.all_on(probe, "big"))
        b = job_seconds(pipeline, "bg", big)
        s = job_seconds(pipeline, "det", small)
    assert s < 0.2 * b, "SqueezeNet-V2 fits in the slack"
    deadline = 0.8 * b
    workload = Workload((DnnSpec("bg", "resnet50"), DnnSpec("det", "squeezenet_v2", period=deadline)))
    rng = np.random.default_rng(1)
    x, frame = rng.standard_normal(big).astype(np.float32), rng.standard_normal(small).astype(np.float32)
    arrived: dict[tuple[str, int], float] = {}
    rounds, late_a, wait = 0, 0, 2.0 + 20 * b
    judged = []  # per round where B could make it: (B served before the waiting ResNet-50 frame, in time)

    def note(dnn: str, out) -> None:
        arrived[dnn, out.header.seq] = time.monotonic()

    with Pipeline(
        platform, workload, source="external", policy=policy, executor="component", on_result=note
    ) as pipeline:
        pipeline.start(Mapping.all_on(workload, "big"))
        job_seconds(pipeline, "bg", big, times=1)  # warm
        while rounds < 12 and len(judged) < 4:
            rounds += 1
            first = pipeline.submit("bg", x)
            time.sleep(0.1 * b)  # the component has taken the ResNet-50 frame
            a_frame = pipeline.submit("det", frame)  # A
            time.sleep(0.45 * b)
            b_frame = pipeline.submit("det", frame)  # B
            second = pipeline.submit("bg", x)
            pipeline.result("bg", second.seq, timeout=wait)
            freed = arrived["bg", first.seq]  # a little after the core was free
            late_a += freed - a_frame.origin > deadline
            if freed - b_frame.origin + 2 * s <= deadline:
                served = arrived.get(("det", b_frame.seq))
                judged.append(
                    (
                        served is not None and served < arrived["bg", second.seq],
                        served is not None and served - b_frame.origin <= deadline,
                    )
                )
        counters = pipeline.realtime_counters()
    return judged, rounds, counters["det"]["dropped"], late_a


def test_a_component_process_that_cannot_start_stops_the_ones_already_started(platform, monkeypatch):
    # the second component's process fails in start(): its error reaches the caller, and the
    # first component's process and every shared-memory segment are gone
    started = fail_process_starts(monkeypatch, after=1)
    workload = Workload((DnnSpec("a", "squeezenet_v2"),))
    pipeline = Pipeline(platform, workload, policy=Policy.EDF, executor="component")
    with pytest.raises(RuntimeError, match="cannot start the process"):
        pipeline.start(Mapping((halves("a", "squeezenet_v2", 18),)))
    assert len(started) == 1 and not alive(started)
    assert owned_entries(os.getpid()) == []
    assert pipeline.mapping is None


def test_on_failure_may_restart_the_pipeline_from_the_monitor(platform):
    # a supervisor's usual reflex; with the component executor a restart is a stop and a start,
    # run here on the monitor thread, which must not wait for itself
    import threading

    workload = Workload((DnnSpec("a", "squeezenet_v2"),))
    restarted: list[str] = []

    def restart(failure) -> None:
        pipeline.restart_dnn(failure.dnn)
        restarted.append(failure.dnn)

    with Pipeline(platform, workload, policy=Policy.EDF, executor="component", on_failure=restart) as pipeline:
        pipeline.start(Mapping.all_on(workload, "big"))
        victim = pipeline.pids()["a"][0]
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 20
        while not restarted and time.monotonic() < deadline:
            time.sleep(0.05)
        assert restarted == ["a"] and victim not in pipeline.pids()["a"]
        assert pipeline.measure(1.0, warmup_s=0.3).throughput["a"] > 0
        time.sleep(0.2)
        assert [t.name for t in threading.enumerate()].count("rankmap-monitor") == 1
    assert alive([victim]) == [] and owned_entries(os.getpid()) == []


@contextlib.contextmanager
def hosted_pair(platform, names: tuple[str, str]) -> Iterator[tuple[dict, Any, Any, list]]:
    """Two SqueezeNet-V2 stages hosted in this process under edf, as a container hosts them, with
    their board, doorbell and channels (removed afterwards): (specs, board, bell, hosted)."""
    from rankmap_ros.runtime.board import Board
    from rankmap_ros.runtime.channel import Channel
    from rankmap_ros.runtime.component import host_stage
    from rankmap_ros.runtime.shm import Semaphore, new_name
    from rankmap_ros.runtime.stage import stage_specs

    workload = Workload(tuple(DnnSpec(name, "squeezenet_v2") for name in names))
    specs = stage_specs(platform, workload, Mapping.all_on(workload, "big"), policy="edf")
    board, bell = Board.create(2), Semaphore.create(new_name("bell"), 0)
    made: list[Channel] = []
    try:
        hosted = []
        for row, name in enumerate(names):
            spec = specs[name][0]
            source = Channel.create(f"{name}-in", 2, int(np.prod(spec.input_shape)) * 4, "drop_oldest")
            sink = Channel.create(f"{name}-out", 4, int(np.prod(spec.output_shape)) * 4)
            source.ring = bell
            made += [source, sink]
            hosted.append(host_stage(spec, board, row, source, sink))
        yield specs, board, bell, hosted
    finally:
        for channel in made:
            channel.detach()
            channel.unlink()
        bell.unlink()
        board.detach()
        board.unlink()


def test_a_stage_that_raises_is_retired_alone_and_the_others_serve_on(platform):
    # The ROS containers' mode (retire given): one stage's computation raises; it leaves the
    # loop with its error and FAILED on its row, while the other stage keeps answering.
    import dataclasses
    import threading

    import torch

    from rankmap_ros.core.realtime import parse_policy
    from rankmap_ros.runtime.board import StageState
    from rankmap_ros.runtime.channel import FrameHeader
    from rankmap_ros.runtime.component import ComponentLoop

    with hosted_pair(platform, ("ok", "bad")) as (specs, board, bell, hosted):

        def boom(state):
            raise RuntimeError("unit exploded")

        steps = list(hosted[1].units.steps)
        steps[3] = boom
        hosted[1].units = dataclasses.replace(hosted[1].units, steps=tuple(steps))
        retired: list[tuple[str, str]] = []
        stop = threading.Event()

        def retire(h, error):
            retired.append((h.spec.dnn, error))
            board.set_state(1 if h.spec.dnn == "bad" else 0, StageState.FAILED, error)

        loop = ComponentLoop(list(hosted), parse_policy("edf"), bell, os.getpid(), stop.is_set, retire)

        def serve():
            with torch.inference_mode():  # as the containers run it
                loop.serve()

        thread = threading.Thread(target=serve)
        thread.start()
        try:
            x = np.zeros(specs["ok"][0].input_shape, np.float32)
            got = 0
            for seq in range(6):
                for h in hosted:
                    h.source.put(x, FrameHeader(seq, 0, "", time.monotonic()))
                got += hosted[0].sink.get(timeout=10.0) is not None
            assert got == 6, retired
            assert retired == [("bad", "RuntimeError: unit exploded")]
            assert board.state(1) == StageState.FAILED and "unit exploded" in board.error(1)
            assert [h.spec.dnn for h in loop.hosted] == ["ok"]
        finally:
            stop.set()
            thread.join(timeout=10.0)


def test_a_priority_written_on_the_board_orders_the_next_jobs(platform):
    # The manager writes a DNN's new priority on its board (no restart): the component loop keys
    # the next best-effort job with it, so the higher priority is chosen first.
    from rankmap_ros.core.realtime import parse_policy
    from rankmap_ros.runtime.channel import FrameHeader
    from rankmap_ros.runtime.component import ComponentLoop

    with hosted_pair(platform, ("a", "b")) as (specs, board, bell, hosted):
        board.set_priority(1.0, slice(0, 1))
        board.set_priority(2.0, slice(1, 2))
        loop = ComponentLoop(hosted, parse_policy("edf"), bell, os.getpid(), lambda: False)
        x = np.zeros(specs["a"][0].input_shape, np.float32)

        def first_chosen() -> str:
            for h in hosted:
                h.job = None
                h.source.put(x, FrameHeader(0, 0, "", time.monotonic()))
            loop._take_inputs()
            chosen = loop._choose()
            assert chosen is not None
            return chosen.spec.dnn

        assert first_chosen() == "b"
        board.set_priority(3.0, slice(0, 1))  # `rankmap priority a=3` while both run
        assert first_chosen() == "a"


def test_a_peer_holding_a_channel_lock_does_not_wedge_the_loop(platform):
    """A peer killed mid-copy keeps its channel's lock: the container's loop skips that input for
    the round (and so still sees its stop flag and beats) instead of retrying it for ever."""
    import threading

    from rankmap_ros.core.realtime import parse_policy
    from rankmap_ros.runtime.channel import Channel, FrameHeader
    from rankmap_ros.runtime.component import ComponentLoop

    with hosted_pair(platform, ("a", "b")) as (specs, _board, bell, hosted):
        loop = ComponentLoop(hosted, parse_policy("edf"), bell, os.getpid(), lambda: False)
        hosted[0].source.put(np.zeros(specs["a"][0].input_shape, np.float32), FrameHeader(0, 0))
        dead = Channel.open(hosted[0].source.name)
        assert dead._mutex.acquire(0)  # the killed peer's hold
        rounds = threading.Thread(target=loop._take_inputs)
        rounds.start()
        rounds.join(timeout=10.0)
        held = rounds.is_alive()
        dead._mutex.release()
        rounds.join(timeout=10.0)
        dead.detach()
        assert not held and hosted[0].job is None and hosted[0].source.depth == 1
