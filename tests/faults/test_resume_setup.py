"""Resuming a study with another space, other objectives or another evaluator gives one error
listing the differences and the way out, before any trial (issue #14, item 4)."""

from __future__ import annotations

from pathlib import Path
import uuid

import optuna
import pytest

from optuna_nas._failures import SetupError
from optuna_nas._study_setup import SETUP_ATTR
from optuna_nas.data import load_digits
from optuna_nas.evaluation import Evaluation
from optuna_nas.evaluation import Evaluator
from optuna_nas.evaluation import Report
from optuna_nas.objective import NASObjective
from optuna_nas.spaces import CellSpace
from optuna_nas.spaces import ChainSpace
from optuna_nas.spaces import SearchSpace
from optuna_nas.spec import ArchitectureSpec
from optuna_nas.storage import run_study
from tests.storage.backends import cleanup
from tests.storage.backends import make_url

DATA = load_digits()


class _Constant(Evaluator):
    data = DATA

    def evaluate(self, spec: ArchitectureSpec, *, report: Report | None, seed: int) -> Evaluation:
        return Evaluation(values={"val_accuracy": 0.5})


class _OtherConstant(_Constant):
    pass


def _chain(**kwargs: object) -> ChainSpace:
    return ChainSpace(input_shape=DATA.input_shape, num_outputs=10, **kwargs)  # type: ignore[arg-type]


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    url = make_url(request.param, tmp_path)
    yield url  # type: ignore[misc]
    cleanup(url, [NAME])


NAME = f"setup-{uuid.uuid4().hex[:8]}"


def _run(
    url: str,
    space: SearchSpace,
    objectives: tuple[str, ...],
    n: int,
    evaluator: Evaluator | None = None,
    **kwargs: object,
) -> optuna.Study:
    objective = NASObjective(space, evaluator or _Constant(), objectives=objectives, **kwargs)  # type: ignore[arg-type]
    study = optuna.create_study(
        storage=url, study_name=NAME, directions=objective.directions, load_if_exists=True
    )
    run_study(study, objective, n_trials=n, catch=(ValueError,))
    return study


PAIR = ("val_accuracy", "params")
CHANGES = [
    (
        _chain(widths=(8, 16)),
        PAIR,
        None,
        "'layer1/width': choices [16, 32, 64] -> choices [8, 16]",
    ),
    (_chain(stem_channels=8), PAIR, None, "space options: the same parameters now build other"),
    (CellSpace(input_shape=(1, 8, 8), num_outputs=10), PAIR, None, "space type: 'ChainSpace' ->"),
    (_chain(), ("val_accuracy", "flops"), None, "objectives: ['val_accuracy', 'params'] -> ['v"),
    (_chain(), PAIR, _OtherConstant(), "evaluator: _Constant -> _OtherConstant"),
]


@pytest.mark.parametrize(("space", "objectives", "evaluator", "expected"), CHANGES)
def test_a_changed_setup_is_refused_before_any_trial(
    url: str,
    space: SearchSpace,
    objectives: tuple[str, ...],
    evaluator: Evaluator | None,
    expected: str,
) -> None:
    _run(url, _chain(), ("val_accuracy", "params"), 2)
    with pytest.raises(SetupError, match="was made with another set-up") as caught:
        _run(url, space, objectives, 3, evaluator)
    message = str(caught.value)
    assert expected in message, message
    assert "another --study-name" in message and "allow_setup_change=True" in message
    study = optuna.load_study(study_name=NAME, storage=url)
    assert len(study.trials) == 2  # nothing ran, nothing stored was touched
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)


def test_the_same_setup_resumes_and_an_explicit_override_records_the_new_one(url: str) -> None:
    _run(url, _chain(), ("val_accuracy", "params"), 2)
    assert len(_run(url, _chain(), ("val_accuracy", "params"), 3).trials) == 3
    study = _run(url, _chain(), ("val_accuracy", "flops"), 4, allow_setup_change=True)
    assert len(study.trials) == 4
    stored = study._storage.get_study_system_attrs(study._study_id)[SETUP_ATTR]
    assert stored["objectives"] == ["val_accuracy", "flops"]
    assert study.metric_names == ["val_accuracy", "flops"]


def test_an_older_study_is_checked_against_its_metric_names(url: str) -> None:
    study = optuna.create_study(storage=url, study_name=NAME, directions=["maximize", "minimize"])
    study.set_metric_names(["val_accuracy", "params"])  # what the study scripts always did
    with pytest.raises(SetupError, match=r"objectives: \['val_accuracy', 'params'\] -> "):
        _run(url, _chain(), ("val_accuracy", "flops"), 1)


def test_plain_study_optimize_checks_on_the_first_trial(url: str) -> None:
    _run(url, _chain(), ("val_accuracy", "params"), 1)
    objective = NASObjective(CellSpace(input_shape=(1, 8, 8), num_outputs=10), _Constant())
    study = optuna.load_study(study_name=NAME, storage=url)
    with pytest.raises(SetupError, match="space type"):
        study.optimize(objective, n_trials=1)
