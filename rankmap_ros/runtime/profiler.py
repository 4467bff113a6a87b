"""Measure what calibration needs: every unit alone on every component, and a channel hop.

Units are timed in a process bound exactly as a stage on that component would be (same
affinity, threads and backend), one component at a time so measurements do not disturb each
other. Each unit is a one-unit stage slice; its time is the fastest of several passes over all
units (a burst of load from elsewhere spoils one pass of a unit, not all of them). In every
pass each model is also timed as a whole chain of those slices, and its chain time is the
fastest of those samples, like a unit's: a unit timed over and over keeps its weights in cache,
in a chain it does not, so the chain is 9-24% slower than its units' sum on a CPU core
(measured here), and calibration scales the units to it.

On a GPU a unit is timed as a stage runs it: input already on the device, synchronised at its
end; and the chain is the whole model as one stage, copied in and out once. Timing one-unit
stages there would copy every intermediate tensor to the host and back, which no stage does
(on the H200 that made MobileNet-V2's chain 7.2 ms where a stage ran it in 4.7).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

import numpy as np
import torch

from rankmap_ros.core.platform import Component, MeasuredUnits, Platform
from rankmap_ros.runtime import backends
from rankmap_ros.runtime.channel import Channel, FrameHeader
from rankmap_ros.runtime.stage import DEFAULT_SEED, StageSpec, boundary_shapes, build_model, threads_for
from rankmap_ros.runtime.worker import become_child, stage_context

MIN_REPEATS = 3
MIN_SECONDS = 0.05
PASSES = 3
PROFILE_TIMEOUT_S = 1800.0


@dataclass(frozen=True)
class UnitTimes:
    """Seconds per unit of each model alone on one component (None: the backend cannot run it)."""

    component: str
    times: dict[str, tuple[float | None, ...]]
    errors: dict[str, str]
    chains: dict[str, float] = field(default_factory=dict)  # the whole model, its units in turn
    chain_samples: dict[str, tuple[float, ...]] = field(default_factory=dict)  # every chain run timed

    def chain_scaled(self) -> UnitTimes:
        """Unit times scaled per model so they add up to its measured chain time."""
        scaled = {}
        for model, times in self.times.items():
            total = sum(t for t in times if t is not None)
            chain = self.chains.get(model)
            factor = chain / total if chain and total > 0 and None not in times else 1.0
            scaled[model] = tuple(None if t is None else t * factor for t in times)
        return replace(self, times=scaled)

    def profiled(self) -> tuple[MeasuredUnits, ...]:
        """The chain-scaled times of every model that ran whole, as platform data for the simulator."""
        return tuple(
            MeasuredUnits(model, self.component, tuple(float(t) for t in times if t is not None))
            for model, times in self.chain_scaled().times.items()
            if times and all(t is not None and t > 0 for t in times)
        )


def unit_spec(component: Component, model: str, unit: int, seed: int = DEFAULT_SEED) -> StageSpec:
    shapes = boundary_shapes(model)
    return StageSpec(
        dnn=model,
        model=model,
        index=0,
        start=unit,
        stop=unit + 1,
        component=component.name,
        backend=component.backend,
        cpus=component.cpus,
        threads=threads_for(component),
        device=component.device,
        input_shape=shapes[unit],
        output_shape=shapes[unit + 1],
        seed=seed,
    )


def time_samples(run: Callable[[Any], Any], x: Any, min_repeats: int = MIN_REPEATS) -> list[float]:
    """Seconds of each run(x) after one warm-up call, repeated for at least MIN_SECONDS."""
    run(x)
    samples: list[float] = []
    start = time.perf_counter()
    while len(samples) < min_repeats or time.perf_counter() - start < MIN_SECONDS:
        t0 = time.perf_counter()
        run(x)
        samples.append(time.perf_counter() - t0)
    return samples


def time_call(run: Callable[[Any], Any], x: Any, min_repeats: int = MIN_REPEATS) -> float:
    """Fastest seconds of run(x): on a shared machine slower samples measure other programs."""
    return min(time_samples(run, x, min_repeats))


def _chain(steps: list[Callable[[Any], Any]], x: Any) -> Any:
    for run in steps:
        x = run(x)
    return x


def device_unit(spec: StageSpec, module: torch.nn.Module) -> tuple[Callable[[Any], Any], Any]:
    """A one-unit stage as a step on its device, and an input already there (a GPU unit's timing)."""
    units = backends.prepare_units(spec, module)
    (step,) = units.steps
    x = units.enter(np.random.default_rng(spec.start).standard_normal(spec.input_shape).astype(np.float32))

    def run(state: Any) -> Any:
        with torch.inference_mode():
            return step(state)

    return run, x


def whole_model_stage(component: Component, model: str, net: torch.nn.Module) -> tuple[backends.Runner, np.ndarray]:
    """The whole model as one stage on `component`, and an input frame."""
    first = unit_spec(component, model, 0)
    spec = replace(first, stop=len(net), output_shape=boundary_shapes(model)[-1])
    x = np.random.default_rng(0).standard_normal(spec.input_shape).astype(np.float32)
    return backends.prepare(spec, net.eval()), x


def _profile_main(component: Component, models: Sequence[str], passes: int, conn: Any) -> None:
    become_child()
    on_device = component.backend == "cuda"
    runs: dict[str, list[tuple[Callable[[Any], Any], Any] | None]] = {}
    chained: dict[str, tuple[Callable[[Any], Any], Any]] = {}
    errors: dict[str, str] = {}
    for model in models:
        net = build_model(model)
        runs[model] = []
        for unit in range(len(net)):
            spec = unit_spec(component, model, unit)
            if not runs[model] and model == models[0]:
                backends.bind(spec)
            try:
                if on_device:
                    runs[model].append(device_unit(spec, net.slice(unit, unit + 1).eval()))
                    continue
                run = backends.prepare(spec, net.slice(unit, unit + 1).eval(), verify=unit == 0)
            except backends.BackendError as exc:
                runs[model].append(None)
                errors.setdefault(model, str(exc))
                continue
            x = np.random.default_rng(unit).standard_normal(spec.input_shape).astype(np.float32)
            runs[model].append((run, x))
        entries = [entry for entry in runs[model] if entry is not None]
        if not entries or len(entries) < len(runs[model]):
            continue
        if on_device:
            chained[model] = whole_model_stage(component, model, net)
        else:
            chained[model] = (partial(_chain, [run for run, _ in entries]), entries[0][1])
    samples: dict[str, list[list[float]]] = {m: [[] for _ in r] for m, r in runs.items()}
    chain_samples: dict[str, list[float]] = {m: [] for m in chained}
    for _ in range(passes):
        for model, unit_runs in runs.items():
            for unit, entry in enumerate(unit_runs):
                if entry is not None:
                    samples[model][unit].append(time_call(*entry))
            if model in chained:
                chain_samples[model] += time_samples(*chained[model])
    times = {m: [min(s) if s else None for s in units] for m, units in samples.items()}
    conn.send((times, errors, chain_samples))
    conn.close()


def profile_units(platform: Platform, component: str, models: Sequence[str], passes: int = PASSES) -> UnitTimes:
    """Time every unit of `models` alone on `component`, in a process bound to it."""
    comp = platform.component(component)
    backends.require(comp.backend)
    ctx = stage_context()
    parent, child = ctx.Pipe(duplex=False)
    process = ctx.Process(target=_profile_main, args=(comp, list(models), passes, child), daemon=True)
    process.start()
    child.close()
    try:
        if not parent.poll(PROFILE_TIMEOUT_S):
            raise backends.BackendError(f"profiling {component} took longer than {PROFILE_TIMEOUT_S:.0f} s")
        times, errors, chain_samples = parent.recv()
    except EOFError as exc:
        raise backends.BackendError(f"profiling process for {component} died (exit code {process.exitcode})") from exc
    finally:
        process.join(timeout=5)
        if process.is_alive():
            process.kill()
            process.join()
        parent.close()
    samples = {m: tuple(t) for m, t in chain_samples.items()}
    chains = {m: min(t) for m, t in samples.items()}  # the fastest, as for a unit
    return UnitTimes(component, {m: tuple(t) for m, t in times.items()}, errors, chains, samples)


def _echo_main(a: str, b: str, frames: int) -> None:
    become_child()
    ca, cb = Channel.open(a), Channel.open(b)
    buffer = None
    for _ in range(frames):
        frame = ca.get(timeout=10, out=buffer)
        if frame is None:
            break
        buffer = frame.array
        cb.put(frame.array, frame.header, timeout=10)
    ca.detach()
    cb.detach()


def hop_seconds(shape: tuple[int, ...], frames: int = 300) -> float:
    """Median one-way time to hand a float32 tensor to another process and have it read (ping-pong / 2)."""
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    a = Channel.create("hop", 2, x.nbytes)
    b = Channel.create("hop", 2, x.nbytes)
    ctx = stage_context()
    process = ctx.Process(target=_echo_main, args=(a.name, b.name, frames), daemon=True)
    process.start()
    samples = []
    buffer = None
    try:
        for i in range(frames):
            t0 = time.perf_counter()
            a.put(x, FrameHeader(i), timeout=10)
            frame = b.get(timeout=10, out=buffer)
            if frame is None:
                raise backends.BackendError("hop measurement: the echo process stopped answering")
            buffer = frame.array
            samples.append((time.perf_counter() - t0) / 2)
    finally:
        process.join(timeout=5)
        if process.is_alive():
            process.kill()
            process.join()
        for ch in (a, b):
            ch.detach()
            ch.unlink()
    return statistics.median(samples[frames // 10 :])
