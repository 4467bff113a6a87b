"""`rankmap bench transport` over the DDS transport, on the tests' isolated domain."""

from __future__ import annotations

import json

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


@pytest.mark.parametrize("argv", [("--calls", "0"), ("--duration", "0"), ("--rate", "nan")])
def test_bench_transport_refuses_what_it_cannot_measure(capsys, argv) -> None:
    assert main(["bench", "transport", *argv]) == 2
    assert "--calls must be at least 1" in capsys.readouterr().err
