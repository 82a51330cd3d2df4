"""The helpers over private Optuna symbols behave as the public calls they stand in for."""

from __future__ import annotations

from pathlib import Path

import optuna
from optuna.storages import RDBStorage
from optuna.storages.journal import JournalFileBackend
from optuna.storages.journal import JournalStorage
from optuna.trial import TrialState
import pytest

from optuna_nas._compat import set_trial_user_attrs
from optuna_nas._compat import started_system_attrs

ATTRS = {"spec": '{"nodes": []}', "canonical_hash": "ab" * 32, "params": 1234, "flops": 5678}


def _storages(tmp_path: Path) -> dict[str, optuna.storages.BaseStorage | str]:
    return {
        "sqlite-cached": f"sqlite:///{tmp_path / 'cached.db'}",  # Optuna wraps it in its cache
        "sqlite-bare": RDBStorage(f"sqlite:///{tmp_path / 'bare.db'}"),
        "journal": JournalStorage(JournalFileBackend(str(tmp_path / "j.log"))),
        "in-memory": optuna.storages.InMemoryStorage(),
    }


@pytest.mark.parametrize("kind", ["sqlite-cached", "sqlite-bare", "journal", "in-memory"])
def test_set_trial_user_attrs_equals_one_set_user_attr_per_key(kind: str, tmp_path: Path) -> None:
    storage = _storages(tmp_path)[kind]
    study = optuna.create_study(storage=storage)
    batched, single = study.ask(), study.ask()
    single.set_user_attr("params", 1)  # overwritten by the batch, as set_user_attr would
    batched.set_user_attr("params", 1)
    set_trial_user_attrs(batched, ATTRS)
    for key, value in ATTRS.items():
        single.set_user_attr(key, value)
    assert batched.user_attrs == single.user_attrs == ATTRS  # the trial sees them at once
    study.tell(batched, 1.0)
    study.tell(single, 2.0)
    if isinstance(storage, str):
        study = optuna.load_study(study_name=study.study_name, storage=storage)
    first, second = study.trials
    assert first.user_attrs == second.user_attrs == ATTRS


def test_set_trial_user_attrs_on_a_finished_trial_writes_nothing(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'done.db'}"
    study = optuna.create_study(storage=url)
    trial = study.ask()
    study.tell(trial, 1.0)
    with pytest.raises(optuna.exceptions.UpdateFinishedTrialError):
        set_trial_user_attrs(trial, ATTRS)
    (stored,) = optuna.load_study(study_name=study.study_name, storage=url).trials
    assert stored.state is TrialState.COMPLETE
    assert stored.user_attrs == {}


def test_started_system_attrs_are_those_of_the_retry_template(tmp_path: Path) -> None:
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 'r.db'}")
    study.add_trial(
        optuna.trial.create_trial(state=TrialState.WAITING, system_attrs={"failed_trial": 7})
    )
    retry, fresh = study.ask(), study.ask()
    assert started_system_attrs(retry)["failed_trial"] == 7
    assert "failed_trial" not in started_system_attrs(fresh)


def test_set_trial_user_attrs_on_an_rdb_writes_all_or_none(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'atomic.db'}"
    study = optuna.create_study(storage=url)
    trial = study.ask()
    with pytest.raises(TypeError, match="JSON serializable"):
        set_trial_user_attrs(trial, {**ATTRS, "unstorable": object()})
    assert trial.user_attrs == {}
    study.tell(trial, 1.0)
    (stored,) = optuna.load_study(study_name=study.study_name, storage=url).trials
    assert stored.user_attrs == {}  # the keys before the bad one were rolled back too
