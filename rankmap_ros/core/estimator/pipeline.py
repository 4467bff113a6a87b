"""From a dataset to a checkpoint: scaler, VQ-VAE, unit tables, targets, then each network.

Variants trained on the same samples, split and targets:
  rankmap      the paper's estimator on VQ-VAE codes (16 numbers per unit): the one shipped
  rankmap_raw  the same network on the raw 22-dim vectors: what the VQ-VAE saves and costs
  omniboost    OmniBoost's ResNet-9-light on the same Q, trained with its L1 loss: the baseline
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure
from torch import nn

from rankmap_ros.core import zoo
from rankmap_ros.core.dataset import Dataset
from rankmap_ros.core.estimator.baseline import BaselineConfig, ResNet9Light
from rankmap_ros.core.estimator.checkpoint import FORMAT, EstimatorError, save_checkpoint
from rankmap_ros.core.estimator.features import VectorScaler, unit_table
from rankmap_ros.core.estimator.network import NetConfig, RankMapNet
from rankmap_ros.core.estimator.predictor import standardize
from rankmap_ros.core.estimator.target import TargetScaler
from rankmap_ros.core.estimator.training import (
    History,
    TrainConfig,
    TrainData,
    read_state,
    refuse_other_settings,
    train_network,
)
from rankmap_ros.core.estimator.vqvae import UnitVQVAE, VQConfig, fit_vqvae
from rankmap_ros.core.unitvec import vectors

VARIANTS: tuple[str, ...] = ("rankmap", "rankmap_raw", "omniboost")
VARIANT_INPUT = {"rankmap": "vq", "rankmap_raw": "raw", "omniboost": "vq"}
# OmniBoost trains with L1 and Adam at lr 0.01 (research notes §1.3).
BASELINE_LOSS = "l1"
BASELINE_LR = 1e-2

Log = Callable[[str], None]


@dataclass(frozen=True)
class FitOptions:
    variants: tuple[str, ...] = ("rankmap",)
    train: TrainConfig = field(default_factory=TrainConfig)
    net: NetConfig = field(default_factory=NetConfig)
    vq: VQConfig = field(default_factory=VQConfig)
    vq_steps: int = 1500
    baseline_epochs: int | None = None  # the OmniBoost baseline's epochs; None: as `train`


def _ideal_of(dataset: Dataset) -> np.ndarray:
    ideal = dataset.ideal()
    return np.where(dataset.models >= 0, ideal[np.maximum(dataset.models, 0)], np.nan)


def train_targets(dataset: Dataset, target: TargetScaler) -> TrainData:
    y = np.nan_to_num(target.transform(dataset.throughput, _ideal_of(dataset)))
    return TrainData.from_arrays(dataset.models, dataset.assign, y)


def _input_stats(table: np.ndarray) -> dict[str, torch.Tensor]:
    real = table[np.abs(table).sum(axis=-1) > 0]
    return {"mean": torch.as_tensor(real.mean(axis=0)), "std": torch.as_tensor(real.std(axis=0) + 1e-6)}


def _vqvae(
    options: FitOptions,
    scaler: VectorScaler,
    state: Path | None,
    log: Log,
    on_step: Callable[[int, int, float], None] | None = None,
) -> tuple[UnitVQVAE, dict]:
    """Fit the VQ-VAE, or take it from the state file of an interrupted run with the same settings."""
    settings = {"config": options.vq.to_dict(), "steps": options.vq_steps, "seed": options.train.seed}
    saved = read_state(state) if state is not None else None
    if saved is not None and not {"settings", "state", "report"} <= saved.keys():
        raise EstimatorError(f"{state} is not a VQ-VAE state: move it away or delete it to start over")
    if saved is not None and saved["settings"] != settings:
        settings_saved = saved["settings"] if isinstance(saved["settings"], dict) else None
        refuse_other_settings(Path(str(state)), "a run", settings, settings_saved, prefix="VQ-VAE ")
    if saved is not None:
        vq = UnitVQVAE(options.vq)
        vq.load_state_dict(saved["state"])
        return vq.eval(), saved["report"]
    log(f"fitting the VQ-VAE ({options.vq.in_dim} -> {options.vq.latent_dim}) on the zoo's unit vectors")
    raw = np.concatenate([vectors(m) for m in zoo.names()])
    vq, report = fit_vqvae(raw, scaler, options.vq, steps=options.vq_steps, seed=options.train.seed, on_step=on_step)
    if state is not None:
        save_checkpoint({"settings": settings, "state": vq.state_dict(), "report": report.to_dict()}, state)
    return vq, report.to_dict()


def fit(
    dataset: Dataset,
    options: FitOptions,
    state_dir: Path | None = None,
    log: Log = print,
    on_epoch: Callable[[str, int, float, float], None] | None = None,
    on_start: Callable[[str, int, int], None] | None = None,
    on_vq_step: Callable[[int, int, float], None] | None = None,
) -> dict[str, Any]:
    """Train every requested variant and return the checkpoint dict (see checkpoint.py).

    `on_start(variant, first_epoch, epochs)`, `on_epoch(variant, epoch, train_loss, val_loss)`
    and `on_vq_step(step, steps, loss)` report progress; `state_dir` keeps what an interrupted
    run resumes from.
    """
    unknown = set(options.variants) - set(VARIANTS)
    if unknown:
        raise EstimatorError(f"unknown variant(s) {', '.join(sorted(unknown))}; known: {', '.join(VARIANTS)}")
    dataset.check_compatible(dataset.meta["platform"])
    names = zoo.names()
    if tuple(dataset.model_names) != names:
        raise EstimatorError("the dataset's model list differs from the zoo's; regenerate it")
    state_dir = Path(state_dir) if state_dir is not None else None
    if state_dir is not None:
        state_dir.mkdir(parents=True, exist_ok=True)
    max_units = int(dataset.meta["max_units"])
    scaler = VectorScaler.fit(names)
    vq, vq_report = _vqvae(options, scaler, state_dir / "vqvae.pt" if state_dir else None, log, on_vq_step)

    raw_tables = {
        "vq": unit_table(names, lambda raw: vq.codes(scaler.transform(raw)), max_units),
        "raw": unit_table(names, scaler.transform, max_units),
    }
    inputs = {kind: _input_stats(table) for kind, table in raw_tables.items()}
    tables = {
        kind: torch.as_tensor(standardize(table, inputs[kind]["mean"].numpy(), inputs[kind]["std"].numpy()))
        for kind, table in raw_tables.items()
    }
    target = TargetScaler.fit(dataset.throughput, _ideal_of(dataset))
    data = train_targets(dataset, target)
    n_components = len(dataset.components)
    variants: dict[str, Any] = {}
    for name in options.variants:
        kind = VARIANT_INPUT[name]
        dim = tables[kind].shape[-1]
        shape = {"dim": dim, "components": n_components, "max_dnns": dataset.models.shape[1], "max_units": max_units}
        net: nn.Module
        if name == "omniboost":
            config: Any = BaselineConfig(**shape)
            net = ResNet9Light(config)
            train_config = replace(
                options.train,
                loss=BASELINE_LOSS,
                lr=BASELINE_LR,
                epochs=options.baseline_epochs or options.train.epochs,
            )
        else:
            config = replace(options.net, **shape)
            net = RankMapNet(config)
            train_config = options.train
        params = sum(p.numel() for p in net.parameters())
        log(f"training {name}: {params:,} parameters, {len(dataset)} samples, input {kind} ({dim} per unit)")
        torch.manual_seed(train_config.seed)
        history = train_network(
            net,
            tables[kind],
            data,
            n_components,
            train_config,
            state_path=state_dir / f"{name}.pt" if state_dir else None,
            on_epoch=partial(on_epoch, name) if on_epoch else None,
            on_start=partial(_started, on_start, name, train_config.epochs) if on_start else None,
        )
        log(
            f"{name}: best validation loss {history.best_val:.4f} at epoch {history.best_epoch + 1}, "
            f"{history.seconds / 60:.1f} min, stopped: {history.stopped}"
        )
        variants[name] = {
            "kind": "resnet9_light" if name == "omniboost" else "rankmap",
            "input": kind,
            "config": config.to_dict(),
            "state": net.state_dict(),
            "train_config": train_config.to_dict(),
            "history": history.to_dict(),
        }
    meta = dataset.meta
    return {
        "format": FORMAT,
        "platform": meta["platform"],
        "platform_fingerprint": meta["platform_fingerprint"],
        "label_source": meta["label_source"],
        "zoo_version": meta["zoo_version"],
        "components": list(meta["components"]),
        "model_names": list(names),
        "max_units": max_units,
        "ideal": {m: float(meta["ideal"][m]) for m in names},
        "scaler": scaler.to_dict(),
        "target": target.to_dict(),
        "vqvae": {"config": options.vq.to_dict(), "state": vq.state_dict(), "report": vq_report},
        "inputs": inputs,
        "variants": variants,
        "dataset": {k: meta[k] for k in ("samples", "seed", "mappings_per_workload", "max_stages") if k in meta},
        "created": time.strftime("%Y-%m-%d"),
    }


def _started(callback: Callable[[str, int, int], None], name: str, epochs: int, first: int) -> None:
    callback(name, first, epochs)


def plot_curves(histories: dict[str, History | dict[str, Any]], path: Path, title: str) -> None:
    """Training and validation loss per epoch of every variant, on a log scale."""
    fig = Figure(figsize=(7, 4.2))
    ax = fig.add_subplot(1, 1, 1)
    for i, (name, history) in enumerate(histories.items()):
        h = history.to_dict() if isinstance(history, History) else history
        epochs = np.arange(1, len(h["train_loss"]) + 1)
        color = f"C{i}"
        ax.plot(epochs, h["train_loss"], color=color, linestyle="--", label=f"{name} train")
        ax.plot(epochs, h["val_loss"], color=color, label=f"{name} validation")
        if h["best_epoch"] >= 0:
            ax.plot([h["best_epoch"] + 1], [h["best_val"]], "o", color=color)
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss on normalized log P (L2; L1 for omniboost)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def default_curve_path(out: Path) -> Path:
    return Path(out).with_name(Path(out).stem + "-curve.png")


def variant_names(text: str | Sequence[str]) -> tuple[str, ...]:
    items = text.split(",") if isinstance(text, str) else list(text)
    return tuple(v.strip() for v in items if v.strip())
