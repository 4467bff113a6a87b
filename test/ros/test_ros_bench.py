"""`rankmap bench transport|ros-face|ros-realtime` over the DDS transport, on the tests' isolated domain."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from rankmap_ros.cli import main


def test_bench_transport_times_the_status_service_and_an_image_stream(capsys) -> None:
    assert main(["bench", "transport", "--calls", "20", "--duration", "1", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    service = result["status_service"]
    assert service["calls"] == 20 and 0 < service["round_trip_ms"]["median"] <= service["round_trip_ms"]["max"]
    streams = {s["qos"]: s for s in result["image_640x480_rgb8"]}
    assert set(streams) == {"sensor_data", "reliable"}
    for stream in streams.values():
        assert stream["frames_sent"] >= 20 and stream["frames_received"] > 0  # 30 Hz for 1 s
        assert stream["latency_ms"]["median"] > 0
        assert stream["frames_received"] <= stream["frames_sent"]  # no frame counted twice


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (("--calls", "0"), "argument --calls: must be at least 1, got 0"),
        (("--duration", "0"), "argument --duration: must be a finite number > 0 and <= 3.2e+07, got 0"),
        (("--rate", "nan"), "argument --rate: must be a finite number > 0, got nan"),
    ],
)
def test_bench_transport_refuses_what_it_cannot_measure(capsys, argv, expected) -> None:
    assert main(["bench", "transport", *argv]) == 2
    assert expected in capsys.readouterr().err


def _rankmap(*argv: str, timeout: float = 300.0) -> subprocess.CompletedProcess[str]:
    # its own process, as a user runs it: the bench starts a manager, a camera and a ROS node
    return subprocess.run(
        [sys.executable, "-m", "rankmap_ros", *argv], capture_output=True, text=True, timeout=timeout, check=False
    )


def test_bench_ros_face_registers_serves_recovers_and_leaves_nothing() -> None:
    done = _rankmap("bench", "ros-face", "--kills", "1", "--json")
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout)
    dnns = {"squeezenet_v2", "shufflenet", "mobilenet_v2"}
    assert set(result["register_answer_ms"]) == set(result["first_result_after_register_s"]) == dnns
    assert all(0 < ms < 5000 for ms in result["register_answer_ms"].values())
    assert len(result["kill_to_results_again_s"]) == 1, "results again after the executor was killed"
    assert result["memory"]["processes"] >= 4 and result["status_rtt_ms_median"] > 0
    assert result["leftover_processes"] == [] and result["leftover_shm"] == []


def test_bench_ros_realtime_measures_one_round_through_the_manager() -> None:
    done = _rankmap("bench", "ros-realtime", "--executor", "component", "--rounds", "1", "--window", "3", "--json")
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout)
    (run,) = result["runs"]["component"]
    assert run["images"] > 20 and run["rt_on_time"] > 0 and run["be_rate"] > 0  # 15 Hz for 3 s
    assert 0 <= run["rt_miss_rate"] <= 1 and result["setup"]["policy"] == "edf"


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (("ros-realtime", "--rounds", "0"), "argument --rounds: must be at least 1, got 0"),
        (("ros-realtime", "--window", "0"), "argument --window: must be a finite number > 0 and <= 3.2e+07, got 0"),
        (("ros-realtime", "--deadline", "nan"), "argument --deadline: must be a finite number > 0, got nan"),
        (("ros-realtime", "--rate", "500"), "argument --rate: must be a finite number >= 0.1 and <= 240, got 500"),
        (("ros-realtime", "--policy", "time_sharing"), "needs an arbitrated policy"),
        (("ros-face", "--kills", "-1"), "argument --kills: must be at least 0, got -1"),
        (("ros-face", "--policy", "nope"), "unknown scheduling policy 'nope'"),
        (("ros-face", "--split", "bogus"), "core split part 'bogus'"),
    ],
)
def test_the_ros_benches_refuse_bad_settings_before_starting_nodes(argv: tuple[str, ...], expected: str) -> None:
    done = _rankmap("bench", *argv, timeout=60.0)
    assert done.returncode == 2 and expected in done.stderr and "Traceback" not in done.stderr, done.stderr
