"""Per-unit descriptions: the paper's 22-dim layer vector plus the costs the simulator needs.

Shapes come from running the model once on the `meta` device, which propagates shapes without
allocating or computing anything, so profiling the largest network takes milliseconds.

A unit usually holds several layers; it becomes one vector this way (docs/UNITS.md):
ifm/ofm are the unit's own input and output, w and pad-stride belong to the unit's dominant
layer (the convolution or linear layer with the most multiply-accumulates), b counts every bias
in the unit (batch-norm shifts included) and a is the unit's most frequent activation.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from rankmap_ros.core import zoo
from rankmap_ros.core.files import cache_root, write_text_atomic
from rankmap_ros.core.zoo import UnitKind, UnitNet, get_spec, names

VECTOR_DIM = 22
BYTES_PER_ELEMENT = 4  # fp32, as the paper's ARM-CL runs

# `a` in the unit vector: 0 means the unit has no activation.
ACTIVATION_CODES: dict[type[nn.Module], int] = {
    nn.ReLU: 1,
    nn.ReLU6: 2,
    nn.LeakyReLU: 3,
    nn.SiLU: 4,
    nn.Sigmoid: 5,
    nn.Hardswish: 6,
    nn.Tanh: 7,
    nn.GELU: 8,
    nn.ELU: 9,
    nn.Softmax: 10,
    nn.Hardsigmoid: 11,
}

_POOLS = (
    nn.MaxPool2d,
    nn.AvgPool2d,
    nn.AdaptiveAvgPool2d,
    nn.AdaptiveMaxPool2d,
)


Shape4 = tuple[int, int, int, int]
Shape6 = tuple[int, int, int, int, int, int]


@dataclass(frozen=True)
class UnitInfo:
    """One partition unit of one DNN: its vector fields and its compute and memory costs."""

    index: int
    name: str
    kind: UnitKind
    ifm: Shape4
    ofm: Shape4
    weight: Shape4
    bias: int
    activation: int
    pad_stride: Shape6
    macs: int
    flops: int
    params: int
    kernels: int
    conv_macs: int
    dwconv_macs: int
    fc_macs: int

    @property
    def in_bytes(self) -> int:
        return int(np.prod(self.ifm)) * BYTES_PER_ELEMENT

    @property
    def out_bytes(self) -> int:
        return int(np.prod(self.ofm)) * BYTES_PER_ELEMENT

    @property
    def weight_bytes(self) -> int:
        return self.params * BYTES_PER_ELEMENT

    def vector(self) -> np.ndarray:
        """The paper's 22 numbers: j, t, ifm[4], ofm[4], w[4], b, a, ps[6]."""
        values = (
            self.index,
            int(self.kind),
            *self.ifm,
            *self.ofm,
            *self.weight,
            self.bias,
            self.activation,
            *self.pad_stride,
        )
        return np.asarray(values, dtype=np.float32)


def _shape4(shape: Sequence[int]) -> Shape4:
    """(N, C, H, W); lower-rank tensors are (N, C) with unit spatial size, (N, L, C) keeps L as H."""
    dims = list(shape)
    if len(dims) == 4:
        return (dims[0], dims[1], dims[2], dims[3])
    if len(dims) == 3:
        return (dims[0], dims[2], dims[1], 1)
    if len(dims) == 2:
        return (dims[0], dims[1], 1, 1)
    raise ValueError(f"cannot describe a tensor of shape {tuple(shape)} as (N, C, H, W)")


def _pair(value: int | tuple[int, ...] | str) -> tuple[int, int]:
    if isinstance(value, str):
        return (0, 0)
    if isinstance(value, int):
        return (value, value)
    return (int(value[0]), int(value[-1]))


@dataclass
class _Leaf:
    module: nn.Module
    out_elems: int
    in_elems: int
    macs: int


def _leaf_macs(module: nn.Module, inp: torch.Tensor, out: torch.Tensor) -> int:
    out_elems = out.numel()
    if isinstance(module, nn.Conv2d):
        kh, kw = module.kernel_size
        return out_elems * (module.in_channels // module.groups) * kh * kw
    if isinstance(module, nn.Linear):
        return out_elems * module.in_features
    return 0


def _trace(model: UnitNet, input_shape: tuple[int, ...]) -> list[list[_Leaf]]:
    """Run the model on meta tensors and record every leaf layer call, grouped by unit."""
    per_unit: list[list[_Leaf]] = [[] for _ in model.units]
    current = [0]
    hooks = []

    def leaf_hook(module: nn.Module, args: tuple[object, ...], out: object) -> None:
        inp = args[0] if args and isinstance(args[0], torch.Tensor) else None
        if not isinstance(out, torch.Tensor) or inp is None:
            return
        per_unit[current[0]].append(_Leaf(module, out.numel(), inp.numel(), _leaf_macs(module, inp, out)))

    for index, unit in enumerate(model.units):

        def enter(_module: nn.Module, _args: tuple[object, ...], index: int = index) -> None:
            current[0] = index

        hooks.append(unit.register_forward_pre_hook(enter))
        for sub in unit.modules():
            if not list(sub.children()):
                hooks.append(sub.register_forward_hook(leaf_hook))
    try:
        with torch.no_grad():
            model(torch.empty((1, *input_shape), device="meta"))
    finally:
        for hook in hooks:
            hook.remove()
    return per_unit


def _unit_shapes(model: UnitNet, input_shape: tuple[int, ...]) -> list[tuple[Shape4, Shape4]]:
    shapes: list[tuple[Shape4, Shape4]] = []
    x = torch.empty((1, *input_shape), device="meta")
    with torch.no_grad():
        for unit in model.units:
            y = unit(x)
            if not isinstance(y, torch.Tensor):
                raise TypeError(f"unit {len(shapes)} returns {type(y).__name__}, not a single tensor")
            shapes.append((_shape4(x.shape), _shape4(y.shape)))
            x = y
    return shapes


def describe(model: UnitNet, input_shape: tuple[int, ...]) -> tuple[UnitInfo, ...]:
    """Describe every unit of a built model (any device; tracing happens on `meta`)."""
    meta_model = model if next(model.parameters()).device.type == "meta" else copy.deepcopy(model).to("meta")
    meta_model.eval()
    leaves = _trace(meta_model, input_shape)
    shapes = _unit_shapes(meta_model, input_shape)
    infos = []
    for index, (unit, unit_leaves, (ifm, ofm)) in enumerate(zip(meta_model.units, leaves, shapes, strict=True)):
        infos.append(
            _describe_unit(index, model.unit_names[index], model.unit_kinds[index], unit, unit_leaves, ifm, ofm)
        )
    return tuple(infos)


def _describe_unit(
    index: int,
    name: str,
    kind: UnitKind,
    unit: nn.Module,
    leaves: list[_Leaf],
    ifm: Shape4,
    ofm: Shape4,
) -> UnitInfo:
    weighted = [leaf for leaf in leaves if isinstance(leaf.module, nn.Conv2d | nn.Linear)]
    dominant = max(weighted, key=lambda leaf: leaf.macs).module if weighted else None
    weight: Shape4 = (0, 0, 0, 0)
    pad_stride: Shape6 = (1, 1, 0, 0, 0, 0)
    if isinstance(dominant, nn.Conv2d):
        kh, kw = dominant.kernel_size
        weight = (dominant.out_channels, dominant.in_channels // dominant.groups, kh, kw)
        sy, sx = _pair(dominant.stride)
        py, px = _pair(dominant.padding)
        pad_stride = (sx, sy, px, px, py, py)
    elif isinstance(dominant, nn.Linear):
        weight = (dominant.out_features, dominant.in_features, 1, 1)
    elif leaves and isinstance(leaves[0].module, nn.MaxPool2d | nn.AvgPool2d):
        pool = leaves[0].module
        sy, sx = _pair(pool.stride)
        py, px = _pair(pool.padding)
        pad_stride = (sx, sy, px, px, py, py)

    bias = 0
    for sub in unit.modules():
        if isinstance(sub, nn.Conv2d | nn.Linear) and sub.bias is not None:
            bias += sub.bias.numel()
        elif isinstance(sub, nn.BatchNorm2d | nn.BatchNorm1d) and sub.affine:
            bias += sub.num_features

    acts = Counter(ACTIVATION_CODES[type(leaf.module)] for leaf in leaves if type(leaf.module) in ACTIVATION_CODES)
    activation = acts.most_common(1)[0][0] if acts else 0

    conv = sum(leaf.macs for leaf in weighted if isinstance(leaf.module, nn.Conv2d) and leaf.module.groups == 1)
    dw = sum(leaf.macs for leaf in weighted if isinstance(leaf.module, nn.Conv2d) and leaf.module.groups > 1)
    fc = sum(leaf.macs for leaf in weighted if isinstance(leaf.module, nn.Linear))
    macs = conv + dw + fc
    # Everything that is not a multiply-accumulate (norms, activations, pools, adds) costs
    # about one operation per output element.
    elementwise = sum(leaf.out_elems for leaf in leaves if not isinstance(leaf.module, nn.Conv2d | nn.Linear))
    kernels = sum(1 for leaf in leaves if isinstance(leaf.module, (nn.Conv2d, nn.Linear, *_POOLS)))
    params = sum(p.numel() for p in unit.parameters())
    return UnitInfo(
        index=index,
        name=name,
        kind=kind,
        ifm=ifm,
        ofm=ofm,
        weight=weight,
        bias=bias,
        activation=activation,
        pad_stride=pad_stride,
        macs=macs,
        flops=2 * macs + elementwise,
        params=params,
        kernels=max(kernels, 1),
        conv_macs=conv,
        dwconv_macs=dw,
        fc_macs=fc,
    )


@cache
def profile(name: str) -> tuple[UnitInfo, ...]:
    """Units of a zoo model by name (built on `meta`; kept in memory and on disk).

    Tracing all the zoo takes seconds, and the estimator needs every model's vectors, so each
    model's units are kept under a key of everything that decides them: the zoo's and this
    module's sources, and torch's version. A file that does not read back is profiled again.
    """
    spec = get_spec(name)
    path = cache_root() / "units" / _profile_key() / f"{spec.name}.json"
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        return tuple(_unit_from_json(unit) for unit in json.loads(path.read_text()))
    with torch.device("meta"):
        model = spec.build().eval()
    units = describe(model, spec.input_shape)
    with contextlib.suppress(OSError):
        write_text_atomic(path, json.dumps([asdict(unit) for unit in units]))
    return units


@cache
def _profile_key() -> str:
    digest = hashlib.sha256(torch.__version__.encode())
    for source in (Path(__file__), *sorted(Path(zoo.__file__).parent.glob("*.py"))):
        digest.update(source.name.encode())
        digest.update(source.read_bytes())
    return digest.hexdigest()[:16]


def _unit_from_json(data: dict[str, Any]) -> UnitInfo:
    def shape(field: str, rank: int) -> Any:
        dims = tuple(int(v) for v in data[field])
        if len(dims) != rank:
            raise ValueError(f"{field} has {len(dims)} dimensions")
        return dims

    shapes = {"ifm": 4, "ofm": 4, "weight": 4, "pad_stride": 6}
    values: dict[str, Any] = {field: shape(field, rank) for field, rank in shapes.items()}
    for f in fields(UnitInfo):
        if f.name not in {*shapes, "name", "kind"}:
            values[f.name] = int(data[f.name])
    return UnitInfo(name=str(data["name"]), kind=UnitKind(int(data["kind"])), **values)


def vectors(name: str) -> np.ndarray:
    """(units, 22) array of unit vectors for a zoo model."""
    return np.stack([unit.vector() for unit in profile(name)])


@cache
def zoo_fingerprint() -> str:
    """Short hash of every zoo model's units: datasets and checkpoints are only valid for it."""
    digest = hashlib.sha256()
    for name in names():
        digest.update(name.encode())
        for unit in profile(name):
            digest.update(unit.vector().tobytes())
            digest.update(np.asarray([unit.macs, unit.params], dtype=np.int64).tobytes())
    return digest.hexdigest()[:16]
