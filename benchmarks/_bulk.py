"""Build large studies in SQL storage fast, for the benchmarks (not part of the library).

``study.add_trials`` costs a transaction per trial (about a minute per 1,000 on PostgreSQL on
the benchmark VM); :func:`bulk_sql_study` writes the same rows in a few ``executemany``
statements straight into Optuna's tables, then refreshes the planner's statistics (``ANALYZE``),
as the database's autovacuum does a while after a study has grown that much: right after a bulk
load PostgreSQL otherwise planned the storage server's reads of a few running trials as parallel
sequential scans (about 25 ms instead of 2).
"""

from __future__ import annotations

import datetime
import json

import optuna
from optuna.trial import TrialState


def bulk_sql_study(
    url: str,
    name: str,
    trials: list[optuna.trial.FrozenTrial],
    direction: str = "minimize",
) -> None:
    """Create study ``name`` at ``url`` holding ``trials`` as COMPLETE single-objective trials.

    Writes each trial's params (with their distributions), its value and its user attrs, numbered
    in list order; system attrs, intermediate values and several objectives are not written.
    """
    from optuna.storages._rdb import models
    import sqlalchemy as sa

    storage = optuna.storages.RDBStorage(url)
    study = optuna.create_study(study_name=name, storage=storage, direction=direction)
    study_id = study._study_id
    now = datetime.datetime.now()
    trial_t = models.TrialModel.__table__
    with storage.engine.begin() as conn:
        conn.execute(
            sa.insert(trial_t),
            [
                {
                    "number": t.number if t.number >= 0 else i,
                    "study_id": study_id,
                    "state": TrialState.COMPLETE,
                    "datetime_start": now,
                    "datetime_complete": now,
                }
                for i, t in enumerate(trials)
            ],
        )
        rows = conn.execute(
            sa.select(trial_t.c.number, trial_t.c.trial_id).where(trial_t.c.study_id == study_id)
        ).all()
        ids = dict(rows)
        params, values, attrs = [], [], []
        for i, t in enumerate(trials):
            tid = ids[i]
            for key, value in t.params.items():
                dist = t.distributions[key]
                params.append(
                    {
                        "trial_id": tid,
                        "param_name": key,
                        "param_value": dist.to_internal_repr(value),
                        "distribution_json": optuna.distributions.distribution_to_json(dist),
                    }
                )
            values.append(
                {
                    "trial_id": tid,
                    "objective": 0,
                    "value": t.value,
                    "value_type": models.TrialValueModel.TrialValueType.FINITE,
                }
            )
            for key, value in t.user_attrs.items():
                attrs.append({"trial_id": tid, "key": key, "value_json": json.dumps(value)})
        conn.execute(sa.insert(models.TrialParamModel.__table__), params)
        conn.execute(sa.insert(models.TrialValueModel.__table__), values)
        if attrs:
            conn.execute(sa.insert(models.TrialUserAttributeModel.__table__), attrs)
    dialect = storage.engine.dialect.name
    if dialect in ("postgresql", "mysql"):
        analyze = "ANALYZE TABLE" if dialect == "mysql" else "ANALYZE"
        with storage.engine.begin() as conn:
            for model in (models.TrialModel, models.TrialParamModel, models.TrialValueModel):
                conn.execute(sa.text(f"{analyze} {model.__table__.name}"))
