"""`rankmap register|priority|status|unregister` against a stand-in manager in another process."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import Peer

from rankmap_ros.cli import main


def rankmap(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_clients_talk_to_the_manager_services(peers: list[Peer], capsys: pytest.CaptureFixture[str]) -> None:
    peers.append(Peer("manager_stub"))
    assert peers[0].line()["ready"]
    command = [sys.executable, "-m", "rankmap_ros", "register", "cam_cls", "mobilenet_v2"]
    done = subprocess.run(
        [*command, "--input-topic", "/camera/image", "--priority", "2", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["output_topic"] == "/rankmap/cam_cls/classification"
    code, _, err = rankmap(capsys, "register", "cam_cls", "resnet50", "--input-topic", "/camera/image")
    assert code == 2 and "already registered" in err
    code, out, _ = rankmap(capsys, "priority", "cam_cls=0.5", "--json")
    assert code == 0 and json.loads(out)["priorities_in_force"] == [0.5]
    code, out, _ = rankmap(capsys, "status")
    assert code == 0 and "cam_cls" in out and "0-7:big" in out
    state = json.loads(rankmap(capsys, "status", "--json")[1])
    assert state["dnns"][0]["model"] == "mobilenet_v2" and state["planner"] == "stub"
    assert rankmap(capsys, "unregister", "cam_cls")[0] == 0
    assert json.loads(rankmap(capsys, "status", "--json")[1])["dnns"] == []
    assert peers[0].interrupt() == 0


def test_clients_fail_clearly_without_a_manager(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = rankmap(capsys, "status", "--timeout", "0.5")
    assert code == 2 and "no server answers on /rankmap/status" in err
    code, _, err = rankmap(capsys, "priority", "a=-1")
    assert code == 2 and "finite weight" in err


@pytest.mark.parametrize(
    ("node", "parameter", "expected"),
    [
        ("manager_node", "max_dnns:=9", "parameter 'max_dnns': 9 is outside [1, 5]"),
        (
            "manager_node",
            "qos.input_reliability:=Reliable",
            "parameter qos.input_reliability must be one of best_effort, reliable",
        ),
        ("camera_node", "step_padding:=-5", "parameter 'step_padding': -5 is outside [0, 4096]"),
        ("camera_node", "encoding:=yuv", "encoding must be one of rgb8, bgr8, mono8"),
        ("perception_demo_node", "priorities:=abc", "parameter 'priorities' is DOUBLE_ARRAY but was given"),
    ],
)
def test_a_node_given_a_bad_parameter_says_so_in_one_line(node: str, parameter: str, expected: str) -> None:
    # as `ros2 run rankmap_ros ... --ros-args -p ...` or a launch file would start it
    done = subprocess.run(
        [sys.executable, "-m", f"rankmap_ros.ros.{node}", "--ros-args", "-p", parameter],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert f"cannot start: {expected}" in done.stderr and "Traceback" not in done.stderr, done.stderr


def test_a_manager_whose_dnns_file_has_a_mistake_does_not_start(tmp_path) -> None:
    dnns = tmp_path / "dnns.yaml"
    front = "{name: front, model: squeezenet_v2, input_topic: /cam}"
    dnns.write_text(f"dnns:\n  - {front}\n  - {{name: rear, model: nonet, input_topic: /cam}}\n")
    done = subprocess.run(
        [sys.executable, "-m", "rankmap_ros.ros.manager_node", "--ros-args", "-p", f"dnns_file:={dnns}"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert f"cannot start: dnns_file {dnns}, entry 1 (rear): unknown model 'nonet'" in done.stderr
