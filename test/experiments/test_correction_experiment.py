"""Re-planning with measured rates on perturbed truths: the correction removes starvation the model causes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rankmap_ros.core.platform import load_platform
from rankmap_ros.core.simulator import model_costs
from rankmap_ros.experiments import correction
from rankmap_ros.experiments.correction import STRATEGIES, perturbed, run_correction

SMALL = {"mixes_per_size": 2, "rounds": 3, "budget": 100}


def test_a_truth_differs_from_the_model_by_its_seed_only() -> None:
    nominal = load_platform("orange_pi_5")
    truth = perturbed(nominal, ["resnet50"], seed=3)
    assert truth == perturbed(nominal, ["resnet50"], seed=3) and truth != perturbed(nominal, ["resnet50"], seed=4)
    off = (
        np.asarray(model_costs(truth, "resnet50").time)[:, -1]
        / np.asarray(model_costs(nominal, "resnet50").time)[:, -1]
    )
    assert np.all(off != 1.0) and np.all((off > 0.3) & (off < 3.0))
    assert model_costs(truth, "alexnet") == model_costs(nominal, "alexnet")  # only the mix's models are perturbed


def test_measured_rates_take_the_planner_out_of_the_starvation_the_model_led_it_into() -> None:
    result = run_correction(**SMALL)
    assert result["simulated"] is True and len(result["mixes"]) == 6
    last = {s: [row["rounds"][s][-1] for row in result["mixes"]] for s in STRATEGIES}
    assert sum(step["starved"] > 0 for step in last["none"]) >= 2  # planned on the model alone
    assert all(step["starved"] == 0 for step in last["mapping"])
    assert all(step["starved"] == 0 for step in last["oracle"])
    summary = result["summary"]
    assert summary["mapping"][-1]["score_vs_oracle"] > summary["none"][-1]["score_vs_oracle"] + 0.1
    assert summary["mapping"][-1]["median_error"] < summary["none"][-1]["median_error"]
    for row in result["mixes"]:  # the first plan has nothing measured yet: every correction plans the same
        assert row["rounds"]["none"][0] == row["rounds"]["per_dnn"][0] == row["rounds"]["mapping"][0]


def test_an_interrupted_run_resumes_from_its_rows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    whole = run_correction(**SMALL, out_dir=tmp_path)
    assert json.loads((tmp_path / "correction.json").read_text())["summary"] == whole["summary"]
    assert (tmp_path / "correction.png").read_bytes().startswith(b"\x89PNG")
    rows = sorted(tmp_path.glob("cache/*/mix_*.json"))
    assert len(rows) == 6
    rows[0].unlink()
    calls: list[Any] = []
    real = correction._row

    def counted(*args: Any) -> dict[str, Any]:
        calls.append(args)
        return real(*args)

    monkeypatch.setattr(correction, "_row", counted)
    assert run_correction(**SMALL, out_dir=tmp_path)["mixes"] == whole["mixes"]
    assert len(calls) == 1


def test_the_measured_run_plans_again_with_what_this_host_measured(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the host's runtime replaced by a board 40% slower than the model on everything but the GPU
    from types import SimpleNamespace

    from rankmap_ros.core.throughput import SimulatorModel
    from rankmap_ros.experiments.correction_measured import run_correction_measured
    from rankmap_ros.runtime import bench

    nominal = load_platform("orange_pi_5")
    workloads = [("mobilenet_v2", "squeezenet_v2", "resnet50")]
    truth = SimulatorModel(perturbed(nominal, workloads[0], seed=11))
    runs: list[Any] = []

    def run_mapping(platform: Any, workload: Any, mapping: Any, seconds: float, warmup_s: float) -> Any:
        runs.append(mapping)
        rates = truth.predict(workload, [mapping])[0]
        return SimpleNamespace(throughput=dict(zip(workload.names, rates.tolist(), strict=True)))

    monkeypatch.setattr(bench, "run_mapping", run_mapping)
    report = run_correction_measured(nominal, workloads, rounds=3, seconds=0.1, budget=100, out_dir=tmp_path)
    assert report["measured"] is True and len(runs) == 6  # 3 rounds x (none, mapping), alternating
    steps = report["workloads"][0]["rounds"]
    assert steps["none"][0]["mapping"] == steps["mapping"][0]["mapping"]  # nothing measured yet
    assert steps["mapping"][-1]["error"] < steps["none"][-1]["error"]  # it learned what the board does
    assert json.loads((tmp_path / "correction_measured.json").read_text())["summary"] == report["summary"]
    assert (tmp_path / "correction_measured.png").read_bytes().startswith(b"\x89PNG")
    run_correction_measured(nominal, workloads, rounds=3, seconds=0.1, budget=100, out_dir=tmp_path)
    assert len(runs) == 6  # the finished workload is read back, not run again
