"""Calibrate the host platform from measurements, so the simulator predicts this machine.

1. Every unit of the calibration models is timed alone on every component (profiler), and
   each model as a whole chain; the unit times are scaled per model to add up to the chain
   (a unit timed alone keeps its weights in cache; in a pipeline stage it does not).
2. Per component, the simulator's unit cost `t = Σ work_k / G_k + kernels · o` is fitted to
   the unit times by non-negative least squares: G_conv, G_dwconv, G_fc, G_other and the
   per-kernel overhead o. The rows are every contiguous unit range of every model (every
   possible stage), each scaled to relative error, because stage times are what the simulator
   must get right; fitting single units would let many tiny units outweigh the costly ones.
   Memory bandwidth is measured by a large copy.
3. The shared-memory hop is timed at several sizes and fitted as fixed + per-MB cost; every
   transfer kind gets it (all stages of this host talk through the same channels).
4. How each component shares itself is fitted to the measured throughput of the calibration
   models all running at once on it, with a CPU cluster's speed scaled by the share of it other
   programs left during that run (runtime/load.py): a concurrency loss when they run slower
   than fair sharing predicts, a parallelism above 1 when they run faster (a large GPU whose
   batch-1 stages are bound by kernel launches; a CPU cluster whose stages split its cores).
   Where the component time-shares (parallelism 1, fair), each calibration model then gets its
   own loss, the one that reproduces its own rate in that run: models lose different amounts
   to sharing a core, and the component's one figure stays for every other model.
5. The interference of each CPU cluster: a model alone on it, once with the other clusters
   idle and once with another model busy on each of them, in alternation; the slowdown
   (median over every calibration model but the last, which is the load; at least one) is what
   a stage loses to work elsewhere on the machine. Models lose different amounts, so one probe
   is not enough.
Unit times are the median over passes of each pass's fastest sample: the machine's typical speed.
The result is a platform file with `calibrated: true`; what was measured is kept beside it.
"""

from __future__ import annotations

import itertools
import json
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from rankmap_ros.core.mapping import Mapping
from rankmap_ros.core.platform import WORK_KINDS, Platform, TransferCost, WorkRates, load_platform
from rankmap_ros.core.simulator import simulate, unit_time
from rankmap_ros.core.unitvec import UnitInfo, profile
from rankmap_ros.core.workload import Workload
from rankmap_ros.runtime.load import available_share, scaled
from rankmap_ros.runtime.pipeline import Pipeline, RunReport
from rankmap_ros.runtime.profiler import PASSES, UnitTimes, hop_seconds, profile_components

DEFAULT_MODELS: tuple[str, ...] = ("squeezenet_v2", "shufflenet", "mobilenet_v2", "alexnet")
HOP_SHAPES: tuple[tuple[int, ...], ...] = ((1, 1000), (1, 64, 56, 56), (1, 3, 227, 227), (1, 256, 56, 56))
MAX_GFLOPS = 1e4
_MAX_LOSS = 0.95  # a concurrency loss beyond this is a broken measurement, not sharing
Progress = Callable[[str], None]


@dataclass(frozen=True)
class FitQuality:
    """Relative errors of the calibrated simulator against what was measured, per component."""

    unit_median: float
    unit_worst: float
    model_median: float
    model_worst: float


@dataclass
class Calibration:
    platform: Platform
    unit_times: dict[str, UnitTimes]
    quality: dict[str, FitQuality]
    hops: dict[str, float]
    contention: dict[str, dict[str, Any]] = field(default_factory=dict)
    interference: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "platform": self.platform.to_dict(),
            "measured": True,
            "unit_times": {
                c: {"times": u.times, "errors": u.errors, "chains": u.chains, "chain_samples": u.chain_samples}
                for c, u in self.unit_times.items()
            },
            "quality": {c: vars(q) for c, q in self.quality.items()},
            "hop_seconds": self.hops,
            "contention": self.contention,
            "interference": self.interference,
        }


def _features(unit: UnitInfo) -> np.ndarray:
    other = max(unit.flops - 2 * unit.macs, 0)
    return np.array(
        [2 * unit.conv_macs * 1e-9, 2 * unit.dwconv_macs * 1e-9, 2 * unit.fc_macs * 1e-9, other * 1e-9, unit.kernels]
    )


def nnls(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Least squares with x >= 0, exactly, by trying every support (a has a handful of columns)."""
    n = a.shape[1]
    best, best_cost = np.zeros(n), float(np.sum(b**2))
    for size in range(1, n + 1):
        for cols in itertools.combinations(range(n), size):
            sol, *_ = np.linalg.lstsq(a[:, cols], b, rcond=None)
            if np.any(sol < 0):
                continue
            x = np.zeros(n)
            x[list(cols)] = sol
            cost = float(np.sum((a @ x - b) ** 2))
            if cost < best_cost:
                best, best_cost = x, cost
    return best


def fit_component(platform: Platform, measured: UnitTimes, bandwidth_gbs: float) -> Platform:
    """The platform with one component's rates and kernel overhead fitted to its unit times."""
    rows = []
    for model, times in measured.times.items():
        if any(t is None or t <= 0 for t in times):
            continue
        feats = np.concatenate([np.zeros((1, 5)), np.cumsum([_features(u) for u in profile(model)], axis=0)])
        spent = np.concatenate([[0.0], np.cumsum(np.asarray(times, dtype=float))])
        # Every contiguous unit range is a possible stage: fit relative error of stage times.
        rows += [
            (feats[j] - feats[i]) / (spent[j] - spent[i])
            for i in range(len(times))
            for j in range(i + 1, len(times) + 1)
        ]
    comp = platform.component(measured.component)
    if not rows:
        return platform
    a = np.array(rows)
    b = np.ones(len(rows))
    used = [k for k in range(a.shape[1]) if np.any(a[:, k] > 0)]
    x = np.zeros(a.shape[1])
    x[used] = nnls(a[:, used], b)
    old = [getattr(comp.gflops, k) for k in WORK_KINDS]
    rates = [min(1.0 / x[k], MAX_GFLOPS) if x[k] > 0 else (MAX_GFLOPS if k in used else old[k]) for k in range(4)]
    new = replace(
        comp,
        gflops=WorkRates(*(round(float(r), 4) for r in rates)),
        kernel_overhead_us=round(float(x[4]) * 1e6, 3),
        memory_bandwidth_gbs=round(float(bandwidth_gbs), 3),
    )
    return replace(platform, components=tuple(new if c.name == comp.name else c for c in platform.components))


def predictions(platform: Platform, measured: UnitTimes) -> Iterator[tuple[str, list[float], list[float]]]:
    """(model, the simulator's unit times, the measured ones) for every model that ran whole."""
    where = platform.index(measured.component)
    for model, times in measured.times.items():
        if times and all(t is not None for t in times):
            predicted = [float(unit_time(platform, u)[where]) for u in profile(model)]
            yield model, predicted, [float(t or 0.0) for t in times]


def quality(platform: Platform, measured: UnitTimes) -> FitQuality:
    unit_err, model_err = [], []
    for _, predicted, times in predictions(platform, measured):
        unit_err += [abs(p / t - 1) for p, t in zip(predicted, times, strict=True) if t]
        model_err.append(abs(sum(predicted) / sum(t for t in times if t) - 1))
    if not unit_err:
        return FitQuality(math.nan, math.nan, math.nan, math.nan)
    return FitQuality(
        float(np.median(unit_err)), float(np.max(unit_err)), float(np.median(model_err)), float(np.max(model_err))
    )


def copy_bandwidth_gbs(megabytes: int = 64) -> float:
    """Memory bandwidth as one large copy sees it (read + write counted), best of three."""
    src = np.ones(megabytes * 2**20 // 8)
    dst = np.empty_like(src)
    best = math.inf
    for _ in range(3):
        t0 = time.perf_counter()
        np.copyto(dst, src)
        best = min(best, time.perf_counter() - t0)
    return 2 * src.nbytes / best / 1e9


def fit_transfers(platform: Platform, hops: dict[tuple[int, ...], float]) -> Platform:
    """fixed + per-MB fit (non-negative) of the measured hops, for every transfer kind."""
    sizes = np.array([4 * math.prod(s) / 1e6 for s in hops])
    seconds = np.array(list(hops.values()))
    fixed, per_mb = nnls(np.stack([np.ones_like(sizes), sizes], axis=1), seconds * 1e6)
    cost = TransferCost(round(float(fixed), 3), round(float(per_mb), 3), 0.0)
    return replace(platform, transfers=tuple((k, cost) for k, _ in platform.transfers))


def fit_sharing(
    platform: Platform, workload: Workload, component: str, measured: dict[str, float]
) -> tuple[float, float]:
    """The (concurrency loss, parallelism) of `component` that best explain the measured rates of all-on-it.

    Either a loss with parallelism 1, or parallelism in [1, DNNs] with no loss: what the
    measurement can tell apart. A CPU cluster runs at most one stage per core at once, so a
    one-core cluster whose DNNs happened to run a little faster than fair sharing allows gets
    no loss, not a parallelism it does not have.
    """
    mapping = Mapping.all_on(workload, component)
    most = float(len(workload))
    comp = platform.component(component)
    if comp.backend == "cpu":
        most = min(most, float(comp.cores))
    candidates = [(float(a), 1.0) for a in np.linspace(0.0, _MAX_LOSS, 96)]
    candidates += [
        (0.0, float(k)) for k in np.linspace(1.0, len(workload), 8 * (len(workload) - 1) + 1)[1:] if k <= most
    ]
    best, best_err = candidates[0], math.inf
    for alpha, k in candidates:
        rates = simulate(
            _with_component(platform, component, concurrency_loss=alpha, parallelism=k), workload, mapping
        ).throughput
        err = sum(math.log(rates[n] / measured[n]) ** 2 for n in measured if measured[n] > 0)
        if err < best_err:
            best, best_err = (alpha, k), err
    return round(best[0], 4), round(best[1], 4)


def fit_model_losses(
    platform: Platform, workload: Workload, component: str, measured: dict[str, float]
) -> dict[str, float]:
    """Each model's own concurrency loss on `component`, so that all-on-it reproduces its measured rate.

    Under fair sharing every DNN of all-on-one gets the same share of the component, so a DNN's
    rate depends on its own loss alone and each is solved by bisection; a second sweep settles
    any coupling the solver's water-filling adds. Bounded like the component's loss.
    """
    mapping = Mapping.all_on(workload, component)
    losses = {d.model: platform.component(component).concurrency_loss for d in workload.dnns}

    def rate(name: str, model: str, loss: float) -> float:
        trial = _with_component(
            platform, component, model_concurrency_loss=tuple(sorted({**losses, model: loss}.items()))
        )
        return simulate(trial, workload, mapping).throughput[name]

    for _ in range(2):
        for dnn in workload.dnns:
            target = measured.get(dnn.name, 0.0)
            if target <= 0:
                continue
            lo, hi = 0.0, _MAX_LOSS
            if rate(dnn.name, dnn.model, lo) <= target:
                hi = lo
            elif rate(dnn.name, dnn.model, hi) >= target:
                lo = hi
            while hi - lo > 1e-4:
                mid = (lo + hi) / 2
                lo, hi = (mid, hi) if rate(dnn.name, dnn.model, mid) > target else (lo, mid)
            losses[dnn.model] = round((lo + hi) / 2, 4)
    return losses


def measure_all_on(platform: Platform, workload: Workload, component: str, seconds: float) -> RunReport:
    return measure_on(platform, workload, (component,) * len(workload), seconds)


def measure_on(platform: Platform, workload: Workload, components: Sequence[str], seconds: float) -> RunReport:
    """Run DNN i of the workload whole on components[i] and measure it."""
    whole = Mapping.all_on(workload, components[0])
    mapping = Mapping(
        tuple(replace(d, assignment=(c,) * len(d.assignment)) for d, c in zip(whole.dnns, components, strict=True))
    )
    with Pipeline(platform, workload) as pipeline:
        pipeline.start(mapping)
        return pipeline.measure(seconds, warmup_s=1.0)


def fit_interference(solo: Sequence[float], busy: Sequence[float]) -> float:
    """Median slowdown of the probe models when the other clusters are busy (0 if none)."""
    ratios = [a / b - 1.0 for a, b in zip(solo, busy, strict=True) if a > 0 and b > 0]
    return round(min(max(float(np.median(ratios)), 0.0), 0.95), 4) if ratios else 0.0


def measure_interference(
    platform: Platform, component: str, probes: Sequence[str], load: str, seconds: float
) -> dict[str, Any]:
    """Each probe model alone on `component`, with the other CPU clusters idle, then each running `load`."""
    others = [c.name for c in platform.components if c.backend == "cpu" and c.name != component]
    solo: list[float] = []
    busy: list[float] = []
    for probe in probes:
        alone = Workload.from_models([probe])
        solo.append(measure_on(platform, alone, [component], seconds).throughput[alone.names[0]])
        loaded = Workload.from_models([probe] + [load] * len(others))
        report = measure_on(platform, loaded, [component, *others], seconds)
        busy.append(report.throughput[loaded.names[0]])
    return {"interference": fit_interference(solo, busy), "probes": list(probes), "solo": solo, "busy": busy}


def calibrate(
    base: Platform,
    models: Sequence[str] = DEFAULT_MODELS,
    contention_seconds: float = 4.0,
    passes: int = PASSES,
    progress: Progress | None = None,
) -> Calibration:
    """Measure and fit every component of `base` (this host), returning the calibrated platform."""
    say = progress or (lambda _msg: None)
    say("measuring memory bandwidth and shared-memory hops")
    bandwidth = copy_bandwidth_gbs()
    hop = {s: hop_seconds(s) for s in HOP_SHAPES}
    platform = fit_transfers(base, hop)
    names = ", ".join(f"{c.name} ({c.backend})" for c in base.components)
    say(f"timing {sum(len(profile(m)) for m in models)} units on {names}, taking turns")
    unit_times = profile_components(base, base.component_names, models, passes, progress)
    for comp in base.components:
        platform = fit_component(platform, unit_times[comp.name].chain_scaled(), bandwidth)
    contention: dict[str, dict[str, Any]] = {}
    interference: dict[str, dict[str, Any]] = {}
    workload = Workload.from_models(models[:3])
    if contention_seconds > 0:
        for comp in platform.components:
            say(f"measuring {len(workload)} DNNs sharing {comp.name}")
            report = measure_all_on(platform, workload, comp.name, contention_seconds)
            share = available_share(report).get(comp.name, 1.0)
            alpha, k = fit_sharing(scaled(platform, {comp.name: share}), workload, comp.name, report.throughput)
            platform = _with_component(platform, comp.name, concurrency_loss=alpha, parallelism=k)
            per_model: dict[str, float] = {}
            if k == 1.0 and comp.sharing == "fair" and len(workload) > 1:
                available = scaled(platform, {comp.name: share})
                per_model = fit_model_losses(available, workload, comp.name, report.throughput)
                platform = _with_component(platform, comp.name, model_concurrency_loss=tuple(sorted(per_model.items())))
            contention[comp.name] = {
                "concurrency_loss": alpha,
                "model_concurrency_loss": per_model,
                "parallelism": k,
                "available_share": share,
                "throughput": dict(report.throughput),
            }
        cpus = [c for c in platform.components if c.backend == "cpu"]
        for comp in cpus if len(cpus) > 1 else ():
            say(f"measuring {comp.name} alone and with the other CPU clusters busy")
            found = measure_interference(platform, comp.name, models[:-1] or models, models[-1], contention_seconds)
            interference[comp.name] = found
            platform = _with_component(platform, comp.name, interference=found["interference"])
    fastest = min(
        (c for c in platform.components if all(t is not None for t in unit_times[c.name].times[models[0]])),
        key=lambda c: sum(t or 0.0 for t in unit_times[c.name].times[models[0]]),
    )
    platform = replace(
        platform,
        calibrated=True,
        reference_component=fastest.name,
        description=(
            f"This host, calibrated {time.strftime('%Y-%m-%d %H:%M')} by `rankmap calibrate` on "
            f"{', '.join(models)}: per-kind rates and kernel overhead fitted to unit times measured on every "
            "component, transfers to measured shared-memory hops, each component's sharing (concurrency loss "
            "or parallelism) and each CPU cluster's interference to measured runs."
        ),
    )
    fit = {c: quality(platform, u.chain_scaled()) for c, u in unit_times.items()}
    hops = {str(k): v for k, v in hop.items()}
    return Calibration(platform, unit_times, fit, hops, contention, interference)


def measurements_path(platform_file: str | Path) -> Path:
    """Where `rankmap calibrate` wrote what it measured for a platform file."""
    return Path(platform_file).with_suffix(".measurements.json")


_SHARING_FIT_KEYS = ("concurrency_loss", "model_concurrency_loss", "parallelism", "available_share")


def calibration_rates(platform_file: str | Path) -> tuple[dict[str, dict[str, float]], str | None]:
    """Per component, the rates its calibration measured with the first three models all on it.

    Returns ({}, reason) when there is nothing usable: no measurements file beside the
    platform, an unreadable one, one of another calibration (an interrupted `calibrate` writes
    its measurements and leaves the older platform file), or one without sharing runs. Files
    written before the rates had a key of their own hold them beside the fitted figures; those
    are read too.
    """
    path = measurements_path(platform_file)
    if not path.is_file():
        return {}, f"no {path.name} beside the platform file"
    try:
        saved = json.loads(path.read_text())
        if "platform" in saved and saved["platform"] != load_platform(platform_file).to_dict():
            return {}, f"{path.name} was measured for another calibration than {Path(platform_file).name}"
        contention = saved.get("contention")
        rates = {}
        for comp, found in contention.items():
            if "throughput" in found:
                measured = found["throughput"]
            else:
                measured = {k: v for k, v in found.items() if k not in _SHARING_FIT_KEYS}
            usable = {str(n): rate for n, r in measured.items() if math.isfinite(rate := float(r)) and rate > 0}
            if usable:
                rates[str(comp)] = usable
    except (OSError, ValueError, AttributeError, TypeError, RecursionError) as exc:
        return {}, f"{path} is unreadable ({exc})"
    return rates, None if rates else f"{path.name} holds no sharing runs (calibrated with --contention-seconds 0?)"


def _with_component(platform: Platform, component: str, **fields: Any) -> Platform:
    comps = tuple(replace(c, **fields) if c.name == component else c for c in platform.components)
    return replace(platform, components=comps)
