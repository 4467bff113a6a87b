"""The ROS face without processes: image decoding, result messages, request checks, levels, launch files."""

from __future__ import annotations

import ast
import dataclasses
import math
import re
import runpy
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import ClassVar

import numpy as np
import pytest
import tomllib

from rankmap_ros.core.platform import load_platform
from rankmap_ros.ros import image_codec, results
from rankmap_ros.ros.diagnostics import level_value
from rankmap_ros.ros.rclpy_compat import msg
from rankmap_ros.ros.registry import Registration, Registry, RequestError
from rankmap_ros.ros.supervisor import ChainConfig, executor_command

ROOT = Path(__file__).resolve().parents[2]
Image = msg("sensor_msgs/msg/Image")


def _image(pixels: np.ndarray, encoding: str, padding: int = 0) -> object:
    h, w = pixels.shape[:2]
    rows = np.ascontiguousarray(pixels.reshape(h, -1)).view(np.uint8)  # bytes as stored (16-bit: 2 a value)
    rows = np.pad(rows, ((0, 0), (0, padding)))
    return Image(height=h, width=w, encoding=encoding, step=rows.shape[1], data=rows.tobytes())


@pytest.mark.parametrize("padding", [0, 5])
def test_image_decoding_honours_step_and_encodings(padding: int) -> None:
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (6, 7, 3), dtype=np.uint8)
    assert np.array_equal(image_codec.image_to_rgb(_image(rgb, "rgb8", padding)), rgb)
    assert np.array_equal(image_codec.image_to_rgb(_image(rgb[..., ::-1].copy(), "bgr8", padding)), rgb)
    gray = rgb[..., 0].copy()
    decoded = image_codec.image_to_rgb(_image(gray, "mono8", padding))
    assert decoded.shape == (6, 7, 3) and np.array_equal(decoded[..., 1], gray)


def test_image_tensor_is_resized_and_normalised() -> None:
    rgb = np.full((48, 64, 3), 255, np.uint8)
    x = image_codec.to_tensor(image_codec.to_rgb(_image(rgb, "rgb8")), image_codec.Preprocess(height=32, width=40))
    assert x.shape == (1, 3, 32, 40) and x.dtype == np.float32
    expected = (1.0 - np.array(image_codec.IMAGENET_MEAN)) / np.array(image_codec.IMAGENET_STD)
    assert np.allclose(x[0, :, 0, 0], expected, atol=1e-5)


def test_compressed_images_decode_like_raw_ones() -> None:
    """PNG is lossless: the compressed stream must give the raw stream's pixels, in RGB order."""
    import cv2

    compressed = msg("sensor_msgs/msg/CompressedImage")
    rgb = np.random.default_rng(1).integers(0, 256, (6, 7, 3), dtype=np.uint8)
    ok, png = cv2.imencode(".png", np.ascontiguousarray(rgb[..., ::-1]))  # OpenCV writes BGR
    assert ok
    image = compressed(format="rgb8; png compressed bgr8", data=png.tobytes())
    assert np.array_equal(image_codec.to_rgb(image), rgb)
    assert image_codec.is_compressed_topic("/cam/image_raw/compressed")
    assert not image_codec.is_compressed_topic("/cam/image_raw")
    with pytest.raises(image_codec.ImageError, match=r"compressed image \(jpeg, 5 bytes\) cannot be decoded"):
        image_codec.to_rgb(compressed(format="jpeg", data=b"\xff\xd8bad"))


@pytest.mark.parametrize("pattern", ["rggb", "bggr", "gbrg", "grbg"])
def test_raw_bayer_images_of_machine_vision_cameras_keep_their_colours(pattern: str) -> None:
    """Spinnaker or Pylon drivers publish `image_raw` as bayer_rggb8 (or 16): demosaicked to RGB."""
    rgb = np.zeros((8, 10, 3), np.uint8)
    rgb[...] = (200, 40, 90)  # a red: a mosaic read with the wrong pattern turns it green or blue
    decoded = image_codec.image_to_rgb(_image(image_codec.bayer_mosaic(rgb, pattern), f"bayer_{pattern}8", padding=3))
    assert np.array_equal(decoded[2:-2, 2:-2], rgb[2:-2, 2:-2])
    deep = image_codec.bayer_mosaic(rgb.astype(np.uint16) * 257, pattern)
    for big_endian in (False, True):
        image = _image(deep.astype(">u2" if big_endian else "<u2"), f"bayer_{pattern}16")
        image.is_bigendian = int(big_endian)
        assert np.array_equal(image_codec.image_to_rgb(image)[2:-2, 2:-2], rgb[2:-2, 2:-2]), big_endian


def test_webcam_yuv422_and_16_bit_images_decode() -> None:
    # BT.601 video range, as V4L2 webcams send it: red, then blue, each over a pair of pixels
    red, blue = (81, 90, 240), (41, 240, 110)  # (Y, U, V)
    uyvy = np.array([[[u, y, v, y] for y, u, v in (red, blue)]] * 2, np.uint8).reshape(2, 4, 2)
    yuyv = np.array([[[y, u, y, v] for y, u, v in (red, blue)]] * 2, np.uint8).reshape(2, 4, 2)
    for pixels, encoding in ((uyvy, "yuv422"), (yuyv, "yuv422_yuy2")):
        decoded = image_codec.image_to_rgb(_image(pixels, encoding, padding=2)).astype(int)
        assert np.abs(decoded[:, :2] - (255, 0, 0)).max() <= 3, (encoding, decoded)
        assert np.abs(decoded[:, 2:] - (0, 0, 255)).max() <= 3, (encoding, decoded)
    with pytest.raises(image_codec.ImageError, match="even width"):
        image_codec.image_to_rgb(Image(height=1, width=3, encoding="yuv422", step=6, data=bytes(6)))

    thermal = np.array([[0, 128 * 257, 65535]], np.uint16)  # mono16: full range to 0..255
    for big_endian in (False, True):
        image = _image(thermal.astype(">u2" if big_endian else "<u2"), "mono16", padding=4)
        image.is_bigendian = int(big_endian)
        assert image_codec.image_to_rgb(image)[..., 0].tolist() == [[0, 128, 255]], big_endian
    rgb = np.random.default_rng(2).integers(0, 256, (3, 5, 3), dtype=np.uint16)
    deep = _image((rgb * 257)[..., ::-1].astype("<u2"), "bgr16")
    assert np.array_equal(image_codec.image_to_rgb(deep), rgb)


def test_bad_images_are_refused_clearly() -> None:
    with pytest.raises(image_codec.ImageError, match="not supported"):
        image_codec.image_to_rgb(Image(height=1, width=1, encoding="32FC1", step=4, data=b"\0" * 4))
    with pytest.raises(image_codec.ImageError, match="needs step"):
        image_codec.image_to_rgb(Image(height=2, width=2, encoding="rgb8", step=6, data=b"\0" * 6))
    for empty in (Image(), Image(height=4, width=0, encoding="rgb8")):  # a dropped-out camera's frame
        with pytest.raises(image_codec.ImageError, match="is empty"):
            image_codec.to_rgb(empty)
    with pytest.raises(image_codec.ImageError, match="needs step >= 12"):  # 16-bit: two bytes a value
        image_codec.image_to_rgb(Image(height=1, width=2, encoding="rgb16", step=6, data=b"\0" * 6))


def test_classification_keeps_the_source_header() -> None:
    header = results.header_of(1_700_000_000_123_456_789, "cam_optical")
    logits = np.zeros((1, 10), np.float32)
    logits[0, 7] = 5.0
    out = results.classification(header, logits, results.Decoding(top_k=3))
    assert out.header.stamp.sec == 1_700_000_000 and out.header.stamp.nanosec == 123_456_789
    assert out.header.frame_id == "cam_optical"
    assert out.results[0].class_id == "7" and len(out.results) == 3
    assert math.isclose(sum(results.softmax(logits[0])), 1.0)


def test_detections_are_in_original_image_pixels_and_empty_when_nothing_is_found() -> None:
    header = results.header_of(5, "cam")
    rows = np.full((1, 1917, 95), -20.0, np.float32)  # every anchor: background wins
    rows[..., 4] = 20.0
    empty = results.detections(header, "ssd_mobilenet", rows, 640, 480, results.Decoding())
    assert empty.header.frame_id == "cam" and list(empty.detections) == []
    anchors = results._ssd_anchors("ssd_mobilenet")
    best = int(np.argmax(anchors[:, 2] * anchors[:, 3]))
    rows[0, best, :4] = 0.0
    rows[0, best, 4 + 17] = 40.0
    found = results.detections(header, "ssd_mobilenet", rows, 640, 480, results.Decoding())
    assert len(found.detections) == 1
    d = found.detections[0]
    cx, _, _, h = anchors[best]
    assert math.isclose(d.bbox.center.position.x, cx * 640, rel_tol=1e-4)
    assert math.isclose(d.bbox.size_y, h * 480, rel_tol=1e-4)
    assert d.results[0].hypothesis.class_id == "17" and d.header.frame_id == "cam"
    named = results.Decoding(labels=tuple(f"coco {i}" for i in range(91)))
    found = results.detections(header, "ssd_mobilenet", rows, 640, 480, named)
    assert found.detections[0].results[0].hypothesis.class_id == "coco 17"


def test_tensor_result_carries_shape_and_values() -> None:
    # float64 in: the message takes it as rclpy's setters do (array.array, not numpy)
    out = results.tensor(results.header_of(0, "c"), "squeezenet_v2", np.arange(6, dtype=np.float64).reshape(1, 6))
    assert list(out.shape) == [1, 6] and list(out.data) == [0, 1, 2, 3, 4, 5] and out.model == "squeezenet_v2"


def _reg(name: str = "a", **kw: object) -> Registration:
    fields = {"model": "squeezenet_v2", "input_topic": "/cam/image_raw", "priority": 1.0, "min_rate": 0.0}
    fields.update({"output_kind": "", "output_topic": "", **kw})
    return Registration(name=name, **fields)  # type: ignore[arg-type]


def test_registry_refusals_change_nothing(tmp_path: Path) -> None:
    registry = Registry(max_dnns=2, resolve=lambda t: t if t.startswith("/") else f"/robot1/{t}")
    registry.register(_reg("a"), [])
    before = dict(registry.dnns)
    model_dir = tmp_path / "models"
    model_dir.mkdir()
    (tmp_path / "squeezenet_v2.pt").write_bytes(b"x")
    (model_dir / "squeezenet_v2-broken.pt").write_bytes(b"not a state dict")
    import torch

    from rankmap_ros.core import zoo

    diverged = {
        k: v * math.nan if v.is_floating_point() else v for k, v in zoo.build("squeezenet_v2").state_dict().items()
    }
    torch.save(diverged, model_dir / "squeezenet_v2-nan.pt")
    bad = {
        "already registered": _reg("a"),
        "unknown model": _reg("b", model="nonet"),
        "outside the allowed model directories": _reg("b", model=str(tmp_path / "squeezenet_v2.pt")),
        "cannot read weights file": _reg("b", model=str(model_dir / "squeezenet_v2-broken.pt")),
        "holds NaN or infinite values": _reg("b", model=str(model_dir / "squeezenet_v2-nan.pt")),
        "input_topic is empty": _reg("b", input_topic=""),
        "not a valid ROS topic name": _reg("b", input_topic="/bad topic"),
        # what ROS refuses too (rcl: no part starting with a digit), and the executors, other
        # nodes than the one asking, cannot resolve `~` or `{node}` as meant
        "'/cam/0/image' is not a valid ROS topic name": _reg("b", input_topic="/cam/0/image"),
        "'~/image' is not a valid": _reg("b", input_topic="~/image"),
        "'{node}/image' is not a valid": _reg("b", input_topic="{node}/image"),
        "'/cam//image' is not a valid": _reg("b", input_topic="/cam//image"),
        "'/cam/' is not a valid": _reg("b", input_topic="/cam/"),
        "at most 200": _reg("b", input_topic="/" + "c" * 200),
        # another DNN's results (or the mapping) as input: a wait for images that never come
        "'rankmap/a/classification' (/robot1/rankmap/a/classification) is one of the manager's own topics": _reg(
            "b", input_topic="rankmap/a/classification"
        ),
        "'/robot1/rankmap' (/robot1/rankmap) is one of the manager's own": _reg("b", input_topic="/robot1/rankmap"),
        "too long": _reg("b" * 65),
        "finite number": _reg("b", priority=math.inf),
        "min_rate must be": _reg("b", min_rate=-2.0),
        "is not one of": _reg("b", output_kind="segmentation"),
        "not a detector": _reg("b", output_kind="detection"),
    }
    for expected, reg in bad.items():
        with pytest.raises(RequestError, match=re.escape(expected)):
            registry.register(reg, [str(model_dir)])
        assert registry.dnns == before
    registry.register(_reg("b", priority=0.0, input_topic="rankmap_cam/image_raw"), [])  # relative to the namespace
    assert registry.dnns["b"].input_topic == "rankmap_cam/image_raw"
    with pytest.raises(RequestError, match="at most 2 DNNs"):
        registry.register(_reg("c"), [])
    for args, expected in [
        (("static", ["a"], [math.nan]), "finite number"),
        (("static", ["a", "b"], [0.0, 0.0]), "all zero"),
        (("static", ["zz"], [1.0]), "not registered"),
        (("static", ["a", "a"], [1.0, 2.0]), "only once"),
        (("dynamic", ["a"], [1.0]), "give no names"),
        (("fancy", [], []), "is not one of"),
    ]:
        with pytest.raises(RequestError, match=expected):
            registry.set_priorities(*args)  # type: ignore[arg-type]
        assert registry.mode == "static" and registry.weights() == [1.0, 0.0]
    registry.set_priorities("static", ["b"], [3.0])
    assert registry.weights() == [1.0, 3.0]


def test_real_time_registration_is_checked_against_the_platform() -> None:
    from rankmap_ros.core.platform import load_platform

    registry = Registry(max_dnns=3, platform=load_platform("orange_pi_5"))
    for reg, expected in [
        (
            _reg("v", model="vgg16", period=0.1, deadline=0.02),
            r"real-time 'v' refused: deadline 20.0 ms .* vgg16 .*\(gpu: 20\d.\d ms\)",
        ),
        (_reg("v", model="vgg16", period=0.1, deadline=0.3), r"period 100.0 ms is shorter than one vgg16 job"),
        (_reg("v", period=math.nan), "period must be a finite number"),
        (_reg("v", deadline=0.05), "a deadline needs a period"),
    ]:
        with pytest.raises(RequestError, match=expected):
            registry.register(reg, [])
        assert registry.dnns == {}
    with pytest.raises(RequestError, match=r"min_rate 1e\+308/s cannot be met: squeezenet_v2 .* at most 252.3/s"):
        registry.register(_reg("v", min_rate=1e308), [])
    assert registry.dnns == {}
    stored = registry.register(_reg("s", period=0.1, deadline=0.06), [])
    spec = registry.workload().dnns[0]
    assert spec.realtime and spec.period == 0.1 and spec.deadline == 0.06 and stored.task.deadline == 0.06
    registry.register(_reg("b"), [])
    assert not registry.workload().dnns[1].realtime


def test_model_file_in_an_allowed_directory_is_accepted(tmp_path: Path) -> None:
    import torch

    from rankmap_ros.core import zoo

    path = tmp_path / "squeezenet_v2-mine.pt"
    torch.save(zoo.build("squeezenet_v2").state_dict(), path)
    stored = Registry(5).register(_reg("mine", model=str(path)), [str(tmp_path)])
    assert stored.model == "squeezenet_v2" and stored.weights == str(path.resolve())


def test_a_model_cards_normalisation_and_class_names_are_used_and_mistakes_refused(tmp_path: Path) -> None:
    """Fine-tuned weights bring their own input scaling and classes; a wrong card is refused at once."""
    import torch

    from rankmap_ros.core import zoo
    from rankmap_ros.ros.model_card import ModelCard, ModelCardError, read_card

    path = tmp_path / "squeezenet_v2-parts.pt"
    torch.save(zoo.build("squeezenet_v2").state_dict(), path)
    assert read_card(path, 1000) == read_card(None, 1000) == ModelCard()  # no card: ImageNet's, indices
    (tmp_path / "parts.txt").write_text("".join(f"part {i}\n" for i in range(1000)))
    card = tmp_path / "squeezenet_v2-parts.yaml"
    card.write_text("mean: [0, 0, 0]\nstd: [1, 1, 1]\nlabels_file: parts.txt\n")
    read = read_card(path, 1000)
    assert read.mean == (0.0, 0.0, 0.0) and read.std == (1.0, 1.0, 1.0) and read.labels[7] == "part 7"
    rgb = np.full((4, 4, 3), 255, np.uint8)
    prep = image_codec.Preprocess(4, 4, mean=read.mean, std=read.std)
    assert np.allclose(image_codec.to_tensor(rgb, prep), 1.0)  # [0, 1] input, as these weights want
    logits = np.zeros((1, 1000), np.float32)
    logits[0, 7] = 5.0
    top = results.classification(results.header_of(0, "c"), logits, results.Decoding(labels=read.labels))
    assert top.results[0].class_id == "part 7"

    registry = Registry(5)
    bad = {
        "unknown fields means": "means: [0, 0, 0]",
        "mean must be 3 numbers": "mean: [0, 0]",
        "std must be finite numbers > 0": "std: [1, 0, 1]",
        "mean must be finite numbers": "mean: [.nan, 0, 0]",
        "3 labels for a model of 1000 classes": "labels: [a, b, c]",
        "labels must be a list of class names, got 5": "labels: 5",
        "missing.txt cannot be read": "labels_file: missing.txt",
        "not both": "labels: [a]\nlabels_file: parts.txt",
        "is not valid YAML: line 2, column 1: expected ',' or ']'": "mean: [0, 0\n",
        "label 1 is 2, not a name (quote it)": "labels: [a, 2]",
        "label 0 is False, not a name": "labels: [no]",
        "labels_file must be a file name, got None": "labels_file:",
        "labels_file ../parts.txt is not in the card's directory": "labels_file: ../parts.txt",
        "blank.txt line 2 is blank": "labels_file: blank.txt",
    }
    (tmp_path / "blank.txt").write_text("a\n\nb\n")
    (tmp_path.parent / "parts.txt").write_text("".join(f"part {i}\n" for i in range(1000)))
    for expected, text in bad.items():
        card.write_text(text)
        with pytest.raises(ModelCardError, match=re.escape(expected)):
            read_card(path, 1000)
        with pytest.raises(RequestError, match=re.escape(expected)):
            registry.register(_reg("parts", model=str(path)), [str(tmp_path)])
        assert registry.dnns == {}


def test_dnn_levels() -> None:
    from rankmap_ros.ros.manager_node import dnn_status
    from rankmap_ros.ros.supervisor import Chain

    def status(
        measured: float,
        min_rate: float = 0.0,
        p: float = 0.5,
        period: float = 0.0,
        miss: float = 0.0,
        arriving: float = 100.0,  # images/s reaching the DNN: by default more than it answers
        retry_at: float | None = None,  # a stopped chain waiting out its restart backoff
    ) -> tuple[int, str]:
        d = SimpleNamespace(
            name="x", model="m", priority=0.5, stages=[], measured_rate=measured, predicted_rate=1.0,
            min_rate=min_rate, potential_throughput=p, period=period, deadline=period,
            deadline_miss_rate=miss if period else math.nan,
        )  # fmt: skip
        chain = SimpleNamespace(
            restarts=0, started=0.0, ready=lambda: True, config=SimpleNamespace(input_topic="/camera/image_raw"),
            rate=lambda now: measured, input_rate=lambda now: arriving,
            stopped=retry_at is not None, retry_at=retry_at or 0.0,
        )  # fmt: skip
        chain.keeps_up = lambda now: Chain.keeps_up(chain, now)  # type: ignore[arg-type]
        found = dnn_status(d, chain, 100.0, 0.1, 5.0)  # type: ignore[arg-type]
        return level_value(found.level), found.message

    def level(*args: float, **kwargs: float) -> int:
        return status(*args, **kwargs)[0]

    assert level(10.0) == 0
    assert status(10.0, retry_at=104.2) == (2, "keeps failing: restarting in 4 s")
    assert level(10.0, min_rate=20.0) == 1
    assert level(0.0) == 2
    assert level(10.0, p=0.05) == 2
    assert level(10.0, period=0.1, miss=0.01) == 0
    assert level(10.0, period=0.1, miss=0.02) == 1  # a real-time DNN missing over 1% of deadlines
    assert level(10.0, period=0.1, miss=math.nan) == 0  # not measured yet
    # a DNN answering every image of a slow sensor is not starved, whatever its P
    assert status(9.5, p=0.05, arriving=10.0) == (0, "9.50 inferences/s, keeping up with its input")
    assert status(9.5, min_rate=20.0, arriving=10.0) == (1, "input arrives at 10.00/s, below the minimum rate 20/s")
    d = SimpleNamespace(
        name="x", model="m", priority=0.5, stages=[], measured_rate=math.nan, predicted_rate=1.0, min_rate=0.0,
        potential_throughput=math.nan, period=0.0, deadline=0.0, deadline_miss_rate=math.nan,
    )  # fmt: skip
    shown = dict(dnn_status(d, None, 0.0, 0.1, 5.0, None, -0.3127).values)  # type: ignore[arg-type]
    assert shown["model_error"] == "-0.313"  # the planner's model 31% optimistic on this mapping
    assert "model_error" not in dict(dnn_status(d, None, 0.0, 0.1, 5.0).values)  # type: ignore[arg-type]
    assert status(0.0, arriving=0.0) == (2, "no input: nothing on /camera/image_raw for 3 s")
    assert level(10.0, period=0.1, miss=0.02, arriving=10.0) == 1  # keeping up, yet late


def _launch_calls(path: Path) -> tuple[set[str], set[str], set[str]]:
    """Executables, declared arguments and LaunchConfiguration names used in a launch file."""
    tree = ast.parse(path.read_text())
    executables, declared, used = set(), set(), set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = getattr(node.func, "id", getattr(node.func, "attr", ""))
        first = node.args[0].value if node.args and isinstance(node.args[0], ast.Constant) else None
        if name == "DeclareLaunchArgument":
            declared.add(first)
        if name == "LaunchConfiguration":
            used.add(first)
        for kw in node.keywords:
            if name == "Node" and kw.arg == "executable":
                executables.add(kw.value.value)  # type: ignore[attr-defined]
    return executables, declared, used


class _Action:
    """Stands for a launch / launch_ros class: keeps what it was built with."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        self.args, self.kwargs = args, kwargs


class _LaunchConfiguration(_Action):
    used: ClassVar[set[str]] = set()

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.used.add(name)

    def perform(self, context: SimpleNamespace) -> str:
        return context.launch_configurations[self.args[0]]


def _run_launch_file(path: Path, given: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> SimpleNamespace:
    """Runs a launch file against stand-ins for ROS 2's launch (none can be installed here).

    Declared arguments take `given` or their default, and every OpaqueFunction is performed, as
    `ros2 launch` does; the result holds the declared names, the LaunchConfiguration names used
    and the Node actions with their keyword arguments.
    """
    fake = {
        "launch": ["LaunchContext", "LaunchDescription"],
        "launch.actions": ["DeclareLaunchArgument", "IncludeLaunchDescription", "OpaqueFunction"],
        "launch.launch_description_sources": ["PythonLaunchDescriptionSource"],
        "launch.substitutions": ["PathJoinSubstitution"],
        "launch_ros.actions": ["Node"],
        "launch_ros.parameter_descriptions": ["ParameterValue"],
        "launch_ros.substitutions": ["FindPackageShare"],
    }
    for module, names in fake.items():
        classes = {name: type(name, (_Action,), {}) for name in names}
        monkeypatch.setitem(sys.modules, module, SimpleNamespace(**classes))
    sys.modules["launch.substitutions"].LaunchConfiguration = _LaunchConfiguration  # type: ignore[attr-defined]
    _LaunchConfiguration.used = set()
    actions = list(runpy.run_path(str(path))["generate_launch_description"]().args[0])
    declared = {
        a.args[0]: a.kwargs.get("default_value", "") for a in actions if type(a).__name__ == "DeclareLaunchArgument"
    }
    context = SimpleNamespace(launch_configurations={**declared, **given})
    for action in [a for a in actions if type(a).__name__ == "OpaqueFunction"]:
        actions += action.kwargs["function"](context)
    nodes = {a.kwargs["executable"]: a.kwargs for a in actions if type(a).__name__ == "Node"}
    return SimpleNamespace(declared=set(declared), used=set(_LaunchConfiguration.used), nodes=nodes)


@pytest.mark.parametrize("name", ["rankmap.launch.py", "demo.launch.py"])
def test_launch_arguments_reach_parameters_typed(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # launch_ros reads a bare LaunchConfiguration as YAML: `camera_rate:=30` became an int, and the
    # camera, whose `rate` is a double, exited with a parameter type error
    launched = _run_launch_file(ROOT / "launch" / name, {}, monkeypatch)
    assert launched.used <= launched.declared, launched.used - launched.declared
    assert launched.nodes
    for kwargs in launched.nodes.values():
        for table in kwargs.get("parameters", []):
            for value in table.values() if isinstance(table, dict) else ():
                assert type(value).__name__ != "_LaunchConfiguration", (name, kwargs["executable"])


def test_manager_launch_arguments_override_only_when_given(monkeypatch: pytest.MonkeyPatch) -> None:
    path = ROOT / "launch" / "rankmap.launch.py"
    manager = _run_launch_file(path, {}, monkeypatch).nodes["rankmap_manager"]
    assert len(manager["parameters"]) == 1  # the parameters file alone: its platform, dnns_file, ... hold
    assert manager["respawn"] is False
    respawning = _run_launch_file(path, {"respawn": "True", "respawn_delay": "5"}, monkeypatch).nodes
    assert respawning["rankmap_manager"]["respawn"] is True and respawning["rankmap_manager"]["respawn_delay"] == 5.0
    for bad in ({"respawn": "yes please"}, {"respawn_delay": "soon"}):
        with pytest.raises(ValueError, match="respawn"):
            _run_launch_file(path, bad, monkeypatch)
    with pytest.raises(ValueError, match="use_sim_time must be true or false"):
        _run_launch_file(path, {"use_sim_time": "sim"}, monkeypatch)
    simulated = _run_launch_file(path, {"use_sim_time": "True"}, monkeypatch).nodes["rankmap_manager"]
    assert simulated["parameters"][1] == {"use_sim_time": True}
    given = {"dnns_file": "/robot/dnns.yaml", "host_split": "0:1", "platform": ""}
    manager = _run_launch_file(path, given, monkeypatch).nodes["rankmap_manager"]
    params_file, overrides = manager["parameters"]
    assert params_file.args == ("params_file",)  # the file first, so the arguments win
    assert set(overrides) == {"dnns_file", "host_split"}
    assert overrides["host_split"].args == ("0:1",) and overrides["host_split"].kwargs == {"value_type": str}
    from rankmap_ros.ros.manager_node import PARAMETERS

    assert {"platform", "host_split", "dnns_file", "measurements_file"} <= {p[0] for p in PARAMETERS}
    names = {"platform", "host_split", "dnns_file", "measurements_file"}
    assert names <= _run_launch_file(path, {}, monkeypatch).declared
    demo = _run_launch_file(ROOT / "launch" / "demo.launch.py", {}, monkeypatch)
    assert names <= demo.declared and names <= demo.used  # declared and passed on to the included manager
    for node in demo.nodes.values():  # left alone unless given: an enclosing launch's SetParameter holds
        assert not [table for table in node["parameters"] if "use_sim_time" in table]
    simulated = _run_launch_file(ROOT / "launch" / "demo.launch.py", {"use_sim_time": "true"}, monkeypatch)
    for node in simulated.nodes.values():  # a simulation's /clock reaches the camera and perception node too
        assert {"use_sim_time": True} in node["parameters"], node["executable"]


def test_launch_files_reference_what_exists() -> None:
    scripts = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"])
    cmake = (ROOT / "CMakeLists.txt").read_text()
    for path in (ROOT / "launch").glob("*.launch.py"):
        executables, declared, used = _launch_calls(path)
        assert used <= declared, (path.name, used - declared)
        for exe in executables:
            assert exe in scripts and f"scripts/{exe}" in cmake and (ROOT / "scripts" / exe).is_file(), exe
    assert {"params_file", "namespace"} <= _launch_calls(ROOT / "launch" / "rankmap.launch.py")[1]
    demo = (ROOT / "launch" / "demo.launch.py").read_text()
    assert "rankmap.launch.py" in demo and re.search(r'"config", "rankmap.yaml"', demo)
    try:  # ROS 2's launch (our launch/ folder is importable as a namespace package `launch` too)
        from launch.launch_description_sources import get_launch_description_from_python_launch_file
    except ImportError:
        return

    for path in (ROOT / "launch").glob("*.launch.py"):
        get_launch_description_from_python_launch_file(str(path))


def test_manager_config_declares_only_known_parameters() -> None:
    import yaml

    from rankmap_ros.ros.manager_node import PARAMETERS

    data = yaml.safe_load((ROOT / "config" / "rankmap.yaml").read_text())
    params = data["/**/rankmap_manager"]["ros__parameters"]
    flat = {
        f"{k}.{k2}" if isinstance(v, dict) else k
        for k, v in params.items()
        for k2 in (v if isinstance(v, dict) else [None])
    }
    assert flat == {name for name, *_ in PARAMETERS}
    agg = yaml.safe_load((ROOT / "config" / "diagnostics_aggregator.yaml").read_text())
    assert {"dnns", "stages", "components"} <= set(agg["analyzers"]["ros__parameters"])


def test_statuses_land_in_one_aggregator_group_each_and_name_a_namespaced_manager() -> None:
    """diagnostic_aggregator's GenericAnalyzer matches `contains` on the published names: every
    status of the manager, in the root namespace or in a robot's, goes to exactly one group; DNNs
    and stages that go away are dropped, not left STALE (which turns the groups above ERROR)."""
    import yaml

    from rankmap_ros.ros.diagnostics import Status, Updater, format_value

    analyzers = yaml.safe_load((ROOT / "config" / "diagnostics_aggregator.yaml").read_text())["analyzers"]
    groups = {k: v for k, v in analyzers["ros__parameters"].items() if isinstance(v, dict)}
    assert all(groups[g]["discard_stale"] and groups[g]["num_items"] == 0 for g in ("dnns", "stages"))
    assert "discard_stale" not in groups["manager"]  # a dead manager must go STALE, not vanish
    published = []
    for namespace in ("/", "/robot1"):
        node = SimpleNamespace(
            get_name=lambda: "rankmap_manager", get_namespace=lambda namespace=namespace: namespace,
            get_fully_qualified_name=lambda namespace=namespace: f"{namespace}/rankmap_manager",
            create_publisher=lambda *_a: None, create_timer=lambda *_a, **_k: None,
        )  # fmt: skip
        updater = Updater(node, "host/board", list)
        for name in ("manager", "dnn cam0", "stage cam0[0:12]@gpu", "component big"):
            published.append(updater._message(Status(name)).name)
    assert published[5] == "/robot1/rankmap_manager: dnn cam0"  # not the root manager's name
    for name in published:
        matched = [g for g, a in groups.items() if any(text in name for text in a["contains"])]
        assert len(matched) == 1, (name, matched)
    assert [format_value(v) for v in (0.0004, 12.3456, 12345.6, math.nan, 3)] == ["0.0004", "12.35", "12346", "-", "3"]


def test_manager_plans_with_the_shipped_estimator_where_one_fits() -> None:
    from dataclasses import replace

    from rankmap_ros.core.platform import load_platform
    from rankmap_ros.core.throughput import SimulatorModel
    from rankmap_ros.ros import planning

    opi = load_platform("orange_pi_5")
    assert planning.throughput_model(opi, "").name.startswith("estimator")
    # a recalibrated orange_pi_5 no longer fits the shipped checkpoint: plan with its simulator
    recalibrated = replace(opi, components=(replace(opi.components[0], kernel_overhead_us=1.0), *opi.components[1:]))
    assert isinstance(planning.throughput_model(recalibrated, ""), SimulatorModel)
    with pytest.raises(ValueError, match="recalibrated"):  # a checkpoint the user names must fit
        from rankmap_ros.core.estimator import shipped_path

        planning.throughput_model(recalibrated, str(shipped_path("orange_pi_5")))


def test_executors_get_the_plans_thread_split_of_their_cluster() -> None:
    platform = load_platform("orange_pi_5")  # four-core big and little clusters
    base = dict(dnn="det", model="squeezenet_v2", weights=None, priority=1.0, input_topic="/in", output_topic="/out")
    base |= dict(output_kind="classification", namespace="/")

    def threads(config: ChainConfig, component: str) -> int:
        _, argv = executor_command(config, platform, (0, 18, component), 0, True, {})
        return int(next(a for a in argv if a.startswith("threads:=")).split(":=")[1])

    split = ChainConfig(**base, threads=(("big", 2), ("gpu", 1)))
    assert threads(split, "big") == 2
    assert threads(split, "little") == 4  # not in the plan's split: the whole cluster
    assert threads(ChainConfig(**base), "big") == 4


def test_ros_realtime_bench_scores_misses_from_the_images_stamps() -> None:
    from rankmap_ros.ros.bench_realtime import _score

    ms = 1_000_000
    frames = [i * 100 * ms for i in range(10)]  # images at 0, 100, ..., 900 ms
    rt = [(0, 30 * ms), (100 * ms, 180 * ms), (300 * ms, 320 * ms), (900 * ms, 920 * ms)]  # 80 ms: late
    be = [(0, t * ms) for t in (50, 400, 1500)]  # the last one after the 1 s window
    stages = {"stage be[0:4]@cpu": {"preempted": "2", "frames": "4"}, "stage rt[0:4]@cpu": {"preempted": "9"}}
    got = _score(frames, {"rt": rt, "be": be}, 0, 800 * ms, 0.05, 1.0, stages)
    # images 0..700 ms count (8); on time: 0 and 300 ms; 100 ms was late, 900 ms is outside
    assert got["images"] == 8 and got["rt_on_time"] == 2 and got["rt_miss_rate"] == 0.75
    assert got["rt_latency_p50_ms"] == 30.0
    assert got["be_rate"] == 2.0 and got["be_preempted_share"] == 0.5


def test_a_failed_hosted_stage_is_a_failure_of_its_chain() -> None:
    # In a container a stage that raises fails alone: its process lives on, so the manager must
    # see the FAILED row (with the error) to restart the chain, or the DNN would go silent.
    import time

    from rankmap_ros.ros.supervisor import Chain, ChainConfig, StageProcess, check_chain
    from rankmap_ros.runtime.board import Board, StageState

    class Alive:
        pid = 4242

        def poll(self) -> None:
            return None

    board = Board.create(1)
    try:
        config = ChainConfig("det", "squeezenet_v2", None, 1.0, "/in", "/out", "classification", "")
        key = (0, 18, "cpu")
        now = time.monotonic()
        stage = StageProcess(0, key, "rankmap_det_s0", Alive(), now)  # type: ignore[arg-type]
        chain = Chain(config, (key,), board, [], None, [stage], now)
        board.set_state(0, StageState.READY)
        assert check_chain(chain, now, 5.0, 60.0) is None
        board.set_state(0, StageState.FAILED, "RuntimeError: unit exploded")
        failure = check_chain(chain, now + 0.25, 5.0, 60.0)
        assert failure is not None and failure.pid == 4242 and failure.component == "cpu"
        assert failure.reason == "RuntimeError: unit exploded"
        from rankmap_ros.ros.diagnostics import ERROR
        from rankmap_ros.ros.manager_node import stage_statuses

        chain.channels.append(SimpleNamespace(written=3, depth=0, dropped=0))  # type: ignore[arg-type]
        (status,) = stage_statuses(chain)  # in rqt: an error, not a warning like a stage starting
        assert status.level == ERROR and status.message == "failed"
    finally:
        board.detach()
        board.unlink()


def test_a_dnn_keeping_up_with_a_slow_sensor_is_neither_re_planned_for_nor_corrected_down(tmp_path: Path) -> None:
    # a 10 Hz camera caps a DNN at 10/s: that says nothing about how fast its mapping is
    from rankmap_ros.core.correction import Observations
    from rankmap_ros.core.mapping import DnnMapping, Mapping
    from rankmap_ros.ros.manager_node import Manager, PlanInForce, stages_of
    from rankmap_ros.ros.supervisor import Chain

    mapping = Mapping((DnnMapping("cam", "m", ("gpu", "gpu", "big")), DnnMapping("busy", "n", ("big", "little"))))

    def chain(name: str, answered: float, arriving: float) -> SimpleNamespace:
        c = SimpleNamespace(
            rate=lambda now: answered,
            input_rate=lambda now: arriving,
            stages=stages_of(mapping, name),
            config=SimpleNamespace(dnn=name),
            started=0.0,
            full_window=lambda now: True,
        )
        c.keeps_up = lambda now: Chain.keeps_up(c, now)  # type: ignore[arg-type]
        return c

    replans: list[str] = []
    logged: list[str] = []
    manager = SimpleNamespace(
        v={"starvation_grace": 5.0},
        chains={"cam": chain("cam", 9.8, 10.0), "busy": chain("busy", 5.0, 30.0)},
        registry=SimpleNamespace(dnns={"cam": SimpleNamespace(min_rate=20.0), "busy": SimpleNamespace(min_rate=0.0)}),
        below_since={},
        last_starvation_plan=-1e9,
        plan=PlanInForce(mapping, {"cam": 50.0, "busy": 12.0}, {}, "rankmap", 0.1, {"cam": 50.0, "busy": 12.0}, "sim"),
        measured=Observations(("gpu", "big", "little")),
        measurements_file=str(tmp_path / "measured.json"),
        platform=load_platform("orange_pi_5"),
        _replan=replans.append,
        get_logger=lambda: SimpleNamespace(info=logged.append, error=logged.append),
    )
    manager._note_measured = lambda now, again=False: Manager._note_measured(manager, now, again)  # type: ignore[arg-type]
    manager._save_measured = lambda: Manager._save_measured(manager)  # type: ignore[arg-type]
    for now in (100.0, 106.0):
        Manager._check_rates(manager, now)  # type: ignore[arg-type]
    assert replans == [] and len(manager.measured) == 0
    manager.registry.dnns["busy"].min_rate = 10.0  # this one is short of compute: re-plan, corrected
    for now in (110.0, 116.0):
        Manager._check_rates(manager, now)  # type: ignore[arg-type]
    assert len(replans) == 1 and "busy measured 5.00/s below its minimum 10/s" in replans[0]
    # cam keeps up: its 9.8 < 50 is no shortfall, only busy's 5 of 12 is noted
    assert [obs.errors for obs in manager.measured.items] == [{"busy": pytest.approx(math.log(5.0 / 12.0))}]
    assert logged == ["measured against the model: busy -58%"]
    assert manager.plan.errors == {"busy": pytest.approx(5.0 / 12.0 - 1)}  # shown in its diagnostics
    Manager._note_measured(manager, 120.0)  # type: ignore[arg-type]
    assert len(manager.measured) == 1  # once per mapping, unless a starvation asks again
    manager.plan = dataclasses.replace(manager.plan, applied=200.0, measured=False)  # a new mapping
    Manager._note_measured(manager, 205.0)  # type: ignore[arg-type]
    assert len(manager.measured) == 1  # a window of a chain it kept would straddle the change
    Manager._note_measured(manager, 202.0, again=True)  # type: ignore[arg-type]
    assert len(manager.measured) == 1  # a starvation waits for one whole window of the new mapping
    manager.chains["busy"].started = 203.0  # restarted: the others ran with less contention meanwhile
    Manager._note_measured(manager, 208.0)  # type: ignore[arg-type]
    assert len(manager.measured) == 1
    waiting = manager.chains.pop("busy")  # waiting out a restart backoff: the mapping is not running whole
    Manager._note_measured(manager, 300.0)  # type: ignore[arg-type]
    manager.chains["busy"] = SimpleNamespace(**{**vars(waiting), "stages": ((0, 2, "big"),)})  # another plan's
    Manager._note_measured(manager, 300.0)  # type: ignore[arg-type]
    assert len(manager.measured) == 1
    manager.chains["busy"] = waiting
    manager.chains["cam"] = chain("cam", 60.0, 61.0)  # keeps up with a faster sensor, above its prediction
    Manager._note_measured(manager, 300.0)  # type: ignore[arg-type]
    assert len(manager.measured) == 2 and manager.measured.items[-1].base == "sim"
    # the model is off by at least 60 / 50 for cam: noted as that (a lower bound)
    assert manager.measured.items[-1].errors == pytest.approx({"busy": math.log(5 / 12), "cam": math.log(60 / 50)})
    # kept for the next start of the manager, on this platform only
    from rankmap_ros.ros.planning import load_measurements

    again, problem = load_measurements(manager.measurements_file, manager.platform)
    assert problem is None and again.items == manager.measured.items
    kept = (tmp_path / "measured.json").read_text()
    # recalibrated since: moved aside for a look, and the manager measures afresh
    _, problem = load_measurements(manager.measurements_file, load_platform("orange_pi_5").without({"little"}))
    assert problem is not None and "another platform description" in problem and "moved to" in problem
    assert not (tmp_path / "measured.json").exists() and (tmp_path / "measured.json.unusable").read_text() == kept
    (tmp_path / "measured.json").write_text(kept[: len(kept) // 2])  # cut short by a power loss
    fresh, problem = load_measurements(manager.measurements_file, manager.platform)
    assert len(fresh) == 0 and problem is not None and "measured.json.unusable" in problem
    manager.measured.forget("busy")
    Manager._save_measured(manager)  # type: ignore[arg-type]
    assert load_measurements(manager.measurements_file, manager.platform)[0].items == manager.measured.items
    manager.measurements_file = str(tmp_path / "measured.json" / "under-a-file.json")  # cannot be written
    Manager._save_measured(manager)  # type: ignore[arg-type]
    assert manager.measurements_file == ""  # reported, kept in memory only; the manager goes on


def test_a_sensor_slower_than_its_dnns_mapping_is_planned_with() -> None:
    from rankmap_ros.core.workload import DnnSpec, Workload
    from rankmap_ros.ros.manager_node import Manager
    from rankmap_ros.ros.planning import with_input_rates
    from rankmap_ros.ros.supervisor import Chain

    arriving = {"cam": 10.0, "fast": 100.0}
    replans: list[str] = []
    measured = {
        n: SimpleNamespace(input_rate=lambda now, n=n: arriving[n], full_window=lambda now: True) for n in arriving
    }
    measured["timed"] = SimpleNamespace(input_rate=lambda now: 5.0, full_window=lambda now: True)
    measured["restarted"] = SimpleNamespace(
        input_rate=lambda now: 1.0, full_window=lambda now: False, measuring=lambda now: False
    )
    manager = SimpleNamespace(
        v={"plan_with_input_rates": True},
        chains=measured,
        registry=SimpleNamespace(dnns={n: SimpleNamespace(period=0.1 if n == "timed" else 0.0) for n in measured}),
        plan=SimpleNamespace(predicted={"cam": 50.0, "fast": 20.0, "timed": 50.0, "restarted": 50.0}),
        input_rates={},
        last_input_plan=-1e9,
        input_wait_since=None,
        _replan=replans.append,
    )
    Manager._check_input_rates(manager, 100.0)  # type: ignore[arg-type]
    assert manager.input_rates == {"cam": 10.0, "fast": 100.0} and len(replans) == 1
    assert "cam 10.0/s" in replans[0]
    arriving["cam"] = 30.0  # binding again, but within the cooldown of that re-plan
    Manager._check_input_rates(manager, 105.0)  # type: ignore[arg-type]
    assert manager.input_rates["cam"] == 10.0 and len(replans) == 1
    arriving["cam"] = 11.0  # within 25% of what was planned with: nothing new
    arriving["fast"] = 60.0  # moved, but still above what its mapping answers: noted, no re-plan
    Manager._check_input_rates(manager, 200.0)  # type: ignore[arg-type]
    assert manager.input_rates == {"cam": 10.0, "fast": 60.0} and len(replans) == 1

    # a DNN started with the others is measured a moment later: one re-plan for both, not two
    late = Chain(config=None, stages=(), board=None, channels=[], geometry=None, processes=[], started=299.0)  # type: ignore[arg-type]
    late.input_rate = lambda now: 8.0  # type: ignore[method-assign]
    late.full_window = lambda now: now >= 302.0  # type: ignore[method-assign]
    assert late.measuring(301.0) and not late.measuring(302.0)  # still loading its model counts too
    manager.chains, manager.input_rates, manager.last_input_plan = {**measured, "late": late}, {}, -1e9
    manager.registry.dnns["late"] = SimpleNamespace(period=0.0)
    manager.plan.predicted["late"] = 40.0
    for now in (300.0, 301.0):
        Manager._check_input_rates(manager, now)  # type: ignore[arg-type]
    assert len(replans) == 1 and manager.input_rates == {}
    Manager._check_input_rates(manager, 302.0)  # type: ignore[arg-type]
    assert len(replans) == 2 and manager.input_rates == {"cam": 11.0, "fast": 60.0, "late": 8.0}
    late.full_window = lambda now: False  # one that never gets there is waited for INPUT_WAIT_S at most
    manager.input_rates, manager.last_input_plan = {}, -1e9
    for now in (400.0, 409.9):
        Manager._check_input_rates(manager, now)  # type: ignore[arg-type]
    assert len(replans) == 2
    Manager._check_input_rates(manager, 410.0)  # type: ignore[arg-type]
    assert len(replans) == 3 and "late" not in manager.input_rates

    workload = Workload((DnnSpec("camera_fed", "squeezenet_v2"), DnnSpec("timed", "mobilenet_v2", period=0.1)))
    planned = with_input_rates(workload, {"camera_fed": 10.0, "timed": 10.0})
    assert planned.dnns[0].input_rate == 10.0 and planned.dnns[1].input_rate is None  # real-time: its period


def test_dnns_left_with_priority_zero_are_planned_with_equal_priorities() -> None:
    """Unregistering the only DNN with weight must not leave the manager unable to plan."""
    from rankmap_ros.ros import planning

    platform = load_platform("orange_pi_5")
    registry = Registry(max_dnns=3)
    for name, priority in [("a", 1.0), ("b", 0.0), ("c", 0.0)]:
        registry.register(_reg(name, priority=priority), [])
    registry.unregister("a")
    workload = registry.workload()
    assert registry.weights() == [0.0, 0.0]
    assert planning.priorities_in_force(workload, platform, "static", registry.weights()) == (0.5, 0.5)
    weights = planning.planning_weights(registry.weights())
    outcome = planning.make_plan(planning.SimulatorModel(platform), workload, planning.PlanSettings(), weights)
    assert set(outcome.predicted) == {"b", "c"} and all(rate > 0 for rate in outcome.predicted.values())
    assert planning.planning_weights([0.0, 2.0]) == [0.0, 2.0]


def test_a_parameters_file_that_is_not_text_is_named(tmp_path: Path) -> None:
    from rankmap_ros.ros.dds.args import RosArgumentError, params_file_values

    binary = tmp_path / "params.yaml"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\xff")
    with pytest.raises(RosArgumentError, match=re.escape(f"parameters file {binary} is not a text file")):
        params_file_values(binary, "/rankmap_manager")


def test_a_crash_loop_waits_longer_each_time_and_a_chain_that_ran_a_minute_starts_at_once() -> None:
    """The backoff doubles up to 60 s and does not fall back to instant restarts as failures age."""
    from rankmap_ros.ros.manager_node import FAILURE_WINDOW_S, Manager

    now = [0.0]

    def start_again(name: str, chain: SimpleNamespace) -> None:
        manager.chains[name] = SimpleNamespace(stages=chain.stages, started=now[0], stopped=True, retry_at=0.0)

    log = SimpleNamespace(error=lambda *_a, **_k: None)
    manager = SimpleNamespace(
        failures=[], v={"max_failures": 3}, excluded=set(), restart_times={}, backoff={}, waiting={}, chains={},
        containers=None, get_logger=lambda: log, _start_again=start_again,
        _platform_in_use=lambda: SimpleNamespace(components=["cpu"]),
    )  # fmt: skip
    failure = SimpleNamespace(reason="exit 1", dnn="d", stage=0, component="cpu", pid=0)
    start_again("d", SimpleNamespace(stages=((0, 18, "cpu"),)))

    def fail_after(seconds: float) -> float:
        """The running chain dies `seconds` after its start; the wait before its next start."""
        chain = manager.chains["d"]
        now[0] = chain.started + seconds
        failure.pid += 1
        Manager._restart(manager, "d", chain, failure, now[0])  # type: ignore[arg-type]
        if "d" not in manager.waiting:
            return 0.0
        waiting = manager.waiting.pop("d")
        wait = waiting.retry_at - now[0]
        now[0] = waiting.retry_at
        start_again("d", waiting)
        return wait

    assert [fail_after(1.0) for _ in range(10)] == [0, 0, 0, 2, 4, 8, 16, 32, 60, 60]
    assert fail_after(FAILURE_WINDOW_S + 1) == 0  # it served a minute: a new failure, not the loop


def test_priorities_in_force_are_those_the_planner_weighs() -> None:
    """A parked DNN is not planned: the others share the weight, as the planner shares it."""
    from rankmap_ros.ros.manager_node import Manager

    registry = Registry(max_dnns=3)
    for name, priority in [("a", 1.0), ("b", 0.0), ("c", 0.0)]:
        registry.register(_reg(name, priority=priority), [])
    manager = SimpleNamespace(registry=registry, parked={}, platform=load_platform("orange_pi_5"))
    manager._planned = lambda: Manager._planned(manager)  # type: ignore[arg-type]
    assert Manager._priorities_in_force(manager) == {"a": 1.0, "b": 0.0, "c": 0.0}  # type: ignore[arg-type]
    manager.parked["a"] = "ZooError: cannot read weights file"
    assert Manager._priorities_in_force(manager) == {"b": 0.5, "c": 0.5}  # type: ignore[arg-type]


def test_a_dnns_file_reads_as_requests_and_mistakes_are_named(tmp_path: Path) -> None:
    """A robot's start-up DNNs: the shipped example reads, plans offline, and each mistake is named."""
    from rankmap_ros.core.workload import Workload
    from rankmap_ros.ros.dnns_file import read_dnns_file

    example = ROOT / "config" / "dnns.yaml"
    regs = read_dnns_file(example)
    assert [(r.name, r.model, r.priority, r.min_rate) for r in regs] == [
        ("obstacles", "squeezenet_v2", 3.0, 5.0),
        ("terrain", "mobilenet_v2", 2.0, 0.0),
        ("people", "shufflenet", 1.0, 0.0),
    ]
    registry = Registry(max_dnns=5)
    for reg in regs:
        registry.register(reg, [])
    assert registry.dnns["people"].output_kind == "classification"
    import yaml

    assert Workload.from_dict(yaml.safe_load(example.read_text())).names == ("obstacles", "terrain", "people")

    entry = "{name: a, model: alexnet, input_topic: /cam"
    bad = {
        "does not exist": None,
        "is not valid YAML: line 1, column 8": "dnns: [",
        "non-empty 'dnns' list": "dnns: []",
        "entry 0: expected a mapping": "dnns: [alexnet]",
        "entry 1: unknown fields input_rate": f"dnns: [{entry}}}, {entry}, input_rate: 15}}]",
        "entry 0: missing input_topic": "dnns: [{name: a, model: alexnet}]",
        "entry 0: name must be text": "dnns: [{name: 3, model: alexnet, input_topic: /cam}]",
        "entry 0: priority must be a finite number, got nan": f"dnns: [{entry}, priority: .nan}}]",
        "entry 0: period must be a finite number, got True": f"dnns: [{entry}, period: true}}]",
        # PyYAML keeps the last of two keys: the first section's DNNs, or a name, would vanish
        "line 2, column 1: key 'dnns' is given twice": f"dnns: [{entry}}}]\ndnns: [{entry}}}]",
        "line 1, column 53: key 'name' is given twice": f"dnns: [{entry}, name: b}}]",
        "unknown top-level keys dnn_extra (known: dnns": f"dnns: [{entry}}}]\ndnn_extra: [{entry}}}]",
    }
    for expected, text in bad.items():
        path = tmp_path / "dnns.yaml"
        path.unlink(missing_ok=True)
        if text is not None:
            path.write_text(text)
        with pytest.raises(RequestError, match=re.escape(expected)):
            read_dnns_file(path)
    # shared settings in an `x-` key's anchor, merged into entries
    path.write_text(
        "x-camera: &camera {input_topic: /cam, priority: 2}\ndnns: [{name: a, model: alexnet, <<: *camera}]"
    )
    assert [(r.input_topic, r.priority) for r in read_dnns_file(path)] == [("/cam", 2.0)]
    # a model file named relative to the dnns_file is found beside it, wherever the manager runs
    path.write_text("dnns: [{name: a, model: models/alexnet-ft.pt, input_topic: /cam}]")
    assert read_dnns_file(path)[0].model == str(tmp_path / "models" / "alexnet-ft.pt")
    # registered as a whole: a first entry of priority 0 is not refused for lacking the others,
    # whatever the order; a name given twice is the file's mistake, not an earlier registration
    from rankmap_ros.ros.dnns_file import register_file

    a, b = f"{entry}, priority: 0}}", "{name: b, model: alexnet, input_topic: /cam, priority: 3}"
    for order in (f"[{a}, {b}]", f"[{b}, {a}]"):
        path.write_text(f"dnns: {order}")
        assert sorted(r.name for r in register_file(Registry(max_dnns=5), path, [])) == ["a", "b"]
    for text, expected in (
        (f"dnns: [{a}, {a}]", "entries 0 and 1 are both named 'a'"),
        (f"dnns: [{a}]", "priorities are all zero"),
    ):
        path.write_text(text)
        registry = Registry(max_dnns=5)
        with pytest.raises(RequestError, match=re.escape(expected)):
            register_file(registry, path, [])
        assert registry.dnns == {}


def test_a_plan_after_a_measured_shortfall_moves_the_dnn_and_keeps_the_model_s_own_prediction() -> None:
    """The manager plans with what ran: the rate a mapping measured, not the model's, decides the next one."""
    from rankmap_ros.core.correction import Observations
    from rankmap_ros.core.workload import Workload
    from rankmap_ros.ros import planning

    platform = load_platform("orange_pi_5")
    model = planning.SimulatorModel(platform)
    workload = Workload.from_models(["resnet50", "mobilenet_v2"], min_rates=[10.0, None])
    settings = planning.PlanSettings(simulations=600)
    observations = Observations(platform.component_names)
    assert planning.corrected(model, observations) is model  # nothing measured: the model as it is
    first = planning.make_plan(model, workload, settings, [0.5, 0.5])
    assert first.base_predicted == pytest.approx(first.predicted)
    name = workload.names[0]
    # ResNet-50 ran at half its prediction, below its minimum rate: its mapping cannot hold it
    measured = first.base_predicted[name] / 2
    assert measured < 10.0 < first.predicted[name]
    observations.record(first.base_model, first.mapping, first.base_predicted, {name: measured})
    second = planning.make_plan(planning.corrected(model, observations), workload, settings, [0.5, 0.5], first.mapping)
    assert second.mapping[name].assignment != first.mapping[name].assignment
    assert second.predicted[name] > measured  # moved where it is expected to do better than it did
    assert second.base_predicted == pytest.approx(
        dict(zip(workload.names, model.predict(workload, [second.mapping])[0], strict=True))
    )
    assert second.predicted[name] < second.base_predicted[name]  # still distrusted where nothing ran


def test_a_dnn_registered_again_while_its_old_executors_stop_starts_when_they_have_stopped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Unregister stops a chain outside the lock: a register of the same name meanwhile must not
    start a second chain on the same output topic beside the one still stopping."""
    import threading

    from rankmap_ros.core.correction import Observations
    from rankmap_ros.core.mapping import DnnMapping, Mapping
    from rankmap_ros.core.realtime import parse_policy
    from rankmap_ros.ros import manager_node
    from rankmap_ros.ros.manager_node import Manager, PlanInForce

    platform = load_platform("orange_pi_5")
    mapping = Mapping((DnnMapping("d", "squeezenet_v2", ("gpu",) * 18),))
    started: list[str] = []
    release, stopping = threading.Event(), threading.Event()

    def stop_chain(chain: object) -> None:
        stopping.set()
        assert release.wait(10.0)

    monkeypatch.setattr(manager_node, "stop_chain", stop_chain)
    monkeypatch.setattr(manager_node, "start_chain", lambda config, *_a, **_k: started.append(config) or config)
    log = SimpleNamespace(info=lambda *_a: None, warning=lambda *_a: None, error=lambda *_a: None)
    manager = Manager.__new__(Manager)
    registry = Registry(max_dnns=3, platform=platform)
    registry.register(_reg("d"), [])
    vars(manager).update(
        get_logger=lambda: log, lock=threading.RLock(), registry=registry, closing=False, generation=0,
        wake=threading.Event(), parked={}, input_rates={}, measured=Observations(platform.component_names),
        waiting={}, restart_times={}, backoff={}, chains={"d": "old chain"}, stopping=set(), below_since={},
        policy=parse_policy("time_sharing"), platform=platform, excluded=set(), arbiters=None, containers=None,
        plan=PlanInForce(mapping, {}, {}, "rankmap_d", 0.0, {}), _config=lambda reg, threads: reg.name,
        _order_jobs=lambda: None,
    )  # fmt: skip
    request = SimpleNamespace(name="d")
    unregister = threading.Thread(target=manager.on_unregister, args=(request, SimpleNamespace()))
    unregister.start()
    try:
        assert stopping.wait(10.0)
        assert manager.chains == {} and manager.stopping == {"d"}
        registry.register(_reg("d"), [])  # registered again; its plan comes while the old chain stops
        manager._start_missing(manager._planned(), mapping, platform)
        assert started == [] and "d" not in manager.chains
    finally:
        release.set()
        unregister.join(10.0)
    assert started == ["d"] and manager.chains == {"d": "d"} and manager.stopping == set()
    # registered again with another model: the plan in force cuts the old one, so the next plan starts it
    manager.chains.clear()
    registry.dnns["d"] = dataclasses.replace(registry.dnns["d"], model="alexnet")
    manager._start_missing(manager._planned(), mapping, platform)
    assert started == ["d"] and manager.chains == {}


def test_a_stage_whose_publish_fails_while_it_is_stopped_is_not_a_failure() -> None:
    """rclpy's SIGTERM handler shuts the context down, and a publish in flight raises: a stage the
    manager is stopping must not log an error and exit as failed on every re-plan."""
    from rankmap_ros.ros.executor_node import StageExecutor
    from rankmap_ros.runtime.board import Board, StageState

    errors: list[str] = []
    board = Board.create(1)
    try:

        def publish_fails() -> None:
            raise RuntimeError("publisher's context is invalid")

        node = SimpleNamespace(
            _serve=publish_fails, stop=SimpleNamespace(is_set=lambda: False), board=board, row=0, failed=False,
            spec=SimpleNamespace(label="d[0:18]@cpu"), get_logger=lambda: SimpleNamespace(error=errors.append),
        )  # fmt: skip
        board.set_state(0, StageState.READY)
        board.request_stop()
        StageExecutor._serve_reporting(node)  # type: ignore[arg-type]
        assert not node.failed and board.state(0) == StageState.READY and errors == []
        board.rows["state"][0] = int(StageState.READY)
        node.board = SimpleNamespace(stopping=False, set_state=board.set_state)  # a failure of its own
        StageExecutor._serve_reporting(node)  # type: ignore[arg-type]
        assert node.failed and board.state(0) == StageState.FAILED
        assert errors == ["d[0:18]@cpu failed: RuntimeError: publisher's context is invalid"]
    finally:
        board.detach()
        board.unlink()


def test_installed_files_are_found_under_a_colcon_prefix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Installed, config/ and msg/ are not beside the sources: colcon puts them under each prefix
    of AMENT_PREFIX_PATH (share/rankmap_ros), pip under sys.prefix."""
    from rankmap_ros.ros.share import find_share, share_dirs

    share = tmp_path / "install" / "rankmap_ros" / "share" / "rankmap_ros"
    (share / "config").mkdir(parents=True)
    (share / "config" / "robot_only.yaml").write_text("x: 1\n")
    monkeypatch.setenv("AMENT_PREFIX_PATH", f"/opt/ros/jazzy:{tmp_path / 'install' / 'rankmap_ros'}")
    assert share_dirs()[1:3] == [Path("/opt/ros/jazzy/share/rankmap_ros"), share]
    assert find_share("config/robot_only.yaml") == share / "config" / "robot_only.yaml"
    assert find_share("config/rankmap.yaml") == Path(__file__).resolve().parents[2] / "config" / "rankmap.yaml"
    assert find_share("config/nowhere.yaml") is None


def test_the_managers_log_level_reaches_its_executors_command_lines() -> None:
    """`ros2 launch ... log_level:=debug` sets the manager's level; its executors and containers
    are started by the manager, not by launch, so it must hand the level on."""
    from rankmap_ros.ros.dds.args import parse
    from rankmap_ros.ros.manager_node import Manager

    platform = load_platform("orange_pi_5")
    base = dict(dnn="det", model="squeezenet_v2", weights=None, priority=1.0, input_topic="/in", output_topic="/out")
    base |= dict(output_kind="classification", namespace="/")
    _, argv = executor_command(ChainConfig(**base, log_level="debug"), platform, (0, 18, "big"), 0, True, {})
    assert parse(argv[1:]).log_levels == {None: "debug"}
    _, argv = executor_command(ChainConfig(**base), platform, (0, 18, "big"), 0, True, {})
    assert "--log-level" not in argv
    for level, passed in (("DEBUG", "debug"), ("WARN", "warn"), ("INFO", "")):
        logger = SimpleNamespace(get_effective_level=lambda level=level: SimpleNamespace(name=level))
        manager = SimpleNamespace(get_logger=lambda logger=logger: logger)
        assert Manager._log_level(manager) == passed  # type: ignore[arg-type]
