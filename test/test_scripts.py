"""The executables colcon installs under lib/rankmap_ros, which `ros2 run` and `ros2 launch` start as files."""

from __future__ import annotations

import contextlib
import importlib
import json
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = sorted((ROOT / "scripts").iterdir())


@pytest.mark.parametrize("script", SCRIPTS, ids=[s.name for s in SCRIPTS])
def test_a_child_process_does_not_run_the_script_again(script: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # multiprocessing (forkserver) runs the main file of the parent again in every child, as
    # __mp_main__: without a guard every executor the manager starts would be another manager
    started: list[str] = []

    def main() -> int:
        started.append(script.name)
        return 0

    for line in script.read_text().splitlines():
        if line.startswith("from rankmap_ros.") and line.endswith(" import main"):
            monkeypatch.setattr(importlib.import_module(line.split()[1]), "main", main)
    runpy.run_path(str(script), run_name="__mp_main__")
    assert started == []
    with contextlib.suppress(SystemExit):  # run as ros2 run does: then it starts
        runpy.run_path(str(script), run_name="__main__")
    assert started == [script.name]


def test_the_cli_script_runs_a_pipeline_of_stage_processes(tmp_path: Path) -> None:
    run = subprocess.run(
        [
            *(sys.executable, str(ROOT / "scripts" / "rankmap"), "run", "--workload", "squeezenet_v2"),
            *("--mapping", "all-big", "--split", "big:0", "--seconds", "0.5", "--warmup", "0.2", "--json"),
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert json.loads(run.stdout)["throughput"]["squeezenet_v2"] > 0
