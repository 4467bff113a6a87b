"""The zoo: every model slices into standalone stages that reproduce the whole network."""

import random

import pytest
import torch

from rankmap_ros.core import zoo
from rankmap_ros.core.qtensor import DEFAULT_MAX_UNITS
from rankmap_ros.core.unitvec import profile

PAPER_POOL = {
    "alexnet",
    "densenet121",
    "densenet169",
    "efficientnet_b0",
    "efficientnet_b1",
    "efficientnet_b2",
    "googlenet",
    "inception_resnet_v2",
    "inception_v3",
    "inception_v4",
    "mobilenet",
    "mobilenet_v2",
    "resnet12",
    "resnet50",
    "resnet50_v2",
    "resnext50",
    "shufflenet",
    "squeezenet",
    "squeezenet_v2",
    "ssd_mobilenet",
    "yolo_v3",
    "vgg16",
    "vgg19",
}

# Unit counts the partitioning literature uses (ARM-CL pipelines, OmniBoost, Pipe-All).
LITERATURE_UNITS = {
    "alexnet": {8},
    "vgg16": {16},
    "vgg19": {19},
    "resnet50": {18},
    "squeezenet": {18, 19},
    "squeezenet_v2": {18, 19},
    "inception_v4": {23},
    "inception_v3": {17},
    "googlenet": {13},
    "mobilenet": set(range(15, 29)),
}

# Published parameter counts in millions (1000-class heads unless noted).
PUBLISHED_PARAMS_M = {
    "alexnet": 62.4,  # single-tower variant with 227x227 input
    "vgg16": 138.4,
    "vgg19": 143.7,
    "resnet50": 25.6,
    "resnext50": 25.0,
    "densenet121": 8.0,
    "densenet169": 14.1,
    "inception_v3": 23.8,
    "inception_v4": 42.7,
    "inception_resnet_v2": 55.8,
    "mobilenet": 4.2,
    "mobilenet_v2": 3.5,
    "efficientnet_b0": 5.3,
    "efficientnet_b1": 7.8,
    "efficientnet_b2": 9.1,
    "squeezenet": 1.25,
    "squeezenet_v2": 1.24,
    "yolo_v3": 61.9,
}


def test_pool_holds_the_papers_23_networks_and_inception_resnet_v1() -> None:
    assert set(zoo.names()) == PAPER_POOL | {"inception_resnet_v1"}


@pytest.mark.parametrize("name", sorted(LITERATURE_UNITS))
def test_unit_counts_match_the_literature(name: str) -> None:
    assert len(profile(name)) in LITERATURE_UNITS[name]


@pytest.mark.parametrize("name", sorted(PUBLISHED_PARAMS_M))
def test_parameter_counts_match_published(name: str) -> None:
    params = sum(u.params for u in profile(name)) / 1e6
    assert params == pytest.approx(PUBLISHED_PARAMS_M[name], rel=0.03)


def test_every_model_fits_the_q_tensor() -> None:
    assert max(len(profile(n)) for n in zoo.names()) <= DEFAULT_MAX_UNITS


@pytest.mark.parametrize("name", zoo.names())
def test_slices_reproduce_the_whole_model(name: str) -> None:
    torch.manual_seed(0)
    model = zoo.build(name)
    spec = zoo.get_spec(name)
    x = torch.randn(1, *spec.input_shape)
    with torch.no_grad():
        whole = model(x)
        y = x
        for i in range(len(model)):  # every single-unit slice, one after another
            y = model.slice(i, i + 1)(y)
        cuts = sorted(random.Random(name).sample(range(1, len(model)), k=min(2, len(model) - 1)))
        z = x
        for a, b in zip([0, *cuts], [*cuts, len(model)], strict=True):
            z = model.slice(a, b)(z)
    scale = whole.abs().max().item() + 1e-6
    assert torch.isfinite(whole).all()
    assert torch.allclose(y, whole, atol=1e-5 * scale, rtol=1e-4)
    assert torch.allclose(z, whole, atol=1e-5 * scale, rtol=1e-4)


def test_names_titles_and_aliases_resolve() -> None:
    assert zoo.canonical_name("ResNet-50") == "resnet50"
    assert zoo.canonical_name("Inception-V4") == "inception_v4"
    assert zoo.canonical_name("squeezenet_v2") == "squeezenet_v2"


def test_unknown_model_is_a_clear_error() -> None:
    with pytest.raises(zoo.ZooError, match=r"unknown model 'resnet5000'.*known models: alexnet"):
        zoo.canonical_name("resnet5000")


def test_slice_bounds_are_checked() -> None:
    model = zoo.build("alexnet")
    with pytest.raises(IndexError):
        model.slice(3, 3)
    with pytest.raises(IndexError):
        model.slice(0, 9)


def test_local_weights_file_is_loaded(tmp_path) -> None:
    torch.manual_seed(1)
    source = zoo.build("squeezenet_v2")
    path = tmp_path / "sq.pt"
    torch.save(source.state_dict(), path)
    loaded = zoo.build("squeezenet_v2", weights=path)
    x = torch.randn(1, 3, 227, 227)
    with torch.no_grad():
        assert torch.equal(loaded(x), source(x))


def test_bad_weights_files_are_clear_errors(tmp_path) -> None:
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"not a checkpoint")
    with pytest.raises(zoo.ZooError, match=r"cannot read weights file .*: not a state_dict saved by torch\.save"):
        zoo.build("alexnet", weights=corrupt)
    whole = tmp_path / "whole.pt"  # the module itself, not its state_dict: refused unread (no code runs)
    torch.save(zoo.build("alexnet"), whole)
    with pytest.raises(zoo.ZooError, match=r"not a state_dict saved by torch\.save"):
        zoo.build("alexnet", weights=whole)
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    with pytest.raises(zoo.ZooError, match=r"cannot read weights file .*: EOFError"):
        zoo.build("alexnet", weights=empty)
    other = tmp_path / "other.pt"
    torch.save(zoo.build("squeezenet_v2").state_dict(), other)
    with pytest.raises(zoo.ZooError, match=r"does not fit alexnet: \d+ missing keys \(") as misfit:
        zoo.build("alexnet", weights=other)
    assert len(str(misfit.value)) < 600 and "\n" not in str(misfit.value)  # torch's list of every key: kilobytes
    state = zoo.build("alexnet").state_dict()
    state[next(iter(state))] = state[next(iter(state))] * float("nan")  # a training that diverged
    torch.save(state, other)
    zoo.build("alexnet", weights=other)  # a stage process: the file was checked when it was accepted
    with pytest.raises(zoo.ZooError, match="holds NaN or infinite values"):
        zoo.build("alexnet", weights=other, check_finite=True)
    with pytest.raises(zoo.ZooError, match="does not exist"):
        zoo.build("alexnet", weights=tmp_path / "missing.pt")
