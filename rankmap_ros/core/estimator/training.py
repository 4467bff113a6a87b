"""Training loop shared by the estimator and its baselines: split, augment, early stop, resume.

The dataset is split 90/10 by sample (the paper's split) with a seeded permutation. Q is built
per batch from index arrays (estimator/qbatch.py), so a 10K-sample dataset costs a few MB in
memory instead of a few GB of Q tensors. Channel-shuffle augmentation permutes the DNN slots of
every sample (models, mappings and targets together): any DNN can sit in any slot, so every
decoder learns every model and empty slots stop being always the last ones.

Before the first epoch and after every epoch the whole state (weights, optimizer, schedule,
best weights, history) goes to a state file, plain tensors and dicts only: a run started again
with the same configuration and data continues from there with the same weights, however its
network was initialised, and a finished run leaves the best weights in the model. A state of
other settings or data is refused by name rather than overwritten: it may be hours of work.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import torch
from torch import nn

from rankmap_ros.core.estimator.checkpoint import EstimatorError
from rankmap_ros.core.estimator.qbatch import q_batch
from rankmap_ros.core.files import write_atomic

STATE_FORMAT = "rankmap.train-state/1"
_UNREADABLE = ("network shape", "dataset")  # settings named in a refusal without their values

EpochCallback = Callable[[int, float, float], None]
StartCallback = Callable[[int], None]


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 60
    batch_size: int = 128
    lr: float = 2e-3
    weight_decay: float = 1e-4
    patience: int = 10
    val_fraction: float = 0.1
    seed: int = 0
    shuffle_channels: bool = True
    loss: str = "l2"  # "l1" for the OmniBoost-style baseline, as OmniBoost trains
    max_minutes: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class TrainData:
    """A dataset as tensors: model ids (N, D), components (N, D, U), targets (N, D), real slots (N, D)."""

    models: torch.Tensor
    assign: torch.Tensor
    y: torch.Tensor
    real: torch.Tensor

    def __len__(self) -> int:
        return len(self.models)

    @classmethod
    def from_arrays(cls, models: np.ndarray, assign: np.ndarray, y: np.ndarray) -> TrainData:
        real = models >= 0
        return cls(
            torch.as_tensor(models.astype(np.int64)),
            torch.as_tensor(assign.astype(np.int64)),
            torch.as_tensor(np.where(real, y, 0.0).astype(np.float32)),
            torch.as_tensor(real),
        )

    def take(self, index: torch.Tensor) -> TrainData:
        return TrainData(self.models[index], self.assign[index], self.y[index], self.real[index])

    def shuffled_channels(self, generator: torch.Generator) -> TrainData:
        """Every sample's DNN slots in a random order (inputs and targets alike)."""
        perm = torch.rand(self.models.shape, generator=generator).argsort(dim=1)
        assign_perm = perm.unsqueeze(-1).expand_as(self.assign)
        return TrainData(
            self.models.gather(1, perm),
            self.assign.gather(1, assign_perm),
            self.y.gather(1, perm),
            self.real.gather(1, perm),
        )

    def digest(self) -> str:
        h = hashlib.sha256()
        for t in (self.models, self.assign, self.y):
            h.update(t.numpy().tobytes())
        return h.hexdigest()[:16]


@dataclass
class History:
    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    best_epoch: int = -1
    best_val: float = float("inf")
    seconds: float = 0.0
    stopped: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def split(n: int, val_fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(train indices, validation indices), a seeded permutation of range(n)."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    n_val = max(1, round(n * val_fraction))
    return perm[n_val:], perm[:n_val]


def masked_loss(pred: torch.Tensor, y: torch.Tensor, real: torch.Tensor, kind: str) -> torch.Tensor:
    err = pred - y
    per = err.square() if kind == "l2" else err.abs()
    return (per * real).sum() / real.sum().clamp_min(1)


def predict_batches(
    net: nn.Module, table: torch.Tensor, data: TrainData, n_components: int, batch: int = 512
) -> torch.Tensor:
    """Normalized predictions (N, D) for a whole split, in inference mode."""
    net.eval()
    out = []
    with torch.inference_mode():
        for start in range(0, len(data), batch):
            part = data.take(torch.arange(start, min(start + batch, len(data))))
            out.append(net(q_batch(table, part.models, part.assign, n_components)))
    return torch.cat(out) if out else torch.empty(0, data.models.shape[1])


def _evaluate(net: nn.Module, table: torch.Tensor, data: TrainData, n_components: int, kind: str) -> float:
    pred = predict_batches(net, table, data, n_components)
    return float(masked_loss(pred, data.y, data.real, kind))


def train_network(
    net: nn.Module,
    table: torch.Tensor,
    data: TrainData,
    n_components: int,
    config: TrainConfig,
    state_path: Path | None = None,
    on_epoch: EpochCallback | None = None,
    on_start: StartCallback | None = None,
) -> History:
    """Train `net` in place (best validation weights at the end) and return its history.

    `on_start(first_epoch)` is called once before training (first_epoch > 0 when resuming),
    `on_epoch(epoch, train_loss, val_loss)` after every epoch.
    """
    torch.manual_seed(config.seed)
    train_idx, val_idx = split(len(data), config.val_fraction, config.seed)
    train, val = data.take(train_idx), data.take(val_idx)
    optimizer = torch.optim.AdamW(net.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=config.lr, total_steps=config.epochs * _steps(len(train), config.batch_size), pct_start=0.1
    )
    settings = _settings(net, data, config)
    fingerprint = _fingerprint(settings)
    history = History()
    best_state = {k: v.clone() for k, v in net.state_dict().items()}
    start_epoch = 0
    state = read_state(state_path) if state_path is not None else None
    if state is not None and state.get("format") != STATE_FORMAT:
        raise EstimatorError(
            f"{state_path} is not a state of this version's training (format {state.get('format')!r}, "
            f"this version writes {STATE_FORMAT!r}): move it away or delete it to start over"
        )
    if state is not None:
        _check_same_run(Path(str(state_path)), state, settings, fingerprint)
        net.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        best_state = state["best"]
        history = History(**state["history"])
        start_epoch = int(state["epoch"]) + 1
    elif state_path is not None:
        # the initial weights come from the global RNG as it stood when the network was built,
        # which a resumed process does not reproduce
        _save_state(Path(state_path), settings, fingerprint, -1, net, optimizer, schedule, best_state, history)
    began = time.monotonic() - history.seconds
    stale = start_epoch - 1 - history.best_epoch if history.best_epoch >= 0 else 0
    history.stopped = "epochs"
    if on_start is not None:
        on_start(start_epoch)
    for epoch in range(start_epoch, config.epochs):
        if stale >= config.patience:
            history.stopped = "early"
            break
        if config.max_minutes is not None and time.monotonic() - began > 60 * config.max_minutes:
            history.stopped = "time"
            break
        generator = torch.Generator().manual_seed(config.seed * 100_003 + epoch)
        epoch_data = train.shuffled_channels(generator) if config.shuffle_channels else train
        order = torch.randperm(len(train), generator=generator)
        net.train()
        total, count = 0.0, 0
        for start in range(0, len(order), config.batch_size):
            batch = epoch_data.take(order[start : start + config.batch_size])
            pred = net(q_batch(table, batch.models, batch.assign, n_components))
            loss = masked_loss(pred, batch.y, batch.real, config.loss)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(net.parameters(), 5.0)
            optimizer.step()
            schedule.step()
            total += float(loss.detach()) * len(batch)
            count += len(batch)
        val_loss = _evaluate(net, table, val, n_components, config.loss)
        history.train_loss.append(total / max(count, 1))
        history.val_loss.append(val_loss)
        if val_loss < history.best_val:
            history.best_val, history.best_epoch = val_loss, epoch
            best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
            stale = 0
        else:
            stale += 1
        history.seconds = time.monotonic() - began
        if on_epoch is not None:
            on_epoch(epoch, history.train_loss[-1], val_loss)
        if state_path is not None:
            _save_state(Path(state_path), settings, fingerprint, epoch, net, optimizer, schedule, best_state, history)
    net.load_state_dict(best_state)
    net.eval()
    history.seconds = time.monotonic() - began
    return history


def read_state(path: Path) -> dict[str, Any] | None:
    """An interrupted run's state, or None when there is none.

    A file that cannot be read is refused, not started over: it may be hours of work that a
    wrong path or a copy gone wrong put there, and starting over would overwrite it.
    """
    if not Path(path).exists():
        return None
    try:
        state = torch.load(path, weights_only=True, map_location="cpu")
    except Exception as exc:  # torch raises many types for damaged files
        raise EstimatorError(
            f"{path} is not a readable training state ({type(exc).__name__}): move it away or delete it to start over"
        ) from exc
    if not isinstance(state, dict):
        raise EstimatorError(f"{path} is not a training state: move it away or delete it to start over")
    return state


def _steps(n: int, batch: int) -> int:
    return max(1, -(-n // batch))


def _settings(net: nn.Module, data: TrainData, config: TrainConfig) -> dict[str, Any]:
    """What a run's state depends on, by the names a refusal shows (max_minutes may change)."""
    settings: dict[str, Any] = {k: v for k, v in config.to_dict().items() if k != "max_minutes"}
    settings["network shape"] = {k: list(v.shape) for k, v in net.state_dict().items()}
    settings["dataset"] = data.digest()
    return settings


def _fingerprint(settings: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


def _check_same_run(path: Path, state: dict[str, Any], settings: dict[str, Any], fingerprint: str) -> None:
    if state.get("fingerprint") != fingerprint:
        saved = state.get("settings")
        refuse_other_settings(path, "a training run", settings, saved if isinstance(saved, dict) else None)


def refuse_other_settings(
    path: Path, run: str, settings: dict[str, Any], saved: dict[str, Any] | None, prefix: str = ""
) -> NoReturn:
    """A saved state of other settings may be hours of work: name what differs, overwrite nothing."""
    if saved is None:
        differing = "settings or data"
    else:
        differing = ", ".join(
            f"{prefix}{k}" if k in _UNREADABLE else f"{prefix}{k} {settings.get(k)!r} here, {saved.get(k)!r} there"
            for k in sorted(settings.keys() | saved.keys())
            if saved.get(k) != settings.get(k)
        )
    raise EstimatorError(
        f"{path} holds {run} of other settings ({differing}): run with the same settings to go on "
        "from it, or delete it to start over"
    )


def _save_state(
    path: Path,
    settings: dict[str, Any],
    fingerprint: str,
    epoch: int,
    net: nn.Module,
    optimizer: torch.optim.Optimizer,
    schedule: torch.optim.lr_scheduler.LRScheduler,
    best: dict[str, torch.Tensor],
    history: History,
) -> None:
    state = {
        "format": STATE_FORMAT,
        "fingerprint": fingerprint,
        "settings": settings,
        "epoch": epoch,
        "model": net.state_dict(),
        "optimizer": optimizer.state_dict(),
        "schedule": schedule.state_dict(),
        "best": best,
        "history": history.to_dict(),
    }
    write_atomic(path, lambda fh: torch.save(state, fh))
