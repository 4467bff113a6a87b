from __future__ import annotations

import json
from pathlib import Path

import pytest

from rankmap_ros.experiments import priority_study
from rankmap_ros.experiments.priority_study import VARIANTS, run_priority_study


def test_the_priority_study_writes_json_markdown_and_a_plot_and_resumes_from_its_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    report = run_priority_study(tmp_path, per_size=1, budget=20)
    assert report["simulated"] is True and len(report["mixes"]) == 3  # one mix of 3, 4 and 5 DNNs
    assert {(row["planner"], row["dnns"]) for row in report["rows"]} == {(v, n) for v in VARIANTS for n in (3, 4, 5)}
    for row in report["rows"]:
        assert row["T"] > 0 and 0 <= row["starved"] <= row["dnns"] and -1 <= row["r_P_p_time"] <= 1
    assert json.loads((tmp_path / "priority_study.json").read_text())["rows"] == report["rows"]
    assert "| rankmap_d | 3 |" in (tmp_path / "priority_study.md").read_text()
    assert (tmp_path / "priority_study.png").read_bytes()[:4] == b"\x89PNG"

    def planned_again(*_a: object) -> None:
        raise AssertionError("a cached mix was planned again")

    monkeypatch.setattr(priority_study, "_mix_rows", planned_again)
    assert run_priority_study(tmp_path, per_size=1, budget=20)["rows"] == report["rows"]
