"""`rankmap map`, `rankmap experiment paper` and `rankmap bench planner` as a user runs them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rankmap_ros.cli import main


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_map_json(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    out_file = tmp_path / "mapping.json"
    code, out, _ = run(
        capsys,
        "map", "--workload", "resnet50,mobilenet_v2,alexnet", "--priorities", "0.7,0.2,0.1",
        "--model", "simulator", "--budget", "300", "--out", str(out_file), "--json",
    )  # fmt: skip
    assert code == 0
    data = json.loads(out)
    for key in ("mapping", "predicted_throughput", "simulated_throughput", "potential_throughput", "plan_seconds"):
        assert key in data
    assert data["planner"] == "rankmap_s" and data["simulated"] is True
    assert data["predicted_throughput"] == data["simulated_throughput"]  # planned with the simulator
    assert data["priorities"] == pytest.approx({"resnet50": 0.7, "mobilenet_v2": 0.2, "alexnet": 0.1})
    assert data["feasible"] is True and data["simulations"] <= 300
    assert json.loads(out_file.read_text())["dnns"] == data["mapping"]["dnns"]
    code, out, err = run(
        capsys,
        "map", "--workload", "resnet50,mobilenet_v2,alexnet", "--mode", "dynamic", "--model", "simulator",
        "--budget", "200", "--warm-start", str(out_file), "--min-rate", "2", "--json",
    )  # fmt: skip
    assert code == 0 and "warm-start" not in err
    # a mapping of another workload is no start at all: said, not silently ignored
    code, _, err = run(capsys, "map", "--workload", "vgg16", "--model", "simulator", "--budget", "50",
                       "--warm-start", str(out_file), "--json")  # fmt: skip
    assert code == 0 and "covers none of this workload's DNNs; planning from scratch" in err
    data = json.loads(out)
    assert data["planner"] == "rankmap_d" and data["thresholds"] == {"resnet50": 2, "mobilenet_v2": 2, "alexnet": 2}
    # a mapping of another board: its components are not this platform's
    out_file.write_text(out_file.read_text().replace('"gpu"', '"npu"').replace('"big"', '"npu"'))
    code, _, err = run(capsys, "map", "--workload", "resnet50,mobilenet_v2,alexnet", "--warm-start", str(out_file))
    assert code == 2 and "uses npu, which platform orange_pi_5 does not have (gpu, big, little)" in err


@pytest.mark.parametrize("planner", ["gpu", "mosaic", "odmdef", "ga", "omniboost"])
def test_map_baselines(capsys: pytest.CaptureFixture[str], planner: str) -> None:
    code, out, _ = run(
        capsys, "map", "--workload", "alexnet,squeezenet", "--planner", planner,
        "--model", "simulator", "--budget", "100", "--json",
    )  # fmt: skip
    assert code == 0
    data = json.loads(out)
    assert data["planner"] == planner
    units = {"alexnet": 8, "squeezenet": 18}  # every unit of both DNNs mapped, each DNN served
    for dnn in data["mapping"]["dnns"]:
        covered = [u for s in dnn["stages"] for u in range(*s["units"])]
        assert covered == list(range(units[dnn["name"]])), dnn
        assert data["simulated_throughput"][dnn["name"]] > 0
    if planner == "gpu":
        assert {s["component"] for d in data["mapping"]["dnns"] for s in d["stages"]} == {"gpu"}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("--workload", "alexnet,nonet"), "unknown model 'nonet'"),
        (("--workload", "alexnet,vgg16", "--priorities", "1,2,3"), "3 priorities given for 2 DNNs"),
        (("--workload", "alexnet,vgg16", "--priorities", "1,-2"), "must be >= 0"),
        (("--workload", "alexnet,vgg16", "--priorities", "0,0"), "all zero"),
        (("--workload", "alexnet,vgg16", "--priorities", "alexnet=1,yolo=1"), "unknown DNN 'yolo'"),
        (("--workload", "alexnet,vgg16", "--min-rate", "1,2,3"), "3 values for 2 DNNs"),
        (("--workload", "alexnet,vgg16", "--planner", "gpu", "--priorities", "1,1"), "does not take priorities"),
        (("--workload", "alexnet,vgg16", "--budget", "0"), "argument --budget: must be at least 1"),
        (("--workload", "alexnet,vgg16", "--warm-start", "/nonexistent.json"), "does not exist"),
        # a frequency where seconds are meant used to pass as 30 s
        (("--workload", "alexnet", "--period", "alexnet=30hz"), "'30hz' is not a number (e.g. 0.05, 0.05s or 50ms)"),
        (("--workload", "alexnet", "--rate", "alexnet=30ms"), "'30ms' is not a number (e.g. 30 or 30hz)"),
    ],
)
def test_map_rejects_bad_input(capsys: pytest.CaptureFixture[str], argv: tuple[str, ...], message: str) -> None:
    code, out, err = run(capsys, "map", "--model", "simulator", *argv)
    assert code == 2 and not out
    assert message in err and err.count("\n") == 1


def test_priorities_and_dynamic_mode_exclude_each_other(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["map", "--workload", "alexnet,vgg16", "--priorities", "1,1", "--mode", "dynamic"]) == 2
    assert "not allowed with" in capsys.readouterr().err


def test_bench_planner(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "bench", "planner", "--mixes", "1", "--budget", "100", "--model", "simulator", "--json")
    assert code == 0
    data = json.loads(out)
    assert set(data["by_size"]) == {"3", "4", "5"} and data["budget"] == 100
    five = data["by_size"]["5"]
    assert five["median_plan_seconds"] > 0
    assert 0 < five["median_ms_per_evaluation"] < 1e3 * five["max_plan_seconds"]
    assert 0 < five["median_simulate_ms"] < 1e3 * five["median_plan_seconds"]


def test_estimator_model_is_used_when_shipped(capsys: pytest.CaptureFixture[str]) -> None:
    from rankmap_ros.core.planner.registry import estimator_available
    from rankmap_ros.core.platform import load_platform

    argv = ("map", "--workload", "alexnet,squeezenet", "--model", "estimator", "--budget", "100", "--json")
    code, out, err = run(capsys, *argv)
    if estimator_available(load_platform("orange_pi_5")):
        assert code == 0 and json.loads(out)["model"].startswith("estimator")
    else:
        assert code == 2 and "--model simulator" in err
