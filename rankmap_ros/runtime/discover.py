"""Discover this machine's computing components and describe them as a `host` platform.

CPU clusters come from cpufreq (cores grouped by their maximum frequency, fastest first: big,
then little), from the kernel's cpu_capacity where cpufreq is missing, or from an explicit split
such as "big:0-3,little:4-7". OpenCL devices come from pyopencl and CUDA devices from torch;
a backend that is not installed or finds nothing is reported in `notes` and left out.

The platform written here is an uncalibrated first guess (`calibrated: false`): speeds follow
from core counts and clocks with rule-of-thumb efficiencies, to be replaced by profiling.
core/ never imports this module: core/ does not touch the system.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from rankmap_ros.core.files import write_text_atomic
from rankmap_ros.core.platform import Platform, parse_platform
from rankmap_ros.runtime.errors import DiscoveryError

SYSFS_CPU = Path("/sys/devices/system/cpu")
MAX_CPUS = 8192  # Linux's largest CONFIG_NR_CPUS
_CLUSTER_NAMES = {1: ("cpu",), 2: ("big", "little"), 3: ("prime", "big", "little")}
_SPLIT_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")

# First guesses, replaced by calibration: peak fp32 FLOP/s, the fraction a DNN framework reaches,
# and sharing; see docs/SIMULATOR.md.
PROC_CPUINFO = Path("/proc/cpuinfo")
# fp32 FLOP per cycle per core: two FMA pipes of the widest vectors the CPU reports.
_FLOPS_BY_FLAG = (("avx512f", 64), ("avx2", 32))
_CPU_FLOPS_PER_CYCLE = 16  # two 128-bit FMA pipes per core (NEON, SSE/AVX without wider units)
_CPU_EFFICIENCY = 0.5
# Loss per extra stage sharing a CPU cluster: calibration fitted 0-0.12 on the 2-core host and 0
# on a 16-core one (docs/BENCHMARKS.md), where the runtime splits a cluster's cores among its stages.
_CPU_CONCURRENCY_LOSS = 0.1
_GPU_FLOPS_PER_CYCLE_PER_CU = 64
_GPU_EFFICIENCY = 0.3
_UNKNOWN_CPU_GHZ = 2.0


@dataclass(frozen=True)
class CpuCluster:
    name: str
    cpus: tuple[int, ...]
    max_freq_ghz: float | None  # None: the kernel does not say


@dataclass(frozen=True)
class OpenClDevice:
    platform_index: int
    device_index: int
    platform: str
    name: str
    type: str  # "GPU", "CPU", "ACCELERATOR", ... as OpenCL reports it
    compute_units: int
    max_clock_mhz: int
    global_mem_bytes: int


@dataclass(frozen=True)
class CudaDevice:
    index: int
    name: str
    multiprocessors: int
    total_memory_bytes: int


@dataclass(frozen=True)
class Discovery:
    """What was found, and why anything expected was not."""

    clusters: tuple[CpuCluster, ...]
    opencl: tuple[OpenClDevice, ...] = ()
    cuda: tuple[CudaDevice, ...] = ()
    notes: tuple[str, ...] = field(default=())
    spare_cpus: tuple[int, ...] = ()  # usable CPUs in no cluster: where GPU stages' host processes go
    flops_per_cycle: int = _CPU_FLOPS_PER_CYCLE  # fp32, per CPU core

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def parse_core_split(text: str, available: Iterable[int] | None = None) -> tuple[CpuCluster, ...]:
    """Parse 'big:0-3,little:4-7' into clusters; CPUs must be usable and belong to one cluster only.

    Usable: in this process's affinity, or pinnable all the same (isolcpus keeps a robot's
    real-time cores out of every affinity until a process pins itself to them).
    """
    usable = set(os.sched_getaffinity(0) if available is None else available)
    pinnable = available is None
    clusters: list[CpuCluster] = []
    taken: dict[int, str] = {}
    for part in (p.strip() for p in text.split(",")):
        name, sep, spec = part.partition(":")
        name = name.strip()
        if not sep or not _SPLIT_NAME.match(name):
            raise DiscoveryError(f"core split part {part!r}: expected NAME:CPUS, e.g. big:0-3")
        if any(c.name == name for c in clusters):
            raise DiscoveryError(f"core split: cluster {name!r} is given twice")
        cpus = _parse_cpu_list(spec, where=f"core split cluster {name!r}")
        for cpu in cpus:
            if cpu not in usable and not (pinnable and unpinnable((cpu,)) is None):
                raise DiscoveryError(
                    f"core split cluster {name!r}: CPU {cpu} is not available here ({_ranges(usable)})"
                )
            if cpu in taken:
                raise DiscoveryError(f"core split: CPU {cpu} is in both {taken[cpu]!r} and {name!r}")
            taken[cpu] = name
        clusters.append(CpuCluster(name, cpus, None))
    return tuple(clusters)


def unpinnable(cpus: tuple[int, ...]) -> str | None:
    """Why a stage could not pin itself to `cpus`, tried CPU by CPU in a passing thread.

    Not the current affinity: CPUs kept out of it (isolcpus, taskset) can still be pinned to.
    CPU by CPU: pinning to a set succeeds when it merely overlaps what a cgroup cpuset allows
    (`docker --cpuset-cpus`), and the stage would then run on fewer cores than planned.
    """
    if not cpus:
        return None
    absent = [c for c in cpus if c >= (os.cpu_count() or 0)]
    if absent:
        return f"this machine has no CPU {', '.join(map(str, absent))}"
    failed: list[str] = []

    def pin() -> None:
        for cpu in cpus:
            try:
                os.sched_setaffinity(0, {cpu})  # this thread only
            except OSError as exc:
                failed.append(f"CPU {cpu}: {exc.strerror}")

    thread = threading.Thread(target=pin, name="cpu-check")
    thread.start()
    thread.join()
    return "; ".join(failed) or None


def _parse_cpu_list(spec: str, where: str) -> tuple[int, ...]:
    """'0-3' or '0-1+4' (ranges joined by '+', since ',' separates clusters)."""
    cpus: list[int] = []
    for chunk in spec.split("+"):
        match = re.fullmatch(r"\s*(\d+)(?:-(\d+))?\s*", chunk)
        if not match:
            raise DiscoveryError(f"{where}: bad CPU list {spec!r} (use e.g. 0-3 or 0-1+4)")
        low, high = int(match[1]), int(match[2] or match[1])
        if high < low:
            raise DiscoveryError(f"{where}: reversed CPU range {chunk.strip()!r}")
        if high >= MAX_CPUS:  # before the range is expanded: 0-999999999 would fill the memory
            raise DiscoveryError(f"{where}: CPU {high} is beyond any machine (at most {MAX_CPUS - 1})")
        cpus.extend(range(low, high + 1))
    return tuple(sorted(set(cpus)))


def _ranges(cpus: Iterable[int]) -> str:
    return ",".join(str(c) for c in sorted(cpus))


def _read_number(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def cpu_clusters(split: str | None = None, sysfs: Path = SYSFS_CPU) -> tuple[tuple[CpuCluster, ...], tuple[str, ...]]:
    """CPU clusters of this machine and notes on how they were found."""

    def max_khz(cpu: int) -> int | None:
        return _read_number(sysfs / f"cpu{cpu}/cpufreq/cpuinfo_max_freq")

    if split:  # its CPUs may lie outside the affinity (isolcpus): parse_core_split tries the pin
        clusters = tuple(
            CpuCluster(c.name, c.cpus, max(max_khz(cpu) or 0 for cpu in c.cpus) / 1e6 or None)
            for c in parse_core_split(split)
        )
        return clusters, (f"CPU clusters from the explicit split {split!r}",)
    usable = sorted(os.sched_getaffinity(0))
    freq = {cpu: max_khz(cpu) for cpu in usable}
    if all(v is not None for v in freq.values()):
        groups = _group(freq)
        return tuple(
            CpuCluster(name, cpus, khz / 1e6) for name, (khz, cpus) in zip(_names(len(groups)), groups, strict=True)
        ), ("CPU clusters grouped by cpufreq cpuinfo_max_freq",)
    capacity = {cpu: _read_number(sysfs / f"cpu{cpu}/cpu_capacity") for cpu in usable}
    if all(v is not None for v in capacity.values()) and len(set(capacity.values())) > 1:
        groups = _group(capacity)
        return tuple(
            CpuCluster(name, cpus, None) for name, (_, cpus) in zip(_names(len(groups)), groups, strict=True)
        ), ("no cpufreq; CPU clusters grouped by cpu_capacity",)
    note = (
        "no cpufreq and no differing cpu_capacity: all usable CPUs form one cluster 'cpu' (give a split to divide them)"
    )
    return (CpuCluster("cpu", tuple(usable), None),), (note,)


def _group(values: dict[int, int | None]) -> list[tuple[int, tuple[int, ...]]]:
    """(value, cpus) groups, largest value (fastest cores) first."""
    levels = sorted({v for v in values.values() if v is not None}, reverse=True)
    return [(level, tuple(c for c, v in sorted(values.items()) if v == level)) for level in levels]


def _names(count: int) -> tuple[str, ...]:
    return _CLUSTER_NAMES.get(count, tuple(f"cpu{i}" for i in range(count)))


def opencl_devices() -> tuple[tuple[OpenClDevice, ...], tuple[str, ...]]:
    """Every OpenCL device pyopencl sees (of any type), or a note saying why there are none."""
    try:
        import pyopencl as cl
    except ImportError:
        return (), ("OpenCL: pyopencl is not installed; no OpenCL devices",)
    try:
        platforms = cl.get_platforms()
    except cl.Error as exc:
        return (), (f"OpenCL: no usable OpenCL platform ({exc})",)
    devices = []
    for pi, plat in enumerate(platforms):
        for di, dev in enumerate(plat.get_devices()):
            devices.append(
                OpenClDevice(
                    platform_index=pi,
                    device_index=di,
                    platform=plat.name.strip(),
                    name=dev.name.strip(),
                    type=_cl_type(cl, int(dev.type)),
                    compute_units=int(dev.max_compute_units),
                    max_clock_mhz=int(dev.max_clock_frequency),
                    global_mem_bytes=int(dev.global_mem_size),
                )
            )
    if not devices:
        return (), ("OpenCL: platforms found but no devices",)
    return tuple(devices), tuple(f"OpenCL: {d.type} device {d.name!r} on {d.platform!r}" for d in devices)


def _cl_type(cl: Any, flags: int) -> str:
    """The device's type as OpenCL names it (GPU, CPU, ACCELERATOR, CUSTOM)."""
    for label in ("GPU", "CPU", "ACCELERATOR", "CUSTOM"):
        if flags & int(getattr(cl.device_type, label)):
            return label
    return "DEFAULT"


def cuda_devices() -> tuple[tuple[CudaDevice, ...], tuple[str, ...]]:
    """CUDA devices through torch, or a note saying why there are none."""
    if not torch.cuda.is_available():
        return (), ("CUDA: torch.cuda reports no usable device",)
    devices = []
    for index in range(torch.cuda.device_count()):
        props = torch.cuda.get_device_properties(index)
        devices.append(CudaDevice(index, props.name, int(props.multi_processor_count), int(props.total_memory)))
    return tuple(devices), tuple(f"CUDA: device {d.index} {d.name!r}" for d in devices)


def cpu_flops_per_cycle(cpuinfo: Path = PROC_CPUINFO) -> int:
    """fp32 FLOP per cycle per core from the vector extensions /proc/cpuinfo lists (16 if it says none)."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return _CPU_FLOPS_PER_CYCLE
    flags = set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            flags.update(value.split())
            break
    return next((flops for flag, flops in _FLOPS_BY_FLAG if flag in flags), _CPU_FLOPS_PER_CYCLE)


def discover(split: str | None = None, sysfs: Path = SYSFS_CPU) -> Discovery:
    """CPU clusters, OpenCL devices and CUDA devices of this machine."""
    clusters, cpu_notes = cpu_clusters(split, sysfs)
    opencl, cl_notes = opencl_devices()
    cuda, cuda_notes = cuda_devices()
    taken = {cpu for cluster in clusters for cpu in cluster.cpus}
    spare = tuple(sorted(set(os.sched_getaffinity(0)) - taken))
    return Discovery(clusters, opencl, cuda, cpu_notes + cl_notes + cuda_notes, spare, cpu_flops_per_cycle())


def host_platform(found: Discovery, include_opencl_cpu: bool = False) -> Platform:
    """An uncalibrated `host` platform: every CPU cluster, OpenCL GPU and CUDA device as a component.

    OpenCL devices of type CPU (e.g. PoCL) run on the same cores as the CPU clusters, so they
    become components only when asked: otherwise the model would count those cores twice.
    GPUs get the spare CPUs (in no cluster) as the `cpus` of their stages' host processes: a
    host process that floats onto a cluster's cores stalls the OpenMP threads of the CPU stages
    there (docs/RUNTIME.md, Backends).
    """
    components: list[dict[str, Any]] = []
    for cluster in found.clusters:
        ghz = cluster.max_freq_ghz or _UNKNOWN_CPU_GHZ
        peak = len(cluster.cpus) * ghz * found.flops_per_cycle
        components.append(
            _component(
                cluster.name,
                "cpu",
                "cpu",
                cores=len(cluster.cpus),
                ghz=ghz,
                gflops=peak * _CPU_EFFICIENCY,
                cpus=cluster.cpus,
            )
        )
    gpus = [d for d in found.opencl if d.type == "GPU"]
    cpus = [d for d in found.opencl if d.type == "CPU"] if include_opencl_cpu else []
    for i, dev in enumerate(gpus):
        ghz = dev.max_clock_mhz / 1000
        gflops = dev.compute_units * ghz * _GPU_FLOPS_PER_CYCLE_PER_CU * _GPU_EFFICIENCY
        name = "gpu" if i == 0 else f"gpu{i}"
        components.append(
            _component(
                name,
                "gpu",
                "opencl",
                cores=dev.compute_units,
                ghz=ghz,
                gflops=gflops,
                cpus=found.spare_cpus,
                device=opencl_id(dev),
            )
        )
    for i, dev in enumerate(cpus):
        ghz = dev.max_clock_mhz / 1000
        # PoCL ran OpenCV's kernels 12-50x slower than torch here (docs/RUNTIME.md): no wide-vector guess
        peak = dev.compute_units * ghz * _CPU_FLOPS_PER_CYCLE
        name = "ocl_cpu" if i == 0 else f"ocl_cpu{i}"
        components.append(
            _component(
                name,
                "cpu",
                "opencl",
                cores=dev.compute_units,
                ghz=ghz,
                gflops=peak * _CPU_EFFICIENCY,
                device=opencl_id(dev),
            )
        )
    for cuda in found.cuda:
        # ~128 fp32 lanes per SM at ~1.5 GHz, as on recent NVIDIA parts.
        gflops = cuda.multiprocessors * 128 * 2 * 1.5 * _GPU_EFFICIENCY
        name = "cuda" if cuda.index == 0 else f"cuda{cuda.index}"
        components.append(
            _component(
                name,
                "gpu",
                "cuda",
                cores=cuda.multiprocessors,
                ghz=1.5,
                gflops=gflops,
                cpus=found.spare_cpus,
                device=f"cuda:{cuda.index}",
            )
        )
    notes = list(found.notes)
    if (gpus or found.cuda) and not found.spare_cpus:
        notes.append(
            "GPU stages' host processes are not pinned: every usable CPU is in a cluster, so they run on "
            "the clusters' cores and slow the CPU stages there; a split that leaves a CPU out pins them to it."
        )
    unknown = [c.name for c in found.clusters if c.max_freq_ghz is None]
    if unknown:
        notes.append(f"CPU frequency unknown for {', '.join(unknown)}: assumed {_UNKNOWN_CPU_GHZ} GHz.")
    data = {
        "name": "host",
        "description": "This machine, discovered; an uncalibrated first guess. "
        + " ".join(n if n.endswith(".") else n + "." for n in notes),
        "calibrated": False,
        "components": components,
        "transfers": {
            "cpu_to_cpu": {"fixed_us": 50.0, "us_per_mb": 500.0, "us_per_mb2": 0.0},
            "cpu_to_gpu": {"fixed_us": 100.0, "us_per_mb": 1000.0, "us_per_mb2": 0.0},
            "gpu_to_cpu": {"fixed_us": 100.0, "us_per_mb": 1000.0, "us_per_mb2": 0.0},
            "gpu_to_gpu": {"fixed_us": 200.0, "us_per_mb": 2000.0, "us_per_mb2": 0.0},
        },
    }
    return parse_platform(data, source="host")


def opencl_id(dev: OpenClDevice) -> str:
    """The device as a platform file names it: opencl:<platform>:<device>."""
    return f"opencl:{dev.platform_index}:{dev.device_index}"


def _component(
    name: str,
    kind: str,
    backend: str,
    *,
    cores: int,
    ghz: float,
    gflops: float,
    cpus: tuple[int, ...] = (),
    device: str = "",
) -> dict[str, Any]:
    gpu = kind == "gpu"
    bandwidth = 20.0 if gpu else 10.0
    entry: dict[str, Any] = {
        "name": name,
        "kind": kind,
        "backend": backend,
        "cores": max(cores, 1),
        "frequency_ghz": round(ghz, 3),
        "gflops": {
            "conv": round(gflops, 2),
            "dwconv": round(gflops / (8 if gpu else 4), 2),
            "fc": round(gflops / 2, 2),
            "other": round(bandwidth / 8, 2),
        },
        "memory_bandwidth_gbs": bandwidth,
        "kernel_overhead_us": 100.0 if gpu else 50.0,
        "sharing": "round_robin" if gpu else "fair",
        "concurrency_loss": 0.3 if gpu else _CPU_CONCURRENCY_LOSS,
    }
    if gpu:
        entry["timeslice_us"] = 1000.0
    if cpus:
        entry["cpus"] = list(cpus)
    if device:
        entry["device"] = device
    return entry


def discover_host(split: str | None = None, include_opencl_cpu: bool = False) -> Platform:
    """This machine as an uncalibrated `host` platform (see `discover` for the report behind it)."""
    return host_platform(discover(split), include_opencl_cpu)


def write_platform(platform: Platform, path: Path) -> None:
    """Write a platform as YAML (e.g. the discovered host, which says `calibrated: false`)."""
    write_text_atomic(Path(path), platform.to_yaml())  # a manager may be reading it
