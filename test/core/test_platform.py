"""The platform schema: built-ins load, bad files name the field, round trips are lossless."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from rankmap_ros.core.platform import PlatformError, builtin_platforms, load_platform, parse_platform
from rankmap_ros.core.unitvec import profile


def _data() -> dict[str, Any]:
    return load_platform("orange_pi_5").to_dict()


def test_builtin_orange_pi_5() -> None:
    assert "orange_pi_5" in builtin_platforms()
    p = load_platform("orange_pi_5")
    assert p.component_names == ("gpu", "big", "little")
    assert [c.kind for c in p.components] == ["gpu", "cpu", "cpu"]
    assert p.reference_component == "gpu"
    assert p.calibrated
    big, little = p.component("big"), p.component("little")
    assert (big.cores, big.frequency_ghz, little.cores, little.frequency_ghz) == (4, 2.4, 4, 1.8)
    assert p.index("little") == 2


def test_round_trip_dict_and_yaml_file(tmp_path: Path) -> None:
    p = load_platform("orange_pi_5")
    assert parse_platform(p.to_dict()) == p
    path = tmp_path / "copy.yaml"
    path.write_text(p.to_yaml())
    assert load_platform(path) == p
    assert hash(load_platform(path)) == hash(p)


@pytest.mark.parametrize(
    ("field", "default", "index", "value"), [("parallelism", 1, 0, 2.5), ("interference", 0, 1, 0.08)]
)
def test_measured_fields_round_trip_and_defaults_stay_out_of_the_file(field, default, index, value) -> None:
    p = load_platform("orange_pi_5")
    assert all(getattr(c, field) == default for c in p.components)
    assert all(field not in c for c in p.to_dict()["components"])
    data = p.to_dict()
    data["components"][index][field] = value
    measured = parse_platform(data)
    assert getattr(measured.component(data["components"][index]["name"]), field) == value
    assert parse_platform(measured.to_dict()) == measured


def test_model_concurrency_losses_round_trip_under_canonical_names() -> None:
    data = load_platform("orange_pi_5").to_dict()
    assert all("model_concurrency_loss" not in c for c in data["components"])
    data["components"][1]["model_concurrency_loss"] = {"MobileNet-V2": 0.18, "squeezenet_v2": 0.0}
    measured = parse_platform(data)
    big = measured.component("big")
    assert big.loss_for("mobilenet_v2") == 0.18
    assert big.loss_for("squeezenet_v2") == 0.0
    assert big.loss_for("resnet50") == big.concurrency_loss  # not measured: the component's figure
    assert parse_platform(measured.to_dict()) == measured


def test_transfer_costs_grow_with_size_and_gpu_links_cost_more() -> None:
    p = load_platform("orange_pi_5")
    cpu_cpu, cpu_gpu, gpu_cpu = p.transfer("big", "little"), p.transfer("big", "gpu"), p.transfer("gpu", "little")
    assert cpu_cpu.seconds(1e6) < cpu_cpu.seconds(4e6)
    for nbytes in (0, 1e5, 1e6, 1e7):
        assert cpu_cpu.seconds(nbytes) < cpu_gpu.seconds(nbytes)
        assert cpu_cpu.seconds(nbytes) < gpu_cpu.seconds(nbytes)


def _set(data: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    node: Any = data
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return data


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("components", 1, "cores"), -2, "components[1].cores: expected a positive integer, got -2"),
        (("components", 0, "cores"), 2.5, "components[0].cores: expected a positive integer, got 2.5"),
        (("components", 0, "kind"), "tpu", "components[0].kind: expected one of cpu, gpu, got 'tpu'"),
        (("components", 2, "gflops", "conv"), 0, "components[2].gflops.conv: expected a positive number, got 0"),
        (("components", 0, "gflops", "fc"), float("nan"), "components[0].gflops.fc: expected a positive number"),
        (("components", 1, "sharing"), "lottery", "components[1].sharing: expected one of fair, round_robin"),
        (("components", 1, "concurrency_loss"), 1.5, "components[1].concurrency_loss: expected a fraction in [0, 1)"),
        (("components", 1, "interference"), 1.0, "components[1].interference: expected a fraction in [0, 1)"),
        (("components", 2, "interference"), -0.1, "components[2].interference: expected a number >= 0"),
        (("components", 0, "parallelism"), 0.5, "components[0].parallelism: expected a number of stages >= 1"),
        (
            ("components", 1, "model_concurrency_loss"),
            {"resnet50": 1.2},
            "components[1].model_concurrency_loss.resnet50: expected a fraction in [0, 1)",
        ),
        (
            ("components", 1, "model_concurrency_loss"),
            {"yolo9000": 0.1},
            "components[1].model_concurrency_loss.yolo9000: unknown model 'yolo9000'",
        ),
        (
            ("components", 1, "model_concurrency_loss"),
            [0.1],
            "components[1].model_concurrency_loss: expected a mapping of model -> fraction",
        ),
        (("components", 0, "parallelism"), float("nan"), "components[0].parallelism: expected a positive number"),
        (("components", 1, "cpus"), [0, -1], "components[1].cpus: expected a list of CPU numbers"),
        (("components", 2, "name"), "big", "components[2].name: duplicate component name 'big'"),
        (("components", 0, "name"), "2gpu", "components[0].name: expected letters, digits"),
        (("transfers", "cpu_to_gpu", "us_per_mb"), -1, "transfers.cpu_to_gpu.us_per_mb: expected a number >= 0"),
        (("reference_component",), "npu", "reference_component: 'npu' is not one of gpu, big, little"),
        (("calibrated",), "yes", "calibrated: expected true or false"),
        (("components",), [], "components: expected a non-empty list"),
        (("name",), " ", "name: must not be empty"),  # what reports and estimator checkpoints are keyed by
        # clusters sharing a core, or a core counted twice, would be planned as independent capacity
        (("components", 1, "cpus"), [4, 4, 5, 6], "components[1].cpus: CPU 4 is listed twice"),
        (("components", 2, "cpus"), [0, 1, 2, 7], "components[2].cpus: CPU 7 is also in 'big'"),
        (("components", 1, "cores"), 8, "components[1].cores: 8 cores, but cpus lists 4 ([4, 5, 6, 7])"),
    ],
)
def test_bad_values_name_the_field(path: tuple[Any, ...], value: Any, message: str) -> None:
    with pytest.raises(PlatformError) as info:
        parse_platform(_set(_data(), path, value))
    assert message in str(info.value)


def test_a_gpus_host_process_may_share_cpus() -> None:
    """Discovery gives every GPU the spare CPUs for its host process; only CPU clusters are exclusive."""
    data = _data()
    gpu = next(c for c in data["components"] if c["kind"] == "gpu")
    gpu["cpus"] = [4]  # also big's
    data["components"].append({**gpu, "name": "gpu2"})
    data["transfers"]["gpu_to_gpu"] = data["transfers"]["gpu_to_cpu"]  # two GPUs: a transfer between them
    assert parse_platform(data).component("gpu2").cpus == (4,)


def test_unknown_and_missing_fields_are_rejected() -> None:
    data = _data()
    data["components"][1]["turbo"] = True
    with pytest.raises(PlatformError, match=r"components\[1\]\.turbo: unknown field"):
        parse_platform(data)
    data = _data()
    data["colour"] = "red"
    with pytest.raises(PlatformError, match=r"colour: unknown field"):
        parse_platform(data)
    data = _data()
    del data["components"][0]["memory_bandwidth_gbs"]
    with pytest.raises(PlatformError, match=r"components\[0\]\.memory_bandwidth_gbs: missing required field"):
        parse_platform(data)
    data = _data()
    del data["transfers"]["gpu_to_cpu"]
    with pytest.raises(PlatformError, match=r"transfers\.gpu_to_cpu: missing required field"):
        parse_platform(data)


def test_bad_files(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: [unclosed\n")
    with pytest.raises(PlatformError, match="not valid YAML"):
        load_platform(broken)
    with pytest.raises(PlatformError, match="does not exist"):
        load_platform(tmp_path / "missing.yaml")
    with pytest.raises(PlatformError, match="is a directory, not a file"):
        load_platform(tmp_path)
    with pytest.raises(PlatformError, match="unknown platform 'jetson_nano'"):
        load_platform("jetson_nano")
    bad = tmp_path / "bad.yaml"
    data = _data()
    data["components"][1]["cores"] = -2
    bad.write_text(yaml.safe_dump(data))
    with pytest.raises(PlatformError, match=r"bad\.yaml: components\[1\]\.cores: expected a positive integer, got -2"):
        load_platform(bad)
    twice = tmp_path / "twice.yaml"  # a hand-edited board file: the first `cores` would vanish silently
    twice.write_text(yaml.safe_dump(_data()).replace("  cores:", "  cores: 3\n  cores:", 1))
    with pytest.raises(PlatformError, match=r"not valid YAML: line \d+, column 3: key 'cores' is given twice"):
        load_platform(twice)


def test_unknown_component_is_named() -> None:
    with pytest.raises(PlatformError, match="no component 'npu'"):
        load_platform("orange_pi_5").component("npu")


def test_profiled_unit_times_round_trip_and_are_validated() -> None:
    units = len(profile("alexnet"))
    data = _data()
    data["unit_times"] = {"alexnet": {"big": [0.001] * units, "gpu": [0.0005] * units}}
    p = parse_platform(data)
    assert p.measured_units("alexnet") == {p.index("big"): (0.001,) * units, p.index("gpu"): (0.0005,) * units}
    assert p.measured_units("resnet50") == {}
    assert parse_platform(p.to_dict()) == p
    assert "unit_times" not in load_platform("orange_pi_5").to_dict()
    bad = [
        ({"alexnt": {"big": [0.001] * units}}, "unit_times.alexnt: unknown model"),
        ({"alexnet": {"npu": [0.001] * units}}, "unit_times.alexnet.npu: no such component"),
        ({"alexnet": {"big": [0.001] * (units - 1)}}, f"expected a list of {units} unit times"),
        ({"alexnet": {"big": [0.001] * (units - 1) + [float("nan")]}}, f"unit_times.alexnet.big[{units - 1}]"),
        ({"alexnet": {"big": [0.001] * (units - 1) + [0]}}, "expected a positive number"),
    ]
    for table, message in bad:
        data["unit_times"] = table
        with pytest.raises(PlatformError, match=re.escape(message)):
            parse_platform(data)


def test_a_platform_without_a_component_drops_its_unit_times_and_moves_the_reference() -> None:
    # what the manager plans on once a component kept failing
    units = len(profile("alexnet"))
    data = _data()
    data["unit_times"] = {"alexnet": {"big": [0.001] * units, "gpu": [0.0005] * units}}
    p = parse_platform(data)
    assert p.reference_component == "gpu"
    less = p.without({"gpu"})
    assert less.component_names == ("big", "little") and less.reference_component == "big"
    assert less.measured_units("alexnet") == {less.index("big"): (0.001,) * units}
    assert parse_platform(less.to_dict()) == less
    assert p.without(set()) == p
    with pytest.raises(PlatformError, match="no component but big, gpu, little"):
        p.without({"big", "gpu", "little"})


def test_model_names_in_measurements_are_canonical_and_given_once() -> None:
    # a calibration table written by hand as AlexNet must not be silently ignored
    units = len(profile("alexnet"))
    data = _data()
    data["unit_times"] = {"AlexNet": {"big": [0.001] * units}}
    p = parse_platform(data)
    assert p.measured_units("alexnet") == {p.index("big"): (0.001,) * units}
    data["unit_times"] = {"AlexNet": {"big": [0.001] * units}, "alexnet": {"gpu": [0.001] * units}}
    with pytest.raises(PlatformError, match="alexnet is given twice"):
        parse_platform(data)
    data = _data()
    data["components"][0]["model_concurrency_loss"] = {"resnet50": 0.1, "ResNet-50": 0.2}
    with pytest.raises(PlatformError, match="resnet50 is given twice"):
        parse_platform(data)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"reference_component": ["gpu"]}, "reference_component: expected a string"),
        ({"components": [{"frequency_ghz": 10**400}]}, "frequency_ghz: expected a positive number"),
    ],
)
def test_values_of_the_wrong_kind_name_their_field(change: dict, message: str) -> None:
    data = _data()
    for key, value in change.items():
        if key == "components":
            data["components"][0].update(value[0])
        else:
            data[key] = value
    with pytest.raises(PlatformError, match=message):
        parse_platform(data)
