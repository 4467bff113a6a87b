"""`rankmap demo`, the main job: three DNNs served through the manager, and nothing left behind."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
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


def test_the_demos_nodes_end_with_it_even_when_it_is_killed(tmp_path):
    """SIGKILL runs no clean-up in the demo: the kernel tells each node it started, which then shuts
    down as on `kill` (the manager stops its executors and removes its shared memory)."""
    tag = f"rankmap-demo-test-{uuid.uuid4().hex}"
    command = [sys.executable, "-m", "rankmap_ros", "demo", "--duration", "120", "--split", "big:0,little:1"]
    with (tmp_path / "demo.log").open("w") as log:
        demo = subprocess.Popen(command, env={**os.environ, "RANKMAP_TEST_TAG": tag}, stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 60
        while not any("forkserver" in _cmdline(p) for p in tagged(tag)) and time.monotonic() < deadline:
            assert demo.poll() is None, (tmp_path / "demo.log").read_text()
            time.sleep(0.5)
        nodes = [p for p in tagged(tag) if p != demo.pid]
        manager = next(p for p in nodes if "manager_node" in _cmdline(p))
        assert any("forkserver" in _cmdline(p) for p in nodes), "the manager never started its executors"
        demo.kill()
        demo.wait()
        deadline = time.monotonic() + 20
        while tagged(tag) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert {pid: _cmdline(pid) for pid in tagged(tag)} == {}
        assert not [p for p in Path("/dev/shm").iterdir() if f"rankmap-{manager}-" in p.name]
    finally:
        for pid in tagged(tag):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
