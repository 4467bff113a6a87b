"""The discrete-event simulator of scheduling policies (core/rtsim.py), as a user would notice it."""

from __future__ import annotations

import itertools
import math
from dataclasses import replace

import pytest

from rankmap_ros.core.mapping import DnnMapping, Mapping, Stage, unit_count
from rankmap_ros.core.planner import Budget, RankMapPlanner
from rankmap_ros.core.planner.policy import plan_for_policy
from rankmap_ros.core.platform import Platform, load_platform
from rankmap_ros.core.realtime import POLICIES, Policy
from rankmap_ros.core.rtsim import (
    JobTrace,
    chain_seconds,
    deadline_feasible,
    edf_schedulable,
    json_safe,
    predict,
    schedulable,
    simulate_rt,
    stage_units,
)
from rankmap_ros.core.simulator import model_costs, simulate
from rankmap_ros.core.throughput import SimulatorModel
from rankmap_ros.core.workload import DnnSpec, Workload
from rankmap_ros.experiments.realtime import SCENARIOS


@pytest.fixture(scope="module")
def opi() -> Platform:
    return load_platform("orange_pi_5")


# A long best-effort VGG-16 stage and a short real-time SqueezeNet-V2 on one GPU; the real-time job
# is released 50 ms into the first VGG-16 job (205 ms of 16 units, the longest 22.8 ms).
CONTENDED = Workload(
    (DnnSpec("survey", "vgg16"), DnnSpec("obstacles", "squeezenet_v2", period=0.5, deadline=0.1, priority=1.0))
)
RELEASE = 0.05


def first_rt_job(opi: Platform, policy: Policy, **kwargs: object) -> tuple[JobTrace, JobTrace]:
    """The first real-time job and the first best-effort job of CONTENDED on the GPU."""
    trace: list[JobTrace] = []
    simulate_rt(
        opi,
        CONTENDED,
        Mapping.all_on(CONTENDED, "gpu"),
        policy,
        horizon=1.0,
        phases={"obstacles": RELEASE},
        trace=trace,
        **kwargs,  # type: ignore[arg-type]
    )
    rt = next(t for t in trace if t.dnn == "obstacles")
    be = next(t for t in trace if t.dnn == "survey")
    return rt, be


def vgg_units(opi: Platform) -> list[float]:
    row = model_costs(opi, "vgg16").time[0]
    return [b - a for a, b in itertools.pairwise(row)]


@pytest.mark.parametrize("policy", [Policy.EDF, Policy.RMS, Policy.DMS])
def test_preemptive_policy_starts_rt_job_within_one_unit_of_a_long_stage(opi: Platform, policy: Policy) -> None:
    rt, be = first_rt_job(opi, policy)
    units = vgg_units(opi)
    assert be.stage_starts == [0.0] and rt.release == RELEASE
    wait = rt.stage_starts[0] - RELEASE
    assert 0 <= wait <= max(units) + 1e-12
    # The preempted VGG-16 job kept its progress: it ends after its own work plus the one real-time job.
    squeeze = model_costs(opi, "squeezenet_v2").time[0][-1]
    assert be.preemptions == 1
    assert be.finish == pytest.approx(sum(units) + squeeze, rel=1e-9)
    assert rt.finish is not None and not rt.missed and rt.finish - RELEASE == pytest.approx(wait + squeeze)


@pytest.mark.parametrize("policy", [Policy.FIFO, Policy.NP_EDF])
def test_non_preemptive_policy_makes_rt_job_wait_the_whole_stage(opi: Platform, policy: Policy) -> None:
    vgg = sum(vgg_units(opi))
    rt, be = first_rt_job(opi, policy, drop_late=False)
    assert be.finish == pytest.approx(vgg) and be.preemptions == 0
    assert rt.stage_starts[0] == pytest.approx(vgg)  # waited 155 ms for the 205 ms VGG-16 stage
    assert rt.missed and rt.finish is not None and rt.finish > rt.deadline  # type: ignore[operator]
    # With late dropping (the default) the hopeless job is dropped when its turn comes: missed, never run.
    rt, _ = first_rt_job(opi, policy)
    assert rt.dropped and rt.missed and rt.stage_starts == []


def test_time_sharing_shares_the_gpu_from_the_first_instant(opi: Platform) -> None:
    rt, be = first_rt_job(opi, Policy.TIME_SHARING)
    squeeze = model_costs(opi, "squeezenet_v2").time[0][-1]
    assert rt.stage_starts[0] == RELEASE and be.preemptions == 0
    assert rt.finish is not None and rt.finish - RELEASE > 1.5 * squeeze  # slowed by sharing, not blocked
    with pytest.raises(ValueError, match="time-sharing has no arbiter"):
        simulate_rt(opi, CONTENDED, Mapping.all_on(CONTENDED, "gpu"), "time_sharing", drop_late=True)


def test_dropped_jobs_count_as_missed(opi: Platform) -> None:
    workload = Workload(
        (
            DnnSpec("survey", "vgg16"),
            DnnSpec("obstacles", "squeezenet_v2", period=0.05, deadline=0.03),
        )
    )
    mapping = Mapping.all_on(workload, "gpu")
    dropping = simulate_rt(opi, workload, mapping, Policy.FIFO, horizon=5.0).dnn("obstacles")
    # One stage: a job that passed the check before each unit ends in time, so every miss is a drop.
    assert dropping.dropped > 0 and dropping.missed == dropping.dropped
    assert dropping.completed + dropping.dropped == dropping.released
    keeping = simulate_rt(opi, workload, mapping, Policy.FIFO, horizon=5.0, drop_late=False).dnn("obstacles")
    assert keeping.missed > keeping.dropped  # late jobs now run to the end, and miss
    # An overloaded real-time DNN under time-sharing loses its oldest unread frames (a 2-slot camera
    # input, like the runtime's), so its latency stays bounded while it misses every deadline.
    sharing = simulate_rt(opi, workload, mapping, Policy.TIME_SHARING, horizon=5.0).dnn("obstacles")
    assert sharing.dropped > 0 and sharing.missed == sharing.released
    assert sharing.latency_p95_s < 0.5


def test_edf_misses_far_less_than_time_sharing_and_fifo_on_feasible_scenarios(opi: Platform) -> None:
    for scenario in SCENARIOS:
        workload = scenario.workload(opi)
        mapping = Mapping.all_on(workload, "gpu")
        assert schedulable(opi, workload, mapping), scenario.name
        miss = {p: simulate_rt(opi, workload, mapping, p, horizon=5.0).miss_rate for p in POLICIES}
        assert miss[Policy.EDF] <= 0.01, scenario.name
        assert miss[Policy.TIME_SHARING] >= 0.5 and miss[Policy.FIFO] >= 0.3, (scenario.name, miss)


def test_best_effort_keeps_the_component_busy_under_edf(opi: Platform) -> None:
    workload = SCENARIOS[0].workload(opi)
    mapping = Mapping.all_on(workload, "gpu")
    ts = simulate_rt(opi, workload, mapping, Policy.TIME_SHARING, horizon=5.0)
    edf = simulate_rt(opi, workload, mapping, Policy.EDF, horizon=5.0)
    assert edf.best_effort_throughput >= 0.5 * ts.best_effort_throughput > 0
    assert edf.utilisation["gpu"] == pytest.approx(1.0) and edf.utilisation["big"] == 0.0
    assert edf.decisions > 0 and ts.decisions == 0 and edf.overhead_s_per_decision == 0.0
    assert edf.simulated and edf.policy == "edf" and edf.seconds == 5.0
    assert edf.preempted > 0 and simulate_rt(opi, workload, mapping, Policy.FIFO, horizon=5.0).preempted == 0


def test_deterministic_per_seed(opi: Platform) -> None:
    workload = SCENARIOS[1].workload(opi)
    mapping = Mapping.all_on(workload, "gpu")
    a = simulate_rt(opi, workload, mapping, Policy.EDF, horizon=3.0, seed=7)
    b = simulate_rt(opi, workload, mapping, Policy.EDF, horizon=3.0, seed=7)
    assert a == b
    ta: list[JobTrace] = []
    tb: list[JobTrace] = []
    simulate_rt(opi, workload, mapping, Policy.NP_EDF, horizon=3.0, seed=1, trace=ta)
    simulate_rt(opi, workload, mapping, Policy.NP_EDF, horizon=3.0, seed=2, trace=tb)
    first = {t.dnn: t.release for t in reversed(ta)}
    assert first != {t.dnn: t.release for t in reversed(tb)}  # seeds draw different phases
    assert all(0 <= first[d.name] < d.period for d in workload.dnns if d.period is not None)


def test_time_sharing_matches_the_analytic_simulator_when_saturated(opi: Platform) -> None:
    workload = Workload.from_models(["resnet50", "mobilenet_v2", "alexnet"])
    for component in ("gpu", "big"):
        mapping = Mapping.all_on(workload, component)
        expected = simulate(opi, workload, mapping).throughput
        got = simulate_rt(opi, workload, mapping, Policy.TIME_SHARING, horizon=20.0)
        for d in got.dnns:
            assert d.throughput == pytest.approx(expected[d.name], rel=0.05), (component, d.name)


def test_interference_slows_the_job_level_simulator_as_it_does_the_analytic_one(opi: Platform) -> None:
    comps = tuple(replace(c, interference=0.2 if c.name == "big" else 0.0) for c in opi.components)
    noisy = replace(opi, components=comps)
    workload = Workload.from_models(["resnet50", "alexnet"])
    whole = Mapping.all_on(workload, "big")
    mapping = Mapping((whole.dnns[0], replace(whole.dnns[1], assignment=("little",) * unit_count("alexnet"))))
    expected = simulate(noisy, workload, mapping).throughput
    got = {d.name: d.throughput for d in simulate_rt(noisy, workload, mapping, Policy.EDF, horizon=20.0).dnns}
    quiet = {d.name: d.throughput for d in simulate_rt(opi, workload, mapping, Policy.EDF, horizon=20.0).dnns}
    assert got["resnet50"] == pytest.approx(expected["resnet50"], rel=0.02)
    assert got["resnet50"] == pytest.approx(quiet["resnet50"] / 1.2, rel=0.02)
    assert got["alexnet"] == pytest.approx(quiet["alexnet"], rel=0.02)


def test_best_effort_pipeline_holds_one_job_per_stage_and_transfers_cost(opi: Platform) -> None:
    n = unit_count("resnet50")
    stages = [Stage(0, 6, "gpu"), Stage(6, 12, "big"), Stage(12, n, "little")]
    workload = Workload.from_models(["resnet50"])
    mapping = Mapping((DnnMapping.from_stages("resnet50", "resnet50", stages),))
    units = stage_units(opi, workload, mapping)
    costs = model_costs(opi, "resnet50")
    transfer = opi.transfer("gpu", "big").seconds(costs.in_bytes[6])
    assert sum(units[0][1][1]) == pytest.approx(costs.time[1][12] - costs.time[1][6] + transfer)
    trace: list[JobTrace] = []
    result = simulate_rt(opi, workload, mapping, Policy.EDF, horizon=20.0, trace=trace)
    slowest = max(sum(u) for _, u in units[0])
    assert result.dnns[0].throughput == pytest.approx(1 / slowest, rel=0.02)  # the bottleneck stage's rate
    events = sorted([(t.release, 1) for t in trace] + [(t.finish, -1) for t in trace if t.finish is not None])
    in_flight = 0
    for _, step in events:
        in_flight += step
        assert in_flight <= len(stages)


def test_horizon_counts_only_jobs_due_inside_it(opi: Platform) -> None:
    workload = Workload((DnnSpec("cam", "squeezenet_v2", period=0.1, deadline=0.1),))
    result = simulate_rt(opi, workload, Mapping.all_on(workload, "gpu"), "edf", horizon=1.05, phases={"cam": 0.0})
    cam = result.dnn("cam")
    assert (cam.released, cam.completed, cam.missed) == (10, 10, 0)
    assert cam.latency_p50_s == pytest.approx(model_costs(opi, "squeezenet_v2").time[0][-1])
    # Nothing finished: no latency, reported as null in JSON.
    short = simulate_rt(opi, CONTENDED, Mapping.all_on(CONTENDED, "gpu"), "edf", horizon=0.1)
    assert math.isnan(short.dnn("survey").latency_p95_s) and short.dnn("survey").completed == 0
    assert json_safe(short.to_dict())["dnns"]["survey"]["latency_p95_s"] is None


def test_feasibility_checks(opi: Platform) -> None:
    workload = Workload(
        (DnnSpec("tight", "resnet50", period=0.2, deadline=0.05), DnnSpec("easy", "alexnet", period=0.2))
    )
    gpu = Mapping.all_on(workload, "gpu")
    assert chain_seconds(opi, workload, gpu)["tight"] == pytest.approx(model_costs(opi, "resnet50").time[0][-1])
    assert deadline_feasible(opi, workload, gpu) == {"tight": False, "easy": True}
    assert not schedulable(opi, workload, gpu)
    # Two real-time DNNs each fitting alone, but not together with the blocking of a best-effort unit.
    crowded = Workload(
        (
            DnnSpec("a", "resnet50", period=0.1, deadline=0.07),
            DnnSpec("b", "alexnet", period=0.1, deadline=0.08),
            DnnSpec("c", "vgg16"),
        )
    )
    gpu = Mapping.all_on(crowded, "gpu")
    assert all(deadline_feasible(opi, crowded, gpu).values())
    assert edf_schedulable(opi, crowded, gpu)["gpu"] is False
    assert predict(opi, crowded, gpu, "edf", horizon=3.0).miss_rate > 0


def test_planner_picks_among_its_best_mappings_for_the_policy(opi: Platform) -> None:
    workload = Workload(
        (
            DnnSpec("a", "resnet50"),
            DnnSpec("b", "mobilenet_v2", period=0.05, deadline=0.04),
            DnnSpec("c", "squeezenet", period=0.05, deadline=0.03),
            DnnSpec("d", "alexnet"),
        )
    )
    plan = RankMapPlanner(SimulatorModel(opi), budget=Budget(400)).plan(workload)
    assert plan.candidates and plan.candidates[0][0] == plan.mapping
    chosen, prediction = plan_for_policy(plan, opi, workload, Policy.EDF, horizon=2.0)
    assert chosen.mapping in [m for m, _, _ in plan.candidates]
    assert prediction.miss_rate <= predict(opi, workload, plan.mapping, Policy.EDF, horizon=2.0).miss_rate
    assert chosen.feasible and chosen.reward >= 0
    # Without real-time DNNs the plan stays as it was.
    best_effort = Workload.from_models(["resnet50", "alexnet"])
    plain = RankMapPlanner(SimulatorModel(opi), budget=Budget(200)).plan(best_effort)
    assert plan_for_policy(plain, opi, best_effort, Policy.EDF, horizon=1.0)[0] is plain
