"""Pipeline stages of a mapping: what each stage process runs, where, and on which tensor shapes.

A `StageSpec` is plain, picklable data: a stage process (or a ROS executor node) rebuilds its
module from it alone. Weights are a local state_dict file or, without one, the zoo's random
initialisation under a fixed seed, so every process of a DNN builds identical weights and a
pipelined DNN computes exactly what the whole model computes.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from functools import cache

import torch

from rankmap_ros.core import zoo
from rankmap_ros.core.mapping import Mapping
from rankmap_ros.core.platform import Component, Platform
from rankmap_ros.core.realtime import Policy, TaskClass, parse_policy
from rankmap_ros.core.workload import Workload

DEFAULT_SEED = 0


@dataclass(frozen=True)
class StageSpec:
    """Units [start, stop) of one DNN on one component, and how to bind to that component.

    `cpus` is the CPU affinity (empty: leave it), `threads` torch's intra-op threads, `device`
    the OpenCL ("opencl:<platform>:<device>") or CUDA ("cuda:<i>") device. `input_shape` and
    `output_shape` are the real tensor shapes at the stage's boundaries (batch 1). `priority` is
    the DNN's. `period` and `deadline` are the DNN's task class (None: best-effort), `policy`
    the components' scheduling policy (core.realtime.Policy) and `drop_late` whether an
    arbitrated stage drops real-time jobs that can no longer meet their deadline. The CUDA
    stream's priority follows the task class under an arbitrated policy (real-time high,
    best-effort low) and the DNN's priority under time-sharing (high above priority 1).
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
    period: float | None = None
    deadline: float | None = None
    policy: str = Policy.TIME_SHARING.value
    drop_late: bool = True

    @property
    def label(self) -> str:
        return f"{self.dnn}[{self.start}:{self.stop}]@{self.component}"

    @property
    def task(self) -> TaskClass:
        return TaskClass(self.period, self.deadline)

    @property
    def scheduling(self) -> Policy:
        return parse_policy(self.policy)

    @property
    def high_priority_stream(self) -> bool:
        """Whether a CUDA stage runs on the high-priority stream."""
        if self.scheduling.arbitrated:
            return self.period is not None
        return self.priority > 1


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
    """torch's intra-op threads for a stage alone: a CPU cluster's cores; one host thread to feed a GPU.

    A GPU's `cpus` are where its host processes run, not threads to use.
    """
    if component.backend != "cpu":
        return 1
    return len(component.cpus) if component.cpus else component.cores


def stage_threads(platform: Platform, mapping: Mapping, policy: Policy | str = Policy.TIME_SHARING) -> dict[str, int]:
    """torch's intra-op threads for each stage of a mapping, per component.

    Under time-sharing the stages of one CPU cluster run at once, so they split its cores: each
    with every core would put n x cores spinning OpenMP threads on the cluster (three stages of
    eight threads on eight cores ran 20-40x slower than alone). Under an arbitrated policy one
    stage holds the cluster at a time and gets all its cores.
    """
    resident = Counter(stage.component for dnn in mapping.dnns for stage in dnn.stages)
    arbitrated = parse_policy(str(policy)).arbitrated
    out = {}
    for name, n in resident.items():
        component = platform.component(name)
        full = threads_for(component)
        out[name] = full if arbitrated or component.backend != "cpu" else max(1, full // n)
    return out


def stage_specs(
    platform: Platform,
    workload: Workload,
    mapping: Mapping,
    weights: dict[str, str] | None = None,
    seed: int = DEFAULT_SEED,
    policy: Policy | str = Policy.TIME_SHARING,
    drop_late: bool = True,
) -> dict[str, tuple[StageSpec, ...]]:
    """Every stage of every DNN, in pipeline order; the mapping must already be validated.

    `weights` maps a DNN name to a state_dict file; DNNs without one use seeded random weights.
    `policy` is the components' scheduling policy; each stage carries its DNN's task class.
    """
    policy = parse_policy(str(policy))
    weights = weights or {}
    threads = stage_threads(platform, mapping, policy)
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
                    threads=threads[comp.name],
                    device=comp.device,
                    input_shape=shapes[stage.start],
                    output_shape=shapes[stage.stop],
                    weights=weights.get(dnn.name),
                    seed=seed,
                    priority=spec.priority,
                    period=spec.period,
                    deadline=spec.deadline,
                    policy=policy.value,
                    drop_late=drop_late,
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
