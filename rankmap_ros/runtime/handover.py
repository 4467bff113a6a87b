"""What one preemption costs the job that yields, by where the preempting job runs (issue 7).

A best-effort model runs unit by unit on one core. Before one of its units a real-time model's
job runs on the same core: inline in the same thread, in another thread of the process, or in
another process pinned to that core, as the runtime's stage processes are. The extra time of
the best-effort units from there to the end of the job, against undisturbed jobs, is the cost
of that preemption; the preempting job's own time is not in it. Every way, every preemption
point and the undisturbed jobs are interleaved in random order, so the host's drift hits them
alike. This separates the cost of the cache refill any preemption pays from what the runtime's
process-per-stage design adds to it. On a CUDA device the models run there, fed from that core,
and every unit ends with a synchronisation, as the runtime's CUDA stages do.
"""

from __future__ import annotations

import functools
import multiprocessing as mp
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from rankmap_ros.core.zoo import build as build_model
from rankmap_ros.runtime.stage import boundary_shapes

WAYS = ("same_thread", "other_thread", "other_process")
_START_S = 120.0  # longest wait for the other process to build its model


@dataclass(frozen=True)
class HandoverConfig:
    best_effort: str = "resnet50"
    realtime: str = "squeezenet_v2"
    cpu: int | None = None  # None: the first CPU this process may use
    rounds: int = 6
    seed: int = 0
    device: str = "cpu"  # or a CUDA device, e.g. "cuda:0"


@dataclass(frozen=True)
class _Model:
    net: torch.nn.Module
    x: torch.Tensor
    sync: Callable[[], None]

    def job(self) -> None:
        self.net(self.x)
        self.sync()


def _prepare(model: str, cpu: int, device: str) -> _Model:
    """Pin this process to `cpu` with one torch thread; the model and an input, as a stage has them."""
    os.sched_setaffinity(0, {cpu})
    torch.set_num_threads(1)
    net = build_model(model).eval()
    x = torch.randn(boundary_shapes(model)[0])
    if device == "cpu":
        net = net.to(memory_format=torch.channels_last)
        return _Model(net, x.contiguous(memory_format=torch.channels_last), _no_sync)
    where = torch.device(device)
    return _Model(net.to(where), x.to(where), functools.partial(torch.cuda.synchronize, where))


def _no_sync() -> None:
    return None


@dataclass(frozen=True)
class Pair:
    """Both models, built once in this process, pinned to `cpu`: what `measure` and `inline_pair` run."""

    cfg: HandoverConfig
    cpu: int
    be: _Model
    rt: _Model


def load(cfg: HandoverConfig) -> Pair:
    """Pin this process to one CPU with one torch thread (and leave it so), and build both models."""
    cpu = cfg.cpu if cfg.cpu is not None else min(os.sched_getaffinity(0))
    return Pair(cfg, cpu, _prepare(cfg.best_effort, cpu, cfg.device), _prepare(cfg.realtime, cpu, cfg.device))


def _serve(model: str, cpu: int, device: str, go: Any, done: Any) -> None:
    """The other process: one job of `model` per `go`, then `done`."""
    rt = _prepare(model, cpu, device)
    with torch.inference_mode():
        rt.job()
        done.release()
        while go.acquire():
            rt.job()
            done.release()


def _job(be: _Model, units: list[torch.nn.Module], at: int, interrupt: Callable[[], None]) -> np.ndarray:
    """Seconds of each unit of one job; `interrupt` runs before unit `at` (never if `at` < 0)."""
    times = np.empty(len(units))
    state = be.x
    for i, unit in enumerate(units):
        if i == at:
            interrupt()
        start = time.perf_counter()
        state = unit(state)
        be.sync()
        times[i] = time.perf_counter() - start
    return times


def measure(pair: Pair, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Extra best-effort compute per preemption for each way of running the preempting job."""
    say = progress or (lambda _msg: None)
    cfg, cpu, be, rt = pair.cfg, pair.cpu, pair.be, pair.rt
    units = list(be.net)
    ctx = mp.get_context("spawn")
    go, done = ctx.Semaphore(0), ctx.Semaphore(0)
    server = ctx.Process(target=_serve, args=(cfg.realtime, cpu, cfg.device, go, done), daemon=True)
    server.start()
    t_go, t_done = threading.Semaphore(0), threading.Semaphore(0)

    def in_thread() -> None:
        with torch.inference_mode():
            while t_go.acquire():
                rt.job()
                t_done.release()

    def other_thread() -> None:
        t_go.release()
        t_done.acquire()

    def other_process() -> None:
        go.release()
        if not done.acquire(timeout=_START_S):
            raise RuntimeError("the preempting process stopped answering")

    ways: dict[str, Callable[[], None]] = {
        "same_thread": rt.job,
        "other_thread": other_thread,
        "other_process": other_process,
    }
    threading.Thread(target=in_thread, daemon=True).start()
    try:
        if not done.acquire(timeout=_START_S):
            raise RuntimeError(f"the preempting process did not start within {_START_S:.0f} s")
        rng = np.random.default_rng(cfg.seed)
        points = range(1, len(units))
        base: list[np.ndarray] = []
        hit: dict[str, dict[int, list[np.ndarray]]] = {w: {k: [] for k in points} for w in WAYS}
        with torch.inference_mode():
            for way in WAYS:  # warm every path once
                _job(be, units, 1, ways[way])
            for r in range(cfg.rounds):
                say(f"round {r + 1}/{cfg.rounds}")
                runs = [(way, k) for way in WAYS for k in points] + [("", 0)] * len(points)
                for i in rng.permutation(len(runs)):
                    way, k = runs[i]
                    if way:
                        hit[way][k].append(_job(be, units, k, ways[way]))
                    else:
                        base.append(_job(be, units, -1, rt.job))
    finally:
        go.release()
        server.terminate()
        server.join(timeout=5)
    usual = np.median(base, axis=0)
    job_s = float(usual.sum())
    out: dict[str, Any] = {
        "measured": True,
        "cpu": cpu,
        "device": cfg.device,
        "best_effort": cfg.best_effort,
        "realtime": cfg.realtime,
        "rounds": cfg.rounds,
        "job_s": job_s,
        "ways": {},
    }
    for way in WAYS:
        extra = [float((np.median(hit[way][k], axis=0)[k:] - usual[k:]).sum()) for k in points]
        first = [float(np.median(hit[way][k], axis=0)[k] - usual[k]) for k in points]
        out["ways"][way] = {
            "extra_s_per_preemption": float(np.median(extra)),
            "first_unit_extra_s": float(np.median(first)),
            "extra_s_by_point": extra,
        }
    same = out["ways"]["same_thread"]["extra_s_per_preemption"]
    for way in WAYS:
        out["ways"][way]["over_same_thread_s"] = out["ways"][way]["extra_s_per_preemption"] - same
    return out


def _next_release(release: float, period: float, now: float) -> float:
    """The first release after `now`: releases missed meanwhile are dropped, as the runtime drops late jobs."""
    while release <= now:
        release += period
    return release


def inline_pair(
    pair: Pair, period: float = 0.03, seconds: float = 4.0, progress: Callable[[str], None] | None = None
) -> dict[str, Any]:
    """`bench realtime`'s stress pair with both DNNs in one thread: preemption with no hand-over.

    The real-time job is released every `period`. Under edf it runs at the best-effort job's
    next unit boundary; under np_edf only between best-effort jobs, and only the latest release
    (older ones have passed their deadline). `preemption_overhead` is the best-effort DNN's
    compute per job under edf over np_edf, the median of the ratios within a round, as
    `runtime.realtime.preemption_cost` reports it for stage processes.
    """
    say = progress or (lambda _msg: None)
    cfg, cpu, be, rt = pair.cfg, pair.cpu, pair.be, pair.rt
    units = list(be.net)

    def run(preemptive: bool) -> tuple[float, float]:
        """Best-effort compute per job, and preemptions per job."""
        busy, jobs, preemptions = 0.0, 0, 0
        release = time.monotonic() + period
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            state = be.x
            for i, unit in enumerate(units):
                if preemptive and i and time.monotonic() >= release:
                    rt.job()
                    preemptions += 1
                    release = _next_release(release, period, time.monotonic())
                start = time.perf_counter()
                state = unit(state)
                be.sync()
                busy += time.perf_counter() - start
            jobs += 1
            if time.monotonic() >= release:
                rt.job()
                release = _next_release(release, period, time.monotonic())
        return busy / jobs, preemptions / jobs

    rounds = []
    with torch.inference_mode():
        run(True)  # warm both models and the allocator
        for r in range(cfg.rounds):
            say(f"one-thread pair, round {r + 1}/{cfg.rounds}")
            edf, per_job = run(True)
            np_edf, _ = run(False)
            rounds.append({"edf_s": edf, "np_edf_s": np_edf, "preemptions_per_job": per_job})
    return {
        "measured": True,
        "cpu": cpu,
        "device": cfg.device,
        "best_effort": cfg.best_effort,
        "realtime": cfg.realtime,
        "period_s": period,
        "seconds": seconds,
        "rounds": rounds,
        "preemption_overhead": float(np.median([r["edf_s"] / r["np_edf_s"] - 1.0 for r in rounds])),
        "preemptions_per_job": float(np.median([r["preemptions_per_job"] for r in rounds])),
    }
