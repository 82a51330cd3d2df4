"""CIFAR-10 cells: a GPU-sized cell search on real CIFAR-10, read from a local folder.

What it shows: the NAS-Bench-201 cell space (``CellSpace.nasbench201``: ReLU-Conv-BN, pooling,
skip and zero edges in a 4-node cell, stacked in 3 stages) searched with TPE (or any
``create_sampler`` name) for validation accuracy (up) and FLOPs (down), every candidate trained
from scratch on CIFAR-10 (45,000 training images, 5,000 held out for validation, the official
10,000 test images left for the final model), on the GPU. Each trial gets its diagram and note
for optuna-dashboard.

The data: the CIFAR-10 "python version" (Krizhevsky, 2009), i.e. the folder
``cifar-10-batches-py`` with the pickled ``data_batch_1`` .. ``data_batch_5`` and ``test_batch``
from https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz, read by
:func:`optuna_nas.data.load_cifar10` into memory, with the standard augmentation (random crop
after 4-pixel padding, horizontal flip) applied batch-wise on the device; ``--no-augment`` turns
it off. Nothing is downloaded: the study refuses with a message when the folder is absent.
The device is yours to name (``--device cuda:0``, default ``cuda``; ``--device cpu`` runs on
the CPU).

How long: an estimate, not measured here (no GPU on the machine this was written on): with the
defaults (2 cells per stage, 10 epochs, batch 256) about 1-3 minutes per trial on one modern
GPU, so 20 trials take roughly 30-60 minutes. On a CPU (``--device cpu``) it is hours; use
``--subset`` to train on fewer images.

    python studies/cifar10_cells.py --data-dir ~/data/cifar-10-batches-py --device cuda:0
    optuna-nas run studies/cifar10_cells.py --trials 20 --timeout 3600 -- --data-dir DATA

Resume: rerun the same command (``--trials`` counts finished trials in total). View it:

    optuna-nas report --storage sqlite:///cifar10_cells.db --study cifar10_cells --out rep/
    optuna-nas dashboard --storage sqlite:///cifar10_cells.db
"""

from __future__ import annotations

import argparse
from pathlib import Path
import warnings

import optuna
from optuna.artifacts import FileSystemArtifactStore
import torch

from optuna_nas.data import LoaderSettings
from optuna_nas.data import load_cifar10
from optuna_nas.evaluation import FullTraining
from optuna_nas.evaluation import TrainingConfig
from optuna_nas.objective import NASObjective
from optuna_nas.report import ProgressBar
from optuna_nas.report import default_artifact_dir
from optuna_nas.report import report
from optuna_nas.samplers import SAMPLER_NAMES
from optuna_nas.samplers import create_sampler
from optuna_nas.spaces import CellSpace
from optuna_nas.storage import count_finished
from optuna_nas.storage import mask_url
from optuna_nas.storage import open_storage
from optuna_nas.storage import run_study


def main(argv: list[str] | None = None) -> optuna.Study:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=Path("data/cifar-10-batches-py"))
    parser.add_argument("--device", default="cuda", help="e.g. cuda:0 or cpu; never guessed")
    parser.add_argument("--trials", type=int, default=20, help="total finished trials wanted")
    parser.add_argument("--timeout", type=float, default=None, help="seconds for this run")
    parser.add_argument("--epochs", type=int, default=10, help="training epochs per trial")
    parser.add_argument("--cells-per-stage", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--val-size", type=int, default=5000)
    parser.add_argument("--subset", type=int, default=None, help="training images to use")
    parser.add_argument("--no-augment", action="store_true", help="no random crop and flip")
    parser.add_argument("--sampler", choices=SAMPLER_NAMES, default="tpe")
    parser.add_argument("--storage", default="sqlite:///cifar10_cells.db")
    parser.add_argument("--study-name", default="cifar10_cells")
    parser.add_argument("--artifact-dir", default=None, help="default: next to the database")
    parser.add_argument("--heartbeat", type=int, default=60, help="seconds between heartbeats")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    if torch.device(args.device).type == "cuda" and not torch.cuda.is_available():
        raise SystemExit(
            f"cifar10_cells: --device {args.device} names a CUDA GPU, but none is available "
            "here; this study is GPU-sized (about an hour for 20 trials on one GPU). Pass "
            "--device cpu to run it on the CPU anyway (hours; --subset, --epochs and "
            "--cells-per-stage make it smaller)."
        )
    try:
        data = load_cifar10(
            args.data_dir,
            seed=args.seed,
            val_size=args.val_size,
            subset=args.subset,
            augment=not args.no_augment,
            loader=LoaderSettings(batch_size=args.batch_size),
        )
    except (FileNotFoundError, ValueError) as e:
        raise SystemExit(f"cifar10_cells: {e}") from None
    space = CellSpace.nasbench201(cells_per_stage=args.cells_per_stage)
    training = TrainingConfig(epochs=args.epochs, lr=0.1, nesterov=True, schedule="cosine")
    evaluator = FullTraining(data, training=training, device=args.device)
    artifacts = Path(args.artifact_dir or default_artifact_dir(args.storage))
    artifacts.mkdir(parents=True, exist_ok=True)
    objective = NASObjective(
        space,
        evaluator,
        objectives=("val_accuracy", "flops"),
        seed=args.seed,
        device=args.device,
        artifact_store=FileSystemArtifactStore(str(artifacts)),
        save_weights=True,
    )
    study = optuna.create_study(
        storage=open_storage(args.storage, heartbeat_interval=args.heartbeat),
        study_name=args.study_name,
        directions=objective.directions,
        load_if_exists=True,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names(list(objective.objectives))
    study.sampler = create_sampler(args.sampler, seed=args.seed + len(study.trials))
    missing = max(0, args.trials - count_finished(study))
    with ProgressBar(study, n_trials=missing, timeout=args.timeout) as bar:
        run_study(
            study,
            objective,
            n_trials=args.trials,
            catch=(RuntimeError, ValueError),
            timeout=args.timeout,
            callbacks=[bar],
        )
    print(report(study).to_text())
    shown = mask_url(args.storage)
    print(f"\nView it:  optuna-nas dashboard --storage {shown} --artifact-dir {artifacts}")
    return study


if __name__ == "__main__":
    main()
