"""Calibration fits, measured labels and the runtime's commands."""

from __future__ import annotations

import contextlib
import json
import math
import multiprocessing as mp
import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from rankmap_ros.cli import build_parser, main
from rankmap_ros.core.mapping import Mapping
from rankmap_ros.core.platform import WorkRates, load_platform
from rankmap_ros.core.simulator import simulate, unit_time
from rankmap_ros.core.unitvec import profile
from rankmap_ros.core.workload import Workload
from rankmap_ros.runtime.backends import BackendError
from rankmap_ros.runtime.bench import BenchConfig, bench_runtime, drift, round_spread
from rankmap_ros.runtime.calibrate import (
    calibration_rates,
    fit_component,
    fit_interference,
    fit_model_losses,
    fit_sharing,
    fit_transfers,
    measurements_path,
    nnls,
    quality,
)
from rankmap_ros.runtime.collect import MeasuredLabels
from rankmap_ros.runtime.discover import write_platform
from rankmap_ros.runtime.host import host_platform, independent_platform
from rankmap_ros.runtime.profiler import (
    UnitTimes,
    device_unit,
    profile_components,
    summarise,
    unit_spec,
    whole_model_stage,
)
from rankmap_ros.runtime.shm import owned_entries
from rankmap_ros.runtime.stage import build_model

MODELS = ("squeezenet_v2", "shufflenet", "mobilenet_v2", "alexnet")
two_cpus = pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two usable CPUs for big/little")


def test_nnls_solves_exactly_and_respects_signs():
    a = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    np.testing.assert_allclose(nnls(a, a @ np.array([2.0, 3.0])), [2.0, 3.0], atol=1e-12)
    assert np.all(nnls(a, a @ np.array([2.0, -3.0])) >= 0)


def test_fitting_recovers_the_rates_that_made_the_unit_times():
    truth = load_platform("orange_pi_5")
    big = truth.component("big")
    truth_big = replace(big, gflops=WorkRates(40.0, 12.0, 6.0, 2.0), kernel_overhead_us=30.0, memory_bandwidth_gbs=1e4)
    truth = replace(truth, components=tuple(truth_big if c.name == "big" else c for c in truth.components))
    where = truth.index("big")
    times = {m: tuple(float(unit_time(truth, u)[where]) for u in profile(m)) for m in MODELS}
    measured = UnitTimes("big", times, {})
    start = replace(truth, components=tuple(replace(c, gflops=WorkRates(1, 1, 1, 1)) for c in truth.components))
    fitted = fit_component(start, measured, bandwidth_gbs=1e4)
    got = fitted.component("big")
    np.testing.assert_allclose(
        [got.gflops.conv, got.gflops.dwconv, got.gflops.fc, got.gflops.other], [40, 12, 6, 2], rtol=1e-3
    )
    assert got.kernel_overhead_us == pytest.approx(30.0, rel=1e-3)
    assert quality(fitted, measured).model_worst < 1e-3


def test_transfer_fit_is_fixed_plus_per_megabyte():
    platform = load_platform("orange_pi_5")
    hops = {(1, 1000): 20e-6 + 0.004 * 100e-6, (1, 64, 56, 56): 20e-6 + 0.802816 * 100e-6}
    cost = fit_transfers(platform, hops).transfer("big", "gpu")
    assert cost.fixed_us == pytest.approx(20.0, abs=0.01)
    assert cost.us_per_mb == pytest.approx(100.0, abs=0.01)


@two_cpus
@pytest.mark.parametrize(("loss", "parallelism"), [(0.0, 1.0), (0.2, 1.0), (0.0, 2.0), (0.0, 3.0)])
def test_sharing_fit_recovers_a_loss_or_a_parallelism(loss, parallelism):
    base = load_platform("orange_pi_5")
    workload = Workload.from_models(["squeezenet_v2", "shufflenet", "mobilenet_v2"])

    def on_gpu(platform, **fields):
        comps = tuple(replace(c, **fields) if c.name == "gpu" else c for c in platform.components)
        return replace(platform, components=comps)

    truth = on_gpu(base, concurrency_loss=loss, parallelism=parallelism)
    measured = simulate(truth, workload, Mapping.all_on(workload, "gpu")).throughput
    assert fit_sharing(on_gpu(base, concurrency_loss=0.5), workload, "gpu", measured) == (loss, parallelism)


def test_a_one_core_cluster_never_gets_a_parallelism_above_one():
    """Two DNNs a little faster than fair sharing on one core is noise, not a second core."""
    platform = host_platform("big:0,little:1")
    assert platform.component("big").cores == 1
    workload = Workload.from_models(["squeezenet_v2", "shufflenet"])
    fair = simulate(platform, workload, Mapping.all_on(workload, "big")).throughput
    measured = {n: r * 1.12 for n, r in fair.items()}
    assert fit_sharing(platform, workload, "big", measured) == (0.0, 1.0)


def test_each_model_gets_the_loss_that_reproduces_its_rate_sharing_a_core():
    base = load_platform("orange_pi_5")
    workload = Workload.from_models(["squeezenet_v2", "shufflenet", "mobilenet_v2"])
    truth_losses = {"squeezenet_v2": 0.05, "shufflenet": 0.14, "mobilenet_v2": 0.0}

    def on_big(**fields):
        comps = tuple(replace(c, **fields) if c.name == "big" else c for c in base.components)
        return replace(base, components=comps)

    truth = on_big(model_concurrency_loss=tuple(sorted(truth_losses.items())))
    measured = simulate(truth, workload, Mapping.all_on(workload, "big")).throughput
    measured["mobilenet_v2"] *= 1.1  # faster than sharing without loss allows: no negative loss
    fitted = fit_model_losses(on_big(concurrency_loss=0.3), workload, "big", measured)
    assert fitted == pytest.approx({"squeezenet_v2": 0.05, "shufflenet": 0.14, "mobilenet_v2": 0.0}, abs=2e-4)


def test_interference_is_the_median_slowdown_with_the_other_clusters_busy():
    assert fit_interference([60.0, 80.0, 50.0], [54.0, 72.0, 40.0]) == pytest.approx(1 / 9, abs=1e-4)
    assert fit_interference([60.0], [66.0]) == 0.0  # faster when busy: noise, not a negative slowdown
    assert fit_interference([60.0, 0.0], [50.0, 0.0]) == pytest.approx(0.2)  # a failed run is left out
    assert fit_interference([], []) == 0.0


def test_host_platform_presents_pocl_as_gpu_and_planning_leaves_it_out():
    platform = host_platform("big:0,little:1")
    assert platform.component("big").cpus == (0,) and platform.component("little").cpus == (1,)
    assert platform.reference_component == "big"
    from rankmap_ros.runtime.backends import backend_status

    # PoCL is a dependency: its OpenCL device on these CPUs must become the `gpu` component
    assert ("gpu" in platform.component_names) == backend_status()["opencl"].available
    if "gpu" in platform.component_names:
        assert platform.component("gpu").backend == "opencl"
    assert independent_platform(platform).component_names == ("big", "little")


@two_cpus
def test_measured_labels_run_the_mapping():
    platform = host_platform("big:0,little:1")
    source = MeasuredLabels(platform, seconds=0.5, warmup_s=0.2)
    workload = Workload.from_models(["shufflenet"])
    labels = source.label(workload, Mapping.all_on(workload, "little"))
    assert set(labels) == {"shufflenet"} and labels["shufflenet"] > 0
    assert source.name == "measured" and source.components == platform.component_names
    assert owned_entries(os.getpid()) == []


def test_runtime_commands_are_registered():
    parser = build_parser()
    for argv in (
        ["run", "--workload", "alexnet", "--mapping", "all-big"],
        ["calibrate", "--out", "x.yaml"],
        ["dataset", "collect", "--out", "x.npz"],
        ["bench", "runtime"],
    ):
        assert callable(parser.parse_args(argv).handler)


@two_cpus
def test_run_refuses_a_bad_mapping_in_one_line(capsys):
    assert main(["run", "--workload", "alexnet", "--split", "big:0,little:1", "--mapping", "all-npu"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("rankmap: error: DNN 'alexnet' unit 0: unknown component 'npu'")
    assert "\n" not in err


@two_cpus
def test_run_reports_measured_throughput_as_json(capsys, tmp_path):
    path = tmp_path / "m.json"
    assignment = ("big",) * 9 + ("little",) * 9
    path.write_text(
        json.dumps({"dnns": [{"name": "squeezenet_v2", "model": "squeezenet_v2", "assignment": assignment}]})
    )
    argv = ["run", "--workload", "squeezenet_v2", "--split", "big:0,little:1", "--mapping", str(path)]
    assert main([*argv, "--seconds", "1", "--warmup", "0.5", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["measured"] is True
    assert data["throughput"]["squeezenet_v2"] > 0
    (dnn,) = data["dnns"]
    assert [s["component"] for s in dnn["stages"]] == ["big", "little"]
    assert data["mapping"]["dnns"][0]["stages"][0]["units"] == [0, 9]


@two_cpus
def test_a_run_command_leaves_no_process_behind_when_it_exits():
    """Stage processes and the fork server they come from are gone when `rankmap run` returns."""
    tag = f"rankmap-run-test-{os.getpid()}-{time.monotonic_ns()}"
    argv = ["run", "--workload", "squeezenet_v2", "--split", "big:0,little:1", "--mapping", "all-big"]
    done = subprocess.run(
        [sys.executable, "-m", "rankmap_ros", *argv, "--seconds", "0.5", "--warmup", "0.2", "--json"],
        env={**os.environ, "RANKMAP_TEST_TAG": tag},
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout)["throughput"]["squeezenet_v2"] > 0
    left = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        with contextlib.suppress(OSError):
            if tag.encode() in environ.read_bytes():
                left.append(int(environ.parent.name))
    assert left == []


@two_cpus
def test_calibrate_writes_a_platform_with_each_models_sharing_loss(capsys, tmp_path):
    """The whole command on this host: what it writes loads back, and carries what it measured."""
    out = tmp_path / "host.yaml"
    argv = ["calibrate", "--split", "big:0,little:1", "--no-opencl-cpu", "--models", "squeezenet_v2,shufflenet"]
    assert main([*argv, "--passes", "0", "--out", str(out), "--quiet"]) == 2
    assert "argument --passes: must be at least 1, got 0" in capsys.readouterr().err and not out.exists()
    assert main([*argv, "--contention-seconds", "1", "--passes", "2", "--out", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "per model" in printed and "squeezenet_v2 0." in printed
    platform = load_platform(out)
    assert platform.calibrated and platform.component_names == ("big", "little")
    for comp in platform.components:
        assert {m for m, _ in comp.model_concurrency_loss} == {"squeezenet_v2", "shufflenet"}
        assert all(0.0 <= loss < 1.0 for _, loss in comp.model_concurrency_loss)
    details = json.loads(out.with_suffix(".measurements.json").read_text())
    assert out.with_suffix(".calibration.png").read_bytes().startswith(b"\x89PNG")  # the fit, for people
    for name in ("big", "little"):
        assert set(details["contention"][name]["model_concurrency_loss"]) == {"squeezenet_v2", "shufflenet"}
    # What `bench runtime` compares its own runs with, to tell how far the host drifted since.
    rates, why = calibration_rates(out)
    assert why is None and set(rates) == {"big", "little"}
    assert all(set(r) == {"squeezenet_v2", "shufflenet"} and min(r.values()) > 0 for r in rates.values())
    assert owned_entries(os.getpid()) == []


def test_unit_times_are_scaled_to_the_measured_chain() -> None:
    """Calibration fits stage times as a pipeline runs them: a model's units add up to its chain."""
    from rankmap_ros.runtime.profiler import UnitTimes

    measured = UnitTimes("big", {"a": (0.01, 0.03), "b": (0.02, None)}, {}, {"a": 0.05})
    scaled = measured.chain_scaled()
    assert scaled.times["a"] == pytest.approx((0.0125, 0.0375))
    assert scaled.times["b"] == (0.02, None)  # no chain (a unit the backend cannot run): as measured
    # As platform data only models that ran whole are kept; a slower host scales them too.
    from rankmap_ros.runtime.load import scaled as at_share

    (profiled,) = measured.profiled()
    assert (profiled.model, profiled.component, profiled.seconds) == ("a", "big", pytest.approx((0.0125, 0.0375)))
    units = len(profile("alexnet"))
    alexnet = replace(profiled, model="alexnet", seconds=(0.01,) * units)
    platform = replace(load_platform("orange_pi_5"), unit_times=(alexnet,))
    half = at_share(platform, {"big": 0.5})
    assert half.measured_units("alexnet") == {platform.index("big"): (0.02,) * units}


def test_a_units_time_is_its_typical_pass_not_its_luckiest():
    """Per pass the fastest sample (others' load spoils some), over passes the median."""
    passes = [
        ({"m": [0.010, 0.020], "n": [0.5, None]}, {"m": [0.040, 0.031]}),
        ({"m": [0.012, 0.018], "n": [0.6, None]}, {"m": [0.036]}),
        ({"m": [0.030, 0.019], "n": [0.4, None]}, {"m": [0.050, 0.034]}),
    ]
    measured = summarise("big", passes, {"n": "cannot run unit 1"})
    assert measured.times == {"m": (0.012, 0.019), "n": (0.5, None)}
    assert measured.chains == {"m": 0.034}  # the median of the passes' fastest: 0.031, 0.036, 0.034
    assert measured.chain_samples["m"] == (0.040, 0.031, 0.036, 0.050, 0.034)
    assert measured.errors == {"n": "cannot run unit 1"}


@two_cpus
def test_components_take_turns_and_every_profiling_process_ends():
    platform = host_platform("big:0,little:1", opencl_cpu_as_gpu=False)
    said: list[str] = []
    found = profile_components(platform, ["big", "little"], ["squeezenet_v2"], passes=2, progress=said.append)
    assert said == ["pass 1/2 on big", "pass 1/2 on little", "pass 2/2 on big", "pass 2/2 on little"]
    assert set(found) == {"big", "little"}
    for measured in found.values():
        assert all(t is not None and t > 0 for t in measured.times["squeezenet_v2"])
        assert len(measured.chain_samples["squeezenet_v2"]) >= 2 * 3  # each pass: at least three samples
    assert mp.active_children() == []
    # One component's process dying (an unknown model) stops the others too, and says which.
    with pytest.raises(BackendError, match="profiling process for big died"):
        profile_components(platform, ["big", "little"], ["no_such_model"], passes=1)
    assert mp.active_children() == []
    with pytest.raises(ValueError, match="at least one pass"):
        profile_components(platform, ["big"], ["squeezenet_v2"], passes=0)


@two_cpus
def test_profiling_times_every_unit_and_the_whole_chain_in_a_bound_process():
    platform = host_platform("big:0,little:1", opencl_cpu_as_gpu=False)
    measured = profile_components(platform, ["big"], ["squeezenet_v2"], passes=1)["big"]
    times = measured.times["squeezenet_v2"]
    assert len(times) == len(profile("squeezenet_v2")) and all(t is not None and t > 0 for t in times)
    chain = measured.chains["squeezenet_v2"]
    assert chain == min(measured.chain_samples["squeezenet_v2"])  # one pass: its fastest sample
    # the chain runs the same units once each: neither far above nor below their sum
    assert 0.5 < chain / sum(times) < 3.0
    assert measured.errors == {}
    assert owned_entries(os.getpid()) == []


def test_gpu_style_timing_runs_what_a_stage_runs():
    """A unit on its device and the whole model as one stage compute what the model computes."""
    platform = host_platform("big:0", opencl_cpu_as_gpu=False)
    component = platform.component("big")
    net = build_model("squeezenet_v2")
    run, x = whole_model_stage(component, "squeezenet_v2", net)
    with torch.inference_mode():
        want = net(torch.from_numpy(x)).numpy()
    assert np.allclose(run(x), want, atol=1e-4 * np.abs(want).max())
    step, state = device_unit(unit_spec(component, "squeezenet_v2", 3), net.slice(3, 4).eval())
    with torch.inference_mode():
        assert torch.allclose(step(state), net.slice(3, 4)(state), atol=1e-5)


def test_round_spread_is_fastest_over_slowest():
    assert round_spread([10.0, 12.0, 11.0]) == pytest.approx(0.2)
    assert round_spread([5.0, 0.0]) == math.inf


def test_drift_compares_only_the_scenario_calibration_ran():
    calibrated = {"big": {"a": 20.0, "b": 10.0}, "little": {"a": 20.0, "c": 5.0}}
    measured = {"all_on_big": {"a": 15.0, "b": 11.0}, "all_on_little": {"a": 15.0, "b": 11.0}}
    found = drift(calibrated, measured, ("a", "b"))
    assert found == {"big": {"a": pytest.approx(-0.25), "b": pytest.approx(0.1)}}  # little ran other DNNs


def test_calibration_rates_come_from_the_measurements_beside_the_platform(tmp_path):
    platform = tmp_path / "host.yaml"
    rates, why = calibration_rates(platform)
    assert rates == {} and "no host.measurements.json" in why
    measurements_path(platform).write_text("{not json")
    rates, why = calibration_rates(platform)
    assert rates == {} and "unreadable" in why
    measurements_path(platform).write_text(json.dumps({"contention": {"big": {"throughput": {"a": 20.5}}}}))
    assert calibration_rates(platform) == ({"big": {"a": 20.5}}, None)
    wrong = ([], {"contention": []}, {"contention": {"big": 3}}, {"contention": {"big": {"throughput": {"a": "x"}}}})
    for shape in wrong:
        measurements_path(platform).write_text(json.dumps(shape))
        rates, why = calibration_rates(platform)
        assert rates == {} and "unreadable" in why
    # no rate worth comparing with: none, zero or not a number
    for measured in ({}, {"a": 0.0}, {"a": float("nan")}):
        measurements_path(platform).write_text(json.dumps({"contention": {"big": {"throughput": measured}}}))
        rates, why = calibration_rates(platform)
        assert rates == {} and "holds no sharing runs" in why
    # a file from before the rates had a key of their own: beside the fitted figures
    fitted = {"concurrency_loss": 0.1, "model_concurrency_loss": {"a": 0.2}, "parallelism": 1, "available_share": 1}
    old = {**fitted, "a": 9.5}
    measurements_path(platform).write_text(json.dumps({"contention": {"big": old}}))
    assert calibration_rates(platform) == ({"big": {"a": 9.5}}, None)
    # a calibrate stopped between its two files: new measurements beside the older platform
    write_platform(load_platform("orange_pi_5"), platform)
    measured = {"contention": {"big": {"throughput": {"a": 20.5}}}}
    measurements_path(platform).write_text(json.dumps({"platform": load_platform(platform).to_dict(), **measured}))
    assert calibration_rates(platform) == ({"big": {"a": 20.5}}, None)
    other = replace(load_platform("orange_pi_5"), description="calibrated a minute later")
    measurements_path(platform).write_text(json.dumps({"platform": other.to_dict(), **measured}))
    rates, why = calibration_rates(platform)
    assert rates == {} and why == "host.measurements.json was measured for another calibration than host.yaml"


@two_cpus
def test_runtime_benchmark_reports_every_target_and_the_drift_since_calibration():
    """A short `bench runtime` on this host: every figure the targets are judged on is there."""
    platform = host_platform("big:0,little:1", opencl_cpu_as_gpu=False)
    workload = Workload.from_models(["squeezenet_v2", "shufflenet"])
    cfg = BenchConfig(seconds=0.5, warmup_s=0.3, rounds=1, replacements=2, random_mappings=1, planner_simulations=100)
    rates = {"big": {"squeezenet_v2": 1e6, "shufflenet": 1e6}}  # nothing on this host runs a million a second
    result = bench_runtime(platform, workload, cfg, calibrated_rates=rates)
    scenarios = {"all_on_big", "all_on_little", "own_component", "planner"}
    assert result["measured"] and set(result["throughput"]) == scenarios
    assert result["speedup_vs_all_on_one"] > 0 and 0 < result["hop_ms_1x64x56x56"] < 50
    accuracy = result["random_mappings"]["planner_components"]
    assert len(accuracy["samples"]) == 1 and math.isfinite(accuracy["worst_abs_error"])
    assert result["leaks"]["leaked_processes"] == 0 and result["leaks"]["leaked_shm_entries"] == 0
    assert set(result["drift_since_calibration"]) == {"big"}
    assert all(-1.0 < d < -0.99 for d in result["drift_since_calibration"]["big"].values())
    assert result["failures"] == {}
