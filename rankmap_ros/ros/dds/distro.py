"""Which ROS 2 distribution the transport imitates on the wire.

Humble and Jazzy differ in two places that matter to a peer: the size of a graph gid in
`ros_discovery_info` (24 bytes on Humble, 16 from Iron on) and the `typehash=` user data that
Iron and later put on every endpoint. `ROS_DISTRO` (set by every ROS 2 setup script) picks the
behaviour; without it we speak Jazzy.
"""

from __future__ import annotations

import os

HUMBLE_LIKE = frozenset({"foxy", "galactic", "humble"})


def distro() -> str:
    return os.environ.get("ROS_DISTRO", "").strip().lower() or "jazzy"


def gid_size() -> int:
    return 24 if distro() in HUMBLE_LIKE else 16


def sends_type_hash() -> bool:
    return distro() not in HUMBLE_LIKE
