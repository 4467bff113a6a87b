"""Commands of the learned estimator: datasets, training, evaluation, benchmark, the shipped build."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from rankmap_ros.commands.common import POSITIVE, SEED, CliError, add_command, command_group, emit, integer, table

BUILD_DIR = "results/estimator"
MAX_THREADS = 4 * (os.cpu_count() or 1)  # more only slows torch down; 99,999 crashed it


def _variants(text: str) -> tuple[str, ...]:
    """--variants checked before any work: `estimator build` labels 52,000 samples first."""
    from rankmap_ros.core.estimator.pipeline import VARIANTS, variant_names

    variants = variant_names(text)
    unknown = [v for v in variants if v not in VARIANTS]
    if not variants or unknown:
        given = f"unknown {', '.join(unknown)}" if unknown else "none"
        raise CliError(f"--variants: {given}; choose from {', '.join(VARIANTS)}")
    return variants


def _threads(args: argparse.Namespace) -> None:
    threads = getattr(args, "threads", None)
    if threads is None:
        return
    import torch

    torch.set_num_threads(threads)


def _generate(
    platform_name: str, samples: int, out: Path, seed: int, per_workload: int, max_stages: int, reuse: bool = False
) -> Any:
    from tqdm import tqdm

    from rankmap_ros.core.dataset import generate
    from rankmap_ros.core.labels import SimulatorLabels
    from rankmap_ros.core.platform import load_platform

    source = SimulatorLabels(load_platform(platform_name))

    def progress(indices: Any, total: int, done: int) -> Any:
        return tqdm(indices, total=total, initial=done, desc=f"labelling {out.name}", unit="sample", file=sys.stderr)

    return generate(
        source,
        samples,
        out,
        seed=seed,
        mappings_per_workload=per_workload,
        max_stages=max_stages,
        progress=progress,
        reuse=reuse,
    )


def cmd_dataset_generate(args: argparse.Namespace) -> None:
    out = Path(args.out)
    started = time.monotonic()
    dataset = _generate(args.platform, args.samples, out, args.seed, args.mappings_per_workload, args.max_stages)
    real = dataset.models >= 0
    data = {
        "path": str(out),
        "samples": len(dataset),
        "dnns": int(real.sum()),
        "workloads": len(set(dataset.groups.tolist())),
        "seconds": round(time.monotonic() - started, 1),
        "simulated": dataset.meta["label_source"] == "simulator",
        "meta": {k: v for k, v in dataset.meta.items() if k not in ("ideal", "model_names")},
    }
    emit(args, data, f"wrote {len(dataset)} samples ({data['dnns']} DNN labels, {args.platform}, simulated) to {out}")


def _train(
    dataset_path: Path, out: Path, variants: tuple[str, ...], args: argparse.Namespace, curve: Path | None
) -> dict[str, Any]:
    from tqdm import tqdm

    from rankmap_ros.core.dataset import Dataset
    from rankmap_ros.core.estimator.checkpoint import save_checkpoint
    from rankmap_ros.core.estimator.network import NetConfig
    from rankmap_ros.core.estimator.pipeline import FitOptions, default_curve_path, fit, plot_curves
    from rankmap_ros.core.estimator.training import TrainConfig

    dataset = Dataset.load(dataset_path)
    config = TrainConfig(
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        patience=args.patience,
        seed=args.seed,
        shuffle_channels=not args.no_shuffle,
        max_minutes=args.max_minutes,
    )
    state_dir = _state_dir(out, args)
    bars: dict[str, Any] = {}

    def on_start(name: str, first: int, epochs: int) -> None:
        bars[name] = tqdm(total=epochs, initial=first, desc=f"training {name}", unit="epoch", file=sys.stderr)

    def on_epoch(name: str, epoch: int, train_loss: float, val_loss: float) -> None:
        bars[name].update(1)
        bars[name].set_postfix(train=f"{train_loss:.4f}", val=f"{val_loss:.4f}")

    def on_vq_step(step: int, steps: int, loss: float) -> None:
        if "vqvae" not in bars:
            bars["vqvae"] = tqdm(total=steps, desc="fitting the VQ-VAE", unit="step", file=sys.stderr)
        bars["vqvae"].update(1)
        if step % 50 == 0:
            bars["vqvae"].set_postfix(loss=f"{loss:.4f}")

    started = time.monotonic()
    try:
        checkpoint = fit(
            dataset,
            FitOptions(
                variants=variants,
                train=config,
                net=NetConfig(blocks=args.blocks, width_fraction=args.width_fraction),
                baseline_epochs=args.baseline_epochs,
                **({"vq_steps": args.vqvae_steps} if args.vqvae_steps else {}),
            ),
            state_dir=state_dir,
            log=lambda text: print(text, file=sys.stderr),
            on_epoch=on_epoch,
            on_start=on_start,
            on_vq_step=on_vq_step,
        )
    finally:
        for bar in bars.values():
            bar.close()
    save_checkpoint(checkpoint, out)
    curve = curve or default_curve_path(out)
    histories = {name: entry["history"] for name, entry in checkpoint["variants"].items()}
    plot_curves(histories, curve, f"estimator training, {checkpoint['platform']} (simulated labels)")
    return {
        "model": str(out),
        "curve": str(curve),
        "bytes": out.stat().st_size,
        "seconds": round(time.monotonic() - started, 1),
        "vqvae": checkpoint["vqvae"]["report"],
        "variants": {
            name: {
                "best_val_loss": entry["history"]["best_val"],
                "best_epoch": entry["history"]["best_epoch"] + 1,
                "epochs": len(entry["history"]["train_loss"]),
                "stopped": entry["history"]["stopped"],
                "minutes": round(entry["history"]["seconds"] / 60, 2),
            }
            for name, entry in checkpoint["variants"].items()
        },
    }


def _state_dir(out: Path, args: argparse.Namespace) -> Path:
    return Path(args.state_dir) if args.state_dir else out.with_name(out.stem + ".state")


def _drop_states(state_dir: Path, variants: tuple[str, ...]) -> None:
    """Once every output is written: until then a rerun resumes from the states in seconds
    instead of training every variant again."""
    from rankmap_ros.core.files import temp_files

    for name in variants:
        (state_dir / f"{name}.pt").unlink(missing_ok=True)
    (state_dir / "vqvae.pt").unlink(missing_ok=True)
    for left in temp_files(state_dir):  # of a write killed half way
        left.unlink(missing_ok=True)
    if state_dir.is_dir() and not any(state_dir.iterdir()):
        state_dir.rmdir()


def cmd_train(args: argparse.Namespace) -> None:
    _threads(args)
    out = Path(args.out)
    variants = _variants(args.variants)
    result = _train(Path(args.dataset), out, variants, args, Path(args.curve) if args.curve else None)
    _drop_states(_state_dir(out, args), variants)
    rows = [
        (name, f"{v['best_val_loss']:.4f}", v["best_epoch"], v["stopped"], v["minutes"])
        for name, v in result["variants"].items()
    ]
    text = table(rows, ("variant", "best val loss", "epoch", "stopped", "minutes"))
    emit(args, result, f"{text}\nwrote {out} ({result['bytes'] / 1e6:.2f} MB) and {result['curve']}")


def _evaluate(model: Path | None, platform: str, dataset_path: Path, timing: bool) -> dict[str, Any]:
    from rankmap_ros.core.dataset import Dataset
    from rankmap_ros.core.estimator.checkpoint import load_checkpoint, shipped_path
    from rankmap_ros.core.estimator.evaluation import accuracy, cost
    from rankmap_ros.core.estimator.predictor import LearnedEstimator
    from rankmap_ros.core.platform import load_platform

    plat = load_platform(platform)
    path = model or shipped_path(plat.name)
    checkpoint = load_checkpoint(path, plat)
    dataset = Dataset.load(dataset_path)
    dataset.check_compatible(plat.name)
    variants = {}
    for name in checkpoint["variants"]:
        estimator = LearnedEstimator(checkpoint, plat, name)
        variants[name] = {**accuracy(estimator, dataset), **cost(estimator, timing)}
    data: dict[str, Any] = {
        "model": str(path),
        "platform": plat.name,
        "simulated": checkpoint["label_source"] == "simulator",
        "dataset": {"path": str(dataset_path), "samples": len(dataset), "seed": dataset.meta.get("seed")},
        "vqvae": checkpoint["vqvae"]["report"],
        "variants": variants,
    }
    main = variants.get("rankmap") or next(iter(variants.values()))
    for key in ("l2", "mape", "spearman", "params", "macs", "us_per_mapping"):
        if key in main:
            data[key] = main[key]
    if "omniboost" in variants:
        data["baseline"] = variants["omniboost"]
    if "rankmap" in variants and "rankmap_raw" in variants:
        vq, raw = variants["rankmap"], variants["rankmap_raw"]
        data["vq_mac_saving"] = 1 - vq["macs"] / raw["macs"]
        data["vq_mape_cost_points"] = 100 * (vq["mape"] - raw["mape"])
    return data


def _eval_text(data: dict[str, Any]) -> str:
    rows = []
    for name, v in data["variants"].items():
        us = f"{v['us_per_mapping']:.1f}" if "us_per_mapping" in v else "-"
        rows.append(
            (
                name,
                f"{v['l2']:.4f}",
                f"{v['mape']:.1%}",
                f"{v['spearman']:.3f}",
                f"{v['params']:,}",
                f"{v['macs']:,}",
                us,
            )
        )
    text = table(rows, ("variant", "L2", "MAPE", "Spearman", "params", "MACs", "us/mapping"))
    lines = [text, f"(simulated {data['platform']} labels; {data['dataset']['samples']} test samples)"]
    if "vq_mac_saving" in data:
        lines.append(
            f"VQ-VAE: {data['vq_mac_saving']:.1%} fewer MACs than raw 22-dim input, "
            f"MAPE {data['vq_mape_cost_points']:+.2f} points"
        )
    return "\n".join(lines)


def cmd_estimator_eval(args: argparse.Namespace) -> None:
    _threads(args)
    data = _evaluate(Path(args.model) if args.model else None, args.platform, Path(args.dataset), not args.no_timing)
    emit(args, data, _eval_text(data))


def cmd_estimator_build(args: argparse.Namespace) -> None:
    from rankmap_ros.core.estimator.checkpoint import shipped_path
    from rankmap_ros.core.files import write_text_atomic
    from rankmap_ros.core.platform import builtin_platforms

    variants = _variants(args.variants)
    if args.platform not in builtin_platforms() and not args.out:
        raise CliError("--out is needed with a platform file: the package ships checkpoints for built-in platforms")
    _threads(args)
    name = Path(args.platform).stem  # for file names: a built-in platform's name, a file's stem
    work = Path(args.workdir)
    out = Path(args.out) if args.out else shipped_path(args.platform)
    train_path = work / f"{name}-train-{args.samples}-seed{args.seed}.npz"
    test_path = work / f"{name}-test-{args.test_samples}-seed{args.seed + 1}.npz"
    _generate(args.platform, args.samples, train_path, args.seed, 1, 4, reuse=True)
    _generate(args.platform, args.test_samples, test_path, args.seed + 1, args.mappings_per_workload, 4, reuse=True)
    trained = _train(train_path, out, variants, args, work / f"{name}-curve.png")
    data = _evaluate(out, args.platform, test_path, timing=True)
    data["training"] = trained
    write_text_atomic(work / f"{name}-eval.json", json.dumps(data, indent=2, sort_keys=True))
    _drop_states(_state_dir(out, args), variants)
    emit(args, data, _eval_text(data) + f"\nwrote {out}, {work / (name + '-eval.json')} and the training curve")


def cmd_bench_estimator(args: argparse.Namespace) -> None:
    import torch

    from rankmap_ros.core.estimator.evaluation import BENCH_WORKLOAD, cost
    from rankmap_ros.core.estimator.predictor import LearnedEstimator

    try:
        counts = [int(t) for t in args.threads.split(",")]
    except ValueError:
        counts = []
    if not counts or any(not 1 <= t <= MAX_THREADS for t in counts):
        raise CliError(f"--threads must be integers from 1 to {MAX_THREADS}, got {args.threads!r}")
    before = torch.get_num_threads()
    results: dict[str, list[dict[str, Any]]] = {}
    try:
        for variant in _variants(args.variants):
            estimator = LearnedEstimator.load(Path(args.model) if args.model else None, args.platform, variant)
            results[variant] = []
            for threads in counts:
                torch.set_num_threads(threads)
                results[variant].append(cost(estimator))
    finally:
        torch.set_num_threads(before)
    data = {
        "platform": args.platform,
        "workload": list(BENCH_WORKLOAD),
        "mappings": 4096,
        "target_us_per_mapping": 100,
        "variants": results,
    }
    rows = [
        (name, r["threads"], f"{r['us_per_mapping']:.1f}", f"{r['macs']:,}", f"{r['params']:,}")
        for name, runs in results.items()
        for r in runs
    ]
    emit(args, data, table(rows, ("variant", "threads", "us/mapping", "MACs", "params")))


def _training_options(
    p: argparse.ArgumentParser,
    variants: str,
    epochs: int = 60,
    batch_size: int = 128,
    lr: float = 2e-3,
    baseline_epochs: int | None = None,
) -> None:
    p.add_argument("--variants", default=variants, help="comma-separated: rankmap, rankmap_raw, omniboost")
    p.add_argument("--epochs", type=integer(1), default=epochs)
    p.add_argument(
        "--baseline-epochs", type=integer(1), default=baseline_epochs, help="OmniBoost baseline (default: --epochs)"
    )
    p.add_argument("--batch-size", type=integer(1), default=batch_size)
    p.add_argument("--lr", type=POSITIVE, default=lr)
    p.add_argument(
        "--patience", type=integer(1), default=10, help="epochs without a better validation loss before stopping"
    )
    p.add_argument("--seed", type=SEED, default=0)
    p.add_argument("--no-shuffle", action="store_true", help="no channel-shuffle augmentation")
    p.add_argument("--blocks", type=integer(1), default=2, help="residual blocks of the RankMap network (paper: 3)")
    p.add_argument("--width-fraction", type=POSITIVE, default=2 / 3, help="feature width / Q row width")
    p.add_argument(
        "--vqvae-steps",
        type=integer(1),
        help="optimiser steps of the unit VQ-VAE (default 1500; a quick trial: fewer)",
    )
    p.add_argument("--max-minutes", type=POSITIVE, help="stop a variant's training after this long")
    p.add_argument("--state-dir", help="where an interrupted run keeps its state (default: beside --out)")
    p.add_argument("--threads", type=integer(1, MAX_THREADS), help="torch threads (default: torch's choice)")


def register(sub: Any, experiments: Any) -> None:
    del experiments
    dataset = command_group(sub, "dataset", "throughput datasets for the estimator")
    p = add_command(
        dataset, "generate", cmd_dataset_generate, "random workloads and mappings labelled by the simulator"
    )
    p.add_argument("--platform", default="orange_pi_5")
    p.add_argument("--samples", type=integer(1), required=True)
    p.add_argument("--out", required=True, help=".npz file (resumes from FILE.partial.npz if present)")
    p.set_defaults(resume_hint="Run the same command again to go on from OUT.partial.npz.")
    p.add_argument("--seed", type=SEED, default=0)
    p.add_argument(
        "--mappings-per-workload", type=integer(1), default=1, help="random mappings per workload (test sets: 40)"
    )
    p.add_argument("--max-stages", type=integer(1), default=4, help="most stages a DNN is cut into")

    p = add_command(sub, "train", cmd_train, "train the throughput estimator (and baselines) on a dataset")
    p.add_argument("--dataset", required=True)
    p.add_argument("--out", required=True, help="checkpoint file (.pt)")
    p.add_argument("--curve", help="training-curve PNG (default: OUT's name + -curve.png)")
    p.set_defaults(resume_hint="Run the same command again to go on from its state directory (--state-dir).")
    _training_options(p, "rankmap")

    estimator = command_group(sub, "estimator", "the learned throughput estimator")
    p = add_command(estimator, "eval", cmd_estimator_eval, "accuracy and cost of a checkpoint on a test dataset")
    p.add_argument("--model", help="checkpoint (default: the one shipped for --platform)")
    p.add_argument("--platform", default="orange_pi_5")
    p.add_argument("--dataset", required=True)
    p.add_argument("--no-timing", action="store_true", help="skip the microseconds-per-mapping measurement")
    p.add_argument("--threads", type=integer(1, MAX_THREADS))
    p = add_command(estimator, "build", cmd_estimator_build, "generate data, train, evaluate: the shipped checkpoint")
    p.add_argument("--platform", default="orange_pi_5")
    p.add_argument("--samples", type=integer(1), default=50_000)
    p.add_argument("--test-samples", type=integer(1), default=2_000)
    p.add_argument("--mappings-per-workload", type=integer(1), default=40, help="of the test set")
    p.add_argument("--workdir", default=BUILD_DIR, help="datasets, curve and evaluation JSON")
    p.add_argument("--out", help="checkpoint (default: the package's shipped one for --platform)")
    p.add_argument("--curve", help=argparse.SUPPRESS)
    p.set_defaults(
        resume_hint="Run the same command again: it keeps the finished datasets and training goes on from its state."
    )
    # The shipped checkpoint's recipe: 5x the paper's samples, fewer epochs (docs/ESTIMATOR.md).
    _training_options(p, "rankmap,rankmap_raw,omniboost", epochs=20, batch_size=256, lr=3e-3, baseline_epochs=60)

    bench = command_group(sub, "bench", "benchmarks")
    p = add_command(bench, "estimator", cmd_bench_estimator, "microseconds per mapping of batched prediction")
    p.add_argument("--model", help="checkpoint (default: the one shipped for --platform)")
    p.add_argument("--platform", default="orange_pi_5")
    p.add_argument("--variants", default="rankmap,omniboost")
    p.add_argument("--threads", default="1,2", help="comma-separated torch thread counts to time (default 1,2)")
