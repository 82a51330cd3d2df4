"""Mobile latency: accurate networks that are fast on this CPU, under a hard latency limit.

What it shows: the mobile space (MobileNetV2/MnasNet-style MBConv stages: kernel, expansion,
depth, squeeze-excitation) searched by NSGA-II (Deb et al., IEEE TEC 2002) for two objectives,
validation accuracy (up) and the median CPU forward latency of the trained network (down),
measured with ``optuna_nas.metrics.measure_latency`` at batch size 1. A candidate whose latency
on a freshly built copy exceeds ``--max-latency-ms`` is rejected before any training: the
violation is recorded with Optuna 5's ``trial.set_constraint`` (``NASObjective`` with
``optuna_nas.constraints.Constraints``) and the trial completes as infeasible with its measured
latency, so NSGA-II learns the feasible region and the trial never reaches the front (as
MnasNet, Tan et al. CVPR 2019, treats a hard latency target). Every trial gets its
architecture diagram and a note for optuna-dashboard.

Data: the bundled digits (8x8 grey images, 10 classes), or ``--data mnist_5k``.

The limit: latency belongs to the machine, so no fixed limit suits every CPU. On the 2-core
machine this was written on, the 30 trials' latencies ranged over 0.65-2.6 ms (median 1.15 ms)
on an idle machine, so the default ``--max-latency-ms 1.2`` rejects a large share of the
candidates (about 40% of that run's; more when other jobs load the machine, since latency is
measured while the study runs) and the front shows what the limit costs in accuracy. The run
ends with a line saying how many trials the limit rejected; when it rejected none, it suggests
a lower limit (the median latency measured) to rerun with under a new ``--study-name``.

How long: 117 s for 30 trials of 4 epochs on 2 idle CPU cores with ``--max-latency-ms 2``
(which rejected 2 trials); less with the default limit, since a rejected trial is not trained
(40 s when it rejected 25 of 30). Latency is measured up to twice per trial; other jobs on the
cores slow the run and inflate the latencies (2-9 minutes, 23-27 of 30 rejected, measured
while a 2-core machine ran 4-8 other jobs).

    python studies/mobile_latency.py --trials 30
    optuna-nas run studies/mobile_latency.py --trials 30 --timeout 600 -- --max-latency-ms 1.2

Resume: rerun the same command; the study (``--storage``/``--study-name``) continues up to
``--trials`` finished trials. View it:

    optuna-nas report --storage sqlite:///mobile_latency.db --study mobile_latency --out rep/
    optuna-nas dashboard --storage sqlite:///mobile_latency.db
    optuna-nas export --storage sqlite:///mobile_latency.db --study mobile_latency --best \\
        --objective val_accuracy --max-latency-ms 1.0 --retrain 20 --out winner/
"""

from __future__ import annotations

import argparse
from pathlib import Path
import statistics
import warnings

import optuna
from optuna.artifacts import FileSystemArtifactStore
from optuna.trial import TrialState

from optuna_nas.constraints import Constraints
from optuna_nas.data import load_digits
from optuna_nas.data import load_mnist_5k
from optuna_nas.evaluation import FullTraining
from optuna_nas.evaluation import TrainingConfig
from optuna_nas.objective import NASObjective
from optuna_nas.report import ProgressBar
from optuna_nas.report import default_artifact_dir
from optuna_nas.report import is_feasible
from optuna_nas.report import report
from optuna_nas.spaces import MobileSpace

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
DATA = {"digits": load_digits, "mnist_5k": load_mnist_5k}


def what_the_limit_did(study: optuna.Study, limit_ms: float) -> str:
    """One line on how many complete trials the latency limit rejected; when it rejected none,
    the median latency measured, as a limit that would reject about half of them.
    """
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    latencies = [
        float(t.user_attrs["latency_ms"]) for t in complete if "latency_ms" in t.user_attrs
    ]
    if not latencies:
        return f"The latency limit {limit_ms:g} ms has no complete trial to judge yet."
    rejected = sum(not is_feasible(t) for t in complete)
    spread = f"latencies {min(latencies):.2f}-{max(latencies):.2f} ms on this machine"
    if rejected:
        return (
            f"The latency limit {limit_ms:g} ms rejected {rejected} of {len(complete)} trials "
            f"({spread}); they are counted as infeasible and left out of the front."
        )
    return (
        f"The latency limit {limit_ms:g} ms rejected no trial ({spread}), so the constraint did "
        f"nothing here; to see it at work, rerun with a new --study-name and a lower limit, e.g. "
        f"--max-latency-ms {statistics.median(latencies):.2g} (the median latency)."
    )


def main(argv: list[str] | None = None) -> optuna.Study:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=30, help="total finished trials wanted")
    parser.add_argument("--timeout", type=float, default=None, help="seconds for this run")
    parser.add_argument("--epochs", type=int, default=4, help="training epochs per trial")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument(
        "--max-latency-ms", type=float, default=1.2, help="the latency limit on this machine"
    )
    parser.add_argument("--data", choices=sorted(DATA), default="digits")
    parser.add_argument("--population", type=int, default=10, help="NSGA-II population size")
    parser.add_argument("--storage", default="sqlite:///mobile_latency.db")
    parser.add_argument("--study-name", default="mobile_latency")
    parser.add_argument("--artifact-dir", default=None, help="default: next to the database")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--device", default="cpu", help="where candidates train (latency is always the CPU's)"
    )
    args = parser.parse_args(argv)

    data = DATA[args.data](seed=args.seed)
    space = MobileSpace(input_shape=data.input_shape, num_outputs=data.num_classes)
    evaluator = FullTraining(
        data,
        training=TrainingConfig(epochs=args.epochs),
        batch_size=args.batch_size,
        device=args.device,
    )
    folder = args.artifact_dir or default_artifact_dir(args.storage)
    Path(folder).mkdir(parents=True, exist_ok=True)
    nas = NASObjective(
        space,
        evaluator,
        objectives=("val_accuracy", "latency_ms"),
        seed=args.seed,
        device="cpu",
        constraints=Constraints(max_latency_ms=args.max_latency_ms, latency_device="cpu"),
        artifact_store=FileSystemArtifactStore(str(folder)),
    )

    study = optuna.create_study(
        storage=args.storage,
        study_name=args.study_name,
        directions=nas.directions,
        load_if_exists=True,
    )
    with warnings.catch_warnings():  # experimental in Optuna, and what the dashboard shows
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names(list(nas.objectives))
    study.set_user_attr("data", args.data)
    study.set_user_attr("max_latency_ms", args.max_latency_ms)
    study.sampler = optuna.samplers.NSGAIISampler(
        population_size=args.population, seed=args.seed + len(study.trials)
    )
    missing = max(0, args.trials - len(study.get_trials(deepcopy=False, states=FINISHED)))
    with ProgressBar(study, n_trials=missing, timeout=args.timeout) as bar:
        study.optimize(
            nas,
            n_trials=missing,
            timeout=args.timeout,
            catch=(RuntimeError, ValueError),
            callbacks=[bar, optuna.study.MaxTrialsCallback(args.trials, states=FINISHED)],
        )
    print(report(study).to_text())
    print(f"\n{what_the_limit_did(study, args.max_latency_ms)}")
    print(f"View it:  optuna-nas dashboard --storage {args.storage} --artifact-dir {folder}")
    print(f"Resume:   python studies/mobile_latency.py --storage {args.storage} --trials <more>")
    return study


if __name__ == "__main__":
    main()
