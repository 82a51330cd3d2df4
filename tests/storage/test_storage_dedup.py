"""The deduplication protocol under a real race: threads that each open their own storage
connection and claim the same architecture at the same instant (a barrier), on every storage.
The database (or Redis, or the journal's lock file) arbitrates: no shared Python object is
involved except for the in-memory storage, which is one process by definition."""

from __future__ import annotations

from pathlib import Path
import threading

import optuna
from optuna.trial import TrialState
import pytest

from optuna_nas.storage import DUPLICATE_OF
from optuna_nas.storage import copy_duplicate
from optuna_nas.storage import find_or_claim
from optuna_nas.storage import open_storage
from tests.storage.backends import ALL_BACKENDS
from tests.storage.backends import cleanup
from tests.storage.backends import make_url
from tests.storage.backends import new_name

THREADS = 5


def _race(url: str | None, study_name: str, *, fail_first_owner: bool) -> list[dict[str, object]]:
    """THREADS workers claim the same hash at once; owners 'train' 0.3 s then tell."""
    shared = optuna.storages.InMemoryStorage() if url is None else None
    optuna.create_study(
        study_name=study_name, storage=shared or open_storage(url or "", heartbeat_interval=None)
    )
    barrier = threading.Barrier(THREADS)
    failed_once = threading.Lock()
    results: list[dict[str, object]] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            storage = shared or open_storage(url or "", heartbeat_interval=None)
            study = optuna.load_study(study_name=study_name, storage=storage)
            trial = study.ask()
            barrier.wait()
            source = find_or_claim(trial, "same-architecture", poll_interval=0.02)
            if source is None:
                threading.Event().wait(0.3)
                if fail_first_owner and failed_once.acquire(blocking=False):
                    study.tell(trial, state=TrialState.FAIL)
                    results.append({"number": trial.number, "role": "failed owner"})
                    return
                study.tell(trial, 0.25)
                results.append({"number": trial.number, "role": "owner"})
            else:
                value = copy_duplicate(trial, source)
                study.tell(trial, value)
                results.append({"number": trial.number, "role": "copy", "of": source.number})
        except BaseException as err:  # surfaced by the test below
            errors.append(err)

    threads = [threading.Thread(target=worker) for _ in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors
    return results


def _url(kind: str, tmp_path: Path) -> str | None:
    return None if kind == "inmemory" else make_url(kind, tmp_path)


@pytest.mark.parametrize("kind", [*ALL_BACKENDS, "inmemory"])
@pytest.mark.parametrize("fail_first_owner", [False, True], ids=["owner-completes", "owner-fails"])
def test_simultaneous_claims_train_once(kind: str, fail_first_owner: bool, tmp_path: Path) -> None:
    url, names = _url(kind, tmp_path), []
    name = new_name(names)
    try:
        results = _race(url, name, fail_first_owner=fail_first_owner)
    finally:
        if url is not None:
            cleanup(url, names)
    roles = sorted(str(r["role"]) for r in results)
    owners = [r for r in results if r["role"] == "owner"]
    assert len(owners) == 1  # exactly one trial trained to completion
    if fail_first_owner:  # one failed, exactly one waiter took over, the rest copied it
        assert roles == ["copy"] * (THREADS - 2) + ["failed owner", "owner"]
    else:
        assert roles == ["copy"] * (THREADS - 1) + ["owner"]
    assert {r["of"] for r in results if r["role"] == "copy"} == {owners[0]["number"]}


def test_duplicate_copies_values_attrs_and_intermediate_values() -> None:
    study = optuna.create_study(direction="maximize")
    first = study.ask()
    assert find_or_claim(first, "h") is None
    first.set_user_attr("val_accuracy_curve", [0.5, 0.75])
    first.set_user_attr("spec", {"theirs": True})
    first.report(0.5, 1)
    first.report(0.75, 2)
    study.tell(first, 0.75)
    second = study.ask()
    second.set_user_attr("spec", {"mine": True})
    second.set_user_attr("val_accuracy_curve", [0.1])  # e.g. inherited by a retried trial
    source = find_or_claim(second, "h")
    assert source is not None and source.number == first.number
    study.tell(second, copy_duplicate(second, source, keep=("spec",)))
    copy = study.trials[1]
    assert copy.value == 0.75
    assert copy.intermediate_values == {1: 0.5, 2: 0.75}
    assert copy.user_attrs["val_accuracy_curve"] == [0.5, 0.75]
    assert copy.user_attrs["spec"] == {"mine": True}  # its own attrs are kept
    assert copy.user_attrs[DUPLICATE_OF] == 0
    third = study.ask()  # a duplicate of a duplicate points at the original
    source = find_or_claim(third, "h")
    assert source is not None
    study.tell(third, copy_duplicate(third, source))
    assert study.trials[2].user_attrs[DUPLICATE_OF] == 0


def test_duplicate_of_pruned_trial_is_pruned() -> None:
    study = optuna.create_study(directions=["maximize", "minimize"])
    first = study.ask()
    assert find_or_claim(first, "h") is None
    study.tell(first, state=TrialState.PRUNED)
    second = study.ask()
    source = find_or_claim(second, "h")
    assert source is not None
    with pytest.raises(optuna.TrialPruned, match="duplicate of pruned trial 0"):
        copy_duplicate(second, source)


def test_find_or_claim_rejects_bad_arguments() -> None:
    study = optuna.create_study()
    trial = study.ask()
    with pytest.raises(ValueError, match="`canonical_hash` must be a non-empty str"):
        find_or_claim(trial, "")
    with pytest.raises(ValueError, match="`timeout` must be None or > 0"):
        find_or_claim(trial, "h", timeout=0)
    with pytest.raises(ValueError, match="`poll_interval > 0` must hold"):
        find_or_claim(trial, "h", poll_interval=0)
