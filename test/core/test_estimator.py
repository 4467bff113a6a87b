"""The learned estimator: Q batches, channel-shuffle equivariance, training, checkpoints, shipped model."""

from __future__ import annotations

import itertools
import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from rankmap_ros.core.dataset import Dataset, generate
from rankmap_ros.core.estimator.checkpoint import EstimatorError, load_checkpoint, save_checkpoint, shipped_path
from rankmap_ros.core.estimator.evaluation import accuracy, count_macs, spearman
from rankmap_ros.core.estimator.network import NetConfig, RankMapNet
from rankmap_ros.core.estimator.pipeline import FitOptions, fit, train_targets
from rankmap_ros.core.estimator.predictor import LearnedEstimator, load_estimator
from rankmap_ros.core.estimator.qbatch import assignments, q_batch
from rankmap_ros.core.estimator.training import TrainConfig, masked_loss, predict_batches, train_network
from rankmap_ros.core.labels import SimulatorLabels
from rankmap_ros.core.mapping import Mapping, MappingError
from rankmap_ros.core.platform import Platform, load_platform
from rankmap_ros.core.qtensor import encode
from rankmap_ros.core.simulator import throughputs
from rankmap_ros.core.unitvec import vectors
from rankmap_ros.core.workload import Workload

TINY_NET = NetConfig(blocks=1, width_fraction=1 / 3, decoder_multiplier=1.0)
TINY = FitOptions(
    variants=("rankmap", "omniboost"),
    train=TrainConfig(epochs=2, batch_size=32, patience=5),
    net=TINY_NET,
    vq_steps=20,
)


@pytest.fixture(scope="module")
def opi() -> Platform:
    return load_platform("orange_pi_5")


@pytest.fixture(scope="module")
def tiny_data(opi: Platform, tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    return generate(SimulatorLabels(opi), 96, tmp_path_factory.mktemp("data") / "d.npz", seed=11)


@pytest.fixture(scope="module")
def tiny_checkpoint(tiny_data: Dataset) -> dict[str, Any]:
    torch.manual_seed(0)
    return fit(tiny_data, TINY, log=lambda _: None)


def _random_mappings(workload: Workload, opi: Platform, n: int, seed: int) -> list[Mapping]:
    rng = np.random.default_rng(seed)
    return [Mapping.random(workload, opi.component_names, rng, max_stages=4) for _ in range(n)]


def test_batched_q_equals_the_reference_encoding(opi: Platform) -> None:
    workload = Workload.from_models(["alexnet", "resnet50", "alexnet"])
    mappings = _random_mappings(workload, opi, 6, seed=1)
    models = ("alexnet", "resnet50")
    table = np.zeros((2, 32, 22), dtype=np.float32)
    for i, m in enumerate(models):
        table[i, : len(vectors(m))] = vectors(m)
    assign = assignments(workload, mappings, opi.component_names)
    ids = torch.tensor([[0, 1, 0]] * len(mappings))
    q = q_batch(torch.as_tensor(table), ids, torch.as_tensor(assign).long(), 3).numpy()
    for b, mapping in enumerate(mappings):
        reference = encode(workload, mapping, opi.component_names)
        units = q.shape[2]
        assert np.array_equal(q[b], reference[:3, :units])
        assert not reference[:, units:].any() and not reference[3:].any()


def test_assignments_reject_mappings_of_another_workload(opi: Platform) -> None:
    workload = Workload.from_models(["alexnet", "resnet50"])
    other = Workload.from_models(["alexnet", "vgg16"])
    with pytest.raises(MappingError):
        assignments(workload, [Mapping.all_on(other, "gpu")], opi.component_names)
    with pytest.raises(MappingError, match="unknown component 'npu'"):
        assignments(workload, [Mapping.all_on(workload, "npu")], opi.component_names)


def test_shuffled_channels_give_shuffled_q_and_backbone_output(opi: Platform) -> None:
    models = ["alexnet", "resnet50", "mobilenet_v2", "vgg16"]
    workload = Workload.from_models(models)
    mapping = _random_mappings(workload, opi, 1, seed=3)[0]
    q = encode(workload, mapping, opi.component_names)
    perm = [2, 0, 3, 1]
    shuffled = Workload.from_models([models[p] for p in perm])
    shuffled_mapping = Mapping(tuple(mapping.dnns[p] for p in perm))
    q_shuffled = encode(shuffled, shuffled_mapping, opi.component_names)
    assert np.array_equal(q_shuffled[:4], q[perm])

    torch.manual_seed(0)
    net = RankMapNet(NetConfig(dim=22)).eval()
    x = torch.as_tensor(q).unsqueeze(0) / 100
    with torch.no_grad():
        features = net.features(x)
        features_shuffled = net.features(torch.as_tensor(q_shuffled).unsqueeze(0) / 100)
    assert torch.allclose(features_shuffled[0, :4], features[0, perm], atol=1e-5)


def test_cropping_q_does_not_change_predictions() -> None:
    torch.manual_seed(0)
    net = RankMapNet(NetConfig(dim=4, max_units=12)).eval()
    q = torch.zeros(3, 5, 12, 12)
    q[:, :2, :7] = torch.randn(3, 2, 7, 12)
    q[:, 1, 5:] = 0  # the second DNN has 5 units
    with torch.no_grad():
        full = net(q)[:, :2]
        cropped = net(q[:, :2, :7])
    assert torch.allclose(full, cropped, atol=1e-5)


def test_tiny_training_lowers_the_loss(tiny_data: Dataset, tiny_checkpoint: dict[str, Any]) -> None:
    from rankmap_ros.core.estimator.predictor import input_table
    from rankmap_ros.core.estimator.target import TargetScaler

    target = TargetScaler.from_dict(tiny_checkpoint["target"])
    data = train_targets(tiny_data, target)
    table = torch.as_tensor(input_table(tiny_checkpoint, "vq"))
    torch.manual_seed(0)
    net = RankMapNet(replace(TINY_NET, dim=16))
    before = float(masked_loss(predict_batches(net, table, data, 3), data.y, data.real, "l2"))
    history = train_network(net, table, data, 3, TrainConfig(epochs=6, batch_size=16, lr=3e-3, val_fraction=0.25))
    after = float(masked_loss(predict_batches(net, table, data, 3), data.y, data.real, "l2"))
    assert after < 0.7 * before
    assert history.train_loss[-1] < history.train_loss[0]
    assert len(history.val_loss) == len(history.train_loss) and history.best_epoch >= 0


def test_interrupted_training_resumes_to_the_same_weights(tiny_data: Dataset, tmp_path: Path) -> None:
    table = torch.randn(24, 32, 16) * (torch.arange(32) < 29).float()[None, :, None]
    from rankmap_ros.core.estimator.target import TargetScaler

    ideal = tiny_data.ideal()[np.maximum(tiny_data.models, 0)]
    data = train_targets(tiny_data, TargetScaler.fit(tiny_data.throughput, ideal))
    config = TrainConfig(epochs=3, batch_size=32)

    def run(state: Path | None, stop_after: int | None = None) -> RankMapNet:
        torch.manual_seed(0)
        net = RankMapNet(TINY_NET)

        def on_epoch(epoch: int, *_: float) -> None:
            if epoch == stop_after:
                raise KeyboardInterrupt

        train_network(net, table, data, 3, config, state_path=state, on_epoch=on_epoch, on_start=firsts.append)
        return net

    firsts: list[int] = []
    whole = run(None)
    state = tmp_path / "state.pt"
    with pytest.raises(KeyboardInterrupt):
        run(state, stop_after=1)
    resumed = run(state)
    assert firsts == [0, 0, 1]  # the resumed run went on after the saved epoch 0, not from scratch
    for key, value in whole.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[key]), key


def _train_data(dataset: Dataset) -> Any:
    from rankmap_ros.core.estimator.target import TargetScaler

    ideal = dataset.ideal()[np.maximum(dataset.models, 0)]
    return train_targets(dataset, TargetScaler.fit(dataset.throughput, ideal))


def test_training_stopped_in_its_first_epoch_resumes_from_the_same_initial_weights(
    tiny_data: Dataset, tmp_path: Path
) -> None:
    # `estimator build` resumed takes its VQ-VAE from the state instead of fitting it, so the
    # network is built from another RNG state: the first epoch must not start from those weights
    table = torch.randn(24, 32, 16) * (torch.arange(32) < 29).float()[None, :, None]
    data = _train_data(tiny_data)
    config = TrainConfig(epochs=2, batch_size=32)

    def run(state: Path | None, init_seed: int, stop: bool = False) -> RankMapNet:
        torch.manual_seed(init_seed)
        net = RankMapNet(TINY_NET)

        def on_start(first: int) -> None:
            if stop:
                raise KeyboardInterrupt

        train_network(net, table, data, 3, config, state_path=state, on_start=on_start)
        return net

    whole = run(None, init_seed=0)
    state = tmp_path / "state.pt"
    with pytest.raises(KeyboardInterrupt):
        run(state, init_seed=0, stop=True)
    resumed = run(state, init_seed=99)
    for key, value in whole.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[key]), key


def test_a_training_state_of_other_settings_is_refused_by_name_and_kept(tiny_data: Dataset, tmp_path: Path) -> None:
    table = torch.randn(24, 32, 16) * (torch.arange(32) < 29).float()[None, :, None]
    data = _train_data(tiny_data)
    state = tmp_path / "state.pt"

    def stop(epoch: int, *_: float) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_network(RankMapNet(TINY_NET), table, data, 3, TrainConfig(epochs=3), state_path=state, on_epoch=stop)
    saved = state.read_bytes()
    with pytest.raises(EstimatorError, match=r"other settings \(epochs 4 here, 3 there\).*delete it"):
        train_network(RankMapNet(TINY_NET), table, data, 3, TrainConfig(epochs=4), state_path=state)
    with pytest.raises(EstimatorError, match=r"other settings \(dataset\)"):
        train_network(
            RankMapNet(TINY_NET), table, data.take(torch.arange(80)), 3, TrainConfig(epochs=3), state_path=state
        )
    assert state.read_bytes() == saved
    longer = TrainConfig(epochs=3, max_minutes=60.0)  # a time limit is not a setting of the run
    history = train_network(RankMapNet(TINY_NET), table, data, 3, longer, state_path=state)
    assert len(history.train_loss) == 3


def test_checkpoint_round_trip_loads_with_weights_only(
    tiny_checkpoint: dict[str, Any], opi: Platform, tmp_path: Path
) -> None:
    path = tmp_path / "model.pt"
    save_checkpoint(tiny_checkpoint, path)
    raw = torch.load(path, weights_only=True)
    assert raw["platform"] == "orange_pi_5" and set(raw["variants"]) == {"rankmap", "omniboost"}
    workload = Workload.from_models(["squeezenet_v2", "vgg16", "yolo_v3"])
    mappings = _random_mappings(workload, opi, 20, seed=4)
    for variant in ("rankmap", "omniboost"):
        in_memory = LearnedEstimator(tiny_checkpoint, opi, variant).predict(workload, mappings)
        loaded = LearnedEstimator.load(path, opi, variant)
        assert loaded.name == f"estimator:{variant}" and loaded.platform is opi
        out = loaded.predict(workload, mappings)
        assert out.shape == (20, 3) and np.isfinite(out).all() and (out > 0).all()
        assert np.allclose(out, in_memory, rtol=1e-5)
    assert loaded.predict(workload, []).shape == (0, 3)


def test_wrong_platform_zoo_shape_or_file_fails_clearly(
    tiny_checkpoint: dict[str, Any], opi: Platform, tmp_path: Path
) -> None:
    def broken(change: dict[str, Any]) -> Path:
        path = tmp_path / "broken.pt"
        save_checkpoint({**tiny_checkpoint, **change}, path)
        return path

    with pytest.raises(EstimatorError, match="trained for platform 'host', not 'orange_pi_5'"):
        LearnedEstimator.load(broken({"platform": "host"}), opi)
    with pytest.raises(EstimatorError, match="recalibrated"):
        LearnedEstimator.load(broken({"platform_fingerprint": "0123456789abcdef"}), opi)
    with pytest.raises(EstimatorError, match="zoo version"):
        LearnedEstimator.load(broken({"zoo_version": "0123456789abcdef"}), opi)
    variant = tiny_checkpoint["variants"]["rankmap"]
    wider = {**variant, "config": {**variant["config"], "width_fraction": 2 / 3}}
    with pytest.raises(EstimatorError, match="does not match its network shape"):
        LearnedEstimator.load(broken({"variants": {"rankmap": wider}}), opi)
    raw_input = {**variant, "input": "raw"}
    with pytest.raises(EstimatorError, match="reads rows of 48 numbers"):
        LearnedEstimator.load(broken({"variants": {"rankmap": raw_input}}), opi)
    with pytest.raises(EstimatorError, match="no variant 'nope'"):
        LearnedEstimator(tiny_checkpoint, opi, "nope")
    with pytest.raises(EstimatorError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"\x80\x04 definitely not a checkpoint")
    with pytest.raises(EstimatorError, match=r"holds more than tensors and plain data .*not loaded"):
        load_checkpoint(garbage)
    pickled = tmp_path / "pickled.pt"
    torch.save({"format": "rankmap.estimator/1", "payload": Path("/")}, pickled)  # needs pickled code to load
    with pytest.raises(EstimatorError, match="not loaded, as it could run code") as refused:
        load_checkpoint(pickled)
    assert "weights_only=False" not in str(refused.value)  # torch's advice, wrong for a file of unknown origin
    whole = broken({}).read_bytes()
    for damage, expected in ((b"", "is empty"), (whole[: len(whole) // 2], "cannot be read \\(damaged\\?\\)")):
        garbage.write_bytes(damage)
        with pytest.raises(EstimatorError, match=expected):
            load_checkpoint(garbage)
    diverged = {"rankmap": {**variant, "state": {k: v * math.nan for k, v in variant["state"].items()}}}
    for entries, expected in (({}, "holds no trained variant"), (diverged, "holds NaN or infinite weights")):
        with pytest.raises(EstimatorError, match=expected):
            LearnedEstimator.load(broken({"variants": entries}), opi)
    with pytest.raises(EstimatorError, match="no estimator is shipped for platform 'elsewhere'"):
        LearnedEstimator.load(None, replace(opi, name="elsewhere"))
    bare = tmp_path / "bare.pt"
    torch.save({"format": "rankmap.estimator/1"}, bare)  # the right format and nothing else
    with pytest.raises(EstimatorError, match="not a complete estimator checkpoint: no zoo_version, platform"):
        load_checkpoint(bare)
    with pytest.raises(EstimatorError, match="malformed estimator checkpoint: KeyError"):
        LearnedEstimator.load(broken({"target": {}}), opi)


def test_metrics_and_mac_counts(tiny_checkpoint: dict[str, Any], tiny_data: Dataset, opi: Platform) -> None:
    assert spearman(np.array([1, 2, 3, 4]), np.array([10, 20, 30, 40])) == pytest.approx(1.0)
    assert spearman(np.array([1, 2, 3, 4]), np.array([4, 3, 2, 1])) == pytest.approx(-1.0)
    assert spearman(np.array([1, 1, 2]), np.array([1, 2, 3])) == pytest.approx(np.sqrt(3) / 2)
    estimator = LearnedEstimator(tiny_checkpoint, opi)
    result = accuracy(estimator, tiny_data)
    assert {"l2", "mape", "spearman", "mape_per_model"} <= set(result)
    assert np.isfinite(result["mape"]) and result["mape"] > 0 and result["zero_labels"] == 0
    # a measured label of 0 (nothing completed in the window) is counted, not divided by
    starved = Dataset(tiny_data.models, tiny_data.assign, tiny_data.throughput.copy(), tiny_data.meta)
    starved.throughput[0, 0] = 0.0
    with_zero = accuracy(estimator, starved)
    assert with_zero["zero_labels"] == 1 and np.isfinite(with_zero["mape"])
    assert -100 < float(train_targets(starved, estimator.target).y[0, 0]) < 0  # not -3.4e38
    q = torch.ones(1, 5, 32, 48)
    macs = count_macs(estimator.net, q)
    stem = estimator.net.stem.weight.numel() * 5 * 32
    assert macs > 3 * stem > 0


@pytest.fixture(scope="module")
def shipped(opi: Platform) -> LearnedEstimator:
    return load_estimator(opi)


def test_shipped_checkpoint_beats_predicting_each_models_mean(shipped: LearnedEstimator, opi: Platform) -> None:
    rng = np.random.default_rng(20_251_123)
    pool = ("alexnet", "resnet50", "mobilenet_v2", "inception_v4", "yolo_v3", "squeezenet_v2", "vgg19", "googlenet")
    errors, trivial_errors, rhos = [], [], []
    per_model: dict[str, list[float]] = {}
    cases = []
    for _ in range(6):
        workload = Workload.from_models(list(rng.choice(pool, size=int(rng.integers(2, 6)))))
        mappings = [Mapping.random(workload, opi.component_names, rng, max_stages=4) for _ in range(25)]
        truth = throughputs(opi, workload, mappings)
        cases.append((workload, mappings, truth))
        for k, model in enumerate(workload.models):
            per_model.setdefault(model, []).extend(truth[:, k])
    for workload, mappings, truth in cases:
        predicted = shipped.predict(workload, mappings)
        trivial = np.array([np.mean(per_model[m]) for m in workload.models])[None, :]
        errors.append(np.abs(predicted - truth) / truth)
        trivial_errors.append(np.abs(trivial - truth) / truth)
        rhos.append(spearman(predicted.mean(axis=1), truth.mean(axis=1)))
    mape = float(np.mean(np.concatenate([e.ravel() for e in errors])))
    trivial_mape = float(np.mean(np.concatenate([e.ravel() for e in trivial_errors])))
    assert mape < 0.5 * trivial_mape
    assert mape < 0.25
    assert np.mean(rhos) > 0.8


def test_shipped_checkpoint_is_roughly_equivariant_to_dnn_order(shipped: LearnedEstimator, opi: Platform) -> None:
    models = ["resnet50", "mobilenet_v2", "vgg16", "squeezenet_v2"]
    workload = Workload.from_models(models)
    mappings = _random_mappings(workload, opi, 40, seed=8)
    base = shipped.predict(workload, mappings)
    for perm in itertools.islice(itertools.permutations(range(4)), 1, 24, 5):
        shuffled = Workload.from_models([models[p] for p in perm])
        out = shipped.predict(shuffled, [Mapping(tuple(m.dnns[p] for p in perm)) for m in mappings])
        assert np.median(np.abs(out / base[:, list(perm)] - 1)) < 0.1


def test_stale_shipped_checkpoint_would_be_detected(opi: Platform) -> None:
    checkpoint = load_checkpoint(shipped_path("orange_pi_5"))
    recalibrated = replace(opi, components=(replace(opi.components[0], kernel_overhead_us=1.0), *opi.components[1:]))
    with pytest.raises(EstimatorError, match="recalibrated"):
        LearnedEstimator(checkpoint, recalibrated)


def test_a_damaged_or_foreign_resume_state_is_refused_and_kept(tiny_data: Dataset, tmp_path: Path) -> None:
    # a state file may be hours of training: one that cannot be read must stop the run, not be overwritten
    from rankmap_ros.core.estimator.training import read_state

    state_file = tmp_path / "state.pt"
    torch.save({"epoch": 3, "model": {"w": torch.ones(4)}}, state_file)
    whole = state_file.read_bytes()
    state = read_state(state_file)
    assert state is not None and state["epoch"] == 3 and torch.equal(state["model"]["w"], torch.ones(4))
    state_file.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(EstimatorError, match=r"state.pt is not a readable training state .*delete it to start over"):
        read_state(state_file)
    torch.save([1, 2, 3], state_file)
    with pytest.raises(EstimatorError, match="is not a training state"):
        read_state(state_file)
    assert read_state(tmp_path / "missing.pt") is None
    states = tmp_path / "states"
    states.mkdir()
    for name, content in (("vqvae.pt", whole[:100]), ("rankmap.pt", None)):
        if content is None:  # another version's or tool's state where the training's goes
            torch.save({"format": "something else", "epoch": 7}, states / name)
        else:
            (states / name).write_bytes(content)
        kept = (states / name).read_bytes()
        with pytest.raises(EstimatorError, match=f"{name} is not a"):
            fit(tiny_data, TINY, state_dir=states, log=lambda _: None)
        assert (states / name).read_bytes() == kept
        if content is not None:
            (states / name).unlink()


def test_an_interrupted_fit_of_another_seed_is_refused_not_overwritten(tiny_data: Dataset, tmp_path: Path) -> None:
    def stop(*_: Any) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fit(tiny_data, TINY, state_dir=tmp_path, log=lambda _: None, on_epoch=stop)
    saved = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert set(saved) == {"vqvae.pt", "rankmap.pt"}
    other_seed = replace(TINY, train=replace(TINY.train, seed=1))
    with pytest.raises(EstimatorError, match=r"vqvae.pt holds a run of other settings \(VQ-VAE seed 1 here, 0 there\)"):
        fit(tiny_data, other_seed, state_dir=tmp_path, log=lambda _: None)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == saved
