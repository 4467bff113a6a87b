"""`rankmap demo`, the main job: three DNNs served through the manager, and nothing left behind."""

from __future__ import annotations

import contextlib
import os
import uuid
from pathlib import Path

from rankmap_ros.ros.demo import DemoOptions, DemoReport, run_demo


def tagged(tag: str) -> list[int]:
    """Processes other than this one whose environment carries `tag` (so: started by the demo)."""
    found = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        with contextlib.suppress(OSError):
            if tag.encode() in environ.read_bytes() and int(environ.parent.name) != os.getpid():
                found.append(int(environ.parent.name))
    return found


def _cmdline(pid: int) -> str:
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")[:300]
    return "(gone)"


def test_the_demo_serves_every_dnn_replans_on_a_priority_change_and_leaves_nothing(monkeypatch, tmp_path):
    tag = f"rankmap-demo-test-{uuid.uuid4().hex}"
    monkeypatch.setenv("RANKMAP_TEST_TAG", tag)
    updates: list[DemoReport] = []
    with (tmp_path / "demo.log").open("w+") as log:
        report = run_demo(
            DemoOptions(duration_s=24.0, change_after_s=10.0, split="big:0,little:1"), updates.append, log
        )
    assert updates, "the manager never answered a status request"
    assert set(report.dnns) == {"squeezenet_v2", "mobilenet_v2", "shufflenet"}
    for name, row in report.dnns.items():
        assert row["measured_rate"] and row["measured_rate"] > 0, (name, row)
        assert row["status"] != "ERROR", (name, row)
        assert row["stages"], name
    # The perception node changes its priorities half-way: the manager plans again, and says so.
    assert report.mapping_changes and report.mapping_changes[0]["at_s"] < 10.0
    assert report.priority_mode and report.planner
    # the camera's rate was measured for every DNN, and the manager planned with it: the first
    # mapping gave at least one DNN more than the camera delivers
    assert all(row["input_rate"] and row["input_rate"] > 0 for row in report.dnns.values()), report.dnns
    assert "re-plan: input rates measured" in (tmp_path / "demo.log").read_text()
    left = {pid: _cmdline(pid) for pid in tagged(tag)}
    assert left == {}  # manager, camera, perception node and every executor are gone
