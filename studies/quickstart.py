"""Quickstart: a real multi-objective NAS study on the bundled digits data, stored in SQLite.

Searches the chain (macro) space for small CNNs that are accurate (validation accuracy, up)
and small (parameters, down), with Optuna's default sampler (TPE), training every candidate
for a few epochs. Rerunning the same command continues the study up to ``--trials`` finished
trials; ``optuna-dashboard <storage>`` shows it.

    python studies/quickstart.py --trials 20 --storage sqlite:///quickstart.db
"""

from __future__ import annotations

import argparse
import time
import warnings

import optuna
from optuna.trial import TrialState

from optuna_nas.data import load_digits
from optuna_nas.evaluation import FullTraining
from optuna_nas.evaluation import TrainingConfig
from optuna_nas.objective import NASObjective
from optuna_nas.report import pareto_table
from optuna_nas.spaces import ChainSpace

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


def main(argv: list[str] | None = None) -> optuna.Study:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=20, help="total finished trials wanted")
    parser.add_argument("--epochs", type=int, default=6, help="training epochs per trial")
    parser.add_argument("--storage", default="sqlite:///quickstart.db")
    parser.add_argument("--study-name", default="quickstart")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    data = load_digits(seed=args.seed)
    space = ChainSpace(input_shape=data.input_shape, num_outputs=data.num_classes)
    evaluator = FullTraining(data, training=TrainingConfig(epochs=args.epochs), batch_size=64)
    objective = NASObjective(
        space, evaluator, objectives=("val_accuracy", "params"), seed=args.seed
    )
    study = optuna.create_study(
        storage=args.storage,
        study_name=args.study_name,
        directions=objective.directions,
        load_if_exists=True,
    )
    with warnings.catch_warnings():  # experimental since Optuna 3.2, and what the dashboard shows
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names(list(objective.objectives))
    finished = len(study.get_trials(deepcopy=False, states=FINISHED))
    # TPE is Optuna's default sampler; seeding it with the number of trials already stored
    # keeps a resumed run from replaying the first run's random start-up suggestions.
    study.sampler = optuna.samplers.TPESampler(seed=args.seed + len(study.trials))

    start = time.perf_counter()
    study.optimize(
        objective,
        n_trials=max(0, args.trials - finished),
        catch=(RuntimeError, ValueError),
        callbacks=[optuna.study.MaxTrialsCallback(args.trials, states=FINISHED)],
    )
    seconds = time.perf_counter() - start

    print(f"\n{len(study.get_trials(states=FINISHED))} finished trials ({seconds:.0f} s this run)")
    print("Pareto front (validation accuracy up, parameters down):\n")
    print(pareto_table(study))
    print(f"\nView it:  optuna-dashboard {args.storage}")
    print(f"Resume:   python studies/quickstart.py --storage {args.storage} --trials <more>")
    return study


if __name__ == "__main__":
    main()
