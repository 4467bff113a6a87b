"""Component backends: bind a stage process to its component and run the stage there.

- `cpu`: CPU affinity to the cluster's cores, torch intra-op threads = cluster size, one
  inter-op thread (a stage is one chain of kernels; a second pool would only oversubscribe).
  Stages run channels-last (NHWC): torch's CPU pooling and convolutions are up to 2x faster
  in that layout (max pooling with ceil_mode in NCHW costs more than the convolution before it);
  tensors cross channels in the usual contiguous NCHW layout.
- `cuda`: torch on a CUDA device; the stream's priority is high for real-time DNNs under an
  arbitrated policy (low for best-effort), and for DNNs above priority 1 under time-sharing.
- `opencl`: OpenCV 4.x DNN with DNN_TARGET_OPENCL running an ONNX export of the stage, on any
  OpenCL device, including CPU devices such as PoCL (which OpenCV refuses unless
  OPENCV_DNN_OPENCL_ALLOW_ALL_DEVICES=1). Its output is checked against torch once, at start.

`prepare` returns the stage as one call; `prepare_units` returns it as a chain of steps, one per
partition unit (torch backends) with the intermediate tensor kept between steps: the preemption
points of an arbitrated stage (runtime/arbiter.py). OpenCL stages are one step (the ONNX export
is one network; exporting every unit separately would multiply start-up and copies).

`bind`, `prepare` and `prepare_units` run inside the stage process; `backend_status` runs anywhere and says why a
backend is missing, so a platform never lists a component that cannot run.
"""

from __future__ import annotations

import contextlib
import ctypes.util
import hashlib
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rankmap_ros.core.files import cache_root
from rankmap_ros.runtime.errors import HostRuntimeError
from rankmap_ros.runtime.stage import StageSpec, build_stage_module

Runner = Callable[[np.ndarray], np.ndarray]
Converter = Callable[[np.ndarray], "torch.Tensor | None"]
ONNX_OPSET = 13
VERIFY_RTOL = 1e-3


class BackendError(HostRuntimeError):
    """A backend that is missing, or a stage it cannot run; the message says which and why."""


@dataclass(frozen=True)
class BackendStatus:
    name: str
    available: bool
    detail: str


def cache_dir() -> Path:
    """Where ONNX exports of stages are kept ($RANKMAP_CACHE, else ~/.cache/rankmap_ros)."""
    return cache_root() / "onnx"


@cache
def backend_status() -> dict[str, BackendStatus]:
    """Which backends can run here (asked once per process: devices do not come and go); never raises."""
    out = {"cpu": BackendStatus("cpu", True, f"{len(os.sched_getaffinity(0))} usable CPUs")}
    if torch.cuda.is_available():
        out["cuda"] = BackendStatus("cuda", True, f"{torch.cuda.device_count()} CUDA device(s)")
    else:
        out["cuda"] = BackendStatus("cuda", False, "torch reports no usable CUDA device")
    out["opencl"] = _opencl_status()
    return out


def _opencl_status() -> BackendStatus:
    try:
        import cv2
    except ImportError:
        return BackendStatus("opencl", False, "OpenCV (opencv-python-headless<5) is not installed")
    if int(cv2.__version__.split(".")[0]) >= 5:
        return BackendStatus("opencl", False, f"OpenCV {cv2.__version__}: the 5.x DNN engine ignores targets")
    try:
        import onnx  # noqa: F401
    except ImportError:
        return BackendStatus("opencl", False, "the onnx package is not installed (needed to export stages)")
    try:
        import pyopencl as cl

        devices = [d for p in cl.get_platforms() for d in p.get_devices()]
    except ImportError:
        devices = None
    except Exception as exc:  # pyopencl raises its own error types for a missing ICD
        return BackendStatus("opencl", False, f"no usable OpenCL platform ({exc})")
    if devices == []:
        return BackendStatus("opencl", False, "no OpenCL device found")
    names = ", ".join(d.name.strip() for d in devices) if devices else "devices unknown (pyopencl missing)"
    return BackendStatus("opencl", True, f"OpenCV {cv2.__version__} DNN on OpenCL: {names}")


def require(backend: str) -> None:
    """Raise BackendError with the reason if `backend` cannot run here."""
    status = backend_status().get(backend)
    if status is None:
        raise BackendError(f"unknown backend {backend!r}")
    if not status.available:
        raise BackendError(f"backend {backend!r} is not available: {status.detail}")


def bind(spec: StageSpec) -> None:
    """Pin this process to the stage's component (call before any torch work in the process)."""
    bind_process(spec.cpus, spec.threads)


def bind_process(cpus: tuple[int, ...], threads: int) -> None:
    """Pin the calling thread, and the threads it starts from now on, to `cpus`; size torch's pool."""
    if cpus:
        os.sched_setaffinity(0, cpus)
    threads = max(threads, 1)
    torch.set_num_threads(threads)
    # Fails if already set or if parallel work already ran in this process: keep what it has then.
    with contextlib.suppress(RuntimeError):
        torch.set_num_interop_threads(1)


def prepare(spec: StageSpec, module: torch.nn.Module | None = None, verify: bool = True) -> Runner:
    """A callable running the stage on its component: (1, ...) float32 array in, array out."""
    module = module if module is not None else build_stage_module(spec)
    if spec.backend == "cpu":
        return _torch_runner(module, torch.device("cpu"), spec)
    if spec.backend == "cuda":
        require("cuda")
        return _torch_runner(module, torch.device(spec.device or "cuda:0"), spec)
    if spec.backend == "opencl":
        return _opencl_runner(module, spec, verify)
    raise BackendError(f"stage {spec.label}: unknown backend {spec.backend!r}")


def _torch_runner(module: torch.nn.Module, device: torch.device, spec: StageSpec) -> Runner:
    module = module.to(device).eval()
    if device.type == "cuda":
        stream = torch.cuda.Stream(device=device, priority=_stream_priority(spec))

        def run_cuda(x: np.ndarray) -> np.ndarray:
            with torch.inference_mode(), torch.cuda.stream(stream):
                y = module(torch.from_numpy(x).to(device, non_blocking=True))
                return y.cpu().numpy()

        return run_cuda

    module = module.to(memory_format=torch.channels_last)

    def run_cpu(x: np.ndarray | torch.Tensor) -> np.ndarray:
        with torch.inference_mode():
            t = x if isinstance(x, torch.Tensor) else torch.from_numpy(x)
            if t.dim() == 4:
                t = t.contiguous(memory_format=torch.channels_last)
            return module(t).contiguous().numpy()

    return run_cpu


def input_converter(spec: StageSpec) -> Converter | None:
    """For a CPU stage with an image-like input: copy a frame straight into a channels-last tensor.

    The stage converts its input to channels-last anyway; doing it from the channel's slot saves
    the copy out of the slot (channel.Channel.get). The tensor is reused for every frame: a job
    must be done with it before the next get, as a stage's loop is. None for other stages.
    """
    if spec.backend != "cpu" or len(spec.input_shape) != 4:
        return None
    buffer = torch.empty(spec.input_shape).contiguous(memory_format=torch.channels_last)

    def convert(view: np.ndarray) -> torch.Tensor | None:
        if view.shape != spec.input_shape or view.dtype != np.float32:
            return None
        return buffer.copy_(torch.from_numpy(view))

    return convert


def _stream_priority(spec: StageSpec) -> int:
    """torch's stream priority: lower is more urgent; -1 is the high tier of every CUDA device."""
    return -1 if spec.high_priority_stream else 0


@dataclass(frozen=True)
class UnitRunner:
    """A stage as steps: `enter` the input array, run `steps` in order, `leave` with the output array.

    Between two steps the state (a tensor, on the stage's device) stays in the process: a stage
    may give its component away there and resume later. Run the steps inside one
    `torch.inference_mode()` (the stage process holds one for its whole loop: a guard per step
    would cost ~2% of a MobileNet-V2 on one core); calling the runner does it for you.
    """

    enter: Callable[[np.ndarray], Any]
    steps: tuple[Callable[[Any], Any], ...]
    leave: Callable[[Any], np.ndarray]

    def __call__(self, x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            state = self.enter(x)
            for step in self.steps:
                state = step(state)
            return self.leave(state)


def prepare_units(spec: StageSpec, module: torch.nn.Module | None = None, verify: bool = True) -> UnitRunner:
    """The stage as one step per partition unit (torch backends) or one step (OpenCL)."""
    module = module if module is not None else build_stage_module(spec)
    if spec.backend == "opencl":
        run = _opencl_runner(module, spec, verify)
        return UnitRunner(_identity, (run,), _identity)
    if spec.backend == "cuda":
        require("cuda")
        device = torch.device(spec.device or "cuda:0")
    elif spec.backend == "cpu":
        device = torch.device("cpu")
    else:
        raise BackendError(f"stage {spec.label}: unknown backend {spec.backend!r}")
    module = module.to(device).eval()
    found = getattr(module, "units", None)  # a zoo UnitSlice; any other module is one unit
    units: list[torch.nn.Module] = list(found) if isinstance(found, torch.nn.ModuleList) else [module]
    if device.type == "cuda":
        stream = torch.cuda.Stream(device=device, priority=_stream_priority(spec))

        def enter_cuda(x: np.ndarray) -> torch.Tensor:
            with torch.cuda.stream(stream):
                t = torch.from_numpy(x).to(device, non_blocking=True)
            stream.synchronize()
            return t

        def cuda_step(unit: torch.nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
            def step(t: torch.Tensor) -> torch.Tensor:
                with torch.cuda.stream(stream):
                    y = unit(t)
                stream.synchronize()  # the unit is done when the component is handed on
                return y

            return step

        def leave_cuda(t: torch.Tensor) -> np.ndarray:
            with torch.cuda.stream(stream):
                return t.cpu().numpy()

        return UnitRunner(enter_cuda, tuple(cuda_step(u) for u in units), leave_cuda)

    module = module.to(memory_format=torch.channels_last)

    def enter_cpu(x: np.ndarray | torch.Tensor) -> torch.Tensor:
        t = x if isinstance(x, torch.Tensor) else torch.from_numpy(x)
        return t.contiguous(memory_format=torch.channels_last) if t.dim() == 4 else t

    def leave_cpu(t: torch.Tensor) -> np.ndarray:
        return t.contiguous().numpy()

    return UnitRunner(enter_cpu, tuple(units), leave_cpu)


def _identity(x: Any) -> Any:
    return x


def configure_opencl(device: str) -> None:
    """Environment OpenCV reads when it first touches OpenCL: which library and which device.

    Without a system OpenCL loader (libOpenCL.so) OpenCV is pointed at the one bundled with
    pyopencl's wheel, which finds the PoCL ICD once pyopencl is imported.
    """
    os.environ.setdefault("OPENCV_DNN_OPENCL_ALLOW_ALL_DEVICES", "1")
    try:
        import pyopencl as cl
    except ImportError:
        cl = None
    if cl is not None and "OPENCV_OPENCL_RUNTIME" not in os.environ and ctypes.util.find_library("OpenCL") is None:
        libs = Path(cl.__file__).parent / ".libs"
        bundled = sorted(libs.glob("libOpenCL*.so*")) if libs.is_dir() else []
        if bundled:
            os.environ["OPENCV_OPENCL_RUNTIME"] = str(bundled[0])
    if cl is not None and device.startswith("opencl:") and "OPENCV_OPENCL_DEVICE" not in os.environ:
        _, p, d = device.split(":")
        dev = cl.get_platforms()[int(p)].get_devices()[int(d)]
        kind = cl.device_type.to_string(dev.type).split(" | ")[-1]
        os.environ["OPENCV_OPENCL_DEVICE"] = f":{kind}:{dev.name.strip()}"


def export_onnx(module: torch.nn.Module, spec: StageSpec) -> Path:
    """The stage as an ONNX file, cached by model, unit range and weights."""
    if spec.weights:
        digest = hashlib.sha256(Path(spec.weights).read_bytes()).hexdigest()[:12]
        key = f"w{digest}"
    else:
        key = f"seed{spec.seed}"
    path = cache_dir() / f"{spec.model}-{spec.start}-{spec.stop}-{key}.onnx"
    if path.is_file():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            (torch.zeros(spec.input_shape),),
            str(tmp),
            dynamo=False,
            opset_version=ONNX_OPSET,
            input_names=["x"],
            output_names=["y"],
        )
    tmp.replace(path)
    return path


def _opencl_runner(module: torch.nn.Module, spec: StageSpec, verify: bool) -> Runner:
    configure_opencl(spec.device)
    require("opencl")
    import cv2

    cv2.setNumThreads(max(spec.threads, 1))
    if not cv2.ocl.haveOpenCL():
        raise BackendError(f"stage {spec.label}: OpenCV cannot load an OpenCL runtime")
    cv2.ocl.setUseOpenCL(True)
    path = export_onnx(module, spec)
    try:
        net = cv2.dnn.readNetFromONNX(str(path))
    except cv2.error as exc:
        raise BackendError(f"stage {spec.label}: OpenCV cannot import the ONNX export: {exc}") from exc
    net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
    net.setPreferableTarget(cv2.dnn.DNN_TARGET_OPENCL)

    def run(x: np.ndarray) -> np.ndarray:
        net.setInput(x)
        return np.asarray(net.forward()).reshape(spec.output_shape)

    if verify:
        x = np.random.default_rng(0).standard_normal(spec.input_shape).astype(np.float32)
        with torch.inference_mode():
            ref = module(torch.from_numpy(x)).numpy()
        try:
            got = run(x)
        except cv2.error as exc:
            raise BackendError(f"stage {spec.label}: OpenCV OpenCL cannot run the stage: {exc}") from exc
        check_close(got, ref, spec.label)
    return run


def check_close(got: np.ndarray, ref: np.ndarray, label: str, rtol: float = VERIFY_RTOL) -> float:
    """Relative max error of `got` against torch's `ref`; BackendError beyond `rtol`."""
    if got.shape != ref.shape:
        raise BackendError(f"stage {label}: OpenCL output shape {got.shape} differs from torch's {ref.shape}")
    scale = max(float(np.abs(ref).max()), 1e-6)
    err = float(np.abs(got - ref).max()) / scale
    if not np.isfinite(err) or err > rtol:
        raise BackendError(f"stage {label}: OpenCL output differs from torch by {err:.2e} (relative; limit {rtol})")
    return err
