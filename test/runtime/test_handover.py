"""`rankmap bench handover`: the cost of one preemption by where the preempting job runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from rankmap_ros.cli import main
from rankmap_ros.runtime.handover import WAYS
from rankmap_ros.runtime.stage import boundary_shapes


def run_handover(*argv: str) -> dict:
    """`rankmap bench handover ... --json` in a process of its own (it pins its process to one CPU)."""
    done = subprocess.run(
        [sys.executable, "-m", "rankmap_ros", "bench", "handover", *argv, "--quiet", "--json"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_every_way_is_measured_at_every_point(tmp_path):
    out = tmp_path / "handover.json"
    argv = ["--best-effort", "squeezenet_v2", "--realtime", "shufflenet", "--rounds", "1"]
    data = run_handover(*argv, "--period", "0.02", "--seconds", "0.5", "--out", str(out))
    assert data == json.loads(out.read_text())
    assert data["measured"] and data["best_effort"] == "squeezenet_v2" and data["realtime"] == "shufflenet"
    assert data["device"] == "cpu"
    assert data["cpu"] in os.sched_getaffinity(0)
    assert 0 < data["job_s"] < 10
    points = len(boundary_shapes("squeezenet_v2")) - 2  # before every unit but the first
    for way in WAYS:
        result = data["ways"][way]
        assert len(result["extra_s_by_point"]) == points
        # a preemption cannot cost more than the job itself, nor save more than a fraction of it
        assert all(-0.5 * data["job_s"] < e < data["job_s"] for e in result["extra_s_by_point"])
    assert data["ways"]["same_thread"]["over_same_thread_s"] == 0
    pair = data["one_thread_pair"]
    assert pair["period_s"] == 0.02 and len(pair["rounds"]) == 1
    (only,) = pair["rounds"]
    # a 20 ms period preempts a ~10 ms job in some jobs, never more than once per unit
    assert 0 < only["preemptions_per_job"] < points
    assert pair["preemption_overhead"] == pytest.approx(only["edf_s"] / only["np_edf_s"] - 1)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--best-effort", "resnet5"], "unknown model 'resnet5'"),
        (["--cpu", "4096"], "CPU 4096 is not available"),
        (["--rounds", "0"], "argument --rounds: must be at least 1, got 0"),
        (["--period", "nan"], "argument --period: must be a finite number >= 0.001 and <= 3600, got nan"),
        (["--seconds", "0"], "argument --seconds: must be a finite number > 0 and <= 3.2e+07, got 0"),
        (["--device", "npu"], "--device 'npu': expected cpu, cuda or cuda:N"),
        (["--device", "cuda:64"], "--device 'cuda:64': this machine has"),
    ],
)
def test_bad_arguments_are_refused_in_one_line(argv, message, capsys):
    assert main(["bench", "handover", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err
