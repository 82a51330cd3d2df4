"""A study knows its own set-up: the space, the objectives and the evaluator it was made with.

The first :class:`~optuna_nas.objective.NASObjective` run on a study records a description of
its set-up in the study system attr ``optuna_nas:setup``: the space's type, name, data shape and
parameter distributions plus a digest of a few decoded architectures (options that change the
networks but not the parameters, e.g. a stem width), the objective names (also set as Optuna's
metric names, which optuna-dashboard shows) and the evaluator's kind. Every later run compares
its own description with the stored one before any trial starts; a difference raises one
:class:`~optuna_nas._failures.SetupError` listing every difference and the two ways out, instead
of Optuna's bare "dynamic value space" error, a silent mix of chain and cell specs, or FLOPs
written into a column of parameter counts.
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING
from typing import Any
import warnings

import numpy as np
import optuna
from optuna.distributions import distribution_to_json

from optuna_nas import _compat
from optuna_nas._failures import SetupError

if TYPE_CHECKING:
    from optuna_nas.spaces import SearchSpace

SETUP_ATTR = "optuna_nas:setup"
"""Study system attr holding the description of the study's set-up."""

_PROBES = 4


def describe_setup(
    space: SearchSpace, objectives: tuple[str, ...], evaluator: object
) -> dict[str, Any]:
    """The JSON description of a set-up that :func:`check_setup` stores and compares."""
    from optuna_nas.evaluation._supernet import sample_uniform

    rng = np.random.default_rng(0)
    dists = space.distributions()
    probes = [space.decode(sample_uniform(dists, rng)).to_dict() for _ in range(_PROBES)]
    digest = hashlib.sha256(json.dumps(probes, sort_keys=True).encode()).hexdigest()[:16]
    return {
        "space": {
            "type": type(space).__name__,
            "name": space.name,
            "input_shape": list(space.input_shape),
            "num_outputs": space.num_outputs,
            "distributions": {k: distribution_to_json(v) for k, v in sorted(dists.items())},
            "architectures": digest,
        },
        "objectives": list(objectives),
        "evaluator": type(evaluator).__name__,
    }


def check_setup(study: optuna.Study, setup: dict[str, Any], *, allow_change: bool) -> None:
    """Record ``setup`` with a new study; on a resumed one, refuse a different set-up.

    Raises:
        SetupError: If the study was made with another space, other objectives (also when only
            its Optuna metric names or its number of directions say so) or another evaluator
            kind, and ``allow_change`` is False. With ``allow_change`` the new set-up is
            recorded and the study goes on.
    """
    storage, study_id = _compat.study_storage(study), _compat.study_id(study)
    stored = storage.get_study_system_attrs(study_id).get(SETUP_ATTR)
    names = _metric_names(study)
    differences = [] if stored is None else _differences(stored, setup)
    if stored is None and names is not None and names != setup["objectives"]:
        differences.append(f"objectives: {names} -> {setup['objectives']}")
    if len(study.directions) != len(setup["objectives"]):
        differences.append(
            f"number of objectives: the study has {len(study.directions)} direction(s), the "
            f"objective returns {len(setup['objectives'])}"
        )
    if differences and not allow_change:
        listed = "".join(f"\n  - {d}" for d in differences)
        raise SetupError(
            f"study {study.study_name!r} was made with another set-up than this run's:{listed}\n"
            "Resuming would mix incompatible trials. Either start a new study (another "
            "--study-name / study_name), or, if the change is intended, pass "
            "NASObjective(..., allow_setup_change=True) to record the new set-up and go on."
        )
    if stored != setup:
        storage.set_study_system_attr(study_id, SETUP_ATTR, setup)
    if names != setup["objectives"] and len(study.directions) == len(setup["objectives"]):
        with warnings.catch_warnings():  # experimental since Optuna 3.2
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names(list(setup["objectives"]))


def _metric_names(study: optuna.Study) -> list[str] | None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        names = study.metric_names
    return None if names is None else list(names)


def _differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    found = []
    a, b = old.get("space", {}), new["space"]
    for key in ("type", "name", "input_shape", "num_outputs"):
        if a.get(key) != b[key]:
            found.append(f"space {key}: {a.get(key)!r} -> {b[key]!r}")
    da, db = a.get("distributions", {}), b["distributions"]
    for name in sorted(set(da) | set(db)):
        if name not in db:
            found.append(f"parameter {name!r}: no longer in the space")
        elif name not in da:
            found.append(f"parameter {name!r}: new in the space")
        elif da[name] != db[name]:
            found.append(f"parameter {name!r}: {_short(da[name])} -> {_short(db[name])}")
    if not found and a.get("architectures") != b["architectures"]:
        found.append(
            "space options: the same parameters now build other networks (an option that is "
            "not a searched parameter changed, e.g. a stem width)"
        )
    if old.get("objectives") != new["objectives"]:
        found.append(f"objectives: {old.get('objectives')} -> {new['objectives']}")
    if old.get("evaluator") != new["evaluator"]:
        found.append(f"evaluator: {old.get('evaluator')} -> {new['evaluator']}")
    return found


def _short(distribution_json: str) -> str:
    attributes = json.loads(distribution_json).get("attributes", {})
    if "choices" in attributes:
        return f"choices {attributes['choices']}"
    return ", ".join(f"{k}={v}" for k, v in attributes.items())
