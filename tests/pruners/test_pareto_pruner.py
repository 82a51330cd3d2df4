"""ParetoPruner and report_and_prune: early stopping in multi-objective studies."""

from __future__ import annotations

from collections.abc import Iterator
import io
import json
from pathlib import Path
from typing import Any
from wsgiref.util import setup_testing_defaults

import optuna
from optuna.trial import TrialState
from optuna_dashboard import wsgi
import pytest
import torch

from optuna_nas.data import load_digits
from optuna_nas.evaluation import FullTraining
from optuna_nas.evaluation import TrainingConfig
from optuna_nas.metrics import count_params
from optuna_nas.pruners import ParetoPruner
from optuna_nas.pruners import report_and_prune
from optuna_nas.spaces import ChainSpace

OBJECTIVES = ("val_accuracy", "params")


def mo_study(pruner: optuna.pruners.BasePruner, storage: str | None = None) -> optuna.Study:
    study = optuna.create_study(
        directions=["maximize", "minimize"], pruner=pruner, storage=storage
    )
    study.add_trial(
        optuna.trial.create_trial(
            values=[0.9, 100.0],
            user_attrs={"params": 100},
            intermediate_values={1: 0.5, 2: 0.8, 3: 0.9},
        )
    )
    return study


def run(study: optuna.Study, params: int, curve: list[float]) -> bool:
    trial = study.ask()
    trial.set_user_attr("params", params)
    return any([report_and_prune(trial, step, v) for step, v in enumerate(curve, start=1)])


def test_dominated_trial_is_pruned_and_others_are_not() -> None:
    study = mo_study(ParetoPruner(objectives=OBJECTIVES))
    assert run(study, 200, [0.4, 0.7])  # costlier and less accurate at step 2
    assert not run(study, 50, [0.4, 0.7])  # cheaper: may still be Pareto-optimal
    assert not run(study, 200, [0.6, 0.85])  # more accurate at every step


def test_margin_warmup_and_min_dominating() -> None:
    assert not run(mo_study(ParetoPruner(objectives=OBJECTIVES, margin=0.2)), 200, [0.4, 0.7])
    assert not run(
        mo_study(ParetoPruner(objectives=OBJECTIVES, n_warmup_steps=3)), 200, [0.4, 0.7]
    )
    assert not run(
        mo_study(ParetoPruner(objectives=OBJECTIVES, min_dominating=2)), 200, [0.4, 0.7]
    )


def test_missing_costs_and_mismatched_objectives_raise() -> None:
    study = mo_study(ParetoPruner(objectives=OBJECTIVES))
    trial = study.ask()
    with pytest.raises(ValueError, match="user attr 'params'"):
        report_and_prune(trial, 2, 0.5)
    three = mo_study(ParetoPruner(objectives=("val_accuracy", "params", "flops")))
    with pytest.raises(ValueError, match="directions"):
        run(three, 200, [0.4])
    with pytest.raises(ValueError, match="evolving"):
        ParetoPruner(objectives=("params", "flops"))


def test_other_pruners_record_the_curve_but_never_stop_multi_objective_trials() -> None:
    study = mo_study(optuna.pruners.MedianPruner(n_warmup_steps=0, n_startup_trials=0))
    trial = study.ask()
    assert not report_and_prune(trial, 1, 0.1)
    assert study._storage.get_trial(trial._trial_id).intermediate_values == {1: 0.1}


def test_single_objective_studies_use_trial_report() -> None:
    study = optuna.create_study(pruner=optuna.pruners.ThresholdPruner(lower=0.5))
    trial = study.ask()
    assert report_and_prune(trial, 0, 0.2)
    assert trial.study.trials[-1].intermediate_values == {0: 0.2}


@pytest.fixture
def one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_real_multi_objective_study_prunes_and_the_dashboard_serves_the_curve(
    one_thread: None, tmp_path: Path
) -> None:
    data = load_digits(seed=0)
    space = ChainSpace(
        input_shape=data.input_shape,
        num_outputs=data.num_classes,
        max_depth=2,
        widths=(16,),
        stride_layers=(),
    )
    arch = {"depth": 2, "activation": "relu", "layer1/op": "conv_3x3", "layer1/width": 16}
    arch |= {
        "layer1/skip": "none",
        "layer2/op": "conv_3x3",
        "layer2/width": 16,
        "layer2/skip": "none",
    }

    def objective(trial: optuna.Trial) -> tuple[float, float]:
        spec = space.suggest(trial)
        lr = trial.suggest_categorical("lr", [0.05, 1e-5])  # the same network, trained badly
        params = count_params(spec)
        trial.set_user_attr("params", params)
        evaluator = FullTraining(data, training=TrainingConfig(epochs=4, lr=lr))
        result = evaluator.evaluate(
            spec, report=lambda s, a: report_and_prune(trial, s, a), seed=0
        )
        if result.stopped_early:
            raise optuna.TrialPruned()
        return result.values["val_accuracy"], float(params)

    storage = f"sqlite:///{tmp_path / 'mo.db'}"
    study = optuna.create_study(
        directions=["maximize", "minimize"],
        pruner=ParetoPruner(objectives=OBJECTIVES, n_warmup_steps=2),
        storage=storage,
    )
    study.enqueue_trial({**arch, "lr": 0.05})
    study.enqueue_trial({**arch, "lr": 1e-5})
    study.optimize(objective, n_trials=2)
    good, bad = study.trials
    assert good.state is TrialState.COMPLETE and len(good.intermediate_values) == 4
    assert bad.state is TrialState.PRUNED and bad.values is None
    assert sorted(bad.intermediate_values) == [1, 2]  # stopped at the first step allowed

    detail = _get_json(wsgi(storage), f"/api/studies/{study._study_id}")
    served = {t["number"]: t for t in detail["trials"]}[1]
    assert served["state"] == "Pruned"
    assert [v["step"] for v in served["intermediate_values"]] == [1, 2]


def _get_json(app: Any, path: str) -> Any:
    environ: dict[str, Any] = {"PATH_INFO": path, "REQUEST_METHOD": "GET"}
    setup_testing_defaults(environ)
    status: list[str] = []

    def start_response(s: str, headers: Any, *exc: Any) -> Any:
        status.append(s)
        return io.BytesIO().write

    body = b"".join(app(environ, start_response))
    assert status[0].startswith("200"), status
    return json.loads(body)
