"""The paper's Section II ("Motivation") on the simulator: random mappings vs all-on-GPU.

Workload SqueezeNet-V2, Inception-V4, ResNet-50 and VGG-16 on the Orange Pi 5 model. The
baseline maps every DNN onto the GPU; 300 unique random mappings cut each DNN into contiguous
stages on random components. T = mean throughput over the DNNs, normalised to the baseline's;
P_i = throughput_i / throughput of DNN i alone on the GPU. Every number here is simulated.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from tqdm import tqdm

from rankmap_ros.core.files import write_text_atomic
from rankmap_ros.core.mapping import Mapping
from rankmap_ros.core.platform import Platform, load_platform
from rankmap_ros.core.simulator import ideal_throughput, throughputs
from rankmap_ros.core.workload import Workload

MODELS = ("squeezenet_v2", "inception_v4", "resnet50", "vgg16")

# A DNN is starved when it gets less than 5% of its isolated GPU rate. The paper calls a DNN
# starved when its P reads 0 on a 0.1-step axis (Fig. 7), i.e. P rounds to 0: P < 0.05. At that
# point a 30 fps camera stream on a DNN that keeps up with it alone is served at under 1.5 fps.
STARVATION_EPSILON = 0.05
P_LOW = 0.2
T_STARVATION_ZONE = 2.4

# Section II of the paper, measured on the board.
PAPER: dict[str, Any] = {
    "frac_better_than_baseline": 0.91,
    "frac_starving": 0.302,
    "mean_potential_throughput": {"inception_v4": 0.1},
    "frac_p_below_0_2": 0.6,
    "frac_p_below_0_2_note": "the paper says 'more than 60%'",
    "starvation_zone_T": T_STARVATION_ZONE,
}


def unique_random_mappings(workload: Workload, components: tuple[str, ...], count: int, seed: int) -> list[Mapping]:
    """`count` distinct random mappings (the paper's 300 unique mappings), reproducible from the seed."""
    rng = np.random.default_rng(seed)
    seen: set[tuple[tuple[str, ...], ...]] = set()
    mappings: list[Mapping] = []
    for _ in range(100 * count):
        if len(mappings) == count:
            break
        mapping = Mapping.random(workload, components, rng)
        key = tuple(d.assignment for d in mapping.dnns)
        if key not in seen:
            seen.add(key)
            mappings.append(mapping)
    return mappings


def run_motivation(
    out_dir: Path | None = None,
    seed: int = 0,
    samples: int = 300,
    platform: str | Platform = "orange_pi_5",
) -> dict[str, Any]:
    """Run the experiment; with `out_dir`, also write motivation.json and the two figures."""
    plat = platform if isinstance(platform, Platform) else load_platform(platform)
    workload = Workload.from_models(MODELS)
    names = workload.names
    gpu = plat.reference_component
    ideal = np.array([ideal_throughput(plat, m) for m in workload.models])

    baseline = throughputs(plat, workload, [Mapping.all_on(workload, gpu)])[0]
    mappings = unique_random_mappings(workload, plat.component_names, samples, seed)
    rates = np.empty((len(mappings), len(names)))
    for row, mapping in enumerate(tqdm(mappings, desc="motivation (simulated)", file=sys.stderr, disable=None)):
        rates[row] = throughputs(plat, workload, [mapping])[0]

    t_norm = rates.mean(axis=1) / baseline.mean()
    potential = rates / ideal
    starving = potential.min(axis=1) < STARVATION_EPSILON
    high_t = t_norm > T_STARVATION_ZONE
    result: dict[str, Any] = {
        "experiment": "motivation",
        "simulated": True,
        "platform": plat.name,
        "seed": seed,
        "samples": len(mappings),
        "workload": list(workload.models),
        "starvation_epsilon": STARVATION_EPSILON,
        "ideal_throughput": dict(zip(names, ideal.tolist(), strict=True)),
        "baseline": {
            "component": gpu,
            "throughput": dict(zip(names, baseline.tolist(), strict=True)),
            "potential_throughput": dict(zip(names, (baseline / ideal).tolist(), strict=True)),
        },
        "frac_better_than_baseline": float((t_norm > 1.0).mean()),
        "frac_starving": float(starving.mean()),
        "mean_potential_throughput": dict(zip(names, potential.mean(axis=0).tolist(), strict=True)),
        "frac_p_below_0_2": float((potential < P_LOW).mean()),
        "frac_starving_when_T_above_2_4": float(starving[high_t].mean()) if high_t.any() else None,
        "normalized_throughput": {
            "min": float(t_norm.min()),
            "median": float(np.median(t_norm)),
            "max": float(t_norm.max()),
        },
        "paper": PAPER,
    }
    if out_dir is not None:
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        write_text_atomic(out_dir / "motivation.json", json.dumps(result, indent=2) + "\n")
        _plot(out_dir, names, t_norm=t_norm, potential=potential, starving=starving, platform=plat.name)
    return result


def _plot(
    out_dir: Path,
    names: tuple[str, ...],
    *,
    t_norm: np.ndarray,
    potential: np.ndarray,
    starving: np.ndarray,
    platform: str,
) -> None:
    """Figures 1 and 2 of the paper, from simulated data (Figure objects render with Agg, no display)."""
    fig = Figure(figsize=(6.4, 3.6))
    ax = fig.subplots()
    bins = np.linspace(0.0, max(float(t_norm.max()), 1.0) * 1.02, 31)
    ax.hist(
        [t_norm[starving], t_norm[~starving]],
        bins=bins.tolist(),
        stacked=True,
        color=["tab:red", "tab:blue"],
        label=[f"at least one DNN starved (P < {STARVATION_EPSILON})", "no DNN starved"],
    )
    ax.axvline(1.0, color="black", linestyle="--", linewidth=1, label="baseline (all on GPU)")
    ax.set_xlabel("normalized throughput T (vs. all-on-GPU baseline)")
    ax.set_ylabel("mappings")
    ax.set_title(f"Random mappings on {platform} (simulated)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out_dir / "motivation_fig1_throughput.png", dpi=120)

    fig = Figure(figsize=(6.4, 3.6))
    ax = fig.subplots()
    ax.violinplot([potential[:, i] for i in range(len(names))], showmeans=True)
    ax.set_xticks(range(1, len(names) + 1), names)
    ax.axhline(P_LOW, color="gray", linestyle=":", linewidth=1, label=f"P = {P_LOW}")
    ax.axhline(STARVATION_EPSILON, color="tab:red", linestyle="--", linewidth=1, label="starvation threshold")
    ax.set_ylabel("potential throughput P")
    ax.set_title(f"P per DNN over random mappings on {platform} (simulated)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out_dir / "motivation_fig2_potential.png", dpi=120)
