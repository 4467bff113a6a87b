"""PNG figures of the paper experiment (Figures 5-10 and planning time), from its report, with Agg."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from rankmap_ros.experiments.paper import MIX_SIZES, PLANNERS

LABELS = {
    "gpu": "Baseline",
    "mosaic": "MOSAIC",
    "odmdef": "ODMDEF",
    "ga": "GA",
    "omniboost": "OmniBoost",
    "rankmap_s": "RankMap_S",
    "rankmap_d": "RankMap_D",
}


def _grouped(out: Path, report: dict[str, Any], key: str, ylabel: str, title: str, name: str) -> None:
    """One bar per planner in each mix-size group, with each mix as a dot."""
    sizes = [str(s) for s in MIX_SIZES if str(s) in report["planners"]["gpu"]["by_size"]]
    fig = Figure(figsize=(8.0, 3.8))
    ax = fig.subplots()
    width = 0.8 / len(PLANNERS)
    for k, planner in enumerate(PLANNERS):
        xs = np.arange(len(sizes)) + (k - (len(PLANNERS) - 1) / 2) * width
        means = [report["planners"][planner]["by_size"][s][key] for s in sizes]
        ax.bar(xs, means, width, label=LABELS[planner])
        for x, s in zip(xs, sizes, strict=True):
            values = [m["planners"][planner][key] for m in report["mixes"] if str(len(m["models"])) == s]
            ax.plot([x] * len(values), values, ".", color="black", markersize=2)
    ax.set_xticks(range(len(sizes)), [f"{s} DNNs" for s in sizes])
    ax.set_ylabel(ylabel)
    ax.set_title(f"{title} ({report['platform']}, simulated)")
    ax.legend(fontsize=7, ncol=4)
    fig.tight_layout()
    fig.savefig(out / name, dpi=120)


def write_figures(out: Path, report: dict[str, Any]) -> None:
    _grouped(out, report, "normalized_throughput", "T (vs. all-on-GPU)", "Fig. 5: normalized throughput", "fig5.png")
    _grouped(out, report, "p_high_priority", "P of the high-priority DNN", "Fig. 6: critical DNN", "fig6.png")

    fig = Figure(figsize=(6.4, 3.4))
    ax = fig.subplots()
    ax.bar([LABELS[p] for p in PLANNERS], [report["planners"][p]["starved_total"] for p in PLANNERS], color="tab:red")
    ax.set_ylabel(f"starved DNNs (P < {report['starvation_epsilon']})")
    ax.set_title(f"Fig. 7: starvation over {report['planners']['gpu']['mixes']} mixes (simulated)")
    ax.tick_params(axis="x", labelsize=7)
    fig.tight_layout()
    fig.savefig(out / "fig7.png", dpi=120)

    arrival = report["arrival"]
    fig = Figure(figsize=(8.0, 3.4))
    axes = fig.subplots(1, len(arrival["planners"]), sharey=True)
    for ax, (planner, phases) in zip(np.atleast_1d(axes), arrival["planners"].items(), strict=True):
        times = [p["time"] for p in phases] + [phases[-1]["time"] + 150]
        for dnn in phases[-1]["potential_throughput"]:
            values = [p["potential_throughput"].get(dnn, np.nan) for p in phases]
            ax.step(times, [*values, values[-1]], where="post", label=dnn)
        ax.set_title(f"{LABELS[planner]}")
        ax.set_xlabel("time (arrivals)")
    np.atleast_1d(axes)[0].set_ylabel("P")
    np.atleast_1d(axes)[0].legend(fontsize=7)
    fig.suptitle("Fig. 8: DNNs arriving (simulated)")
    fig.tight_layout()
    fig.savefig(out / "fig8.png", dpi=120)

    fig = Figure(figsize=(8.0, 2.6))
    ax = fig.subplots()
    rows = []
    for size in MIX_SIZES:
        rs = [m["planners"]["rankmap_d"]["pearson_r"] for m in report["mixes"] if len(m["models"]) == size]
        rows.append([np.nan if r is None else r for r in rs])
    width = max(len(r) for r in rows)
    grid = np.array([r + [np.nan] * (width - len(r)) for r in rows])
    image = ax.imshow(grid, cmap="RdYlGn", vmin=-1, vmax=1, aspect="auto")
    ax.set_yticks(range(len(MIX_SIZES)), [f"{s} DNNs" for s in MIX_SIZES])
    ax.set_xlabel("mix")
    ax.set_title("Fig. 9: Pearson r of P and p, RankMap_D (simulated)")
    fig.colorbar(image, ax=ax)
    fig.tight_layout()
    fig.savefig(out / "fig9.png", dpi=120)

    shift = report["priority_shift"]
    fig = Figure(figsize=(6.4, 3.4))
    ax = fig.subplots()
    phases = shift["phases"]
    for dnn in shift["models"]:
        values = [p["potential_throughput"][dnn] for p in phases]
        ax.step(range(len(phases) + 1), [*values, values[-1]], where="post", label=dnn)
    ax.set_xticks(
        [k + 0.5 for k in range(len(phases))],
        [f"0.7 on {max(p['priorities'], key=p['priorities'].get)}" for p in phases],
        fontsize=7,
    )
    ax.set_ylabel("P")
    ax.set_title("Fig. 10: RankMap_S under shifting priorities (simulated)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "fig10.png", dpi=120)

    _grouped(out, report, "plan_seconds", "seconds per plan (median bar)", "Planning time", "plan_seconds.png")
