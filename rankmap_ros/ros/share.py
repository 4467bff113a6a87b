"""Where this package's non-Python files are: its msg/ and srv/, its config/ and launch/.

They sit beside the sources in a checkout, under `share/rankmap_ros` of a prefix once installed:
a colcon workspace's (each prefix of AMENT_PREFIX_PATH, as ament_index finds packages) or pip's
(sys.prefix). Looking only beside the sources finds nothing in either install.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

PACKAGE = "rankmap_ros"


def share_dirs() -> list[Path]:
    """Candidate directories, the source tree first, then colcon's prefixes, then pip's."""
    found = [Path(__file__).resolve().parents[2]]
    found += [Path(p) / "share" / PACKAGE for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p]
    found.append(Path(sys.prefix) / "share" / PACKAGE)
    return found


def find_share(relative: str) -> Path | None:
    """The first `<share dir>/<relative>` that exists."""
    for directory in share_dirs():
        if (directory / relative).exists():
            return directory / relative
    return None
