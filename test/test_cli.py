"""The `rankmap` command as a user runs it."""

import json

import pytest

from rankmap_ros.cli import main


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_zoo_json_lists_every_model(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "zoo", "--json")
    assert code == 0
    entries = {e["name"]: e for e in json.loads(out)}
    assert len(entries) == 24
    assert entries["alexnet"]["units"] == 8
    assert entries["alexnet"]["input_shape"] == [3, 227, 227]
    assert entries["vgg16"]["parameters"] == pytest.approx(138.4e6, rel=0.01)
    assert entries["vgg16"]["gflops"] > 30


def test_units_prints_vectors(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "units", "AlexNet", "--json")
    assert code == 0
    data = json.loads(out)
    assert data["model"] == "alexnet"
    assert data["units"][0]["vector"][:2] == [0, 1]
    assert all(len(u["vector"]) == 22 for u in data["units"])


def test_simulate_all_gpu(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "simulate", "--platform", "orange_pi_5", "--workload", "alexnet,resnet50", "--json")
    assert code == 0
    data = json.loads(out)
    assert data["simulated"] is True
    assert set(data["throughput"]) == {"alexnet", "resnet50"}
    assert all(rate > 0 for rate in data["throughput"].values())
    assert data["mapping"]["dnns"][0]["stages"] == [{"units": [0, 8], "component": "gpu"}]


def test_simulate_mapping_file(capsys: pytest.CaptureFixture[str], tmp_path) -> None:
    mapping = {
        "format": "rankmap.mapping/1",
        "dnns": [
            {
                "name": "alexnet",
                "model": "alexnet",
                "stages": [{"units": [0, 5], "component": "big"}, {"units": [5, 8], "component": "gpu"}],
            }
        ],
    }
    path = tmp_path / "m.json"
    path.write_text(json.dumps(mapping))
    code, out, _ = run(capsys, "simulate", "--workload", "alexnet", "--mapping", str(path), "--json")
    assert code == 0
    stages = json.loads(out)["dnns"][0]["stages"]
    assert [s["component"] for s in stages] == ["big", "gpu"]
    assert all(s["service_time"] > 0 for s in stages)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("simulate", "--workload", "alexnet,lenet"), "unknown model 'lenet'"),
        (("simulate", "--workload", "alexnet", "--mapping", "all-npu"), "unknown component 'npu'"),
        (("simulate", "--workload", "alexnet", "--mapping", "/nonexistent.json"), "does not exist"),
        (("simulate", "--workload", "alexnet", "--platform", "/nonexistent.yaml"), "nonexistent.yaml"),
        (("units", "resnet5000"), "unknown model 'resnet5000'"),
    ],
)
def test_bad_input_is_one_clear_line(capsys: pytest.CaptureFixture[str], argv: tuple[str, ...], message: str) -> None:
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert out == ""
    assert err.startswith("rankmap: error: ")
    assert message in err
    assert "Traceback" not in err


def test_motivation_experiment_writes_json_and_figures(capsys: pytest.CaptureFixture[str], tmp_path) -> None:
    code, out, _ = run(capsys, "experiment", "motivation", "--samples", "40", "--out", str(tmp_path), "--json")
    assert code == 0
    data = json.loads(out)
    for key in ("frac_better_than_baseline", "frac_starving", "frac_p_below_0_2"):
        assert 0.0 <= data[key] <= 1.0
    assert set(data["mean_potential_throughput"]) == {"squeezenet_v2", "inception_v4", "resnet50", "vgg16"}
    assert json.loads((tmp_path / "motivation.json").read_text()) == data
    assert len(list(tmp_path.glob("*.png"))) >= 2


def test_the_command_starts_without_torch_and_a_closed_pipe_is_no_error() -> None:
    """`rankmap status` and friends start in a moment (torch loads only for the commands that
    need it), and `rankmap ... --json | head` ends quietly, as shell tools do."""
    import subprocess
    import sys

    probe = "import sys, rankmap_ros.cli; print('torch' in sys.modules)"
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert loaded.stdout.strip() == "False"
    # the reader is gone long before the command (a second of imports) writes
    command = f"{sys.executable} -m rankmap_ros zoo --json | true"
    done = subprocess.run(["bash", "-o", "pipefail", "-c", command], capture_output=True, text=True, check=False)
    assert done.returncode == 141
    assert "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr, done.stderr


def test_durations_past_a_year_are_refused_before_anything_starts(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (("run", "--workload", "alexnet", "--mapping", "all-big"), ("demo",)):
        flag = "--duration" if argv[0] == "demo" else "--seconds"
        code, _, err = run(capsys, *argv, flag, "1e20")  # refused by argparse: nothing started
        assert code == 2 and "<= 3.2e+07, got 1e20" in err


def test_calibrate_times_as_many_models_as_asked() -> None:
    """A calibration may time more models than a workload holds (5)."""
    from rankmap_ros.commands.common import CliError
    from rankmap_ros.commands.runtime import _model_list

    six = "squeezenet_v2, shufflenet,mobilenet_v2,alexnet,resnet50,VGG16,alexnet"
    assert _model_list(six) == ("squeezenet_v2", "shufflenet", "mobilenet_v2", "alexnet", "resnet50", "vgg16")
    with pytest.raises(CliError, match="unknown model 'nonet'"):
        _model_list("alexnet,nonet")
