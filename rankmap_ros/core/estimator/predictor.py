"""The learned estimator behind the planner's ThroughputModel interface.

`LearnedEstimator.predict(workload, mappings)` turns the mappings into one index array, cropped
to the workload's DNNs and its deepest model (the network masks padding, so cropping changes only
the cost), runs the network in batches and converts its normalized log potential throughput back
to inferences/s. The RankMap network reads Q through its first linear layer, whose output for
every (model, unit, component) is tabulated at load time (`RankMapNet.stem_table`), so prediction
gathers rows of that table instead of building Q; other networks get Q from estimator/qbatch.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from rankmap_ros.core.estimator.baseline import BaselineConfig, ResNet9Light
from rankmap_ros.core.estimator.checkpoint import EstimatorError, check_platform, load_checkpoint, shipped_path
from rankmap_ros.core.estimator.features import VectorScaler, unit_table
from rankmap_ros.core.estimator.network import NetConfig, RankMapNet
from rankmap_ros.core.estimator.qbatch import assignments, q_batch
from rankmap_ros.core.estimator.target import TargetScaler
from rankmap_ros.core.estimator.vqvae import UnitVQVAE, VQConfig
from rankmap_ros.core.mapping import Mapping
from rankmap_ros.core.platform import Platform, load_platform
from rankmap_ros.core.workload import Workload

DEFAULT_VARIANT = "rankmap"


def build_network(variant: dict[str, Any]) -> nn.Module:
    """An untrained network of the variant's kind and configuration."""
    config = dict(variant["config"])
    if variant["kind"] == "rankmap":
        return RankMapNet(NetConfig(**config))
    if variant["kind"] == "resnet9_light":
        config["widths"] = tuple(config["widths"])
        return ResNet9Light(BaselineConfig(**config))
    raise EstimatorError(f"unknown estimator kind {variant['kind']!r}")


def load_vqvae(checkpoint: dict[str, Any]) -> UnitVQVAE:
    entry = checkpoint["vqvae"]
    vq = UnitVQVAE(VQConfig(**entry["config"]))
    try:
        vq.load_state_dict(entry["state"])
    except RuntimeError as exc:
        raise EstimatorError(f"the checkpoint's VQ-VAE does not match its configuration: {exc}") from exc
    return vq.eval()


def input_table(checkpoint: dict[str, Any], kind: str) -> np.ndarray:
    """(models, max_units, dim) standardized unit table for input kind 'vq' or 'raw'."""
    scaler = VectorScaler.from_dict(checkpoint["scaler"])
    if kind == "vq":
        vq = load_vqvae(checkpoint)

        def encode(raw: np.ndarray) -> np.ndarray:
            return vq.codes(scaler.transform(raw))

    elif kind == "raw":
        encode = scaler.transform
    else:
        raise EstimatorError(f"unknown input kind {kind!r}")
    table = unit_table(checkpoint["model_names"], encode, int(checkpoint["max_units"]))
    stats = checkpoint["inputs"][kind]
    return standardize(table, stats["mean"].numpy(), stats["std"].numpy())


def standardize(table: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """Standardize real rows; padding rows stay exactly zero (the network's mask reads them)."""
    real = np.abs(table).sum(axis=-1, keepdims=True) > 0
    return np.where(real, (table - mean) / std, 0.0).astype(np.float32)


class LearnedEstimator:
    """A trained network as a ThroughputModel: predict(workload, mappings) -> inferences/s."""

    def __init__(
        self, checkpoint: dict[str, Any], platform: Platform, variant: str = DEFAULT_VARIANT, batch_size: int = 64
    ) -> None:
        check_platform(checkpoint, platform)
        variants = checkpoint["variants"]
        if variant not in variants:
            raise EstimatorError(f"checkpoint has no variant {variant!r} (it has {', '.join(variants)})")
        entry = variants[variant]
        self.name = f"estimator:{variant}"
        self.platform = platform
        self.variant = variant
        self.batch_size = batch_size
        self.components = tuple(checkpoint["components"])
        self.model_names = tuple(checkpoint["model_names"])
        self.model_index = {m: i for i, m in enumerate(self.model_names)}
        self.ideal = np.asarray([checkpoint["ideal"][m] for m in self.model_names])
        self.target = TargetScaler.from_dict(checkpoint["target"])
        self.table = torch.as_tensor(input_table(checkpoint, entry["input"]))
        expected = entry["config"]["components"] * entry["config"]["dim"]
        if self.table.shape[-1] * len(self.components) != expected:
            raise EstimatorError(
                f"variant {variant!r} reads rows of {expected} numbers, its input gives "
                f"{self.table.shape[-1] * len(self.components)}"
            )
        self.net = build_network(entry)
        try:
            self.net.load_state_dict(entry["state"])
        except RuntimeError as exc:
            raise EstimatorError(f"variant {variant!r} does not match its network shape: {exc}") from exc
        self.net.eval()
        self.q_shape = (
            int(entry["config"]["max_dnns"]),
            int(entry["config"]["max_units"]),
            int(entry["config"]["components"]) * int(entry["config"]["dim"]),
        )
        self.fast: RankMapNet | None = self.net if isinstance(self.net, RankMapNet) else None
        with torch.no_grad():
            self.stems = self.fast.stem_table(self.table) if self.fast is not None else None

    @classmethod
    def load(
        cls, path: Path | None = None, platform: Platform | str = "orange_pi_5", variant: str = DEFAULT_VARIANT
    ) -> LearnedEstimator:
        """A checkpoint file, by default the one shipped for the platform."""
        platform = load_platform(platform) if isinstance(platform, str) else platform
        path = Path(path) if path is not None else shipped_path(platform.name)
        if not path.is_file() and path == shipped_path(platform.name):
            raise EstimatorError(
                f"no estimator is shipped for platform {platform.name!r}; train one (docs/ESTIMATOR.md)"
            )
        checkpoint = load_checkpoint(path, platform)
        try:
            return cls(checkpoint, platform, variant)
        except EstimatorError:
            raise
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:  # a field of the wrong shape
            raise EstimatorError(f"{path} is a malformed estimator checkpoint: {type(exc).__name__}: {exc}") from exc

    def model_ids(self, models: Sequence[str]) -> np.ndarray:
        missing = [m for m in models if m not in self.model_index]
        if missing:
            raise EstimatorError(f"the estimator was not trained on model(s) {', '.join(missing)}")
        return np.asarray([self.model_index[m] for m in models], dtype=np.int64)

    def predict_normalized(self, models: np.ndarray, assign: np.ndarray) -> np.ndarray:
        """Normalized targets (N, D) for model ids (N, D) and component indices (N, D, U), -1 padding."""
        models_t = torch.as_tensor(models.astype(np.int64))
        assign_t = torch.as_tensor(assign.astype(np.int64))
        out = []
        with torch.inference_mode():
            for start in range(0, len(models_t), self.batch_size):
                part_models, part_assign = (
                    models_t[start : start + self.batch_size],
                    assign_t[start : start + self.batch_size],
                )
                if self.fast is not None and self.stems is not None:
                    out.append(self.fast.forward_indexed(self.stems, part_models, part_assign))
                else:
                    out.append(self.net(q_batch(self.table, part_models, part_assign, len(self.components))))
        return torch.cat(out).numpy() if out else np.empty(models.shape, dtype=np.float32)

    def predict(self, workload: Workload, mappings: Sequence[Mapping]) -> np.ndarray:
        """(len(mappings), len(workload)) predicted inferences/s, DNNs in workload order."""
        ids = self.model_ids(workload.models)
        if not mappings:
            return np.empty((0, len(ids)))
        assign = assignments(workload, mappings, self.components)
        models = np.broadcast_to(ids, (len(mappings), len(ids)))
        y = self.predict_normalized(models, assign)
        return self.target.inverse(y.astype(np.float64), self.ideal[ids])


def load_estimator(platform: Platform | str = "orange_pi_5", path: Path | None = None) -> LearnedEstimator:
    """The default learned throughput model of a platform (its shipped checkpoint)."""
    return LearnedEstimator.load(path, platform)
