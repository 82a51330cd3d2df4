"""Your own images: a NAS study on any ImageFolder tree, any built-in space, any device.

The data is a folder of class folders, ``DATA/<class>/<image>`` (PNG, JPEG, ...), split per
class into train / validation / test with ``--seed``; or a folder holding ready-made
``train/``, ``val/`` (and optionally ``test/``) trees of that form, used as they are. Images are
resized to ``--image-size``, normalised with the training images' per-channel statistics and,
for training, randomly cropped (after padding by an eighth of their size) and mirrored
(``--no-augment`` turns that off; switch it off for data that is not mirror-symmetric, such as
text). ``--in-memory`` decodes every image once into tensors: much faster per epoch for sets
that fit in memory (batches are sliced on the device, augmentation runs batch-wise there).

Every candidate of the chosen space (``chain``, ``cell`` or ``mobile``) is trained from scratch
for ``--epochs`` and scored on validation accuracy (up) and parameters (down); the study lives
in ``--storage`` (SQLite by default) and resumes when the same command is run again
(``--trials`` counts finished trials in total). Nothing picks the device: ``--device cuda:0``
(or ``cpu``, the default).

    python studies/imagefolder.py --data-dir ~/data/flowers --image-size 64 --trials 30 \\
        --device cuda:0 --in-memory
    optuna-nas export --storage sqlite:///imagefolder.db --study imagefolder --best \\
        --retrain 30 --out winner/
"""

from __future__ import annotations

import argparse
from pathlib import Path
import warnings

import optuna
from optuna.artifacts import FileSystemArtifactStore

from optuna_nas.data import LoaderSettings
from optuna_nas.data import load_image_folder
from optuna_nas.evaluation import FullTraining
from optuna_nas.evaluation import TrainingConfig
from optuna_nas.objective import NASObjective
from optuna_nas.report import ProgressBar
from optuna_nas.report import default_artifact_dir
from optuna_nas.report import report
from optuna_nas.samplers import SAMPLER_NAMES
from optuna_nas.samplers import create_sampler
from optuna_nas.spaces import CellSpace
from optuna_nas.spaces import ChainSpace
from optuna_nas.spaces import MobileSpace
from optuna_nas.spaces import SearchSpace
from optuna_nas.storage import count_finished
from optuna_nas.storage import mask_url
from optuna_nas.storage import open_storage
from optuna_nas.storage import run_study

SPACES = {"chain": ChainSpace, "cell": CellSpace, "mobile": MobileSpace}


def main(argv: list[str] | None = None) -> optuna.Study:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, required=True, help="the image folder")
    parser.add_argument("--image-size", type=int, default=32, help="images are resized to this")
    parser.add_argument("--grayscale", action="store_true", help="convert to one channel")
    parser.add_argument("--no-augment", action="store_true", help="no random crop and flip")
    parser.add_argument("--in-memory", action="store_true", help="decode all images once")
    parser.add_argument("--val-fraction", type=float, default=0.1)
    parser.add_argument("--test-fraction", type=float, default=0.1)
    parser.add_argument("--workers", type=int, default=0, help="DataLoader worker processes")
    parser.add_argument("--space", choices=sorted(SPACES), default="chain")
    parser.add_argument("--sampler", choices=SAMPLER_NAMES, default="tpe")
    parser.add_argument("--trials", type=int, default=20, help="total finished trials wanted")
    parser.add_argument("--epochs", type=int, default=10, help="training epochs per trial")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--device", default="cpu", help="e.g. cuda:0; never chosen for you")
    parser.add_argument("--storage", default="sqlite:///imagefolder.db")
    parser.add_argument("--study-name", default="imagefolder")
    parser.add_argument("--artifact-dir", default=None, help="default: next to the database")
    parser.add_argument("--heartbeat", type=int, default=60, help="seconds between heartbeats")
    parser.add_argument("--timeout", type=float, default=None, help="seconds for this run")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    try:
        data = load_image_folder(
            args.data_dir,
            image_size=args.image_size,
            seed=args.seed,
            val_fraction=args.val_fraction,
            test_fraction=args.test_fraction,
            grayscale=args.grayscale,
            augment=not args.no_augment,
            in_memory=args.in_memory,
            loader=LoaderSettings(batch_size=args.batch_size, num_workers=args.workers),
        )
    except (FileNotFoundError, ImportError, ValueError) as e:
        raise SystemExit(f"imagefolder: {e}") from None
    print(f"data: {data}")
    space: SearchSpace = SPACES[args.space](
        input_shape=data.input_shape, num_outputs=data.num_classes
    )
    artifacts = Path(args.artifact_dir or default_artifact_dir(args.storage))
    artifacts.mkdir(parents=True, exist_ok=True)
    evaluator = FullTraining(
        data, training=TrainingConfig(epochs=args.epochs, lr=args.lr), device=args.device
    )
    objective = NASObjective(
        space,
        evaluator,
        objectives=("val_accuracy", "params"),
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
