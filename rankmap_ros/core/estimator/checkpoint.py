"""Estimator checkpoints: one file of plain tensors, numbers and strings, safe to load.

A checkpoint is saved with `torch.save` of a dict and loaded with `torch.load(weights_only=True)`,
so opening a model file never runs pickled code. It holds everything prediction needs: the
unit-vector scaler, the VQ-VAE, the target normalization, each model's ideal throughput, and one
entry per trained network ("variant": the RankMap estimator, its raw-input twin, the OmniBoost
baseline). It also records what its labels are valid for (platform name and fingerprint, zoo
version), and loading refuses a checkpoint that does not match.
"""

from __future__ import annotations

import pickle
import warnings
import zipfile
from importlib import resources
from pathlib import Path
from typing import Any

import torch

from rankmap_ros.core.files import not_a_file, write_atomic
from rankmap_ros.core.labels import platform_fingerprint
from rankmap_ros.core.platform import Platform
from rankmap_ros.core.unitvec import zoo_fingerprint

FORMAT = "rankmap.estimator/1"
SHIPPED = "data/estimator"
RETRAIN = "rankmap estimator build, docs/ESTIMATOR.md"


class EstimatorError(ValueError):
    """A checkpoint that is missing, corrupt, or made for another platform, zoo or network shape."""


def shipped_path(platform_name: str) -> Path:
    """Where the package keeps the checkpoint it loads by default for a platform."""
    return Path(str(resources.files("rankmap_ros").joinpath(f"{SHIPPED}/{platform_name}.pt")))


# what loading reads before it builds anything (the variants' own entries are checked as they load)
REQUIRED = (
    "zoo_version",
    "platform",
    "platform_fingerprint",
    "components",
    "model_names",
    "max_units",
    "ideal",
    "scaler",
    "target",
    "inputs",
    "variants",
)


def save_checkpoint(checkpoint: dict[str, Any], path: Path) -> None:
    write_atomic(Path(path), lambda fh: torch.save(checkpoint, fh))


def load_checkpoint(path: Path, platform: Platform | None = None) -> dict[str, Any]:
    """Read and check a checkpoint; with `platform`, also check it was trained for that platform."""
    path = Path(path)
    if not path.is_file():
        raise EstimatorError(f"estimator checkpoint {path} {not_a_file(path)}")
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            if not any(n.endswith("/data.pkl") for n in archive.namelist()):
                raise EstimatorError(
                    f"{path} is not an estimator checkpoint: a zip archive, but not one torch.save wrote"
                )
    if path.stat().st_size == 0:
        raise EstimatorError(f"estimator checkpoint {path} is empty")
    try:
        with warnings.catch_warnings():  # torch's notes on foreign pickles; the refusal below says it
            warnings.simplefilter("ignore")
            checkpoint = torch.load(path, weights_only=True, map_location="cpu")
    except pickle.UnpicklingError as exc:  # torch's text advises weights_only=False: not for a file of unknown origin
        raise EstimatorError(
            f"estimator checkpoint {path} holds more than tensors and plain data (or is not torch data): "
            "not loaded, as it could run code"
        ) from exc
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as exc:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise EstimatorError(f"estimator checkpoint {path} cannot be read (damaged?): {reason}") from exc
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != FORMAT:
        found = checkpoint.get("format") if isinstance(checkpoint, dict) else type(checkpoint).__name__
        raise EstimatorError(f"{path} is not an estimator checkpoint (format {found!r}, expected {FORMAT!r})")
    missing = [key for key in REQUIRED if key not in checkpoint]
    if missing:
        raise EstimatorError(f"{path} is not a complete estimator checkpoint: no {', '.join(missing)}")
    if not isinstance(checkpoint["variants"], dict) or not checkpoint["variants"]:
        raise EstimatorError(f"{path} holds no trained variant")
    if not all(_finite(entry) for entry in checkpoint["variants"].values()):
        raise EstimatorError(f"{path} holds NaN or infinite weights: its training diverged, or the file is damaged")
    if checkpoint["zoo_version"] != zoo_fingerprint():
        raise EstimatorError(
            f"{path} was trained for zoo version {checkpoint['zoo_version']}, this zoo is {zoo_fingerprint()}; "
            f"retrain it ({RETRAIN})"
        )
    if platform is not None:
        check_platform(checkpoint, platform, path)
    return checkpoint


def _finite(value: Any) -> bool:
    """Every floating-point tensor in a (nested) checkpoint entry is finite."""
    if isinstance(value, torch.Tensor):
        return not value.is_floating_point() or bool(torch.isfinite(value).all())
    if isinstance(value, dict):
        return all(_finite(v) for v in value.values())
    if isinstance(value, list | tuple):
        return all(_finite(v) for v in value)
    return True


def check_platform(checkpoint: dict[str, Any], platform: Platform, path: Path | str = "checkpoint") -> None:
    if checkpoint["platform"] != platform.name:
        raise EstimatorError(f"{path} was trained for platform {checkpoint['platform']!r}, not {platform.name!r}")
    current = platform_fingerprint(platform)
    if checkpoint["platform_fingerprint"] != current:
        raise EstimatorError(
            f"{path} was trained on labels of platform {platform.name!r} with fingerprint "
            f"{checkpoint['platform_fingerprint']}, the platform is now {current} (recalibrated?); "
            f"retrain it ({RETRAIN})"
        )
    if list(checkpoint["components"]) != list(platform.component_names):
        raise EstimatorError(
            f"{path} has components {checkpoint['components']}, platform {platform.name!r} "
            f"has {list(platform.component_names)}"
        )
