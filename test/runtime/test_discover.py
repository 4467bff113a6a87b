"""Discovery on this machine: CPU clusters from cpufreq or a split, OpenCL via PoCL, CUDA via torch."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from rankmap_ros.core.platform import PlatformError, load_platform
from rankmap_ros.runtime.discover import (
    CpuCluster,
    CudaDevice,
    Discovery,
    DiscoveryError,
    cpu_clusters,
    cpu_flops_per_cycle,
    discover,
    discover_host,
    host_platform,
    parse_core_split,
    write_platform,
)
from rankmap_ros.runtime.host import resolve_platform, unpinned_warning
from rankmap_ros.runtime.stage import threads_for

CPUS = sorted(os.sched_getaffinity(0))


def test_without_cpufreq_all_cpus_are_one_cluster(tmp_path: Path) -> None:
    clusters, notes = cpu_clusters(sysfs=tmp_path)
    assert [(c.name, c.cpus, c.max_freq_ghz) for c in clusters] == [("cpu", tuple(CPUS), None)]
    assert "no cpufreq" in notes[0]


@pytest.mark.skipif(len(CPUS) < 2, reason="needs two CPUs")
def test_cpufreq_groups_fastest_cores_as_big(tmp_path: Path) -> None:
    for i, cpu in enumerate(CPUS):
        folder = tmp_path / f"cpu{cpu}/cpufreq"
        folder.mkdir(parents=True)
        (folder / "cpuinfo_max_freq").write_text("1800000\n" if i == 0 else "2400000\n")
    clusters, notes = cpu_clusters(sysfs=tmp_path)
    assert [(c.name, c.cpus, c.max_freq_ghz) for c in clusters] == [
        ("big", tuple(CPUS[1:]), 2.4),
        ("little", (CPUS[0],), 1.8),
    ]
    assert "cpufreq" in notes[0]


@pytest.mark.skipif(len(CPUS) < 2, reason="needs two CPUs")
def test_explicit_split_on_this_machine() -> None:
    split = f"big:{CPUS[0]},little:{'+'.join(str(c) for c in CPUS[1:])}"
    platform = discover_host(split)
    assert platform.component_names[:2] == ("big", "little")
    assert platform.component("big").cpus == (CPUS[0],)
    assert platform.component("little").cpus == tuple(CPUS[1:])
    assert not platform.calibrated


@pytest.mark.skipif(len(CPUS) < 2, reason="needs two CPUs")
def test_cpus_left_out_of_a_split_are_spare() -> None:
    assert discover(f"big:{CPUS[0]}").spare_cpus == tuple(CPUS[1:])
    assert discover(f"big:{CPUS[0]},little:{'+'.join(str(c) for c in CPUS[1:])}").spare_cpus == ()


def test_gpu_host_processes_go_to_the_spare_cpus() -> None:
    """A GPU feeder that floats onto a cluster stalls its OpenMP stages (3.7x here): pin it aside."""
    h200 = CudaDevice(0, "GPU", 132, 1 << 37)
    spare = Discovery((CpuCluster("big", (0, 1, 2), None),), cuda=(h200,), spare_cpus=(3,))
    platform = host_platform(spare)
    assert platform.component("cuda").cpus == (3,)
    assert threads_for(platform.component("cuda")) == 1
    assert threads_for(platform.component("big")) == 3
    assert "not pinned" not in platform.description

    crowded = host_platform(Discovery((CpuCluster("big", (0, 1, 2, 3), None),), cuda=(h200,)))
    assert crowded.component("cuda").cpus == ()
    assert "GPU stages' host processes are not pinned" in crowded.description
    # the runtime's commands and the manager say so when they load such a platform
    assert unpinned_warning(platform) is None
    warning = unpinned_warning(crowded)
    assert warning is not None and warning.startswith("GPU 'cuda': no CPUs kept for the host processes of its stages")


def test_pocl_presented_as_gpu_draws_no_pinning_warning() -> None:
    """PoCL computes on the clusters' cores itself: it has no host process to keep apart."""
    platform = resolve_platform("host", f"big:{CPUS[0]}")
    assert unpinned_warning(platform) is None


@pytest.mark.parametrize(
    ("flags", "flops"),
    [("fpu sse2 avx avx2 fma avx512f", 64), ("fpu sse2 avx avx2 fma", 32), ("fpu sse2 avx", 16), ("", 16)],
)
def test_cpu_peak_follows_the_widest_vectors(tmp_path: Path, flags: str, flops: int) -> None:
    """An AVX-512 core guessed as SSE would start the uncalibrated host 4x too slow."""
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nflags\t\t: {flags}\n\nprocessor\t: 1\nflags\t\t: {flags}\n")
    assert cpu_flops_per_cycle(cpuinfo) == flops
    assert cpu_flops_per_cycle(tmp_path / "missing") == 16
    found = Discovery((CpuCluster("big", (0, 1), 2.0),), flops_per_cycle=flops)
    assert host_platform(found).component("big").gflops.conv == pytest.approx(2 * 2.0 * flops * 0.5)


@pytest.mark.parametrize(
    ("split", "message"),
    [
        ("big0-3", "expected NAME:CPUS"),
        ("big:0,big:1", "given twice"),
        ("big:0,little:0", "CPU 0 is in both 'big' and 'little'"),
        ("big:1-0", "reversed CPU range"),
        ("big:0-999999999", "CPU 999999999 is beyond any machine"),
        ("big:x", "bad CPU list"),
        ("big:0-4095", "is not available here"),
    ],
)
def test_bad_split_is_explained(split: str, message: str) -> None:
    with pytest.raises(DiscoveryError, match=message):
        parse_core_split(split, available=[0, 1])


def test_opencl_is_found_or_reported_missing() -> None:
    found = discover()
    notes = " ".join(found.notes)
    assert "OpenCL" in notes and "CUDA" in notes
    if found.opencl:
        assert all(d.type in {"GPU", "CPU", "ACCELERATOR", "CUSTOM", "DEFAULT"} for d in found.opencl)
        for device in found.opencl:
            assert f"{device.type} device" in notes
    else:
        assert "OpenCL: " in notes


def test_opencl_cpu_devices_join_only_when_asked() -> None:
    found = discover()
    cpu_devices = [d for d in found.opencl if d.type == "CPU"]
    if not cpu_devices:
        pytest.skip("no CPU-type OpenCL device (PoCL) here")
    assert not any(c.backend == "opencl" and c.kind == "cpu" for c in host_platform(found).components)
    with_cl = host_platform(found, include_opencl_cpu=True)
    ocl = [c for c in with_cl.components if c.backend == "opencl" and c.kind == "cpu"]
    assert len(ocl) == len(cpu_devices)
    assert ocl[0].device == f"opencl:{cpu_devices[0].platform_index}:{cpu_devices[0].device_index}"


def test_written_platform_loads_back_and_is_marked_uncalibrated(tmp_path: Path) -> None:
    platform = discover_host()
    path = tmp_path / "host.yaml"
    write_platform(platform, path)
    assert "calibrated: false" in path.read_text()
    assert load_platform(path) == platform
    assert platform.name == "host"


def test_core_never_imports_discovery() -> None:
    code = (
        "import sys, rankmap_ros.core.simulator, rankmap_ros.core.calibration; "
        "print('rankmap_ros.runtime.discover' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_platform_file_of_another_machine_is_refused_before_anything_starts(tmp_path: Path) -> None:
    """A board's file on this host: stages would fail to bind, or OpenCL run on some other device."""
    import yaml

    good = tmp_path / "here.yaml"
    write_platform(resolve_platform("host", f"big:{CPUS[0]}"), good)
    assert resolve_platform(str(good)).component("big").cpus == (CPUS[0],)
    absent = max(CPUS) + 1000
    for change, message in [
        ({"cpus": [absent]}, f"component 'big' is pinned to CPUs [{absent}], which this process cannot use"),
        # without the backend here it is refused as unavailable, with it as a device not found
        (
            {"backend": "cuda", "device": "cuda:7", "cpus": []},
            "'big': (backend 'cuda' is not available|device 'cuda:7' is not on this host)",
        ),
        (
            {"backend": "opencl", "device": "opencl:9:9", "cpus": []},
            "'big': (backend 'opencl' is not available|device 'opencl:9:9' is not on this host)",
        ),
    ]:
        data = yaml.safe_load(good.read_text())
        next(c for c in data["components"] if c["name"] == "big").update(change)
        bad = tmp_path / "bad.yaml"
        bad.write_text(yaml.safe_dump(data))
        with pytest.raises(PlatformError, match=message.replace("[", r"\[").replace("]", r"\]")) as refused:
            resolve_platform(str(bad))
        assert str(refused.value).startswith(f"platform {bad}: component 'big'")
