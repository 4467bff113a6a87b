"""Sanity properties of the throughput simulator and the orange_pi_5 calibration tolerance."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from rankmap_ros.core.calibration import evaluate, load_anchors
from rankmap_ros.core.mapping import DnnMapping, Mapping, MappingError, Stage
from rankmap_ros.core.platform import MeasuredUnits, Platform, load_platform
from rankmap_ros.core.simulator import (
    ideal_throughput,
    model_costs,
    potential_throughput,
    simulate,
    throughputs,
    units_at,
)
from rankmap_ros.core.unitvec import profile
from rankmap_ros.core.workload import Workload

POOL = ("alexnet", "squeezenet_v2", "resnet50", "vgg16", "inception_v4", "mobilenet_v2", "googlenet", "densenet121")


@pytest.fixture(scope="module")
def opi() -> Platform:
    return load_platform("orange_pi_5")


def _random_case(rng: np.random.Generator, platform: Platform, size: int) -> tuple[Workload, Mapping]:
    workload = Workload.from_models(rng.choice(POOL, size=size).tolist())
    return workload, Mapping.random(workload, platform.component_names, rng, max_stages=int(rng.integers(1, 5)))


def test_alone_on_the_gpu_gets_the_calibrated_rate(opi: Platform) -> None:
    for model in ("alexnet", "resnet50", "squeezenet"):
        workload = Workload.from_models([model])
        result = simulate(opi, workload, Mapping.all_on(workload, "gpu"))
        expected = 1.0 / model_costs(opi, model).time[0][-1]
        assert result.throughput[model] == pytest.approx(expected, rel=1e-12)
        assert result.throughput[model] == pytest.approx(ideal_throughput(opi, model), rel=1e-12)
        assert potential_throughput(opi, workload, result)[model] == pytest.approx(1.0)
        assert result.utilisation == {"gpu": pytest.approx(1.0), "big": 0.0, "little": 0.0}
        assert result.simulated


def test_pipeline_rate_is_set_by_the_slowest_stage_with_its_input_transfer(opi: Platform) -> None:
    workload = Workload.from_models(["resnet50"])
    n = len(profile("resnet50"))
    mapping = Mapping((DnnMapping.from_stages("resnet50", "resnet50", [Stage(0, 6, "gpu"), Stage(6, n, "big")]),))
    result = simulate(opi, workload, mapping)
    costs = model_costs(opi, "resnet50")
    first = costs.time[0][6]
    second = costs.time[1][n] - costs.time[1][6] + opi.transfer("gpu", "big").seconds(costs.in_bytes[6])
    assert result.stage_time["resnet50"] == pytest.approx((first, second))
    assert result.throughput["resnet50"] == pytest.approx(1.0 / max(first, second))


def test_throughput_positive_finite_deterministic_and_utilisation_bounded(opi: Platform) -> None:
    rng = np.random.default_rng(7)
    for _ in range(200):
        workload, mapping = _random_case(rng, opi, int(rng.integers(1, 6)))
        result = simulate(opi, workload, mapping)
        again = simulate(opi, workload, mapping)
        assert result == again
        assert all(math.isfinite(r) and r > 0 for r in result.throughput.values())
        assert all(0.0 <= u <= 1.0 for u in result.utilisation.values())
        batch = throughputs(opi, workload, [mapping])[0]
        assert batch.tolist() == list(result.throughput.values())
        # Work conservation: every DNN is held back by a component that is fully busy.
        for name, shares in result.stage_share.items():
            dnn = mapping[name]
            busy = [result.utilisation[s.component] for s in dnn.stages]
            assert max(busy) == pytest.approx(1.0, abs=1e-6), (name, shares)


def test_adding_a_stage_never_speeds_up_the_dnns_it_joins(opi: Platform) -> None:
    rng = np.random.default_rng(11)
    for _ in range(150):
        workload, mapping = _random_case(rng, opi, int(rng.integers(1, 5)))
        component = str(rng.choice(opi.component_names))
        extra = str(rng.choice(POOL))
        bigger = Workload.from_models([*workload.models, extra])
        added = Mapping((*mapping.dnns, Mapping.all_on(Workload.from_models([extra]), component).dnns[0]))
        added = Mapping(
            tuple(DnnMapping(n, d.model, d.assignment) for n, d in zip(bigger.names, added.dnns, strict=True))
        )
        before = simulate(opi, workload, mapping).throughput
        after = simulate(opi, bigger, added).throughput
        for name in workload.names:
            if set(mapping[name].assignment) == {component}:
                assert after[name] <= before[name] * (1 + 1e-9), (name, component)


def test_gpu_round_robin_starves_many_kernel_dnns(opi: Platform) -> None:
    """Kernel interleaving gives Inception-V4 (169 short kernels) a far smaller GPU share than VGG-16."""
    workload = Workload.from_models(["inception_v4", "vgg16"])
    result = simulate(opi, workload, Mapping.all_on(workload, "gpu"))
    p = potential_throughput(opi, workload, result)
    assert p["inception_v4"] < 0.5 * p["vgg16"]
    assert sum(result.stage_share[n][0] for n in workload.names) == pytest.approx(1.0)


def test_cpu_cluster_shares_time_fairly_with_a_concurrency_loss(opi: Platform) -> None:
    workload = Workload.from_models(["resnet50", "resnet50"])
    result = simulate(opi, workload, Mapping.all_on(workload, "big"))
    alone = ideal_throughput(opi, "resnet50", "big")
    loss = opi.component("big").concurrency_loss
    for rate in result.throughput.values():
        assert rate == pytest.approx(alone / (2 * (1 + loss)))


def test_a_models_own_concurrency_loss_slows_only_its_stages_and_only_when_shared(opi: Platform) -> None:
    comps = tuple(
        replace(c, concurrency_loss=0.1, model_concurrency_loss=(("resnet50", 0.4),)) if c.name == "big" else c
        for c in opi.components
    )
    sensitive = replace(opi, components=comps)
    alone = Workload.from_models(["resnet50"])
    assert simulate(sensitive, alone, Mapping.all_on(alone, "big")).throughput["resnet50"] == pytest.approx(
        ideal_throughput(opi, "resnet50", "big")
    )
    pair = Workload.from_models(["resnet50", "alexnet"])
    rates = simulate(sensitive, pair, Mapping.all_on(pair, "big")).throughput
    assert rates["resnet50"] == pytest.approx(ideal_throughput(opi, "resnet50", "big") / (2 * 1.4))
    assert rates["alexnet"] == pytest.approx(ideal_throughput(opi, "alexnet", "big") / (2 * 1.1))


def test_interference_slows_a_component_only_while_another_is_in_use(opi: Platform) -> None:
    comps = tuple(replace(c, interference=0.1 if c.name == "big" else 0.0) for c in opi.components)
    noisy = replace(opi, components=comps)
    alone = Workload.from_models(["resnet50"])
    on_big = Mapping.all_on(alone, "big")
    assert simulate(noisy, alone, on_big).throughput == simulate(opi, alone, on_big).throughput
    pair = Workload.from_models(["resnet50", "alexnet"])
    split = Mapping((on_big.dnns[0], Mapping.all_on(Workload.from_models(["alexnet"]), "little").dnns[0]))
    base, slowed = simulate(opi, pair, split).throughput, simulate(noisy, pair, split).throughput
    assert slowed["resnet50"] == pytest.approx(base["resnet50"] / 1.1)
    assert slowed["alexnet"] == pytest.approx(base["alexnet"])


def test_a_parallel_component_runs_several_stages_at_once_but_none_faster_than_alone(opi: Platform) -> None:
    def with_big(parallelism: float) -> Platform:
        comps = tuple(
            replace(c, parallelism=parallelism, concurrency_loss=0.0) if c.name == "big" else c for c in opi.components
        )
        return replace(opi, components=comps)

    trio = Workload.from_models(["resnet50", "alexnet", "squeezenet_v1"])
    on_big = Mapping.all_on(trio, "big")
    shared = simulate(with_big(1.0), trio, on_big)
    alone = {
        d.name: simulate(opi, Workload((d,)), Mapping.all_on(Workload((d,)), "big")).throughput[d.name]
        for d in trio.dnns
    }
    # three stages on a component that completes three at once: each as if alone
    wide = simulate(with_big(3.0), trio, on_big)
    for name, rate in alone.items():
        assert wide.throughput[name] == pytest.approx(rate)
    assert wide.utilisation["big"] == pytest.approx(1.0)
    # in between: the busy time the stages get adds up to the parallelism, none above alone
    mid = simulate(with_big(1.5), trio, on_big)
    busy = sum(mid.stage_share[n][0] for n in alone)
    assert busy == pytest.approx(1.5)
    assert all(shared.throughput[n] < mid.throughput[n] <= alone[n] * (1 + 1e-9) for n in alone)
    assert simulate(with_big(1.5), trio, on_big).throughput == pytest.approx(
        dict(zip(trio.names, throughputs(with_big(1.5), trio, [on_big])[0], strict=True))
    )


def test_bad_mapping_is_rejected(opi: Platform) -> None:
    workload = Workload.from_models(["alexnet"])
    with pytest.raises(MappingError, match="unknown component 'npu'"):
        simulate(opi, workload, Mapping.all_on(workload, "npu"))
    with pytest.raises(MappingError, match="does not fit"):
        simulate(opi, workload, Mapping((DnnMapping("alexnet", "alexnet", ("gpu",) * 3),)))


def test_units_at_another_input_size_scale_the_work() -> None:
    base = sum(u.macs for u in profile("inception_resnet_v1"))
    large = sum(u.macs for u in units_at("inception_resnet_v1", (3, 512, 512)))
    assert large > 2.5 * base


def test_calibration_anchors_within_tolerance(opi: Platform) -> None:
    """GPU-alone rates within +-15% of the paper; latency ratios inside their published ranges."""
    results = evaluate(opi, load_anchors("orange_pi_5"))
    assert len(results) == 18
    misses = [
        f"{r.anchor.label}: {r.simulated:.3g} not in [{r.anchor.low:.3g}, {r.anchor.high:.3g}]"
        for r in results
        if not r.ok
    ]
    assert not misses, misses
    for r in results:
        if r.anchor.kind == "throughput":
            assert abs(r.rel_error) <= 0.15


def test_profiled_units_replace_the_modelled_times_of_their_model_and_component(opi: Platform) -> None:
    n = len(profile("alexnet"))
    seconds = tuple(0.001 * (k + 1) for k in range(n))
    profiled = replace(opi, unit_times=(MeasuredUnits("alexnet", "big", seconds),))
    workload = Workload.from_models(["alexnet", "resnet50"])
    mapping = Mapping(
        (
            DnnMapping.from_stages("alexnet", "alexnet", [Stage(0, 3, "big"), Stage(3, n, "gpu")]),
            DnnMapping.from_stages("resnet50", "resnet50", [Stage(0, len(profile("resnet50")), "little")]),
        )
    )
    before, after = simulate(opi, workload, mapping), simulate(profiled, workload, mapping)
    assert after.stage_time["alexnet"][0] == pytest.approx(sum(seconds[:3]))
    # The GPU stage (input transfer included) and the other model keep their modelled times.
    assert after.stage_time["alexnet"][1] == pytest.approx(before.stage_time["alexnet"][1])
    assert after.stage_time["resnet50"] == pytest.approx(before.stage_time["resnet50"])
    alone = Workload.from_models(["alexnet"])
    assert ideal_throughput(profiled, "alexnet", "big") == pytest.approx(1 / sum(seconds))
    assert simulate(profiled, alone, Mapping.all_on(alone, "big")).throughput["alexnet"] == pytest.approx(
        1 / sum(seconds)
    )


def test_unusable_anchor_files_are_refused_with_their_name(tmp_path, capsys) -> None:
    from rankmap_ros.core.calibration import AnchorError, main

    with pytest.raises(AnchorError, match="no anchors for 'host'"):
        load_anchors("host")
    listed = tmp_path / "listed.yaml"
    listed.write_text("- target: 3\n")
    with pytest.raises(AnchorError, match="expected a mapping with an 'anchors' list"):
        load_anchors(listed)
    typo = tmp_path / "typo.yaml"
    typo.write_text("anchors:\n  - {kind: throughputt, model: alexnet, component: gpu, target: 3}\n")
    with pytest.raises(AnchorError, match="entry 0: ValueError: kind 'throughputt'"):
        load_anchors(typo)
    assert main(["orange_pi_5", "--anchors", str(typo)]) == 2
    assert capsys.readouterr().err.startswith("calibration: error: anchors")
