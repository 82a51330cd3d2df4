"""Two CPU-measurable targets of the training path: bf16 accuracy and checkpoint overhead.

1. **bf16 against fp32.** One chain network trained ``--epochs`` on MNIST-5k in fp32 and with
   bf16 autocast (``TrainingConfig(precision="bf16")``), seeds 0 and 1 (the same initial
   weights and batches per seed): final validation and test accuracy. Target: within 0.5
   points.
2. **Checkpoint overhead.** The same training with a per-epoch checkpoint (the objective's
   :class:`~optuna_nas._checkpoint.TrialCheckpoint` of a trial in a SQLite study, written to a
   ``FileSystemArtifactStore``), its saves and a resume's load timed inside the run, against
   the run's own seconds per epoch (``--repeats`` runs). Target: at most 5% of an epoch.

    python benchmarks/training_checks.py [--smoke]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
import statistics
import sys
import tempfile
import time
from typing import Any

import optuna
from optuna.artifacts import FileSystemArtifactStore
import torch

from optuna_nas._checkpoint import TrialCheckpoint
from optuna_nas.data import DataSplits
from optuna_nas.data import load_digits
from optuna_nas.data import load_mnist_5k
from optuna_nas.data import make_loader
from optuna_nas.evaluation import TrainingConfig
from optuna_nas.evaluation import check_device
from optuna_nas.evaluation import evaluate_accuracy
from optuna_nas.evaluation import isolated_rng
from optuna_nas.evaluation import train_model
from optuna_nas.nn import build_model
from optuna_nas.spaces import ChainSpace

ROOT = Path(__file__).resolve().parents[1]
CPU = torch.device("cpu")
sys.path.insert(0, str(ROOT / "benchmarks"))
from _results import machine  # noqa: E402
from data_loading import ARCH  # noqa: E402  (the same network as the data benchmark)


def _model(data: DataSplits, seed: int) -> torch.nn.Module:
    space = ChainSpace(input_shape=data.input_shape, num_outputs=data.num_classes)
    params: dict[str, Any] = dict(ARCH)
    for name, dist in space.distributions().items():
        params.setdefault(name, getattr(dist, "choices", (getattr(dist, "low", 0),))[0])
    with isolated_rng(seed):
        return build_model(space.decode(params))


def _train(
    data: DataSplits,
    seed: int,
    config: TrainingConfig,
    checkpoint: Any = None,
    device: torch.device = CPU,
) -> tuple[torch.nn.Module, Any]:
    model = _model(data, seed)
    result = train_model(
        model,
        make_loader(data, "train", seed=seed, device=device),
        make_loader(data, "val", device=device),
        config=config,
        device=device,
        seed=seed,
        checkpoint=checkpoint,
    )
    return model, result


def precision(
    data: DataSplits, epochs: int, seeds: list[int], device: torch.device = CPU
) -> list[dict[str, Any]]:
    rows = []
    for seed in seeds:
        for name in ("fp32", "bf16"):
            config = TrainingConfig(epochs=epochs, precision=name)
            model, result = _train(data, seed, config, device=device)
            test = evaluate_accuracy(
                model,
                make_loader(data, "test", device=device),
                device=device,
                precision=name,
            )
            rows.append(
                {
                    "precision": name,
                    "seed": seed,
                    "val_accuracy": result.final_val_accuracy,
                    "test_accuracy": test,
                    "seconds_per_epoch": statistics.median(result.epoch_seconds_history),
                }
            )
    return rows


class Timed:
    """A checkpoint that times its own save and load calls."""

    def __init__(self, inner: TrialCheckpoint) -> None:
        self.inner = inner
        self.saves: list[float] = []
        self.loads: list[float] = []

    def load(self) -> Any:
        start = time.perf_counter()
        try:
            return self.inner.load()
        finally:
            self.loads.append(time.perf_counter() - start)

    def save(self, epoch: int, state: dict[str, Any]) -> None:
        start = time.perf_counter()
        self.inner.save(epoch, state)
        self.saves.append(time.perf_counter() - start)


def checkpoint_overhead(data: DataSplits, epochs: int, repeats: int) -> dict[str, Any]:
    """Seconds spent saving (and loading) checkpoints against the same run's epoch seconds.

    Timed inside the run, so other jobs on the machine slow both alike; a resumed run's one
    load is timed by a second run that starts from the first one's last checkpoint."""
    config = TrainingConfig(epochs=epochs)
    saves: list[float] = []
    loads: list[float] = []
    epoch_seconds: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        study = optuna.create_study(storage=f"sqlite:///{tmp}/c.db")
        store = FileSystemArtifactStore(tmp)
        for _ in range(repeats):
            trial = study.ask()
            timed = Timed(TrialCheckpoint(trial, store))
            _, result = _train(data, 0, config, timed)
            epoch_seconds.append(result.train_seconds / result.epochs_run)
            saves += timed.saves
            resumed = Timed(TrialCheckpoint(trial, store))  # loads epoch epochs-1, runs one
            _train(data, 0, config, resumed)
            loads.append(resumed.loads[0])
            resumed.inner.discard()
            study.tell(trial, 0.0)
    epoch = statistics.median(epoch_seconds)
    save, load = statistics.median(saves), statistics.median(loads)
    return {
        "epochs": epochs,
        "repeats": repeats,
        "seconds_per_epoch": epoch,
        "save_seconds": save,
        "load_seconds": load,
        "overhead_fraction": save / epoch,
    }


def section(result: dict[str, Any]) -> str:
    m = result["machine"]
    on_gpu = result.get("device", "cpu") != "cpu"
    where = f"{m.get('gpu')} ({result['device']})" if on_gpu else m["processor"] or m["platform"]
    command = "python benchmarks/training_checks.py" + (
        f" --device {result['device']} --seeds {len(result['precision']) // 2} --no-checkpoint"
        if on_gpu
        else ""
    )
    lines = [
        "## Training path: bf16 accuracy"
        + (f" on the GPU ({m.get('gpu')})" if on_gpu else " and checkpoint overhead"),
        "",
        f"`{command}` on {result['data']}, the data benchmark's chain network, "
        f"{result['epochs']} epochs, {where}, torch {m['torch']}, {m['threads']} thread(s).",
        "",
        "| precision | seed | val accuracy | test accuracy | s/epoch |",
        "|---|---|---|---|---|",
    ]
    for r in result["precision"]:
        lines.append(
            f"| {r['precision']} | {r['seed']} | {r['val_accuracy']:.4f} | "
            f"{r['test_accuracy']:.4f} | {r['seconds_per_epoch']:.2f} |"
        )
    gaps = precision_gaps(result["precision"])
    lines += [
        "",
        f"bf16 minus fp32, in points, per seed: val {gaps['val']}, test {gaps['test']}; "
        f"mean val {gaps['mean_val']:+.2f}, mean test {gaps['mean_test']:+.2f} "
        "(target: within 0.5).",
    ]
    c = result.get("checkpoint")
    if c is not None:
        lines += [
            "",
            f"Per-epoch checkpoint of a trial in a SQLite study into a FileSystemArtifactStore, "
            f"timed inside {c['repeats']} runs of {c['epochs']} epochs: a save takes "
            f"{c['save_seconds'] * 1000:.1f} ms (median), a resume's load "
            f"{c['load_seconds'] * 1000:.1f} ms, an epoch {c['seconds_per_epoch']:.2f} s: "
            f"**{c['overhead_fraction']:.2%} of an epoch** per save (target: at most 5%).",
        ]
    return "\n".join(lines)


def precision_gaps(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """bf16 minus fp32 accuracy per seed, in points, and their means."""
    by = {(r["precision"], r["seed"]): r for r in rows}
    seeds = sorted({r["seed"] for r in rows})
    val = [100 * (by["bf16", s]["val_accuracy"] - by["fp32", s]["val_accuracy"]) for s in seeds]
    test = [100 * (by["bf16", s]["test_accuracy"] - by["fp32", s]["test_accuracy"]) for s in seeds]
    return {
        "val": ", ".join(f"{g:+.1f}" for g in val),
        "test": ", ".join(f"{g:+.1f}" for g in test),
        "mean_val": statistics.mean(val),
        "mean_test": statistics.mean(test),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="digits, 1 epoch, 1 seed")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seeds", type=int, default=2, help="seeds 0 .. N-1 (default 2)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument("--no-checkpoint", action="store_true", help="bf16 accuracy only")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args(argv)
    device = check_device(args.device)
    data = load_digits() if args.smoke else load_mnist_5k()
    epochs = 1 if args.smoke else args.epochs
    seeds = [0] if args.smoke else list(range(args.seeds))
    result: dict[str, Any] = {
        "data": data.name,
        "epochs": epochs,
        "device": str(device),
        "precision": precision(data, epochs, seeds, device),
        "machine": machine(
            **({"gpu": torch.cuda.get_device_name(device)} if device.type == "cuda" else {})
        ),
    }
    if not args.no_checkpoint:
        result["checkpoint"] = checkpoint_overhead(
            data, 2 if args.smoke else 5, 1 if args.smoke else args.repeats
        )
    if not args.smoke:
        name = "training_checks" if device.type == "cpu" else "training_checks_gpu"
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / f"{name}.json").write_text(json.dumps(result, indent=1) + "\n")
        from _results import regenerate

        regenerate(args.out)
    print(section(result))
    return result


if __name__ == "__main__":
    main()
