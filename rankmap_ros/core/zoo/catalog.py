"""Name lookup and construction for every zoo model."""

from __future__ import annotations

import pickle
import re
from functools import cache
from pathlib import Path

import torch

from rankmap_ros.core.files import not_a_file
from rankmap_ros.core.zoo import (
    alexnet,
    densenet,
    efficientnet,
    googlenet,
    inception_resnet,
    inception_v3,
    inception_v4,
    mobilenet,
    resnet,
    shufflenet,
    squeezenet,
    ssd,
    vgg,
    yolo,
)
from rankmap_ros.core.zoo.spec import ModelSpec
from rankmap_ros.core.zoo.units import UnitNet

_MODULES = (
    alexnet,
    densenet,
    efficientnet,
    googlenet,
    inception_resnet,
    inception_v3,
    inception_v4,
    mobilenet,
    resnet,
    shufflenet,
    squeezenet,
    ssd,
    vgg,
    yolo,
)


class ZooError(ValueError):
    """An unknown model name or an unusable weights file."""


def _key(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


@cache
def _table() -> tuple[dict[str, ModelSpec], dict[str, str]]:
    by_name: dict[str, ModelSpec] = {}
    lookup: dict[str, str] = {}
    for module in _MODULES:
        for spec in module.SPECS:
            if spec.name in by_name:
                raise RuntimeError(f"zoo model {spec.name!r} is defined twice")
            by_name[spec.name] = spec
            for alias in (spec.name, spec.title, *spec.aliases):
                lookup[_key(alias)] = spec.name
    return dict(sorted(by_name.items())), lookup


def names() -> tuple[str, ...]:
    """Every model id, sorted."""
    return tuple(_table()[0])


def specs() -> tuple[ModelSpec, ...]:
    return tuple(_table()[0].values())


def canonical_name(name: str) -> str:
    """The model id for a name, title or alias ('ResNet-50', 'resnet_50' -> 'resnet50')."""
    found = _table()[1].get(_key(name))
    if found is None:
        raise ZooError(f"unknown model {name!r}; known models: {', '.join(names())}")
    return found


MODEL_FILE_SUFFIXES = (".pt", ".pth")


def is_model_file(model: str) -> bool:
    """A model given as a file (a path, or a name ending in .pt/.pth) rather than a zoo name."""
    return model.endswith(MODEL_FILE_SUFFIXES) or "/" in model


def file_architecture(path: str | Path) -> str:
    """The zoo name a model file is named after: `<zoo model>[-tag].pt` (not checked here)."""
    return Path(path).stem.split("-", 1)[0]


def get_spec(name: str) -> ModelSpec:
    return _table()[0][canonical_name(name)]


def build(name: str, weights: str | Path | None = None, check_finite: bool = False) -> UnitNet:
    """Build a zoo model in eval mode: random weights, or a local state_dict file.

    `check_finite` refuses a file holding NaN or infinite weights (a training that diverged):
    0.37 s for VGG-16 here, so done once where a file is accepted, not in every stage process.
    """
    model = get_spec(name).build()
    if weights is not None:
        path = Path(weights)
        if not path.is_file():
            raise ZooError(f"weights file {path} {not_a_file(path)}")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as exc:  # torch's text for it is a page about weights_only
            raise ZooError(
                f"cannot read weights file {path}: not a state_dict saved by torch.save(model.state_dict(), path)"
            ) from exc
        except Exception as exc:  # torch raises many types for corrupt files
            lines = str(exc).strip().splitlines()
            why = lines[0][:200] if lines else f"{type(exc).__name__} (empty or truncated?)"
            raise ZooError(f"cannot read weights file {path}: {why}") from exc
        if not isinstance(state, dict):
            raise ZooError(f"weights file {path} does not hold a state_dict")
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise ZooError(f"weights file {path} does not fit {name}: {_misfit(model.state_dict(), state)}") from exc
        if check_finite:
            floats = [(k, v) for k, v in state.items() if isinstance(v, torch.Tensor) and v.is_floating_point()]
            bad = [k for k, v in floats if not v.isfinite().all()]
            if bad:
                raise ZooError(
                    f"weights file {path} holds NaN or infinite values ({bad[0]}{' ...' if len(bad) > 1 else ''})"
                )
    return model.eval()


def _misfit(expected: dict[str, torch.Tensor], given: dict[str, object]) -> str:
    """torch's own text lists every key, kilobytes over many lines: the first of each kind here."""
    missing = [k for k in expected if k not in given]
    unexpected = [k for k in given if k not in expected]
    shapes = [
        f"{k} is {tuple(v.shape)}, expected {tuple(expected[k].shape)}"
        for k, v in given.items()
        if k in expected and isinstance(v, torch.Tensor) and v.shape != expected[k].shape
    ]
    parts = []
    for what, found in (("missing", missing), ("unexpected", unexpected)):
        if found:
            parts.append(f"{len(found)} {what} keys ({found[0]}{', ...' if len(found) > 1 else ''})")
    if shapes:
        parts.append(f"{len(shapes)} of other shapes ({shapes[0]}{', ...' if len(shapes) > 1 else ''})")
    return "; ".join(parts) or "its tensors do not load"
