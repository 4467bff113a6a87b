"""The paper's Section II on the simulator: outputs, files and agreement with the paper."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rankmap_ros.core.platform import load_platform
from rankmap_ros.core.workload import Workload
from rankmap_ros.experiments.motivation import MODELS, PAPER, STARVATION_EPSILON, run_motivation, unique_random_mappings

FRACTIONS = ("frac_better_than_baseline", "frac_starving", "frac_p_below_0_2")


def test_small_run_writes_json_and_figures(tmp_path: Path) -> None:
    result = run_motivation(tmp_path, seed=3, samples=20)
    assert result["simulated"] is True
    assert result["platform"] == "orange_pi_5"
    assert result["samples"] == 20
    assert result["starvation_epsilon"] == STARVATION_EPSILON
    for key in FRACTIONS:
        assert 0.0 <= result[key] <= 1.0
    assert set(result["mean_potential_throughput"]) == set(MODELS)
    assert all(0.0 < p <= 1.0 + 1e-9 for p in result["mean_potential_throughput"].values())
    assert result["paper"] == PAPER
    assert json.loads((tmp_path / "motivation.json").read_text()) == json.loads(json.dumps(result))
    for name in ("motivation_fig1_throughput.png", "motivation_fig2_potential.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_same_seed_same_result() -> None:
    assert run_motivation(None, seed=5, samples=15) == run_motivation(None, seed=5, samples=15)


def test_random_mappings_are_unique() -> None:
    platform = load_platform("orange_pi_5")
    mappings = unique_random_mappings(Workload.from_models(MODELS), platform.component_names, 300, seed=0)
    assert len({tuple(d.assignment for d in m.dnns) for m in mappings}) == 300


def test_full_run_is_within_ten_points_of_the_paper() -> None:
    result = run_motivation(None, seed=0, samples=300)
    for key in FRACTIONS:
        assert result[key] == pytest.approx(PAPER[key], abs=0.10), key
