"""CIFAR-10 cells: a GPU-sized cell search on real CIFAR-10, read from a local folder.

What it shows: the NAS-Bench-201 cell space (``CellSpace.nasbench201``: ReLU-Conv-BN, pooling,
skip and zero edges in a 4-node cell, stacked in 3 stages) searched with TPE (or any
``create_sampler`` name) for validation accuracy (up) and FLOPs (down), every candidate trained
from scratch on CIFAR-10 (45,000 training images, 5,000 held out for validation, the official
10,000 test images left for the final model), on the GPU. Each trial gets its diagram and note
for optuna-dashboard.

The data: the CIFAR-10 "python version" (Krizhevsky, 2009), i.e. the folder
``cifar-10-batches-py`` with the pickled ``data_batch_1`` .. ``data_batch_5`` and ``test_batch``
from https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz. Nothing is downloaded: the study
refuses with a message when the folder is absent, and when no CUDA GPU is there unless
``--cpu`` is given.

How long: an estimate, not measured here (no GPU on the machine this was written on): with the
defaults (2 cells per stage, 10 epochs, batch 256) about 1-3 minutes per trial on one modern
GPU, so 20 trials take roughly 30-60 minutes. On a CPU (``--cpu``) it is hours; use
``--subset`` to train on fewer images.

    python studies/cifar10_cells.py --data-dir ~/data/cifar-10-batches-py --trials 20
    optuna-nas run studies/cifar10_cells.py --trials 20 --timeout 3600 -- --data-dir DATA

Resume: rerun the same command (``--trials`` counts finished trials in total). View it:

    optuna-nas report --storage sqlite:///cifar10_cells.db --study cifar10_cells --out rep/
    optuna-nas dashboard --storage sqlite:///cifar10_cells.db
"""

from __future__ import annotations

import argparse
from pathlib import Path
import pickle
import warnings

import numpy as np
import optuna
from optuna.artifacts import FileSystemArtifactStore
from optuna.trial import TrialState
import torch
from torch.utils.data import TensorDataset

from optuna_nas.data import DataSplits
from optuna_nas.evaluation import FullTraining
from optuna_nas.evaluation import TrainingConfig
from optuna_nas.objective import NASObjective
from optuna_nas.report import ProgressBar
from optuna_nas.report import attach_architecture
from optuna_nas.report import default_artifact_dir
from optuna_nas.report import report
from optuna_nas.report import stored_spec
from optuna_nas.samplers import SAMPLER_NAMES
from optuna_nas.samplers import create_sampler
from optuna_nas.spaces import CellSpace

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
BATCHES = [f"data_batch_{i}" for i in range(1, 6)]


def _read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with path.open("rb") as f:
        batch = pickle.load(f, encoding="bytes")
    images = np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
    return images, np.asarray(batch[b"labels"], dtype=np.int64)


def cifar10_folder(data_dir: Path) -> Path:
    """The folder holding the batches: ``data_dir`` or its ``cifar-10-batches-py``."""
    for folder in (data_dir, data_dir / "cifar-10-batches-py"):
        if all((folder / name).is_file() for name in [*BATCHES, "test_batch"]):
            return folder
    raise SystemExit(
        f"cifar10_cells: no CIFAR-10 in {str(data_dir)!r}: expected the python version's "
        "data_batch_1..data_batch_5 and test_batch there or in its cifar-10-batches-py/ "
        "(https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz); pass --data-dir."
    )


def load_cifar10(folder: Path, *, seed: int, val_size: int, subset: int | None) -> DataSplits:
    """Train/validation split of the 50,000 training images (seeded), the official test set,
    normalised per channel with training statistics; ``subset`` keeps that many training images.
    """
    parts = [_read_batch(folder / name) for name in BATCHES]
    images = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    test_x, test_y = _read_batch(folder / "test_batch")
    if not 0 < val_size < len(images):
        raise SystemExit(
            f"cifar10_cells: --val-size must be in (0, {len(images)}), got {val_size}."
        )
    order = np.random.default_rng(seed).permutation(len(images))
    val_idx, train_idx = order[:val_size], order[val_size:]
    if subset is not None:
        train_idx = train_idx[:subset]
    x = torch.from_numpy(images).float() / 255.0
    mean = x[train_idx].mean(dim=(0, 2, 3), keepdim=True)
    std = x[train_idx].std(dim=(0, 2, 3), keepdim=True)

    def norm(t: torch.Tensor) -> torch.Tensor:
        return ((t - mean) / std).contiguous()

    y = torch.from_numpy(labels)
    test = TensorDataset(norm(torch.from_numpy(test_x).float() / 255.0), torch.from_numpy(test_y))
    return DataSplits(
        train=TensorDataset(norm(x[train_idx]), y[train_idx]),
        val=TensorDataset(norm(x[val_idx]), y[val_idx]),
        test=test,
        input_shape=(3, 32, 32),
        num_classes=10,
        name="cifar10",
    )


def main(argv: list[str] | None = None) -> optuna.Study:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=Path("data/cifar-10-batches-py"))
    parser.add_argument("--cpu", action="store_true", help="run on the CPU when no GPU is there")
    parser.add_argument("--trials", type=int, default=20, help="total finished trials wanted")
    parser.add_argument("--timeout", type=float, default=None, help="seconds for this run")
    parser.add_argument("--epochs", type=int, default=10, help="training epochs per trial")
    parser.add_argument("--cells-per-stage", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--val-size", type=int, default=5000)
    parser.add_argument("--subset", type=int, default=None, help="training images to use")
    parser.add_argument("--sampler", choices=SAMPLER_NAMES, default="tpe")
    parser.add_argument("--storage", default="sqlite:///cifar10_cells.db")
    parser.add_argument("--study-name", default="cifar10_cells")
    parser.add_argument("--artifact-dir", default=None, help="default: next to the database")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    folder = cifar10_folder(args.data_dir)
    if torch.cuda.is_available():
        device = "cuda"
    elif args.cpu:
        device = "cpu"
    else:
        raise SystemExit(
            "cifar10_cells: no CUDA GPU is available, and this study is GPU-sized (about an hour "
            "for 20 trials on one GPU); pass --cpu to run it on the CPU anyway (hours; "
            "--subset, --epochs and --cells-per-stage make it smaller)."
        )
    data = load_cifar10(folder, seed=args.seed, val_size=args.val_size, subset=args.subset)
    space = CellSpace.nasbench201(cells_per_stage=args.cells_per_stage)
    training = TrainingConfig(epochs=args.epochs, lr=0.1, nesterov=True, schedule="cosine")
    evaluator = FullTraining(data, training=training, batch_size=args.batch_size, device=device)
    nas = NASObjective(
        space, evaluator, objectives=("val_accuracy", "flops"), seed=args.seed, device=device
    )
    artifacts = Path(args.artifact_dir or default_artifact_dir(args.storage))
    artifacts.mkdir(parents=True, exist_ok=True)
    store = FileSystemArtifactStore(str(artifacts))

    def objective(trial: optuna.Trial) -> float | tuple[float, ...]:
        values = nas(trial)
        spec = stored_spec(trial)
        if spec is not None:
            attach_architecture(trial, spec, artifact_store=store)
        return values

    study = optuna.create_study(
        storage=args.storage,
        study_name=args.study_name,
        directions=nas.directions,
        load_if_exists=True,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names(list(nas.objectives))
    study.set_user_attr("data", "cifar10")
    study.sampler = create_sampler(args.sampler, seed=args.seed + len(study.trials))
    missing = max(0, args.trials - len(study.get_trials(deepcopy=False, states=FINISHED)))
    with ProgressBar(study, n_trials=missing, timeout=args.timeout) as bar:
        study.optimize(
            objective,
            n_trials=missing,
            timeout=args.timeout,
            catch=(RuntimeError, ValueError),
            callbacks=[bar, optuna.study.MaxTrialsCallback(args.trials, states=FINISHED)],
        )
    print(report(study).to_text())
    print(f"\nView it:  optuna-nas dashboard --storage {args.storage} --artifact-dir {artifacts}")
    return study


if __name__ == "__main__":
    main()
