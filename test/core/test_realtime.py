"""Task classes, the policies' job order, infeasibility at registration, and workload files (issue 7)."""

from __future__ import annotations

import math

import pytest
import yaml

from rankmap_ros.core.platform import load_platform
from rankmap_ros.core.realtime import (
    BEST_EFFORT,
    POLICIES,
    DnnRtStats,
    Policy,
    RealTimeError,
    RtResult,
    TaskClass,
    fastest_job,
    infeasibility,
    job_key,
    late,
    parse_policy,
)
from rankmap_ros.core.workload import DnnSpec, Workload, WorkloadError


@pytest.mark.parametrize("bad", [0, -0.1, math.nan, math.inf, True, "0.1"])
def test_task_class_rejects_bad_periods_and_deadlines(bad: object) -> None:
    with pytest.raises(RealTimeError, match="period must be a finite number of seconds > 0"):
        TaskClass(period=bad)  # type: ignore[arg-type]
    with pytest.raises(RealTimeError, match="deadline must be a finite number of seconds > 0"):
        TaskClass(period=0.1, deadline=bad)  # type: ignore[arg-type]


def test_task_class_defaults_and_rates() -> None:
    assert not BEST_EFFORT.realtime and BEST_EFFORT.rate == 0 and BEST_EFFORT.threshold_rate == 0
    task = TaskClass(period=0.05)
    assert task.realtime and task.deadline == 0.05 and task.rate == pytest.approx(20)
    # The planner's minimum rate is one job per relative deadline, or per period if that is shorter.
    assert TaskClass(period=0.1, deadline=0.025).threshold_rate == pytest.approx(40)
    assert TaskClass(period=0.1, deadline=0.4).threshold_rate == pytest.approx(10)
    assert TaskClass.from_rate(30, deadline=0.02) == TaskClass(period=1 / 30, deadline=0.02)
    with pytest.raises(RealTimeError, match="a deadline needs a period"):
        TaskClass(deadline=0.1)
    with pytest.raises(RealTimeError, match="input rate"):
        TaskClass.from_rate(0)


def test_parse_policy_and_flags() -> None:
    assert parse_policy(" EDF ") is Policy.EDF
    with pytest.raises(RealTimeError, match="unknown scheduling policy 'lottery'; one of time_sharing, fifo"):
        parse_policy("lottery")
    assert [p.value for p in POLICIES] == ["time_sharing", "fifo", "rms", "dms", "np_edf", "edf"]
    assert [p for p in POLICIES if p.preemptive] == [Policy.RMS, Policy.DMS, Policy.EDF]
    assert [p for p in POLICIES if not p.arbitrated] == [Policy.TIME_SHARING]


FAST = TaskClass(period=0.033, deadline=0.030)  # released at 0.10: due 0.130
SLOW = TaskClass(period=0.100, deadline=0.020)  # released at 0.105: due 0.125


def order(policy: Policy, jobs: dict[str, tuple[TaskClass, float, float, float]]) -> list[str]:
    """Job names in the order an arbiter runs them: (task, release, arrival, priority) each."""
    return sorted(jobs, key=lambda n: job_key(policy, *jobs[n]))


JOBS = {
    "fast": (FAST, 0.100, 0.110, 1.0),
    "slow": (SLOW, 0.105, 0.108, 1.0),
    "be_low": (BEST_EFFORT, 0.0, 0.050, 0.2),
    "be_high": (BEST_EFFORT, 0.0, 0.090, 0.8),
}


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        (Policy.FIFO, ["be_low", "be_high", "slow", "fast"]),  # arrival only, real-time or not
        (Policy.RMS, ["fast", "slow", "be_high", "be_low"]),  # shorter period first
        (Policy.DMS, ["slow", "fast", "be_high", "be_low"]),  # shorter relative deadline first
        (Policy.NP_EDF, ["slow", "fast", "be_high", "be_low"]),  # earlier absolute deadline first
        (Policy.EDF, ["slow", "fast", "be_high", "be_low"]),
    ],
)
def test_job_key_orders_jobs_per_policy(policy: Policy, expected: list[str]) -> None:
    assert order(policy, JOBS) == expected


def test_edf_follows_absolute_deadlines_where_dms_does_not() -> None:
    # SLOW released much later: its absolute deadline is now after FAST's, its relative one still shorter.
    jobs = {"fast": (FAST, 0.100, 0.100, 1.0), "slow": (SLOW, 0.125, 0.125, 1.0)}
    assert order(Policy.EDF, jobs) == ["fast", "slow"]
    assert order(Policy.DMS, jobs) == ["slow", "fast"]
    # Best-effort jobs of equal priority run in arrival order; keys are three floats (shared memory).
    a, b = job_key(Policy.EDF, BEST_EFFORT, 0, 1.0), job_key(Policy.EDF, BEST_EFFORT, 0, 2.0)
    assert a < b and len(a) == 3 and all(isinstance(x, float) for x in a)


def test_late() -> None:
    assert not late(BEST_EFFORT, 0.0, 100.0, 100.0)
    assert not late(FAST, 0.0, 0.020, 0.010)  # ends at 0.030: just in time
    assert late(FAST, 0.0, 0.020, 0.011)
    assert late(FAST, 0.0, 0.031)


def test_infeasible_deadline_is_explained() -> None:
    platform = load_platform("orange_pi_5")
    seconds, component = fastest_job(platform, "vgg16")
    assert component == "gpu" and seconds == pytest.approx(0.2049, abs=1e-3)
    reason = infeasibility(platform, "vgg16", TaskClass(period=1.0, deadline=0.1))
    assert reason == (
        "deadline 100.0 ms is shorter than one vgg16 job alone on orange_pi_5's fastest component (gpu: 204.9 ms)"
    )
    reason = infeasibility(platform, "vgg16", TaskClass(period=0.1, deadline=1.0))
    assert reason is not None and reason.startswith("period 100.0 ms is shorter")
    assert infeasibility(platform, "vgg16", TaskClass(period=0.5)) is None
    assert infeasibility(platform, "vgg16", BEST_EFFORT) is None


def test_workload_yaml_round_trip_with_task_classes() -> None:
    text = """
dnns:
  - {name: cam, model: squeezenet_v2, period: 0.05, deadline: 0.03}
  - {name: lidar, model: mobilenet_v2, rate: 10}
  - {name: survey, model: resnet50, priority: 0.5}
"""
    workload = Workload.from_dict(yaml.safe_load(text))
    cam, lidar, survey = workload.dnns
    assert cam.task == TaskClass(0.05, 0.03) and cam.realtime
    assert lidar.period == pytest.approx(0.1) and lidar.deadline == pytest.approx(0.1)
    assert not survey.realtime and survey.task == BEST_EFFORT
    again = Workload.from_dict(yaml.safe_load(yaml.safe_dump(workload.to_dict())))
    assert again == workload
    assert "period" not in workload.to_dict()["dnns"][2]


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"model": "alexnet", "period": 0.1, "rate": 10}, "give 'period' or 'rate', not both"),
        ({"model": "alexnet", "rate": 0}, "rate must be a finite number of Hz > 0"),
        ({"model": "alexnet", "rate": True}, "rate must be a finite number of Hz > 0"),
        ({"model": "alexnet", "deadline": 0.1}, "a deadline needs a period"),
        ({"model": "alexnet", "period": -1}, "period must be a finite number of seconds > 0"),
        ({"model": "alexnet", "period": 0.1, "deadline": "soon"}, "deadline must be a finite number"),
        ({"model": "alexnet", "deadlines": 0.1}, "unknown fields: deadlines"),
    ],
)
def test_workload_task_class_errors_name_the_entry(entry: dict[str, object], message: str) -> None:
    with pytest.raises(WorkloadError, match=message) as info:
        Workload.from_dict({"dnns": [entry]})
    assert "alexnet" in str(info.value) or "entry 0" in str(info.value)


def test_result_aggregates() -> None:
    def stats(name: str, realtime: bool, released: int, missed: int, throughput: float) -> DnnRtStats:
        return DnnRtStats(name, realtime, released, released - missed, missed, 0, 1, throughput, 0.01, 0.02)

    result = RtResult(
        "edf",
        10.0,
        (stats("a", True, 100, 1, 10.0), stats("b", True, 300, 3, 30.0), stats("c", False, 40, 0, 4.0)),
        {"gpu": 0.5},
        400,
        0.0,
        True,
    )
    assert result.miss_rate == pytest.approx(4 / 400)
    assert result.dnn("a").miss_rate == pytest.approx(0.01) and result.dnn("c").miss_rate == 0
    assert result.preempted == 3 and result.best_effort_throughput == 4.0
    data = result.to_dict()
    assert data["dnns"]["b"]["miss_rate"] == pytest.approx(0.01) and data["simulated"] is True
    with pytest.raises(KeyError):
        result.dnn("zzz")
    assert DnnSpec("x", "alexnet", period=0.1).task.deadline == 0.1
