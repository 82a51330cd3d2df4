"""The helpers over private Optuna symbols behave as the public calls they stand in for."""

from __future__ import annotations

from pathlib import Path

import optuna
from optuna.storages import RDBStorage
from optuna.trial import TrialState
import pytest

from optuna_nas._compat import set_trial_user_attrs
from optuna_nas._compat import started_system_attrs
from optuna_nas.storage import open_storage
from tests.storage.backends import ALL_BACKENDS
from tests.storage.backends import cleanup
from tests.storage.backends import make_url
from tests.storage.backends import new_name

ATTRS = {"spec": '{"nodes": []}', "canonical_hash": "ab" * 32, "params": 1234, "flops": 5678}


@pytest.mark.parametrize("kind", [*ALL_BACKENDS, "sqlite-bare", "in-memory"])
def test_set_trial_user_attrs_equals_one_set_user_attr_per_key(kind: str, tmp_path: Path) -> None:
    # sqlite, postgresql: one multi-row upsert; mysql: Optuna's upsert per key, one commit;
    # journal, redis, in-memory: set_user_attr per key. "sqlite" goes through Optuna's cache.
    url = None if kind == "in-memory" else make_url(kind.removesuffix("-bare"), tmp_path)
    storage: optuna.storages.BaseStorage | None = None  # Optuna caches an RDB opened by URL
    if kind == "sqlite-bare":
        storage = RDBStorage(str(url))
    elif kind in ("journal", "redis"):
        storage = open_storage(str(url), heartbeat_interval=None)
    study_names: list[str] = []
    name = new_name(study_names)
    try:
        study = optuna.create_study(storage=storage or url, study_name=name)
        batched, single = study.ask(), study.ask()
        single.set_user_attr("params", 1)  # overwritten by the batch, as set_user_attr would
        batched.set_user_attr("params", 1)
        set_trial_user_attrs(batched, ATTRS)
        for key, value in ATTRS.items():
            single.set_user_attr(key, value)
        assert batched.user_attrs == single.user_attrs == ATTRS  # the trial sees them at once
        study.tell(batched, 1.0)
        study.tell(single, 2.0)
        if url is not None:  # a fresh storage object: what another process reads
            fresh = open_storage(url, heartbeat_interval=None)
            study = optuna.load_study(study_name=name, storage=fresh)
        first, second = study.trials
        assert first.user_attrs == second.user_attrs == ATTRS
    finally:
        if url is not None:
            cleanup(url, study_names)


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
