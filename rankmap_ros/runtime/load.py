"""Correcting for a shared machine: how much of each CPU cluster other programs left us.

Runs on a development machine share the cores with whatever else runs there. A run's
`host_busy` (all programs) and `utilisation` (our stages) per CPU cluster give the share that
was available to us: idle time plus our own use. Scaling a platform's speeds by that share
turns the simulator's prediction for an idle machine into one for the machine as it was.
"""

from __future__ import annotations

from dataclasses import replace

from rankmap_ros.core.platform import WORK_KINDS, Platform, WorkRates
from rankmap_ros.runtime.pipeline import RunReport

MIN_SHARE = 0.05


def available_share(report: RunReport) -> dict[str, float]:
    """Per CPU cluster, the share of its cores other programs left us during the run."""
    return {
        c: min(max(1.0 - busy + report.utilisation.get(c, 0.0), MIN_SHARE), 1.0) for c, busy in report.host_busy.items()
    }


def scaled(platform: Platform, share: dict[str, float]) -> Platform:
    """The platform with each component's speed scaled by the share of it that was available."""
    comps = []
    for c in platform.components:
        f = share.get(c.name, 1.0)
        rates = WorkRates(*(getattr(c.gflops, k) * f for k in WORK_KINDS))
        comps.append(replace(c, gflops=rates, kernel_overhead_us=c.kernel_overhead_us / f))
    units = tuple(
        replace(u, seconds=tuple(t / share.get(u.component, 1.0) for t in u.seconds)) for u in platform.unit_times
    )
    return replace(platform, components=tuple(comps), unit_times=units)
