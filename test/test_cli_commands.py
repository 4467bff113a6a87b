"""The `rankmap` commands no other test runs end to end: their output, and their refusals of bad input."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from rankmap_ros.cli import main
from rankmap_ros.commands.demo import render, summary
from rankmap_ros.core.dataset import Dataset
from rankmap_ros.core.platform import load_platform
from rankmap_ros.ros.demo import DemoOptions, DemoReport

ROOT = Path(__file__).resolve().parents[1]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def refused(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """The one-line error of a command that must refuse its input (exit status 2, nothing on stdout)."""
    code, out, err = run(capsys, *argv)
    # `rankmap: error: ...` from the command, `rankmap <command>: error: ...` from its argument parser
    assert code == 2 and out == "" and re.match(r"rankmap( [a-z-]+)*: error: ", err), (code, out, err)
    assert err.count("\n") == 1, err
    return err


def test_experiment_correction_prints_each_round_and_writes_its_files(capsys, tmp_path) -> None:
    argv = ("experiment", "correction", "--mixes", "1", "--rounds", "2", "--budget", "60", "--out", str(tmp_path))
    code, out, _ = run(capsys, *argv, "--json")
    report = json.loads(out)
    assert code == 0 and report["simulated"] and set(report["summary"]) == {"none", "per_dnn", "mapping", "oracle"}
    assert json.loads((tmp_path / "correction.json").read_text())["summary"] == report["summary"]
    code, out, _ = run(capsys, *argv)  # again, from the cache: the table
    assert code == 0 and re.search(r"^mapping +\d\.\d{3} \(\d\) +\d\.\d{3} \(\d\) ", out, re.M), out
    assert "(simulated)" in out and "correction.png" in out


def test_platform_show_prints_the_platform_as_it_loads(capsys, tmp_path) -> None:
    code, out, _ = run(capsys, "platform", "show", "orange_pi_5", "--json")
    assert code == 0 and json.loads(out) == load_platform("orange_pi_5").to_dict()
    assert "no_such" in refused(capsys, "platform", "show", str(tmp_path / "no_such.yaml"))


def test_platform_discover_writes_a_platform_that_loads_back(capsys, tmp_path) -> None:
    out_file = tmp_path / "host.yaml"
    code, out, _ = run(capsys, "platform", "discover", "--split", "big:0", "--out", str(out_file), "--json")
    assert code == 0
    written = load_platform(out_file)
    assert not written.calibrated and "big" in written.component_names
    assert json.loads(out)["components"][0]["name"] == written.components[0].name
    assert "CPU 99" in refused(capsys, "platform", "discover", "--split", "big:99")


def test_dataset_generate_then_estimator_eval_on_it(capsys, tmp_path) -> None:
    path = tmp_path / "d.npz"
    code, out, _ = run(capsys, "dataset", "generate", "--samples", "16", "--out", str(path), "--json")
    data = json.loads(out)
    assert code == 0 and data["samples"] == 16 and data["simulated"] is True
    assert len(Dataset.load(path)) == 16
    code, out, _ = run(capsys, "estimator", "eval", "--dataset", str(path), "--no-timing", "--json")
    assert code == 0
    evaluation = json.loads(out)
    assert evaluation["dataset"]["samples"] == 16
    for variant in evaluation["variants"].values():
        assert variant["params"] > 0 and variant["macs"] > 0
    # the shipped estimator on 16 fresh simulated samples: 10.3% here, as on its own test set
    assert evaluation["variants"]["rankmap"]["mape"] < 0.25
    refused(capsys, "dataset", "generate", "--samples", "0", "--out", str(tmp_path / "e.npz"))
    assert not (tmp_path / "e.npz").exists()
    refused(capsys, "estimator", "eval", "--dataset", str(tmp_path / "missing.npz"))
    refused(capsys, "estimator", "eval", "--dataset", str(path), "--threads", "0")


def test_bench_estimator_times_the_shipped_checkpoint(capsys) -> None:
    code, out, _ = run(capsys, "bench", "estimator", "--variants", "rankmap", "--threads", "1", "--json")
    assert code == 0
    (timing,) = json.loads(out)["variants"]["rankmap"]
    assert timing["threads"] == 1 and timing["us_per_mapping"] > 0 and timing["macs"] > 0
    refused(capsys, "bench", "estimator", "--threads", "0")
    refused(capsys, "bench", "estimator", "--threads", "two")


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (("train", "--dataset", "/no/such/data.npz", "--out", "/tmp/never.pt"), "data.npz"),
        (("bench", "realtime", "--component", "npu"), "npu"),
        (("bench", "runtime", "--workload", "alexnet,nonet"), "nonet"),
        (("dataset", "collect", "--samples", "0", "--out", "/tmp/never.npz"), "--samples"),
        (("experiment", "paper", "--platform", "/no/such/platform.yaml"), "platform.yaml"),
        (("demo", "--duration", "0"), "--duration"),
        (("demo", "--platform", "/no/such/host.yaml"), "host.yaml"),
        (("demo", "--platform", "orange_pi_5"), "describes another machine"),
        (("demo", "--params-file", "/no/such/my.yaml"), "parameters file /no/such/my.yaml does not exist"),
        # a split beside a platform file was dropped without a word
        (
            ("run", "--workload", "alexnet", "--mapping", "all-big", "--platform", "b.yaml", "--split", "big:0"),
            "--split applies to --platform host",
        ),
        (("experiment", "search", "--mixes", "0"), "--mixes"),
        (("experiment", "search", "--mixes", "1", "--budget", "0"), "argument --budget: must be at least 1, got 0"),
        (("bench", "planner", "--mixes", "0"), "--mixes"),
        (("experiment", "correction", "--rounds", "0"), "argument --rounds: must be at least 1, got 0"),
        # numbers that ended in a traceback, a hang or a silent empty result after the work
        (("map", "--workload", "alexnet", "--seed", "-1"), "argument --seed: must be at least 0, got -1"),
        (("map", "--workload", "alexnet", "--planner", "ga", "--max-stages", "0"), "argument --max-stages"),
        (("train", "--dataset", "d.npz", "--out", "m.pt", "--epochs", "0"), "argument --epochs: must be at least 1"),
        (("train", "--dataset", "d.npz", "--out", "m.pt", "--lr", "-1"), "argument --lr: must be a finite number > 0"),
        (("run", "--workload", "alexnet", "--mapping", "all-big", "--seconds", "nan"), "argument --seconds"),
        (("run", "--workload", "alexnet", "--mapping", "all-big", "--warmup", "-1"), "argument --warmup"),
        (("experiment", "motivation", "--samples", "0"), "argument --samples: must be at least 1, got 0"),
        (("dataset", "generate", "--samples", "5", "--out", "d.npz", "--max-stages", "0"), "argument --max-stages"),
        (("dataset", "collect", "--out", "d.npz", "--seconds", "0"), "argument --seconds"),
        (("dataset", "collect", "--out", "d.npz", "--max-dnns", "6"), "argument --max-dnns: must be from 1 to 5"),
        (("bench", "realtime", "--cycles", "0"), "argument --cycles: must be at least 1, got 0"),
        (("bench", "realtime", "--period", "1e-9"), "argument --period: must be a finite number >= 0.001"),
        (("map", "--workload", "alexnet", "--period", "alexnet=1,alexnet=0.5"), "--period: 'alexnet' is given twice"),
        (("map", "--workload", "alexnet", "--rate", "alexnet=1e-320"), "--rate: '1e-320' is too small a rate"),
        (("estimator", "eval", "--dataset", "/"), "dataset / is a directory, not a file"),
        # refused before the datasets are labelled (52,000 samples by default), or a crash
        (("estimator", "build", "--variants", "bogus", "--workdir", "/tmp/never"), "--variants: unknown bogus"),
        (("train", "--dataset", "d.npz", "--out", "m.pt", "--variants", ","), "--variants: none"),
        (("estimator", "eval", "--dataset", "d.npz", "--threads", "99999"), "argument --threads: must be from 1"),
        (("bench", "estimator", "--threads", "1,100000"), "--threads must be integers from 1"),
        (("estimator", "build", "--platform", "/robot/board.yaml"), "--out is needed with a platform file"),
        (("bench", "runtime", "--rounds", "0"), "argument --rounds: must be at least 1, got 0"),
        (("status", "--timeout", "nan"), "argument --timeout: must be a finite number > 0 and <= 3.2e+07, got nan"),
        (("demo", "--duration", "nan"), "argument --duration: must be a finite number > 0 and <= 3.2e+07, got nan"),
        (("demo", "--rate", "0"), "argument --rate: must be a finite number >= 0.1 and <= 240, got 0"),
    ],
)
def test_bad_input_is_refused_in_one_line_before_anything_runs(capsys, argv, says) -> None:
    assert says in refused(capsys, *argv)


@pytest.mark.parametrize(
    ("argv", "what"),
    [
        (("simulate", "--workload", "alexnet", "--platform", "{file}.yaml"), "platform file"),
        (("simulate", "--workload", "{file}.yaml"), "workload file"),
        (("simulate", "--workload", "alexnet", "--mapping", "{file}.json"), "mapping file"),
    ],
)
def test_a_binary_file_where_text_is_expected_is_refused_in_one_line(capsys, tmp_path, argv, what) -> None:
    file = tmp_path / "image"
    for suffix in (".yaml", ".json"):
        file.with_suffix(suffix).write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff")
    argv = tuple(a.replace("{file}", str(file)) for a in argv)
    err = refused(capsys, *argv)
    assert f"{what} {file}" in err and "is not a text file (not UTF-8)" in err


def test_files_of_the_wrong_kind_are_named_for_what_they_are(capsys, tmp_path) -> None:
    """Messages that pointed elsewhere: a model name, numpy's unsafe-loading advice, torch internals."""
    import numpy as np

    text = tmp_path / "notes.txt"
    text.write_text("obstacles: squeezenet_v2\n")
    archive = tmp_path / "arrays.npz"
    np.savez(archive, a=np.zeros(2))
    assert "must end in .yaml, .yml or .json" in refused(capsys, "simulate", "--workload", str(text))
    said = refused(capsys, "estimator", "eval", "--dataset", str(text.rename(tmp_path / "notes.npz")))
    assert "is not a rankmap dataset: not an .npz archive" in said and "allow_pickle" not in said
    said = refused(capsys, "estimator", "eval", "--model", str(archive), "--dataset", str(archive))
    assert "is not an estimator checkpoint: a zip archive, but not one torch.save wrote" in said
    assert "no platform given" in refused(capsys, "simulate", "--workload", "alexnet", "--platform", "")


def test_results_go_to_a_directory_made_for_them(capsys, tmp_path) -> None:
    out = tmp_path / "new" / "dir" / "mapping.json"
    code, _, err = run(capsys, "map", "--workload", "alexnet", "--model", "simulator", "--out", str(out))
    assert code == 0, err
    assert json.loads(out.read_text())["dnns"][0]["name"] == "alexnet"


def test_demo_report_renders_as_a_table_and_a_summary() -> None:
    report = DemoReport(domain_id="123", platform="host", planner="rankmap_s", priority_mode="static", elapsed_s=12.5)
    report.dnns["squeezenet_v2"] = {
        "model": "squeezenet_v2",
        "priority": 0.5,
        "min_rate": 0.0,
        "measured_rate": 22.6,
        "predicted_rate": 19.0,
        "potential_throughput": 0.37,
        "stages": [{"units": [0, 18], "component": "big"}],
        "status": "OK",
        "status_message": "",
    }
    report.mapping_changes.append({"at_s": 5.9, "stages": {"squeezenet_v2": ["0-17@big"]}})
    table = render(report)
    assert "squeezenet_v2" in table and "22.60" in table and "0-17@big" in table and "OK" in table
    assert "mapping at   5.9 s: squeezenet_v2: 0-17@big" in summary(report)
    assert json.loads(json.dumps(report.to_dict()))["dnns"]["squeezenet_v2"]["measured_rate"] == 22.6


def test_the_ros2_run_script_is_the_same_command_line() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "rankmap"), "zoo", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert done.returncode == 0, done.stderr
    assert len(json.loads(done.stdout)) == 24


def test_a_trained_checkpoint_is_one_estimator_eval_can_load(capsys, tmp_path, monkeypatch) -> None:
    """train -> eval: the checkpoint, its training curve, and the same accuracy keys as the shipped one."""
    from rankmap_ros.core.estimator import pipeline

    data, model = tmp_path / "d.npz", tmp_path / "m.pt"
    assert run(capsys, "dataset", "generate", "--samples", "16", "--out", str(data), "--json")[0] == 0
    argv = ["train", "--dataset", str(data), "--out", str(model), "--epochs", "1", "--blocks", "1"]
    argv += ["--variants", "rankmap", "--vqvae-steps", "40", "--json"]

    def stopped(*_a: object) -> None:
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:  # Ctrl-C after the checkpoint, before the curve: resumable still
        patch.setattr(pipeline, "plot_curves", stopped)
        code, _, err = run(capsys, *argv)
        assert code == 130 and "fitting the VQ-VAE" in err and "40/40" in err  # half a minute at 1500 steps
    assert {p.name for p in (tmp_path / "m.state").iterdir()} == {"rankmap.pt", "vqvae.pt"}
    code, out, _ = run(capsys, *argv)
    trained = json.loads(out)
    assert code == 0 and trained["variants"]["rankmap"]["epochs"] == 1 and trained["vqvae"]["steps"] == 40
    assert model.is_file() and (tmp_path / "m-curve.png").stat().st_size > 0
    assert not (tmp_path / "m.state").exists()  # every output written: the states go
    evaluate = ["estimator", "eval", "--model", str(model), "--dataset", str(data), "--no-timing", "--json"]
    code, out, _ = run(capsys, *evaluate)
    assert code == 0 and set(json.loads(out)["variants"]) == {"rankmap"}


def test_experiment_search_compares_every_search_on_the_same_mixes(capsys) -> None:
    code, out, _ = run(capsys, "experiment", "search", "--mixes", "1", "--budget", "20", "--json")
    result = json.loads(out)
    assert code == 0 and result["simulated"] is True and result["budget"] == 20
    searches = set(result["variants"]["both"])
    assert {"rankmap", "ga", "unit_mcts"} <= searches
    for mode in ("dynamic", "static"):
        assert set(result["variants"][mode]) == searches
    for mix in result["mixes"]:
        assert set(mix["scores"]) == searches  # every search scored on every mix


def test_the_demo_hands_its_platform_to_the_manager(tmp_path) -> None:
    from rankmap_ros.ros.demo import node_commands

    manager = node_commands(DemoOptions(platform=str(tmp_path / "host.yaml"), split="big:0,little:1"))["manager"]
    assert f"platform:={str(tmp_path / 'host.yaml')!r}" in manager
    assert not any(arg.startswith("platform:=") for arg in node_commands(DemoOptions(split="big:0"))["manager"])


def test_the_demo_runs_a_dnns_file_instead_of_the_perception_node(capsys, tmp_path, monkeypatch) -> None:
    """`rankmap demo --dnns-file F`: a robot's DNNs on this host's synthetic camera, before the robot."""
    from rankmap_ros.ros.demo import node_commands

    nodes = node_commands(DemoOptions(dnns_file="config/dnns.yaml", compressed=True))
    assert set(nodes) == {"manager", "camera"}  # the manager registers them: no perception node
    assert f"dnns_file:={str(Path('config/dnns.yaml').resolve())!r}" in nodes["manager"]
    assert "compressed:=jpeg" in nodes["camera"]
    assert "compressed:=jpeg" not in node_commands(DemoOptions())["camera"]
    started: list[object] = []
    monkeypatch.setattr("rankmap_ros.ros.demo.run_demo", lambda *args: started.append(args))
    bad = tmp_path / "dnns.yaml"
    bad.write_text("dnns: [{name: a, model: alexnet}]")
    code, _, err = run(capsys, "demo", "--dnns-file", str(bad))
    assert code == 2 and "entry 0: missing input_topic" in err and not started


def test_ctrl_c_ends_with_130_and_says_how_to_go_on(capsys, monkeypatch) -> None:
    def interrupted(*args, **kwargs) -> None:  # Ctrl-C halfway through the experiment
        raise KeyboardInterrupt

    monkeypatch.setattr("rankmap_ros.experiments.paper.run_paper", interrupted)
    code, out, err = run(capsys, "experiment", "paper", "--quick", "--model", "simulator")
    assert code == 130 and out == "" and "Traceback" not in err
    assert err == "rankmap: interrupted. With --out, run the same command again to go on from its cache.\n"


def test_ctrl_c_in_a_calibration_says_it_wrote_nothing_and_starts_over(capsys, monkeypatch, tmp_path) -> None:
    def interrupted(*args, **kwargs) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("rankmap_ros.runtime.calibrate.calibrate", interrupted)
    out = tmp_path / "host.yaml"
    code, _, err = run(capsys, "calibrate", "--platform", "host", "--split", "big:0", "--out", str(out))
    assert code == 130 and err.startswith("rankmap: interrupted. Nothing was written.") and "run it again" in err
    assert list(tmp_path.iterdir()) == []


def test_outputs_that_cannot_be_written_or_are_inputs_are_refused_before_any_work(capsys, tmp_path) -> None:
    """A 4-minute calibration or an hour of training must not end in a traceback over its --out,
    and an --out naming the command's own input must not overwrite it."""
    workload = tmp_path / "robot.yaml"
    workload.write_text((ROOT / "config" / "workloads" / "robot.yaml").read_text())
    kept = workload.read_bytes()
    (tmp_path / "adir").mkdir()
    (tmp_path / "afile").write_text("x")
    cases = [
        (("map", "--workload", str(workload), "--out", str(workload)), "is also the --workload file"),
        (("map", "--workload", "alexnet", "--out", str(tmp_path / "adir")), "is a directory; give a file name"),
        (("calibrate", "--split", "c:0", "--out", str(tmp_path / "adir")), "is a directory; give a file name"),
        (("experiment", "search", "--out", str(tmp_path / "afile")), "is a file; give a directory"),
        (("map", "--workload", "alexnet", "--out", str(tmp_path / "afile" / "m.json")), "afile is not a directory"),
        (("train", "--dataset", "d.npz", "--out", "m.pt", "--curve", "c.npz"), "a figure ends in .png"),
        (("train", "--dataset", "d.npz", "--out", "m.pt", "--state-dir", str(tmp_path / "afile")), "is a file"),
    ]
    for argv, expected in cases:
        assert expected in refused(capsys, *argv)
    assert workload.read_bytes() == kept
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adir", "afile", "robot.yaml"]
    # a re-plan that replaces the mapping it started from is read before it is written
    current = tmp_path / "current.json"
    plan = ("map", "--workload", "alexnet,vgg16", "--model", "simulator", "--budget", "20", "--out", str(current))
    assert run(capsys, *plan)[0] == 0
    assert run(capsys, *plan, "--warm-start", str(current))[0] == 0 and current.stat().st_size > 0
