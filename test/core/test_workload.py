"""Workloads reject bad input with a message that names it."""

import math
from pathlib import Path

import pytest
import yaml

from rankmap_ros.core.workload import DnnSpec, Workload, WorkloadError


def test_from_models_names_instances_and_canonicalises_models() -> None:
    w = Workload.from_models(["ResNet-50", "alexnet", "resnet50"])
    assert w.names == ("resnet50", "alexnet", "resnet50_2")
    assert w.models == ("resnet50", "alexnet", "resnet50")
    assert w.index("alexnet") == 1


def test_unknown_model_is_named() -> None:
    with pytest.raises(WorkloadError, match="unknown model 'lenet'"):
        Workload.from_models(["alexnet", "lenet"])


def test_duplicate_names_are_rejected() -> None:
    with pytest.raises(WorkloadError, match="duplicate DNN name 'cam'"):
        Workload((DnnSpec("cam", "alexnet"), DnnSpec("cam", "vgg16")))


@pytest.mark.parametrize("priority", [math.nan, -0.5, math.inf, "high"])
def test_malformed_priorities_are_rejected(priority: object) -> None:
    with pytest.raises(WorkloadError, match="priority must be a finite number >= 0"):
        DnnSpec("cam", "alexnet", priority=priority)  # type: ignore[arg-type]


def test_nan_min_rate_is_rejected() -> None:
    with pytest.raises(WorkloadError, match="min_rate"):
        DnnSpec("cam", "alexnet", min_rate=math.nan)


@pytest.mark.parametrize("name", ["cam\n", None, 5, "cam-1"])
def test_names_that_cannot_go_into_topic_or_shared_memory_names_are_rejected(name: object) -> None:
    with pytest.raises(WorkloadError, match="must start with a letter"):
        DnnSpec(name, "alexnet")  # type: ignore[arg-type]
    with pytest.raises(WorkloadError, match="must start with a letter"):
        Workload.from_dict({"dnns": [{"model": "alexnet", "name": name}]})


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"priority": True}, "priority must be a finite number"),
        ({"min_rate": True}, "min_rate must be a finite number"),
        ({"priority": 10**400}, "priority must be a finite number"),
        ({"rate": 10**400}, "rate must be a finite number of Hz"),
        ({"period": 10**400}, "period must be a finite number of seconds"),
    ],
)
def test_bools_and_numbers_too_large_for_a_float_are_rejected(entry: dict, message: str) -> None:
    with pytest.raises(WorkloadError, match=message):
        Workload.from_dict({"dnns": [{"model": "alexnet", **entry}]})


def test_names_are_limited_to_64_characters() -> None:
    # they end up in topic, node and shared-memory names, whose lengths the OS and DDS limit
    assert DnnSpec("a" * 64, "alexnet").name == "a" * 64
    with pytest.raises(WorkloadError, match="too long: at most 64 characters"):
        DnnSpec("a" * 65, "alexnet")


def test_too_many_dnns() -> None:
    with pytest.raises(WorkloadError, match="at most 5 DNNs"):
        Workload.from_models(["alexnet"] * 6)
    assert len(Workload.from_models(["alexnet"] * 6, max_dnns=6)) == 6


def test_priority_count_must_match() -> None:
    with pytest.raises(WorkloadError, match="2 priorities given for 3 DNNs"):
        Workload.from_models(["alexnet", "vgg16", "resnet50"], priorities=[0.5, 0.5])


def test_dict_round_trip_and_errors() -> None:
    w = Workload.from_models(["alexnet", "vgg16"], priorities=[0.7, 0.3], min_rates=[5.0, None])
    assert Workload.from_dict(w.to_dict()) == w
    with pytest.raises(WorkloadError, match="unknown fields: colour"):
        Workload.from_dict({"dnns": [{"model": "alexnet", "colour": "red"}]})
    with pytest.raises(WorkloadError, match="'dnns' list"):
        Workload.from_dict({"models": ["alexnet"]})


def test_a_workload_file_gives_a_sensors_input_rate() -> None:
    robot = Path(__file__).resolve().parents[2] / "config" / "workloads" / "robot.yaml"
    workload = Workload.from_dict(yaml.safe_load(robot.read_text()))
    assert [d.input_rate for d in workload.dnns] == [15.0, None, None]
    assert Workload.from_dict(workload.to_dict()) == workload
    for entry, message in (
        ({"model": "alexnet", "input_rate": 0}, "input_rate must be a finite number > 0"),
        ({"model": "alexnet", "input_rate": "fast"}, "input_rate must be a finite number > 0"),
        ({"model": "alexnet", "rate": 10, "input_rate": 10}, "input_rate is for best-effort DNNs"),
    ):
        with pytest.raises(WorkloadError, match=message):
            Workload.from_dict({"dnns": [entry]})


def test_a_managers_dnns_file_plans_offline_as_the_manager_reads_it() -> None:
    """RegisterDnn's fields: topics and output kinds are the manager's, 0 means best-effort, a model
    file stands for its architecture."""
    entry = {"name": "det", "model": "/models/squeezenet_v2-finetuned.pt", "input_topic": "/cam/image_raw"}
    workload = Workload.from_dict({"dnns": [{**entry, "output_kind": "tensor", "period": 0.0, "deadline": 0}]})
    (dnn,) = workload.dnns
    assert dnn.model == "squeezenet_v2" and not dnn.realtime
    with pytest.raises(WorkloadError, match="unknown fields: input_topics"):
        Workload.from_dict({"dnns": [{"model": "alexnet", "input_topics": "/cam"}]})
