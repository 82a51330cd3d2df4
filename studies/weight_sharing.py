"""Weight sharing: a NAS study whose candidates are scored with one shared SPOS supernet.

Searches the chain (macro) space on the bundled digits data for networks that are accurate
(validation accuracy, up) and small (parameters, down), like ``studies/quickstart.py``, but no
candidate is trained: a supernet holding every candidate's weights is trained once per study
(single-path one-shot, Guo et al., ECCV 2020: one uniformly drawn path per batch), stored in
the study's artifact folder and recorded in the study, and each trial copies its path's
weights out of it, recalibrates batch norm on a few training batches and measures validation
accuracy (:class:`~optuna_nas.evaluation.WeightSharingEvaluator`). Scores are a proxy: they
rank candidates roughly as standalone training would (``benchmarks/RESULTS.md``, "Weight
sharing (SPOS)"); retrain the front's architectures before trusting their accuracy.

Only one worker trains the supernet: it holds a claim on the job with a heartbeat every
``--heartbeat`` seconds, and every other worker waits and downloads the result. If it dies
(``kill -9``, a lost node), a rerun or another worker takes the training over -- at once on the
same host, after two missed heartbeats elsewhere -- and a trial it left running is failed by
its heartbeat and retried. Rerunning the same command continues the study up to ``--trials``
finished trials without training the supernet again; several workers share one PostgreSQL,
MySQL or Redis URL (one device each; every worker must reach ``--artifact-dir``).

How long: the supernet's 10 epochs took about 70 s on 2 CPU cores shared with other jobs, then
a trial about 1 s. How good: on these 8x8 digits the chain supernet learns little in 10 epochs
(a 12-trial run scored 0.04-0.16 validation accuracy, where standalone training reaches
0.82-0.99), so the ranking is a weak proxy here; ``benchmarks/RESULTS.md`` ("Weight sharing
(SPOS)") measures it, and larger data with more supernet epochs do better.

    python studies/weight_sharing.py --trials 100
    python studies/weight_sharing.py --trials 200 --storage postgresql+psycopg2://user:pw@db/nas
"""

from __future__ import annotations

import argparse
from pathlib import Path
import time
import warnings

import optuna
from optuna.artifacts import FileSystemArtifactStore

from optuna_nas.data import load_digits
from optuna_nas.evaluation import TrainingConfig
from optuna_nas.evaluation import WeightSharingEvaluator
from optuna_nas.objective import NASObjective
from optuna_nas.report import ProgressBar
from optuna_nas.report import default_artifact_dir
from optuna_nas.report import report
from optuna_nas.spaces import ChainSpace
from optuna_nas.storage import count_finished
from optuna_nas.storage import mask_url
from optuna_nas.storage import open_storage
from optuna_nas.storage import run_study

DEFAULT_STORAGE = "sqlite:///weight_sharing.db"  # in the working directory


def main(argv: list[str] | None = None) -> optuna.Study:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=100, help="total finished trials wanted")
    parser.add_argument(
        "--supernet-epochs", type=int, default=10, help="training epochs of the supernet"
    )
    parser.add_argument("--storage", default=DEFAULT_STORAGE, help="storage URL")
    parser.add_argument("--study-name", default="weight_sharing")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--heartbeat",
        type=int,
        default=60,
        help="seconds between heartbeats of a trial and of the supernet's trainer",
    )
    parser.add_argument("--device", default="cpu", help="this worker's device, e.g. cuda:0")
    parser.add_argument("--timeout", type=float, default=None, help="seconds for this run")
    parser.add_argument(
        "--artifact-dir",
        default=None,
        help="supernet and diagrams (default: X.artifacts beside a sqlite:///X.db storage)",
    )
    args = parser.parse_args(argv)
    artifact_dir = Path(args.artifact_dir or default_artifact_dir(args.storage))
    artifact_dir.mkdir(parents=True, exist_ok=True)
    store = FileSystemArtifactStore(str(artifact_dir))

    data = load_digits(seed=args.seed)
    space = ChainSpace(input_shape=data.input_shape, num_outputs=data.num_classes)
    evaluator = WeightSharingEvaluator(
        data,
        space=space,
        artifact_store=store,
        # Adam at 0.003: on the chain space SGD at 0.05 left the supernet's loss near chance
        # (benchmarks/RESULTS.md, "Weight sharing (SPOS)").
        training=TrainingConfig(epochs=args.supernet_epochs, optimizer="adam", lr=0.003),
        batch_size=64,
        seed=args.seed,
        device=args.device,
        claim_heartbeat_s=args.heartbeat,
    )
    objective = NASObjective(
        space,
        evaluator,
        objectives=("val_accuracy", "params"),
        seed=args.seed,
        device=args.device,
        artifact_store=store,  # each trial's diagram; the inherited weights are not saved
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
    # Seeded with the number of trials already stored, so that a resumed run does not replay
    # the first run's random start-up suggestions (every replay would be a duplicate).
    study.sampler = optuna.samplers.TPESampler(seed=args.seed + len(study.trials))

    start = time.perf_counter()
    # The first trial of the study (of any worker) trains the supernet or waits for it.
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
    if evaluator.artifact_id is not None:  # None when this run had no trial left to run
        how = (
            f"trained here ({evaluator.training_steps_run} steps)"
            if evaluator.training_steps_run
            else "downloaded from the study"
        )
        print(f"Supernet: artifact {evaluator.artifact_id}, {how}\n")
    print(report(study).to_text())
    shown = mask_url(args.storage)
    print(f"\nView it:  optuna-nas dashboard --storage {shown} --artifact-dir {artifact_dir}")
    print(f"Resume:   python studies/weight_sharing.py --storage {shown} --trials <more>")
    return study


if __name__ == "__main__":
    main()
