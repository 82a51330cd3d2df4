"""A torch-free study worker for the storage fault tests (run as a script, one per process).

Each trial draws an "architecture" from ``--choices`` values, goes through the same
deduplication protocol as :class:`~optuna_nas.objective.NASObjective`
(:func:`~optuna_nas.storage.find_or_claim` / :func:`~optuna_nas.storage.copy_duplicate`), and
if it owns the architecture "trains" it: it appends ``<trial number> <hash>`` to ``--log``
(``O_APPEND``, one write per line, so concurrent workers never interleave) and sleeps
``--sleep`` seconds. The log is an account of evaluations independent of the study.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import optuna

from optuna_nas.storage import copy_duplicate
from optuna_nas.storage import find_or_claim
from optuna_nas.storage import open_storage
from optuna_nas.storage import run_study


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--storage", required=True)
    parser.add_argument("--study", required=True)
    parser.add_argument("--trials", type=int, required=True)
    parser.add_argument("--choices", type=int, required=True)
    parser.add_argument("--sleep", type=float, required=True)
    parser.add_argument("--log", required=True)
    parser.add_argument("--heartbeat", type=int, default=1)
    parser.add_argument("--grace", type=int, default=2)
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    storage = open_storage(
        args.storage, heartbeat_interval=args.heartbeat, grace_period=args.grace
    )
    study = optuna.create_study(
        storage=storage,
        study_name=args.study,
        direction="maximize",
        load_if_exists=True,
        sampler=optuna.samplers.RandomSampler(),
    )
    ran: list[int] = []

    def objective(trial: optuna.Trial) -> float:
        ran.append(trial.number)
        arch = trial.suggest_categorical("arch", list(range(args.choices)))
        source = find_or_claim(trial, f"arch-{arch}", poll_interval=0.05)
        if source is not None:
            value = copy_duplicate(trial, source)
            assert isinstance(value, float)
            return value
        fd = os.open(args.log, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        try:
            os.write(fd, f"{trial.number} arch-{arch} {os.getpid()}\n".encode())
        finally:
            os.close(fd)
        time.sleep(args.sleep)
        return float(arch) + 0.5

    run_study(study, objective, n_trials=args.trials, poll_interval=0.1)
    print(json.dumps({"pid": os.getpid(), "ran": ran}))


if __name__ == "__main__":
    main()
