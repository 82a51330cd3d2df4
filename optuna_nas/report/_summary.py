"""What a study found, read from its storage: the feasible Pareto front (or the top-k trials),
the hypervolume and its history, as a :class:`StudyReport` that prints, and writes JSON and CSV.
"""

from __future__ import annotations

from collections.abc import Sequence
import csv
from dataclasses import dataclass
import io
import math
from typing import Any

import optuna
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial
from optuna.trial import TrialState

from optuna_nas._validation import check_int
from optuna_nas.report._hypervolume import REFERENCE_RULE
from optuna_nas.report._hypervolume import feasible_complete_trials
from optuna_nas.report._hypervolume import hypervolume_history
from optuna_nas.report._hypervolume import is_feasible
from optuna_nas.report._hypervolume import pareto_front
from optuna_nas.report._hypervolume import reference_point
from optuna_nas.report._pareto import describe_spec
from optuna_nas.report._pareto import format_value
from optuna_nas.report._pareto import stored_spec
from optuna_nas.report._pareto import text_table

#: Per-trial costs a row carries besides the objectives (user attrs or objective values).
_COST_COLUMNS = ("params", "flops", "latency_ms")


@dataclass(frozen=True, kw_only=True)
class TrialRow:
    """One trial of a front or a top-k table.

    ``params``, ``flops`` and ``latency_ms`` come from the trial's user attrs (as
    :class:`~optuna_nas.objective.NASObjective` stores them) or its objective values; ``None``
    when the trial has neither.
    """

    number: int
    values: tuple[float, ...]
    params: int | None
    flops: int | None
    latency_ms: float | None
    canonical_hash: str | None
    architecture: str


@dataclass(frozen=True, kw_only=True)
class StudyReport:
    """The summary of one study; :meth:`to_text` is what ``optuna-nas report`` prints.

    For several objectives ``rows`` is the feasible Pareto front (sorted by the first objective,
    best first) and the hypervolume fields are set; for one objective ``rows`` are the ``top_k``
    best feasible trials and ``best_history`` holds the best value so far after each trial.
    """

    study_name: str
    metric_names: tuple[str, ...]
    directions: tuple[str, ...]
    counts: dict[str, int]
    rows: tuple[TrialRow, ...]
    reference_point: tuple[float, ...] | None
    reference_rule: str | None
    hypervolume: float | None
    hypervolume_history: tuple[tuple[int, float], ...]
    best_history: tuple[tuple[int, float], ...]

    @property
    def multi_objective(self) -> bool:
        return len(self.directions) > 1

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict (what ``report.json`` holds)."""
        return {
            "study_name": self.study_name,
            "objectives": [
                {"name": n, "direction": d}
                for n, d in zip(self.metric_names, self.directions, strict=True)
            ],
            "counts": dict(self.counts),
            "front" if self.multi_objective else "top_k": [
                {
                    "trial": r.number,
                    "values": dict(zip(self.metric_names, r.values, strict=True)),
                    "params": r.params,
                    "flops": r.flops,
                    "latency_ms": r.latency_ms,
                    "canonical_hash": r.canonical_hash,
                    "architecture": r.architecture,
                }
                for r in self.rows
            ],
            "reference_point": (
                None
                if self.reference_point is None
                else dict(zip(self.metric_names, self.reference_point, strict=True))
            ),
            "reference_rule": self.reference_rule,
            "hypervolume": self.hypervolume,
            "hypervolume_history": [
                {"trial": n, "hypervolume": v} for n, v in self.hypervolume_history
            ],
            "best_history": [{"trial": n, "best": v} for n, v in self.best_history],
        }

    def _extra_columns(self) -> list[str]:
        """The cost columns (``params``, ``flops``, ``latency_ms``) that are not objectives
        already, so that no table or CSV names a column twice.
        """
        return [name for name in _COST_COLUMNS if name not in self.metric_names]

    def table(self) -> str:
        """The rows as an aligned text table."""
        header = ["trial", *self.metric_names]
        extras = [
            name
            for name in self._extra_columns()
            if any(getattr(r, name) is not None for r in self.rows)
        ]
        header += [*extras, "hash", "architecture"]
        body = [
            [
                str(r.number),
                *(format_value(v) for v in r.values),
                *(format_value(getattr(r, name)) for name in extras),
                (r.canonical_hash or "")[:10],
                r.architecture,
            ]
            for r in self.rows
        ]
        return text_table(header, body)

    def to_text(self) -> str:
        """The full human-readable report."""
        c = self.counts
        objectives = ", ".join(
            f"{n} ({d})" for n, d in zip(self.metric_names, self.directions, strict=True)
        )
        out = [
            f"Study {self.study_name!r}: {c['complete']} complete ({c['infeasible']} infeasible), "
            f"{c['pruned']} pruned, {c['failed']} failed, {c['running']} running",
            f"Objectives: {objectives}",
            "",
        ]
        if self.multi_objective:
            out.append(f"Pareto front of the feasible trials ({_count(len(self.rows))}):")
        else:
            out.append(f"Top {_count(len(self.rows), 'feasible trial')}:")
        out += [self.table() if self.rows else "(no complete feasible trial yet)", ""]
        if self.reference_point is not None:
            point = ", ".join(
                f"{n}={format_value(v)}"
                for n, v in zip(self.metric_names, self.reference_point, strict=True)
            )
            out += [
                f"Hypervolume: {format_value(self.hypervolume)}",
                f"  reference point: {point}",
                f"  ({self.reference_rule})",
                "Hypervolume history (trial: value, where it grew): "
                + _changes(self.hypervolume_history),
            ]
        elif self.best_history:
            out.append(
                "Best value history (trial: value, where it improved): "
                + _changes(self.best_history)
            )
        return "\n".join(out)

    def front_csv(self) -> str:
        """The rows as CSV (``front.csv`` / ``top_k.csv``): ``trial``, the objectives, then
        ``params``, ``flops``, ``latency_ms`` (those that are not objectives), ``canonical_hash``
        and ``architecture``; every column name appears once.
        """
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        extras = self._extra_columns()
        w.writerow(["trial", *self.metric_names, *extras, "canonical_hash", "architecture"])
        for r in self.rows:
            w.writerow(
                [
                    r.number,
                    *r.values,
                    *(getattr(r, name) for name in extras),
                    r.canonical_hash,
                    r.architecture,
                ]
            )
        return buf.getvalue()

    def history_csv(self) -> str:
        """The hypervolume (or best-value) history as CSV (``history.csv``)."""
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        if self.multi_objective:
            w.writerow(["trial", "hypervolume"])
            w.writerows(self.hypervolume_history)
        else:
            w.writerow(["trial", f"best_{self.metric_names[0]}"])
            w.writerows(self.best_history)
        return buf.getvalue()


def _count(n: int, noun: str = "trial") -> str:
    """``1 trial``, ``2 trials``."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _changes(history: Sequence[tuple[int, float]], limit: int = 12) -> str:
    steps = [(n, v) for i, (n, v) in enumerate(history) if i == 0 or v != history[i - 1][1]]
    shown = steps if len(steps) <= limit else [*steps[: limit - 1], steps[-1]]
    text = ", ".join(f"{n}: {format_value(v)}" for n, v in shown)
    return text + (
        f" ({len(steps) - len(shown)} more steps omitted)" if len(shown) < len(steps) else ""
    )


def metric_names(study: optuna.Study) -> tuple[str, ...]:
    """The study's objective names (``study.metric_names``), or ``value0``, ``value1``, ..."""
    names = study.metric_names
    return tuple(names) if names else tuple(f"value{i}" for i in range(len(study.directions)))


def trial_row(trial: FrozenTrial, names: Sequence[str]) -> TrialRow:
    """The :class:`TrialRow` of ``trial``; ``names`` are the study's objective names."""
    values = tuple(trial.values or ())
    by_name = dict(zip(names, values, strict=False))
    attrs = trial.user_attrs

    def pick(key: str) -> Any:
        value = attrs.get(key, by_name.get(key))
        return None if value is None else value

    spec = stored_spec(trial)
    params, flops, latency = pick("params"), pick("flops"), pick("latency_ms")
    return TrialRow(
        number=trial.number,
        values=values,
        params=None if params is None else int(params),
        flops=None if flops is None else int(flops),
        latency_ms=None if latency is None else float(latency),
        canonical_hash=attrs.get("canonical_hash"),
        architecture=describe_spec(spec) if spec else "",
    )


def summarize_study(
    study: optuna.Study,
    *,
    top_k: int = 10,
    reference: Sequence[float] | None = None,
) -> StudyReport:
    """Summarise ``study``: see :class:`StudyReport`.

    Args:
        study: A loaded study (``optuna.load_study``).
        top_k: Rows of a single-objective report.
        reference: The hypervolume reference point, one value per objective in the objectives'
            own units; by default derived as :data:`REFERENCE_RULE` says.

    Infeasible trials (a constraint ``> 0``) are counted but never shown in a front, a top-k
    table, the hypervolume or the histories.
    """
    check_int("top_k", top_k, minimum=1)
    names = metric_names(study)
    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    counts = {
        "complete": len(complete),
        "infeasible": sum(not is_feasible(t) for t in complete),
        "pruned": sum(t.state == TrialState.PRUNED for t in trials),
        "failed": sum(t.state == TrialState.FAIL for t in trials),
        "running": sum(t.state in (TrialState.RUNNING, TrialState.WAITING) for t in trials),
    }
    feasible = feasible_complete_trials(study)
    directions = tuple(d.name.lower() for d in study.directions)
    if len(study.directions) > 1:
        front = pareto_front(feasible, study.directions)
        sign = 1.0 if study.directions[0] == StudyDirection.MINIMIZE else -1.0
        front.sort(key=lambda t: (sign * (t.values or [math.inf])[0], t.number))
        ref = tuple(reference) if reference is not None else reference_point(study)
        history = hypervolume_history(study, ref) if ref is not None else []
        return StudyReport(
            study_name=study.study_name,
            metric_names=names,
            directions=directions,
            counts=counts,
            rows=tuple(trial_row(t, names) for t in front),
            reference_point=ref,
            reference_rule=(
                None if ref is None else "given" if reference is not None else REFERENCE_RULE
            ),
            hypervolume=history[-1][1] if history else None,
            hypervolume_history=tuple(history),
            best_history=(),
        )
    sign = 1.0 if study.direction == StudyDirection.MINIMIZE else -1.0
    ranked = sorted(feasible, key=lambda t: (sign * float(t.value or 0.0), t.number))
    best: list[tuple[int, float]] = []
    for t in feasible:
        v = float(t.value or 0.0)
        best.append((t.number, v if not best else min(best[-1][1], v, key=lambda x: sign * x)))
    return StudyReport(
        study_name=study.study_name,
        metric_names=names,
        directions=directions,
        counts=counts,
        rows=tuple(trial_row(t, names) for t in ranked[:top_k]),
        reference_point=None,
        reference_rule=None,
        hypervolume=None,
        hypervolume_history=(),
        best_history=tuple(best),
    )
