"""The paper experiment: a tiny run writes every output, resumes from its cache, and has the keys."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rankmap_ros.experiments.paper import (
    FULL,
    PAPER_POOL,
    PLANNERS,
    QUICK,
    Settings,
    make_mixes,
    run_paper,
)

TINY = Settings(mixes_per_size=1, budget=150, reference_factor=2)
KEYS = ("normalized_throughput", "p_high_priority", "starved", "pearson_r", "plan_seconds")


def test_mixes_are_seeded_and_follow_the_paper() -> None:
    mixes = make_mixes(0, FULL.mixes_per_size)
    assert len(mixes) == 72
    assert [len(m) for m in mixes] == [3] * 24 + [4] * 24 + [5] * 24
    assert all(len(set(m)) == len(m) and set(m) <= set(PAPER_POOL) for m in mixes)
    assert len(PAPER_POOL) == 23 and "inception_resnet_v1" not in PAPER_POOL
    assert make_mixes(0, 2) == make_mixes(0, 2) != make_mixes(1, 2)
    assert QUICK.mixes_per_size < FULL.mixes_per_size


def test_tiny_run_writes_outputs_and_resumes(tmp_path: Path) -> None:
    report = run_paper(tmp_path, settings=TINY, model="simulator")
    assert report["simulated"] is True
    for name in PLANNERS:
        for size in ("3", "4", "5"):
            entry = report["planners"][name]["by_size"][size]
            assert all(key in entry for key in KEYS)
            assert entry["normalized_throughput"] > 0
    assert report["planners"]["gpu"]["by_size"]["3"]["normalized_throughput"] == 1.0
    assert report["planners"]["rankmap_s"]["starved_total"] == 0
    assert report["planners"]["rankmap_d"]["starved_total"] == 0
    assert set(report["rankmap_d_T_over"]["5"]) == set(PLANNERS) - {"rankmap_d"}
    assert 0 < report["reference"]["5"]["mean_ratio"] <= 1
    assert len(report["arrival"]["planners"]["rankmap_d"]) == 4
    assert len(report["priority_shift"]["phases"]) == 4
    saved = json.loads((tmp_path / "paper.json").read_text())
    assert saved["planners"] == json.loads(json.dumps(report["planners"]))
    assert "| rankmap_d |" in (tmp_path / "paper.md").read_text()
    for name in ("fig5", "fig6", "fig7", "fig8", "fig9", "fig10", "plan_seconds"):
        assert (tmp_path / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    from rankmap_ros.experiments import paper

    def planned_again(*_a: object) -> None:
        raise AssertionError("a cached scenario was planned again")

    with pytest.MonkeyPatch.context() as patch:  # every mix and both scenarios come from the cache
        patch.setattr(paper, "run_mix", planned_again)
        patch.setattr(paper, "arrival_scenario", planned_again)
        patch.setattr(paper, "priority_shift_scenario", planned_again)
        again = run_paper(tmp_path, settings=TINY, model="simulator")
    assert again["mixes"] == json.loads(json.dumps(report["mixes"]))
    assert again["arrival"] == report["arrival"] and again["priority_shift"] == report["priority_shift"]
    # a mix file left empty by a Ctrl-C in an older version is computed again, not a traceback
    (torn,) = list((tmp_path / "cache").glob("*/mix_000.json"))
    torn.write_text("")
    redone = run_paper(tmp_path, settings=TINY, model="simulator")["mixes"]
    assert redone[1:] == again["mixes"][1:]  # from the cache, as they were

    def outcome(mix: dict) -> dict:  # what a mix found, without its planning times
        return {name: entry["throughput"] for name, entry in mix["planners"].items()}

    assert outcome(redone[0]) == outcome(again["mixes"][0]) == outcome(json.loads(torn.read_text())["row"])
