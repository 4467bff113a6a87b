"""`rankmap register|priority|status|unregister` against a stand-in manager in another process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

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
    out = rankmap(capsys, "status", "--json")[1]
    state = json.loads(out)
    assert state["dnns"][0]["model"] == "mobilenet_v2" and state["planner"] == "stub"
    assert state["dnns"][0]["measured_rate"] is None and "NaN" not in out  # not measured yet: null, strict JSON
    assert rankmap(capsys, "unregister", "cam_cls")[0] == 0
    assert json.loads(rankmap(capsys, "status", "--json")[1])["dnns"] == []
    assert peers[0].interrupt() == 0


def test_clients_reach_a_manager_launched_in_a_namespace(peers: list[Peer], capsys: pytest.CaptureFixture[str]) -> None:
    """`ros2 launch rankmap_ros rankmap.launch.py namespace:=robot1` puts the services under /robot1."""
    peers.append(Peer("manager_stub", "--ros-args", "-r", "__ns:=/robot1"))
    assert peers[0].line()["ready"]
    code, out, _ = rankmap(capsys, "status", "--namespace", "robot1", "--json", "--timeout", "20")
    assert code == 0 and json.loads(out)["planner"] == "stub", out
    code, _, err = rankmap(capsys, "status", "--timeout", "0.5")  # the root namespace has no manager
    assert code == 2 and "no server answers on /rankmap/status" in err
    assert peers[0].interrupt() == 0


def test_clients_fail_clearly_without_a_manager(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = rankmap(capsys, "status", "--timeout", "0.5")
    assert code == 2 and "no server answers on /rankmap/status" in err
    code, _, err = rankmap(capsys, "status", "--namespace", "/robot2/", "--timeout", "0.5")
    assert code == 2 and "no server answers on /robot2/rankmap/status" in err
    code, _, err = rankmap(capsys, "status", "--namespace", "robot 1")
    assert code == 2 and "--namespace 'robot 1' is not a ROS namespace" in err
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


def test_check_dnns_runs_the_managers_start_up_checks_offline(capsys: pytest.CaptureFixture[str], tmp_path) -> None:
    """A robot's configuration checked before the robot starts: what the manager would refuse, and
    where the results of what it would start will be."""
    import torch

    from rankmap_ros.core import zoo

    models = tmp_path / "models"
    models.mkdir()
    torch.save(zoo.build("shufflenet").state_dict(), models / "shufflenet-bins.pt")
    (models / "shufflenet-bins.yaml").write_text(f"labels: {[f'bin {i}' for i in range(1000)]}\n")
    dnns = tmp_path / "dnns.yaml"
    entry = "{name: bins, model: models/shufflenet-bins.pt, input_topic: /cam/image_raw, period: 0.5}"
    dnns.write_text(f"dnns:\n  - {entry}\n")
    params = tmp_path / "my.yaml"
    body = f"platform: host\n    host_split: 'big:0,little:1'\n    dnns_file: {dnns}\n    allowed_model_dirs: []"
    params.write_text(f"/**/rankmap_manager:\n  ros__parameters:\n    {body}\n")
    code, _, err = rankmap(capsys, "check-dnns", "--params-file", str(params))
    assert code == 2 and f"dnns_file {dnns}, entry 0 (bins): model file" in err and "outside the allowed" in err
    params.write_text(params.read_text().replace("allowed_model_dirs: []", f"allowed_model_dirs: ['{models}']"))
    code, out, _ = rankmap(capsys, "check-dnns", "--params-file", str(params), "--json")
    (bins,) = json.loads(out)["dnns"]
    assert code == 0 and bins["weights"] == str(models / "shufflenet-bins.pt") and bins["labels"] == 1000
    assert bins["output_topic"] == "/rankmap/bins/classification" and bins["period"] == 0.5
    # a robot's file with a section for the manager in its namespace: what that manager would read
    params.write_text(params.read_text().replace("/**/rankmap_manager:", "/robot1/rankmap_manager:"))
    assert rankmap(capsys, "check-dnns", "--params-file", str(params))[0] == 2  # no dnns_file for /rankmap_manager
    code, out, _ = rankmap(capsys, "check-dnns", "--params-file", str(params), "--namespace", "robot1", "--json")
    assert code == 0 and json.loads(out)["dnns"][0]["output_topic"] == "/robot1/rankmap/bins/classification"
    example = Path(__file__).resolve().parents[2] / "config" / "dnns.yaml"
    code, out, _ = rankmap(capsys, "check-dnns", str(example))
    assert code == 0 and "3 DNN(s) would start" in out
    assert rankmap(capsys, "check-dnns")[0] == 2
    # the parameters the manager would refuse (or rclpy drop: a misspelt name keeps the default)
    shipped = Path(__file__).resolve().parents[2] / "config" / "rankmap.yaml"
    kept = f"    dnns_file: {example}\n"
    for line, says in (
        ("max_dnn: 3", "max_dnn: not a parameter of the manager (misspelt?)"),
        ("max_dnns: 0", "parameter max_dnns must be from 1 to 5, got 0"),
        ("max_dnns: five", "parameter max_dnns must be an integer, got 'five'"),
        ("search_time_limit: 2", "must be a floating-point number (write 2.0, not 2)"),
        ("search_time_limit: .nan", "parameter search_time_limit must be from 0.01 to 600.0, got nan"),
        ("priority_mode: weird", "parameter priority_mode must be one of static, dynamic"),
        ("executor: component", "component needs an arbitrated scheduling_policy"),
    ):
        params.write_text(f"/**/rankmap_manager:\n  ros__parameters:\n{kept}    {line}\n")
        code, out, err = rankmap(capsys, "check-dnns", "--params-file", str(params))
        assert code == 2 and says in err and out == "", (line, err)
    assert "cannot be read: No such file" in rankmap(capsys, "check-dnns", "--params-file", str(tmp_path / "no"))[2]
    # a fleet file's settings for every node (the camera's rate) are not the manager's mistakes
    fleet = f"/**:\n  ros__parameters:\n    rate: 30.0\n/**/rankmap_manager:\n  ros__parameters:\n{kept}"
    params.write_text(fleet)
    assert rankmap(capsys, "check-dnns", "--params-file", str(params))[0] == 0
    params.write_text(shipped.read_text().replace('dnns_file: ""', f"dnns_file: {example}"))
    assert rankmap(capsys, "check-dnns", "--params-file", str(params))[0] == 0  # the shipped file, as it is


def test_logs_shows_rosout_lines_filtered_by_level_and_logger(peers: list[Peer]) -> None:
    from rankmap_ros.ros.log_watch import LogLine, wanted

    peers.append(Peer("chatty"))
    assert peers[0].line()["ready"]
    command = [sys.executable, "-m", "rankmap_ros", "logs", "--seconds", "2.5"]
    # started after the node logged: its lines come from /rosout's 10 s history

    def run(*extra: str) -> str:
        return subprocess.run([*command, *extra], capture_output=True, text=True, timeout=60, check=True).stdout

    warnings = run("--level", "warn")
    assert "[WARN]" in warnings and "[robot.chatty.planner]: terrain starved" in warnings
    assert "planning with 3 DNNs" not in warnings
    named = run("--name", "robot.chatty", "--json")
    lines = [json.loads(text) for text in named.splitlines()]
    assert {(x["name"], x["level"], x["text"]) for x in lines} == {
        ("robot.chatty", 20, "planning with 3 DNNs"),
        ("robot.chatty.planner", 30, "terrain starved"),
    }
    assert all(x["function"] == "chatty" and x["file"].endswith("ros_peers.py") for x in lines)
    assert peers[0].interrupt() == 0
    line = LogLine(0, 30, "rankmap_manager.planner", "", "", "", 0)
    assert wanted(line, 30, ("rankmap_manager",)) and wanted(line, 20, ())
    assert not wanted(line, 40, ()) and not wanted(line, 10, ("rankmap_manager_2", "camera"))


def test_the_command_line_helpers_import_on_a_ros_machine_without_cyclonedds_or_rosbags() -> None:
    """On a colcon install rclpy is there but Cyclone DDS's Python binding and rosbags are not
    (package.xml does not ask for them): `rankmap status`, `register`, `logs`, `check-dnns`
    import these beside real rclpy."""
    blocked = "import sys; sys.modules.update(dict.fromkeys(('cyclonedds', 'rosbags'), None)); "
    probe = (
        "from rankmap_ros.ros.dds.names import normalize_namespace; "
        "from rankmap_ros.ros.dds.args import params_file_values; "
        "from rankmap_ros.ros.dds.logging import console_line, parse_severity; "
        "print(normalize_namespace('robot1'))"
    )
    done = subprocess.run(
        [sys.executable, "-c", blocked + probe], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0 and done.stdout.strip() == "/robot1", done.stderr[-2000:]
