"""How good and how cheap an estimator is: the numbers of `rankmap estimator eval`.

- l2: mean squared error on the normalized target (standardized log potential throughput).
- mape: mean |predicted - true| / true throughput over every DNN of every sample (a fraction),
  also per model, so "per DNN" can be read both ways. Measured labels of 0 (a DNN that completed
  nothing in its window) have no relative error: they are left out and counted (`zero_labels`).
- spearman: for every workload of the test set (many mappings each), the rank correlation
  between predicted and true mean throughput over its mappings, averaged over workloads: can
  the search tell a better mapping from a worse one.
- params; macs: multiply-accumulates of one forward pass on one full-size Q (5 DNNs × 32
  units), counted with forward hooks (convolutions, linear layers, and attention's own matmuls).
- us_per_mapping: wall time of `predict` (index arrays, Q, network, back to inferences/s) per
  mapping for thousands of random mappings of a 4-DNN workload, best of a few runs.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch
from torch import nn

from rankmap_ros.core.dataset import Dataset, DatasetError
from rankmap_ros.core.estimator.predictor import LearnedEstimator
from rankmap_ros.core.mapping import Mapping
from rankmap_ros.core.workload import Workload

BENCH_WORKLOAD = ("squeezenet_v2", "inception_v4", "resnet50", "vgg16")  # the paper's Section II mix


def average_ranks(values: np.ndarray) -> np.ndarray:
    """Ranks 0..n-1, ties sharing their mean rank (as Spearman's rho wants)."""
    order = np.argsort(values, kind="stable")
    ranks = np.empty(len(values))
    ranks[order] = np.arange(len(values))
    sorted_values = values[order]
    start = 0
    for stop in range(1, len(values) + 1):
        if stop == len(values) or sorted_values[stop] != sorted_values[start]:
            ranks[order[start:stop]] = (start + stop - 1) / 2
            start = stop
    return ranks


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    ra, rb = average_ranks(np.asarray(a, dtype=float)), average_ranks(np.asarray(b, dtype=float))
    if ra.std() == 0 or rb.std() == 0:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])


def count_macs(net: nn.Module, q: torch.Tensor) -> int:
    """Multiply-accumulates of net(q), from hooks on every layer that multiplies."""
    total = 0

    def hook(module: nn.Module, inputs: tuple[Any, ...], out: Any) -> None:
        nonlocal total
        if isinstance(module, nn.Linear):
            total += out.numel() * module.in_features
        elif isinstance(module, nn.Conv1d | nn.Conv2d):
            kernel = int(np.prod(module.kernel_size))
            total += out.numel() * (module.in_channels // module.groups) * kernel
        extra = getattr(module, "extra_macs", None)
        if extra is not None:
            total += int(extra(inputs[0]))

    handles = [m.register_forward_hook(hook) for m in net.modules()]
    try:
        with torch.inference_mode():
            net(q)
    finally:
        for handle in handles:
            handle.remove()
    return total


def full_q(estimator: LearnedEstimator) -> torch.Tensor:
    """One full-size Q (every DNN slot and unit row filled): the cost of the dense network."""
    return torch.ones(1, *estimator.q_shape)


def time_per_mapping(estimator: LearnedEstimator, mappings: int = 4096, repeats: int = 3, seed: int = 0) -> float:
    """Microseconds per mapping of `predict` on random mappings of the benchmark workload."""
    workload = Workload.from_models(BENCH_WORKLOAD)
    rng = np.random.default_rng(seed)
    batch = [Mapping.random(workload, estimator.components, rng, max_stages=3) for _ in range(mappings)]
    estimator.predict(workload, batch[:64])
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        estimator.predict(workload, batch)
        best = min(best, time.perf_counter() - start)
    return best / mappings * 1e6


def accuracy(estimator: LearnedEstimator, dataset: Dataset) -> dict[str, Any]:
    """l2, mape (overall, per model, per workload size) and spearman of one estimator on a dataset."""
    if tuple(dataset.model_names) != estimator.model_names:
        raise DatasetError("the dataset's model list differs from the estimator's")
    real = dataset.models >= 0
    ideal = np.where(real, estimator.ideal[np.maximum(dataset.models, 0)], np.nan)
    y_true = estimator.target.transform(dataset.throughput, ideal)
    y_pred = estimator.predict_normalized(dataset.models, dataset.assign)
    predicted = estimator.target.inverse(y_pred.astype(np.float64), ideal)
    scored = real & (dataset.throughput > 0)  # a measured 0 (nothing completed) has no relative error
    if not scored.any():
        raise DatasetError("every throughput label is 0: there is nothing to compare the predictions with")
    with np.errstate(divide="ignore", invalid="ignore"):
        ape = np.abs(predicted - dataset.throughput) / dataset.throughput
    per_model = {
        name: float(ape[scored & (dataset.models == i)].mean())
        for i, name in enumerate(dataset.model_names)
        if (scored & (dataset.models == i)).any()
    }
    sizes = real.sum(axis=1)
    per_size = {
        str(n): float(ape[(sizes == n)[:, None] & scored].mean())
        for n in np.unique(sizes)
        if ((sizes == n)[:, None] & scored).any()
    }
    groups = dataset.groups
    rhos = []
    for g in np.unique(groups):
        rows = groups == g
        if rows.sum() < 3:
            continue
        mask = real[rows]
        pred_mean = np.where(mask, predicted[rows], 0).sum(axis=1) / mask.sum(axis=1)
        true_mean = np.where(mask, dataset.throughput[rows], 0).sum(axis=1) / mask.sum(axis=1)
        rho = spearman(pred_mean, true_mean)
        if np.isfinite(rho):
            rhos.append(rho)
    return {
        "l2": float(((y_pred - y_true) ** 2)[real].mean()),
        "mape": float(ape[scored].mean()),
        "mape_median": float(np.median(ape[scored])),
        "zero_labels": int((real & ~scored).sum()),
        "mape_per_model": per_model,
        "mape_worst_model": max(per_model, key=per_model.__getitem__),
        "mape_per_workload_size": per_size,
        "spearman": float(np.mean(rhos)) if rhos else float("nan"),
        "spearman_min": float(np.min(rhos)) if rhos else float("nan"),
        "spearman_workloads": len(rhos),
    }


def cost(estimator: LearnedEstimator, timing: bool = True) -> dict[str, Any]:
    """params, macs per full-size Q, and (if timing) microseconds per mapping with this process's threads."""
    data: dict[str, Any] = {
        "params": sum(p.numel() for p in estimator.net.parameters()),
        "macs": count_macs(estimator.net, full_q(estimator)),
    }
    if timing:
        data["us_per_mapping"] = time_per_mapping(estimator)
        data["threads"] = torch.get_num_threads()
    return data
