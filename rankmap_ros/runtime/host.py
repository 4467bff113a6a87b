"""This machine as a platform the runtime can execute: discovered components, or a platform file.

Discovery (runtime/discover.py) lists OpenCL CPU devices such as PoCL only on request, as
`ocl_cpu`. A development machine without an OpenCL GPU still needs a third, differently built
component to exercise the OpenCL path, so `host_platform` can present the first OpenCL CPU device
as the `gpu` component (kind gpu, backend opencl). Its sharing stays `fair`: PoCL instances in
different processes are threads that the OS time-slices, not kernels interleaved by a GPU. It
runs on the same cores as the CPU clusters; the simulator does not model that overlap.
"""

from __future__ import annotations

from pathlib import Path

from rankmap_ros.core.platform import Component, Platform, PlatformError, load_platform, parse_platform
from rankmap_ros.runtime.discover import discover_host, opencl_devices, opencl_id, unpinnable

HOST = "host"


def host_platform(split: str | None = None, opencl_cpu_as_gpu: bool = True) -> Platform:
    """The discovered, uncalibrated host (see the module docstring for the OpenCL CPU device)."""
    data = discover_host(split, include_opencl_cpu=opencl_cpu_as_gpu).to_dict()
    has_gpu = any(c["kind"] == "gpu" for c in data["components"])
    cpu_devices = [c for c in data["components"] if c["backend"] == "opencl" and c["kind"] == "cpu"]
    if opencl_cpu_as_gpu and cpu_devices and not has_gpu:
        first = cpu_devices[0]
        first.update(name="gpu", kind="gpu")
        data["components"] = [c for c in data["components"] if c is first or c not in cpu_devices]
    cpus = [c["name"] for c in data["components"] if c["backend"] == "cpu"]
    if cpus:
        data["reference_component"] = cpus[0]
    return parse_platform(data, source=HOST)


def resolve_platform(text: str, split: str | None = None, opencl_cpu_as_gpu: bool = True) -> Platform:
    """'host' (discovered now, uncalibrated) or a platform name/file (e.g. a calibrated host)."""
    if text == HOST:
        return host_platform(split, opencl_cpu_as_gpu)
    platform = load_platform(text)
    if platform.name != HOST and Path(text).suffix not in (".yaml", ".yml"):
        raise PlatformError(
            f"platform {platform.name!r} describes another machine; the runtime runs on this host "
            f"(use 'host' or a host platform file written by `rankmap calibrate`)"
        )
    check_runs_here(platform, text)
    return platform


def check_runs_here(platform: Platform, source: str) -> None:
    """Refuse a platform file whose CPUs, backends or devices this host does not have.

    Checked before anything starts: otherwise every stage on such a component fails as it
    binds ("Invalid argument" from sched_setaffinity), or an OpenCL stage silently runs on
    whatever device is this host's default.
    """
    from rankmap_ros.runtime import backends

    for c in platform.components:
        where = f"platform {source}: component {c.name!r}"
        why = unpinnable(c.cpus)
        if why:
            raise PlatformError(
                f"{where} is pinned to CPUs {sorted(c.cpus)}, which this process cannot use ({why}); "
                "write the file on this machine (`rankmap calibrate`) or use 'host'"
            )
        try:
            backends.require(c.backend)
        except backends.BackendError as exc:
            raise PlatformError(f"{where}: {exc}") from exc
        why = _missing_device(c)
        if why:
            raise PlatformError(f"{where}: {why}")


def _missing_device(component: Component) -> str | None:
    """Why the component's device is not on this host (None: it is, or the backend picks one)."""
    kind = component.device.partition(":")[0]
    if kind == "cuda":
        import torch

        found = {"cuda", *(f"cuda:{i}" for i in range(torch.cuda.device_count()))}
    elif kind == "opencl":
        devices, _ = opencl_devices()
        if not devices:  # pyopencl cannot list them here: the backend check has had its say
            return None
        found = {opencl_id(d) for d in devices}
    else:
        return None
    if component.device in found:
        return None
    return f"device {component.device!r} is not on this host (found: {', '.join(sorted(found - {'cuda'})) or 'none'})"


def runs_on_cpu_cores(component: Component) -> bool:
    """Whether a non-CPU-backend component really computes on the CPU cores (an OpenCL CPU device)."""
    if component.backend != "opencl" or not component.device.startswith("opencl:"):
        return False
    try:
        import pyopencl as cl

        _, p, d = component.device.split(":")
        return bool(cl.get_platforms()[int(p)].get_devices()[int(d)].type & cl.device_type.CPU)
    except Exception:  # no pyopencl, or the device is gone: it cannot share cores then
        return False


def unpinned_gpus(platform: Platform) -> tuple[str, ...]:
    """GPUs whose stages' host processes have no CPUs of their own (they will share the clusters')."""
    return tuple(c.name for c in platform.components if c.kind == "gpu" and not c.cpus and not runs_on_cpu_cores(c))


def unpinned_warning(platform: Platform) -> str | None:
    """A one-line warning when a GPU's host processes would float onto the CPU clusters."""
    names = unpinned_gpus(platform)
    if not names or not any(c.backend == "cpu" for c in platform.components):
        return None
    which = ", ".join(repr(n) for n in names)
    return (
        f"GPU {which}: no CPUs kept for the host processes of its stages, so they run on the CPU "
        f"clusters' cores and slow the CPU stages there; leave one CPU per GPU stage out of the split "
        f"(docs/RUNTIME.md, Backends)"
    )


def independent_platform(platform: Platform) -> Platform:
    """The platform without components that run on the CPU clusters' cores (e.g. PoCL as 'gpu').

    The simulator treats components as independent machines; a planner using it, and any
    judgement of its predictions, must only see components that are.
    """
    keep = [c for c in platform.to_dict()["components"] if not runs_on_cpu_cores(platform.component(c["name"]))]
    if len(keep) == len(platform.components):
        return platform
    data = platform.to_dict()
    data["components"] = keep
    if data["reference_component"] not in {c["name"] for c in keep}:
        data["reference_component"] = keep[0]["name"]
    return parse_platform(data, source=platform.name)
