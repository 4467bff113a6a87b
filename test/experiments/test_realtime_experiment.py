"""`rankmap experiment realtime` and `rankmap map --policy` as a user runs them (issue 7)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rankmap_ros.cli import main
from rankmap_ros.core.mapping import Mapping
from rankmap_ros.core.platform import Platform, load_platform
from rankmap_ros.core.realtime import POLICIES, Policy, RtResult
from rankmap_ros.core.workload import Workload
from rankmap_ros.experiments.realtime import (
    QUICK,
    SCENARIOS,
    RtRole,
    Scenario,
    host_setup,
    preemption_cost,
    reduction,
    run_scenarios,
    simulated_runner,
)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_quick_experiment_json(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, _ = run(capsys, "experiment", "realtime", "--quick", "--json", "--out", str(tmp_path))
    assert code == 0
    data = json.loads(out)
    assert data["simulated"] is True and data["platform"] == "orange_pi_5" and data["quick"] is True
    assert set(data["scenarios"]) == {"robot", "drone", "traffic"}  # --json sorts keys
    assert data["policies"] == [p.value for p in POLICIES]
    policies = {p.value for p in POLICIES}
    for name, scenario in data["scenarios"].items():
        assert scenario["feasible"] is True and scenario["mapping"] == "shared"
        for key in ("miss_rate", "preempted", "best_effort_throughput", "preempted_ratio"):
            assert set(scenario[key]) == policies
        for key in ("miss_rate_reduction_vs_time_sharing", "miss_rate_reduction_vs_fifo"):
            assert set(scenario[key]) == policies
        miss = scenario["miss_rate"]
        assert miss["edf"] < miss["time_sharing"] and miss["edf"] <= miss["fifo"], name
        assert scenario["miss_rate_reduction_vs_time_sharing"]["edf"] >= 0.9
        assert scenario["miss_rate_reduction_vs_fifo"]["fifo"] == 0.0
        edf = scenario["policies"]["edf"]
        assert edf["simulated"] is True and set(edf["dnns"]) == {d["name"] for d in scenario["workload"]}
        assert all("miss_rate" in d and "latency_p95_s" in d for d in edf["dnns"].values())
        # The planner's mapping is run too; it spreads the three DNNs, and every policy then agrees.
        assert set(scenario["mappings"]) == {"shared", "rankmap"}
    assert data["targets"]["edf_cuts_misses_90pct_vs_time_sharing"] is True
    assert (tmp_path / "realtime.json").is_file() and (tmp_path / "realtime.png").stat().st_size > 10_000
    cached = list((tmp_path / "cache").rglob("*.json"))
    assert len(cached) == 3 * 2 * len(POLICIES)
    # A second run resumes from the cache and gives the same answer.
    code, again, _ = run(capsys, "experiment", "realtime", "--quick", "--json", "--out", str(tmp_path))
    assert code == 0 and json.loads(again)["scenarios"] == data["scenarios"]


def test_a_measured_runner_plugs_in() -> None:
    platform = load_platform("orange_pi_5")
    calls: list[tuple[str, Policy, float]] = []
    simulated = simulated_runner(0)

    def measured(plat: Platform, workload: Workload, mapping: Mapping, policy: Policy, horizon: float) -> RtResult:
        calls.append((workload.names[0], policy, horizon))
        return simulated(plat, workload, mapping, policy, horizon)

    report = run_scenarios(platform, SCENARIOS[:1], measured, QUICK, mappings=("shared",))
    assert len(calls) == len(POLICIES) and {c[2] for c in calls} == {QUICK.horizon}
    assert set(report["robot"]["miss_rate"]) == {p.value for p in POLICIES}
    assert reduction(0.01, 0.5) == pytest.approx(0.98) and reduction(0.0, 0.0) is None


def test_map_with_policy_and_task_classes(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, _ = run(
        capsys,
        "map", "--workload", "alexnet,resnet50,squeezenet_v2", "--model", "simulator", "--budget", "300",
        "--period", "alexnet=100ms,squeezenet_v2=0.05", "--deadline", "squeezenet_v2=30ms", "--policy", "edf", "--json",
    )  # fmt: skip
    assert code == 0
    data = json.loads(out)
    assert data["policy"] == "edf" and set(data["predicted_miss_rate"]) == {"alexnet", "squeezenet_v2"}
    assert data["realtime"]["tasks"]["squeezenet_v2"] == {"period": 0.05, "deadline": 0.03}
    assert data["thresholds"]["squeezenet_v2"] == pytest.approx(1 / 0.03)  # one job per deadline
    assert data["realtime"]["prediction"]["simulated"] is True
    # A workload file with periods and deadlines flows through the same way.
    path = tmp_path / "w.yaml"
    path.write_text("dnns:\n  - {name: cam, model: squeezenet_v2, rate: 20, deadline: 0.04}\n  - model: resnet50\n")
    code, out, _ = run(capsys, "map", "--workload", str(path), "--model", "simulator", "--budget", "200", "--json")
    assert code == 0
    data = json.loads(out)
    assert data["policy"] == "time_sharing" and list(data["predicted_miss_rate"]) == ["cam"]
    code, out, _ = run(capsys, "map", "--workload", "alexnet", "--model", "simulator", "--budget", "50", "--json")
    assert code == 0 and "predicted_miss_rate" not in json.loads(out)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("--period", "alexnet=5ms"), "real-time DNN 'alexnet' is infeasible: deadline 5.0 ms is shorter"),
        (("--deadline", "alexnet=0.1"), "a deadline needs a period"),
        (("--period", "alexnt=0.1"), "--period: unknown DNN 'alexnt'"),
        (("--period", "alexnet"), "expected NAME=VALUE"),
        (("--rate", "alexnet=-3"), "must be a finite number > 0"),
        (("--rate", "alexnet=10", "--period", "alexnet=0.1"), "--rate and --period both given"),
    ],
)
def test_map_rejects_bad_task_classes(capsys: pytest.CaptureFixture[str], argv: tuple[str, ...], message: str) -> None:
    code, out, err = run(capsys, "map", "--workload", "alexnet,resnet50", "--model", "simulator", *argv)
    assert code == 2 and not out
    assert message in err


def test_measured_job_times_scale_the_deadlines() -> None:
    """On a host the deadlines follow the job times measured there, not the platform model's."""
    platform = load_platform("orange_pi_5")
    robot = next(s for s in SCENARIOS if s.name == "robot")
    measured = {"ssd_mobilenet": 0.02, "mobilenet_v2": 0.01, "resnet50": 0.05}
    workload = robot.workload(platform, measured)
    obstacles, person, scene = workload.dnns
    assert obstacles.deadline == pytest.approx(2.5 * 0.02) and person.deadline == pytest.approx(4.0 * 0.01)
    assert obstacles.period == person.period == pytest.approx(0.05 / 0.9)  # laxest deadline / 0.9
    assert not scene.realtime
    assert robot.workload(platform).dnns[0].deadline != obstacles.deadline


def test_split_is_refused_without_measured_and_a_bad_split_names_the_cpu(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "experiment", "realtime", "--quick", "--split", "big:0,little:1")
    assert code == 2 and not out and "--split is for --measured runs" in err
    code, out, err = run(capsys, "experiment", "realtime", "--measured", "--quick", "--split", "big:0,little:99")
    assert code == 2 and not out and "CPU 99 is not available here" in err


def test_a_split_host_is_measured_per_cluster_and_deadlines_follow_the_fastest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each cluster gets its own fitted rates and profiled units; a resumed run reuses them."""
    tiny = Scenario(
        "tiny",
        "two real-time SqueezeNets and a best-effort AlexNet",
        (RtRole("a", "squeezenet_v2", 3.0), RtRole("b", "squeezenet_v2", 4.0), RtRole("c", "alexnet")),
    )
    platform, job_seconds = host_setup((tiny,), tmp_path, split="big:0,little:1")
    assert platform.component_names == ("big", "little")
    profiled = {(u.model, u.component) for u in platform.unit_times}
    assert profiled == {(m, c) for m in ("squeezenet_v2", "alexnet") for c in ("big", "little")}
    for model, seconds in job_seconds.items():
        alone = [sum(platform.measured_units(model)[platform.index(c)]) for c in ("big", "little")]
        assert seconds == pytest.approx(min(alone))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["units_big.json", "units_little.json"]
    again, seconds_again = host_setup((tiny,), tmp_path, split="big:0,little:1")
    assert again == platform and seconds_again == job_seconds
    # the same output directory on another machine: its times are not this host's
    moved = tmp_path / "units_big.json"
    saved = json.loads(moved.read_text())
    moved.write_text(json.dumps({**saved, "row": {**saved["row"], "host": "another machine"}}))
    kept = (tmp_path / "units_little.json").read_bytes()
    from rankmap_ros.runtime import profiler

    asked: list[list[str]] = []
    row = saved["row"]
    big = profiler.UnitTimes("big", {m: tuple(t) for m, t in row["times"].items()}, {}, row["chains"])

    def profile_again(host: object, components: list[str], models: list[str]) -> dict[str, object]:
        asked.append(list(components))  # what is measured again (timing it for real takes a while)
        return {"big": big}

    monkeypatch.setattr(profiler, "profile_components", profile_again)
    host_setup((tiny,), tmp_path, split="big:0,little:1")
    assert asked == [["big"]] and json.loads(moved.read_text())["row"]["host"] == saved["row"]["host"]
    assert (tmp_path / "units_little.json").read_bytes() == kept


def test_preemption_cost_compares_the_best_effort_compute_per_job_under_edf_and_np_edf() -> None:
    def run(policy: str, busy: float, done: int, resume: float) -> dict[str, object]:
        rt = {"realtime": True, "completed": 50, "busy_s": 0.5, "resume_extra_s": 0.0}
        be = {"realtime": False, "completed": done, "busy_s": busy, "resume_extra_s": resume}
        return {"policy": policy, "simulated": False, "dnns": {"rt": rt, "be": be}}

    cost = preemption_cost({"edf": run("edf", 10.5, 100, 0.2), "np_edf": run("np_edf", 10.0, 100, 0.0)})
    assert cost["best_effort_service_s_edf"] == pytest.approx(0.105)
    assert cost["preemption_overhead"] == pytest.approx(0.05)
    assert cost["resume_overhead"] == pytest.approx(0.2 / 11.0)
    # a best-effort DNN that completed nothing under np_edf leaves the overhead undefined
    assert (
        preemption_cost({"edf": run("edf", 10.5, 100, 0.2), "np_edf": run("np_edf", 10.0, 0, 0.0)})[
            "preemption_overhead"
        ]
        is None
    )
