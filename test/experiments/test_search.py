"""The search-design comparison runs and ranks the shipped planner against the plain variants."""

from rankmap_ros.experiments.search import VARIANTS, run_search_comparison


def test_small_comparison_has_every_variant() -> None:
    result = run_search_comparison(mixes_per_size=1, budget=150, reference_factor=2, repeats=1)
    assert result["simulated"] is True and len(result["mixes"]) == 6  # 3 mixes x 2 objectives
    for mode in ("dynamic", "static", "both"):
        for name in VARIANTS:
            entry = result["variants"][mode][name]
            assert entry["worst_ratio"] <= entry["mean_ratio"] <= 1.0 + 1e-9  # below 0: nothing qualified
        assert result["variants"][mode]["rankmap"]["worst_ratio"] > 0
