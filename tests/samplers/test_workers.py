"""Seeds across fresh processes, threads and several processes on one SQLite storage."""

from __future__ import annotations

import json
from pathlib import Path
import subprocess
import sys

import optuna
import pytest

from optuna_nas.samplers import create_sampler

from ._toy import matches

_OPTIONS = {
    "evolution": {"population_size": 4, "sample_size": 2},
    "reinforce": {},
    "progressive": {"trials_per_level": 2},
}
_SCRIPT = """
import json, sys
import optuna
sys.path.insert(0, {tests!r})
from samplers._toy import matches
from optuna_nas.samplers import create_sampler
optuna.logging.set_verbosity(optuna.logging.WARNING)
name, options, storage, n = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3], int(sys.argv[4])
study = optuna.create_study(
    storage=None if storage == "-" else storage, study_name="s", load_if_exists=True,
    direction="maximize", sampler=create_sampler(name, **options),
)
study.optimize(matches, n_trials=n)
print(json.dumps([t.params for t in study.trials]))
"""


def _run(tmp_path: Path, *args: str) -> subprocess.Popen[str]:
    script = tmp_path / "run.py"
    script.write_text(_SCRIPT.format(tests=str(Path(__file__).parents[1])))
    return subprocess.Popen(
        [sys.executable, str(script), *args], stdout=subprocess.PIPE, text=True
    )


@pytest.mark.parametrize("name", sorted(_OPTIONS))
def test_a_seed_gives_the_same_trials_in_fresh_processes(name: str, tmp_path: Path) -> None:
    options = json.dumps({**_OPTIONS[name], "seed": 3})
    procs = [_run(tmp_path, name, options, "-", "16") for _ in range(2)]
    outs = [p.communicate(timeout=120)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert outs[0] == outs[1]
    other = _run(tmp_path, name, json.dumps({**_OPTIONS[name], "seed": 4}), "-", "16")
    assert other.communicate(timeout=120)[0] != outs[0]


@pytest.mark.parametrize("name", sorted(_OPTIONS))
def test_threads_and_processes_share_one_rdb_study(name: str, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'study.db'}"
    optuna.create_study(storage=url, study_name="s", direction="maximize")
    procs = [_run(tmp_path, name, json.dumps(_OPTIONS[name]), url, "3") for _ in range(2)]
    for p in procs:
        p.communicate(timeout=300)
    assert [p.returncode for p in procs] == [0, 0]
    sampler = create_sampler(name, **_OPTIONS[name])
    study = optuna.load_study(storage=url, study_name="s", sampler=sampler)
    study.optimize(matches, n_trials=4, n_jobs=2)
    states = [t.state for t in study.trials]
    assert states == [optuna.trial.TrialState.COMPLETE] * 10
    if name == "reinforce":  # every worker's trials updated the shared policy, each once
        create_sampler(name).policy_probabilities(study)  # type: ignore[attr-defined]
        stored = study._storage.get_study_system_attrs(study._study_id)["optuna_nas:reinforce"]
        assert stored["consumed_below"] == 10 and stored["consumed"] == []
    else:  # later trials were planned from the shared history (lineage recorded)
        assert any("optuna_nas:plan" in t.system_attrs for t in study.trials[6:])


@pytest.mark.parametrize("name", sorted(_OPTIONS))
def test_reseed_rng_changes_the_sequence(name: str) -> None:
    def params(reseed: bool) -> list[dict[str, object]]:
        sampler = create_sampler(name, seed=0, **_OPTIONS[name])
        if reseed:
            sampler.reseed_rng()
        study = optuna.create_study(direction="maximize", sampler=sampler)
        study.optimize(matches, n_trials=12)
        return [t.params for t in study.trials]

    assert params(False) == params(False)
    assert params(True) != params(False)
