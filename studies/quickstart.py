"""Quickstart: a real multi-objective NAS study on the bundled digits data, stored in SQLite.

Searches the chain (macro) space for small CNNs that are accurate (validation accuracy, up)
and small (parameters, down), with Optuna's default sampler (TPE), training every candidate
for a few epochs. Rerunning the same command continues the study up to ``--trials`` finished
trials; ``optuna-dashboard <storage>`` shows it. By default the study lives in
``quickstart.db`` in the working directory; start the same command several times against one
PostgreSQL, MySQL or Redis URL to run it with several workers (one device each).

    python studies/quickstart.py --trials 20
    python studies/quickstart.py --trials 40 --storage postgresql+psycopg2://user:pw@db/nas
"""

from __future__ import annotations

import argparse
from pathlib import Path
import time
import warnings

import optuna
from optuna.artifacts import FileSystemArtifactStore

from optuna_nas.data import load_digits
from optuna_nas.evaluation import FullTraining
from optuna_nas.evaluation import TrainingConfig
from optuna_nas.objective import NASObjective
from optuna_nas.report import ProgressBar
from optuna_nas.report import default_artifact_dir
from optuna_nas.report import report
from optuna_nas.spaces import ChainSpace
from optuna_nas.storage import count_finished
from optuna_nas.storage import mask_url
from optuna_nas.storage import open_storage
from optuna_nas.storage import run_study

DEFAULT_STORAGE = "sqlite:///quickstart.db"  # in the working directory


def main(argv: list[str] | None = None) -> optuna.Study:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=20, help="total finished trials wanted")
    parser.add_argument("--epochs", type=int, default=6, help="training epochs per trial")
    parser.add_argument("--storage", default=DEFAULT_STORAGE, help="storage URL")
    parser.add_argument("--study-name", default="quickstart")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--heartbeat", type=int, default=60, help="seconds between heartbeats of a trial"
    )
    parser.add_argument("--device", default="cpu", help="this worker's device, e.g. cuda:0")
    parser.add_argument("--timeout", type=float, default=None, help="seconds for this run")
    parser.add_argument(
        "--artifact-dir",
        default=None,
        help="diagrams and weights (default: X.artifacts beside a sqlite:///X.db storage)",
    )
    args = parser.parse_args(argv)
    artifact_dir = Path(args.artifact_dir or default_artifact_dir(args.storage))
    artifact_dir.mkdir(parents=True, exist_ok=True)

    data = load_digits(seed=args.seed)
    space = ChainSpace(input_shape=data.input_shape, num_outputs=data.num_classes)
    evaluator = FullTraining(
        data, training=TrainingConfig(epochs=args.epochs), batch_size=64, device=args.device
    )
    objective = NASObjective(
        space,
        evaluator,
        objectives=("val_accuracy", "params"),
        seed=args.seed,
        device=args.device,
        artifact_store=FileSystemArtifactStore(str(artifact_dir)),
        save_weights=True,
    )
    study = optuna.create_study(
        storage=open_storage(args.storage, heartbeat_interval=args.heartbeat),
        study_name=args.study_name,
        directions=objective.directions,
        load_if_exists=True,
    )
    with warnings.catch_warnings():  # experimental since Optuna 3.2, and what the dashboard shows
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names(list(objective.objectives))
    # TPE is Optuna's default sampler; seeding it with the number of trials already stored
    # keeps a resumed run from replaying the first run's random start-up suggestions.
    study.sampler = optuna.samplers.TPESampler(seed=args.seed + len(study.trials))

    start = time.perf_counter()
    # Runs only the trials still missing to reach --trials finished ones, however many
    # workers share the study and whether or not an earlier run was killed.
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
    seconds = time.perf_counter() - start

    print(f"\n{count_finished(study)} finished trials ({seconds:.0f} s this run)\n")
    print(report(study).to_text())
    shown = mask_url(args.storage)
    print(f"\nView it:  optuna-nas dashboard --storage {shown} --artifact-dir {artifact_dir}")
    print(f"   (or plain: optuna-dashboard {shown} --artifact-dir {artifact_dir})")
    print(f"Resume:   python studies/quickstart.py --storage {shown} --trials <more>")
    return study


if __name__ == "__main__":
    main()
