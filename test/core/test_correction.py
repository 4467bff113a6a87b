"""Correcting a throughput model with measured rates: near what ran, fading away from it, per model."""

from __future__ import annotations

import dataclasses
import json
import math
import re
from typing import Any

import numpy as np
import pytest

from rankmap_ros.core.correction import CorrectedModel, MeasurementsError, Observations, platform_key
from rankmap_ros.core.mapping import DnnMapping, Mapping
from rankmap_ros.core.platform import load_platform
from rankmap_ros.core.throughput import SimulatorModel
from rankmap_ros.core.workload import Workload

PLATFORM = load_platform("orange_pi_5")
MODEL = SimulatorModel(PLATFORM)
WORKLOAD = Workload.from_models(["squeezenet_v2", "mobilenet_v2"])


def _mapping(first: str, second: str) -> Mapping:
    """The first DNN whole on `first`, the second whole on `second`."""
    (a, b), whole = WORKLOAD.dnns, Mapping.all_on(WORKLOAD, "gpu")
    return Mapping(
        (
            DnnMapping(a.name, a.model, (first,) * len(whole[a.name].assignment)),
            DnnMapping(b.name, b.model, (second,) * len(whole[b.name].assignment)),
        )
    )


def _predicted(mapping: Mapping) -> dict[str, float]:
    return dict(zip(WORKLOAD.names, MODEL.predict(WORKLOAD, [mapping])[0].tolist(), strict=True))


def _measured(
    factors: list[float], ran: Mapping | None = None, limit: int = 32
) -> tuple[Mapping, dict[str, float], Observations]:
    """`ran` (default: first DNN on the GPU, second on big) noted once per factor, every DNN at factor × the model."""
    ran = ran or _mapping("gpu", "big")
    base = _predicted(ran)
    observations = Observations(PLATFORM.component_names, limit=limit)
    for factor in factors:
        observations.record(MODEL.name, ran, base, {n: r * factor for n, r in base.items()})
    return ran, base, observations


def test_a_measured_mapping_is_predicted_as_measured_and_its_error_fades_elsewhere() -> None:
    ran = _mapping("gpu", "big")
    base = _predicted(ran)
    observations = Observations(PLATFORM.component_names)
    slow = WORKLOAD.names[0]
    noted = observations.record(MODEL.name, ran, base, {slow: base[slow] * 0.5})
    assert noted == {slow: pytest.approx(math.log(0.5))}  # the other DNN was not measured
    model = CorrectedModel(MODEL, observations)
    other = _mapping("little", "big")  # the slow DNN moved, the second stayed
    corrected = model.predict(WORKLOAD, [ran, other])
    plain = MODEL.predict(WORKLOAD, [ran, other])
    # as measured, less a margin of a sixth of how wrong the model was (the doubt at W = 1)
    assert 0.85 * base[slow] * 0.5 < corrected[0, 0] < base[slow] * 0.5
    assert corrected[0, 1] == plain[0, 1] and corrected[1, 1] == plain[1, 1]  # never measured: the model's
    # a mapping unlike the one that ran is trusted less than the measured one: shrunk bias and full doubt
    assert 0.3 * plain[1, 0] < corrected[1, 0] < 0.5 * plain[1, 0]
    # errors measured against another model (the estimator, before a component was dropped) do not apply
    assert not observations.log_corrections("estimator", WORKLOAD, [ran, other]).any()


def test_a_faster_than_predicted_dnn_is_raised_and_an_unmeasured_workload_is_untouched() -> None:
    ran, base, observations = _measured([1.3], _mapping("gpu", "gpu"))
    corrected = CorrectedModel(MODEL, observations).predict(WORKLOAD, [ran])[0]
    ratio = corrected / np.array(list(base.values()))
    assert np.all((ratio > 1.15) & (ratio < 1.3))  # raised, with the same margin as a shortfall
    alone = Workload.from_models(["resnet50"])
    mapping = Mapping.all_on(alone, "gpu")
    assert CorrectedModel(MODEL, observations).predict(alone, [mapping])[0, 0] == MODEL.predict(alone, [mapping])[0, 0]


def test_an_observation_belongs_to_the_model_the_name_ran() -> None:
    _, _, observations = _measured([0.4])
    first, second = WORKLOAD.dnns
    renamed = Workload((dataclasses.replace(first, model="shufflenet"), second))  # same name, another model
    mapping = Mapping.all_on(renamed, "gpu")
    corrected = CorrectedModel(MODEL, observations).predict(renamed, [mapping])[0]
    assert corrected[0] == MODEL.predict(renamed, [mapping])[0, 0]
    assert corrected[1] < MODEL.predict(renamed, [mapping])[0, 1]
    observations.forget(WORKLOAD.names[1])
    assert [set(o.errors) for o in observations.items] == [{WORKLOAD.names[0]}]
    observations.forget(WORKLOAD.names[0])
    assert len(observations) == 0


@pytest.mark.parametrize("rate", [0.0, -1.0, math.nan, math.inf, 1e-9])
def test_rates_that_are_no_measurement_are_left_out(rate: float) -> None:
    ran = _mapping("gpu", "big")
    observations = Observations(PLATFORM.component_names)
    assert observations.record(MODEL.name, ran, _predicted(ran), dict.fromkeys(WORKLOAD.names, rate)) == {}
    assert len(observations) == 0
    assert not observations.log_corrections(MODEL.name, WORKLOAD, [ran]).any()


def test_only_the_newest_observations_are_kept_and_a_snapshot_stays_as_it_was() -> None:
    ran, base, observations = _measured([1 + k / 10 for k in range(5)], limit=3)
    assert len(observations) == 3
    assert observations.items[0].errors[WORKLOAD.names[0]] == pytest.approx(math.log(1.2))
    frozen = observations.snapshot()
    observations.record(MODEL.name, ran, base, base)
    assert len(frozen) == 3 and frozen.items[-1].errors[WORKLOAD.names[0]] == pytest.approx(math.log(1.4))


def test_saved_measurements_come_back_as_they_were_and_only_for_their_platform() -> None:
    ran, _, observations = _measured([0.7])
    key = platform_key(PLATFORM)
    data = json.loads(json.dumps(observations.to_dict(key)))  # as read back from a file
    again = Observations.from_dict(data, key, PLATFORM.component_names)
    assert again.items == observations.items
    assert again.log_corrections(MODEL.name, WORKLOAD, [ran]) == pytest.approx(
        observations.log_corrections(MODEL.name, WORKLOAD, [ran])
    )
    other = platform_key(dataclasses.replace(PLATFORM, reference_component="big"))
    with pytest.raises(MeasurementsError, match="another platform description"):
        Observations.from_dict(data, other, PLATFORM.component_names)


@pytest.mark.parametrize(
    ("damage", "says"),
    [
        (lambda d: d.update(format="rankmap.mapping/1"), "not a rankmap.measurements/1 file"),
        (lambda d: d.update(observations={}), "observations: expected a list"),
        (lambda d: d["observations"][0]["errors"].update(x=0.1), "errors.x: no assignment for it"),
        (lambda d: d["observations"][0]["errors"].update({WORKLOAD.names[0]: "fast"}), "expected a finite log error"),
        (lambda d: d["observations"][0]["errors"].update({WORKLOAD.names[0]: math.nan}), "expected a finite log error"),
        (
            lambda d: d["observations"][0]["assignments"][WORKLOAD.names[0]][1].append("npu"),
            "this platform's components",
        ),
        (lambda d: d["observations"][0].pop("base"), "observations[0]: 'base'"),
    ],
)
def test_damaged_measurements_are_refused_naming_the_entry(damage: Any, says: str) -> None:
    _, _, observations = _measured([0.7])
    data = json.loads(json.dumps(observations.to_dict(platform_key(PLATFORM))))
    damage(data)
    with pytest.raises(MeasurementsError, match=re.escape(says)):
        Observations.from_dict(data, platform_key(PLATFORM), PLATFORM.component_names)


def test_only_the_newest_saved_measurements_are_loaded_and_a_component_list_must_match() -> None:
    _, _, observations = _measured([1 + k / 100 for k in range(40)], limit=100)
    data = json.loads(json.dumps(observations.to_dict(platform_key(PLATFORM))))
    loaded = Observations.from_dict(data, platform_key(PLATFORM), PLATFORM.component_names)
    assert len(loaded) == 32 and loaded.items == observations.items[-32:]
    data["observations"][35]["errors"] = {}
    with pytest.raises(MeasurementsError, match=re.escape("observations[35]: expected base")):
        Observations.from_dict(data, platform_key(PLATFORM), PLATFORM.component_names)
    with pytest.raises(MeasurementsError, match="another platform description"):
        Observations.from_dict(data, platform_key(PLATFORM), ("big", "little", "gpu"))
    # a discovered host's free-text notes are not what the measurements depend on
    assert platform_key(dataclasses.replace(PLATFORM, description="other words")) == platform_key(PLATFORM)
