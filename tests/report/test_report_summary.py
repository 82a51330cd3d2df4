"""The study report: fronts without infeasible trials, Optuna's hypervolume, files and plots."""

from __future__ import annotations

from collections.abc import Sequence
import csv
import itertools
import json
from pathlib import Path
from typing import Literal
import warnings

import numpy as np
import optuna
from optuna.distributions import FloatDistribution
import pytest

from optuna_nas.report import REFERENCE_RULE
from optuna_nas.report import hypervolume_history
from optuna_nas.report import reference_point
from optuna_nas.report import report
from optuna_nas.report import summarize_study
from optuna_nas.spaces import ChainSpace

Direction = Literal["minimize", "maximize"]
SPACE = ChainSpace(input_shape=(1, 8, 8), num_outputs=10, max_depth=3)


def _specs(n: int) -> list[dict[str, object]]:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    return [SPACE.suggest(study.ask()).to_dict() for _ in range(n)]


def _study(tmp_path: Path, rows: Sequence[tuple[Sequence[float], float | None]]) -> optuna.Study:
    """A stored study whose trial i has values ``rows[i][0]`` and, if set, constraint
    ``rows[i][1]`` (``> 0``: infeasible)."""
    directions: list[Direction] = (
        ["maximize", "minimize"] if len(rows[0][0]) == 2 else ["maximize"]
    )
    study = optuna.create_study(
        storage=f"sqlite:///{tmp_path / 'r.db'}", study_name="r", directions=directions
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names(["val_accuracy", "params"][: len(directions)])
    for (values, constraint), spec in zip(rows, _specs(len(rows)), strict=True):
        system_attrs = {} if constraint is None else {"constraints:latency_ms": constraint}
        study.add_trial(
            optuna.trial.create_trial(
                values=list(values),
                params={"x": 0.5},
                distributions={"x": FloatDistribution(0, 1)},
                user_attrs={"spec": spec, "canonical_hash": "ab" * 32, "flops": 1000},
                system_attrs=system_attrs,
            )
        )
    return study


# (accuracy up, params down); trial 2 dominates everything but is infeasible.
ROWS = [
    ((0.80, 3000.0), -0.5),
    ((0.90, 9000.0), 0.0),
    ((0.99, 1000.0), 0.7),
    ((0.70, 8000.0), -0.1),
    ((0.85, 4000.0), -0.2),
]


def test_front_hypervolume_and_history_leave_infeasible_trials_out(tmp_path: Path) -> None:
    study = _study(tmp_path, ROWS)
    summary = summarize_study(study)
    assert [r.number for r in summary.rows] == [1, 4, 0]
    assert {r.number for r in summary.rows} == {t.number for t in study.best_trials}
    assert summary.counts == {
        "complete": 5,
        "infeasible": 1,
        "pruned": 0,
        "failed": 0,
        "running": 0,
    }
    # Reference: worst feasible accuracy 0.70 -> 0.63, worst params 9000 -> 9900.
    assert summary.reference_point == pytest.approx((0.63, 9900.0))
    assert summary.reference_rule == REFERENCE_RULE
    # Brute-force 2-D hypervolume of the feasible front {(0.9, 9000), (0.85, 4000), (0.8, 3000)}.
    front = [(0.9, 9000.0), (0.85, 4000.0), (0.8, 3000.0)]
    grid_x = sorted({0.63, *(a for a, _ in front)})
    area = 0.0
    for lo, hi in itertools.pairwise(grid_x):
        best = min((p for a, p in front if a >= hi), default=9900.0)
        area += (hi - lo) * (9900.0 - best)
    assert summary.hypervolume == pytest.approx(area)
    # Optuna's own hypervolume history plot agrees trial by trial.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        fig = optuna.visualization.plot_hypervolume_history(study, summary.reference_point)
    assert [v for _, v in summary.hypervolume_history] == pytest.approx(list(fig.data[0].y))
    text = summary.to_text()
    assert "1 infeasible" in text and "Hypervolume" in text and "val_accuracy=0.63" in text


def test_given_reference_point_is_used_and_checked(tmp_path: Path) -> None:
    study = _study(tmp_path, ROWS)
    summary = summarize_study(study, reference=(0.0, 10000.0))
    assert summary.reference_rule == "given"
    assert summary.hypervolume_history[0] == (0, pytest.approx(0.8 * 7000.0))
    with pytest.raises(ValueError, match="one finite value per objective"):
        hypervolume_history(study, [0.5])
    with pytest.raises(ValueError, match="top_k >= 1"):
        summarize_study(study, top_k=0)


def test_single_objective_gets_top_k_and_best_history(tmp_path: Path) -> None:
    rows = [((0.5,), None), ((0.9,), 1.0), ((0.7,), None), ((0.6,), -1.0), ((0.8,), None)]
    study = _study(tmp_path, rows)
    summary = summarize_study(study, top_k=2)
    assert [r.number for r in summary.rows] == [4, 2]
    assert summary.best_history == ((0, 0.5), (2, 0.7), (3, 0.7), (4, 0.8))
    assert summary.hypervolume is None and reference_point(study) == (pytest.approx(0.45),)
    assert "Top 2 feasible trials" in summary.to_text()
    report(study, out_dir=tmp_path / "out", top_k=2)
    assert (tmp_path / "out" / "optimization_history.png").stat().st_size > 1000
    assert "Plotly.newPlot" in (tmp_path / "out" / "optimization_history.html").read_text()
    with (tmp_path / "out" / "top_k.csv").open() as f:
        assert [int(r["trial"]) for r in csv.DictReader(f)] == [4, 2]


def test_report_writes_json_csv_and_figures(tmp_path: Path) -> None:
    study = _study(tmp_path, ROWS)
    out = tmp_path / "out"
    summary = report(study, out_dir=out)
    data = json.loads((out / "report.json").read_text())
    assert [r["trial"] for r in data["front"]] == [1, 4, 0]
    assert data["front"][0]["values"] == {"val_accuracy": 0.9, "params": 9000.0}
    assert data["hypervolume"] == pytest.approx(summary.hypervolume)
    with (out / "front.csv").open() as f:
        front = list(csv.DictReader(f))
    assert [int(r["trial"]) for r in front] == [1, 4, 0]
    assert front[0]["architecture"] == summary.rows[0].architecture != ""
    history = np.loadtxt(out / "history.csv", delimiter=",", skiprows=1)
    assert history.shape == (5, 2)
    for stem in ("pareto_front", "history_val_accuracy", "history_params", "hypervolume_history"):
        assert (out / f"{stem}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        html = (out / f"{stem}.html").read_text()
        assert "plotly.min.js" in html and "Plotly.newPlot" in html
    assert (out / "plotly.min.js").stat().st_size > 100_000
    # The infeasible trial is drawn apart from the front in the interactive figure.
    pareto = (out / "pareto_front.html").read_text()
    assert "Infeasible Trial" in pareto


def test_csv_and_table_name_each_column_once(tmp_path: Path) -> None:
    # "params" is an objective here and a cost column too: it must appear once.
    study = _study(tmp_path, ROWS)
    out = tmp_path / "out"
    summary = report(study, out_dir=out, plots=False)
    header = (out / "front.csv").read_text().splitlines()[0].split(",")
    assert header == [
        "trial",
        "val_accuracy",
        "params",
        "flops",
        "latency_ms",
        "canonical_hash",
        "architecture",
    ]
    with (out / "front.csv").open() as f:
        first = next(csv.DictReader(f))
    assert (first["params"], first["flops"]) == ("9000.0", "1000")
    table_header = summary.table().splitlines()[0].split()
    assert len(table_header) == len(set(table_header))


def test_counts_in_headings_are_singular_for_one(tmp_path: Path) -> None:
    texts = {}
    cases: dict[str, Sequence[tuple[Sequence[float], float | None]]] = {
        "front1": [((0.8, 3000.0), None)],
        "front3": ROWS,
        "top1": [((0.8,), None)],
    }
    for name, rows in cases.items():
        (tmp_path / name).mkdir()
        texts[name] = summarize_study(_study(tmp_path / name, rows)).to_text()
    assert "Pareto front of the feasible trials (1 trial):" in texts["front1"]
    assert "Pareto front of the feasible trials (3 trials):" in texts["front3"]
    assert "Top 1 feasible trial:" in texts["top1"]
