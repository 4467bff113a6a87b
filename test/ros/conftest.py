"""Real DDS between real processes, on an isolated domain that never leaves this machine."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

PEERS = Path(__file__).with_name("ros_peers.py")
DOMAIN_ID = str(random.SystemRandom().randint(100, 200))
ISOLATION = {
    "ROS_DOMAIN_ID": DOMAIN_ID,
    "ROS_LOCALHOST_ONLY": "1",
    "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST",
    "RANKMAP_ROS_TRANSPORT": "dds",
}


@pytest.fixture(scope="session", autouse=True)
def ros_isolation() -> Iterator[None]:
    """Applies to this process too: every in-process context joins the same isolated domain."""
    saved = {k: os.environ.get(k) for k in [*ISOLATION, "ROS_DISTRO", "ROS_STATIC_PEERS", "CYCLONEDDS_URI"]}
    os.environ.update(ISOLATION)
    for key in ("ROS_DISTRO", "ROS_STATIC_PEERS", "CYCLONEDDS_URI"):
        os.environ.pop(key, None)
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


class Peer:
    """A peer process from ros_peers.py; its stdout is one JSON document per line."""

    def __init__(self, role: str, *args: str, env: dict[str, str] | None = None) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(PEERS), role, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **(env or {})},
        )

    def line(self, timeout: float = 20.0) -> dict:
        """The next JSON line (blocking read; peers print promptly and then flush)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.process.stdout.readline()  # type: ignore[union-attr]
            if text.strip():
                return json.loads(text)
            if self.process.poll() is not None:
                break
        raise AssertionError(f"peer printed nothing; stderr: {self.process.stderr.read()}")  # type: ignore[union-attr]

    def interrupt(self, timeout: float = 10.0) -> int:
        self.process.send_signal(signal.SIGINT)
        return self.process.wait(timeout=timeout)

    def finish(self, timeout: float = 30.0) -> int:
        return self.process.wait(timeout=timeout)


@pytest.fixture
def peers() -> Iterator[list[Peer]]:
    """Start peers with `peers.append(Peer(...))`; none may outlive the test."""
    started: list[Peer] = []
    yield started
    leftovers = [p for p in started if p.process.poll() is None]
    for peer in leftovers:
        peer.process.kill()
        peer.process.wait()
    for peer in started:
        for stream in (peer.process.stdout, peer.process.stderr):
            if stream:
                stream.close()
    assert not leftovers, "a peer process was still running at the end of the test"


@pytest.fixture
def rclpy_context() -> Iterator[object]:
    """Our rclpy in this process (no signal handlers: pytest owns SIGINT)."""
    from rankmap_ros.ros.dds import rclpy_api as dds
    from rankmap_ros.ros.dds.context import SignalHandlerOptions

    dds.init(args=[], signal_handler_options=SignalHandlerOptions.NO)
    yield dds
    dds.try_shutdown()
