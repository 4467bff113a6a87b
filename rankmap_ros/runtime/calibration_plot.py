"""The picture of a calibration: how far the calibrated simulator is from what was measured.

A table of medians hides which units and models the fit misses; a scatter of every unit and a bar
per model show it at a glance (a memory-bound layer far off the line, one model off by 30%).
"""

from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure

from rankmap_ros.runtime.calibrate import Calibration, predictions


def plot_calibration(calibration: Calibration, path: Path) -> None:
    """Left: every unit's simulated against measured time, per component (log-log, the diagonal
    is a perfect fit). Right: each model's whole-chain error, per component."""
    platform = calibration.platform
    fig = Figure(figsize=(11.0, 4.4))
    units_ax, models_ax = fig.subplots(1, 2)
    names = list(calibration.unit_times)
    models: list[str] = []
    low, high = float("inf"), 0.0
    width = 0.8 / len(names)
    for k, comp in enumerate(names):
        measured, simulated, errors = [], [], {}
        for model, predicted, times in predictions(platform, calibration.unit_times[comp].chain_scaled()):
            if min(times) <= 0:
                continue  # not timed: nothing to compare
            measured += [t * 1e3 for t in times]
            simulated += [p * 1e3 for p in predicted]
            errors[model] = 100.0 * (sum(predicted) / sum(times) - 1.0)
            if model not in models:
                models.append(model)
        if not measured:
            continue
        quality = calibration.quality[comp]
        label = f"{comp}: unit median {quality.unit_median:.0%}, worst {quality.unit_worst:.0%}"
        units_ax.scatter(measured, simulated, s=9, alpha=0.6, label=label)
        low, high = min(low, *measured, *simulated), max(high, *measured, *simulated)
        positions = [models.index(m) + (k - (len(names) - 1) / 2) * width for m in errors]
        models_ax.bar(positions, list(errors.values()), width=width, label=comp)
    if high > 0:
        units_ax.plot([low, high], [low, high], color="black", linewidth=0.8)
        units_ax.set_xscale("log")
        units_ax.set_yscale("log")
    units_ax.set_xlabel("measured unit time (ms)")
    units_ax.set_ylabel("calibrated simulator's unit time (ms)")
    units_ax.legend(fontsize=7)
    models_ax.axhline(0.0, color="black", linewidth=0.8)
    models_ax.set_xticks(range(len(models)))
    models_ax.set_xticklabels(models, rotation=30, ha="right", fontsize=8)
    models_ax.set_ylabel("whole model: simulated / measured - 1 (%)")
    models_ax.legend(fontsize=7)
    fig.suptitle(f"Calibration of {platform.name} (measured on this host)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def plot_path(platform_file: str | Path) -> Path:
    """Where `rankmap calibrate` draws its calibration for a platform file."""
    return Path(platform_file).with_suffix(".calibration.png")
