"""Analytic throughput model of several pipelined DNNs sharing the components of a platform.

Everything it returns is simulated. The equations and their sources are in docs/SIMULATOR.md:

1. A unit on a component takes roofline time (work by kind / effective rate, or bytes / memory
   bandwidth, whichever is larger) plus a fixed overhead per kernel launch.
2. A stage's service time is the sum of its units plus the transfer of its input tensor from the
   previous stage's component (Pipe-All: fixed + linear + quadratic in bytes), stretched by the
   component's concurrency loss (its model's own, where calibrated) for every other resident
   stage, and by its interference when
   other components are in use too (caches and memory they share).
3. Components share their time among resident stages: a CPU cluster fairly (Linux CFS), a GPU in
   proportion to each stage's turn, a timeslice plus its mean kernel duration (round-robin
   interleaving of command queues, which starves DNNs made of many short kernels). Time a stage
   cannot use because its DNN is held back by another stage is redistributed (water-filling);
   the shares of all components form a fixed point. A component of parallelism k completes k
   stages' worth of time at once; no stage runs faster than alone.
4. A DNN's rate is the smallest over its stages of (time share / service time).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache, lru_cache

import numpy as np
import torch

from rankmap_ros.core.mapping import Mapping, MappingError
from rankmap_ros.core.platform import Platform
from rankmap_ros.core.unitvec import UnitInfo, describe, profile
from rankmap_ros.core.workload import Workload
from rankmap_ros.core.zoo import get_spec

_MAX_ROUNDS = 200
_TOLERANCE = 1e-10


@dataclass(frozen=True)
class SimResult:
    """Simulated steady state of a mapping. Times in seconds, throughput in inferences/s.

    `stage_time[dnn][k]` is the service time of stage k with the whole component to itself
    (units, input transfer and concurrency loss included); `stage_share[dnn][k]` is the fraction
    of its component's time the stage gets; `utilisation[component]` is the busy fraction.
    """

    throughput: dict[str, float]
    stage_time: dict[str, tuple[float, ...]]
    stage_share: dict[str, tuple[float, ...]]
    utilisation: dict[str, float]
    simulated: bool = True


@dataclass(frozen=True)
class UnitCosts:
    """Per-unit costs of one model on every component of a platform, as prefix sums.

    `time[c][k]` is the time of units [0, k) on component c (`compute`: the same without kernel
    overheads, for mean kernel durations), so a stage [a, b) costs
    time[c][b] - time[c][a] with two lookups; lists, not arrays, because scalar indexing of
    Python lists is several times faster than of numpy arrays in the simulator's inner loop.
    """

    time: tuple[tuple[float, ...], ...]
    compute: tuple[tuple[float, ...], ...]
    kernels: tuple[int, ...]
    in_bytes: tuple[int, ...]


def unit_time(platform: Platform, unit: UnitInfo) -> np.ndarray:
    """Seconds one unit takes alone on each component: roofline plus kernel launches."""
    overhead = np.array([c.kernel_overhead_us * 1e-6 for c in platform.components])
    return _roofline(platform, unit) + unit.kernels * overhead


def _roofline(platform: Platform, unit: UnitInfo) -> np.ndarray:
    """Per component: work by kind over its effective rate, or bytes over bandwidth if slower."""
    other = max(unit.flops - 2 * unit.macs, 0)
    nbytes = unit.in_bytes + unit.out_bytes + unit.weight_bytes
    out = []
    for c in platform.components:
        g = c.gflops
        compute = (
            2 * unit.conv_macs / g.conv + 2 * unit.dwconv_macs / g.dwconv + 2 * unit.fc_macs / g.fc + other / g.other
        ) * 1e-9
        out.append(max(compute, nbytes / (c.memory_bandwidth_gbs * 1e9)))
    return np.array(out)


def costs_of_units(
    platform: Platform, units: Sequence[UnitInfo], measured: dict[int, tuple[float, ...]] | None = None
) -> UnitCosts:
    """Prefix-summed unit costs for any list of units (e.g. a zoo model at another input size).

    `measured` (component index -> seconds per unit) replaces the modelled times of those
    components; their kernel-free share keeps the model's proportion, for mean kernel durations.
    """
    times = np.stack([unit_time(platform, u) for u in units])  # (units, components)
    compute = np.stack([_roofline(platform, u) for u in units])
    for c, seconds in (measured or {}).items():
        compute[:, c] *= np.asarray(seconds) / times[:, c]
        times[:, c] = seconds
    zero = np.zeros((1, len(platform.components)))
    cum = np.concatenate([zero, np.cumsum(times, axis=0)]).T
    cum_compute = np.concatenate([zero, np.cumsum(compute, axis=0)]).T
    kernels = np.concatenate([[0], np.cumsum([u.kernels for u in units])])
    return UnitCosts(
        time=tuple(tuple(row.tolist()) for row in cum),
        compute=tuple(tuple(row.tolist()) for row in cum_compute),
        kernels=tuple(int(k) for k in kernels),
        in_bytes=tuple(u.in_bytes for u in units),
    )


@lru_cache(maxsize=512)
def model_costs(platform: Platform, model: str) -> UnitCosts:
    """Unit costs of a zoo model on a platform (cached: the search calls the simulator 100k times).

    Units the platform profiled for this model (`Platform.unit_times`) take their measured times.
    """
    return costs_of_units(platform, profile(model), platform.measured_units(model))


@cache
def units_at(model: str, input_shape: tuple[int, int, int]) -> tuple[UnitInfo, ...]:
    """Units of a zoo model at a non-default input size (shapes traced on `meta`)."""
    with torch.device("meta"):
        net = get_spec(model).build().eval()
    return describe(net, input_shape)


def ideal_throughput(platform: Platform, model: str, component: str | None = None) -> float:
    """Inferences/s of one model alone on one component (default: the platform's reference, the GPU).

    This is the denominator of the paper's potential throughput P.
    """
    where = platform.index(component or platform.reference_component)
    return 1.0 / model_costs(platform, model).time[where][-1]


def rate_bound(platform: Platform, model: str) -> float:
    """Inferences/s `model` cannot exceed under any mapping: its rates alone on every component
    added up, as if its work split perfectly over all of them; transfers and sharing only lower it."""
    return sum(1.0 / row[-1] for row in model_costs(platform, model).time)


def potential_throughput(platform: Platform, workload: Workload, result: SimResult) -> dict[str, float]:
    """P_i = throughput_i / ideal_i (the paper's metric of how close a DNN runs to its isolated rate)."""
    return {d.name: result.throughput[d.name] / ideal_throughput(platform, d.model) for d in workload.dnns}


@dataclass
class _Stage:
    dnn: int
    component: int
    service: float  # seconds per inference with the whole component
    weight: float  # sharing weight: 1 (fair) or timeslice + mean kernel duration (round robin)


def _stages(platform: Platform, workload: Workload, mapping: Mapping) -> list[_Stage]:
    """Service time and sharing weight of every stage; checks the mapping fits (cheaply)."""
    if len(mapping.dnns) != len(workload.dnns):
        raise MappingError(f"mapping has {len(mapping.dnns)} DNNs, the workload {len(workload.dnns)}")
    where = {name: c for c, name in enumerate(platform.component_names)}
    comps = platform.components
    stages: list[_Stage] = []
    resident = [0] * len(comps)
    for i, (spec, dnn) in enumerate(zip(workload.dnns, mapping.dnns, strict=True)):
        costs = model_costs(platform, spec.model)
        if dnn.model != spec.model or len(dnn.assignment) != len(costs.in_bytes):
            raise MappingError(f"DNN {spec.name!r}: the mapping does not fit model {spec.model}")
        previous = -1
        for stage in dnn.stages:
            c = where.get(stage.component, -1)
            if c < 0:
                raise MappingError(f"DNN {spec.name!r}: unknown component {stage.component!r} on {platform.name}")
            busy = costs.time[c][stage.stop] - costs.time[c][stage.start]
            if previous >= 0:
                busy += platform.transfer(comps[previous].name, comps[c].name).seconds(costs.in_bytes[stage.start])
            weight = 1.0
            if comps[c].sharing == "round_robin":
                kernels = costs.kernels[stage.stop] - costs.kernels[stage.start]
                mean_kernel = (costs.compute[c][stage.stop] - costs.compute[c][stage.start]) / kernels
                weight = comps[c].timeslice_us * 1e-6 + mean_kernel
            stages.append(_Stage(i, c, busy, weight))
            resident[c] += 1
            previous = c
    stretch = interference_factors(platform, [n > 0 for n in resident])
    for s in stages:
        loss = comps[s.component].loss_for(workload.dnns[s.dnn].model)
        s.service *= (1.0 + loss * (resident[s.component] - 1)) * stretch[s.component]
    return stages


def interference_factors(platform: Platform, in_use: Sequence[bool]) -> list[float]:
    """Per component, how much slower its stages run because other components are in use too.

    First order: a component's interference (measured with the other CPU clusters busy) applies
    in full as soon as any other component holds a stage.
    """
    busy = sum(in_use)
    return [1.0 + c.interference if busy - bool(in_use[k]) > 0 else 1.0 for k, c in enumerate(platform.components)]


def simulate(platform: Platform, workload: Workload, mapping: Mapping) -> SimResult:
    """Steady-state throughput of every DNN of a workload under a mapping (simulated)."""
    stages = _stages(platform, workload, mapping)
    capacity = _capacity(platform)
    rates = _equilibrium(stages, len(workload.dnns), len(platform.components), capacity)
    names = platform.component_names
    usage = [0.0] * len(names)
    times: dict[str, list[float]] = {d.name: [] for d in workload.dnns}
    shares: dict[str, list[float]] = {d.name: [] for d in workload.dnns}
    for s in stages:
        name = workload.dnns[s.dnn].name
        share = rates[s.dnn] * s.service
        usage[s.component] += share
        times[name].append(s.service)
        shares[name].append(share)
    return SimResult(
        throughput={d.name: rates[i] for i, d in enumerate(workload.dnns)},
        stage_time={k: tuple(v) for k, v in times.items()},
        stage_share={k: tuple(v) for k, v in shares.items()},
        utilisation={name: min(usage[c] / (capacity[c] if capacity else 1.0), 1.0) for c, name in enumerate(names)},
    )


def throughputs(platform: Platform, workload: Workload, mappings: Sequence[Mapping]) -> np.ndarray:
    """(mappings, DNNs) array of simulated inferences/s: the batch path for searches and experiments."""
    out = np.empty((len(mappings), len(workload.dnns)))
    capacity = _capacity(platform)
    for row, mapping in enumerate(mappings):
        stages = _stages(platform, workload, mapping)
        out[row] = _equilibrium(stages, len(workload.dnns), len(platform.components), capacity)
    return out


def _capacity(platform: Platform) -> list[float] | None:
    """Each component's parallelism, or None when every one time-shares (the common, faster case)."""
    found = [c.parallelism for c in platform.components]
    return found if any(p != 1.0 for p in found) else None


def _equilibrium(stages: list[_Stage], n_dnns: int, n_comps: int, capacity: list[float] | None = None) -> list[float]:
    """DNN rates at the fixed point of per-component weighted water-filling.

    Component c has a level L_c: a stage with weight w gets at most w * L_c of c's time, and
    exactly that when its DNN is held back at c. Per DNN i and component c let A = the summed
    service times of i's stages on c and m = min(w / service) over them; then i's rate is
    r_i = min_c L_c * m_ic, and c is either saturated, sum_i A_ic * r_i = 1, or L_c is infinite.
    Each round solves every component's piecewise-linear equation exactly given the other
    levels (Gauss-Seidel); rounds repeat until the levels stop moving.

    With `capacity` (component parallelism k_c) a component saturates at sum_i A_ic * r_i = k_c,
    and no DNN runs faster than its slowest stage alone (r_i <= 1 / max service), a bound that
    a component of capacity 1 enforces by itself.
    """
    a = [[0.0] * n_comps for _ in range(n_dnns)]
    m = [[math.inf] * n_comps for _ in range(n_dnns)]
    cap = [math.inf] * n_dnns
    for s in stages:
        a[s.dnn][s.component] += s.service
        m[s.dnn][s.component] = min(m[s.dnn][s.component], s.weight / s.service)
        if capacity is not None:
            cap[s.dnn] = min(cap[s.dnn], 1.0 / s.service)
    room = capacity or [1.0] * n_comps
    members = [[i for i in range(n_dnns) if a[i][c] > 0] for c in range(n_comps)]
    links = [[c for c in range(n_comps) if a[i][c] > 0] for i in range(n_dnns)]
    level = [0.0] * n_comps
    for c in range(n_comps):
        total = sum(a[i][c] * m[i][c] for i in members[c])
        level[c] = room[c] / total if total > 0 else math.inf
    for _ in range(_MAX_ROUNDS):
        moved = 0.0
        for c in range(n_comps):
            if not members[c]:
                continue
            new = _solve_level(
                [
                    (a[i][c], m[i][c], min([*(level[k] * m[i][k] for k in links[i] if k != c), cap[i]]))
                    for i in members[c]
                ],
                room[c],
            )
            old = level[c]
            if new != old:
                moved = max(moved, 1.0 if math.isinf(new) or math.isinf(old) else abs(new - old) / old)
            level[c] = new
        if moved < _TOLERANCE:
            break
    return [min([*(level[c] * m[i][c] for c in links[i]), cap[i]]) for i in range(n_dnns)]


def _solve_level(terms: list[tuple[float, float, float]], room: float = 1.0) -> float:
    """Smallest L with sum of A * min(L * m, R) = room over (A, m, R) terms, or inf if never reached."""
    bounded = sorted((r / mm, aa * r, aa * mm) for aa, mm, r in terms if not math.isinf(r))
    free = sum(aa * mm for aa, mm, r in terms if math.isinf(r))
    # Suffix sums of the slopes, so that the slope past the last breakpoint is exactly `free`.
    slopes = [free] * (len(bounded) + 1)
    for k in range(len(bounded) - 1, -1, -1):
        slopes[k] = slopes[k + 1] + bounded[k][2]
    fixed = 0.0
    for k, (breakpoint, capped, _) in enumerate(bounded):
        # Below this breakpoint f(L) = fixed + slopes[k] * L.
        if fixed + slopes[k] * breakpoint >= room:
            return (room - fixed) / slopes[k]
        fixed += capped
    return (room - fixed) / free if free > 0 else math.inf
