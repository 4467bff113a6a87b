"""Pipeline stages of a mapping: what each stage process runs, where, and on which tensor shapes.

A `StageSpec` is plain, picklable data: a stage process (or a ROS executor node) rebuilds its
module from it alone. Weights are a local state_dict file or, without one, the zoo's random
initialisation under a fixed seed, so every process of a DNN builds identical weights and a
pipelined DNN computes exactly what the whole model computes.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import torch

from rankmap_ros.core import zoo
from rankmap_ros.core.mapping import Mapping
from rankmap_ros.core.platform import Component, Platform
from rankmap_ros.core.workload import Workload

DEFAULT_SEED = 0


@dataclass(frozen=True)
class StageSpec:
    """Units [start, stop) of one DNN on one component, and how to bind to that component.

    `cpus` is the CPU affinity (empty: leave it), `threads` torch's intra-op threads, `device`
    the OpenCL ("opencl:<platform>:<device>") or CUDA ("cuda:<i>") device. `input_shape` and
    `output_shape` are the real tensor shapes at the stage's boundaries (batch 1). `priority` is
    the DNN's; a CUDA stage of a DNN above priority 1 gets a high-priority stream.
    """

    dnn: str
    model: str
    index: int
    start: int
    stop: int
    component: str
    backend: str
    cpus: tuple[int, ...]
    threads: int
    device: str
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    weights: str | None = None
    seed: int = DEFAULT_SEED
    priority: float = 1.0

    @property
    def label(self) -> str:
        return f"{self.dnn}[{self.start}:{self.stop}]@{self.component}"


@cache
def boundary_shapes(model: str) -> tuple[tuple[int, ...], ...]:
    """Real tensor shape before unit 0, between every two units, and after the last (traced on meta)."""
    spec = zoo.get_spec(model)
    with torch.device("meta"):
        net = spec.build().eval()
        x = torch.empty((1, *spec.input_shape))
        shapes = [tuple(x.shape)]
        with torch.no_grad():
            for unit in net:
                x = unit(x)
                shapes.append(tuple(x.shape))
    return tuple(shapes)


def tensor_bytes(shape: tuple[int, ...], itemsize: int = 4) -> int:
    n = itemsize
    for d in shape:
        n *= d
    return n


def threads_for(component: Component) -> int:
    return len(component.cpus) if component.cpus else component.cores


def stage_specs(
    platform: Platform,
    workload: Workload,
    mapping: Mapping,
    weights: dict[str, str] | None = None,
    seed: int = DEFAULT_SEED,
) -> dict[str, tuple[StageSpec, ...]]:
    """Every stage of every DNN, in pipeline order; the mapping must already be validated.

    `weights` maps a DNN name to a state_dict file; DNNs without one use seeded random weights.
    """
    weights = weights or {}
    out: dict[str, tuple[StageSpec, ...]] = {}
    for dnn in mapping.dnns:
        shapes = boundary_shapes(dnn.model)
        spec = workload.dnns[workload.index(dnn.name)]
        specs = []
        for k, stage in enumerate(dnn.stages):
            comp = platform.component(stage.component)
            specs.append(
                StageSpec(
                    dnn=dnn.name,
                    model=dnn.model,
                    index=k,
                    start=stage.start,
                    stop=stage.stop,
                    component=comp.name,
                    backend=comp.backend,
                    cpus=comp.cpus,
                    threads=threads_for(comp),
                    device=comp.device,
                    input_shape=shapes[stage.start],
                    output_shape=shapes[stage.stop],
                    weights=weights.get(dnn.name),
                    seed=seed,
                    priority=spec.priority,
                )
            )
        out[dnn.name] = tuple(specs)
    return out


def build_model(model: str, weights: str | None = None, seed: int = DEFAULT_SEED) -> zoo.UnitNet:
    """The whole zoo model with the weights every stage of it uses."""
    torch.manual_seed(seed)
    return zoo.build(model, weights)


def build_stage_module(spec: StageSpec) -> torch.nn.Module:
    """The stage's slice of its model, in eval mode."""
    return build_model(spec.model, spec.weights, spec.seed).slice(spec.start, spec.stop).eval()
