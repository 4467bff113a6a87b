"""Nodes that `rankmap demo` starts end with it, even when it is killed by SIGKILL.

The demo puts its pid in RANKMAP_ROS_PARENT_PID. A node that finds it there asks the kernel for
SIGTERM when its parent dies, so it shuts down as on `kill`: the manager stops its executors and
removes its shared memory. Nodes started any other way (ros2 launch, ros2 run) find no such
variable and live on their own, as ROS nodes do.
"""

from __future__ import annotations

import os
import signal

from rankmap_ros.runtime.lifetime import parent_death_signal

PARENT_ENV = "RANKMAP_ROS_PARENT_PID"


def follow_parent() -> None:
    """Call first in a node's main(), before any thread starts."""
    text = os.environ.get(PARENT_ENV, "")
    if not text.isdigit():
        return
    parent_death_signal(signal.SIGTERM)
    if os.getppid() != int(text):  # it died before the kernel was asked
        os.kill(os.getpid(), signal.SIGTERM)
