"""Measure what calibration needs: every unit alone on every component, and a channel hop.

Units are timed in a process bound exactly as a stage on that component would be (same
affinity, threads and backend), one component at a time so measurements do not disturb each
other, the components taking turns pass by pass so that all see the same moments of a machine
whose speed drifts. Each unit is a one-unit stage slice. In a pass a unit's time is its fastest
sample (a burst of load from elsewhere spoils some samples, not all); over passes it is the
median, the machine's typical speed, which is what a pipeline running for minutes gets. In
every pass each model is also timed as a whole chain of those slices, and its chain time is
taken the same way: a unit timed over and over keeps its weights in cache, in a chain it does
not, so the chain is 9-24% slower than its units' sum on a CPU core (measured here), and
calibration scales the units to it.

On a GPU a unit is timed as a stage runs it: input already on the device, synchronised at its
end; and the chain is the whole model as one stage, copied in and out once. Timing one-unit
stages there would copy every intermediate tensor to the host and back, which no stage does
(on the H200 that made MobileNet-V2's chain 7.2 ms where a stage ran it in 4.7).
"""

from __future__ import annotations

import contextlib
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
PASSES = 5
Timed = tuple[Callable[[Any], Any], Any]  # something to time and its input
Pass = tuple[dict[str, list[float | None]], dict[str, list[float]]]  # unit times, chain samples
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


def _prepare_runs(
    component: Component, models: Sequence[str]
) -> tuple[dict[str, list[Timed | None]], dict[str, Timed], dict[str, str]]:
    """Every unit of every model as something to time on `component`, and each model's chain."""
    on_device = component.backend == "cuda"
    runs: dict[str, list[Timed | None]] = {}
    chained: dict[str, Timed] = {}
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
    return runs, chained, errors


def _profile_main(component: Component, models: Sequence[str], conn: Any) -> None:
    """Build the runs, then time one pass each time the parent asks, until it says stop."""
    become_child()
    runs, chained, errors = _prepare_runs(component, models)
    conn.send(errors)
    while conn.recv() == "pass":
        units = {
            model: [None if entry is None else time_call(*entry) for entry in unit_runs]
            for model, unit_runs in runs.items()
        }
        chains = {model: time_samples(*chained[model]) for model in chained}
        conn.send((units, chains))
    conn.close()


@dataclass
class _Worker:
    component: str
    process: Any
    conn: Any
    errors: dict[str, str] = field(default_factory=dict)

    def ask(self, message: str) -> Any:
        self.conn.send(message)
        return self.receive()

    def receive(self) -> Any:
        try:
            if not self.conn.poll(PROFILE_TIMEOUT_S):
                raise backends.BackendError(f"profiling {self.component} took longer than {PROFILE_TIMEOUT_S:.0f} s")
            return self.conn.recv()
        except EOFError as exc:
            code = self.process.exitcode
            raise backends.BackendError(f"profiling process for {self.component} died (exit code {code})") from exc

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self.conn.send("stop")
        self.process.join(timeout=5)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
        self.conn.close()


def profile_components(
    platform: Platform,
    components: Sequence[str],
    models: Sequence[str],
    passes: int = PASSES,
    progress: Callable[[str], None] | None = None,
) -> dict[str, UnitTimes]:
    """Time every unit of `models` on each of `components`, one process bound to each.

    The components take turns, one pass each, so that every component is measured at the
    same moments of a machine whose speed drifts: timing one after the other made two
    identical cores differ by 25% in one calibration. Only one component runs at a time.
    """
    if passes < 1:
        raise ValueError(f"profiling needs at least one pass, got {passes}")
    comps = [platform.component(name) for name in components]
    for comp in comps:
        backends.require(comp.backend)
    ctx = stage_context()
    workers: list[_Worker] = []
    try:
        for comp in comps:
            parent, child = ctx.Pipe()
            process = ctx.Process(target=_profile_main, args=(comp, list(models), child), daemon=True)
            try:
                process.start()
            except BaseException:
                parent.close()
                raise
            finally:
                child.close()
            workers.append(_Worker(comp.name, process, parent))
        for worker in workers:
            worker.errors = worker.receive()
        found: dict[str, list[Pass]] = {w.component: [] for w in workers}
        for k in range(passes):
            for worker in workers:
                if progress:
                    progress(f"pass {k + 1}/{passes} on {worker.component}")
                found[worker.component].append(worker.ask("pass"))
    finally:
        for worker in workers:
            worker.stop()
    return {w.component: summarise(w.component, found[w.component], w.errors) for w in workers}


def summarise(component: str, found: Sequence[Pass], errors: dict[str, str]) -> UnitTimes:
    """Per unit and per chain, the median over passes of each pass's fastest sample.

    Within a pass the fastest sample is the one other programs disturbed least; across passes
    the median is the machine's typical speed, which is what a pipeline running for minutes
    gets, where the fastest pass would be its luckiest moment.
    """
    times: dict[str, tuple[float | None, ...]] = {}
    for model in found[0][0] if found else {}:
        per_unit = zip(*(units[model] for units, _ in found), strict=True)
        times[model] = tuple(None if None in t else statistics.median(t) for t in per_unit)
    samples = {m: tuple(t for _, chains in found for t in chains[m]) for m in (found[0][1] if found else {})}
    chains = {m: statistics.median(min(chains[m]) for _, chains in found) for m in samples}
    return UnitTimes(component, times, errors, chains, samples)


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
    channels: list[Channel] = []
    process = None
    samples = []
    buffer = None
    try:
        a = Channel.create("hop", 2, x.nbytes)
        channels.append(a)
        b = Channel.create("hop", 2, x.nbytes)
        channels.append(b)
        process = stage_context().Process(target=_echo_main, args=(a.name, b.name, frames), daemon=True)
        process.start()
        for i in range(frames):
            t0 = time.perf_counter()
            a.put(x, FrameHeader(i), timeout=10)
            frame = b.get(timeout=10, out=buffer)
            if frame is None:
                raise backends.BackendError("hop measurement: the echo process stopped answering")
            buffer = frame.array
            samples.append((time.perf_counter() - t0) / 2)
    finally:
        if process is not None and process.pid is not None:
            process.join(timeout=5)
            if process.is_alive():
                process.kill()
                process.join()
        for ch in channels:
            ch.detach()
            ch.unlink()
    return statistics.median(samples[frames // 10 :])
