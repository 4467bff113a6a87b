"""The search-design comparison runs and ranks the shipped planner against the plain variants."""

import json
from pathlib import Path
from typing import Any

import pytest

from rankmap_ros.experiments import search
from rankmap_ros.experiments.search import VARIANTS, run_search_comparison


def test_small_comparison_has_every_variant() -> None:
    result = run_search_comparison(mixes_per_size=1, budget=150, reference_factor=2, repeats=1)
    assert result["simulated"] is True and len(result["mixes"]) == 6  # 3 mixes x 2 objectives
    for mode in ("dynamic", "static", "both"):
        for name in VARIANTS:
            entry = result["variants"][mode][name]
            assert entry["worst_ratio"] <= entry["mean_ratio"] <= 1.0 + 1e-9  # below 0: nothing qualified
        assert result["variants"][mode]["rankmap"]["worst_ratio"] > 0


def test_an_interrupted_comparison_resumes_from_its_rows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # about 20 minutes by default: a Ctrl-C must not throw the finished rows away
    settings = {"mixes_per_size": 1, "budget": 60, "reference_factor": 1, "repeats": 1}
    whole = run_search_comparison(**settings, out_dir=tmp_path)
    assert json.loads((tmp_path / "search.json").read_text())["variants"] == whole["variants"]
    assert (tmp_path / "search.png").read_bytes().startswith(b"\x89PNG")
    rows = sorted(tmp_path.glob("cache/*/mix_*.json"))
    assert len(rows) == 6
    rows[-1].unlink()
    calls: list[str] = []
    real = search._variant

    def counted(name: str, *args: Any) -> float:
        calls.append(name)
        return real(name, *args)

    monkeypatch.setattr(search, "_variant", counted)
    resumed = run_search_comparison(**settings, out_dir=tmp_path)
    assert len(calls) == len(VARIANTS) + 1  # one row again: each design once, and the reference
    assert resumed["mixes"] == whole["mixes"] and resumed["variants"] == whole["variants"]
    calls.clear()
    run_search_comparison(**{**settings, "budget": 61}, out_dir=tmp_path)
    assert len(calls) == 6 * (len(VARIANTS) + 1)  # other settings reuse nothing


def test_a_cached_row_that_was_damaged_or_edited_counts_as_missing(tmp_path: Path) -> None:
    """A resumed experiment recomputes such a step rather than stopping with a KeyError."""
    from rankmap_ros.experiments.cache import read_cached, write_cached

    path = tmp_path / "mix_000_dynamic.json"
    row = {"models": ["alexnet"], "mode": "dynamic", "best": 1.5, "scores": {"rankmap": [1.5]}}
    write_cached(path, row)
    assert read_cached(path) == row
    saved = json.loads(path.read_text())
    for damaged in ("{}", "[]", "{not json", json.dumps({**saved, "row": {"mode": "dynamic"}})):
        path.write_text(damaged)
        assert read_cached(path) is None, damaged
