"""Unit vectors checked by hand against the published layer shapes."""

import itertools
import json
import shutil
from pathlib import Path
from unittest import mock

import numpy as np
import pytest

from rankmap_ros.core import unitvec
from rankmap_ros.core.unitvec import VECTOR_DIM, profile, vectors
from rankmap_ros.core.zoo import UnitKind, names


def test_alexnet_conv1_vector_by_hand() -> None:
    conv1 = profile("alexnet")[0]
    # j, t, ifm[4], ofm[4], w[4], b, a, ps[6] (stride x, y, pad left, right, top, bottom)
    expected = [0, int(UnitKind.CONV), 1, 3, 227, 227, 1, 96, 27, 27, 96, 3, 11, 11, 96, 1, 4, 4, 0, 0, 0, 0]
    assert conv1.vector().tolist() == expected
    assert conv1.macs == 55 * 55 * 96 * 3 * 11 * 11
    assert conv1.params == 96 * 3 * 11 * 11 + 96
    assert conv1.kernels == 2  # the convolution and its max-pool


def test_alexnet_fc6_vector_by_hand() -> None:
    fc6 = profile("alexnet")[5]
    assert fc6.kind is UnitKind.FC
    assert fc6.ifm == (1, 256, 6, 6)
    assert fc6.ofm == (1, 4096, 1, 1)
    assert fc6.weight == (4096, 256 * 6 * 6, 1, 1)
    assert fc6.bias == 4096
    assert fc6.macs == 4096 * 9216
    assert fc6.out_bytes == 4096 * 4


def test_resnet50_first_bottleneck_by_hand() -> None:
    block = profile("resnet50")[1]
    assert block.kind is UnitKind.RESIDUAL
    assert block.ifm == (1, 64, 56, 56)
    assert block.ofm == (1, 256, 56, 56)
    # The 3x3 convolution dominates: 56*56*64*64*9 MACs against 56*56*64*256 for each 1x1.
    assert block.weight == (64, 64, 3, 3)
    assert block.pad_stride == (1, 1, 1, 1, 1, 1)
    # Batch-norm shifts: 64 + 64 + 256, plus 256 for the projection shortcut.
    assert block.bias == 640
    assert block.activation == 1
    assert block.macs == 56 * 56 * (64 * 64 + 64 * 64 * 9 + 64 * 256 + 64 * 256)


def test_mobilenet_depthwise_macs_are_counted_apart() -> None:
    units = profile("mobilenet")
    assert sum(u.dwconv_macs for u in units) > 0
    assert all(u.macs == u.conv_macs + u.dwconv_macs + u.fc_macs for u in units)


@pytest.mark.parametrize("name", names())
def test_every_model_has_consistent_vectors(name: str) -> None:
    units = profile(name)
    vecs = vectors(name)
    assert vecs.shape == (len(units), VECTOR_DIM)
    assert np.isfinite(vecs).all()
    assert vecs[:, 0].tolist() == list(range(len(units)))
    for before, after in itertools.pairwise(units):
        assert before.ofm == after.ifm, f"{name}: unit {before.name} output does not feed {after.name}"
    assert sum(u.macs for u in units) > 0


def test_profiles_kept_on_disk_read_back_equal_and_bad_files_are_profiled_again(tmp_path, monkeypatch) -> None:
    """The disk cache saves seconds per command; it must never change what a model's units are."""
    monkeypatch.setenv("RANKMAP_CACHE", str(tmp_path))
    traced = unitvec.profile.__wrapped__("squeezenet_v2")
    (kept,) = tmp_path.glob("units/*/squeezenet_v2.json")
    unitvec.profile.cache_clear()
    try:
        with mock.patch.object(unitvec, "describe", side_effect=AssertionError("traced, not read back")):
            assert unitvec.profile("SqueezeNet-V2") == traced  # an alias reads the same file
        unitvec.profile.cache_clear()
        kept.write_text('[{"index": 0, "name": "x"')  # torn or corrupt: traced again and rewritten
        unitvec.profile.cache_clear()
        assert unitvec.profile("squeezenet_v2") == traced
        assert json.loads(kept.read_text())[0]["ifm"] == list(traced[0].ifm)
        wrong = json.loads(kept.read_text())
        wrong[0]["ifm"] = [1, 2, 3]
        kept.write_text(json.dumps(wrong))
        unitvec.profile.cache_clear()
        assert unitvec.profile("squeezenet_v2") == traced
        monkeypatch.setenv("RANKMAP_CACHE", str(tmp_path / "file"))
        (tmp_path / "file").write_text("")  # an unusable cache directory only costs the time
        unitvec.profile.cache_clear()
        assert unitvec.profile("squeezenet_v2") == traced
    finally:
        unitvec.profile.cache_clear()


def test_the_disk_key_changes_with_the_zoo_sources_and_torch(tmp_path) -> None:
    """An edited architecture must not be described by units kept from before the edit."""
    copy = shutil.copytree(Path(unitvec.zoo.__file__).parent, tmp_path / "zoo")
    key = unitvec._profile_key()
    unitvec._profile_key.cache_clear()
    try:
        with mock.patch.object(unitvec.zoo, "__file__", str(copy / "__init__.py")):
            assert unitvec._profile_key() == key
            unitvec._profile_key.cache_clear()
            (copy / "vgg.py").write_text((copy / "vgg.py").read_text().replace("4096", "2048"))
            assert unitvec._profile_key() != key
        unitvec._profile_key.cache_clear()
        with mock.patch.object(unitvec.torch, "__version__", "0.0.0"):
            assert unitvec._profile_key() != key
    finally:
        unitvec._profile_key.cache_clear()
    assert unitvec._profile_key() == key
