"""Mappings: stages, canonical JSON, and validation errors that say what is wrong."""

import json

import numpy as np
import pytest

from rankmap_ros.core.mapping import DnnMapping, Mapping, MappingError, Stage, unit_count
from rankmap_ros.core.workload import Workload

COMPONENTS = ("gpu", "big", "little")


@pytest.fixture
def workload() -> Workload:
    return Workload.from_models(["alexnet", "squeezenet_v2"])


def test_contiguous_runs_form_stages() -> None:
    dnn = DnnMapping("a", "alexnet", ("gpu", "gpu", "big", "big", "big", "gpu", "little", "little"))
    assert dnn.stages == (Stage(0, 2, "gpu"), Stage(2, 5, "big"), Stage(5, 6, "gpu"), Stage(6, 8, "little"))
    assert DnnMapping.from_stages("a", "alexnet", dnn.stages) == dnn


def test_canonical_json_round_trip(workload: Workload) -> None:
    mapping = Mapping.random(workload, COMPONENTS, np.random.default_rng(3))
    text = mapping.to_json()
    assert Mapping.from_json(text) == mapping
    data = json.loads(text)
    assert data["format"] == "rankmap.mapping/1"
    assert data["dnns"][0]["stages"][0]["units"][0] == 0
    assert data["dnns"][0]["stages"][-1]["units"][1] == unit_count("alexnet")


def test_assignment_form_is_accepted(workload: Workload) -> None:
    n = unit_count("alexnet")
    parsed = Mapping.from_dict({"dnns": [{"name": "alexnet", "model": "alexnet", "assignment": ["big"] * n}]})
    assert parsed.dnns[0].stages == (Stage(0, n, "big"),)


def test_all_on_gpu_covers_every_unit(workload: Workload) -> None:
    mapping = Mapping.all_on(workload, "gpu")
    mapping.validate(workload, COMPONENTS)
    assert mapping.components_used == {"gpu"}


def test_random_mappings_are_valid_and_seeded(workload: Workload) -> None:
    for seed in range(20):
        m = Mapping.random(workload, COMPONENTS, np.random.default_rng(seed), max_stages=3)
        m.validate(workload, COMPONENTS)
        assert all(len(d.stages) <= 3 for d in m.dnns)
    a = Mapping.random(workload, COMPONENTS, np.random.default_rng(7))
    assert a == Mapping.random(workload, COMPONENTS, np.random.default_rng(7))


def test_unknown_component_names_dnn_and_unit(workload: Workload) -> None:
    mapping = Mapping.all_on(workload, "gpu")
    bad = DnnMapping("squeezenet_v2", "squeezenet_v2", ("gpu", "npu", *mapping.dnns[1].assignment[2:]))
    with pytest.raises(MappingError, match="DNN 'squeezenet_v2' unit 1: unknown component 'npu'"):
        Mapping((mapping.dnns[0], bad)).validate(workload, COMPONENTS)


def test_wrong_unit_count(workload: Workload) -> None:
    short = Mapping((DnnMapping("alexnet", "alexnet", ("gpu",) * 5), Mapping.all_on(workload, "gpu").dnns[1]))
    with pytest.raises(MappingError, match="has 8 units, the mapping assigns 5"):
        short.validate(workload, COMPONENTS)


def test_wrong_dnns(workload: Workload) -> None:
    other = Mapping.all_on(Workload.from_models(["alexnet"]), "gpu")
    with pytest.raises(MappingError, match="mapping covers DNNs"):
        other.validate(workload, COMPONENTS)


@pytest.mark.parametrize(
    ("stages", "message"),
    [
        (
            [{"units": [0, 3], "component": "gpu"}, {"units": [4, 8], "component": "big"}],
            "starts at unit 4, expected 3",
        ),
        ([{"units": [0, 0], "component": "gpu"}], r"empty or reversed unit range \[0, 0\)"),
        ([{"units": [0], "component": "gpu"}], r"'units' must be \[start, stop\]"),
        ([{"units": [0, 8], "component": 3}], "'component' must be a string"),
        ([], "non-empty 'stages'"),
        # refused before a list of ten billion entries is built (MemoryError before)
        ([{"units": [0, 10**10], "component": "gpu"}], "stage 0 ends at unit 10000000000, but alexnet has 8 units"),
    ],
)
def test_malformed_stages(stages: list, message: str) -> None:
    with pytest.raises(MappingError, match=message):
        Mapping.from_dict({"dnns": [{"name": "alexnet", "model": "alexnet", "stages": stages}]})


def test_unknown_model_in_stages_is_refused_by_name() -> None:
    stages = [{"units": [0, 10**10], "component": "gpu"}]
    with pytest.raises(MappingError, match="DNN 'x': unknown model 'nonet'"):
        Mapping.from_dict({"dnns": [{"name": "x", "model": "nonet", "stages": stages}]})


def test_not_json_and_wrong_format() -> None:
    with pytest.raises(MappingError, match="not valid JSON"):
        Mapping.from_json("{oops")
    with pytest.raises(MappingError, match="unsupported mapping format"):
        Mapping.from_dict({"format": "other/9", "dnns": []})


def test_a_key_given_twice_or_misspelt_is_named_not_ignored() -> None:
    # json keeps the last of two keys, and a misspelt one was ignored: the file would not say what ran
    stage = '{"units": [0, 8], "component": "gpu"}'
    with pytest.raises(MappingError, match="key 'dnns' is given twice"):
        Mapping.from_json(f'{{"dnns": [], "dnns": [{{"name": "a", "model": "alexnet", "stages": [{stage}]}}]}}')
    cases = {
        "a mapping has unknown keys dnn": {"dnns": [], "dnn": []},
        "mapping entry 0 has unknown keys stage": {"dnns": [{"name": "a", "model": "alexnet", "stage": []}]},
        "DNN 'a' stage 0 has unknown keys comp": {
            "dnns": [{"name": "a", "model": "alexnet", "stages": [{"units": [0, 8], "comp": "gpu"}]}]
        },
    }
    for expected, data in cases.items():
        with pytest.raises(MappingError, match=expected):
            Mapping.from_dict(data)
