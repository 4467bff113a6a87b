"""Measured throughput labels: run each mapping on this host (core.labels.LabelSource).

`rankmap dataset collect` feeds these to core.dataset.generate, so a measured dataset has exactly
the format of a simulated one, with `label_source: measured`. A model's ideal rate (the paper's
denominator of P) is its measured rate alone on the platform's reference component.
"""

from __future__ import annotations

from dataclasses import replace
from functools import cached_property
from typing import Any

import numpy as np

from rankmap_ros.core import zoo
from rankmap_ros.core.labels import platform_fingerprint
from rankmap_ros.core.mapping import Mapping
from rankmap_ros.core.platform import Platform
from rankmap_ros.core.workload import Workload
from rankmap_ros.runtime import backends
from rankmap_ros.runtime.pipeline import Pipeline, PipelineError
from rankmap_ros.runtime.profiler import time_call, unit_spec
from rankmap_ros.runtime.stage import boundary_shapes, build_model
from rankmap_ros.runtime.worker import become_child, stage_context

MIN_FRAMES = 3
MAX_SECONDS = 60.0


class MeasuredLabels:
    """Labels from running (workload, mapping) pairs for `seconds` each on this host."""

    name = "measured"

    def __init__(self, platform: Platform, seconds: float = 3.0, warmup_s: float = 1.0) -> None:
        self.platform = platform
        self.platform_name = platform.name
        self.platform_fingerprint = platform_fingerprint(platform)
        self.components = platform.component_names
        self.seconds = seconds
        self.warmup_s = warmup_s
        self.settings = {"seconds": seconds, "warmup_s": warmup_s}

    def label(self, workload: Workload, mapping: Mapping) -> dict[str, float]:
        """Measured rates; the window grows until every DNN completed MIN_FRAMES (slow DNNs)."""
        with Pipeline(self.platform, workload) as pipeline:
            pipeline.start(mapping)
            seconds, warmup = self.seconds, self.warmup_s
            while True:
                report = pipeline.measure(seconds, warmup)
                if report.failures:
                    raise PipelineError(f"a stage died while labelling: {report.failures[0].reason}")
                if min(d.frames for d in report.dnns) >= MIN_FRAMES or seconds >= MAX_SECONDS:
                    return report.throughput
                seconds, warmup = min(seconds * 4, MAX_SECONDS), 0.0

    @cached_property
    def _ideal(self) -> dict[str, float]:
        return ideal_rates(self.platform, zoo.names())

    def ideal(self, model: str) -> float:
        return self._ideal[model]


def _ideal_main(platform: Platform, models: list[str], conn: Any) -> None:
    become_child()
    comp = platform.component(platform.reference_component)
    rates = {}
    for i, model in enumerate(models):
        n = len(boundary_shapes(model)) - 1
        spec = replace(unit_spec(comp, model, 0), stop=n, output_shape=boundary_shapes(model)[-1])
        if i == 0:
            backends.bind(spec)
        run = backends.prepare(spec, build_model(model).eval(), verify=False)
        x = np.random.default_rng(0).standard_normal(spec.input_shape).astype(np.float32)
        rates[model] = 1.0 / time_call(run, x, min_repeats=2)
    conn.send(rates)
    conn.close()


def ideal_rates(platform: Platform, models: tuple[str, ...] | list[str]) -> dict[str, float]:
    """Inferences/s of each model alone on the reference component, measured in a bound process."""
    ctx = stage_context()
    parent, child = ctx.Pipe(duplex=False)
    process = ctx.Process(target=_ideal_main, args=(platform, list(models), child), daemon=True)
    process.start()
    child.close()
    try:
        return parent.recv()
    except EOFError as exc:
        raise PipelineError(f"measuring ideal rates failed (exit code {process.exitcode})") from exc
    finally:
        process.join(timeout=5)
        if process.is_alive():
            process.kill()
            process.join()
        parent.close()
